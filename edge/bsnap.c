// Broker metrics snapshot: decoded once by the bridge thread, then read-only.
#include "bsnap.h"
#include "mpack.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void s_free (snap_t *base)
{
    bsnap_t *self = (bsnap_t *) base;   // base is the first member
    free (self->models);
    free (self->workers);
    free (self);
}

bsnap_t *bsnap_new (size_t nmodels, size_t nworkers)
{
    bsnap_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    snap_init (&self->base, s_free);
    self->ts_ms = self->uptime_s = self->jobs_in_flight = NAN;
    self->models = calloc (nmodels ? nmodels : 1, sizeof *self->models);
    self->workers = calloc (nworkers ? nworkers : 1, sizeof *self->workers);
    if (!self->models || !self->workers) {
        bsnap_release (&self);
        return NULL;
    }
    return self;
}

bsnap_t *bsnap_ref (bsnap_t *self)
{
    snap_ref (self ? &self->base : NULL);
    return self;
}

void bsnap_release (bsnap_t **self_p)
{
    snap_t *base = self_p && *self_p ? &(*self_p)->base : NULL;
    snap_release (&base);
    if (self_p)
        *self_p = NULL;
}

static const char *const s_state_names[BSNAP_STATES + 1] = {
    NULL, "healthy", "degraded", "cooling"
};

const char *bsnap_state_name (bsnap_state_t state)
{
    return (unsigned) state <= BSNAP_STATES ? s_state_names[state] : NULL;
}

bsnap_state_t bsnap_state_parse (const char *s)
{
    for (int i = 1; s && i <= BSNAP_STATES; i++)
        if (strcmp (s, s_state_names[i]) == 0)
            return (bsnap_state_t) i;
    return BSNAP_STATE_ABSENT;
}

double bsnap_counter (const bsnap_t *self, const char *name)
{
    for (size_t i = 0; self && i < self->ncounters; i++)
        if (strcmp (self->counters[i].name, name) == 0)
            return self->counters[i].value;
    return NAN;
}

#ifdef AIGW_HAVE_MSGPACK

static double s_num (const msgpack_object *map, const char *key)
{
    double v;
    return mpack_num (mpack_get (map, key), &v) ? v : NAN;
}

static void s_pcts (const msgpack_object *map, const char *key, bsnap_pcts_t *out)
{
    const msgpack_object *p = mpack_get (map, key);
    out->p50 = s_num (p, "p50");
    out->p95 = s_num (p, "p95");
    out->p99 = s_num (p, "p99");
}

//  A `state` string (exactly a known name, no NUL inside), else BSNAP_STATE_ABSENT.
static bsnap_state_t s_state (const msgpack_object *obj)
{
    char name[16];
    if (!obj || obj->type != MSGPACK_OBJECT_STR || obj->via.str.size >= sizeof name
        || !mpack_str (obj, name, sizeof name) || strlen (name) != obj->via.str.size)
        return BSNAP_STATE_ABSENT;
    return bsnap_state_parse (name);
}

static size_t s_array_len (const msgpack_object *map, const char *key, size_t max)
{
    const msgpack_object *a = mpack_get (map, key);
    if (!a || a->type != MSGPACK_OBJECT_ARRAY)
        return 0;
    return a->via.array.size < max ? a->via.array.size : max;
}

