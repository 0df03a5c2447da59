// Worker pools and credit-based dispatch: per model a pool of workers; each worker
// has one credit pool (capacity minus in flight) shared by every model it serves.
// An attempt goes to the worker of its model with the most free credits, else into
// the model's bounded FIFO queue. Pure logic: no sockets, no clock.
#ifndef AIGW_DSP_H
#define AIGW_DSP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DSP_MODELS_MAX 4096         // distinct model names the broker will track
#define DSP_WORKER_MODELS_MAX 64    // models one worker may serve
#define DSP_CAPACITY_MAX 65536      // credits one worker may announce

typedef struct dsp_t dsp_t;
typedef struct dsp_worker_t dsp_worker_t;
typedef struct dsp_model_t dsp_model_t;

//  A unit of work (one attempt), embedded in the caller's struct. Owned by the caller;
//  the dispatcher only links it into a worker's running list or a model's queue.
typedef struct dsp_item_t {
    struct dsp_item_t *prev, *next;  // running list of worker, or model queue
    dsp_worker_t *worker;            // set while assigned
    dsp_model_t *model;              // set while assigned or queued
    uint64_t seq;                    // queue order
    bool queued;
} dsp_item_t;

typedef enum {
    DSP_ASSIGNED = 0,   // item->worker is set: send the task to it
    DSP_QUEUED,         // waits for a credit; comes back from dsp_pull
    DSP_UNAVAILABLE,    // no live worker serves the model
    DSP_OVERLOADED,     // no credit and the model's queue is full
} dsp_status_t;

//  queue_limit: items each model may queue (0 = never queue).
dsp_t *dsp_new (uint32_t queue_limit);
//  Items still linked are detached, not freed (they belong to the caller).
void dsp_destroy (dsp_t **self_p);

//  Register a worker serving models (duplicates ignored, names beyond the limits
//  skipped) with capacity credits (clamped to 1..DSP_CAPACITY_MAX). user is the
//  caller's handle. Returns NULL on out of memory or if no model could be added.
dsp_worker_t *dsp_worker_add (dsp_t *self, const char *const *models, size_t nmodels,
                              uint32_t capacity, void *user);
//  Remove a worker and null the pointer. Its running items are detached and
//  returned as a list through *lost (linked by ->next); queued items of models that
//  now have no worker are detached and returned through *orphans. Either may be NULL
//  if the caller does not care (items are still detached).
void dsp_worker_remove (dsp_t *self, dsp_worker_t **worker_p, dsp_item_t **lost,
                        dsp_item_t **orphans);

//  Place an item for model (the item must not be linked).
dsp_status_t dsp_submit (dsp_t *self, dsp_item_t *item, const char *model);
//  The item is done (result, error or cancel): unqueue it or return its worker's
//  credit. Returns the worker whose credit came back (call dsp_pull for it), or NULL.
dsp_worker_t *dsp_done (dsp_t *self, dsp_item_t *item);
//  If the worker has a free credit, assign it the oldest queued item of its models.
//  Returns that item (now assigned) or NULL.
dsp_item_t *dsp_pull (dsp_t *self, dsp_worker_t *worker);
//  Place again an item that a worker sent back (the item must not be linked): to the
//  model's worker with the most free credits other than avoid, else at the head of
//  the model's queue (it keeps its turn). Same statuses as dsp_submit.
dsp_status_t dsp_resubmit (dsp_t *self, dsp_item_t *item, const char *model,
                           const dsp_worker_t *avoid);
//  Hold (a broker that has just started, while the workers of its previous instance
//  come back): with hold on, an item for a model no worker serves waits in that
//  model's queue (the model is tracked from then on, within DSP_MODELS_MAX) instead of
//  DSP_UNAVAILABLE, and a model's last worker leaving keeps its queue. Turning hold off
//  detaches the queued items of every model that still has no worker into *orphans
//  (linked by ->next; may be NULL).
void dsp_set_hold (dsp_t *self, bool hold, dsp_item_t **orphans);
bool dsp_holding (const dsp_t *self);
//  A worker's new capacity (clamped to 0..DSP_CAPACITY_MAX; 0: send it nothing now).
//  Items beyond it keep running; call dsp_pull when it grew.
void dsp_worker_set_capacity (dsp_t *self, dsp_worker_t *worker, uint32_t capacity);

void *dsp_worker_user (const dsp_worker_t *worker);
uint32_t dsp_worker_capacity (const dsp_worker_t *worker);
uint32_t dsp_worker_in_flight (const dsp_worker_t *worker);
size_t dsp_worker_count (const dsp_t *self);
//  Models a worker serves: count, and model number i (NULL if out of range).
size_t dsp_worker_models (const dsp_worker_t *worker);
dsp_model_t *dsp_worker_model_at (const dsp_worker_t *worker, size_t i);

//  Models (kept for the life of the dispatcher once announced).
dsp_model_t *dsp_model (dsp_t *self, const char *name);
size_t dsp_model_count (const dsp_t *self);
//  Model number i (0 <= i < dsp_model_count), in order of first announcement.
dsp_model_t *dsp_model_at (const dsp_t *self, size_t i);
const char *dsp_model_name (const dsp_model_t *model);
uint32_t dsp_model_workers (const dsp_model_t *model);
uint32_t dsp_model_capacity (const dsp_model_t *model);
uint32_t dsp_model_in_flight (const dsp_model_t *model);
uint32_t dsp_model_queued (const dsp_model_t *model);
//  A caller pointer per model (e.g. statistics); the dispatcher never frees it.
void *dsp_model_user (const dsp_model_t *model);
void dsp_model_set_user (dsp_model_t *model, void *user);

#endif
