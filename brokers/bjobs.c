// The jobs in flight (see bjobs.h): job and attempt tables and pools, the glue that
// executes race actions through the dispatcher and the registry, worker replies,
// pending failures and race timers.
#define _GNU_SOURCE
#include "bjobs.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "btomb.h"
#include "log.h"

#define BJOBS_POOL_MAX 4096         // free jobs/attempts kept for reuse
#define BJOBS_BOUNCES_MAX 3         // times full workers may send one attempt back

#define s_container(ptr, type, member) ((type *) ((char *) (ptr) - offsetof (type, member)))

_Static_assert (BJOB_WORKER_NAME_MAX == BREG_NAME_MAX, "an attempt keeps its worker's name");

//  An attempt to fail at the next reap (its worker died, its model lost its last
//  worker, or its TASK could not be sent), so no job is re-entered while it is
//  being processed.
typedef struct {
    uint64_t attempt_id;
    int code;
    bool retry;                     // the target may be started again once
    char reason[128];
} pending_t;

struct bjobs_t {
    const bjob_env_t *env;
    breg_t *reg;
    bpeer_t *peers;
    btomb_t *tombs;
    bool stopping;
    hmap_t jobs, attempts;
    theap_t timers;
    uint64_t next_attempt_id;
    pending_t *pending;
    size_t npending, pending_cap;
    job_t *free_jobs;
    attempt_t *free_attempts;
    size_t nfree_jobs, nfree_attempts;
};

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

static job_t *s_job_find (bjobs_t *self, const uint8_t *id, size_t len, uint64_t job_id)
{
    job_key_t k = { id, len, job_id };
    hmap_node_t *n = hmap_find (&self->jobs, s_job_hash (id, len, job_id), &k);
    return n ? s_container (n, job_t, node) : NULL;
}

static attempt_t *s_attempt_find (bjobs_t *self, uint64_t id)
{
    hmap_node_t *n = hmap_find (&self->attempts, hmap_u64 (id), &id);
    return n ? s_container (n, attempt_t, node) : NULL;
}

//  ---------------------------------------------------------------------------
//  Pools: jobs and attempts are reused, so the hot path does not call malloc.

static job_t *s_job_alloc (bjobs_t *self)
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

static void s_job_release (bjobs_t *self, job_t *j)
{
    if (self->nfree_jobs >= BJOBS_POOL_MAX) {
        free (j);
        return;
    }
    j->free_next = self->free_jobs;
    self->free_jobs = j;
    self->nfree_jobs++;
}

static attempt_t *s_attempt_new (bjobs_t *self, job_t *job, size_t index)
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
static void s_attempt_free (bjobs_t *self, attempt_t *a)
{
    hmap_remove (&self->attempts, &a->node);
    if (a->job && a->job->att[a->index] == a)
        a->job->att[a->index] = NULL;
    if (self->nfree_attempts >= BJOBS_POOL_MAX) {
        free (a);
        return;
    }
    a->free_next = self->free_attempts;
    self->free_attempts = a;
    self->nfree_attempts++;
}

static void s_free_pools (bjobs_t *self)
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

//  ---------------------------------------------------------------------------
//  Pending failures

