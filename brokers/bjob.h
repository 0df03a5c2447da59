// One job: its record (job_t, and attempt_t for each attempt at a worker), its
// race's gate and the verdicts its attempts give their targets, what it keeps of
// each attempt's reply, and what it tells its client: RESULT, ERROR, forwarded
// CHUNKs, with the per-model accounting and the `job` event when it answers.
// The table of jobs, and what starts and stops attempts, is bjobs.c.
#ifndef AIGW_BJOB_H
#define AIGW_BJOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "aigw.pb-c.h"
#include "bmetrics.h"
#include "broker_counters.h"
#include "bstats.h"
#include "cfg.h"
#include "dsp.h"
#include "hmap.h"
#include "race.h"
#include "theap.h"
#include "wire.h"

#define BJOB_WORKER_NAME_MAX 48     // worker name kept per attempt (as breg.h keeps it)
#define BJOB_MSG_MAX 1024           // error messages to clients
#define BJOB_UPSTREAM_CODE_MAX 64   // a provider's error code kept per attempt
#define BJOB_ACCOUNT_MAX 128        // Job.account bytes kept (a longer one is refused)

typedef struct job_t job_t;

//  What jobs work with. Owned by the loop, which outlives every job; read only here.
typedef struct {
    void *frontend;                 // the client ROUTER: answers go there
    dsp_t *dsp;                     // models, with their statistics (bstats.h)
    const cfg_t *prices;            // models' prices, for costs
    bmetrics_t *metrics;            // `job` events
    broker_counters_t *c;
    int64_t deadline_us, max_deadline_us;   // a job's default deadline, and its cap
    uint32_t hedge_default_ms;      // hedge delay without a p95 to go by
    uint32_t retry_backoff_ms;      // retry backoff base unless the job says
    int64_t started;                // when the loop began (seeds the retry jitter)
} bjob_env_t;

//  An attempt handed to the dispatcher (queued, or running at a worker).
typedef struct attempt_t {
    hmap_node_t node;               // in attempts table (by id)
    dsp_item_t item;
    uint64_t id;
    job_t *job;
    uint8_t index;                  // race attempt index
    uint8_t bounces;                // times full workers sent it back (ERR_OVERLOADED)
    struct attempt_t *free_next;
} attempt_t;

struct job_t {
    hmap_node_t node;               // in jobs table (by client id + job_id)
    theap_node_t timer;
    uint64_t job_id;
    uint8_t cid[WIRE_ID_MAX];
    size_t cid_len;
    Aigw__Job *req;                 // decoded SUBMIT (owns target names)
    zmq_msg_t payload;              // request JSON, shared by reference with workers
    int64_t accepted;
    int conn_fd;                    // the client connection it came on (-1: not known),
    uint32_t conn_gen;              // and that connection's generation (bconn.h)
    uint32_t chunk_seq;
    const Aigw__Result *result;     // worker's RESULT while FINISH_RESULT runs (borrowed)
    uint32_t usage_known;           // bit i: att_usage[i] holds attempt i's usage
    race_t race;
    attempt_t *att[RACE_ATTEMPTS_MAX];
    uint64_t att_id[RACE_ATTEMPTS_MAX];
    char att_worker[RACE_ATTEMPTS_MAX][BJOB_WORKER_NAME_MAX];
    Aigw__Usage att_usage[RACE_ATTEMPTS_MAX];   // from its RESULT or ERROR (usage_known)
    //  What the provider said when an attempt failed (its ERROR), for the answer
    uint16_t att_upstream_status[RACE_ATTEMPTS_MAX];        // 0 = none
    uint32_t att_retry_after_ms[RACE_ATTEMPTS_MAX];         // 0 = none
    char att_upstream_code[RACE_ATTEMPTS_MAX][BJOB_UPSTREAM_CODE_MAX];
    model_stats_t *tst[RACE_TARGETS_MAX];   // each target's statistics, NULL if no worker yet
    uint32_t probe_mask;            // bit i: attempt i is its target's half-open probe
    const bjob_env_t *env;
    job_t *free_next;
};

_Static_assert (RACE_ATTEMPTS_MAX <= 32, "job_t.usage_known is a 32-bit mask");

//  ---------------------------------------------------------------------------
//  SUBMIT

//  Check a SUBMIT; returns NULL if fine, else why not.
const char *bjob_invalid (const Aigw__Job *req, const wire_msg_t *msg);
//  The race of a valid SUBMIT (without its gate).
void bjob_race_config (const bjob_env_t *env, const Aigw__Job *req, race_config_t *rc);

//  ---------------------------------------------------------------------------
//  Targets' health

//  The race's gate (race_gate_fn, arg: the job): a cooling target is skipped; a
//  hedge or retry needs a token of the target that pays for it. GO commits: a token
//  is taken, a half-open target's probe goes out.
race_gate_t bjob_gate (void *arg, size_t target, race_kind_t kind, int payer, int64_t now);

//  What an ended attempt says about its target: OK it answered, BAD it failed in a
//  way that is the provider's fault, NONE nothing (lost, cancelled, its worker died,
//  the client's bad request).
typedef enum { BJOB_NONE = 0, BJOB_OK, BJOB_BAD } bjob_verdict_t;

//  Give attempt index's verdict to its target's breaker (logs a trip).
void bjob_verdict (job_t *job, size_t index, bjob_verdict_t v, int64_t now);
//  A worker's failure code: is it the provider's fault?
bjob_verdict_t bjob_error_verdict (int code);
//  RACE_FAIL_RETRYABLE if a retry can succeed (docs/errors.md "Retries"), else 0.
unsigned bjob_retry_flags (int code, uint32_t status);
//  A worker's error code, ERR_UPSTREAM if it is not one we know.
int bjob_error_code (int code);

//  ---------------------------------------------------------------------------
//  Replies kept

//  True if u carries token counts.
bool bjob_usage_known (const Aigw__Usage *u);
//  Copy the counts only (a decoded message's unknown fields die with it).
void bjob_usage_copy (Aigw__Usage *dst, const Aigw__Usage *u);
//  Keep attempt index's usage for the job's answer (if the reply carried one).
void bjob_keep_usage (job_t *job, size_t index, const Aigw__Usage *u);
//  Keep what the provider said about a failed attempt (status, code, Retry-After).
void bjob_keep_upstream (job_t *job, size_t index, const Aigw__Error *err);

//  ---------------------------------------------------------------------------
//  The client

//  A CHUNK of attempt index the race accepted: its model's TTFT on the first one
//  (first), and forwarded to the client if the attempt is the stream's winner.
void bjob_chunk (job_t *job, size_t index, const Aigw__Chunk *in, bool first, int64_t now);
//  FINISH_RESULT: attempt index won; answer RESULT (job->result is its reply).
void bjob_answer_result (job_t *job, size_t index, int64_t now);
//  FINISH_ERROR: answer ERROR code; message NULL: the race's own text.
void bjob_answer_error (job_t *job, int code, const char *message, int64_t now);

#endif
