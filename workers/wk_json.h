// Small JSON helpers for the worker: a validating scanner that finds the top-level
// members of an object (so requests are rewritten without re-serialising), and escaping.
#ifndef AIGW_WK_JSON_H
#define AIGW_WK_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include "buf.h"

#define WK_JSON_DEPTH 64        // deepest nesting accepted
#define WK_JSON_MEMBERS 256     // most top-level members accepted

//  Byte spans of one top-level member: key includes its quotes, value is raw text.
typedef struct {
    size_t key_off, key_len;
    size_t val_off, val_len;
} wk_json_member_t;

//  Validate js[0..len) as one JSON object and record its top-level members.
//  Returns the member count (<= max), or -1 if the text is not a well-formed
//  object, nests deeper than WK_JSON_DEPTH, or has more than max members.
int wk_json_members (const char *js, size_t len, wk_json_member_t *out, size_t max);

//  True if the member's key is exactly "name" (compared as raw text).
bool wk_json_key_is (const char *js, const wk_json_member_t *m, const char *name);

//  (Quoted JSON strings: buf_put_json_string / buf_put_json_str in common/buf.h.)

#endif
