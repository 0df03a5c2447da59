// The anthropic provider: POST <base_url>/messages (Messages API). Translates OpenAI chat
// requests to Anthropic, and replies and SSE stream events back to OpenAI (pure, unit-tested).
#ifndef AIGW_WK_ANTHROPIC_H
#define AIGW_WK_ANTHROPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "wk_compl.h"
#include "wk_stream.h"
#include "wk_attempt.h"

#define WK_ANTHROPIC_VERSION "2023-06-01"

//  Translate an OpenAI chat request into an Anthropic Messages request in out:
//  system/developer messages joined into "system"; user and assistant messages
//  kept (text and image parts, assistant tool_calls as tool_use blocks); tool
//  messages as tool_result blocks of a user message; max_tokens from
//  max_completion_tokens, max_tokens, else default_max_tokens; temperature,
//  top_p, stop -> stop_sequences, tools, tool_choice, user. Returns 0, or -1
//  with a reason in err (a bad request).
int wk_anthropic_request (const char *req, size_t len, const char *upstream_model,
                          uint32_t default_max_tokens, bool stream, buf_t *out,
                          char *err, size_t errlen);

//  Translate a 2xx Messages reply into an OpenAI chat.completion in out (text
//  joined, tool_use blocks as tool_calls, stop_reason mapped, usage). Returns 0,
//  or -1 with a reason in err.
int wk_anthropic_response (const char *body, size_t len, int64_t created, buf_t *out,
                           wk_usage_t *usage, char *err, size_t errlen);

//  OpenAI finish_reason for an Anthropic stop_reason (NULL gives "stop").
const char *wk_anthropic_finish (const char *stop_reason);

//  Stream event handler (wk_stream_event_fn) for the Messages SSE stream:
//  text_delta and tool_use pieces become chunks, message_delta gives the
//  finish chunk and usage, message_stop ends it, error fails it.
int wk_anthropic_stream_event (wk_stream_t *s, const char *event, const char *data, size_t len);

//  The Anthropic messages provider adapter (wk_provider_for).
extern const wk_provider_t wk_anthropic_provider;

#endif
