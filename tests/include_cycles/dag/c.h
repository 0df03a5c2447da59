#pragma once
// #include "a.h"
/* #include "b.h"
#include "b.h" */
static const char *c_doc = "#include \"a.h\"";
static inline int c (void) { return 3; }
