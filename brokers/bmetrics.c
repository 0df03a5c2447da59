// The broker's metrics stream: `metrics` once a second, a `job` event per finished
// job and `worker` events on join/leave, as msgpack maps (docs/metrics-stream.md).
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker_int.h"

static const model_stats_t s_zero_stats;

static uint64_t s_wall_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

//  ---------------------------------------------------------------------------
//  Packing helpers: keys and values of a map whose size the caller declared.

//  Length of the valid UTF-8 sequence starting at s (n bytes left), 0 if invalid.
static size_t s_utf8_len (const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80 ? 1 : (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3
               : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    //  No overlong forms, no surrogates, nothing above U+10FFFF
    if ((len == 2 && s[0] < 0xC2) || (s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0)
        || (s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] >= 0x90) || s[0] > 0xF4)
        return 0;
    return len;
}

//  Pack a string. Names and reasons come from peers: bytes that are not valid
//  UTF-8 become '?' so every subscriber can decode the map (capped at 1 KiB).
static void s_str (msgpack_packer *pk, const char *str)
{
    const unsigned char *s = (const unsigned char *) str;
    size_t n = strnlen (str, BROKER_MSG_MAX);
    size_t i = 0, len;
    while (i < n && (len = s_utf8_len (s + i, n - i)) > 0)
        i += len;
    if (i == n) {
        msgpack_pack_str (pk, n);
        msgpack_pack_str_body (pk, str, n);
        return;
    }
    char buf[BROKER_MSG_MAX];
    size_t out = 0;
    for (i = 0; i < n;) {
        len = s_utf8_len (s + i, n - i);
        if (len == 0) {
            buf[out++] = '?';
            i++;
            continue;
        }
        memcpy (buf + out, s + i, len);
        out += len;
        i += len;
    }
    msgpack_pack_str (pk, out);
    msgpack_pack_str_body (pk, buf, out);
}

static void s_kv_u64 (msgpack_packer *pk, const char *key, uint64_t v)
{
    s_str (pk, key);
    msgpack_pack_uint64 (pk, v);
}

//  key: string, or nil when str is NULL.
static void s_kv_str (msgpack_packer *pk, const char *key, const char *str)
{
    s_str (pk, key);
    if (str)
        s_str (pk, str);
    else
        msgpack_pack_nil (pk);
}

static void s_kv_usd (msgpack_packer *pk, const char *key, double usd)
{
    s_str (pk, key);
    msgpack_pack_double (pk, usd);
}

static void s_kv_bool (msgpack_packer *pk, const char *key, bool v)
{
    s_str (pk, key);
    if (v)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
}

//  key: milliseconds (double) from t - t0 in µs, or nil when t < 0 (never happened).
static void s_kv_ms (msgpack_packer *pk, const char *key, int64_t t, int64_t t0)
{
    s_str (pk, key);
    if (t < 0)
        msgpack_pack_nil (pk);
    else
        msgpack_pack_double (pk, t > t0 ? (double) (t - t0) / 1000.0 : 0.0);
}

//  key: {"p50", "p95", "p99"} in milliseconds from a µs histogram.
static void s_kv_pcts (msgpack_packer *pk, const char *key, const hist_t *h)
{
    static const double pct[] = { 50, 95, 99 };
    static const char *name[] = { "p50", "p95", "p99" };
    s_str (pk, key);
    msgpack_pack_map (pk, 3);
    bool empty = hist_count (h) == 0;   // no sample (e.g. no first token yet): nil, not 0
    for (int i = 0; i < 3; i++) {
        s_str (pk, name[i]);
        if (empty)
            msgpack_pack_nil (pk);
        else
            msgpack_pack_double (pk, (double) hist_percentile (h, pct[i]) / 1000.0);
    }
}

//  key: array of the names of the models a worker serves.
static void s_kv_models (msgpack_packer *pk, const char *key, const dsp_worker_t *dw)
{
    size_t n = dw ? dsp_worker_models (dw) : 0;
    s_str (pk, key);
    msgpack_pack_array (pk, n);
    for (size_t i = 0; i < n; i++)
        s_str (pk, dsp_model_name (dsp_worker_model_at (dw, i)));
}

