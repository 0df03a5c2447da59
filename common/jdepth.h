// JSON nesting depth check: one non-recursive pass over the raw bytes, run before a
// recursive parser (cJSON) sees them, so hostile nesting cannot exhaust a thread stack.
#ifndef AIGW_JDEPTH_H
#define AIGW_JDEPTH_H

#include <stddef.h>

//  Return 0 when no array or object in buf[0..len) is nested deeper than max_depth
//  levels (the outermost value is level 1), else -1. Brackets inside strings do not
//  count. Does not validate JSON; reads only buf[0..len) (NUL bytes are ordinary), O(len).
int jdepth_check (const char *buf, size_t len, unsigned max_depth);

#endif