static void s_pending_add (bjobs_t *self, uint64_t attempt_id, int code, bool retry,
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

//  The registry's hooks (breg_hooks_t): a dead worker's attempts.
static void s_on_lost (void *arg, dsp_item_t *items, const char *reason)
{
    bjobs_t *self = arg;
    for (dsp_item_t *it = items; it; it = it->next)
        s_pending_add (self, s_container (it, attempt_t, item)->id,
                       AIGW__ERROR_CODE__ERR_WORKER_LOST, true, reason);
}

static void s_on_orphaned (void *arg, dsp_item_t *items)
{
    bjobs_t *self = arg;
    char reason[128];
    for (dsp_item_t *it = items; it; it = it->next) {
        attempt_t *a = s_container (it, attempt_t, item);
        const race_attempt_t *ra = race_attempt (&a->job->race, a->index);
        snprintf (reason, sizeof reason, "no worker serves model %s",
                  a->job->req->targets[ra->target]);
        s_pending_add (self, a->id, AIGW__ERROR_CODE__ERR_UNAVAILABLE, false, reason);
    }
}

//  ---------------------------------------------------------------------------
//  Attempts

//  Send an assigned attempt's TASK. If the worker's pipe is full, the attempt is
//  taken back (credit returned) and failed at the next reap with ERR_OVERLOADED,
//  its target allowed to start again. Returns 0 / -1 (not sent).
static int s_attempt_send_task (bjobs_t *self, attempt_t *a, int64_t now)
{
    job_t *job = a->job;
    worker_t *w = dsp_worker_user (a->item.worker);
    const char *name = breg_worker_name (w);
    const race_attempt_t *ra = race_attempt (&job->race, a->index);
    snprintf (job->att_worker[a->index], sizeof job->att_worker[a->index], "%s", name);
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
    if (breg_send (self->reg, w, WIRE_W_TASK, &task.base, &job->payload) == 0)
        return 0;
    if (errno == EAGAIN) {
        dsp_done (self->env->dsp, &a->item);    // no pull: its pipe is full
        char why[BJOB_WORKER_NAME_MAX + 48];
        snprintf (why, sizeof why, "worker %s is not reading (pipe full)", name);
        s_pending_add (self, a->id, AIGW__ERROR_CODE__ERR_OVERLOADED, true, why);
    }
    return -1;
}

void bjobs_pull (bjobs_t *self, worker_t *w, int64_t now)
{
    while (!breg_worker_dead (w) && !self->stopping) {
        dsp_item_t *it = dsp_pull (self->env->dsp, breg_worker_dsp (w));
        if (!it || s_attempt_send_task (self, s_container (it, attempt_t, item), now))
            break;
    }
}

static void s_attempt_start (bjobs_t *self, job_t *job, size_t index, size_t target, int64_t now)
{
    const char *model = job->req->targets[target];
    attempt_t *a = s_attempt_new (self, job, index);
    if (!a) {
        bjob_verdict (job, index, BJOB_NONE, now);  // a probe that never went out
        race_attempt_error (&job->race, index, AIGW__ERROR_CODE__ERR_INTERNAL, "out of memory", now);
        return;
    }
    self->env->c->attempts_started++;
    char why[CFG_NAME_MAX + 64];
    switch (dsp_submit (self->env->dsp, &a->item, model)) {
        case DSP_ASSIGNED:
            s_attempt_send_task (self, a, now);
            return;
        case DSP_QUEUED:
            return;
        case DSP_UNAVAILABLE:
            s_attempt_free (self, a);
            bjob_verdict (job, index, BJOB_NONE, now);
            snprintf (why, sizeof why, "no worker serves model %s", model);
            race_attempt_error (&job->race, index, AIGW__ERROR_CODE__ERR_UNAVAILABLE, why, now);
            self->env->c->attempts_failed++;
            return;
        case DSP_OVERLOADED:
            s_attempt_free (self, a);
            bjob_verdict (job, index, BJOB_NONE, now);
            snprintf (why, sizeof why, "queue for model %s is full", model);
            race_attempt_error (&job->race, index, AIGW__ERROR_CODE__ERR_OVERLOADED, why, now);
            self->env->c->attempts_failed++;
            return;
    }
}

//  Stop an attempt: CANCEL at its worker (credit returns at once) or unqueue it.
static void s_attempt_cancel (bjobs_t *self, job_t *job, size_t index, int64_t now)
{
    attempt_t *a = job->att[index];
    const race_attempt_t *ra = race_attempt (&job->race, index);
    bool deadline = race_winner (&job->race) < 0
                    && race_final_code (&job->race) == AIGW__ERROR_CODE__ERR_TIMEOUT;
    if (ra->state == RACE_ATT_CANCELLED)
        self->env->c->attempts_cancelled++;
    else
        self->env->c->attempts_failed++;    // TTFT: failed, and stopped at its worker
    //  TTFT, or still running when the job's deadline passed: the target was too slow
    bjob_verdict (job, index, ra->state == RACE_ATT_FAILED || deadline ? BJOB_BAD : BJOB_NONE,
                  now);
    if (!a)
        return;
    worker_t *w = a->item.worker ? dsp_worker_user (a->item.worker) : NULL;
    if (w) {
        Aigw__AttemptRef ref = AIGW__ATTEMPT_REF__INIT;
        ref.attempt_id = a->id;
        breg_send (self->reg, w, WIRE_W_CANCEL, &ref.base, NULL);
        btomb_add (self->tombs, job, index, a->id);
    }
    dsp_worker_t *dw = dsp_done (self->env->dsp, &a->item);
    s_attempt_free (self, a);
    if (dw)
        bjobs_pull (self, dsp_worker_user (dw), now);
}

//  ---------------------------------------------------------------------------
//  Jobs

static void s_job_destroy (bjobs_t *self, job_t *job)
{
    for (size_t i = 0; i < RACE_ATTEMPTS_MAX; i++)
        if (job->att[i]) {
            dsp_worker_t *dw = dsp_done (self->env->dsp, &job->att[i]->item);
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
static void s_job_apply_msg (bjobs_t *self, job_t *job, int64_t now, const char *message)
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
            bjob_answer_result (job, act.attempt, now);
        else
            bjob_answer_error (job, act.code, message, now);
    }
    if (race_finished (&job->race))
        s_job_destroy (self, job);
    else
    if (theap_set (&self->timers, &job->timer, race_next_timer (&job->race)))
        log_error ("timer heap full: job %" PRIu64 " relies on replies only", job->job_id);
}

static void s_job_apply (bjobs_t *self, job_t *job, int64_t now)
{
    s_job_apply_msg (self, job, now, NULL);
}

//  ---------------------------------------------------------------------------
//  Clients

static void s_reject (bjobs_t *self, const wire_msg_t *msg, uint64_t job_id, const char *why)
{
    self->env->c->jobs_rejected++;
    Aigw__Error out = AIGW__ERROR__INIT;
    out.job_id = job_id;
    out.code = AIGW__ERROR_CODE__ERR_BAD_REQUEST;
    out.message = (char *) why;
    if (wire_send (self->env->frontend, msg->id, msg->id_len, WIRE_SIDE_CLIENT, WIRE_C_ERROR,
                   &out.base, NULL))
        self->env->c->send_failures++;
    log_debug ("rejected job %" PRIu64 ": %s", job_id, why);
}

void bjobs_submit (bjobs_t *self, wire_msg_t *msg, int conn_fd, uint32_t conn_gen, int64_t now)
{
    Aigw__Job *req = (Aigw__Job *) wire_unpack (&aigw__job__descriptor, &msg->body);
    if (!req) {
        bpeer_malformed (self->peers, msg->id, msg->id_len, "client",
                         "SUBMIT body does not decode");
        return;
    }
    const char *why = bjob_invalid (req, msg);
    if (!why && s_job_find (self, msg->id, msg->id_len, req->job_id))
        why = "job_id is already live";
    race_config_t rc;
    if (!why)
        bjob_race_config (self->env, req, &rc);
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
    job->conn_fd = conn_fd;
    job->conn_gen = conn_gen;
    theap_node_init (&job->timer);
    zmq_msg_init (&job->payload);
    zmq_msg_move (&job->payload, &msg->payload);
    job->env = self->env;
    job->probe_mask = 0;
    for (size_t t = 0; t < req->n_targets; t++)
        job->tst[t] = bstats_find (self->env->dsp, req->targets[t]);
    rc.gate = bjob_gate;
    rc.gate_arg = job;
    race_init (&job->race, &rc);
    hmap_insert (&self->jobs, &job->node, s_job_hash (job->cid, job->cid_len, job->job_id));
    self->env->c->jobs_accepted++;
    race_start (&job->race, now);
    s_job_apply (self, job, now);
}

void bjobs_cancel (bjobs_t *self, wire_msg_t *msg, int64_t now)
{
    Aigw__JobRef *ref = (Aigw__JobRef *) wire_unpack (&aigw__job_ref__descriptor, &msg->body);
    if (!ref) {
        bpeer_malformed (self->peers, msg->id, msg->id_len, "client",
                         "CANCEL body does not decode");
        return;
    }
    job_t *job = s_job_find (self, msg->id, msg->id_len, ref->job_id);
    if (job && race_client_cancel (&job->race, now) == RACE_EV_OK)
        s_job_apply (self, job, now);
    else
        log_debug ("CANCEL for unknown job %" PRIu64, ref->job_id);
    protobuf_c_message_free_unpacked (&ref->base, NULL);
}

typedef struct {
    int fd;
    uint32_t gen;
    job_t **found;
    size_t n, cap;
} s_conn_jobs_t;

static void s_collect_conn_job (hmap_node_t *node, void *arg)
{
    s_conn_jobs_t *q = arg;
    job_t *job = s_container (node, job_t, node);
    if (job->conn_fd != q->fd || job->conn_gen != q->gen)
        return;
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        job_t **v = realloc (q->found, cap * sizeof *v);
        if (!v)
            return;                     // out of memory: the rest run to their deadline
        q->found = v;
        q->cap = cap;
    }
    q->found[q->n++] = job;
}

