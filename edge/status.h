// Broker status snapshot (from PONG): which models are live and how many workers serve them.
// Immutable once built and shared between threads by reference count.
#ifndef AIGW_EDGE_STATUS_H
#define AIGW_EDGE_STATUS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "snap.h"
#include "aigw.pb-c.h"

#define EDGE_STATUS_MODELS_MAX 4096     // models kept from one PONG; the rest are ignored

typedef struct {
    char name[CFG_NAME_MAX];
    uint32_t workers;                   // 0 = known to the broker but nobody serves it
    uint32_t capacity;
    uint32_t in_flight;
    uint32_t queued;
} edge_model_status_t;

typedef struct {
    snap_t base;                        // reference count (common/snap.h)
    int64_t at_ms;                      // aclock ms when the PONG arrived
    uint32_t workers;                   // workers registered at the broker
    uint64_t jobs_in_flight;
    char broker_id[CFG_NAME_MAX];
    size_t nmodels;
    edge_model_status_t *models;        // sorted by name
} edge_status_t;

//  Build a snapshot from a decoded PONG body (names too long for CFG_NAME_MAX are
//  skipped). Returns NULL on allocation failure. Caller owns one reference.
edge_status_t *edge_status_new (const Aigw__BrokerStatus *pb, int64_t at_ms);

//  Take another reference (self may be NULL). Returns self.
edge_status_t *edge_status_ref (edge_status_t *self);

//  Drop a reference; frees on the last one. Nulls *self_p; accepts NULL.
void edge_status_release (edge_status_t **self_p);

//  Find a model by name (binary search); NULL if absent or self is NULL.
const edge_model_status_t *edge_status_model (const edge_status_t *self, const char *name);

//  True if the broker knows the model and at least one worker serves it.
bool edge_status_live (const edge_status_t *self, const char *name);

//  The latest snapshot, shared by every event loop: one writer at a time swaps it in,
//  readers take a reference under a mutex held for a pointer copy.
typedef struct _edge_status_box_t edge_status_box_t;

edge_status_box_t *edge_status_box_new (void);
void edge_status_box_destroy (edge_status_box_t **self_p);
//  Replace the snapshot; takes ownership of *st_p and nulls it.
void edge_status_box_set (edge_status_box_t *self, edge_status_t **st_p);
//  The latest snapshot or NULL; caller releases it.
edge_status_t *edge_status_box_get (edge_status_box_t *self);

#endif
