// One job's record, gate, verdicts and answers (see bjob.h).
#define _GNU_SOURCE
#include "bjob.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "health.h"
#include "hist.h"
#include "log.h"

static uint64_t s_rel (int64_t t, int64_t t0)
{
    return t > t0 ? (uint64_t) (t - t0) : 0;
}

//  ---------------------------------------------------------------------------
//  SUBMIT

const char *bjob_invalid (const Aigw__Job *req, const wire_msg_t *msg)
{
    if (req->n_targets == 0)
        return "no targets";
    if (req->n_targets > RACE_TARGETS_MAX)
        return "too many targets (at most 16)";
    for (size_t i = 0; i < req->n_targets; i++) {
        size_t n = strnlen (req->targets[i], CFG_NAME_MAX);
        if (n == 0 || n >= CFG_NAME_MAX)
            return "empty or too long target name";
    }
    if (!msg->has_payload || zmq_msg_size ((zmq_msg_t *) &msg->payload) == 0)
        return "missing request payload";
    if (req->account && strnlen (req->account, BJOB_ACCOUNT_MAX) >= BJOB_ACCOUNT_MAX)
        return "account name too long";
    if (req->has_policy && req->policy != AIGW__POLICY__POLICY_RACE
        && req->policy != AIGW__POLICY__POLICY_HEDGE && req->policy != AIGW__POLICY__POLICY_FALLBACK)
        return "unknown policy";
    return NULL;
}

void bjob_race_config (const bjob_env_t *env, const Aigw__Job *req, race_config_t *rc)
{
    memset (rc, 0, sizeof *rc);
    rc->policy = req->has_policy ? (race_policy_t) req->policy : RACE_POLICY_RACE;
    rc->ntargets = req->n_targets;
    rc->deadline_us = env->deadline_us;
    if (req->has_deadline_ms && req->deadline_ms > 0) {
        rc->deadline_us = (int64_t) req->deadline_ms * 1000;
        if (rc->deadline_us > env->max_deadline_us)
            rc->deadline_us = env->max_deadline_us;
    }
    rc->ttft_us = req->has_ttft_timeout_ms ? (int64_t) req->ttft_timeout_ms * 1000 : 0;
    rc->stream = req->has_stream && req->stream;
    //  Retries: a race of several already has its spare attempts running
    if (req->has_retries)
        rc->retries = (uint8_t) (req->retries < RACE_RETRIES_MAX ? req->retries : RACE_RETRIES_MAX);
    else
        rc->retries = rc->policy == RACE_POLICY_RACE && req->n_targets > 1 ? 0 : 1;
    rc->retry_backoff_us = (int64_t) (req->has_retry_backoff_ms ? req->retry_backoff_ms
                                                                : env->retry_backoff_ms) * 1000;
    rc->seed = (req->job_id ^ (env->c->jobs_accepted << 24) ^ (uint64_t) env->started)
               * 0x9e3779b97f4a7c15ULL;    // the backoff's jitter: differs per job
    for (size_t t = 0; rc->policy == RACE_POLICY_HEDGE && t < req->n_targets; t++) {
        if (req->has_hedge_delay_ms) {
            rc->hedge_delay_us[t] = (int64_t) req->hedge_delay_ms * 1000;
            continue;
        }
        model_stats_t *st = bstats_find (env->dsp, req->targets[t]);
        rc->hedge_delay_us[t] = race_hedge_auto_us (st ? st->p95_us : 0, st ? st->p95_n : 0,
                                                    env->hedge_default_ms);
    }
}

//  ---------------------------------------------------------------------------
//  Targets' health (brokers/health.h)

