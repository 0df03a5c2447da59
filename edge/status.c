// Broker status snapshot: built once from a PONG, then read-only and reference counted.
#include "status.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int s_cmp_model (const void *a, const void *b)
{
    return strcmp (((const edge_model_status_t *) a)->name,
                   ((const edge_model_status_t *) b)->name);
}

static void s_copy_model (edge_model_status_t *dst, const Aigw__ModelStatus *src)
{
    memset (dst, 0, sizeof *dst);
    memcpy (dst->name, src->name, strlen (src->name) + 1);
    dst->workers = src->has_workers ? src->workers : 0;
    dst->capacity = src->has_capacity ? src->capacity : 0;
    dst->in_flight = src->has_in_flight ? src->in_flight : 0;
    dst->queued = src->has_queued ? src->queued : 0;
}

static void s_free (snap_t *base)
{
    edge_status_t *self = (edge_status_t *) base;   // base is the first member
    free (self->models);
    free (self);
}

edge_status_t *edge_status_new (const Aigw__BrokerStatus *pb, int64_t at_ms)
{
    edge_status_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    snap_init (&self->base, s_free);
    self->at_ms = at_ms;
    if (!pb)
        return self;
    self->workers = pb->has_workers ? pb->workers : 0;
    self->jobs_in_flight = pb->has_jobs_in_flight ? pb->jobs_in_flight : 0;
    if (pb->broker_id)
        snprintf (self->broker_id, sizeof self->broker_id, "%s", pb->broker_id);
    size_t n = pb->n_models < EDGE_STATUS_MODELS_MAX ? pb->n_models : EDGE_STATUS_MODELS_MAX;
    self->models = calloc (n ? n : 1, sizeof *self->models);
    if (!self->models) {
        free (self);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const Aigw__ModelStatus *m = pb->models[i];
        if (!m || !m->name || !m->name[0] || strlen (m->name) >= CFG_NAME_MAX)
            continue;
        s_copy_model (&self->models[self->nmodels++], m);
    }
    qsort (self->models, self->nmodels, sizeof *self->models, s_cmp_model);
    return self;
}

edge_status_t *edge_status_ref (edge_status_t *self)
{
    snap_ref (self ? &self->base : NULL);
    return self;
}

void edge_status_release (edge_status_t **self_p)
{
    snap_t *base = self_p && *self_p ? &(*self_p)->base : NULL;
    snap_release (&base);
    if (self_p)
        *self_p = NULL;
}

const edge_model_status_t *edge_status_model (const edge_status_t *self, const char *name)
{
    if (!self || !name || self->nmodels == 0)
        return NULL;
    edge_model_status_t key;
    size_t len = strlen (name);
    if (len >= sizeof key.name)
        return NULL;
    memcpy (key.name, name, len + 1);
    return bsearch (&key, self->models, self->nmodels, sizeof *self->models, s_cmp_model);
}

bool edge_status_live (const edge_status_t *self, const char *name)
{
    const edge_model_status_t *m = edge_status_model (self, name);
    return m && m->workers > 0;
}

struct _edge_status_box_t {
    snap_box_t box;
};

edge_status_box_t *edge_status_box_new (void)
{
    edge_status_box_t *self = calloc (1, sizeof *self);
    if (self)
        snap_box_init (&self->box);
    return self;
}

void edge_status_box_destroy (edge_status_box_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    edge_status_box_t *self = *self_p;
    *self_p = NULL;
    snap_box_fini (&self->box);
    free (self);
}

void edge_status_box_set (edge_status_box_t *self, edge_status_t **st_p)
{
    snap_t *base = *st_p ? &(*st_p)->base : NULL;
    *st_p = NULL;
    snap_box_set (&self->box, &base);
}

edge_status_t *edge_status_box_get (edge_status_box_t *self)
{
    return (edge_status_t *) snap_box_get (&self->box);  // base is the first member
}
