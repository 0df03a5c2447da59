// aigw-worker core: one event loop driving a curl multi handle and one DEALER socket per
// broker backend; serves the configured models through provider adapters.
#ifndef AIGW_WORKER_H
#define AIGW_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"

#define WORKER_VERSION "0.1.0"
#define WORKER_BACKOFF_MIN_MS 100       // first reconnect delay while a broker is silent
#define WORKER_BACKOFF_MAX_MS 32000
#define WORKER_CAPACITY_MAX 100000

typedef struct _worker_t worker_t;

typedef struct {
    const char *id;             // NULL = "<hostname>-<pid>"
    const char *broker;         // comma list of endpoints (1..CFG_BROKERS_MAX),
                                // NULL = cfg->worker.broker
    const char *models;         // comma list of model names, NULL = every model in cfg
    uint32_t capacity;          // 0 = cfg->worker.capacity
} worker_opts_t;

typedef struct {
    uint64_t tasks;             // TASKs accepted (attempts started)
    uint64_t completed;         // RESULTs sent
    uint64_t streams;           // attempts started with Task.stream
    uint64_t chunks;            // CHUNKs sent
    uint64_t failed;            // attempts that ended in ERROR (not cancels)
    uint64_t cancelled;         // attempts aborted by CANCEL
    uint64_t rejected;          // TASKs refused: unknown model, over capacity, no payload
    uint64_t full;              // of these: every slot was taken ("worker full")
    uint64_t orphaned;          // attempts dropped when their broker was lost
    uint64_t unknown_cancels;   // CANCEL for an attempt not running here
    uint64_t malformed;         // broker messages dropped
    uint64_t send_errors;       // messages the socket refused
    uint64_t heartbeats;        // HEARTBEATs sent (capacity updates included)
    uint64_t capacity_updates;  // HEARTBEATs sent because a broker's share changed
    uint64_t readies;           // READYs sent
    uint64_t connects;          // sockets opened (1 per broker + reconnects)
    uint64_t lost_disconnected; // broker losses: the connection dropped (DISCONNECTED)
    uint64_t lost_restarted;    //   a new BrokerBeat.instance in a HEARTBEAT
    uint64_t lost_silent;       //   heartbeat silence
    uint64_t lost_disconnect;   //   a DISCONNECT from the broker
    uint64_t loops;             // event-loop wake-ups
} worker_stats_t;

//  Create a worker for cfg (borrowed; must outlive the worker). Returns NULL
//  and a one-line message in err on bad options (unknown model, no models...).
worker_t *worker_new (const cfg_t *cfg, const worker_opts_t *opts, char *err, size_t errlen);

//  Abort anything running and free the worker. Safe with NULL; nulls *self_p.
void worker_destroy (worker_t **self_p);

//  Run the event loop until worker_stop. Sends DISCONNECT to every connected broker on
//  the way out. Returns 0, or -1 if a broker endpoint cannot be used.
int worker_run (worker_t *self);

//  Ask the loop to stop. Callable from any thread or a signal handler.
void worker_stop (worker_t *self);

//  Counters snapshot (exact after worker_run returned; approximate while running).
void worker_stats (worker_t *self, worker_stats_t *out);

const char *worker_id (worker_t *self);

#endif
