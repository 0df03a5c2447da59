// Reference-counted immutable objects shared between threads, and a box holding the
// latest one. An object embeds snap_t as its first member and names the function that
// frees it; readers take a reference and never see it change. snap_box_t: one writer
// at a time swaps in a new object, readers take a reference under a mutex held for a
// pointer copy only. The one home of this pattern (broker status, metrics snapshot,
// fan-out messages).
#ifndef AIGW_SNAP_H
#define AIGW_SNAP_H

#include <pthread.h>
#include <stdatomic.h>

typedef struct snap_t snap_t;
typedef void (snap_free_fn) (snap_t *self);

struct snap_t {
    _Atomic int refs;
    snap_free_fn *free_fn;              // called on the last release
};

//  One reference, held by the caller.
void snap_init (snap_t *self, snap_free_fn *free_fn);
//  Another reference (self may be NULL). Returns self.
snap_t *snap_ref (snap_t *self);
//  Drop a reference: frees on the last one. Nulls *self_p; accepts NULL.
void snap_release (snap_t **self_p);

typedef struct {
    pthread_mutex_t lock;
    snap_t *cur;                        // may be NULL
} snap_box_t;

void snap_box_init (snap_box_t *self);
//  Release the held object.
void snap_box_fini (snap_box_t *self);
//  Replace the held object; takes the caller's reference from *snap_p and nulls it.
void snap_box_set (snap_box_t *self, snap_t **snap_p);
//  A reference to the held object, or NULL; the caller releases it.
snap_t *snap_box_get (snap_box_t *self);

#endif
