// aigw broker event loop: sockets, job/attempt/worker tables, timers, heartbeats,
// and the glue that executes race actions through the dispatcher.
#define _GNU_SOURCE
#include "broker.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <czmq.h>
#include <zmq.h>

#include "aclock.h"
#include "broker_int.h"
#include "log.h"

static pthread_once_t s_seed_once = PTHREAD_ONCE_INIT;

static void s_seed (void)
{
    uint64_t seed = 0;
    int fd = open ("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read (fd, &seed, sizeof seed);
        (void) n;
        close (fd);
    }
    hmap_seed (seed ^ (uint64_t) aclock_now_us () ^ ((uint64_t) getpid () << 32));
}

//  ---------------------------------------------------------------------------
//  Tables

typedef struct {
    const uint8_t *id;
    size_t len;
    uint64_t job_id;
} job_key_t;

static bool s_job_eq (const hmap_node_t *node, const void *key)
{
    const job_t *j = s_container (node, job_t, node);
    const job_key_t *k = key;
    return j->job_id == k->job_id && j->cid_len == k->len && memcmp (j->cid, k->id, k->len) == 0;
}

static uint64_t s_job_hash (const uint8_t *id, size_t len, uint64_t job_id)
{
    return hmap_u64 (hmap_bytes (id, len) ^ job_id);
}

static bool s_attempt_eq (const hmap_node_t *node, const void *key)
{
    return s_container (node, attempt_t, node)->id == *(const uint64_t *) key;
}

typedef struct {
    const uint8_t *id;
    size_t len;
} rid_key_t;

static bool s_worker_eq (const hmap_node_t *node, const void *key)
{
    const worker_t *w = s_container (node, worker_t, node);
    const rid_key_t *k = key;
    return w->rid_len == k->len && memcmp (w->rid, k->id, k->len) == 0;
}

static job_t *s_job_find (broker_t *self, const uint8_t *id, size_t len, uint64_t job_id)
{
    job_key_t k = { id, len, job_id };
    hmap_node_t *n = hmap_find (&self->jobs, s_job_hash (id, len, job_id), &k);
    return n ? s_container (n, job_t, node) : NULL;
}

static attempt_t *s_attempt_find (broker_t *self, uint64_t id)
{
    hmap_node_t *n = hmap_find (&self->attempts, hmap_u64 (id), &id);
    return n ? s_container (n, attempt_t, node) : NULL;
}

static worker_t *s_worker_find (broker_t *self, const uint8_t *id, size_t len)
{
    rid_key_t k = { id, len };
    hmap_node_t *n = hmap_find (&self->workers, hmap_bytes (id, len), &k);
    return n ? s_container (n, worker_t, node) : NULL;
}

//  ---------------------------------------------------------------------------
//  Logging helpers

static void s_printable (char *dst, size_t dstlen, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < dstlen; i++)
        dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
    if (dstlen)
        dst[i] = 0;
}

static void s_malformed (broker_t *self, const uint8_t *id, size_t len, const char *side,
                         const char *why)
{
    self->c.malformed++;
    uint64_t h = hmap_bytes (id, len);
    for (size_t i = 0; i < BROKER_LOGGED_PEERS; i++)
        if (self->logged_peers[i] == h)
            return;
    self->logged_peers[self->logged_next] = h;
    self->logged_next = (self->logged_next + 1) % BROKER_LOGGED_PEERS;
    char hex[2 * 32 + 1];
    wire_id_hex (id, len < 32 ? len : 32, hex, sizeof hex);
    log_warn ("malformed message from %s %s: %s (further ones from this peer are only counted)",
              side, hex, why ? why : "?");
}

//  True the first time a certificate (by public key) is refused on a side: its
//  refusals are logged once, then only counted.
static bool s_denied_first (broker_t *self, const char *user_id, char side)
{
    uint64_t h = hmap_bytes ((const uint8_t *) user_id, strlen (user_id)) ^ (uint64_t) side;
    for (size_t i = 0; i < BROKER_LOGGED_PEERS; i++)
        if (self->denied_peers[i] == h)
            return false;
    self->denied_peers[self->denied_next] = h;
    self->denied_next = (self->denied_next + 1) % BROKER_LOGGED_PEERS;
    return true;
}

//  ---------------------------------------------------------------------------
//  Pools: jobs and attempts are reused, so the hot path does not call malloc.

static job_t *s_job_alloc (broker_t *self)
{
    job_t *j = self->free_jobs;
    if (j) {
        self->free_jobs = j->free_next;
        self->nfree_jobs--;
    }
    else
        j = malloc (sizeof *j);
    return j;
}

static void s_job_release (broker_t *self, job_t *j)
{
    if (self->nfree_jobs >= BROKER_POOL_MAX) {
        free (j);
        return;
    }
    j->free_next = self->free_jobs;
    self->free_jobs = j;
    self->nfree_jobs++;
}

static attempt_t *s_attempt_new (broker_t *self, job_t *job, size_t index)
{
    attempt_t *a = self->free_attempts;
    if (a) {
        self->free_attempts = a->free_next;
        self->nfree_attempts--;
    }
    else
    if (!(a = malloc (sizeof *a)))
        return NULL;
    memset (a, 0, sizeof *a);
    a->id = ++self->next_attempt_id;
    a->job = job;
    a->index = (uint8_t) index;
    hmap_insert (&self->attempts, &a->node, hmap_u64 (a->id));
    job->att[index] = a;
    job->att_id[index] = a->id;
    job->att_worker[index][0] = 0;
    job->att_upstream_status[index] = 0;
    job->att_retry_after_ms[index] = 0;
    job->att_upstream_code[index][0] = 0;
    return a;
}

//  Forget an attempt (its dispatch item must already be done or detached).
static void s_attempt_free (broker_t *self, attempt_t *a)
{
    hmap_remove (&self->attempts, &a->node);
    if (a->job && a->job->att[a->index] == a)
        a->job->att[a->index] = NULL;
    if (self->nfree_attempts >= BROKER_POOL_MAX) {
        free (a);
        return;
    }
    a->free_next = self->free_attempts;
    self->free_attempts = a;
    self->nfree_attempts++;
}

//  ---------------------------------------------------------------------------
//  Sending

static void s_send_client (broker_t *self, job_t *job, uint8_t cmd, const ProtobufCMessage *body)
{
    if (wire_send (self->frontend, job->cid, job->cid_len, WIRE_SIDE_CLIENT, cmd, body, NULL)) {
        self->c.send_failures++;
        log_debug ("send %s for job %" PRIu64 " failed: %s", wire_cmd_name (WIRE_SIDE_CLIENT, cmd),
                   job->job_id, zmq_strerror (errno));
    }
}

static void s_worker_kill (broker_t *self, worker_t *w, const char *why);
static void s_pending_add (broker_t *self, uint64_t attempt_id, int code, bool retry,
                           const char *reason);

//  Send to a worker. A send refused because the worker's pipe is full (EAGAIN)
//  returns -1 with errno EAGAIN and leaves the worker alone; any other failure
//  means the worker is gone: it is killed (its attempts are handled at the next
//  reap). Returns 0 / -1.
static int s_send_worker (broker_t *self, worker_t *w, uint8_t cmd, const ProtobufCMessage *body,
                          zmq_msg_t *payload)
{
    if (w->dead) {
        errno = EHOSTUNREACH;
        return -1;
    }
    if (wire_send (self->backend, w->rid, w->rid_len, WIRE_SIDE_WORKER, cmd, body, payload) == 0)
        return 0;
    self->c.send_failures++;
    if (errno == EAGAIN) {
        self->c.send_full++;
        log_debug ("send %s to worker %s: pipe full", wire_cmd_name (WIRE_SIDE_WORKER, cmd),
                   w->name);
        errno = EAGAIN;
        return -1;
    }
    char why[96];
    snprintf (why, sizeof why, "send %s failed: %s", wire_cmd_name (WIRE_SIDE_WORKER, cmd),
              zmq_strerror (errno));
    s_worker_kill (self, w, why);
    errno = EHOSTUNREACH;
    return -1;
}

//  ---------------------------------------------------------------------------
//  Attempts

