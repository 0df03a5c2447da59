// Worker pools and credit-based dispatch with bounded per-model FIFO queues.
#include "dsp.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>

struct dsp_model_t {
    char *name;
    dsp_worker_t **workers;     // live workers serving it
    size_t nworkers, cap;
    dsp_item_t *qhead, *qtail;  // FIFO of queued items
    uint32_t nqueued;
    uint32_t in_flight;         // assigned items of this model
    uint32_t capacity;          // sum of its workers' capacities
    void *user;
    bool served;                // a worker has announced it (else only held for)
};

struct dsp_worker_t {
    dsp_model_t *models[DSP_WORKER_MODELS_MAX];
    size_t nmodels;
    uint32_t capacity, in_flight;
    dsp_item_t *running;        // assigned items (doubly linked)
    dsp_worker_t *prev, *next;  // every worker of the dispatcher
    void *user;
};

struct dsp_t {
    zhashx_t *by_name;          // name -> dsp_model_t (not owned by the hash)
    dsp_model_t **models;       // every model ever announced
    size_t nmodels;
    dsp_worker_t *workers;      // list of every worker
    size_t nworkers;
    uint32_t queue_limit;
    uint64_t seq;
    bool hold;                  // queue items of models no worker serves (dsp_set_hold)
};

dsp_t *dsp_new (uint32_t queue_limit)
{
    dsp_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->by_name = zhashx_new ();
    self->models = calloc (DSP_MODELS_MAX, sizeof *self->models);
    if (!self->by_name || !self->models) {
        dsp_destroy (&self);
        return NULL;
    }
    self->queue_limit = queue_limit;
    return self;
}

static void s_unlink (dsp_item_t **head, dsp_item_t *item)
{
    if (item->prev)
        item->prev->next = item->next;
    else
        *head = item->next;
    if (item->next)
        item->next->prev = item->prev;
    item->prev = item->next = NULL;
}

static void s_detach (dsp_item_t *item)
{
    item->prev = item->next = NULL;
    item->worker = NULL;
    item->model = NULL;
    item->queued = false;
}

void dsp_destroy (dsp_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    dsp_t *self = *self_p;
    while (self->workers) {
        dsp_worker_t *w = self->workers;
        self->workers = w->next;
        while (w->running) {
            dsp_item_t *it = w->running;
            s_unlink (&w->running, it);
            s_detach (it);
        }
        free (w);
    }
    for (size_t i = 0; i < self->nmodels; i++) {
        dsp_model_t *m = self->models[i];
        while (m->qhead) {
            dsp_item_t *it = m->qhead;
            m->qhead = it->next;
            s_detach (it);
        }
        free (m->workers);
        free (m->name);
        free (m);
    }
    free (self->models);
    zhashx_destroy (&self->by_name);
    free (self);
    *self_p = NULL;
}

dsp_model_t *dsp_model (dsp_t *self, const char *name)
{
    return (dsp_model_t *) zhashx_lookup (self->by_name, name);
}

static dsp_model_t *s_model_ensure (dsp_t *self, const char *name)
{
    dsp_model_t *m = dsp_model (self, name);
    if (m || self->nmodels >= DSP_MODELS_MAX)
        return m;
    m = calloc (1, sizeof *m);
    if (!m)
        return NULL;
    m->name = strdup (name);
    if (!m->name || zhashx_insert (self->by_name, name, m)) {
        free (m->name);
        free (m);
        return NULL;
    }
    self->models[self->nmodels++] = m;
    return m;
}

static int s_model_add_worker (dsp_model_t *m, dsp_worker_t *w)
{
    if (m->nworkers == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 4;
        dsp_worker_t **v = realloc (m->workers, cap * sizeof *v);
        if (!v)
            return -1;
        m->workers = v;
        m->cap = cap;
    }
    m->workers[m->nworkers++] = w;
    m->capacity += w->capacity;
    return 0;
}

static void s_model_remove_worker (dsp_model_t *m, dsp_worker_t *w)
{
    for (size_t i = 0; i < m->nworkers; i++)
        if (m->workers[i] == w) {
            m->workers[i] = m->workers[--m->nworkers];
            m->capacity -= w->capacity;
            return;
        }
}

static bool s_serves (const dsp_worker_t *w, const dsp_model_t *m)
{
    for (size_t i = 0; i < w->nmodels; i++)
        if (w->models[i] == m)
            return true;
    return false;
}