size_t bjobs_client_gone (bjobs_t *self, int fd, uint32_t gen, int64_t now)
{
    s_conn_jobs_t q = { .fd = fd, .gen = gen };
    hmap_each (&self->jobs, s_collect_conn_job, &q);
    size_t cancelled = 0;
    for (size_t i = 0; i < q.n; i++) {
        //  Each is still live: applying one job's cancel touches no other job
        if (race_client_cancel (&q.found[i]->race, now) == RACE_EV_OK) {
            self->env->c->jobs_client_gone++;
            cancelled++;
            s_job_apply (self, q.found[i], now);
        }
    }
    free (q.found);
    return cancelled;
}

//  ---------------------------------------------------------------------------
//  Workers' replies

//  Find the live attempt a worker reply names; counts and returns NULL if none.
static attempt_t *s_reply_attempt (bjobs_t *self, worker_t *w, bool has_id, uint64_t id,
                                   bool is_cancel_ack)
{
    attempt_t *a = has_id ? s_attempt_find (self, id) : NULL;
    dsp_worker_t *dw = breg_worker_dsp (w);
    if (a && a->item.worker == dw && dw)
        return a;
    if (is_cancel_ack)
        self->env->c->cancel_acks++;
    else
        self->env->c->late_replies++;
    return NULL;
}