//  Send an assigned attempt's TASK. If the worker's pipe is full, the attempt is
//  taken back (credit returned) and failed at the next reap with ERR_OVERLOADED,
//  its target allowed to start again. Returns 0 / -1 (not sent).
static int s_attempt_send_task (broker_t *self, attempt_t *a, int64_t now)
{
    job_t *job = a->job;
    worker_t *w = dsp_worker_user (a->item.worker);
    const race_attempt_t *ra = race_attempt (&job->race, a->index);
    memcpy (job->att_worker[a->index], w->name, sizeof w->name);
    Aigw__Task task = AIGW__TASK__INIT;
    task.job_id = job->job_id;
    task.attempt_id = a->id;
    task.target = job->req->targets[ra->target];
    int64_t left = (job->race.deadline_at - now) / 1000;
    task.has_deadline_ms = true;
    task.deadline_ms = left < 1 ? 1 : left > UINT32_MAX ? UINT32_MAX : (uint32_t) left;
    task.has_stream = job->req->stream;
    task.stream = job->req->stream;
    task.has_ttft_timeout_ms = job->req->has_ttft_timeout_ms;
    task.ttft_timeout_ms = job->req->ttft_timeout_ms;
    if (s_send_worker (self, w, WIRE_W_TASK, &task.base, &job->payload) == 0)
        return 0;
    if (errno == EAGAIN) {
        dsp_done (self->dsp, &a->item);     // no pull: its pipe is full
        char why[BROKER_WORKER_NAME_MAX + 48];
        snprintf (why, sizeof why, "worker %s is not reading (pipe full)", w->name);
        s_pending_add (self, a->id, AIGW__ERROR_CODE__ERR_OVERLOADED, true, why);
    }
    return -1;
}

//  Give a worker queued attempts while it has credit.
static void s_worker_pull (broker_t *self, worker_t *w, int64_t now)
{
    while (!w->dead && !self->stopping) {
        dsp_item_t *it = dsp_pull (self->dsp, w->dw);
        if (!it || s_attempt_send_task (self, s_container (it, attempt_t, item), now))
            break;
    }
}

//  ---------------------------------------------------------------------------
//  Target health: cooldown and hedge budget (brokers/health.h)

//  Statistics for a model a worker just announced, with its health settings.
static model_stats_t *s_stats_new (broker_t *self, const char *model)
{
    model_stats_t *st = calloc (1, sizeof *st);
    if (!st)
        return NULL;
    cfg_health_t h;
    cfg_model_health (self->prices, model, &h);
    health_cfg_t hc = {
        .failures = h.cooldown_failures, .error_rate = h.cooldown_error_rate,
        .min_requests = h.cooldown_min_requests, .window_ms = h.cooldown_window_ms,
        .cooldown_ms = h.cooldown_ms, .cooldown_max_ms = h.cooldown_max_ms,
        .hedge_budget = h.hedge_budget,
    };
    health_init (&st->health, &hc);
    return st;
}

