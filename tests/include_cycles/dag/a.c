// include_cycles fixture: no cycle. a -> b -> c and a -> c; d's private header
// includes d.h (same module); the includes in comments and strings do not count.
#include "a.h"
#include "b.h"
#include "c.h"
int a (void) { return b () + c (); }