//  The attempt about to be made is attempt race_attempts() of the job: that is the
//  probe's bit.
race_gate_t bjob_gate (void *arg, size_t target, race_kind_t kind, int payer, int64_t now)
{
    job_t *job = arg;
    broker_counters_t *c = job->env->c;
    model_stats_t *t = job->tst[target];
    if (t && !health_would_admit (&t->health, now)) {
        bool probe;
        health_admit (&t->health, now, &probe);     // counts the skip
        c->attempts_skipped++;
        return RACE_GATE_COOLDOWN;
    }
    bool backup = kind == RACE_KIND_HEDGE || kind == RACE_KIND_RETRY;
    model_stats_t *p = backup && payer >= 0 ? job->tst[payer] : NULL;
    if (p && !health_take_token (&p->health)) {
        if (kind == RACE_KIND_HEDGE)
            c->hedges_suppressed++;
        else
            c->retries_suppressed++;
        return RACE_GATE_BUDGET;
    }
    if (kind == RACE_KIND_HEDGE) {
        c->attempts_hedged++;
        if (t)
            t->hedges++;
    }
    else
    if (kind == RACE_KIND_RETRY) {
        c->attempts_retried++;
        if (t)
            t->retries++;
    }
    if (!t)
        return RACE_GATE_GO;
    bool probe = false;
    health_admit (&t->health, now, &probe);
    if (probe)
        job->probe_mask |= 1u << race_attempts (&job->race);
    if (kind == RACE_KIND_FIRST)
        health_earn (&t->health);
    return RACE_GATE_GO;
}

void bjob_verdict (job_t *job, size_t index, bjob_verdict_t v, int64_t now)
{
    const race_attempt_t *ra = race_attempt (&job->race, index);
    model_stats_t *st = ra ? job->tst[ra->target] : NULL;
    if (!st)
        return;
    bool probe = job->probe_mask & (1u << index);
    job->probe_mask &= ~(1u << index);
    if (v == BJOB_NONE) {
        if (probe)
            health_no_verdict (&st->health);
        return;
    }
    uint64_t trips = st->health.n_trips;
    health_outcome (&st->health, v == BJOB_OK, probe, now);
    if (st->health.n_trips != trips) {
        job->env->c->breaker_trips++;
        log_info ("model %s cooling down for %" PRId64 " ms after failures",
                  job->req->targets[ra->target], health_wait_us (&st->health, now) / 1000);
    }
}

bjob_verdict_t bjob_error_verdict (int code)
{
    switch (code) {
        case AIGW__ERROR_CODE__ERR_UPSTREAM:
        case AIGW__ERROR_CODE__ERR_UPSTREAM_AUTH:
        case AIGW__ERROR_CODE__ERR_RATE_LIMITED:
        case AIGW__ERROR_CODE__ERR_TIMEOUT:
        case AIGW__ERROR_CODE__ERR_TTFT:
            return BJOB_BAD;
        default:
            return BJOB_NONE;
    }
}

//  A refused or dropped connection (no status), 500, 502, 503, and a 429.
unsigned bjob_retry_flags (int code, uint32_t status)
{
    if (code == AIGW__ERROR_CODE__ERR_RATE_LIMITED)
        return RACE_FAIL_RETRYABLE;
    if (code == AIGW__ERROR_CODE__ERR_UPSTREAM
        && (status == 0 || status == 500 || status == 502 || status == 503))
        return RACE_FAIL_RETRYABLE;
    return 0;
}

int bjob_error_code (int code)
{
    if (code <= AIGW__ERROR_CODE__ERR_NONE || code > AIGW__ERROR_CODE__ERR_RATE_LIMITED)
        return AIGW__ERROR_CODE__ERR_UPSTREAM;
    return code;
}

//  ---------------------------------------------------------------------------
//  Replies kept

bool bjob_usage_known (const Aigw__Usage *u)
{
    return u && (u->has_prompt_tokens || u->has_completion_tokens);
}

void bjob_usage_copy (Aigw__Usage *dst, const Aigw__Usage *u)
{
    aigw__usage__init (dst);
    dst->has_prompt_tokens = u->has_prompt_tokens;
    dst->prompt_tokens = u->prompt_tokens;
    dst->has_completion_tokens = u->has_completion_tokens;
    dst->completion_tokens = u->completion_tokens;
    dst->has_estimated = u->has_estimated;
    dst->estimated = u->estimated;
}

