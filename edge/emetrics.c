// Edge request metrics: relaxed atomic counters and histograms, safe from any thread.
#include "emetrics.h"

#include <stdlib.h>
#include <string.h>

const uint64_t emetrics_duration_bounds[] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000, 30000000, 60000000, 120000000, 300000000
};
const size_t emetrics_duration_nbounds =
    sizeof emetrics_duration_bounds / sizeof emetrics_duration_bounds[0];

const uint64_t emetrics_overhead_bounds[] = {
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000
};
const size_t emetrics_overhead_nbounds =
    sizeof emetrics_overhead_bounds / sizeof emetrics_overhead_bounds[0];

static const char *s_route_names[EM_ROUTES] = {
    "/v1/chat/completions", "/v1/models", "/healthz", "/readyz", "/metrics",
    "/v1/aigw/events", "/v1/aigw/keys", "/v1/*", "/*"
};

void emetrics_hist_init (em_hist_t *h, const uint64_t *bounds_us, size_t nbounds)
{
    h->bounds_us = bounds_us;
    h->nbounds = nbounds < EM_BOUNDS_MAX ? nbounds : EM_BOUNDS_MAX;
    for (size_t i = 0; i <= EM_BOUNDS_MAX; i++)
        atomic_init (&h->buckets[i], 0);
    hist_reset (&h->hist);
}

void emetrics_hist_record (em_hist_t *h, uint64_t value_us)
{
    size_t lo = 0, hi = h->nbounds;         // first bound >= value (binary search)
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (h->bounds_us[mid] < value_us)
            lo = mid + 1;
        else
            hi = mid;
    }
    atomic_fetch_add_explicit (&h->buckets[lo], 1, memory_order_relaxed);
    hist_record (&h->hist, value_us);
}

emetrics_t *emetrics_new (void)
{
    emetrics_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    for (int r = 0; r < EM_ROUTES; r++)
        emetrics_hist_init (&self->duration[r], emetrics_duration_bounds,
                            emetrics_duration_nbounds);
    emetrics_hist_init (&self->overhead, emetrics_overhead_bounds, emetrics_overhead_nbounds);
    return self;
}

void emetrics_destroy (emetrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free (*self_p);
    *self_p = NULL;
}

em_route_t emetrics_route (const char *path)
{
    if (!path)
        return EM_ROUTE_STATIC;
    for (int r = 0; r < EM_ROUTE_API_OTHER; r++)
        if (strcmp (path, s_route_names[r]) == 0)
            return (em_route_t) r;
    if (strncmp (path, "/v1/aigw/keys/", 14) == 0)
        return EM_ROUTE_ADMIN;
    if (strncmp (path, "/v1/", 4) == 0 || strcmp (path, "/v1") == 0)
        return EM_ROUTE_API_OTHER;
    return EM_ROUTE_STATIC;
}

const char *emetrics_route_name (em_route_t route)
{
    return route >= 0 && route < EM_ROUTES ? s_route_names[route] : "/*";
}

void emetrics_request_begin (emetrics_t *self, em_route_t route)
{
    if (route != EM_ROUTE_EVENTS)
        atomic_fetch_add_explicit (&self->in_flight, 1, memory_order_relaxed);
}

void emetrics_request_done (emetrics_t *self, em_route_t route, int status,
                            uint64_t latency_us, int64_t overhead_us)
{
    if (route < 0 || route >= EM_ROUTES)
        route = EM_ROUTE_STATIC;
    if (status < EM_CODE_MIN || status >= EM_CODE_MIN + EM_CODES)
        status = EM_CODE_MIN + EM_CODES - 1;
    atomic_fetch_add_explicit (&self->codes[route][status - EM_CODE_MIN], 1,
                               memory_order_relaxed);
    if (route == EM_ROUTE_EVENTS)
        return;
    atomic_fetch_sub_explicit (&self->in_flight, 1, memory_order_relaxed);
    emetrics_hist_record (&self->duration[route], latency_us);
    if (route != EM_ROUTE_CHAT)
        return;
    atomic_fetch_add_explicit (&self->chat_requests, 1, memory_order_relaxed);
    if (status >= 500)
        atomic_fetch_add_explicit (&self->chat_errors, 1, memory_order_relaxed);
    if (overhead_us >= 0)
        emetrics_hist_record (&self->overhead, (uint64_t) overhead_us);
}

int64_t emetrics_upstream_us (const Aigw__Result *res)
{
    if (!res)
        return -1;
    const Aigw__AttemptInfo *won = NULL;
    uint64_t first = UINT64_MAX;        // earliest attempt start
    for (size_t i = 0; i < res->n_attempts; i++) {
        const Aigw__AttemptInfo *a = res->attempts[i];
        if (!a || !a->has_started_us)
            continue;
        if (a->started_us < first)
            first = a->started_us;
        if (a->outcome == AIGW__OUTCOME__OUTCOME_WON)
            won = a;
    }
    if (won && won->has_finished_us && won->finished_us >= first)
        return (int64_t) (won->finished_us - first);
    return -1;
}

void emetrics_spend (const emetrics_t *self, em_spend_t *out)
{
    emetrics_t *m = (emetrics_t *) self;
    int64_t saved = atomic_load (&m->saved_nusd);
    out->cost_usd = (double) atomic_load (&m->cost_nusd) / 1e9;
    out->loser_cost_usd = (double) atomic_load (&m->loser_cost_nusd) / 1e9;
    out->saved_usd = saved > 0 ? (double) saved / 1e9 : 0.0;
    out->charges = atomic_load (&m->charges);
    out->late_charges = atomic_load (&m->late_charges);
}
