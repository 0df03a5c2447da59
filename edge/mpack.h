// msgpack helpers for the metrics bridge: a bounds check of untrusted bytes before
// msgpack-c unpacks them, msgpack -> JSON text, and typed map lookups.
#ifndef AIGW_EDGE_MPACK_H
#define AIGW_EDGE_MPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define MPACK_DEPTH_MAX 32              // deeper nesting is refused

//  True if data holds exactly one well-formed msgpack object nested at most max_depth
//  deep, whose every declared length and element count fits in the bytes present (so
//  unpacking cannot allocate more than a small multiple of len).
bool mpack_valid (const void *data, size_t len, unsigned max_depth);

#ifdef AIGW_HAVE_MSGPACK
#include <msgpack.h>

//  Append obj as JSON (nil, bin and ext become null, non-finite floats null, map keys
//  that are not strings are written as strings). 0, or -1 if out hit its limit or the
//  object is nested deeper than MPACK_DEPTH_MAX.
int mpack_to_json (const msgpack_object *obj, buf_t *out);

//  Value of key in a map object, or NULL (obj not a map, key absent).
const msgpack_object *mpack_get (const msgpack_object *map, const char *key);
//  Number value (any integer or float type) in *out; false if not a number.
bool mpack_num (const msgpack_object *obj, double *out);
//  Copy a string value (truncated to fit cap); false if not a string.
bool mpack_str (const msgpack_object *obj, char *out, size_t cap);
#endif

#endif