//  Start a message in the broker's reused buffer.
static void s_begin (broker_t *self, msgpack_packer *pk)
{
    msgpack_sbuffer_clear (&self->sbuf);
    msgpack_packer_init (pk, &self->sbuf, msgpack_sbuffer_write);
}

static void s_send (broker_t *self, const char *topic)
{
    bpub_send (&self->pub, topic, self->sbuf.data, self->sbuf.size);
}

//  ---------------------------------------------------------------------------
//  Cost (prices from the config's models)

cfg_t *bmetrics_prices (const cfg_t *cfg)
{
    cfg_t *prices = calloc (1, sizeof *prices);
    size_t n = cfg ? cfg->nmodels : 0;
    if (prices)
        prices->models = calloc (n ? n : 1, sizeof *prices->models);
    if (!prices || !prices->models) {
        cfg_destroy (&prices);
        return NULL;
    }
    if (n)
        memcpy (prices->models, cfg->models, n * sizeof *prices->models);
    prices->nmodels = n;
    if (cfg)
        prices->broker.health = cfg->broker.health;     // for cfg_model_health
    return prices;
}

double bmetrics_cost (broker_t *self, const char *model, const Aigw__Usage *u)
{
    if (!u)
        return 0.0;
    return cfg_cost (self->prices, model, u->has_prompt_tokens ? u->prompt_tokens : 0,
                     u->has_completion_tokens ? u->completion_tokens : 0);
}

void bmetrics_late_usage (broker_t *self, model_stats_t *st, const char *model,
                          const Aigw__Usage *u)
{
    if (st)
        st->cost_usd += bmetrics_cost (self, model, u);
}

//  ---------------------------------------------------------------------------
//  metrics (once a second): O(models + workers)

void bmetrics_refresh_p95 (broker_t *self)
{
    for (size_t i = 0; i < dsp_model_count (self->dsp); i++) {
        model_stats_t *st = dsp_model_user (dsp_model_at (self->dsp, i));
        if (st && hist_count (&st->latency) != st->p95_n) {
            st->p95_n = hist_count (&st->latency);
            st->p95_us = hist_percentile (&st->latency, 95.0);
        }
    }
}

static void s_pack_counters (broker_t *self, msgpack_packer *pk)
{
    size_t n = 0;
#define BROKER_COUNT_ONE(name) n++;
    BROKER_COUNTERS (BROKER_COUNT_ONE)
#undef BROKER_COUNT_ONE
    s_str (pk, "counters");
    msgpack_pack_map (pk, n);
#define BROKER_PACK_ONE(name) s_kv_u64 (pk, #name, self->c.name);
    BROKER_COUNTERS (BROKER_PACK_ONE)
#undef BROKER_PACK_ONE
}

//  A model's health: state, cooldown left, window error rate, trips, refusals.
static void s_pack_health (msgpack_packer *pk, const model_stats_t *st, int64_t now)
{
    const health_t *h = &st->health;
    s_kv_str (pk, "state", health_state_name (st == &s_zero_stats ? HEALTH_STATE_HEALTHY
                                                                   : health_state (h, now)));
    s_kv_u64 (pk, "cooldown_left_ms", h->open_until > now
                                      ? (uint64_t) (h->open_until - now + 999) / 1000 : 0);
    s_str (pk, "error_rate");
    msgpack_pack_double (pk, health_error_rate (h, now));
    s_kv_u64 (pk, "trips", h->n_trips);
    s_kv_u64 (pk, "skipped", h->n_skipped);
    s_kv_u64 (pk, "retries", st->retries);
    s_kv_u64 (pk, "hedges", st->hedges);
    s_kv_u64 (pk, "budget_refused", h->n_no_budget);
}

