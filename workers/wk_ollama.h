// The ollama provider: POST <base_url>/api/chat (native API). Translates OpenAI chat
// requests to Ollama, and replies and NDJSON stream lines back to OpenAI (pure, unit-tested).
#ifndef AIGW_WK_OLLAMA_H
#define AIGW_WK_OLLAMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "wk_compl.h"
#include "wk_stream.h"
#include "wk_attempt.h"

//  Translate an OpenAI chat request into an Ollama /api/chat request in out:
//  {model, messages (content as a string, data-URL images as images, tool
//  calls with object arguments), stream, options {temperature, top_p, seed,
//  num_predict, stop, presence/frequency_penalty}, tools, format from
//  response_format}. Returns 0, or -1 with a reason in err (a bad request).
int wk_ollama_request (const char *req, size_t len, const char *upstream_model, bool stream,
                       buf_t *out, char *err, size_t errlen);

//  Translate a 2xx non-streamed /api/chat reply into a chat.completion with the
//  given id and created. Returns 0, or -1 with a reason in err.
int wk_ollama_response (const char *body, size_t len, const char *id, int64_t created,
                        buf_t *out, wk_usage_t *usage, char *err, size_t errlen);

//  Stream event handler (wk_stream_event_fn) for one NDJSON line: content and
//  tool calls become chunks, done:true gives the finish chunk and usage and
//  ends it, an "error" fails it. The stream's compl.id must be set first.
int wk_ollama_stream_event (wk_stream_t *s, const char *event, const char *data, size_t len);

//  The Ollama /api/chat provider adapter (wk_provider_for).
extern const wk_provider_t wk_ollama_provider;

#endif
