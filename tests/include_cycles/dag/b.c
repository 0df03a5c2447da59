#include "b.h"
#include "c.h"
int b (void) { return c (); }