void bjob_keep_usage (job_t *job, size_t index, const Aigw__Usage *u)
{
    if (!bjob_usage_known (u))
        return;
    bjob_usage_copy (&job->att_usage[index], u);
    job->usage_known |= 1u << index;
}

void bjob_keep_upstream (job_t *job, size_t index, const Aigw__Error *err)
{
    job->att_upstream_status[index] = err->has_upstream_status && err->upstream_status < 1000
                                    ? (uint16_t) err->upstream_status : 0;
    job->att_retry_after_ms[index] = err->has_retry_after_ms ? err->retry_after_ms : 0;
    size_t o = 0;
    for (const char *p = err->upstream_code; p && *p && o + 1 < BJOB_UPSTREAM_CODE_MAX; p++)
        if (*p > 0x20 && *p < 0x7f)
            job->att_upstream_code[index][o++] = *p;
    job->att_upstream_code[index][o] = 0;
}

//  ---------------------------------------------------------------------------
//  Accounting and the `job` event

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

//  Add a finished job's attempts to their models' statistics; returns the job's
//  tokens saved and wasted and the cost of its attempts with known usage.
static void s_account (const job_t *job, uint64_t winner_tokens, uint64_t *saved,
                       uint64_t *wasted, double *cost)
{
    const bjob_env_t *env = job->env;
    *saved = *wasted = 0;
    *cost = 0.0;
    for (size_t i = 0; i < race_attempts (&job->race); i++) {
        const race_attempt_t *a = race_attempt (&job->race, i);
        const char *target = job->req->targets[a->target];
        model_stats_t *st = bstats_find (env->dsp, target);
        uint64_t s = a->lost && winner_tokens > a->chunks ? winner_tokens - a->chunks : 0;
        uint64_t w = a->lost ? a->chunks : 0;
        double c = job->usage_known & (1u << i)
                 ? bstats_cost (env->prices, target, &job->att_usage[i]) : 0.0;
        *saved += s;
        *wasted += w;
        *cost += c;
        if (!st)
            continue;
        st->cost_usd += c;
        if (s)
            st->cost_saved_usd += cfg_cost (env->prices, target, 0, s);
        st->wins += a->state == RACE_ATT_WON;
        st->errors += a->state == RACE_ATT_FAILED;
        st->cancelled += a->state == RACE_ATT_CANCELLED;
        st->losses += a->lost;
        st->tokens_saved += s;
        st->tokens_wasted += w;
    }
}

//  The job is answering: add its attempts to the per-model statistics and publish
//  its `job` event. code/message: the client's error (BM_JOB_WON: ignored).
static void s_ended (job_t *job, bm_outcome_t outcome, int code, const char *message,
                     int64_t now)
{
    bmetrics_job_t ev = {
        .job_id = job->job_id, .race = &job->race,
        .targets = (const char *const *) job->req->targets, .ntargets = job->req->n_targets,
        .attempt_ids = job->att_id, .accepted = job->accepted,
        .outcome = outcome, .code = code, .message = message,
    };
    const char *workers[RACE_ATTEMPTS_MAX];
    for (size_t i = 0; i < race_attempts (&job->race); i++)
        workers[i] = job->att_worker[i][0] ? job->att_worker[i] : NULL;
    ev.workers = workers;
    ev.winner_tokens = s_winner_tokens (job, outcome);
    s_account (job, ev.winner_tokens, &ev.tokens_saved, &ev.tokens_wasted, &ev.cost_usd);
    if (bmetrics_job (job->env->metrics, &ev, now))
        job->env->c->events_published++;
}

//  ---------------------------------------------------------------------------
//  The client

static void s_send_client (job_t *job, uint8_t cmd, const ProtobufCMessage *body)
{
    if (wire_send (job->env->frontend, job->cid, job->cid_len, WIRE_SIDE_CLIENT, cmd, body,
                   NULL)) {
        job->env->c->send_failures++;
        log_debug ("send %s for job %" PRIu64 " failed: %s", wire_cmd_name (WIRE_SIDE_CLIENT, cmd),
                   job->job_id, zmq_strerror (errno));
    }
}

