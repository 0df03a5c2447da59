// The broker's metrics stream: encodes the views of bmetrics.h as msgpack maps
// and publishes them (docs/metrics-stream.md).
#define _GNU_SOURCE
#include "bmetrics.h"

#include <inttypes.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bstats.h"
#include "health.h"
#include "hist.h"

#define BMETRICS_STR_MAX 1024       // longest string packed (names and reasons from peers)

struct bmetrics_t {
    bpub_t *pub;                    // the metrics XPUB (borrowed)
    msgpack_sbuffer sbuf;           // reused encode buffer
};

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
    size_t n = strnlen (str, BMETRICS_STR_MAX);
    size_t i = 0, len;
    while (i < n && (len = s_utf8_len (s + i, n - i)) > 0)
        i += len;
    if (i == n) {
        msgpack_pack_str (pk, n);
        msgpack_pack_str_body (pk, str, n);
        return;
    }
    char buf[BMETRICS_STR_MAX];
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

//  Start a message in the reused buffer.
static void s_begin (bmetrics_t *self, msgpack_packer *pk)
{
    msgpack_sbuffer_clear (&self->sbuf);
    msgpack_packer_init (pk, &self->sbuf, msgpack_sbuffer_write);
}

static void s_send (bmetrics_t *self, const char *topic)
{
    bpub_send (self->pub, topic, self->sbuf.data, self->sbuf.size);
}

//  ---------------------------------------------------------------------------
//  Construction

bmetrics_t *bmetrics_new (bpub_t *pub)
{
    bmetrics_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->pub = pub;
    msgpack_sbuffer_init (&self->sbuf);
    return self;
}

void bmetrics_destroy (bmetrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    msgpack_sbuffer_destroy (&(*self_p)->sbuf);
    free (*self_p);
    *self_p = NULL;
}

bool bmetrics_wants (const bmetrics_t *self, const char *topic)
{
    return bpub_wants (self->pub, topic);
}

//  ---------------------------------------------------------------------------
//  metrics (once a second): O(models + workers)

