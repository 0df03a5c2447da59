#pragma once
int d (void);