//  A cancelled attempt's last word (cancel acknowledgement, late RESULT or ERROR)
//  with the usage it consumed: into its job's answer while the job is open, else
//  into its model's cost and, for a job with an account, one SPEND to its client.
//  The tomb is freed, so nothing is charged twice.
static void s_tomb_settle (bjobs_t *self, tomb_t *t, const Aigw__Usage *u)
{
    if (bjob_usage_known (u)) {
        job_t *job = s_job_find (self, t->cid, t->cid_len, t->job_id);
        if (job && job->att_id[t->index] == t->attempt_id)
            bjob_keep_usage (job, t->index, u);
        else
            btomb_spend (self->tombs, t, u);
    }
    t->attempt_id = 0;
}

void bjobs_result (bjobs_t *self, worker_t *w, wire_msg_t *msg, int64_t now)
{
    Aigw__Result *res = (Aigw__Result *) wire_unpack (&aigw__result__descriptor, &msg->body);
    if (!res) {
        bpeer_malformed (self->peers, msg->id, msg->id_len, "worker",
                         "RESULT body does not decode");
        return;
    }
    attempt_t *a = s_reply_attempt (self, w, res->has_attempt_id, res->attempt_id, false);
    if (a) {
        job_t *job = a->job;
        size_t index = a->index;
        dsp_worker_t *dw = dsp_done (self->env->dsp, &a->item);
        s_attempt_free (self, a);
        bjob_keep_usage (job, index, res->usage);
        bjob_verdict (job, index, BJOB_OK, now);
        if (race_attempt_result (&job->race, index, now) == RACE_EV_OK) {
            job->result = res;
            s_job_apply (self, job, now);   // job may be gone after this
        }
        else
            self->env->c->late_replies++;
        if (dw)
            bjobs_pull (self, w, now);
    }
    else {
        //  A late RESULT of a cancelled attempt: the tokens it produced anyway were wasted
        tomb_t *t = btomb_find (self->tombs, res->has_attempt_id, res->attempt_id);
        if (t) {
            btomb_late_result (t, res->usage);
            s_tomb_settle (self, t, res->usage);
        }
    }
    protobuf_c_message_free_unpacked (&res->base, NULL);
}

