// Broker internals shared by broker.c (loop, tables, jobs) and bmetrics.c (the
// metrics stream). Not a public API: only these two files include it.
#ifndef AIGW_BROKER_INT_H
#define AIGW_BROKER_INT_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <zmq.h>

#include "aigw.pb-c.h"
#include "hmap.h"
#include "bpub.h"
#include "broker.h"
#include "curve.h"
#include "dsp.h"
#include "health.h"
#include "hist.h"
#include "race.h"
#include "theap.h"
#include "wire.h"

#define BROKER_WORKER_NAME_MAX 48   // worker_id kept for logs and AttemptInfo
#define BROKER_DRAIN_MAX 512        // messages per socket per wake-up (fairness)
#define BROKER_LOGGED_PEERS 64      // malformed-peer log suppression ring
#define BROKER_METRICS_US 1000000   // metrics publish interval
#define BROKER_POOL_MAX 4096        // free jobs/attempts kept for reuse
#define BROKER_MSG_MAX 1024         // error messages to clients
#define BROKER_TOMBS 4096           // cancelled attempts remembered for late tokens and usage
#define BROKER_UPSTREAM_CODE_MAX 64 // a provider's error code kept per attempt
#define BROKER_ACCOUNT_MAX 128      // Job.account bytes kept (a longer one is refused)

#define s_container(ptr, type, member) ((type *) ((char *) (ptr) - offsetof (type, member)))

typedef struct job_t job_t;

//  Per-model statistics (dsp_model_user). Attempt outcomes are added when the job ends.
typedef struct {
    hist_t latency;                 // attempt start -> RESULT, winners only (µs)
    hist_t ttft;                    // attempt start -> first CHUNK (µs)
    uint64_t wins;                  // attempts that won
    uint64_t losses;                // attempts cancelled because another won
    uint64_t errors;                // attempts that failed (incl. TTFT, worker lost)
    uint64_t cancelled;             // every cancelled attempt (losses included)
    uint64_t tokens_saved;          // estimate, see docs/metrics-stream.md
    uint64_t tokens_wasted;         // tokens losers had produced when cancelled
    double cost_usd;                // cfg_cost of every attempt whose usage is known
    double cost_saved_usd;          // tokens_saved at the model's output price
    uint64_t p95_us, p95_n;         // latency p95 and sample count, refreshed each second
    uint64_t retries;               // retries started on it
    uint64_t hedges;                // backups started on it
    health_t health;                // cooldown and hedge budget
} model_stats_t;

typedef struct worker_t {
    hmap_node_t node;              // in workers table (by routing id)
    uint8_t rid[WIRE_ID_MAX];
    size_t rid_len;
    char name[BROKER_WORKER_NAME_MAX];
    int64_t expiry;                 // dead when now passes this
    dsp_worker_t *dw;               // NULL once dead
    bool dead;                      // killed; freed at the next reap
    char key[WIRE_USER_ID_MAX];     // CURVE public key that registered it ("" without CURVE)
    uint64_t completed, failed, cancelled;  // from the worker's last HEARTBEAT
    struct worker_t *prev, *next;   // live list, or graveyard (next only)
} worker_t;

typedef struct attempt_t {
    hmap_node_t node;              // in attempts table (by id)
    dsp_item_t item;
    uint64_t id;
    job_t *job;
    uint8_t index;                  // race attempt index
    struct attempt_t *free_next;
} attempt_t;

struct job_t {
    hmap_node_t node;              // in jobs table (by client id + job_id)
    theap_node_t timer;
    uint64_t job_id;
    uint8_t cid[WIRE_ID_MAX];
    size_t cid_len;
    Aigw__Job *req;                 // decoded SUBMIT (owns target names)
    zmq_msg_t payload;              // request JSON, shared by reference with workers
    int64_t accepted;
    uint32_t chunk_seq;
    const Aigw__Result *result;     // worker's RESULT while FINISH_RESULT runs (borrowed)
    uint32_t usage_known;           // bit i: att_usage[i] holds attempt i's usage
    race_t race;
    attempt_t *att[RACE_ATTEMPTS_MAX];
    uint64_t att_id[RACE_ATTEMPTS_MAX];
    char att_worker[RACE_ATTEMPTS_MAX][BROKER_WORKER_NAME_MAX];
    Aigw__Usage att_usage[RACE_ATTEMPTS_MAX];   // from its RESULT or ERROR (usage_known)
    //  What the provider said when an attempt failed (its ERROR), for the answer
    uint16_t att_upstream_status[RACE_ATTEMPTS_MAX];        // 0 = none
    uint32_t att_retry_after_ms[RACE_ATTEMPTS_MAX];         // 0 = none
    char att_upstream_code[RACE_ATTEMPTS_MAX][BROKER_UPSTREAM_CODE_MAX];
    model_stats_t *tst[RACE_TARGETS_MAX];   // each target's statistics, NULL if no worker yet
    uint32_t probe_mask;            // bit i: attempt i is its target's half-open probe
    broker_t *owner;
    job_t *free_next;
};

