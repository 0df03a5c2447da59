// Reference counts and the latest-snapshot box.
#include "snap.h"

#include <stddef.h>

void snap_init (snap_t *self, snap_free_fn *free_fn)
{
    atomic_init (&self->refs, 1);
    self->free_fn = free_fn;
}

snap_t *snap_ref (snap_t *self)
{
    if (self)
        atomic_fetch_add_explicit (&self->refs, 1, memory_order_relaxed);
    return self;
}

void snap_release (snap_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    snap_t *self = *self_p;
    *self_p = NULL;
    //  acq_rel: the last owner sees every other owner's reads done before it frees
    if (atomic_fetch_sub_explicit (&self->refs, 1, memory_order_acq_rel) == 1)
        self->free_fn (self);
}

void snap_box_init (snap_box_t *self)
{
    pthread_mutex_init (&self->lock, NULL);
    self->cur = NULL;
}

void snap_box_fini (snap_box_t *self)
{
    snap_release (&self->cur);
    pthread_mutex_destroy (&self->lock);
}

void snap_box_set (snap_box_t *self, snap_t **snap_p)
{
    snap_t *snap = *snap_p;
    *snap_p = NULL;
    pthread_mutex_lock (&self->lock);
    snap_t *old = self->cur;
    self->cur = snap;
    pthread_mutex_unlock (&self->lock);
    snap_release (&old);
}

snap_t *snap_box_get (snap_box_t *self)
{
    pthread_mutex_lock (&self->lock);
    snap_t *snap = snap_ref (self->cur);
    pthread_mutex_unlock (&self->lock);
    return snap;
}
