// Token usage of an attempt for its RESULT or ERROR: the upstream's counts where it
// reported them, else estimates (prompt from the request text, completion from CHUNKs).
#ifndef AIGW_WK_USAGE_H
#define AIGW_WK_USAGE_H

#include <stddef.h>
#include <stdint.h>

#include "aigw.pb-c.h"
#include "wk_attempt.h"

#define WK_USAGE_BYTES_PER_TOKEN 4

//  Estimated tokens of that many bytes of text: bytes / 4, rounded up.
uint32_t wk_usage_tokens (uint64_t bytes);

//  Estimated prompt tokens of a chat request: the bytes of messages[].content (a
//  string, or the text of its parts) by wk_usage_tokens. 0 if req is not a JSON object.
uint32_t wk_usage_prompt_estimate (const char *req, size_t len);

//  The sum of measure(text) over the text of every messages[].content of the request
//  (a string, or the text of its {type, text} parts): the one walk of a request's
//  prompt text (bytes here, words for the sim provider). -1 if req is not a JSON object.
typedef uint64_t (wk_usage_measure_fn) (const char *text, size_t len);
int64_t wk_usage_prompt_sum (const char *req, size_t len, wk_usage_measure_fn *measure);

//  Estimated completion tokens of a chat.completion: the bytes of every choice's
//  message content, refusal and tool call arguments by wk_usage_tokens.
uint32_t wk_usage_completion_estimate (const char *json, size_t len);

//  The usage attempt a reports now into out (both counts always set). json: the
//  RESULT's chat.completion, or NULL for an ERROR (what was consumed so far). Counts
//  the upstream reported (a->used) are kept; the others are estimated (a->prompt_est;
//  the CHUNKs sent; for a whole reply, its text) and out->estimated is set. An
//  attempt whose request never reached the model (!a->reached) consumed nothing.
void wk_usage_fill (const wk_attempt_t *a, const char *json, size_t len, Aigw__Usage *out);

#endif
