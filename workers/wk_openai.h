// The openai provider: POST <base_url>/chat/completions on the loop's curl multi
// handle. Request rewriting, reply classification and stream events are pure (unit-tested).
#ifndef AIGW_WK_OPENAI_H
#define AIGW_WK_OPENAI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aigw.pb-c.h"
#include "buf.h"
#include "wk_errbody.h"
#include "wk_stream.h"
#include "wk_attempt.h"


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
//  is read by wk_errbody_parse.
int wk_openai_parse (long status, const char *body, size_t len, wk_errbody_reply_t *out);



//  Stream event handler (wk_stream_event_fn) for OpenAI SSE: [DONE] ends it; a
//  chunk with content, refusal, tool_calls or a finish_reason is forwarded as
//  it is; role-only and usage-only chunks are not; an "error" member, an
//  "object":"error" chunk or an "error" event fails it.
int wk_openai_stream_event (wk_stream_t *s, const char *event, const char *data, size_t len);

//  The OpenAI chat/completions provider adapter (wk_provider_for).
extern const wk_provider_t wk_openai_provider;

#endif