static void s_pack_model (msgpack_packer *pk, const dsp_model_t *m, int64_t now)
{
    const model_stats_t *st = dsp_model_user (m);
    if (!st)
        st = &s_zero_stats;
    msgpack_pack_map (pk, 24);
    s_pack_health (pk, st, now);
    s_kv_str (pk, "name", dsp_model_name (m));
    s_kv_u64 (pk, "workers", dsp_model_workers (m));
    s_kv_u64 (pk, "capacity", dsp_model_capacity (m));
    s_kv_u64 (pk, "in_flight", dsp_model_in_flight (m));
    s_kv_u64 (pk, "queued", dsp_model_queued (m));
    s_kv_u64 (pk, "wins", st->wins);
    s_kv_u64 (pk, "losses", st->losses);
    s_kv_u64 (pk, "errors", st->errors);
    s_kv_u64 (pk, "cancelled", st->cancelled);
    s_kv_u64 (pk, "tokens_saved", st->tokens_saved);
    s_kv_u64 (pk, "tokens_wasted", st->tokens_wasted);
    s_kv_usd (pk, "cost_usd", st->cost_usd);
    s_kv_usd (pk, "cost_saved_usd", st->cost_saved_usd);
    s_kv_pcts (pk, "latency_ms", &st->latency);
    s_kv_pcts (pk, "ttft_ms", &st->ttft);
    s_kv_u64 (pk, "samples", hist_count (&st->latency));
}

static void s_pack_worker (broker_t *self, msgpack_packer *pk, const worker_t *w, int64_t now)
{
    msgpack_pack_map (pk, 9);
    s_kv_str (pk, "id", w->name);
    s_kv_models (pk, "models", w->dw);
    s_kv_bool (pk, "alive", !w->dead);
    s_kv_u64 (pk, "in_flight", w->dw ? dsp_worker_in_flight (w->dw) : 0);
    s_kv_u64 (pk, "capacity", w->dw ? dsp_worker_capacity (w->dw) : 0);
    int64_t seen = now - (w->expiry - self->expiry_us);
    s_kv_u64 (pk, "last_seen_ms", seen > 0 ? (uint64_t) seen / 1000 : 0);
    s_kv_u64 (pk, "completed", w->completed);
    s_kv_u64 (pk, "failed", w->failed);
    s_kv_u64 (pk, "cancelled", w->cancelled);
}

void bmetrics_tick (broker_t *self, int64_t now)
{
    if (!bpub_wants (&self->pub, "metrics"))
        return;
    size_t nm = dsp_model_count (self->dsp);
    double cost = 0.0, saved = 0.0;
    for (size_t i = 0; i < nm; i++) {
        const model_stats_t *st = dsp_model_user (dsp_model_at (self->dsp, i));
        cost += st ? st->cost_usd : 0.0;
        saved += st ? st->cost_saved_usd : 0.0;
    }
    msgpack_packer pk;
    s_begin (self, &pk);
    msgpack_pack_map (&pk, 9);
    s_kv_u64 (&pk, "ts_ms", s_wall_ms ());
    s_kv_str (&pk, "broker_id", self->broker_id);
    s_kv_u64 (&pk, "uptime_s", (uint64_t) (now - self->started) / 1000000);
    s_kv_u64 (&pk, "jobs_in_flight", self->jobs.size);
    s_kv_usd (&pk, "cost_usd", cost);
    s_kv_usd (&pk, "cost_saved_usd", saved);
    s_pack_counters (self, &pk);
    s_str (&pk, "models");
    msgpack_pack_array (&pk, nm);
    for (size_t i = 0; i < nm; i++)
        s_pack_model (&pk, dsp_model_at (self->dsp, i), now);
    size_t nw = 0;
    for (const worker_t *w = self->worker_list; w; w = w->next)
        nw++;
    s_str (&pk, "workers");
    msgpack_pack_array (&pk, nw);
    for (const worker_t *w = self->worker_list; w; w = w->next)
        s_pack_worker (self, &pk, w, now);
    s_send (self, "metrics");
}

//  ---------------------------------------------------------------------------
//  job (one per finished job)

static const char *s_policy_name (race_policy_t p)
{
    return p == RACE_POLICY_HEDGE ? "hedge" : p == RACE_POLICY_FALLBACK ? "fallback" : "race";
}

static const char *s_outcome_name (bm_outcome_t o)
{
    static const char *names[] = { "won", "failed", "timeout", "cancelled" };
    return o <= BM_JOB_CANCELLED ? names[o] : "failed";
}

