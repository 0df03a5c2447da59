// aigw broker: one single-threaded event loop owning the client ROUTER (frontend),
// the worker ROUTER (backend) and the metrics PUB. The loop (broker.c) drives the
// jobs (bjobs.c), the worker registry (breg.c) and the metrics stream (bmetrics.c).
#ifndef AIGW_BROKER_H
#define AIGW_BROKER_H

#include <stdint.h>

#include "broker_counters.h"    // broker_counters_t, and what each counter means
#include "cfg.h"

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
