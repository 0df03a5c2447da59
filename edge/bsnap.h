// The broker's latest `metrics` message (docs/metrics-stream.md) as an immutable,
// reference-counted snapshot for /metrics. Absent fields are NAN, so only what the
// broker sent is exported.
#ifndef AIGW_EDGE_BSNAP_H
#define AIGW_EDGE_BSNAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "snap.h"

#define BSNAP_COUNTERS_MAX 64           // broker counters kept; the rest are ignored
#define BSNAP_MODELS_MAX 1024
#define BSNAP_WORKERS_MAX 1024
#define BSNAP_KEY_MAX 64

typedef struct {
    double p50, p95, p99;               // milliseconds; NAN = absent
} bsnap_pcts_t;

//  A model's health as the broker judges it (its `state`).
typedef enum {
    BSNAP_STATE_ABSENT = 0,             // not sent (older broker) or a name we do not know
    BSNAP_STATE_HEALTHY,
    BSNAP_STATE_DEGRADED,               // half-open probing, a failure streak, or >= 10% failed
    BSNAP_STATE_COOLING,                // breaker open: starts skipped until the cooldown ends
} bsnap_state_t;

#define BSNAP_STATES 3                  // known states, HEALTHY .. COOLING

typedef struct {
    char name[CFG_NAME_MAX];
    double workers, capacity, in_flight, queued;
    double wins, losses, errors, cancelled, tokens_saved, tokens_wasted;
    double samples;                     // latency samples behind the percentiles
    bsnap_pcts_t latency, ttft;
    //  Health (circuit breaker and hedge budget)
    bsnap_state_t state;
    double cooldown_left_ms;            // 0 unless cooling
    double error_rate;                  // 0..1 over the breaker's window
    double trips, skipped, retries, hedges, budget_refused;
} bsnap_model_t;

typedef struct {
    char id[CFG_NAME_MAX];
    double alive;                       // 1 / 0; NAN = absent
    double in_flight, capacity, last_seen_ms, completed, failed, cancelled;
} bsnap_worker_t;

typedef struct {
    char name[BSNAP_KEY_MAX];
    double value;
} bsnap_counter_t;

typedef struct {
    snap_t base;                        // reference count (common/snap.h)
    int64_t at_ms;                      // aclock ms when it arrived
    char broker_id[CFG_NAME_MAX];
    double ts_ms, uptime_s, jobs_in_flight;
    size_t ncounters, nmodels, nworkers;
    bsnap_counter_t counters[BSNAP_COUNTERS_MAX];
    bsnap_model_t *models;
    bsnap_worker_t *workers;
} bsnap_t;

//  An empty snapshot (every number NAN, no models/workers) with one reference, or NULL.
//  Callers may fill it before sharing it.
bsnap_t *bsnap_new (size_t nmodels, size_t nworkers);

//  Decode a `metrics` msgpack body. NULL if it is not well-formed msgpack or not a
//  map. Caller owns one reference.
bsnap_t *bsnap_decode (const void *data, size_t len, int64_t at_ms);

#ifdef AIGW_HAVE_MSGPACK
#include <msgpack.h>
//  Same from an object already unpacked (the bridge unpacks each message once).
bsnap_t *bsnap_from_object (const msgpack_object *root, int64_t at_ms);
#endif

bsnap_t *bsnap_ref (bsnap_t *self);
void bsnap_release (bsnap_t **self_p);

//  "healthy", "degraded", "cooling"; NULL for BSNAP_STATE_ABSENT or out of range.
const char *bsnap_state_name (bsnap_state_t state);
//  The state named s (NULL or unknown: BSNAP_STATE_ABSENT).
bsnap_state_t bsnap_state_parse (const char *s);

//  Counter value by name, NAN if absent.
double bsnap_counter (const bsnap_t *self, const char *name);

#endif
