// Metrics bridge: one thread SUBscribes to the broker's metrics PUB, decodes each
// msgpack message once into JSON, fans it out to browser clients as SSE frames, keeps
// the latest broker snapshot for /metrics, and adds the edge's own `edge` event every
// second (docs/metrics-stream.md).
#ifndef AIGW_EDGE_BRIDGE_H
#define AIGW_EDGE_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bsnap.h"
#include "cfg.h"
#include "buf.h"
#include "emetrics.h"
#include "fanout.h"
#include "status.h"

#define BRIDGE_CLIENT_MSGS 256          // queued events per browser before it is dropped
#define BRIDGE_CLIENT_BYTES (1u << 20)  // queued bytes per browser before it is dropped
#define BRIDGE_MSG_MAX (1u << 20)       // larger stream messages (as JSON) are dropped
#define BRIDGE_TICK_MS 1000             // `edge` event period
#define BRIDGE_WINDOW 10                // seconds of history behind the `edge` rates

typedef struct _bridge_t bridge_t;

typedef struct {
    uint64_t received;                  // broker messages received
    uint64_t relayed[4];                // events sent to the fan-out: metrics, job, worker, edge
    uint64_t bad;                       // dropped: malformed, unknown topic or too large
} bridge_stats_t;

//  Is the broker link up? Called from the bridge thread.
typedef bool (bridge_up_fn) (void *arg);

//  Connect a SUB to endpoint (max_frame: ZMQ_MAXMSGSIZE) and start the thread. em,
//  box and up_arg must outlive the bridge; box and up may be NULL. max_clients bounds
//  the browsers. cfg (may be NULL: no CURVE) gives fabric/curve and edge/cert for the
//  SUB's keys; it is read here only. NULL on failure (logged).
bridge_t *bridge_new (const char *endpoint, int64_t max_frame, emetrics_t *em,
                      edge_status_box_t *box, bridge_up_fn *up, void *up_arg,
                      size_t max_clients, const cfg_t *cfg);

//  Stop the thread and free everything; every fan-out client must have left (call
//  bridge_close first and let handlers finish). Nulls *self_p; accepts NULL.
void bridge_destroy (bridge_t **self_p);

//  End every browser stream and refuse new ones (for shutdown).
void bridge_close (bridge_t *self);

//  The fan-out browsers join.
fanout_t *bridge_fanout (bridge_t *self);

//  The latest broker `metrics` snapshot if younger than max_age_ms (NULL otherwise);
//  caller releases it. *age_ms gets its age (-1 if none ever arrived); may be NULL.
bsnap_t *bridge_broker (bridge_t *self, int64_t max_age_ms, int64_t *age_ms);

void bridge_stats (bridge_t *self, bridge_stats_t *out);

//  The `edge` event JSON for the counters now and window_s seconds ago (pure; for
//  tests). Hists are the chat duration and overhead deltas over the window.
typedef struct {
    int64_t ts_ms;
    uint64_t requests_total, errors_total;
    uint64_t window_requests, window_errors;
    double window_s;
    int64_t in_flight;
    const hist_t *latency, *overhead;   // deltas over the window (microseconds)
    bool broker_up;
    uint32_t workers;
    double cost_usd, loser_cost_usd, saved_usd;     // spend.h totals
} bridge_edge_t;
int bridge_edge_json (buf_t *out, const bridge_edge_t *e);

#endif
