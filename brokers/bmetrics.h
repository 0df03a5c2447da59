// The broker's metrics stream: `metrics` once a second, a `job` event per finished
// job and `worker` events on join/leave, as msgpack maps (docs/metrics-stream.md).
// An encoder only: callers hand it what to show as the views below (all borrowed);
// it reads nothing else of the broker, and calls nothing of it.
#ifndef AIGW_BMETRICS_H
#define AIGW_BMETRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bpub.h"
#include "broker_counters.h"
#include "dsp.h"
#include "race.h"

typedef struct bmetrics_t bmetrics_t;

//  A worker as the stream shows it.
typedef struct {
    const char *name;
    const dsp_worker_t *dw;         // its models and credits; NULL once dead
    bool alive;
    int64_t last_seen;              // when its last message came (µs)
    uint64_t completed, failed, cancelled;  // from its last HEARTBEAT
} bmetrics_worker_t;

//  What the once-a-second `metrics` message shows.
typedef struct {
    const char *broker_id;
    uint64_t instance;              // random at start: shown as 16 hex digits
    int64_t started;                // when the loop began (µs)
    uint64_t jobs_in_flight;
    const broker_counters_t *counters;
    const dsp_t *dsp;               // the models; each one's model_stats_t (bstats.h) as user
    const bmetrics_worker_t *workers;   // the live workers
    size_t nworkers;
} bmetrics_tick_t;

//  How a job ended, for the `job` event.
typedef enum {
    BM_JOB_WON = 0,
    BM_JOB_FAILED,
    BM_JOB_TIMEOUT,
    BM_JOB_CANCELLED,
} bm_outcome_t;

//  A job that is answering, as its `job` event shows it.
typedef struct {
    uint64_t job_id;                // the client's id
    const race_t *race;             // its attempts, winner, policy
    const char *const *targets;     // target i's model name
    size_t ntargets;
    const uint64_t *attempt_ids;    // attempt i's id
    const char *const *workers;     // attempt i's worker, NULL if it reached none
    int64_t accepted;               // the origin of its times (µs)
    bm_outcome_t outcome;
    int code;                       // the client's error (BM_JOB_WON: ignored)
    const char *message;            // its text (BM_JOB_WON: ignored)
    uint64_t winner_tokens;         // tokens the winner produced (0 without one)
    uint64_t tokens_saved, tokens_wasted;
    double cost_usd;                // of its attempts whose usage is known
} bmetrics_job_t;

//  An encoder publishing on pub (borrowed: must outlive it). NULL if out of memory.
bmetrics_t *bmetrics_new (bpub_t *pub);
//  Safe with NULL, nulls the pointer.
void bmetrics_destroy (bmetrics_t **self_p);

//  True if someone subscribed to topic ("metrics", "job", "worker").
bool bmetrics_wants (const bmetrics_t *self, const char *topic);
//  Publish the `metrics` message (if anyone subscribed).
void bmetrics_tick (bmetrics_t *self, const bmetrics_tick_t *tick, int64_t now);
//  Publish a job's `job` event. Returns true if it was handed to the PUB.
bool bmetrics_job (bmetrics_t *self, const bmetrics_job_t *job, int64_t now);
//  Publish a `worker` event: event "join" or "leave", reason may be NULL. Call
//  before the worker's dispatcher record is removed. Returns true if handed to the PUB.
bool bmetrics_worker (bmetrics_t *self, const bmetrics_worker_t *w, const char *event,
                      const char *reason);

#endif
