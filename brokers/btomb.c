// Tombs of cancelled attempts and the SPENDs they owe (see btomb.h).
#include "btomb.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct btomb_t {
    const bjob_env_t *env;
    tomb_t tombs[BTOMB_SLOTS];
};

btomb_t *btomb_new (const bjob_env_t *env)
{
    btomb_t *self = calloc (1, sizeof *self);
    if (self)
        self->env = env;
    return self;
}

void btomb_destroy (btomb_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free (*self_p);
    *self_p = NULL;
}

void btomb_add (btomb_t *self, const job_t *job, size_t index, uint64_t attempt_id)
{
    dsp_model_t *m = dsp_model (self->env->dsp,
                                job->req->targets[race_attempt (&job->race, index)->target]);
    model_stats_t *st = m ? dsp_model_user (m) : NULL;
    if (!st)
        return;
    tomb_t *t = &self->tombs[attempt_id % BTOMB_SLOTS];
    if (t->attempt_id && t->account[0])
        self->env->c->spend_lost++;
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

tomb_t *btomb_find (btomb_t *self, bool has_id, uint64_t attempt_id)
{
    tomb_t *t = &self->tombs[attempt_id % BTOMB_SLOTS];
    return has_id && attempt_id && t->attempt_id == attempt_id ? t : NULL;
}

void btomb_late_chunk (tomb_t *t)
{
    t->chunks++;
    t->st->tokens_wasted++;
}

void btomb_late_result (tomb_t *t, const Aigw__Usage *u)
{
    if (u && u->has_completion_tokens && u->completion_tokens > t->chunks)
        t->st->tokens_wasted += u->completion_tokens - t->chunks;
}

static void s_send_spend (btomb_t *self, const tomb_t *t, const Aigw__Usage *u)
{
    broker_counters_t *c = self->env->c;
    Aigw__Usage usage;
    bjob_usage_copy (&usage, u);
    Aigw__Spend sp = AIGW__SPEND__INIT;
    sp.job_id = t->job_id;
    sp.attempt_id = t->attempt_id;
    sp.target = (char *) t->model;
    sp.usage = &usage;
    sp.account = (char *) t->account;
    if (wire_send (self->env->frontend, t->cid, t->cid_len, WIRE_SIDE_CLIENT, WIRE_C_SPEND,
                   &sp.base, NULL)) {
        c->send_failures++;
        c->spend_lost++;
        log_debug ("send SPEND for job %" PRIu64 " attempt %" PRIu64 " failed: %s", t->job_id,
                   t->attempt_id, zmq_strerror (errno));
        return;
    }
    c->spend_sent++;
}

void btomb_spend (btomb_t *self, const tomb_t *t, const Aigw__Usage *u)
{
    if (t->st)
        t->st->cost_usd += bstats_cost (self->env->prices, t->model, u);
    if (t->account[0])
        s_send_spend (self, t, u);
}