//  Worker w sent attempt a back: it is full (ERR_OVERLOADED; its capacity went to
//  other brokers). Place it again on another worker, or at the head of its model's
//  queue, as the same race attempt: no verdict on its target, no re-dispatch used.
//  Sent back more than BJOBS_BOUNCES_MAX times, it fails with ERR_OVERLOADED.
static void s_attempt_bounce (bjobs_t *self, attempt_t *a, worker_t *w, const char *message,
                              int64_t now)
{
    job_t *job = a->job;
    size_t index = a->index;
    const char *model = job->req->targets[race_attempt (&job->race, index)->target];
    dsp_worker_t *from = dsp_done (self->env->dsp, &a->item);  // no pull: it is full
    self->env->c->attempts_bounced++;
    log_debug ("attempt %" PRIu64 " sent back by worker %s (full): placed again",
               a->id, breg_worker_name (w));
    dsp_status_t st = ++a->bounces > BJOBS_BOUNCES_MAX
                    ? DSP_OVERLOADED : dsp_resubmit (self->env->dsp, &a->item, model, from);
    if (st == DSP_ASSIGNED) {
        s_attempt_send_task (self, a, now);
        return;
    }
    if (st == DSP_QUEUED)
        return;
    char why[RACE_REASON_MAX];
    int code = st == DSP_UNAVAILABLE ? AIGW__ERROR_CODE__ERR_UNAVAILABLE
                                     : AIGW__ERROR_CODE__ERR_OVERLOADED;
    if (st == DSP_UNAVAILABLE)
        snprintf (why, sizeof why, "no worker serves model %s", model);
    else
    if (a->bounces > BJOBS_BOUNCES_MAX)
        snprintf (why, sizeof why, "sent back %u times by full workers (last %s: %s)",
                  (unsigned) a->bounces, breg_worker_name (w), message ? message : "full");
    else
        snprintf (why, sizeof why, "queue for model %s is full", model);
    s_attempt_free (self, a);
    bjob_verdict (job, index, BJOB_NONE, now);
    if (race_attempt_fail (&job->race, index, code, why, 0, 0, now) == RACE_EV_OK) {
        self->env->c->attempts_failed++;
        s_job_apply (self, job, now);
    }
}

void bjobs_error (bjobs_t *self, worker_t *w, wire_msg_t *msg, int64_t now)
{
    Aigw__Error *err = (Aigw__Error *) wire_unpack (&aigw__error__descriptor, &msg->body);
    if (!err) {
        bpeer_malformed (self->peers, msg->id, msg->id_len, "worker",
                         "ERROR body does not decode");
        return;
    }
    bool ack = err->code == AIGW__ERROR_CODE__ERR_CANCELLED;
    attempt_t *a = s_reply_attempt (self, w, err->has_attempt_id, err->attempt_id, ack);
    if (a && err->code == AIGW__ERROR_CODE__ERR_OVERLOADED
        && race_attempt (&a->job->race, a->index)->first_token < 0)
        s_attempt_bounce (self, a, w, err->message, now);
    else
    if (a) {
        job_t *job = a->job;
        size_t index = a->index;
        dsp_worker_t *dw = dsp_done (self->env->dsp, &a->item);
        s_attempt_free (self, a);
        int code = bjob_error_code (err->code);
        bjob_keep_usage (job, index, err->usage);
        bjob_keep_upstream (job, index, err);
        bjob_verdict (job, index, bjob_error_verdict (code), now);
        unsigned flags = code == AIGW__ERROR_CODE__ERR_WORKER_LOST ? RACE_FAIL_REDISPATCH
                       : bjob_retry_flags (code, job->att_upstream_status[index]);
        int64_t retry_after = code == AIGW__ERROR_CODE__ERR_RATE_LIMITED
                            ? (int64_t) job->att_retry_after_ms[index] * 1000 : 0;
        if (race_attempt_fail (&job->race, index, code, err->message, flags, retry_after, now)
            == RACE_EV_OK) {
            self->env->c->attempts_failed++;
            if (race_attempt (&job->race, index)->replaced)
                self->env->c->attempts_redispatched++;
            s_job_apply (self, job, now);
        }
        else
            self->env->c->late_replies++;
        if (dw)
            bjobs_pull (self, w, now);
    }
    else {
        tomb_t *t = btomb_find (self->tombs, err->has_attempt_id, err->attempt_id);
        if (t)
            s_tomb_settle (self, t, err->usage);    // its last word: nothing more will come
    }
    protobuf_c_message_free_unpacked (&err->base, NULL);
}

