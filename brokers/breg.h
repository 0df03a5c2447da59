// The worker registry: one record per registered worker (by routing id), READY and
// HEARTBEAT, liveness, sends to workers, and taking a dead worker out of service.
// Knows nothing of jobs: the attempts a dead worker held go to its hooks.
#ifndef AIGW_BREG_H
#define AIGW_BREG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bmetrics.h"
#include "bpeer.h"
#include "broker_counters.h"
#include "cfg.h"
#include "curve.h"
#include "dsp.h"
#include "wire.h"

#define BREG_NAME_MAX 48            // worker_id kept for logs and events

typedef struct breg_t breg_t;
typedef struct worker_t worker_t;   // a registered worker (owned by the registry)

//  What the registry works with (all borrowed: they must outlive it).
typedef struct {
    void *backend;                  // the worker ROUTER
    dsp_t *dsp;                     // workers are added to it and removed from it
    const cfg_t *prices;            // health settings of a new model's statistics
    curve_server_t *curve;          // NULL: fabric/curve off
    bpeer_t *peers;                 // malformed messages, refused certificates
    bmetrics_t *metrics;            // `worker` events
    broker_counters_t *c;
    int64_t expiry_us;              // a worker silent this long is dead
    uint64_t instance;              // the broker's instance id, in every HEARTBEAT it sends
} breg_env_t;

//  Upward notifications: a worker taken out of service leaves attempts behind.
//  Both lists are detached from the dispatcher and linked by ->next; they belong
//  to the caller (the jobs), who must not re-enter a job from the hook.
typedef struct {
    //  The attempts the worker was running; reason: "worker NAME lost: WHY".
    void (*lost) (void *arg, dsp_item_t *items, const char *reason);
    //  Queued attempts whose model now has no worker.
    void (*orphaned) (void *arg, dsp_item_t *items);
    void *arg;
} breg_hooks_t;

//  NULL if out of memory.
breg_t *breg_new (const breg_env_t *env);
//  Frees every worker record. Safe with NULL, nulls the pointer.
void breg_destroy (breg_t **self_p);
void breg_set_hooks (breg_t *self, const breg_hooks_t *hooks);

//  READY: validate the hello, register the worker (a previous one of its routing id
//  is killed). Returns the new worker, for the caller to give it queued work; NULL
//  if refused (logged, counted; a peer whose models are all refused gets DISCONNECT).
worker_t *breg_ready (breg_t *self, wire_msg_t *msg, int64_t now);
//  The registered worker that sent msg (not a READY), now known alive; NULL if
//  none (counted as unknown_worker, sent DISCONNECT unless it said DISCONNECT), or if
//  its routing id came back with another certificate (then it is killed).
worker_t *breg_sender (breg_t *self, const wire_msg_t *msg, int64_t now);
//  A HEARTBEAT from w: keep the counters its body carries; a capacity in it is w's
//  new capacity here (0: send it nothing now). The caller hands w queued work after.
void breg_heartbeat (breg_t *self, worker_t *w, wire_msg_t *msg);
//  Every heartbeat interval: expire silent workers, heartbeat the rest (BrokerBeat).
void breg_tick (breg_t *self, int64_t now);
//  The connection (fd, generation: bconn.h) w's messages arrive on; fd -1: unknown.
void breg_worker_set_conn (worker_t *w, int fd, uint32_t gen);
int breg_worker_fd (const worker_t *w);
//  The connection (fd, gen) closed: kill the workers recorded on it (counted as
//  workers_disconnected). Returns how many.
size_t breg_conn_closed (breg_t *self, int fd, uint32_t gen);

//  Send to a worker. A send refused because the worker's pipe is full (EAGAIN)
//  returns -1 with errno EAGAIN and leaves the worker alone; any other failure
//  means the worker is gone: it is killed (errno EHOSTUNREACH). Returns 0 / -1.
int breg_send (breg_t *self, worker_t *w, uint8_t cmd, const ProtobufCMessage *body,
               zmq_msg_t *payload);
//  Take a worker out of service now: `leave` event, its attempts to the hooks. Its
//  record stays readable (dead) until breg_reap.
void breg_kill (breg_t *self, worker_t *w, const char *why);
//  True if killed workers wait for breg_reap.
bool breg_has_dead (const breg_t *self);
//  Free the records of killed workers. Call where no worker pointer is held.
void breg_reap (breg_t *self);
//  On stop: DISCONNECT to every live worker.
void breg_goodbye (breg_t *self);

//  The live workers as the metrics stream shows them, in registry order. The array
//  belongs to the registry (valid until the next call); NULL and *count 0 if out of memory.
const bmetrics_worker_t *breg_views (breg_t *self, size_t *count);

const char *breg_worker_name (const worker_t *w);
//  Its dispatcher record; NULL once dead.
dsp_worker_t *breg_worker_dsp (const worker_t *w);
bool breg_worker_dead (const worker_t *w);

#endif
