// Chat-completions request parsing: validate the OpenAI body, resolve `model` (model,
// group or comma list) and the optional "aigw" overrides into a job description.
#ifndef AIGW_EDGE_REQUEST_H
#define AIGW_EDGE_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "aigw.pb-c.h"

#define EDGE_MODEL_FIELD_MAX (CFG_TARGETS_MAX * CFG_NAME_MAX)   // longest `model` accepted

//  Is this name a model the broker serves right now (e.g. an agent's dynamic name)?
typedef bool (edge_live_fn) (void *arg, const char *name);

//  Why a request was refused: HTTP status, OpenAI error code, human message.
typedef struct {
    int status;                         // 400, 404, 413, ...
    const char *code;                   // static string, e.g. "model_not_found"
    char message[256];
} edge_err_t;

typedef struct {
    char model[EDGE_MODEL_FIELD_MAX];   // the request's `model` as given
    char targets[CFG_TARGETS_MAX][CFG_NAME_MAX];
    char *target_ptrs[CFG_TARGETS_MAX]; // point into targets (for Aigw__Job)
    size_t ntargets;
    cfg_policy_t policy;
    bool hedge_set;                     // hedge_delay_ms given (else broker auto/default)
    uint32_t hedge_delay_ms;
    uint32_t deadline_ms;               // 0 = broker default
    uint32_t ttft_timeout_ms;           // 0 = none
    bool retries_set;                   // else the broker's default (0 for a race of several, 1)
    uint32_t retries;                   // per target, 0..CFG_RETRIES_MAX
    uint32_t retry_backoff_ms;          // 0 = broker default
    bool stream;                        // answer with Server-Sent Events
    bool include_usage;                 // stream_options.include_usage (streams only)
    char *payload;                      // request JSON without "aigw"; owned
    size_t payload_len;
} edge_job_t;

//  Parse and validate a request body of len bytes against cfg. live may be NULL
//  (only config names are known then). Returns 0 and fills job (release it with
//  edge_request_reset), or -1 and fills err. Never reads past len; a body nested deeper
//  than cfg->edge.max_json_depth is refused (400 json_too_deep) before cJSON sees it.
int edge_request_parse (const cfg_t *cfg, const char *body, size_t len,
                        edge_live_fn *live, void *live_arg,
                        edge_job_t *job, edge_err_t *err);

//  Free what a parsed job owns; safe on a zeroed or already reset job.
void edge_request_reset (edge_job_t *job);

//  Fill a SUBMIT body from a parsed job. pb keeps pointers into job (no copies);
//  job must outlive pb.
void edge_request_to_pb (edge_job_t *job, uint64_t job_id, Aigw__Job *pb);

#endif
