// aigw broker: one single-threaded event loop owning the client ROUTER (frontend),
// the worker ROUTER (backend) and the metrics PUB. Jobs, attempts, worker pools,
// heartbeats, deadlines and the race policy all live here.
#ifndef AIGW_BROKER_H
#define AIGW_BROKER_H

#include <stdint.h>

#include "cfg.h"

//  Every counter the broker keeps (name, then meaning). Only the loop thread writes them.
#define BROKER_COUNTERS(X) \
    X (jobs_accepted)         /* SUBMITs that became jobs */ \
    X (jobs_rejected)         /* SUBMITs answered ERR_BAD_REQUEST */ \
    X (jobs_won)              /* answered RESULT */ \
    X (jobs_failed)           /* answered ERROR, not timeout/cancel */ \
    X (jobs_timeout)          /* answered ERR_TIMEOUT */ \
    X (jobs_cancelled)        /* answered ERR_CANCELLED */ \
    X (attempts_started) \
    X (attempts_won) \
    X (attempts_cancelled)    /* losers and attempts of ended jobs */ \
    X (attempts_failed) \
    X (attempts_redispatched) /* worker lost, started again */ \
    X (attempts_retried)      /* retries started after a retryable failure */ \
    X (attempts_hedged)       /* backups started by the hedge timer */ \
    X (attempts_skipped)      /* targets not started: cooling down */ \
    X (hedges_suppressed)     /* hedges the budget refused */ \
    X (retries_suppressed)    /* retries the budget refused */ \
    X (jobs_cooldown)         /* jobs failed at once: every target cooling (in jobs_failed) */ \
    X (breaker_trips)         /* times a target started cooling down */ \
    X (late_replies)          /* RESULT/ERROR/CHUNK for an attempt no longer live */ \
    X (cancel_acks)           /* ERROR(ERR_CANCELLED) after our CANCEL */ \
    X (malformed)             /* dropped messages */ \
    X (unknown_worker)        /* messages from unregistered workers (sent DISCONNECT) */ \
    X (denied_clients)        /* frontend messages from certificates not in fabric/clients */ \
    X (denied_models)         /* models in READYs that fabric/workers does not allow */ \
    X (denied_readys)         /* READYs refused: no model left, or no known certificate */ \
    X (denied_handshakes)     /* connections refused at the CURVE handshake */ \
    X (workers_joined) \
    X (workers_lost) \
    X (send_failures)         /* sends that failed (peer gone or pipe full) */ \
    X (send_full)             /* of which refused because a worker's pipe was full */ \
    X (spend_sent)            /* SPENDs sent: a cancelled attempt's usage after its answer */ \
    X (spend_lost)            /* SPENDs owed but not sent: tomb overwritten, or send failed */ \
    X (events_published)      /* job and worker events handed to the metrics PUB */

typedef struct {
#define BROKER_COUNTER_FIELD(name) uint64_t name;
    BROKER_COUNTERS (BROKER_COUNTER_FIELD)
#undef BROKER_COUNTER_FIELD
} broker_counters_t;

typedef struct broker_t broker_t;

//  Create a broker and bind cfg->broker.frontend, backend and metrics. zmq_ctx is
//  the context to use (NULL: the broker makes and owns one; tests pass theirs to use
//  inproc://). Returns NULL after logging why (e.g. an endpoint in use).
broker_t *broker_new (const cfg_t *cfg, void *zmq_ctx);
//  Close sockets and free everything. Safe with NULL, nulls the pointer.
void broker_destroy (broker_t **self_p);

//  Run the event loop until broker_stop. On stop, answers every open job with
//  ERR_UNAVAILABLE, sends DISCONNECT to workers and returns 0; -1 on a fatal error.
//  May run on another thread than broker_new's (not both at once).
int broker_run (broker_t *self);
//  Ask the loop to stop. Thread-safe and async-signal-safe.
void broker_stop (broker_t *self);
//  Ask the loop to log its counter summary. Thread-safe and async-signal-safe.
void broker_request_summary (broker_t *self);

//  Counters; read them from the loop's thread or after broker_run returned.
const broker_counters_t *broker_counters (const broker_t *self);
//  Jobs and workers live now (same rule).
uint64_t broker_jobs_in_flight (const broker_t *self);
uint64_t broker_workers (const broker_t *self);
//  Log one summary line of the counters.
void broker_log_summary (const broker_t *self);

#endif