//  The race's gate (race_gate_fn): a cooling target is skipped; a hedge or retry
//  needs a token of the target that pays for it. GO commits: a token is taken, a
//  half-open target's probe goes out (the attempt about to be made is attempt
//  race_attempts() of the job).
static race_gate_t s_gate (void *arg, size_t target, race_kind_t kind, int payer, int64_t now)
{
    job_t *job = arg;
    broker_t *self = job->owner;
    model_stats_t *t = job->tst[target];
    if (t && !health_would_admit (&t->health, now)) {
        bool probe;
        health_admit (&t->health, now, &probe);     // counts the skip
        self->c.attempts_skipped++;
        return RACE_GATE_COOLDOWN;
    }
    bool backup = kind == RACE_KIND_HEDGE || kind == RACE_KIND_RETRY;
    model_stats_t *p = backup && payer >= 0 ? job->tst[payer] : NULL;
    if (p && !health_take_token (&p->health)) {
        if (kind == RACE_KIND_HEDGE)
            self->c.hedges_suppressed++;
        else
            self->c.retries_suppressed++;
        return RACE_GATE_BUDGET;
    }
    if (kind == RACE_KIND_HEDGE) {
        self->c.attempts_hedged++;
        if (t)
            t->hedges++;
    }
    else
    if (kind == RACE_KIND_RETRY) {
        self->c.attempts_retried++;
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

//  What an ended attempt says about its target: S_OK it answered, S_BAD it failed
//  in a way that is the provider's fault, S_NONE nothing (lost, cancelled, its
//  worker died, the client's bad request).
typedef enum { S_NONE = 0, S_OK, S_BAD } s_verdict_t;

static void s_verdict (broker_t *self, job_t *job, size_t index, s_verdict_t v, int64_t now)
{
    const race_attempt_t *ra = race_attempt (&job->race, index);
    model_stats_t *st = ra ? job->tst[ra->target] : NULL;
    if (!st)
        return;
    bool probe = job->probe_mask & (1u << index);
    job->probe_mask &= ~(1u << index);
    if (v == S_NONE) {
        if (probe)
            health_no_verdict (&st->health);
        return;
    }
    uint64_t trips = st->health.n_trips;
    health_outcome (&st->health, v == S_OK, probe, now);
    if (st->health.n_trips != trips) {
        self->c.breaker_trips++;
        log_info ("model %s cooling down for %" PRId64 " ms after failures",
                  job->req->targets[ra->target], health_wait_us (&st->health, now) / 1000);
    }
}

//  A worker's failure code: is it the provider's fault?
static s_verdict_t s_error_verdict (int code)
{
    switch (code) {
        case AIGW__ERROR_CODE__ERR_UPSTREAM:
        case AIGW__ERROR_CODE__ERR_UPSTREAM_AUTH:
        case AIGW__ERROR_CODE__ERR_RATE_LIMITED:
        case AIGW__ERROR_CODE__ERR_TIMEOUT:
        case AIGW__ERROR_CODE__ERR_TTFT:
            return S_BAD;
        default:
            return S_NONE;
    }
}

//  Can a retry succeed (docs/errors.md "Retries")? A refused or dropped connection
//  (no status), 500, 502, 503, and a 429.
static unsigned s_retry_flags (int code, uint32_t status)
{
    if (code == AIGW__ERROR_CODE__ERR_RATE_LIMITED)
        return RACE_FAIL_RETRYABLE;
    if (code == AIGW__ERROR_CODE__ERR_UPSTREAM
        && (status == 0 || status == 500 || status == 502 || status == 503))
        return RACE_FAIL_RETRYABLE;
    return 0;
}

static void s_attempt_start (broker_t *self, job_t *job, size_t index, size_t target, int64_t now)
{
    const char *model = job->req->targets[target];
    attempt_t *a = s_attempt_new (self, job, index);
    if (!a) {
        s_verdict (self, job, index, S_NONE, now);  // a probe that never went out
        race_attempt_error (&job->race, index, AIGW__ERROR_CODE__ERR_INTERNAL, "out of memory", now);
        return;
    }
    self->c.attempts_started++;
    char why[CFG_NAME_MAX + 64];
    switch (dsp_submit (self->dsp, &a->item, model)) {
        case DSP_ASSIGNED:
            s_attempt_send_task (self, a, now);
            return;
        case DSP_QUEUED:
            return;
        case DSP_UNAVAILABLE:
            s_attempt_free (self, a);
            s_verdict (self, job, index, S_NONE, now);
            snprintf (why, sizeof why, "no worker serves model %s", model);
            race_attempt_error (&job->race, index, AIGW__ERROR_CODE__ERR_UNAVAILABLE, why, now);
            self->c.attempts_failed++;
            return;
        case DSP_OVERLOADED:
            s_attempt_free (self, a);
            s_verdict (self, job, index, S_NONE, now);
            snprintf (why, sizeof why, "queue for model %s is full", model);
            race_attempt_error (&job->race, index, AIGW__ERROR_CODE__ERR_OVERLOADED, why, now);
            self->c.attempts_failed++;
            return;
    }
}

//  Remember an attempt cancelled at its worker, with what its last word needs: its
//  job (to find it while open, or to SPEND to its client) and model. Overwrites
//  whatever shared the slot (ids grow, so that is an older one; a SPEND it still
//  owed is lost).
static void s_tomb_add (broker_t *self, const job_t *job, size_t index, uint64_t attempt_id)
{
    dsp_model_t *m = dsp_model (self->dsp,
                                job->req->targets[race_attempt (&job->race, index)->target]);
    model_stats_t *st = m ? dsp_model_user (m) : NULL;
    if (!st)
        return;
    tomb_t *t = &self->tombs[attempt_id % BROKER_TOMBS];
    if (t->attempt_id && t->account[0])
        self->c.spend_lost++;
    t->attempt_id = attempt_id;
    t->st = st;
    t->model = dsp_model_name (m);
    t->chunks = 0;
    t->job_id = job->job_id;
    t->index = (uint8_t) index;
    t->cid_len = (uint8_t) job->cid_len;
    memcpy (t->cid, job->cid, job->cid_len);
    snprintf (t->account, sizeof t->account, "%s", job->req->account ? job->req->account : "");
}

static tomb_t *s_tomb_find (broker_t *self, bool has_id, uint64_t attempt_id)
{
    tomb_t *t = &self->tombs[attempt_id % BROKER_TOMBS];
    return has_id && attempt_id && t->attempt_id == attempt_id ? t : NULL;
}

//  Stop an attempt: CANCEL at its worker (credit returns at once) or unqueue it.
static void s_attempt_cancel (broker_t *self, job_t *job, size_t index, int64_t now)
{
    attempt_t *a = job->att[index];
    const race_attempt_t *ra = race_attempt (&job->race, index);
    bool deadline = race_winner (&job->race) < 0
                    && race_final_code (&job->race) == AIGW__ERROR_CODE__ERR_TIMEOUT;
    if (ra->state == RACE_ATT_CANCELLED)
        self->c.attempts_cancelled++;
    else
        self->c.attempts_failed++;          // TTFT: failed, and stopped at its worker
    //  TTFT, or still running when the job's deadline passed: the target was too slow
    s_verdict (self, job, index, ra->state == RACE_ATT_FAILED || deadline ? S_BAD : S_NONE, now);
    if (!a)
        return;
    worker_t *w = a->item.worker ? dsp_worker_user (a->item.worker) : NULL;
    if (w) {
        Aigw__AttemptRef ref = AIGW__ATTEMPT_REF__INIT;
        ref.attempt_id = a->id;
        s_send_worker (self, w, WIRE_W_CANCEL, &ref.base, NULL);
        s_tomb_add (self, job, index, a->id);
    }
    dsp_worker_t *dw = dsp_done (self->dsp, &a->item);
    s_attempt_free (self, a);
    if (dw)
        s_worker_pull (self, dsp_worker_user (dw), now);
}

//  ---------------------------------------------------------------------------
//  Usage and SPEND

static bool s_usage_known (const Aigw__Usage *u)
{
    return u && (u->has_prompt_tokens || u->has_completion_tokens);
}

//  Copy the counts only (a decoded message's unknown fields die with it).
static void s_usage_copy (Aigw__Usage *dst, const Aigw__Usage *u)
{
    aigw__usage__init (dst);
    dst->has_prompt_tokens = u->has_prompt_tokens;
    dst->prompt_tokens = u->prompt_tokens;
    dst->has_completion_tokens = u->has_completion_tokens;
    dst->completion_tokens = u->completion_tokens;
    dst->has_estimated = u->has_estimated;
    dst->estimated = u->estimated;
}

//  Keep attempt index's usage for the job's answer (if the reply carried one).
static void s_usage_keep (job_t *job, size_t index, const Aigw__Usage *u)
{
    if (!s_usage_known (u))
        return;
    s_usage_copy (&job->att_usage[index], u);
    job->usage_known |= 1u << index;
}

static void s_send_spend (broker_t *self, const tomb_t *t, const Aigw__Usage *u)
{
    Aigw__Usage usage;
    s_usage_copy (&usage, u);
    Aigw__Spend sp = AIGW__SPEND__INIT;
    sp.job_id = t->job_id;
    sp.attempt_id = t->attempt_id;
    sp.target = (char *) t->model;
    sp.usage = &usage;
    sp.account = (char *) t->account;
    if (wire_send (self->frontend, t->cid, t->cid_len, WIRE_SIDE_CLIENT, WIRE_C_SPEND, &sp.base,
                   NULL)) {
        self->c.send_failures++;
        self->c.spend_lost++;
        log_debug ("send SPEND for job %" PRIu64 " attempt %" PRIu64 " failed: %s", t->job_id,
                   t->attempt_id, zmq_strerror (errno));
        return;
    }
    self->c.spend_sent++;
}

//  A cancelled attempt's last word (cancel acknowledgement, late RESULT or ERROR)
//  with the usage it consumed: into its job's answer while the job is open, else
//  into its model's cost and, for a job with an account, one SPEND to its client.
//  The tomb is freed, so nothing is charged twice.
static void s_tomb_settle (broker_t *self, tomb_t *t, const Aigw__Usage *u)
{
    if (s_usage_known (u)) {
        job_t *job = s_job_find (self, t->cid, t->cid_len, t->job_id);
        if (job && job->att_id[t->index] == t->attempt_id)
            s_usage_keep (job, t->index, u);
        else {
            bmetrics_late_usage (self, t->st, t->model, u);
            if (t->account[0])
                s_send_spend (self, t, u);
        }
    }
    t->attempt_id = 0;
}

//  ---------------------------------------------------------------------------
//  Answers

static uint64_t s_rel (int64_t t, int64_t t0)
{
    return t > t0 ? (uint64_t) (t - t0) : 0;
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

model_stats_t *broker_stats (broker_t *self, const char *model)
{
    dsp_model_t *m = dsp_model (self->dsp, model);
    return m ? dsp_model_user (m) : NULL;
}

static void s_answer_result (broker_t *self, job_t *job, size_t index, int64_t now)
{
    const race_attempt_t *ra = race_attempt (&job->race, index);
    const char *target = job->req->targets[ra->target];
    model_stats_t *st = broker_stats (self, target);
    if (st)
        hist_record (&st->latency, s_rel (ra->finished, ra->started));
    self->c.jobs_won++;
    self->c.attempts_won++;
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
    s_send_client (self, job, WIRE_C_RESULT, &out.base);
    bmetrics_job (self, job, BM_JOB_WON, 0, NULL, now);
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

static void s_answer_error (broker_t *self, job_t *job, int code, const char *message,
                            int64_t now)
{
    bm_outcome_t outcome = BM_JOB_FAILED;
    if (code == AIGW__ERROR_CODE__ERR_TIMEOUT) {
        self->c.jobs_timeout++;
        outcome = BM_JOB_TIMEOUT;
    }
    else
    if (code == AIGW__ERROR_CODE__ERR_CANCELLED) {
        self->c.jobs_cancelled++;
        outcome = BM_JOB_CANCELLED;
    }
    else
        self->c.jobs_failed++;
    if (code == AIGW__ERROR_CODE__ERR_COOLDOWN)
        self->c.jobs_cooldown++;
    char buf[BROKER_MSG_MAX];
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
    s_send_client (self, job, WIRE_C_ERROR, &out.base);
    bmetrics_job (self, job, outcome, code, message, now);
    log_debug ("job %" PRIu64 " failed: %s: %s", job->job_id, race_code_name (code), message);
}

//  ---------------------------------------------------------------------------
//  Jobs

static void s_job_destroy (broker_t *self, job_t *job)
{
    for (size_t i = 0; i < RACE_ATTEMPTS_MAX; i++)
        if (job->att[i]) {
            dsp_worker_t *dw = dsp_done (self->dsp, &job->att[i]->item);
            s_attempt_free (self, job->att[i]);
            (void) dw;      // only reached on shutdown; no one to pull for
        }
    theap_remove (&self->timers, &job->timer);
    hmap_remove (&self->jobs, &job->node);
    race_fini (&job->race);
    zmq_msg_close (&job->payload);
    protobuf_c_message_free_unpacked (&job->req->base, NULL);
    s_job_release (self, job);
}

//  Execute the race's actions for a job, then re-arm its timer or drop it.
//  message: overrides the FINISH_ERROR text (NULL: the race's own).
static void s_job_apply_msg (broker_t *self, job_t *job, int64_t now, const char *message)
{
    race_action_t act;
    while (race_next_action (&job->race, &act)) {
        if (act.type == RACE_DISPATCH) {
            if (race_attempt (&job->race, act.attempt)->state == RACE_ATT_RUNNING)
                s_attempt_start (self, job, act.attempt, act.target, now);
        }
        else
        if (act.type == RACE_CANCEL)
            s_attempt_cancel (self, job, act.attempt, now);
        else
        if (act.type == RACE_FINISH_RESULT)
            s_answer_result (self, job, act.attempt, now);
        else
            s_answer_error (self, job, act.code, message, now);
    }
    if (race_finished (&job->race))
        s_job_destroy (self, job);
    else
    if (theap_set (&self->timers, &job->timer, race_next_timer (&job->race)))
        log_error ("timer heap full: job %" PRIu64 " relies on replies only", job->job_id);
}

static void s_job_apply (broker_t *self, job_t *job, int64_t now)
{
    s_job_apply_msg (self, job, now, NULL);
}

//  Check a SUBMIT; returns NULL if fine, else why not.
static const char *s_submit_invalid (const Aigw__Job *req, const wire_msg_t *msg)
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
    if (req->account && strnlen (req->account, BROKER_ACCOUNT_MAX) >= BROKER_ACCOUNT_MAX)
        return "account name too long";
    if (req->has_policy && req->policy != AIGW__POLICY__POLICY_RACE
        && req->policy != AIGW__POLICY__POLICY_HEDGE && req->policy != AIGW__POLICY__POLICY_FALLBACK)
        return "unknown policy";
    return NULL;
}

static void s_reject (broker_t *self, const wire_msg_t *msg, uint64_t job_id, const char *why)
{
    self->c.jobs_rejected++;
    Aigw__Error out = AIGW__ERROR__INIT;
    out.job_id = job_id;
    out.code = AIGW__ERROR_CODE__ERR_BAD_REQUEST;
    out.message = (char *) why;
    if (wire_send (self->frontend, msg->id, msg->id_len, WIRE_SIDE_CLIENT, WIRE_C_ERROR, &out.base,
                   NULL))
        self->c.send_failures++;
    log_debug ("rejected job %" PRIu64 ": %s", job_id, why);
}

static void s_race_config (broker_t *self, const Aigw__Job *req, race_config_t *rc)
{
    memset (rc, 0, sizeof *rc);
    rc->policy = req->has_policy ? (race_policy_t) req->policy : RACE_POLICY_RACE;
    rc->ntargets = req->n_targets;
    rc->deadline_us = self->deadline_us;
    if (req->has_deadline_ms && req->deadline_ms > 0) {
        rc->deadline_us = (int64_t) req->deadline_ms * 1000;
        if (rc->deadline_us > self->max_deadline_us)
            rc->deadline_us = self->max_deadline_us;
    }
    rc->ttft_us = req->has_ttft_timeout_ms ? (int64_t) req->ttft_timeout_ms * 1000 : 0;
    rc->stream = req->has_stream && req->stream;
    //  Retries: a race of several already has its spare attempts running
    if (req->has_retries)
        rc->retries = (uint8_t) (req->retries < RACE_RETRIES_MAX ? req->retries : RACE_RETRIES_MAX);
    else
        rc->retries = rc->policy == RACE_POLICY_RACE && req->n_targets > 1 ? 0 : 1;
    rc->retry_backoff_us = (int64_t) (req->has_retry_backoff_ms ? req->retry_backoff_ms
                                                                : self->retry_backoff_ms) * 1000;
    rc->seed = (req->job_id ^ (self->c.jobs_accepted << 24) ^ (uint64_t) self->started)
               * 0x9e3779b97f4a7c15ULL;    // the backoff's jitter: differs per job
    for (size_t t = 0; rc->policy == RACE_POLICY_HEDGE && t < req->n_targets; t++) {
        if (req->has_hedge_delay_ms) {
            rc->hedge_delay_us[t] = (int64_t) req->hedge_delay_ms * 1000;
            continue;
        }
        model_stats_t *st = broker_stats (self, req->targets[t]);
        rc->hedge_delay_us[t] = race_hedge_auto_us (st ? st->p95_us : 0, st ? st->p95_n : 0,
                                                    self->hedge_default_ms);
    }
}

static void s_on_submit (broker_t *self, wire_msg_t *msg, int64_t now)
{
    Aigw__Job *req = (Aigw__Job *) wire_unpack (&aigw__job__descriptor, &msg->body);
    if (!req) {
        s_malformed (self, msg->id, msg->id_len, "client", "SUBMIT body does not decode");
        return;
    }
    const char *why = s_submit_invalid (req, msg);
    if (!why && s_job_find (self, msg->id, msg->id_len, req->job_id))
        why = "job_id is already live";
    race_config_t rc;
    if (!why)
        s_race_config (self, req, &rc);
    job_t *job = why ? NULL : s_job_alloc (self);
    if (!why && !job)
        why = "out of memory";
    if (why) {
        s_reject (self, msg, req->job_id, why);
        protobuf_c_message_free_unpacked (&req->base, NULL);
        return;
    }
    memset (job, 0, offsetof (job_t, race));
    memset (job->att, 0, sizeof job->att);
    for (size_t i = 0; i < RACE_ATTEMPTS_MAX; i++) {
        //  Attempts that never reach a worker (skipped, refused) must not show a
        //  previous job's id, worker or provider answer
        job->att_id[i] = 0;
        job->att_worker[i][0] = 0;
        job->att_upstream_status[i] = 0;
        job->att_retry_after_ms[i] = 0;
        job->att_upstream_code[i][0] = 0;
    }
    job->job_id = req->job_id;
    memcpy (job->cid, msg->id, msg->id_len);
    job->cid_len = msg->id_len;
    job->req = req;
    job->accepted = now;
    theap_node_init (&job->timer);
    zmq_msg_init (&job->payload);
    zmq_msg_move (&job->payload, &msg->payload);
    job->owner = self;
    job->probe_mask = 0;
    for (size_t t = 0; t < req->n_targets; t++)
        job->tst[t] = broker_stats (self, req->targets[t]);
    rc.gate = s_gate;
    rc.gate_arg = job;
    race_init (&job->race, &rc);
    hmap_insert (&self->jobs, &job->node, s_job_hash (job->cid, job->cid_len, job->job_id));
    self->c.jobs_accepted++;
    race_start (&job->race, now);
    s_job_apply (self, job, now);
}

static void s_on_client_cancel (broker_t *self, wire_msg_t *msg, int64_t now)
{
    Aigw__JobRef *ref = (Aigw__JobRef *) wire_unpack (&aigw__job_ref__descriptor, &msg->body);
    if (!ref) {
        s_malformed (self, msg->id, msg->id_len, "client", "CANCEL body does not decode");
        return;
    }
    job_t *job = s_job_find (self, msg->id, msg->id_len, ref->job_id);
    if (job && race_client_cancel (&job->race, now) == RACE_EV_OK)
        s_job_apply (self, job, now);
    else
        log_debug ("CANCEL for unknown job %" PRIu64, ref->job_id);
    protobuf_c_message_free_unpacked (&ref->base, NULL);
}

static void s_on_ping (broker_t *self, wire_msg_t *msg)
{
    size_t n = dsp_model_count (self->dsp);
    Aigw__ModelStatus *ms = calloc (n ? n : 1, sizeof *ms);
    Aigw__ModelStatus **mp = calloc (n ? n : 1, sizeof *mp);
    Aigw__BrokerStatus st = AIGW__BROKER_STATUS__INIT;
    size_t live = 0;
    for (size_t i = 0; ms && mp && i < n; i++) {
        dsp_model_t *m = dsp_model_at (self->dsp, i);
        if (dsp_model_workers (m) == 0)
            continue;
        Aigw__ModelStatus *x = &ms[live];
        aigw__model_status__init (x);
        x->name = (char *) dsp_model_name (m);
        x->has_workers = x->has_capacity = x->has_in_flight = x->has_queued = true;
        x->workers = dsp_model_workers (m);
        x->capacity = dsp_model_capacity (m);
        x->in_flight = dsp_model_in_flight (m);
        x->queued = dsp_model_queued (m);
        mp[live++] = x;
    }
    st.n_models = live;
    st.models = mp;
    st.has_workers = st.has_jobs_in_flight = true;
    st.workers = (uint32_t) dsp_worker_count (self->dsp);
    st.jobs_in_flight = self->jobs.size;
    st.broker_id = self->broker_id;
    if (wire_send (self->frontend, msg->id, msg->id_len, WIRE_SIDE_CLIENT, WIRE_C_PONG, &st.base,
                   NULL))
        self->c.send_failures++;
    free (ms);
    free (mp);
}

//  CURVE: only certificates in fabric/clients may use the frontend; the rest are
//  counted and logged once per certificate.
static bool s_client_admitted (broker_t *self, const wire_msg_t *msg)
{
    const curve_peer_t *p = curve_server_peer (self->curve, msg->user_id);
    if (p && p->client)
        return true;
    self->c.denied_clients++;
    if (s_denied_first (self, msg->user_id, 'C'))
        log_warn ("frontend: %s from certificate %s (%s) dropped: not in fabric/clients"
                  " (further ones from this certificate are only counted)",
                  wire_cmd_name (WIRE_SIDE_CLIENT, msg->cmd), p ? p->name : "unknown",
                  msg->user_id[0] ? msg->user_id : "no key");
    return false;
}

static void s_on_client (broker_t *self, wire_msg_t *msg, int64_t now)
{
    if (msg->side != WIRE_SIDE_CLIENT || !wire_cmd_valid (WIRE_SIDE_CLIENT, msg->cmd, true)) {
        s_malformed (self, msg->id, msg->id_len, "client", "wrong header or command");
        return;
    }
    if (self->curve && !s_client_admitted (self, msg))
        return;
    if (msg->cmd == WIRE_C_SUBMIT)
        s_on_submit (self, msg, now);
    else
    if (msg->cmd == WIRE_C_CANCEL)
        s_on_client_cancel (self, msg, now);
    else
        s_on_ping (self, msg);
}

//  ---------------------------------------------------------------------------
//  Workers

static void s_pending_add (broker_t *self, uint64_t attempt_id, int code, bool retry,
                           const char *reason)
{
    if (self->npending == self->pending_cap) {
        size_t cap = self->pending_cap ? self->pending_cap * 2 : 64;
        pending_t *p = realloc (self->pending, cap * sizeof *p);
        if (!p) {
            log_error ("out of memory: attempt %" PRIu64 " left to its deadline", attempt_id);
            return;
        }
        self->pending = p;
        self->pending_cap = cap;
    }
    pending_t *p = &self->pending[self->npending++];
    p->attempt_id = attempt_id;
    p->code = code;
    p->retry = retry || code == AIGW__ERROR_CODE__ERR_WORKER_LOST;
    snprintf (p->reason, sizeof p->reason, "%s", reason);
}

//  Take a worker out of service now; its attempts are failed at the next reap.
static void s_worker_kill (broker_t *self, worker_t *w, const char *why)
{
    if (w->dead)
        return;
    self->c.workers_lost++;
    w->dead = true;
    bmetrics_worker (self, w, "leave", why);
    dsp_item_t *lost = NULL, *orphans = NULL;
    dsp_worker_remove (self->dsp, &w->dw, &lost, &orphans);
    char reason[128];
    snprintf (reason, sizeof reason, "worker %s lost: %s", w->name, why);
    size_t nlost = 0;
    for (dsp_item_t *it = lost; it; it = it->next, nlost++)
        s_pending_add (self, s_container (it, attempt_t, item)->id,
                       AIGW__ERROR_CODE__ERR_WORKER_LOST, true, reason);
    log_write (nlost || strcmp (why, "sent DISCONNECT") ? LOG_LVL_WARN : LOG_LVL_INFO,
               "worker %s left: %s (%zu attempt(s) in flight)", w->name, why, nlost);
    for (dsp_item_t *it = orphans; it; it = it->next) {
        attempt_t *a = s_container (it, attempt_t, item);
        const race_attempt_t *ra = race_attempt (&a->job->race, a->index);
        snprintf (reason, sizeof reason, "no worker serves model %s",
                  a->job->req->targets[ra->target]);
        s_pending_add (self, a->id, AIGW__ERROR_CODE__ERR_UNAVAILABLE, false, reason);
    }
    hmap_remove (&self->workers, &w->node);
    if (w->prev)
        w->prev->next = w->next;
    else
        self->worker_list = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = NULL;
    w->next = self->graveyard;
    self->graveyard = w;
}

//  Fail the attempts of dead workers and free dead worker records. Called where
//  no job is being processed.
static void s_reap (broker_t *self, int64_t now)
{
    for (size_t i = 0; i < self->npending; i++) {
        pending_t p = self->pending[i];     // copy: the array may grow below
        attempt_t *a = s_attempt_find (self, p.attempt_id);
        if (!a || a->item.worker || a->item.queued)
            continue;
        job_t *job = a->job;
        size_t index = a->index;
        s_attempt_free (self, a);
        s_verdict (self, job, index, S_NONE, now);
        if (race_attempt_fail (&job->race, index, p.code, p.reason,
                               p.retry ? RACE_FAIL_REDISPATCH : 0, 0, now) != RACE_EV_OK)
            continue;
        self->c.attempts_failed++;
        if (race_attempt (&job->race, index)->replaced)
            self->c.attempts_redispatched++;
        s_job_apply (self, job, now);
    }
    self->npending = 0;
    while (self->graveyard) {
        worker_t *w = self->graveyard;
        self->graveyard = w->next;
        free (w);
    }
}

static void s_disconnect_peer (broker_t *self, const uint8_t *id, size_t len)
{
    if (wire_send (self->backend, id, len, WIRE_SIDE_WORKER, WIRE_W_DISCONNECT, NULL, NULL))
        self->c.send_failures++;
}

//  CURVE: the models of a READY that fabric/workers lets its certificate serve, as
//  pointers into h. Counts the others and logs them once per certificate.
static size_t s_ready_allowed (broker_t *self, const wire_msg_t *msg,
                               const Aigw__WorkerHello *h, const char **allowed)
{
    const curve_peer_t *p = self->curve ? curve_server_peer (self->curve, msg->user_id) : NULL;
    char refused[256] = "";
    size_t n = 0, off = 0;
    for (size_t i = 0; i < h->n_models; i++) {
        if (!self->curve || curve_server_may_serve (self->curve, p, h->models[i])) {
            allowed[n++] = h->models[i];
            continue;
        }
        self->c.denied_models++;
        int k = off + 1 < sizeof refused
              ? snprintf (refused + off, sizeof refused - off, "%s%s", off ? "," : "", h->models[i])
              : 0;
        off = k < 0 || off + (size_t) k >= sizeof refused ? sizeof refused - 1 : off + (size_t) k;
    }
    if (n == 0)
        self->c.denied_readys++;
    if (n < h->n_models && s_denied_first (self, msg->user_id, 'W')) {
        char shown[sizeof refused], id[BROKER_WORKER_NAME_MAX];
        s_printable (shown, sizeof shown, refused);
        s_printable (id, sizeof id, h->worker_id);
        log_warn ("READY from %s, certificate %s (%s): fabric/workers does not let it serve %s;"
                  " %s (further refusals for this certificate are only counted)", id,
                  p ? p->name : "unknown", msg->user_id[0] ? msg->user_id : "no key", shown,
                  n ? "registered without them" : "refused");
    }
    return n;
}

//  READY: validate the hello, register the worker, hand it queued work.
static void s_on_ready (broker_t *self, wire_msg_t *msg, int64_t now)
{
    Aigw__WorkerHello *h = (Aigw__WorkerHello *) wire_unpack (&aigw__worker_hello__descriptor,
                                                              &msg->body);
    const char *why = !h ? "READY body does not decode"
                    : h->n_models == 0 ? "READY without models"
                    : h->n_models > DSP_WORKER_MODELS_MAX ? "READY with too many models"
                    : h->capacity == 0 ? "READY with capacity 0" : NULL;
    for (size_t i = 0; !why && i < h->n_models; i++) {
        size_t n = strnlen (h->models[i], CFG_NAME_MAX);
        if (n == 0 || n >= CFG_NAME_MAX)
            why = "READY with an empty or too long model name";
    }
    if (why) {
        s_malformed (self, msg->id, msg->id_len, "worker", why);
        goto cleanup;
    }
    const char *allowed[DSP_WORKER_MODELS_MAX];
    size_t nallowed = s_ready_allowed (self, msg, h, allowed);
    if (nallowed == 0) {
        s_disconnect_peer (self, msg->id, msg->id_len);    // it backs off before retrying
        goto cleanup;
    }
    worker_t *old = s_worker_find (self, msg->id, msg->id_len);
    if (old)
        s_worker_kill (self, old, "registered again");
    worker_t *w = calloc (1, sizeof *w);
    if (!w)
        goto cleanup;
    memcpy (w->rid, msg->id, msg->id_len);
    w->rid_len = msg->id_len;
    memcpy (w->key, msg->user_id, sizeof w->key);
    s_printable (w->name, sizeof w->name, h->worker_id);
    w->expiry = now + self->expiry_us;
    w->dw = dsp_worker_add (self->dsp, allowed, nallowed, h->capacity, w);
    if (!w->dw) {
        free (w);
        log_error ("cannot register worker %s (out of memory or model limit)", h->worker_id);
        goto cleanup;
    }
    for (size_t i = 0; i < nallowed; i++) {
        dsp_model_t *m = dsp_model (self->dsp, allowed[i]);
        if (m && !dsp_model_user (m))
            dsp_model_set_user (m, s_stats_new (self, allowed[i]));
    }
    hmap_insert (&self->workers, &w->node, hmap_bytes (w->rid, w->rid_len));
    w->next = self->worker_list;
    if (self->worker_list)
        self->worker_list->prev = w;
    self->worker_list = w;
    self->c.workers_joined++;
    char models[256] = "";
    for (size_t i = 0, off = 0; i < nallowed && off + 1 < sizeof models; i++) {
        int n = snprintf (models + off, sizeof models - off, "%s%s", i ? "," : "", allowed[i]);
        off = n < 0 ? sizeof models : off + (size_t) n;
    }
    char shown[sizeof models];
    s_printable (shown, sizeof shown, models);
    log_info ("worker %s joined: models %s, capacity %u", w->name, shown,
              dsp_worker_capacity (w->dw));
    bmetrics_worker (self, w, "join", NULL);
    s_worker_pull (self, w, now);
cleanup:
    if (h)
        protobuf_c_message_free_unpacked (&h->base, NULL);
}

//  Find the live attempt a worker reply names; counts and returns NULL if none.
static attempt_t *s_reply_attempt (broker_t *self, worker_t *w, bool has_id, uint64_t id,
                                   bool is_cancel_ack)
{
    attempt_t *a = has_id ? s_attempt_find (self, id) : NULL;
    if (a && a->item.worker == w->dw && w->dw)
        return a;
    if (is_cancel_ack)
        self->c.cancel_acks++;
    else
        self->c.late_replies++;
    return NULL;
}

//  A late RESULT of a cancelled attempt: the tokens it produced anyway were wasted.
static void s_tomb_result (broker_t *self, const Aigw__Result *res)
{
    tomb_t *t = s_tomb_find (self, res->has_attempt_id, res->attempt_id);
    if (!t)
        return;
    const Aigw__Usage *u = res->usage;
    if (u && u->has_completion_tokens && u->completion_tokens > t->chunks)
        t->st->tokens_wasted += u->completion_tokens - t->chunks;
    s_tomb_settle (self, t, u);
}

static void s_on_result (broker_t *self, worker_t *w, wire_msg_t *msg, int64_t now)
{
    Aigw__Result *res = (Aigw__Result *) wire_unpack (&aigw__result__descriptor, &msg->body);
    if (!res) {
        s_malformed (self, msg->id, msg->id_len, "worker", "RESULT body does not decode");
        return;
    }
    attempt_t *a = s_reply_attempt (self, w, res->has_attempt_id, res->attempt_id, false);
    if (a) {
        job_t *job = a->job;
        size_t index = a->index;
        dsp_worker_t *dw = dsp_done (self->dsp, &a->item);
        s_attempt_free (self, a);
        s_usage_keep (job, index, res->usage);
        s_verdict (self, job, index, S_OK, now);
        if (race_attempt_result (&job->race, index, now) == RACE_EV_OK) {
            job->result = res;
            s_job_apply (self, job, now);   // job may be gone after this
        }
        else
            self->c.late_replies++;
        if (dw)
            s_worker_pull (self, w, now);
    }
    else
        s_tomb_result (self, res);
    protobuf_c_message_free_unpacked (&res->base, NULL);
}

static int s_error_code (int code)
{
    if (code <= AIGW__ERROR_CODE__ERR_NONE || code > AIGW__ERROR_CODE__ERR_RATE_LIMITED)
        return AIGW__ERROR_CODE__ERR_UPSTREAM;
    return code;
}

//  Keep what the provider said about a failed attempt (status, code, Retry-After).
static void s_upstream_keep (job_t *job, size_t index, const Aigw__Error *err)
{
    job->att_upstream_status[index] = err->has_upstream_status && err->upstream_status < 1000
                                    ? (uint16_t) err->upstream_status : 0;
    job->att_retry_after_ms[index] = err->has_retry_after_ms ? err->retry_after_ms : 0;
    size_t o = 0;
    for (const char *p = err->upstream_code; p && *p && o + 1 < BROKER_UPSTREAM_CODE_MAX; p++)
        if (*p > 0x20 && *p < 0x7f)
            job->att_upstream_code[index][o++] = *p;
    job->att_upstream_code[index][o] = 0;
}

static void s_on_error (broker_t *self, worker_t *w, wire_msg_t *msg, int64_t now)
{
    Aigw__Error *err = (Aigw__Error *) wire_unpack (&aigw__error__descriptor, &msg->body);
    if (!err) {
        s_malformed (self, msg->id, msg->id_len, "worker", "ERROR body does not decode");
        return;
    }
    bool ack = err->code == AIGW__ERROR_CODE__ERR_CANCELLED;
    attempt_t *a = s_reply_attempt (self, w, err->has_attempt_id, err->attempt_id, ack);
    if (a) {
        job_t *job = a->job;
        size_t index = a->index;
        dsp_worker_t *dw = dsp_done (self->dsp, &a->item);
        s_attempt_free (self, a);
        int code = s_error_code (err->code);
        s_usage_keep (job, index, err->usage);
        s_upstream_keep (job, index, err);
        s_verdict (self, job, index, s_error_verdict (code), now);
        unsigned flags = code == AIGW__ERROR_CODE__ERR_WORKER_LOST ? RACE_FAIL_REDISPATCH
                       : s_retry_flags (code, job->att_upstream_status[index]);
        int64_t retry_after = code == AIGW__ERROR_CODE__ERR_RATE_LIMITED
                            ? (int64_t) job->att_retry_after_ms[index] * 1000 : 0;
        if (race_attempt_fail (&job->race, index, code, err->message, flags, retry_after, now)
            == RACE_EV_OK) {
            self->c.attempts_failed++;
            if (race_attempt (&job->race, index)->replaced)
                self->c.attempts_redispatched++;
            s_job_apply (self, job, now);
        }
        else
            self->c.late_replies++;
        if (dw)
            s_worker_pull (self, w, now);
    }
    else {
        tomb_t *t = s_tomb_find (self, err->has_attempt_id, err->attempt_id);
        if (t)
            s_tomb_settle (self, t, err->usage);    // its last word: nothing more will come
    }
    protobuf_c_message_free_unpacked (&err->base, NULL);
}

static void s_forward_chunk (broker_t *self, job_t *job, const Aigw__Chunk *in, size_t index)
{
    Aigw__Chunk out = AIGW__CHUNK__INIT;
    out.job_id = job->job_id;
    out.has_attempt_id = true;
    out.attempt_id = job->att_id[index];
    out.has_seq = true;
    out.seq = job->chunk_seq++;
    out.model = job->req->targets[race_attempt (&job->race, index)->target];
    out.has_delta_json = in->has_delta_json;
    out.delta_json = in->delta_json;
    s_send_client (self, job, WIRE_C_CHUNK, &out.base);
}

static void s_on_chunk (broker_t *self, worker_t *w, wire_msg_t *msg, int64_t now)
{
    Aigw__Chunk *ch = (Aigw__Chunk *) wire_unpack (&aigw__chunk__descriptor, &msg->body);
    if (!ch) {
        s_malformed (self, msg->id, msg->id_len, "worker", "CHUNK body does not decode");
        return;
    }
    attempt_t *a = s_reply_attempt (self, w, ch->has_attempt_id, ch->attempt_id, false);
    if (a) {
        job_t *job = a->job;
        size_t index = a->index;
        const race_attempt_t *ra = race_attempt (&job->race, index);
        bool first = ra->first_token < 0;
        if (race_attempt_chunk (&job->race, index, now) == RACE_EV_OK) {
            model_stats_t *st = first ? broker_stats (self, job->req->targets[ra->target]) : NULL;
            if (st)
                hist_record (&st->ttft, s_rel (now, ra->started));
            if (job->race.cfg.stream && race_winner (&job->race) == (int) index)
                s_forward_chunk (self, job, ch, index);
            s_job_apply (self, job, now);
        }
        else
            self->c.late_replies++;
    }
    else {
        tomb_t *t = s_tomb_find (self, ch->has_attempt_id, ch->attempt_id);
        if (t) {
            t->chunks++;
            t->st->tokens_wasted++;
        }
    }
    protobuf_c_message_free_unpacked (&ch->base, NULL);
}

//  HEARTBEAT: keep the worker's own counters; hand it queued work if it has credit
//  (a TASK refused earlier because its pipe was full is retried this way).
static void s_on_heartbeat (broker_t *self, worker_t *w, wire_msg_t *msg, int64_t now)
{
    if (zmq_msg_size (&msg->body) > 0) {
        Aigw__WorkerStats *st = (Aigw__WorkerStats *) wire_unpack (&aigw__worker_stats__descriptor,
                                                                   &msg->body);
        if (!st)
            s_malformed (self, msg->id, msg->id_len, "worker", "HEARTBEAT body does not decode");
        else {
            w->completed = st->has_completed ? st->completed : w->completed;
            w->failed = st->has_failed ? st->failed : w->failed;
            w->cancelled = st->has_cancelled ? st->cancelled : w->cancelled;
            protobuf_c_message_free_unpacked (&st->base, NULL);
        }
    }
    s_worker_pull (self, w, now);
}

static void s_on_worker (broker_t *self, wire_msg_t *msg, int64_t now)
{
    if (msg->side != WIRE_SIDE_WORKER || !wire_cmd_valid (WIRE_SIDE_WORKER, msg->cmd, true)) {
        s_malformed (self, msg->id, msg->id_len, "worker", "wrong header or command");
        return;
    }
    if (msg->cmd == WIRE_W_READY) {
        s_on_ready (self, msg, now);
        return;
    }
    worker_t *w = s_worker_find (self, msg->id, msg->id_len);
    if (w && self->curve && strcmp (w->key, msg->user_id) != 0) {
        s_worker_kill (self, w, "its routing id came back with another certificate");
        w = NULL;
    }
    if (!w) {
        self->c.unknown_worker++;
        if (msg->cmd != WIRE_W_DISCONNECT)
            s_disconnect_peer (self, msg->id, msg->id_len);
        return;
    }
    w->expiry = now + self->expiry_us;
    if (msg->cmd == WIRE_W_RESULT)
        s_on_result (self, w, msg, now);
    else
    if (msg->cmd == WIRE_W_ERROR)
        s_on_error (self, w, msg, now);
    else
    if (msg->cmd == WIRE_W_CHUNK)
        s_on_chunk (self, w, msg, now);
    else
    if (msg->cmd == WIRE_W_DISCONNECT)
        s_worker_kill (self, w, "sent DISCONNECT");
    else
        s_on_heartbeat (self, w, msg, now);
}

//  Every heartbeat interval: expire silent workers, heartbeat the rest.
static void s_heartbeat (broker_t *self, int64_t now)
{
    worker_t *w = self->worker_list;
    while (w) {
        worker_t *next = w->next;
        if (now >= w->expiry)
            s_worker_kill (self, w, "heartbeat expired");
        else
            s_send_worker (self, w, WIRE_W_HEARTBEAT, NULL, NULL);
        w = next;
    }
}

void broker_log_summary (const broker_t *self)
{
    const broker_counters_t *c = &self->c;
    log_info ("summary: jobs accepted=%" PRIu64 " rejected=%" PRIu64 " won=%" PRIu64
              " failed=%" PRIu64 " timeout=%" PRIu64 " cancelled=%" PRIu64 " in_flight=%zu;"
              " attempts started=%" PRIu64 " won=%" PRIu64 " cancelled=%" PRIu64
              " failed=%" PRIu64 " redispatched=%" PRIu64 " late=%" PRIu64 " cancel_acks=%" PRIu64
              "; malformed=%" PRIu64 " unknown_worker=%" PRIu64 "; denied clients=%" PRIu64
              " models=%" PRIu64 " readys=%" PRIu64 " handshakes=%" PRIu64
              "; workers joined=%" PRIu64
              " lost=%" PRIu64 " live=%zu; send_failures=%" PRIu64 " (pipe full %" PRIu64 ")",
              c->jobs_accepted, c->jobs_rejected, c->jobs_won, c->jobs_failed, c->jobs_timeout,
              c->jobs_cancelled, self->jobs.size, c->attempts_started, c->attempts_won,
              c->attempts_cancelled, c->attempts_failed, c->attempts_redispatched,
              c->late_replies, c->cancel_acks, c->malformed, c->unknown_worker,
              c->denied_clients, c->denied_models, c->denied_readys, c->denied_handshakes,
              c->workers_joined, c->workers_lost, dsp_worker_count (self->dsp),
              c->send_failures, c->send_full);
}

//  ---------------------------------------------------------------------------
//  Construction

//  Bind ep and replace it with the endpoint bound (a wildcard port "*" becomes the
//  port the kernel chose), so logs and tests see the real one.
static void *s_bind (broker_t *self, int type, char *ep, size_t eplen, int64_t max_frame,
                     bool router)
{
    void *s = zmq_socket (self->ctx, type);
    if (!s) {
        log_error ("cannot create socket: %s", zmq_strerror (errno));
        return NULL;
    }
    if (wire_setup_socket (s, router, max_frame)
        || (self->curve && curve_server_apply (self->curve, s)) || zmq_bind (s, ep)) {
        log_error ("cannot bind %s: %s", ep, zmq_strerror (errno));
        zmq_close (s);
        return NULL;
    }
    wire_bound_endpoint (s, ep, eplen);
    return s;
}

//  Protected mode: no endpoint beyond loopback without CURVE (unless fabric/insecure).
static int s_protected (const cfg_t *cfg)
{
    const char *keys[] = { "broker/frontend", "broker/backend", "broker/metrics" };
    const char *eps[] = { cfg->broker.frontend, cfg->broker.backend, cfg->broker.metrics };
    for (size_t i = 0; i < 3; i++) {
        char err[1024];
        if (curve_check_bind (cfg, keys[i], eps[i], err, sizeof err)) {
            log_error ("%s", err);
            return -1;
        }
    }
    if (!cfg->fabric.curve && cfg->fabric.insecure)
        for (size_t i = 0; i < 3; i++)
            if (!cfg_is_loopback (eps[i]))
                log_warn ("fabric/insecure = true: %s = %s accepts anyone, in clear text",
                          keys[i], eps[i]);
    return 0;
}

//  Watch a CURVE socket's refused handshakes (zmq monitor -> PAIR in ctx, the
//  socket's own context). 0 / -1.
static int s_monitor (broker_t *self, void *ctx, void *sock, size_t slot)
{
    char ep[96];
    snprintf (ep, sizeof ep, "inproc://aigw-broker-%p-mon-%zu", (void *) self, slot);
    int events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
               | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    if (zmq_socket_monitor (sock, ep, events))
        return -1;
    self->monitor[slot] = zmq_socket (ctx, ZMQ_PAIR);
    int zero = 0;
    if (!self->monitor[slot]
        || zmq_setsockopt (self->monitor[slot], ZMQ_LINGER, &zero, sizeof zero)
        || zmq_connect (self->monitor[slot], ep))
        return -1;
    return 0;
}

//  CURVE on: the zauth actor and our keys. Sockets are created in CZMQ's context,
//  where zauth answers ZAP (libzmq lets anyone in when no ZAP handler is there).
static int s_curve_start (broker_t *self, const cfg_t *cfg, void *zmq_ctx)
{
    if (zmq_ctx && zmq_ctx != zsys_init ()) {
        log_error ("fabric/curve = on needs the broker's sockets in CZMQ's context "
                   "(pass NULL or zsys_init ())");
        return -1;
    }
    char err[1024];
    self->curve = curve_server_new (cfg, err, sizeof err);
    if (!self->curve) {
        log_error ("%s", err);
        return -1;
    }
    log_info ("fabric: CURVE on, certificates in %s (clients: %s)", cfg->fabric.cert_dir,
              cfg->fabric.clients);
    return 0;
}

broker_t *broker_new (const cfg_t *cfg, void *zmq_ctx)
{
    pthread_once (&s_seed_once, s_seed);
    if (s_protected (cfg))
        return NULL;
    broker_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->wake[0] = self->wake[1] = -1;
    msgpack_sbuffer_init (&self->sbuf);
    self->own_ctx = zmq_ctx == NULL && !cfg->fabric.curve;
    self->ctx = zmq_ctx ? zmq_ctx : cfg->fabric.curve ? zsys_init () : zmq_ctx_new ();
    snprintf (self->ep_front, sizeof self->ep_front, "%s", cfg->broker.frontend);
    snprintf (self->ep_back, sizeof self->ep_back, "%s", cfg->broker.backend);
    snprintf (self->ep_metrics, sizeof self->ep_metrics, "%s", cfg->broker.metrics);
    self->heartbeat_us = (int64_t) cfg->broker.heartbeat_ms * 1000;
    self->expiry_us = self->heartbeat_us * cfg->broker.liveness;
    self->deadline_us = (int64_t) cfg->broker.deadline_ms * 1000;
    self->max_deadline_us = (int64_t) cfg->broker.max_deadline_ms * 1000;
    self->hedge_default_ms = cfg->broker.hedge_default_ms;
    self->retry_backoff_ms = cfg->broker.retry_backoff_ms;
    char host[64] = "";
    gethostname (host, sizeof host - 1);
    snprintf (self->broker_id, sizeof self->broker_id, "%s/%d", host, (int) getpid ());
    theap_init (&self->timers);
    self->dsp = dsp_new (cfg->broker.queue_limit);
    self->prices = bmetrics_prices (cfg);
    if (!self->ctx || !self->dsp || !self->prices || hmap_init (&self->jobs, s_job_eq)
        || hmap_init (&self->attempts, s_attempt_eq) || hmap_init (&self->workers, s_worker_eq)
        || pipe2 (self->wake, O_NONBLOCK | O_CLOEXEC))
        goto fail;
    if (cfg->fabric.curve && s_curve_start (self, cfg, zmq_ctx))
        goto fail;
    self->frontend = s_bind (self, ZMQ_ROUTER, self->ep_front, sizeof self->ep_front,
                             cfg->broker.max_frame, true);
    self->backend = s_bind (self, ZMQ_ROUTER, self->ep_back, sizeof self->ep_back,
                            cfg->broker.max_frame, true);
    if (!self->frontend || !self->backend)
        goto fail;
    //  With CURVE the metrics PUB lives in a context whose ZAP handler lets in only
    //  fabric/clients certificates (the stream is for the edge and the agent)
    void *mctx = self->curve ? curve_server_clients_ctx (self->curve) : self->ctx;
    if (bpub_open (&self->pub, mctx, self->ep_metrics, self->curve)) {
        log_error ("cannot bind %s: %s", self->ep_metrics, zmq_strerror (errno));
        goto fail;
    }
    wire_bound_endpoint (self->pub.sock, self->ep_metrics, sizeof self->ep_metrics);
    if (self->curve && (s_monitor (self, self->ctx, self->frontend, 0)
                        || s_monitor (self, self->ctx, self->backend, 1)
                        || s_monitor (self, mctx, self->pub.sock, 2))) {
        log_error ("cannot monitor the broker's sockets: %s", zmq_strerror (errno));
        goto fail;
    }
    return self;
fail:
    broker_destroy (&self);
    return NULL;
}

static void s_free_pools (broker_t *self)
{
    while (self->free_jobs) {
        job_t *j = self->free_jobs;
        self->free_jobs = j->free_next;
        free (j);
    }
    while (self->free_attempts) {
        attempt_t *a = self->free_attempts;
        self->free_attempts = a->free_next;
        free (a);
    }
}

void broker_destroy (broker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    broker_t *self = *self_p;
    hmap_node_t *n;
    if (self->jobs.slots)
        while ((n = hmap_any (&self->jobs)))
            s_job_destroy (self, s_container (n, job_t, node));
    while (self->worker_list) {
        worker_t *w = self->worker_list;
        self->worker_list = w->next;
        free (w);
    }
    while (self->graveyard) {
        worker_t *w = self->graveyard;
        self->graveyard = w->next;
        free (w);
    }
    for (size_t i = 0; self->dsp && i < dsp_model_count (self->dsp); i++)
        free (dsp_model_user (dsp_model_at (self->dsp, i)));
    dsp_destroy (&self->dsp);
    cfg_destroy (&self->prices);
    s_free_pools (self);
    free (self->pending);
    hmap_fini (&self->jobs);
    hmap_fini (&self->attempts);
    hmap_fini (&self->workers);
    theap_fini (&self->timers);
    for (size_t i = 0; i < 3; i++)
        if (self->monitor[i])
            zmq_close (self->monitor[i]);
    if (self->frontend)
        zmq_close (self->frontend);
    if (self->backend)
        zmq_close (self->backend);
    bpub_close (&self->pub);
    curve_server_destroy (&self->curve);
    msgpack_sbuffer_destroy (&self->sbuf);
    if (self->own_ctx && self->ctx)
        zmq_ctx_term (self->ctx);
    for (int i = 0; i < 2; i++)
        if (self->wake[i] >= 0)
            close (self->wake[i]);
    free (self);
    *self_p = NULL;
}

//  ---------------------------------------------------------------------------
//  Loop

static void s_wake (broker_t *self, char c)
{
    if (self && self->wake[1] >= 0) {
        ssize_t n = write (self->wake[1], &c, 1);
        (void) n;
    }
}

void broker_stop (broker_t *self)
{
    s_wake (self, 'q');
}

void broker_request_summary (broker_t *self)
{
    s_wake (self, 'u');
}

static void s_read_wake (broker_t *self)
{
    char buf[64];
    ssize_t n;
    while ((n = read (self->wake[0], buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == 'q')
                self->stopping = true;
            else
            if (buf[i] == 'u')
                broker_log_summary (self);
        }
}

//  Read up to BROKER_DRAIN_MAX messages from one socket. Returns -1 on a fatal error.
static int s_drain (broker_t *self, void *sock, bool client)
{
    for (int i = 0; i < BROKER_DRAIN_MAX; i++) {
        wire_msg_t msg;
        int rc = wire_recv (sock, true, &msg);
        if (rc == -1) {
            if (errno == EAGAIN || errno == EINTR)
                return 0;
            log_error ("receive failed: %s", zmq_strerror (errno));
            return errno == ETERM ? -1 : 0;
        }
        int64_t now = aclock_now_us ();
        if (rc == -2)
            s_malformed (self, msg.id, msg.id_len, client ? "client" : "worker", msg.error);
        else
        if (client)
            s_on_client (self, &msg, now);
        else
            s_on_worker (self, &msg, now);
        wire_msg_close (&msg);
        if (self->npending || self->graveyard)
            s_reap (self, now);
    }
    return 0;
}

static void s_run_timers (broker_t *self, int64_t now)
{
    theap_node_t *t;
    while ((t = theap_top (&self->timers)) && t->when <= now) {
        job_t *job = s_container (t, job_t, timer);
        theap_remove (&self->timers, t);
        race_tick (&job->race, now);
        s_job_apply (self, job, now);
    }
    if (now >= self->next_heartbeat) {
        s_heartbeat (self, now);
        self->next_heartbeat = now + self->heartbeat_us;
    }
    if (self->npending || self->graveyard)
        s_reap (self, now);
    if (now >= self->next_metrics) {
        bmetrics_refresh_p95 (self);
        bmetrics_tick (self, now);
        self->next_metrics = now + BROKER_METRICS_US;
    }
}

static long s_poll_timeout_ms (broker_t *self, int64_t now)
{
    int64_t due = self->next_heartbeat < self->next_metrics ? self->next_heartbeat
                                                            : self->next_metrics;
    theap_node_t *t = theap_top (&self->timers);
    if (t && t->when < due)
        due = t->when;
    if (due <= now)
        return 0;
    return (long) ((due - now + 999) / 1000);
}

//  On stop: answer every open job and tell workers we are going.
static void s_shutdown (broker_t *self, int64_t now)
{
    hmap_node_t *n;
    while ((n = hmap_any (&self->jobs))) {
        job_t *job = s_container (n, job_t, node);
        race_abort (&job->race, AIGW__ERROR_CODE__ERR_UNAVAILABLE, now);
        s_job_apply_msg (self, job, now, "broker shutting down");
    }
    for (worker_t *w = self->worker_list; w; w = w->next)
        if (!w->dead)
            wire_send (self->backend, w->rid, w->rid_len, WIRE_SIDE_WORKER, WIRE_W_DISCONNECT,
                       NULL, NULL);
    s_reap (self, now);
}

//  Read refused-handshake events of socket slot (CURVE only): counted, and logged at
//  the 1st, 2nd, 4th, 8th... refusal so a scanning peer cannot flood the log.
static void s_read_monitor (broker_t *self, size_t slot)
{
    static const char *const sides[] = { "frontend", "backend", "metrics" };
    for (int i = 0; i < BROKER_DRAIN_MAX; i++) {
        zmq_msg_t ev, addr;
        zmq_msg_init (&ev);
        zmq_msg_init (&addr);
        int rc = zmq_msg_recv (&ev, self->monitor[slot], ZMQ_DONTWAIT);
        if (rc >= 0 && zmq_msg_more (&ev))
            zmq_msg_recv (&addr, self->monitor[slot], ZMQ_DONTWAIT);
        uint16_t event = 0;
        if (rc >= 6)
            memcpy (&event, zmq_msg_data (&ev), sizeof event);
        zmq_msg_close (&ev);
        zmq_msg_close (&addr);
        if (rc < 0)
            return;
        if (!(event & (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
                       | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)))
            continue;
        uint64_t n = ++self->c.denied_handshakes;
        if ((n & (n - 1)) == 0)
            log_warn ("%s: refused a connection at the CURVE handshake (%s); %" PRIu64
                      " refused so far", sides[slot],
                      event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? "certificate not authorized"
                      : "no CURVE or bad handshake", n);
    }
}

int broker_run (broker_t *self)
{
    log_info ("frontend %s, backend %s, metrics %s", self->ep_front, self->ep_back,
              self->ep_metrics);
    int64_t now = aclock_now_us ();
    self->started = now;
    self->next_heartbeat = now + self->heartbeat_us;
    self->next_metrics = now + BROKER_METRICS_US;
    self->stopping = false;
    int rc = 0;
    while (!self->stopping) {
        zmq_pollitem_t items[] = {
            { self->frontend, 0, ZMQ_POLLIN, 0 },
            { self->backend, 0, ZMQ_POLLIN, 0 },
            { NULL, self->wake[0], ZMQ_POLLIN, 0 },
            { self->pub.sock, 0, ZMQ_POLLIN, 0 },
            { self->monitor[0], 0, ZMQ_POLLIN, 0 },
            { self->monitor[1], 0, ZMQ_POLLIN, 0 },
            { self->monitor[2], 0, ZMQ_POLLIN, 0 },
        };
        int nitems = self->curve ? 7 : 4;
        if (zmq_poll (items, nitems, s_poll_timeout_ms (self, aclock_now_us ())) < 0) {
            if (errno == EINTR)
                continue;
            log_error ("poll failed: %s", zmq_strerror (errno));
            rc = -1;
            break;
        }
        if (items[2].revents & ZMQ_POLLIN)
            s_read_wake (self);
        if (items[3].revents & ZMQ_POLLIN)
            bpub_read (&self->pub);
        for (int i = 4; i < nitems; i++)
            if (items[i].revents & ZMQ_POLLIN)
                s_read_monitor (self, (size_t) (i - 4));
        if ((items[1].revents & ZMQ_POLLIN) && s_drain (self, self->backend, false)) {
            rc = -1;
            break;
        }
        if ((items[0].revents & ZMQ_POLLIN) && s_drain (self, self->frontend, true)) {
            rc = -1;
            break;
        }
        s_run_timers (self, aclock_now_us ());
    }
    s_shutdown (self, aclock_now_us ());
    broker_log_summary (self);
    return rc;
}

const broker_counters_t *broker_counters (const broker_t *self)
{
    return &self->c;
}

uint64_t broker_jobs_in_flight (const broker_t *self)
{
    return self->jobs.size;
}

uint64_t broker_workers (const broker_t *self)
{
    return dsp_worker_count (self->dsp);
}
