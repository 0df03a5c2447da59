// HTTP reply bodies: the success body (upstream JSON plus an "aigw" object), OpenAI
// error bodies, the /v1/models list, and the ErrorCode -> HTTP status mapping.
#ifndef AIGW_EDGE_REPLY_H
#define AIGW_EDGE_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "cfg.h"
#include "status.h"
#include "aigw.pb-c.h"

typedef struct {
    int status;                         // HTTP status
    char *body;                         // JSON, owned; free with edge_reply_reset
    size_t len;
    char winner[CFG_NAME_MAX];          // x-aigw-winner value ("" = no header)
    uint32_t retry_after_s;             // Retry-After value (0 = no header)
} edge_reply_t;

//  HTTP status for a broker error code (docs/protocol.md); 500 for unknown codes.
int edge_reply_status (Aigw__ErrorCode code);

//  OpenAI error "type" for an HTTP status, e.g. "invalid_request_error".
const char *edge_reply_error_type (int status);

//  Short name of an error code for bodies and logs ("timeout", "upstream_error", ...).
const char *edge_reply_code_name (Aigw__ErrorCode code);

//  Retry-After for a failed job, in seconds (rounded up): the smallest the providers
//  gave among the rate-limited attempts; 0 = none.
uint32_t edge_reply_retry_after (const Aigw__Error *e);

//  Build the 200 reply from a RESULT: response_json with an "aigw" object added.
//  A response_json that is not a JSON object yields a 502 reply instead.
//  Returns 0, or -1 when out of memory (reply is then empty).
//  cfg (may be NULL) prices the attempts: usage and cost_usd per attempt and in total.
int edge_reply_result (edge_reply_t *reply, const Aigw__Result *res, cfg_policy_t policy,
                       const cfg_t *cfg);

//  Build an error reply from a broker ERROR, with each attempt listed in "aigw".
int edge_reply_error (edge_reply_t *reply, const Aigw__Error *err, cfg_policy_t policy,
                      const cfg_t *cfg);

//  The "aigw" object {"winner", "policy", "latency_ms", "attempts": [...]}; winner may
//  be NULL (null). With cfg (prices), each attempt gets "usage" and "cost_usd" and the
//  object "cost_usd" and "cost_final"; winner_usage stands in for the winner's own.
//  Caller owns the result; NULL when out of memory.
cJSON *edge_reply_aigw_json (const char *winner, cfg_policy_t policy, bool has_latency,
                             uint64_t latency_us, Aigw__AttemptInfo **attempts, size_t n,
                             const cfg_t *cfg, const Aigw__Usage *winner_usage);

//  Add "hedge_suppressed": true / "retry_suppressed": true to an "aigw" object (NULL
//  is fine) when the broker's hedge budget kept the job from hedging or retrying.
void edge_reply_aigw_budget (cJSON *aigw, bool hedge_suppressed, bool retry_suppressed);

//  The OpenAI error object for a broker ERROR: {"error": {...}, "aigw": {...}} (aigw
//  when there are attempts or a winner). Sets *status. Caller owns; NULL on OOM.
//  The mapping of what the providers said is in docs/errors.md.
cJSON *edge_reply_error_json (const Aigw__Error *e, cfg_policy_t policy, const char *winner,
                              int *status, const cfg_t *cfg);

//  {"error": {"message", "type", "code"}} for an error the edge decided. Caller owns.
cJSON *edge_reply_simple_json (int status, const char *code, const char *message);

//  Build an OpenAI error reply decided by the edge itself (no attempts).
int edge_reply_simple (edge_reply_t *reply, int status, const char *code, const char *message);

//  As edge_reply_simple with an explicit OpenAI error "type" (e.g. "insufficient_quota").
int edge_reply_typed (edge_reply_t *reply, int status, const char *type, const char *code,
                      const char *message);

//  Build the /v1/models list: models with a live worker and groups with at least
//  one live target. status may be NULL (nothing is live).
int edge_reply_models (edge_reply_t *reply, const cfg_t *cfg, const edge_status_t *status);

//  Build the /v1/models/{id} reply: one live model or group, else 404 model_not_found.
int edge_reply_model (edge_reply_t *reply, const cfg_t *cfg, const edge_status_t *status,
                      const char *id);

//  Build the /readyz reply: 200 when the broker answered recently (link_up) and at
//  least one worker is registered, else 503 with the reason.
int edge_reply_ready (edge_reply_t *reply, bool link_up, const edge_status_t *status,
                      const char *broker_ep);

//  Build a small JSON object reply {key: value, ...} from string pairs (n pairs).
int edge_reply_pairs (edge_reply_t *reply, int status, const char *const *pairs, size_t n);

//  Free the body; safe on a zeroed or already reset reply.
void edge_reply_reset (edge_reply_t *reply);

#endif