static const char *s_att_outcome (uint8_t state)
{
    switch (state) {
        case RACE_ATT_WON: return "won";
        case RACE_ATT_CANCELLED: return "cancelled";
        case RACE_ATT_FAILED: return "failed";
        case RACE_ATT_SKIPPED: return "skipped";
    }
    return "running";
}

//  Tokens the winner produced: its usage.completion_tokens when it answered with
//  one, else the chunks it streamed (0 for none, e.g. a failed non-stream job).
static uint64_t s_winner_tokens (const job_t *job, bm_outcome_t outcome)
{
    int w = race_winner (&job->race);
    if (w < 0)
        return 0;
    const Aigw__Result *res = job->result;
    if (outcome == BM_JOB_WON && res && res->usage && res->usage->has_completion_tokens)
        return res->usage->completion_tokens;
    return race_attempt (&job->race, (size_t) w)->chunks;
}

//  Tokens attributed to one attempt in its `job` event.
static uint64_t s_attempt_tokens (const job_t *job, size_t i, uint64_t winner_tokens)
{
    const race_attempt_t *a = race_attempt (&job->race, i);
    return (int) i == race_winner (&job->race) ? winner_tokens : a->chunks;
}

//  Add a finished job's attempts to their models' statistics; returns the job's
//  tokens saved and wasted and the cost of its attempts with known usage.
static void s_account (broker_t *self, const job_t *job, uint64_t winner_tokens,
                       uint64_t *saved, uint64_t *wasted, double *cost)
{
    *saved = *wasted = 0;
    *cost = 0.0;
    for (size_t i = 0; i < race_attempts (&job->race); i++) {
        const race_attempt_t *a = race_attempt (&job->race, i);
        const char *target = job->req->targets[a->target];
        model_stats_t *st = broker_stats (self, target);
        uint64_t s = a->lost && winner_tokens > a->chunks ? winner_tokens - a->chunks : 0;
        uint64_t w = a->lost ? a->chunks : 0;
        double c = job->usage_known & (1u << i) ? bmetrics_cost (self, target, &job->att_usage[i])
                                                : 0.0;
        *saved += s;
        *wasted += w;
        *cost += c;
        if (!st)
            continue;
        st->cost_usd += c;
        if (s)
            st->cost_saved_usd += cfg_cost (self->prices, target, 0, s);
        st->wins += a->state == RACE_ATT_WON;
        st->errors += a->state == RACE_ATT_FAILED;
        st->cancelled += a->state == RACE_ATT_CANCELLED;
        st->losses += a->lost;
        st->tokens_saved += s;
        st->tokens_wasted += w;
    }
}

static void s_pack_attempt (msgpack_packer *pk, const job_t *job, size_t i, uint64_t winner_tokens)
{
    const race_attempt_t *a = race_attempt (&job->race, i);
    bool failed = a->state == RACE_ATT_FAILED || a->state == RACE_ATT_SKIPPED;
    msgpack_pack_map (pk, 13);
    s_kv_u64 (pk, "attempt_id", job->att_id[i]);
    s_kv_str (pk, "model", job->req->targets[a->target]);
    s_kv_str (pk, "worker", job->att_worker[i][0] ? job->att_worker[i] : NULL);
    s_kv_str (pk, "outcome", s_att_outcome (a->state));
    s_kv_bool (pk, "lost", a->lost);
    s_kv_ms (pk, "started_ms", a->started, job->accepted);
    s_kv_ms (pk, "first_token_ms", a->first_token, job->accepted);
    s_kv_ms (pk, "finished_ms", a->finished, job->accepted);
    s_kv_str (pk, "error", failed ? race_code_name (a->code) : NULL);
    s_kv_str (pk, "reason", failed ? a->reason : NULL);
    s_kv_u64 (pk, "tokens", s_attempt_tokens (job, i, winner_tokens));
    s_str (pk, "retry_of");
    if (a->retry_of >= 0)
        msgpack_pack_uint64 (pk, job->att_id[a->retry_of]);
    else
        msgpack_pack_nil (pk);
    s_kv_bool (pk, "hedge", a->kind == RACE_KIND_HEDGE);
}

