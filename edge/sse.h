// Server-Sent Events for streamed chat completions (pure): OpenAI chat.completion.chunk
// events with the aigw additions, the closing events and error events. SSE text only:
// the HTTP framing around it is chunked.h's (or libmicrohttpd's).
#ifndef AIGW_EDGE_SSE_H
#define AIGW_EDGE_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "aigw.pb-c.h"

#define SSE_HEADROOM 16                 // room kept before the text (chunked.h uses it)
#define SSE_TAIL 8                      // room kept after it
#define SSE_TEXT_MAX (64u << 20)        // hard limit on one write's SSE text
#define SSE_ID_MAX 128

//  Event text with room around it for a framing layer, reused across events.
typedef struct {
    char *mem;                          // SSE_HEADROOM + cap + SSE_TAIL bytes; owned
    size_t len;                         // text bytes at mem + SSE_HEADROOM
    size_t cap;
} sse_buf_t;

//  One stream's state, from the first chunk to the end.
typedef struct {
    char winner[CFG_NAME_MAX];          // the winning target ("" before the first chunk)
    char id[SSE_ID_MAX];                // first chunk's "id", reused by closing chunks
    int64_t created;                    // first chunk's "created" (else the start time)
    uint32_t next_seq;                  // Chunk.seq expected next
    uint32_t sent;                      // chunks forwarded
    cfg_policy_t policy;
    bool include_usage;                 // stream_options.include_usage
    const cfg_t *cfg;                   // prices for the aigw object (NULL: no cost)
} sse_state_t;

typedef enum {
    SSE_OK = 0,
    SSE_ERR_MEMORY = -1,                // out of memory, or over SSE_TEXT_MAX
    SSE_ERR_CHUNK = -2,                 // delta_json is missing or not a JSON object
    SSE_ERR_GAP = -3,                   // Chunk.seq is not the one expected (chunks lost)
} sse_rc_t;

//  Start a stream. job_id names the fallback "id"; created_s is the fallback time.
void sse_state_init (sse_state_t *st, uint64_t job_id, int64_t created_s, cfg_policy_t policy,
                     bool include_usage);

//  Empty the text (keeps the memory) / free everything. Both accept a zeroed buffer.
void sse_buf_reset (sse_buf_t *b);
void sse_buf_free (sse_buf_t *b);

//  Append raw text (e.g. ": keep-alive\n\n"). SSE_OK or SSE_ERR_MEMORY.
sse_rc_t sse_append (sse_buf_t *b, const char *text, size_t len);

//  Append one CHUNK as "data: <json>\n\n": "model" set to Chunk.model (the winner) on
//  every chunk; the first also gets "aigw": {"winner"} and "role": "assistant" in each
//  choice's delta if absent. Checks Chunk.seq. On error nothing is appended.
sse_rc_t sse_chunk (sse_state_t *st, const Aigw__Chunk *c, sse_buf_t *out);

//  Append the end of a successful stream: a summary chunk ("choices": [] and "aigw":
//  {winner, policy, latency_ms, attempts}), then with include_usage a usage chunk
//  ("choices": [], "usage" from the response or Result.usage), then "data: [DONE]".
sse_rc_t sse_done (sse_state_t *st, const Aigw__Result *res, sse_buf_t *out);

//  Append an error event for a failed job: "event: error\ndata: {"error": {...},
//  "aigw": {...}}\n\n" (winner set once a chunk went out). Never followed by [DONE].
sse_rc_t sse_error (sse_state_t *st, const Aigw__Error *e, sse_buf_t *out);

//  Append an error event the edge decided (edge deadline, lost chunks, bad chunk).
sse_rc_t sse_error_simple (sse_state_t *st, int status, const char *code, const char *message,
                           sse_buf_t *out);

#endif
