// Prometheus text exposition (format 0.0.4) of the edge's metrics and the broker's
// latest `metrics` snapshot. Pure: plain numbers in, text out.
#ifndef AIGW_EDGE_PROM_H
#define AIGW_EDGE_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bsnap.h"
#include "buf.h"
#include "emetrics.h"

#define PROM_BRIDGE_TOPICS 4            // metrics, job, worker, edge
#define PROM_AUTH_REASONS 6             // unauthorized, forbidden, ..., insufficient_quota

typedef struct {
    const uint64_t *bounds_us;          // ascending le bounds (microseconds)
    size_t nbounds;
    uint64_t buckets[EM_BOUNDS_MAX + 1];    // per bucket (not cumulative); last = +Inf
    uint64_t sum_us;
} prom_hist_t;

//  Everything the edge itself exports, copied out of the live atomics.
typedef struct {
    uint64_t codes[EM_ROUTES][EM_CODES];
    int64_t in_flight;
    prom_hist_t duration[EM_ROUTES];
    prom_hist_t overhead;
    bool link_up;                       // broker answered within heartbeat x liveness
    uint64_t link_submitted, link_reconnects, link_unrouted, link_bad;
    uint64_t link_resubmitted, link_brokers_lost, link_restarts, link_failed_on_down;
    uint32_t brokers, brokers_up;       // in edge/broker; answering (the first loop's view)
    uint64_t connections;               // open now
    uint64_t conn_refused;              // closed at accept: connection or per-IP limit
    uint64_t conn_over_limit;           // answered 503 (max_connections)
    uint64_t header_timeouts;           // 408
    uint64_t jobs_in_flight;            // chat jobs now
    uint64_t jobs_refused;              // 429 at max_jobs
    uint64_t bad_framing;               // 400: conflicting length headers
    uint64_t stream_overflow;           // SSE clients dropped at stream_buffer
    uint64_t bridge_clients, bridge_refused, bridge_dropped, bridge_bad;
    uint64_t bridge_messages[PROM_BRIDGE_TOPICS];   // sent to browsers, by topic
    double broker_age_s;                // age of the broker snapshot; NAN = none yet
    //  Keys and spend
    double cost_usd, loser_cost_usd, saved_usd;
    uint64_t charges, late_charges, link_spends;
    uint64_t auth_admitted;
    uint64_t auth_refused[PROM_AUTH_REASONS];   // by prom_auth_reasons
    uint64_t admin_refused, admin_calls;
    //  Shared limits (limits/backend = redis)
    bool limits_shared;                 // false: the limits_* families are left out
    bool limits_up;
    uint64_t limits_errors, limits_refused;
} prom_edge_t;

//  Reason label of auth_refused[i] (keys_verdict_t order, without "ok").
extern const char *const prom_auth_reasons[PROM_AUTH_REASONS];

//  Topic label of bridge_messages[i].
extern const char *const prom_bridge_topics[PROM_BRIDGE_TOPICS];

//  Copy the edge counters and histograms out of em (the rest of out is untouched).
void prom_edge_from (prom_edge_t *out, const emetrics_t *em);

//  Append the whole exposition to out. broker may be NULL (no fresh snapshot: only
//  aigw_broker_up 0 is written for it). 0, or -1 if out hit its limit.
int prom_render (buf_t *out, const prom_edge_t *edge, const bsnap_t *broker);

//  Append s as a label value: backslash, double quote and newline escaped.
int prom_label_value (buf_t *out, const char *s);

#endif