void bjob_chunk (job_t *job, size_t index, const Aigw__Chunk *in, bool first, int64_t now)
{
    const race_attempt_t *ra = race_attempt (&job->race, index);
    model_stats_t *st = first ? bstats_find (job->env->dsp, job->req->targets[ra->target]) : NULL;
    if (st)
        hist_record (&st->ttft, s_rel (now, ra->started));
    if (!job->race.cfg.stream || race_winner (&job->race) != (int) index)
        return;
    Aigw__Chunk out = AIGW__CHUNK__INIT;
    out.job_id = job->job_id;
    out.has_attempt_id = true;
    out.attempt_id = job->att_id[index];
    out.has_seq = true;
    out.seq = job->chunk_seq++;
    out.model = job->req->targets[ra->target];
    out.has_delta_json = in->has_delta_json;
    out.delta_json = in->delta_json;
    s_send_client (job, WIRE_C_CHUNK, &out.base);
}

static Aigw__Outcome s_outcome (uint8_t state)
{
    switch (state) {
        case RACE_ATT_WON: return AIGW__OUTCOME__OUTCOME_WON;
        case RACE_ATT_CANCELLED: return AIGW__OUTCOME__OUTCOME_CANCELLED;
        case RACE_ATT_FAILED: return AIGW__OUTCOME__OUTCOME_FAILED;
        case RACE_ATT_SKIPPED: return AIGW__OUTCOME__OUTCOME_SKIPPED;
    }
    return AIGW__OUTCOME__OUTCOME_RUNNING;
}

typedef struct {
    Aigw__AttemptInfo info[RACE_ATTEMPTS_MAX + RACE_TARGETS_MAX];
    Aigw__AttemptInfo *ptr[RACE_ATTEMPTS_MAX + RACE_TARGETS_MAX];
    size_t n;
} infos_t;

//  Fill the AttemptInfo list: every attempt, then targets that never started.
static void s_infos (job_t *job, infos_t *out)
{
    const race_t *r = &job->race;
    int64_t t0 = job->accepted;
    out->n = 0;
    for (size_t i = 0; i < race_attempts (r); i++) {
        const race_attempt_t *a = race_attempt (r, i);
        Aigw__AttemptInfo *x = &out->info[out->n];
        aigw__attempt_info__init (x);
        x->attempt_id = job->att_id[i];
        x->target = job->req->targets[a->target];
        x->outcome = s_outcome (a->state);
        x->worker = job->att_worker[i][0] ? job->att_worker[i] : NULL;
        x->has_started_us = true;
        x->started_us = s_rel (a->started, t0);
        x->has_first_token_us = a->first_token >= 0;
        x->first_token_us = s_rel (a->first_token, t0);
        x->has_finished_us = a->finished >= 0;
        x->finished_us = s_rel (a->finished, t0);
        if (a->retry_of >= 0) {
            x->has_retry_of = true;
            x->retry_of = job->att_id[a->retry_of];
        }
        x->has_hedge = a->kind == RACE_KIND_HEDGE;
        x->hedge = x->has_hedge;
        if (a->state == RACE_ATT_SKIPPED) {
            x->has_error = true;
            x->error = a->code;
            x->reason = a->reason;
        }
        if (a->state == RACE_ATT_FAILED) {
            x->has_error = true;
            x->error = a->code;
            x->reason = a->reason;
            x->has_upstream_status = job->att_upstream_status[i] != 0;
            x->upstream_status = job->att_upstream_status[i];
            x->has_retry_after_ms = job->att_retry_after_ms[i] != 0;
            x->retry_after_ms = job->att_retry_after_ms[i];
            x->upstream_code = job->att_upstream_code[i][0] ? job->att_upstream_code[i] : NULL;
        }
        if (job->usage_known & (1u << i))
            x->usage = &job->att_usage[i];
        out->ptr[out->n] = x;
        out->n++;
    }
    for (size_t t = race_targets_started (r); t < job->req->n_targets; t++) {
        Aigw__AttemptInfo *x = &out->info[out->n];
        aigw__attempt_info__init (x);
        x->target = job->req->targets[t];
        x->outcome = AIGW__OUTCOME__OUTCOME_PENDING;
        out->ptr[out->n] = x;
        out->n++;
    }
}

