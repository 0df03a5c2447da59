#include "r.h"
#include "../mod/p_int.h"
int r (void) { return p (); }