dsp_worker_t *dsp_worker_add (dsp_t *self, const char *const *models, size_t nmodels,
                              uint32_t capacity, void *user)
{
    dsp_worker_t *w = calloc (1, sizeof *w);
    if (!w)
        return NULL;
    w->capacity = capacity < 1 ? 1 : capacity > DSP_CAPACITY_MAX ? DSP_CAPACITY_MAX : capacity;
    w->user = user;
    for (size_t i = 0; i < nmodels && w->nmodels < DSP_WORKER_MODELS_MAX; i++) {
        if (!models[i] || !*models[i])
            continue;
        dsp_model_t *m = s_model_ensure (self, models[i]);
        if (!m || s_serves (w, m) || s_model_add_worker (m, w))
            continue;
        m->served = true;
        w->models[w->nmodels++] = m;
    }
    if (w->nmodels == 0) {
        free (w);
        return NULL;
    }
    w->next = self->workers;
    if (self->workers)
        self->workers->prev = w;
    self->workers = w;
    self->nworkers++;
    return w;
}

//  Detach every queued item of a model into *list.
static void s_orphan_queue (dsp_model_t *m, dsp_item_t **list)
{
    while (m->qhead) {
        dsp_item_t *it = m->qhead;
        m->qhead = it->next;
        s_detach (it);
        it->next = *list;
        *list = it;
    }
    m->qtail = NULL;
    m->nqueued = 0;
}

void dsp_worker_remove (dsp_t *self, dsp_worker_t **worker_p, dsp_item_t **lost,
                        dsp_item_t **orphans)
{
    if (!worker_p || !*worker_p)
        return;
    dsp_worker_t *w = *worker_p;
    dsp_item_t *lost_list = NULL, *orphan_list = NULL;
    while (w->running) {
        dsp_item_t *it = w->running;
        s_unlink (&w->running, it);
        it->model->in_flight--;
        s_detach (it);
        it->next = lost_list;
        lost_list = it;
    }
    for (size_t i = 0; i < w->nmodels; i++) {
        s_model_remove_worker (w->models[i], w);
        if (w->models[i]->nworkers == 0 && !self->hold)
            s_orphan_queue (w->models[i], &orphan_list);
    }
    if (lost)
        *lost = lost_list;
    if (orphans)
        *orphans = orphan_list;
    if (w->prev)
        w->prev->next = w->next;
    else
        self->workers = w->next;
    if (w->next)
        w->next->prev = w->prev;
    self->nworkers--;
    free (w);
    *worker_p = NULL;
}

static void s_assign (dsp_worker_t *w, dsp_model_t *m, dsp_item_t *item)
{
    item->worker = w;
    item->model = m;
    item->queued = false;
    item->prev = NULL;
    item->next = w->running;
    if (w->running)
        w->running->prev = item;
    w->running = item;
    w->in_flight++;
    m->in_flight++;
}

//  The model's worker with the most free credits, other than avoid; NULL if none has one.
static dsp_worker_t *s_best (const dsp_model_t *m, const dsp_worker_t *avoid)
{
    dsp_worker_t *best = NULL;
    for (size_t i = 0; i < m->nworkers; i++) {
        dsp_worker_t *w = m->workers[i];
        if (w != avoid && w->in_flight < w->capacity
            && (!best || w->capacity - w->in_flight > best->capacity - best->in_flight))
            best = w;
    }
    return best;
}

//  Queue an item of m (at its tail, or at its head), or refuse: the queue is full.
static dsp_status_t s_enqueue (dsp_t *self, dsp_model_t *m, dsp_item_t *item, bool head)
{
    if (m->nqueued >= self->queue_limit)
        return DSP_OVERLOADED;
    item->model = m;
    item->queued = true;
    if (head) {
        item->next = m->qhead;
        if (m->qhead)
            m->qhead->prev = item;
        else
            m->qtail = item;
        m->qhead = item;
    }
    else {
        item->prev = m->qtail;
        if (m->qtail)
            m->qtail->next = item;
        else
            m->qhead = item;
        m->qtail = item;
    }
    m->nqueued++;
    return DSP_QUEUED;
}

//  The model an item for name goes to, or NULL: no worker serves it (and, while
//  holding, none could be tracked).
static dsp_model_t *s_model_for (dsp_t *self, const char *name)
{
    if (!name)
        return NULL;
    dsp_model_t *m = self->hold ? s_model_ensure (self, name) : dsp_model (self, name);
    return m && (m->nworkers > 0 || self->hold) ? m : NULL;
}

static dsp_status_t s_place (dsp_t *self, dsp_model_t *m, dsp_item_t *item,
                             const dsp_worker_t *avoid, bool head)
{
    dsp_worker_t *best = s_best (m, avoid);
    if (best) {
        s_assign (best, m, item);
        return DSP_ASSIGNED;
    }
    dsp_status_t st = s_enqueue (self, m, item, head);
    return st == DSP_OVERLOADED && m->nworkers == 0 ? DSP_UNAVAILABLE : st;
}

