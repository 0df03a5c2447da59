// The sim provider: no network; seeded latency (lognormal around a median), injected
// failures and a fixed reply text per model, completed by a timer in the event loop.
#ifndef AIGW_WK_SIM_H
#define AIGW_WK_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "buf.h"
#include "wk_attempt.h"

#define WK_SIM_MAX_LATENCY_MS 3600000u   // draws are clamped to one hour

typedef struct {
    uint32_t latency_ms;        // when the attempt completes
    bool fail;                  // inject a failure instead of a reply
} wk_sim_draw_t;

//  (Its draws use common/rng.h: rng_next, rng_uniform.)

//  Draw the next attempt's fate for model m from the model's PRNG state.
//  Same seed, same sequence of draws.
void wk_sim_draw (uint64_t *state, const cfg_model_t *m, wk_sim_draw_t *out);

//  Whitespace-separated words in s[0..len).
uint32_t wk_sim_count_words (const char *s, size_t len);

//  Words in the request's messages[].content (string or text parts). Returns 0
//  and sets *tokens, or -1 if req is not a JSON object.
int wk_sim_prompt_tokens (const char *req, size_t len, uint32_t *tokens);

//  Append an OpenAI chat.completion JSON (id, object, created, model, one
//  assistant choice with finish_reason stop, usage). Returns 0 / -1.
int wk_sim_build_response (buf_t *out, uint64_t attempt_id, const char *model,
                           const char *text, int64_t created,
                           uint32_t prompt_tokens, uint32_t completion_tokens);

//  Streaming: the end of the piece of text that follows offset pos (the spaces
//  before the next word and the word; the last word takes the trailing spaces
//  too). Returns pos when no word is left. Pieces concatenate to the text.
size_t wk_sim_piece (const char *text, size_t len, size_t pos);

//  Append a chat.completion.chunk for a sim stream: one content piece, or (piece
//  NULL) an empty delta with finish. role adds "role":"assistant". 0 / -1.
int wk_sim_build_chunk (buf_t *out, uint64_t attempt_id, const char *model, int64_t created,
                        bool role, const char *piece, size_t len, const char *finish);

//  The sim provider adapter (wk_provider_for).
extern const wk_provider_t wk_sim_provider;

#endif