void bjobs_chunk (bjobs_t *self, worker_t *w, wire_msg_t *msg, int64_t now)
{
    Aigw__Chunk *ch = (Aigw__Chunk *) wire_unpack (&aigw__chunk__descriptor, &msg->body);
    if (!ch) {
        bpeer_malformed (self->peers, msg->id, msg->id_len, "worker",
                         "CHUNK body does not decode");
        return;
    }
    attempt_t *a = s_reply_attempt (self, w, ch->has_attempt_id, ch->attempt_id, false);
    if (a) {
        job_t *job = a->job;
        size_t index = a->index;
        bool first = race_attempt (&job->race, index)->first_token < 0;
        if (race_attempt_chunk (&job->race, index, now) == RACE_EV_OK) {
            bjob_chunk (job, index, ch, first, now);
            s_job_apply (self, job, now);
        }
        else
            self->env->c->late_replies++;
    }
    else {
        tomb_t *t = btomb_find (self->tombs, ch->has_attempt_id, ch->attempt_id);
        if (t)
            btomb_late_chunk (t);
    }
    protobuf_c_message_free_unpacked (&ch->base, NULL);
}

//  ---------------------------------------------------------------------------
//  Timers, reap, shutdown

void bjobs_tick (bjobs_t *self, int64_t now)
{
    theap_node_t *t;
    while ((t = theap_top (&self->timers)) && t->when <= now) {
        job_t *job = s_container (t, job_t, timer);
        theap_remove (&self->timers, t);
        race_tick (&job->race, now);
        s_job_apply (self, job, now);
    }
}

int64_t bjobs_next_timer (const bjobs_t *self)
{
    theap_node_t *t = theap_top (&self->timers);
    return t ? t->when : INT64_MAX;
}

void bjobs_end_hold (bjobs_t *self)
{
    dsp_item_t *orphans = NULL;
    dsp_set_hold (self->env->dsp, false, &orphans);
    s_on_orphaned (self, orphans);
}

bool bjobs_has_pending (const bjobs_t *self)
{
    return self->npending > 0;
}

void bjobs_reap (bjobs_t *self, int64_t now)
{
    for (size_t i = 0; i < self->npending; i++) {
        pending_t p = self->pending[i];     // copy: the array may grow below
        attempt_t *a = s_attempt_find (self, p.attempt_id);
        if (!a || a->item.worker || a->item.queued)
            continue;
        job_t *job = a->job;
        size_t index = a->index;
        s_attempt_free (self, a);
        bjob_verdict (job, index, BJOB_NONE, now);
        if (race_attempt_fail (&job->race, index, p.code, p.reason,
                               p.retry ? RACE_FAIL_REDISPATCH : 0, 0, now) != RACE_EV_OK)
            continue;
        self->env->c->attempts_failed++;
        if (race_attempt (&job->race, index)->replaced)
            self->env->c->attempts_redispatched++;
        s_job_apply (self, job, now);
    }
    self->npending = 0;
}

void bjobs_shutdown (bjobs_t *self, int64_t now)
{
    hmap_node_t *n;
    while ((n = hmap_any (&self->jobs))) {
        job_t *job = s_container (n, job_t, node);
        race_abort (&job->race, AIGW__ERROR_CODE__ERR_UNAVAILABLE, now);
        s_job_apply_msg (self, job, now, "broker shutting down");
    }
}

size_t bjobs_count (const bjobs_t *self)
{
    return self->jobs.size;
}

//  ---------------------------------------------------------------------------
//  Construction

bjobs_t *bjobs_new (const bjob_env_t *env, breg_t *reg, bpeer_t *peers)
{
    bjobs_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->env = env;
    self->reg = reg;
    self->peers = peers;
    theap_init (&self->timers);
    self->tombs = btomb_new (env);
    if (!self->tombs || hmap_init (&self->jobs, s_job_eq)
        || hmap_init (&self->attempts, s_attempt_eq)) {
        bjobs_destroy (&self);
        return NULL;
    }
    breg_hooks_t hooks = { .lost = s_on_lost, .orphaned = s_on_orphaned, .arg = self };
    breg_set_hooks (reg, &hooks);
    return self;
}

void bjobs_destroy (bjobs_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bjobs_t *self = *self_p;
    hmap_node_t *n;
    if (self->jobs.slots)
        while ((n = hmap_any (&self->jobs)))
            s_job_destroy (self, s_container (n, job_t, node));
    s_free_pools (self);
    free (self->pending);
    hmap_fini (&self->jobs);
    hmap_fini (&self->attempts);
    theap_fini (&self->timers);
    btomb_destroy (&self->tombs);
    breg_set_hooks (self->reg, &(breg_hooks_t) { NULL, NULL, NULL });
    free (self);
    *self_p = NULL;
}

void bjobs_set_stopping (bjobs_t *self, bool stopping)
{
    self->stopping = stopping;
}