dsp_status_t dsp_submit (dsp_t *self, dsp_item_t *item, const char *model)
{
    s_detach (item);
    dsp_model_t *m = s_model_for (self, model);
    if (!m)
        return DSP_UNAVAILABLE;
    item->seq = ++self->seq;
    return s_place (self, m, item, NULL, false);
}

dsp_status_t dsp_resubmit (dsp_t *self, dsp_item_t *item, const char *model,
                           const dsp_worker_t *avoid)
{
    s_detach (item);
    dsp_model_t *m = s_model_for (self, model);
    if (!m)
        return DSP_UNAVAILABLE;
    return s_place (self, m, item, avoid, true);
}

void dsp_set_hold (dsp_t *self, bool hold, dsp_item_t **orphans)
{
    self->hold = hold;
    dsp_item_t *list = NULL;
    size_t kept = 0;
    for (size_t i = 0; i < self->nmodels; i++) {
        dsp_model_t *m = self->models[i];
        if (!hold && m->nworkers == 0)
            s_orphan_queue (m, &list);
        if (!hold && !m->served) {      // a name only held for: forget it
            zhashx_delete (self->by_name, m->name);
            free (m->workers);
            free (m->name);
            free (m);
        }
        else
            self->models[kept++] = m;
    }
    self->nmodels = kept;
    if (orphans)
        *orphans = list;
}

bool dsp_holding (const dsp_t *self)
{
    return self->hold;
}

void dsp_worker_set_capacity (dsp_t *self, dsp_worker_t *worker, uint32_t capacity)
{
    (void) self;
    uint32_t cap = capacity > DSP_CAPACITY_MAX ? DSP_CAPACITY_MAX : capacity;
    for (size_t i = 0; i < worker->nmodels; i++)
        worker->models[i]->capacity = worker->models[i]->capacity - worker->capacity + cap;
    worker->capacity = cap;
}

static void s_unqueue (dsp_model_t *m, dsp_item_t *item)
{
    if (m->qtail == item)
        m->qtail = item->prev;
    s_unlink (&m->qhead, item);
    m->nqueued--;
}

dsp_worker_t *dsp_done (dsp_t *self, dsp_item_t *item)
{
    if (item->queued && item->model) {
        s_unqueue (item->model, item);
        s_detach (item);
        return NULL;
    }
    dsp_worker_t *w = item->worker;
    if (!w) {
        s_detach (item);
        return NULL;
    }
    s_unlink (&w->running, item);
    w->in_flight--;
    item->model->in_flight--;
    s_detach (item);
    return w;
}

dsp_item_t *dsp_pull (dsp_t *self, dsp_worker_t *worker)
{
    if (!worker || worker->in_flight >= worker->capacity)
        return NULL;
    dsp_model_t *from = NULL;
    for (size_t i = 0; i < worker->nmodels; i++) {
        dsp_model_t *m = worker->models[i];
        if (m->qhead && (!from || m->qhead->seq < from->qhead->seq))
            from = m;
    }
    if (!from)
        return NULL;
    dsp_item_t *item = from->qhead;
    s_unqueue (from, item);
    s_assign (worker, from, item);
    return item;
}

void *dsp_worker_user (const dsp_worker_t *worker)
{
    return worker->user;
}

uint32_t dsp_worker_capacity (const dsp_worker_t *worker)
{
    return worker->capacity;
}

uint32_t dsp_worker_in_flight (const dsp_worker_t *worker)
{
    return worker->in_flight;
}

size_t dsp_worker_models (const dsp_worker_t *worker)
{
    return worker->nmodels;
}

dsp_model_t *dsp_worker_model_at (const dsp_worker_t *worker, size_t i)
{
    return i < worker->nmodels ? worker->models[i] : NULL;
}

size_t dsp_worker_count (const dsp_t *self)
{
    return self->nworkers;
}

size_t dsp_model_count (const dsp_t *self)
{
    return self->nmodels;
}

dsp_model_t *dsp_model_at (const dsp_t *self, size_t i)
{
    return i < self->nmodels ? self->models[i] : NULL;
}

const char *dsp_model_name (const dsp_model_t *model)
{
    return model->name;
}

uint32_t dsp_model_workers (const dsp_model_t *model)
{
    return (uint32_t) model->nworkers;
}

uint32_t dsp_model_capacity (const dsp_model_t *model)
{
    return model->capacity;
}

uint32_t dsp_model_in_flight (const dsp_model_t *model)
{
    return model->in_flight;
}

uint32_t dsp_model_queued (const dsp_model_t *model)
{
    return model->nqueued;
}

void *dsp_model_user (const dsp_model_t *model)
{
    return model->user;
}

void dsp_model_set_user (dsp_model_t *model, void *user)
{
    model->user = user;
}
