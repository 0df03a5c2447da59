// Per-target circuit breaker and hedge budget: pure logic over `now`.
#include "health.h"

#include <stddef.h>
#include <string.h>

void health_cfg_defaults (health_cfg_t *cfg)
{
    cfg->failures = 5;
    cfg->error_rate = 0.5;
    cfg->min_requests = 20;
    cfg->window_ms = 10000;
    cfg->cooldown_ms = 5000;
    cfg->cooldown_max_ms = 60000;
    cfg->hedge_budget = 0.1;
}

void health_init (health_t *self, const health_cfg_t *cfg)
{
    memset (self, 0, sizeof *self);
    if (cfg)
        self->cfg = *cfg;
    else
        health_cfg_defaults (&self->cfg);
    if (self->cfg.window_ms < HEALTH_BUCKETS)
        self->cfg.window_ms = HEALTH_BUCKETS;
    if (self->cfg.cooldown_max_ms < self->cfg.cooldown_ms)
        self->cfg.cooldown_max_ms = self->cfg.cooldown_ms;
    //  A full bucket absorbs a burst; a budget of 0 means no backups at all
    self->tokens = self->cfg.hedge_budget > 0 ? (int64_t) HEALTH_BURST * HEALTH_MILLI : 0;
    for (size_t i = 0; i < HEALTH_BUCKETS; i++)
        self->slice[i] = -1;
}

//  ---------------------------------------------------------------------------
//  Error-rate window: HEALTH_BUCKETS slices; a bucket whose slice is older than the
//  window counts as empty.

static int64_t s_slice_us (const health_t *self)
{
    //  health_init keeps window_ms >= HEALTH_BUCKETS; a zeroed health_t (the metrics'
    //  stand-in for a model without statistics) must not divide by zero either
    int64_t us = (int64_t) self->cfg.window_ms * 1000 / HEALTH_BUCKETS;
    return us > 0 ? us : 1;
}

static bool s_bucket_live (const health_t *self, size_t i, int64_t cur)
{
    return self->slice[i] >= 0 && self->slice[i] > cur - HEALTH_BUCKETS;
}

static void s_window_add (health_t *self, bool ok, int64_t now)
{
    int64_t cur = now / s_slice_us (self);
    size_t i = (size_t) (cur % HEALTH_BUCKETS);
    if (self->slice[i] != cur) {
        self->slice[i] = cur;
        self->ok[i] = self->bad[i] = 0;
    }
    if (ok)
        self->ok[i]++;
    else
        self->bad[i]++;
}

static void s_window_sum (const health_t *self, int64_t now, uint64_t *ok, uint64_t *bad)
{
    int64_t cur = now / s_slice_us (self);
    *ok = *bad = 0;
    for (size_t i = 0; i < HEALTH_BUCKETS; i++)
        if (s_bucket_live (self, i, cur)) {
            *ok += self->ok[i];
            *bad += self->bad[i];
        }
}

static void s_window_clear (health_t *self)
{
    for (size_t i = 0; i < HEALTH_BUCKETS; i++) {
        self->slice[i] = -1;
        self->ok[i] = self->bad[i] = 0;
    }
}

double health_error_rate (const health_t *self, int64_t now)
{
    uint64_t ok, bad;
    s_window_sum (self, now, &ok, &bad);
    return ok + bad ? (double) bad / (double) (ok + bad) : 0.0;
}

//  ---------------------------------------------------------------------------
//  Breaker

static int64_t s_cooldown_us (const health_t *self)
{
    int64_t ms = self->cfg.cooldown_ms;
    for (uint32_t i = 1; i < self->trips && ms < self->cfg.cooldown_max_ms; i++)
        ms *= 2;
    if (ms > self->cfg.cooldown_max_ms)
        ms = self->cfg.cooldown_max_ms;
    return ms * 1000;
}

static void s_trip (health_t *self, int64_t now)
{
    self->trips++;
    self->n_trips++;
    self->open_until = now + s_cooldown_us (self);
    if (self->open_until <= 0)
        self->open_until = 1;
    self->half_open = false;
    self->probing = false;
    self->consecutive = 0;
    s_window_clear (self);
}

static bool s_should_trip (const health_t *self, int64_t now)
{
    if (self->cfg.failures && self->consecutive >= self->cfg.failures)
        return true;
    if (self->cfg.error_rate <= 0.0)
        return false;
    uint64_t ok, bad;
    s_window_sum (self, now, &ok, &bad);
    return ok + bad >= self->cfg.min_requests && ok + bad > 0
           && (double) bad >= self->cfg.error_rate * (double) (ok + bad);
}

bool health_would_admit (const health_t *self, int64_t now)
{
    if (self->open_until)
        return now >= self->open_until;
    return !(self->half_open && self->probing);
}

bool health_admit (health_t *self, int64_t now, bool *probe)
{
    *probe = false;
    if (!health_would_admit (self, now)) {
        self->n_skipped++;
        return false;
    }
    if (self->open_until) {
        self->open_until = 0;           // the cooldown is over: half-open
        self->half_open = true;
    }
    if (self->half_open) {
        self->probing = true;
        self->n_probes++;
        *probe = true;
    }
    return true;
}

void health_outcome (health_t *self, bool ok, bool probe, int64_t now)
{
    if (self->open_until)
        return;                         // an attempt from before the trip: no news
    if (self->half_open && !probe)
        return;                         // only the probe decides
    if (self->half_open) {
        if (ok) {
            self->half_open = self->probing = false;
            self->trips = 0;
            self->consecutive = 0;
            s_window_clear (self);
        }
        else
            s_trip (self, now);
        return;
    }
    s_window_add (self, ok, now);
    self->consecutive = ok ? 0 : self->consecutive + 1;
    if (!ok && s_should_trip (self, now))
        s_trip (self, now);
}

void health_no_verdict (health_t *self)
{
    if (self->half_open)
        self->probing = false;
}

//  ---------------------------------------------------------------------------
//  Budget

void health_earn (health_t *self)
{
    int64_t cap = (int64_t) HEALTH_BURST * HEALTH_MILLI;
    self->tokens += (int64_t) (self->cfg.hedge_budget * HEALTH_MILLI + 0.5);
    if (self->tokens > cap)
        self->tokens = cap;
}

bool health_take_token (health_t *self)
{
    if (self->tokens < HEALTH_MILLI) {
        self->n_no_budget++;
        return false;
    }
    self->tokens -= HEALTH_MILLI;
    self->n_backups++;
    return true;
}

//  ---------------------------------------------------------------------------
//  State

health_state_t health_state (const health_t *self, int64_t now)
{
    if (self->open_until && now < self->open_until)
        return HEALTH_STATE_COOLING;
    if (self->open_until || self->half_open || self->consecutive)
        return HEALTH_STATE_DEGRADED;
    uint64_t ok, bad;
    s_window_sum (self, now, &ok, &bad);
    //  A tenth of the window failing is worth a look, long before it trips
    return bad && (double) bad * 10.0 >= (double) (ok + bad) ? HEALTH_STATE_DEGRADED
                                                             : HEALTH_STATE_HEALTHY;
}

const char *health_state_name (health_state_t state)
{
    switch (state) {
        case HEALTH_STATE_DEGRADED: return "degraded";
        case HEALTH_STATE_COOLING:  return "cooling";
        default:                    return "healthy";
    }
}

int64_t health_wait_us (const health_t *self, int64_t now)
{
    if (self->open_until)
        return now < self->open_until ? self->open_until - now : 0;
    if (self->half_open && self->probing)
        return s_cooldown_us (self);
    return 0;
}
