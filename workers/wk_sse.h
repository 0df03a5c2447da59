// Incremental Server-Sent Events parser (pure, no I/O): bytes in any split, events out.
// CRLF, LF or CR line ends, comments, "data:" with or without a space, multi-line data.
#ifndef AIGW_WK_SSE_H
#define AIGW_WK_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include "buf.h"

#define WK_SSE_EVENT_NAME_MAX 64    // longest "event:" value accepted
#define WK_SSE_BAD (-1)             // wk_sse_feed: the bytes are not SSE (see error)

//  Called once per complete event (a blank line after at least one data line).
//  event is the "event:" value ("" if none); data is the data lines joined by
//  "\n", NUL-terminated. Return 0 to go on; any other value stops the feed and
//  is returned by wk_sse_feed (use a value other than WK_SSE_BAD).
typedef int (*wk_sse_fn) (void *arg, const char *event, const char *data, size_t len);

typedef struct {
    buf_t line;              // unterminated line carried to the next feed
    buf_t data;              // data lines of the event being read
    char event [WK_SSE_EVENT_NAME_MAX];
    bool have_data;             // a data line was seen since the last dispatch
    bool skip_lf;               // the last line ended with CR: a leading LF is its tail
    bool started;               // the first line was seen (for the BOM)
    size_t max_line;
    char error [160];           // why the feed failed (after WK_SSE_BAD)
} wk_sse_t;

//  Start a parser: lines longer than max_line bytes and events whose data is
//  longer than max_event bytes are errors. No allocation until bytes arrive.
void wk_sse_init (wk_sse_t *self, size_t max_line, size_t max_event);

//  Parse len bytes, calling fn for each event they complete. Returns 0,
//  WK_SSE_BAD (self->error says why; the parser is then unusable), or the
//  first non-zero value fn returned (the rest of the bytes are not parsed).
//  A line that is not a comment nor a data, event, id or retry field is bad.
int wk_sse_feed (wk_sse_t *self, const char *bytes, size_t len, wk_sse_fn fn, void *arg);

//  True if bytes of an unfinished event or line are pending (a cut stream).
bool wk_sse_pending (const wk_sse_t *self);

void wk_sse_free (wk_sse_t *self);

#endif
