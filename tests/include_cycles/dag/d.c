#include "d_int.h"
int d (void) { return a (); }
