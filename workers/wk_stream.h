// A streamed upstream reply being read: the framing parser (SSE or NDJSON), the
// dialect's event handler, the chunks it forwards and the completion it assembles.
#ifndef AIGW_WK_STREAM_H
#define AIGW_WK_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wk_compl.h"
#include "wk_ndjson.h"
#include "wk_sse.h"

#define WK_STREAM_BLOCKS 64         // anthropic content blocks per message
#define WK_STREAM_LINE_MAX (1024 * 1024)

//  Handler return values (0 = go on).
#define WK_STREAM_END 1             // the stream ended properly; ignore what follows
#define WK_STREAM_FAIL 2            // failed; wk_stream_fail set the reason

typedef struct wk_stream wk_stream_t;

//  A dialect's handler for one event: SSE (event name, data) or one NDJSON line
//  (event ""). Returns 0, WK_STREAM_END or WK_STREAM_FAIL.
typedef int (*wk_stream_event_fn) (wk_stream_t *s, const char *event, const char *data, size_t len);

//  Where forwarded chunks go (a CHUNK to the broker). 0, or -1 if not sent.
typedef int (*wk_emit_fn) (void *arg, const char *json, size_t len);

typedef enum { WK_FRAMING_SSE = 0, WK_FRAMING_NDJSON } wk_framing_t;

struct wk_stream {
    wk_framing_t framing;
    wk_sse_t sse;
    wk_ndjson_t nd;
    wk_stream_event_fn on_event;
    wk_emit_fn emit;
    void *emit_arg;
    wk_compl_t compl;           // the reply assembled so far
    buf_t scratch;           // synthesized chunk being rendered
    uint32_t chunks;            // chunks emitted
    uint32_t events;            // events handled
    bool ended;                 // the dialect's end marker was seen
    bool failed;                // reason says why
    bool emit_failed;           // a chunk could not be sent (not an upstream fault)
    bool role_sent;             // synthesized chunks: the first carried the role
    bool finish_ends;           // (OpenAI) finish_reason on every choice also ends it
    char reason [320];
    //  dialect state
    int16_t block_tool [WK_STREAM_BLOCKS];  // anthropic: block -> tool call index, -1 none
    uint32_t ntools;            // tool calls started
};

//  Prepare s. max_bytes caps the assembled reply; lines/events are capped at
//  min(max_bytes, WK_STREAM_LINE_MAX). created is the chunks' "created".
void wk_stream_init (wk_stream_t *s, wk_framing_t framing, wk_stream_event_fn on_event,
                     size_t max_bytes, int64_t created, wk_emit_fn emit, void *emit_arg);
void wk_stream_free (wk_stream_t *s);

//  Feed response bytes. Returns 0 (also after the end: the rest is ignored),
//  or -1 when the stream failed (s->reason).
int wk_stream_feed (wk_stream_t *s, const char *bytes, size_t len);

//  The transfer ended: handle a last unterminated NDJSON line. 0 / -1.
int wk_stream_finish (wk_stream_t *s);

//  True when a RESULT may be sent: the end marker was seen, or (OpenAI) the
//  body closed after every choice got a finish_reason.
bool wk_stream_complete (const wk_stream_t *s);

//  Mark the stream failed with a reason. Returns WK_STREAM_FAIL.
int wk_stream_fail (wk_stream_t *s, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

//  Forward one chunk JSON as it is. WK_STREAM_FAIL if it could not be sent.
int wk_stream_emit (wk_stream_t *s, const char *json, size_t len);

//  Render and forward a one-choice chunk with the stream's id, model and
//  created; the first one gets the assistant role. 0 / WK_STREAM_FAIL.
int wk_stream_emit_delta (wk_stream_t *s, wk_delta_t *d);

//  Render the assembled chat.completion. 0 / -1.
int wk_stream_result (const wk_stream_t *s, buf_t *out);

#endif
