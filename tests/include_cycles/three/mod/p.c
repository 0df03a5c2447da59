#include "p_int.h"
#include "q.h"
int p (void) { return q (); }
