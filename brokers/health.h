// Per-target health: a circuit breaker (cooldown) and a hedge budget (token bucket).
// Pure logic: no sockets, no clock (callers pass `now`, monotonic microseconds), no
// allocation. One per model at the broker; see docs/errors.md "Cooldown".
//
// Breaker: closed -> open (cooling) after `failures` consecutive failures, or a window
// error rate >= `error_rate` over at least `min_requests` outcomes. Open for
// cooldown_ms x 2^(trips-1), capped at cooldown_max_ms. When that has passed, one
// probe is let through (half-open): its success closes the breaker and forgets the
// trips, its failure opens it again for longer, no verdict (it lost a race, it was
// cancelled) lets the next attempt probe.
//
// Budget: every regular start on the target (a job's first attempt there, a
// failover) earns `hedge_budget` tokens, up to HEALTH_BURST; a backup (hedge) or a
// retry that the target pays for costs one. So backups <= budget x starts + HEALTH_BURST.
#ifndef AIGW_HEALTH_H
#define AIGW_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#define HEALTH_BUCKETS 10           // error-rate window: this many slices of window_ms / 10
#define HEALTH_BURST 5              // hedge budget bucket size (tokens), and where it starts
#define HEALTH_MILLI 1000           // tokens are kept in thousandths

typedef struct {
    uint32_t failures;              // consecutive failures that trip (0 = never on count)
    double error_rate;              // window error rate that trips, 0..1 (0 = never on rate)
    uint32_t min_requests;          // outcomes in the window before its rate counts
    uint32_t window_ms;             // error-rate window
    uint32_t cooldown_ms;           // first cooldown
    uint32_t cooldown_max_ms;       // cap of the growing cooldown
    double hedge_budget;            // tokens earned per regular start (0 = no hedges, no retries)
} health_cfg_t;

typedef enum {
    HEALTH_STATE_HEALTHY = 0,
    HEALTH_STATE_DEGRADED,          // failures in the window, or half-open (probing)
    HEALTH_STATE_COOLING,           // breaker open: skipped until the cooldown ends
} health_state_t;

typedef struct {
    health_cfg_t cfg;
    //  breaker
    uint32_t consecutive;           // failures in a row
    uint32_t trips;                 // trips since the last good probe (grows the cooldown)
    int64_t open_until;             // cooling until then; 0 = not open
    bool half_open;                 // cooldown over: next admitted start is the probe
    bool probing;                   // the probe is out
    uint32_t ok[HEALTH_BUCKETS], bad[HEALTH_BUCKETS];
    int64_t slice[HEALTH_BUCKETS];  // which slice (now / slice length) each bucket holds
    //  budget
    int64_t tokens;                 // thousandths of a token
    //  counters
    uint64_t n_trips;               // times the breaker opened
    uint64_t n_skipped;             // starts refused because cooling
    uint64_t n_no_budget;           // backups or retries refused by the budget
    uint64_t n_backups;             // backups or retries admitted
    uint64_t n_probes;              // probes let through
} health_t;

//  Defaults: 5 failures, rate 0.5 over >= 20 outcomes in 10 s, cooldown 5 s growing to
//  60 s, hedge budget 0.1.
void health_cfg_defaults (health_cfg_t *cfg);
void health_init (health_t *self, const health_cfg_t *cfg);

//  Would a start be let through now? No side effects.
bool health_would_admit (const health_t *self, int64_t now);
//  Let a start through, or refuse it because the target is cooling (counted in
//  n_skipped). In half-open the first start let through is the probe: *probe is
//  set then (the caller reports its end with health_outcome or health_no_verdict).
bool health_admit (health_t *self, int64_t now, bool *probe);
//  A regular start: earn hedge_budget tokens (up to HEALTH_BURST).
void health_earn (health_t *self);
//  A backup (hedge) or retry this target pays for: take one token and return true,
//  or return false (counted in n_no_budget).
bool health_take_token (health_t *self);
//  An attempt on this target ended with a verdict: ok (it answered) or not (it failed
//  in a way that is the target's fault: 5xx, refused connection, timeout, 429, 401).
//  probe: it was the half-open probe. While half-open only the probe's verdict counts
//  (an attempt started before the trip says nothing about now).
void health_outcome (health_t *self, bool ok, bool probe, int64_t now);
//  The probe ended without a verdict (lost a race, cancelled, worker lost): the
//  next start may probe.
void health_no_verdict (health_t *self);

health_state_t health_state (const health_t *self, int64_t now);
const char *health_state_name (health_state_t state);
//  Microseconds until a start may be admitted again: the rest of the cooldown, or
//  the cooldown when half-open with its probe out; 0 when admitted now.
int64_t health_wait_us (const health_t *self, int64_t now);
//  Error rate over the window (0 with no outcomes).
double health_error_rate (const health_t *self, int64_t now);

#endif