//  A target the job never started.
static void s_pack_pending (msgpack_packer *pk, const char *model)
{
    msgpack_pack_map (pk, 13);
    s_kv_u64 (pk, "attempt_id", 0);
    s_kv_str (pk, "model", model);
    s_kv_str (pk, "worker", NULL);
    s_kv_str (pk, "outcome", "pending");
    s_kv_bool (pk, "lost", false);
    s_kv_ms (pk, "started_ms", -1, 0);
    s_kv_ms (pk, "first_token_ms", -1, 0);
    s_kv_ms (pk, "finished_ms", -1, 0);
    s_kv_str (pk, "error", NULL);
    s_kv_str (pk, "reason", NULL);
    s_kv_u64 (pk, "tokens", 0);
    s_str (pk, "retry_of");
    msgpack_pack_nil (pk);
    s_kv_bool (pk, "hedge", false);
}

void bmetrics_job (broker_t *self, job_t *job, bm_outcome_t outcome, int code,
                   const char *message, int64_t now)
{
    uint64_t winner_tokens = s_winner_tokens (job, outcome);
    uint64_t saved, wasted;
    double cost;
    s_account (self, job, winner_tokens, &saved, &wasted, &cost);
    if (!bpub_wants (&self->pub, "job"))
        return;
    const race_t *r = &job->race;
    int w = race_winner (r);
    msgpack_packer pk;
    s_begin (self, &pk);
    msgpack_pack_map (&pk, 16);
    s_kv_u64 (&pk, "job_id", job->job_id);
    s_kv_bool (&pk, "hedge_suppressed", race_hedge_suppressed (r));
    s_kv_bool (&pk, "retry_suppressed", race_retry_suppressed (r));
    s_kv_u64 (&pk, "ts_ms", s_wall_ms ());
    s_str (&pk, "targets");
    msgpack_pack_array (&pk, job->req->n_targets);
    for (size_t t = 0; t < job->req->n_targets; t++)
        s_str (&pk, job->req->targets[t]);
    s_kv_str (&pk, "policy", s_policy_name (r->cfg.policy));
    s_kv_bool (&pk, "stream", r->cfg.stream);
    s_kv_str (&pk, "outcome", s_outcome_name (outcome));
    s_kv_str (&pk, "winner",
              w >= 0 ? job->req->targets[race_attempt (r, (size_t) w)->target] : NULL);
    s_kv_str (&pk, "error", outcome == BM_JOB_WON ? NULL : race_code_name (code));
    s_kv_str (&pk, "message", outcome == BM_JOB_WON ? NULL : message);
    s_kv_ms (&pk, "latency_ms", now, job->accepted);
    s_kv_u64 (&pk, "tokens_saved", saved);
    s_kv_u64 (&pk, "tokens_wasted", wasted);
    s_kv_usd (&pk, "cost_usd", cost);
    size_t started = race_targets_started (r);
    s_str (&pk, "attempts");
    msgpack_pack_array (&pk, race_attempts (r) + (job->req->n_targets - started));
    for (size_t i = 0; i < race_attempts (r); i++)
        s_pack_attempt (&pk, job, i, winner_tokens);
    for (size_t t = started; t < job->req->n_targets; t++)
        s_pack_pending (&pk, job->req->targets[t]);
    s_send (self, "job");
    self->c.events_published++;
}

//  ---------------------------------------------------------------------------
//  worker (join and leave)

void bmetrics_worker (broker_t *self, const worker_t *w, const char *event, const char *reason)
{
    if (!bpub_wants (&self->pub, "worker"))
        return;
    msgpack_packer pk;
    s_begin (self, &pk);
    msgpack_pack_map (&pk, 6);
    s_kv_str (&pk, "event", event);
    s_kv_str (&pk, "id", w->name);
    s_kv_models (&pk, "models", w->dw);
    s_kv_u64 (&pk, "capacity", w->dw ? dsp_worker_capacity (w->dw) : 0);
    s_kv_str (&pk, "reason", reason);
    s_kv_u64 (&pk, "ts_ms", s_wall_ms ());
    s_send (self, "worker");
    self->c.events_published++;
}
