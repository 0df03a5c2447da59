// include_cycles fixture: mod/p -> mod/q -> common/r -> mod/p, across directories
// (own directory, then the include directory common/, then a relative path), with
// the private header p_int.h counted as part of mod/p
#pragma once
int p (void);
