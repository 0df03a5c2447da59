// Edge request metrics: per-route status counters, requests in flight, request duration
// and gateway overhead histograms. C11 atomics only (no locks); every call is wait-free.
#ifndef AIGW_EDGE_EMETRICS_H
#define AIGW_EDGE_EMETRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hist.h"
#include "aigw.pb-c.h"

typedef enum {
    EM_ROUTE_CHAT = 0,                  // /v1/chat/completions
    EM_ROUTE_MODELS,                    // /v1/models
    EM_ROUTE_HEALTHZ,
    EM_ROUTE_READYZ,
    EM_ROUTE_METRICS,
    EM_ROUTE_EVENTS,                    // /v1/aigw/events (SSE; no duration, not in flight)
    EM_ROUTE_ADMIN,                     // /v1/aigw/keys and /v1/aigw/keys/{name}
    EM_ROUTE_API_OTHER,                 // any other /v1/... path
    EM_ROUTE_STATIC,                    // everything else (dashboard files)
    EM_ROUTES
} em_route_t;

#define EM_CODE_MIN 100                 // status codes outside 100..599 count as 599
#define EM_CODES 500
#define EM_BOUNDS_MAX 24                // histogram bucket bounds (le), +Inf extra

//  Histogram with exact Prometheus buckets (bounds in microseconds) and a log-linear
//  hist_t for percentiles.
typedef struct {
    const uint64_t *bounds_us;          // ascending, nbounds of them
    size_t nbounds;
    _Atomic uint64_t buckets[EM_BOUNDS_MAX + 1];    // per bucket (not cumulative); last = +Inf
    hist_t hist;                        // count, sum (us) and percentiles
} em_hist_t;

typedef struct {
    _Atomic uint64_t codes[EM_ROUTES][EM_CODES];
    _Atomic int64_t in_flight;          // requests being handled (events route excluded)
    _Atomic uint64_t chat_requests;     // chat requests finished
    _Atomic uint64_t chat_errors;       // of those, status >= 500
    em_hist_t duration[EM_ROUTES];      // request time (events route stays empty)
    em_hist_t overhead;                 // chat with a winner: edge time - upstream span
    //  Spend (nano-USD, see spend.h): every attempt charged, the cancelled losers'
    //  part, and the estimated cost cancelling avoided (may dip below 0 for a moment)
    _Atomic int64_t cost_nusd;
    _Atomic int64_t loser_cost_nusd;
    _Atomic int64_t saved_nusd;
    _Atomic uint64_t charges;           // attempts charged
    _Atomic uint64_t late_charges;      // of which settled after the job's answer (SPEND)
} emetrics_t;

//  The spend counters as USD (saved clamped at 0).
typedef struct {
    double cost_usd;                    // every attempt charged, losers included
    double loser_cost_usd;              // the part cancelled losers cost
    double saved_usd;                   // estimated cost avoided by cancelling losers
    uint64_t charges;                   // attempts charged
    uint64_t late_charges;              // of which settled after their job's answer
} em_spend_t;

void emetrics_spend (const emetrics_t *self, em_spend_t *out);

//  Bucket bounds (microseconds) of the duration and overhead histograms.
extern const uint64_t emetrics_duration_bounds[];
extern const size_t emetrics_duration_nbounds;
extern const uint64_t emetrics_overhead_bounds[];
extern const size_t emetrics_overhead_nbounds;

//  Allocate zeroed metrics (about 200 KB). NULL on failure.
emetrics_t *emetrics_new (void);
void emetrics_destroy (emetrics_t **self_p);

//  Route of a request path (the exact API paths, other /v1/..., else static).
em_route_t emetrics_route (const char *path);
//  Label value for a route, e.g. "/v1/chat/completions".
const char *emetrics_route_name (em_route_t route);

//  A request started / finished. overhead_us < 0: no overhead sample.
void emetrics_request_begin (emetrics_t *self, em_route_t route);
void emetrics_request_done (emetrics_t *self, em_route_t route, int status,
                            uint64_t latency_us, int64_t overhead_us);

//  A result's upstream span: from the first attempt's start to the winner's finish
//  (for a race, the winner's own upstream time; a hedge delay or a fallback's failed
//  tries are not gateway overhead). -1 when there is no winner with timings.
int64_t emetrics_upstream_us (const Aigw__Result *res);

//  Record into an em_hist_t (exposed for tests).
void emetrics_hist_init (em_hist_t *h, const uint64_t *bounds_us, size_t nbounds);
void emetrics_hist_record (em_hist_t *h, uint64_t value_us);

#endif