void bjob_answer_result (job_t *job, size_t index, int64_t now)
{
    const race_attempt_t *ra = race_attempt (&job->race, index);
    const char *target = job->req->targets[ra->target];
    model_stats_t *st = bstats_find (job->env->dsp, target);
    if (st)
        hist_record (&st->latency, s_rel (ra->finished, ra->started));
    job->env->c->jobs_won++;
    job->env->c->attempts_won++;
    infos_t infos;
    s_infos (job, &infos);
    Aigw__Result out = AIGW__RESULT__INIT;
    out.job_id = job->job_id;
    out.has_attempt_id = true;
    out.attempt_id = job->att_id[index];
    out.model = (char *) target;
    if (job->result) {
        out.has_response_json = job->result->has_response_json;
        out.response_json = job->result->response_json;
        out.usage = job->result->usage;
    }
    out.n_attempts = infos.n;
    out.attempts = infos.ptr;
    out.has_latency_us = true;
    out.latency_us = s_rel (now, job->accepted);
    out.has_hedge_suppressed = out.hedge_suppressed = race_hedge_suppressed (&job->race);
    out.has_retry_suppressed = out.retry_suppressed = race_retry_suppressed (&job->race);
    s_send_client (job, WIRE_C_RESULT, &out.base);
    s_ended (job, BM_JOB_WON, 0, NULL, now);
    log_debug ("job %" PRIu64 " won by %s in %" PRIu64 " us", job->job_id, target, out.latency_us);
}

//  The shortest wait until one of the job's targets is let through again (>= 1 ms).
static uint32_t s_cooldown_left_ms (const job_t *job, int64_t now)
{
    int64_t best = -1;
    for (size_t t = 0; t < job->req->n_targets; t++) {
        const model_stats_t *st = job->tst[t];
        int64_t w = st ? health_wait_us (&st->health, now) : 0;
        if (best < 0 || w < best)
            best = w;
    }
    int64_t ms = (best + 999) / 1000;
    return ms < 1 ? 1 : ms > UINT32_MAX ? UINT32_MAX : (uint32_t) ms;
}

void bjob_answer_error (job_t *job, int code, const char *message, int64_t now)
{
    broker_counters_t *c = job->env->c;
    bm_outcome_t outcome = BM_JOB_FAILED;
    if (code == AIGW__ERROR_CODE__ERR_TIMEOUT) {
        c->jobs_timeout++;
        outcome = BM_JOB_TIMEOUT;
    }
    else
    if (code == AIGW__ERROR_CODE__ERR_CANCELLED) {
        c->jobs_cancelled++;
        outcome = BM_JOB_CANCELLED;
    }
    else
        c->jobs_failed++;
    if (code == AIGW__ERROR_CODE__ERR_COOLDOWN)
        c->jobs_cooldown++;
    char buf[BJOB_MSG_MAX];
    if (!message)
        message = race_format_message (&job->race, (const char *const *) job->req->targets,
                                       buf, sizeof buf);
    infos_t infos;
    s_infos (job, &infos);
    Aigw__Error out = AIGW__ERROR__INIT;
    out.job_id = job->job_id;
    out.code = code;
    out.message = (char *) message;
    out.n_attempts = infos.n;
    out.attempts = infos.ptr;
    out.has_hedge_suppressed = out.hedge_suppressed = race_hedge_suppressed (&job->race);
    out.has_retry_suppressed = out.retry_suppressed = race_retry_suppressed (&job->race);
    if (code == AIGW__ERROR_CODE__ERR_COOLDOWN) {
        out.has_retry_after_ms = true;
        out.retry_after_ms = s_cooldown_left_ms (job, now);
    }
    s_send_client (job, WIRE_C_ERROR, &out.base);
    s_ended (job, outcome, code, message, now);
    log_debug ("job %" PRIu64 " failed: %s: %s", job->job_id, race_code_name (code), message);
}
