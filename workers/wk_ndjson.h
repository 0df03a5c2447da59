// Incremental newline-delimited JSON splitter (pure, no I/O): bytes in any split, lines out.
// LF or CRLF ends, blank lines skipped, a hard cap on line length.
#ifndef AIGW_WK_NDJSON_H
#define AIGW_WK_NDJSON_H

#include <stdbool.h>
#include <stddef.h>
#include "buf.h"

#define WK_NDJSON_BAD (-1)

//  Called once per non-blank line (without its end). Return 0 to go on; any
//  other value stops the feed and is returned by wk_ndjson_feed.
typedef int (*wk_ndjson_fn) (void *arg, const char *line, size_t len);

typedef struct {
    buf_t line;              // unterminated line carried to the next feed
    size_t max_line;
    char error [96];
} wk_ndjson_t;

void wk_ndjson_init (wk_ndjson_t *self, size_t max_line);

//  Split len bytes, calling fn for each line they complete. Returns 0,
//  WK_NDJSON_BAD (line too long; self->error), or fn's first non-zero value.
int wk_ndjson_feed (wk_ndjson_t *self, const char *bytes, size_t len, wk_ndjson_fn fn, void *arg);

//  At end of input: pass a last unterminated line to fn. As wk_ndjson_feed.
int wk_ndjson_finish (wk_ndjson_t *self, wk_ndjson_fn fn, void *arg);

void wk_ndjson_free (wk_ndjson_t *self);

#endif
