#include "b.h"
int b (void) { return 1; }
