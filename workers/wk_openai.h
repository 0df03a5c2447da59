// The openai provider: POST <base_url>/chat/completions on the loop's curl multi
// handle. Request rewriting, reply classification and stream events are pure (unit-tested).
#ifndef AIGW_WK_OPENAI_H
#define AIGW_WK_OPENAI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aigw.pb-c.h"
#include "buf.h"
#include "wk_stream.h"

#define WK_OPENAI_DETAIL_MAX 200    // upstream error text kept in a reason
#define WK_OPENAI_CODE_MAX 64       // upstream error code kept, incl. NUL

//  Outcome of an upstream call, as the worker will report it.
typedef struct {
    Aigw__ErrorCode code;       // ERR_NONE: body is a good chat.completion
    uint32_t status;            // upstream HTTP status, 0 if none
    char message [320];         // readable reason when code != ERR_NONE
    char upstream_code [WK_OPENAI_CODE_MAX]; // the provider's error code, "" if none
    bool has_usage;
    uint32_t prompt_tokens;
    uint32_t completion_tokens;
} wk_openai_reply_t;

//  Rewrite a chat request for the upstream into out: "model" becomes
//  upstream_model (added if absent); "stream" becomes the stream flag, with
//  "stream_options":{"include_usage":true} when streaming (the client's
//  stream_options and "aigw" are dropped); every other member is copied byte
//  for byte. Returns 0, or -1 with *err set to a static reason.
int wk_openai_rewrite (const char *req, size_t len, const char *upstream_model, bool stream,
                       buf_t *out, const char **err);

//  Classify a complete upstream reply (body need not be NUL-terminated).
//  Returns 0 when it is a 2xx JSON object with a choices array (usage parsed
//  if present), else -1 with out->code and out->message set. A non-2xx status
//  is mapped by wk_upstream_status_code, its body read by wk_openai_error_info.
int wk_openai_parse (long status, const char *body, size_t len, wk_openai_reply_t *out);

//  The most readable part of an error body (error.message, error as a string,
//  message, or the raw text), as a snippet.
void wk_openai_error_detail (const char *body, size_t len, char *dst, size_t dstlen);

//  wk_openai_error_detail, plus the provider's error code into code (codelen):
//  error.code (a string or an integer), else error.type (OpenAI; Anthropic's
//  {"type":"error","error":{"type",...}}), else "". Printable ASCII only (others
//  become '_'), at most codelen - 1 characters.
void wk_openai_error_info (const char *body, size_t len, char *dst, size_t dstlen,
                           char *code, size_t codelen);

//  Stream event handler (wk_stream_event_fn) for OpenAI SSE: [DONE] ends it; a
//  chunk with content, refusal, tool_calls or a finish_reason is forwarded as
//  it is; role-only and usage-only chunks are not; an "error" member, an
//  "object":"error" chunk or an "error" event fails it.
int wk_openai_stream_event (wk_stream_t *s, const char *event, const char *data, size_t len);

//  Fill out for a reply that passed its size cap.
void wk_openai_too_big (uint64_t max, long status, wk_openai_reply_t *out);

//  Copy at most max bytes of s into dst (dstlen), cut at a UTF-8 boundary, with
//  control characters turned into spaces; appends "..." when cut.
void wk_openai_snippet (char *dst, size_t dstlen, const char *s, size_t len, size_t max);

#endif
