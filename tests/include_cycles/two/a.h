// include_cycles fixture: a <-> b (a.c includes b.h, b.h includes a.h)
#pragma once
int a (void);