static void s_models (bsnap_t *self, const msgpack_object *root, size_t n)
{
    const msgpack_object *a = mpack_get (root, "models");
    for (size_t i = 0; i < n; i++) {
        const msgpack_object *o = &a->via.array.ptr[i];
        bsnap_model_t *m = &self->models[self->nmodels];
        if (!mpack_str (mpack_get (o, "name"), m->name, sizeof m->name) || !m->name[0])
            continue;
        m->workers = s_num (o, "workers");
        m->capacity = s_num (o, "capacity");
        m->in_flight = s_num (o, "in_flight");
        m->queued = s_num (o, "queued");
        m->wins = s_num (o, "wins");
        m->losses = s_num (o, "losses");
        m->errors = s_num (o, "errors");
        m->cancelled = s_num (o, "cancelled");
        m->tokens_saved = s_num (o, "tokens_saved");
        m->tokens_wasted = s_num (o, "tokens_wasted");
        m->samples = s_num (o, "samples");
        s_pcts (o, "latency_ms", &m->latency);
        s_pcts (o, "ttft_ms", &m->ttft);
        m->state = s_state (mpack_get (o, "state"));
        m->cooldown_left_ms = s_num (o, "cooldown_left_ms");
        m->error_rate = s_num (o, "error_rate");
        m->trips = s_num (o, "trips");
        m->skipped = s_num (o, "skipped");
        m->retries = s_num (o, "retries");
        m->hedges = s_num (o, "hedges");
        m->budget_refused = s_num (o, "budget_refused");
        self->nmodels++;
    }
}

static void s_workers (bsnap_t *self, const msgpack_object *root, size_t n)
{
    const msgpack_object *a = mpack_get (root, "workers");
    for (size_t i = 0; i < n; i++) {
        const msgpack_object *o = &a->via.array.ptr[i];
        bsnap_worker_t *w = &self->workers[self->nworkers];
        if (!mpack_str (mpack_get (o, "id"), w->id, sizeof w->id) || !w->id[0])
            continue;
        const msgpack_object *alive = mpack_get (o, "alive");
        w->alive = alive && alive->type == MSGPACK_OBJECT_BOOLEAN ? alive->via.boolean : NAN;
        w->in_flight = s_num (o, "in_flight");
        w->capacity = s_num (o, "capacity");
        w->last_seen_ms = s_num (o, "last_seen_ms");
        w->completed = s_num (o, "completed");
        w->failed = s_num (o, "failed");
        w->cancelled = s_num (o, "cancelled");
        self->nworkers++;
    }
}

static void s_counters (bsnap_t *self, const msgpack_object *root)
{
    const msgpack_object *c = mpack_get (root, "counters");
    if (!c || c->type != MSGPACK_OBJECT_MAP)
        return;
    for (uint32_t i = 0; i < c->via.map.size && self->ncounters < BSNAP_COUNTERS_MAX; i++) {
        bsnap_counter_t *out = &self->counters[self->ncounters];
        if (mpack_str (&c->via.map.ptr[i].key, out->name, sizeof out->name) && out->name[0]
            && mpack_num (&c->via.map.ptr[i].val, &out->value))
            self->ncounters++;
    }
}

bsnap_t *bsnap_from_object (const msgpack_object *root, int64_t at_ms)
{
    if (root->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t nm = s_array_len (root, "models", BSNAP_MODELS_MAX);
    size_t nw = s_array_len (root, "workers", BSNAP_WORKERS_MAX);
    bsnap_t *self = bsnap_new (nm, nw);
    if (!self)
        return NULL;
    self->at_ms = at_ms;
    mpack_str (mpack_get (root, "broker_id"), self->broker_id, sizeof self->broker_id);
    self->ts_ms = s_num (root, "ts_ms");
    self->uptime_s = s_num (root, "uptime_s");
    self->jobs_in_flight = s_num (root, "jobs_in_flight");
    s_counters (self, root);
    s_models (self, root, nm);
    s_workers (self, root, nw);
    return self;
}

bsnap_t *bsnap_decode (const void *data, size_t len, int64_t at_ms)
{
    if (!mpack_valid (data, len, MPACK_DEPTH_MAX))
        return NULL;
    msgpack_unpacked up;
    msgpack_unpacked_init (&up);
    bsnap_t *self = NULL;
    if (msgpack_unpack_next (&up, data, len, NULL) == MSGPACK_UNPACK_SUCCESS)
        self = bsnap_from_object (&up.data, at_ms);
    msgpack_unpacked_destroy (&up);
    return self;
}

#else

bsnap_t *bsnap_decode (const void *data, size_t len, int64_t at_ms)
{
    return NULL;
}

#endif