_Static_assert (RACE_ATTEMPTS_MAX <= 32, "job_t.usage_known is a 32-bit mask");

//  An attempt to fail at the next reap (its worker died, its model lost its last
//  worker, or its TASK could not be sent), so no job is re-entered while it is
//  being processed.
typedef struct {
    uint64_t attempt_id;
    int code;
    bool retry;                     // the target may be started again once
    char reason[128];
} pending_t;

//  A cancelled attempt whose worker may still deliver tokens (late CHUNKs, a late
//  RESULT's usage) before it sees the CANCEL: they count as wasted for its model.
//  Its last word (cancel acknowledgement, late RESULT or ERROR) carries the usage it
//  consumed: that goes into its job's answer if the job is still open, else into a
//  SPEND to the job's client (when the job has an account).
typedef struct {
    uint64_t attempt_id;            // 0: free
    model_stats_t *st;
    const char *model;              // its target (the dispatcher's copy of the name)
    uint32_t chunks;                // late chunks counted so far
    uint64_t job_id;                // the client's id
    uint8_t index;                  // attempt index in its job
    uint8_t cid_len;
    uint8_t cid[WIRE_ID_MAX];       // the job's client (routing id)
    char account[BROKER_ACCOUNT_MAX];   // Job.account, "" = none (no SPEND)
} tomb_t;

struct broker_t {
    void *ctx;
    bool own_ctx;
    void *frontend, *backend;
    bpub_t pub;                     // metrics stream (XPUB)
    curve_server_t *curve;          // NULL: fabric/curve off
    void *monitor[3];               // PAIRs reading handshake failures (CURVE only)
    msgpack_sbuffer sbuf;           // reused encode buffer
    int wake[2];                    // pipe: 'q' stop, 'u' summary
    bool stopping;
    //  config
    char ep_front[CFG_STR_MAX], ep_back[CFG_STR_MAX], ep_metrics[CFG_STR_MAX];
    int64_t heartbeat_us, expiry_us, deadline_us, max_deadline_us;
    uint32_t hedge_default_ms;
    uint32_t retry_backoff_ms;
    char broker_id[96];
    //  state
    dsp_t *dsp;
    hmap_t jobs, attempts, workers;
    worker_t *worker_list, *graveyard;
    theap_t timers;
    uint64_t next_attempt_id;
    pending_t *pending;
    size_t npending, pending_cap;
    job_t *free_jobs;
    attempt_t *free_attempts;
    size_t nfree_jobs, nfree_attempts;
    tomb_t tombs[BROKER_TOMBS];     // direct-mapped by attempt id
    cfg_t *prices;                  // the config's models, for cfg_cost (owned)
    uint64_t logged_peers[BROKER_LOGGED_PEERS];
    size_t logged_next;
    uint64_t denied_peers[BROKER_LOGGED_PEERS];    // refused certificates already logged
    size_t denied_next;
    int64_t next_heartbeat, next_metrics;
    int64_t started;                // when broker_run began
    broker_counters_t c;
};

//  How a job ended, for the `job` event.
typedef enum {
    BM_JOB_WON = 0,
    BM_JOB_FAILED,
    BM_JOB_TIMEOUT,
    BM_JOB_CANCELLED,
} bm_outcome_t;

//  Statistics of a model by name, NULL if no worker ever announced it.
model_stats_t *broker_stats (broker_t *self, const char *model);

//  A copy of cfg's models (names and prices) for cfg_cost, so the broker does not
//  keep the caller's config. Caller owns the result (cfg_destroy); NULL if out of memory.
cfg_t *bmetrics_prices (const cfg_t *cfg);
//  Cost in USD of a usage at model's prices (0 when unknown or unpriced).
double bmetrics_cost (broker_t *self, const char *model, const Aigw__Usage *u);
//  A cancelled attempt's usage arrived after its job's answer: add its cost to st.
void bmetrics_late_usage (broker_t *self, model_stats_t *st, const char *model,
                          const Aigw__Usage *u);

//  Refresh each model's latency p95 (hedge auto) so SUBMIT does not scan histograms.
void bmetrics_refresh_p95 (broker_t *self);
//  Publish the once-a-second `metrics` message (if anyone subscribed).
void bmetrics_tick (broker_t *self, int64_t now);
//  A job is answering: add its attempts to the per-model statistics and publish its
//  `job` event. code/message: the client's error (BM_JOB_WON: ignored).
void bmetrics_job (broker_t *self, job_t *job, bm_outcome_t outcome, int code,
                   const char *message, int64_t now);
//  Publish a `worker` event: event "join" or "leave", reason may be NULL. Call
//  before the worker's dispatcher record is removed.
void bmetrics_worker (broker_t *self, const worker_t *w, const char *event, const char *reason);

#endif