static void s_pack_counters (msgpack_packer *pk, const broker_counters_t *c)
{
    size_t n = 0;
#define BROKER_COUNT_ONE(name) n++;
    BROKER_COUNTERS (BROKER_COUNT_ONE)
#undef BROKER_COUNT_ONE
    s_str (pk, "counters");
    msgpack_pack_map (pk, n);
#define BROKER_PACK_ONE(name) s_kv_u64 (pk, #name, c->name);
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

static void s_pack_worker (msgpack_packer *pk, const bmetrics_worker_t *w, int64_t now)
{
    msgpack_pack_map (pk, 9);
    s_kv_str (pk, "id", w->name);
    s_kv_models (pk, "models", w->dw);
    s_kv_bool (pk, "alive", w->alive);
    s_kv_u64 (pk, "in_flight", w->dw ? dsp_worker_in_flight (w->dw) : 0);
    s_kv_u64 (pk, "capacity", w->dw ? dsp_worker_capacity (w->dw) : 0);
    int64_t seen = now - w->last_seen;
    s_kv_u64 (pk, "last_seen_ms", seen > 0 ? (uint64_t) seen / 1000 : 0);
    s_kv_u64 (pk, "completed", w->completed);
    s_kv_u64 (pk, "failed", w->failed);
    s_kv_u64 (pk, "cancelled", w->cancelled);
}

void bmetrics_tick (bmetrics_t *self, const bmetrics_tick_t *tick, int64_t now)
{
    if (!bpub_wants (self->pub, "metrics"))
        return;
    size_t nm = dsp_model_count (tick->dsp);
    double cost = 0.0, saved = 0.0;
    for (size_t i = 0; i < nm; i++) {
        const model_stats_t *st = dsp_model_user (dsp_model_at (tick->dsp, i));
        cost += st ? st->cost_usd : 0.0;
        saved += st ? st->cost_saved_usd : 0.0;
    }
    msgpack_packer pk;
    s_begin (self, &pk);
    char instance[17];
    snprintf (instance, sizeof instance, "%016" PRIx64, tick->instance);
    msgpack_pack_map (&pk, 10);
    s_kv_u64 (&pk, "ts_ms", s_wall_ms ());
    s_kv_str (&pk, "broker_id", tick->broker_id);
    s_kv_str (&pk, "instance", instance);
    s_kv_u64 (&pk, "uptime_s", (uint64_t) (now - tick->started) / 1000000);
    s_kv_u64 (&pk, "jobs_in_flight", tick->jobs_in_flight);
    s_kv_usd (&pk, "cost_usd", cost);
    s_kv_usd (&pk, "cost_saved_usd", saved);
    s_pack_counters (&pk, tick->counters);
    s_str (&pk, "models");
    msgpack_pack_array (&pk, nm);
    for (size_t i = 0; i < nm; i++)
        s_pack_model (&pk, dsp_model_at (tick->dsp, i), now);
    s_str (&pk, "workers");
    msgpack_pack_array (&pk, tick->nworkers);
    for (size_t i = 0; i < tick->nworkers; i++)
        s_pack_worker (&pk, &tick->workers[i], now);
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

//  Tokens attributed to one attempt in its `job` event.
static uint64_t s_attempt_tokens (const bmetrics_job_t *job, size_t i)
{
    const race_attempt_t *a = race_attempt (job->race, i);
    return (int) i == race_winner (job->race) ? job->winner_tokens : a->chunks;
}

static void s_pack_attempt (msgpack_packer *pk, const bmetrics_job_t *job, size_t i)
{
    const race_attempt_t *a = race_attempt (job->race, i);
    bool failed = a->state == RACE_ATT_FAILED || a->state == RACE_ATT_SKIPPED;
    msgpack_pack_map (pk, 13);
    s_kv_u64 (pk, "attempt_id", job->attempt_ids[i]);
    s_kv_str (pk, "model", job->targets[a->target]);
    s_kv_str (pk, "worker", job->workers[i]);
    s_kv_str (pk, "outcome", s_att_outcome (a->state));
    s_kv_bool (pk, "lost", a->lost);
    s_kv_ms (pk, "started_ms", a->started, job->accepted);
    s_kv_ms (pk, "first_token_ms", a->first_token, job->accepted);
    s_kv_ms (pk, "finished_ms", a->finished, job->accepted);
    s_kv_str (pk, "error", failed ? race_code_name (a->code) : NULL);
    s_kv_str (pk, "reason", failed ? a->reason : NULL);
    s_kv_u64 (pk, "tokens", s_attempt_tokens (job, i));
    s_str (pk, "retry_of");
    if (a->retry_of >= 0)
        msgpack_pack_uint64 (pk, job->attempt_ids[a->retry_of]);
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

bool bmetrics_job (bmetrics_t *self, const bmetrics_job_t *job, int64_t now)
{
    if (!bpub_wants (self->pub, "job"))
        return false;
    const race_t *r = job->race;
    int w = race_winner (r);
    bm_outcome_t outcome = job->outcome;
    msgpack_packer pk;
    s_begin (self, &pk);
    msgpack_pack_map (&pk, 16);
    s_kv_u64 (&pk, "job_id", job->job_id);
    s_kv_bool (&pk, "hedge_suppressed", race_hedge_suppressed (r));
    s_kv_bool (&pk, "retry_suppressed", race_retry_suppressed (r));
    s_kv_u64 (&pk, "ts_ms", s_wall_ms ());
    s_str (&pk, "targets");
    msgpack_pack_array (&pk, job->ntargets);
    for (size_t t = 0; t < job->ntargets; t++)
        s_str (&pk, job->targets[t]);
    s_kv_str (&pk, "policy", s_policy_name (r->cfg.policy));
    s_kv_bool (&pk, "stream", r->cfg.stream);
    s_kv_str (&pk, "outcome", s_outcome_name (outcome));
    s_kv_str (&pk, "winner", w >= 0 ? job->targets[race_attempt (r, (size_t) w)->target] : NULL);
    s_kv_str (&pk, "error", outcome == BM_JOB_WON ? NULL : race_code_name (job->code));
    s_kv_str (&pk, "message", outcome == BM_JOB_WON ? NULL : job->message);
    s_kv_ms (&pk, "latency_ms", now, job->accepted);
    s_kv_u64 (&pk, "tokens_saved", job->tokens_saved);
    s_kv_u64 (&pk, "tokens_wasted", job->tokens_wasted);
    s_kv_usd (&pk, "cost_usd", job->cost_usd);
    size_t started = race_targets_started (r);
    s_str (&pk, "attempts");
    msgpack_pack_array (&pk, race_attempts (r) + (job->ntargets - started));
    for (size_t i = 0; i < race_attempts (r); i++)
        s_pack_attempt (&pk, job, i);
    for (size_t t = started; t < job->ntargets; t++)
        s_pack_pending (&pk, job->targets[t]);
    s_send (self, "job");
    return true;
}

//  ---------------------------------------------------------------------------
//  worker (join and leave)

bool bmetrics_worker (bmetrics_t *self, const bmetrics_worker_t *w, const char *event,
                      const char *reason)
{
    if (!bpub_wants (self->pub, "worker"))
        return false;
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
    return true;
}
