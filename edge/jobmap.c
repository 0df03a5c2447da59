// Job routing table: power-of-two open addressing, backward-shift deletion (no tombstones).
#include "jobmap.h"

#include <stdlib.h>
#include <string.h>

#define S_MIN_CAP 64

struct _edge_jobmap_t {
    edge_route_t *slots;
    size_t cap;                         // power of two
    size_t size;
};

static size_t s_hash (uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return (size_t) k;
}

edge_jobmap_t *edge_jobmap_new (void)
{
    edge_jobmap_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->cap = S_MIN_CAP;
    self->slots = calloc (self->cap, sizeof *self->slots);
    if (!self->slots) {
        free (self);
        return NULL;
    }
    return self;
}

void edge_jobmap_destroy (edge_jobmap_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free ((*self_p)->slots);
    free (*self_p);
    *self_p = NULL;
}

static edge_route_t *s_slot (const edge_jobmap_t *self, uint64_t job_id)
{
    size_t mask = self->cap - 1;
    for (size_t i = s_hash (job_id) & mask;; i = (i + 1) & mask) {
        edge_route_t *r = &self->slots[i];
        if (r->job_id == job_id || r->job_id == 0)
            return r;
    }
}

static int s_grow (edge_jobmap_t *self)
{
    edge_route_t *old = self->slots;
    size_t old_cap = self->cap;
    edge_route_t *slots = calloc (old_cap * 2, sizeof *slots);
    if (!slots)
        return -1;
    self->slots = slots;
    self->cap = old_cap * 2;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].job_id)
            *s_slot (self, old[i].job_id) = old[i];
    free (old);
    return 0;
}

int edge_jobmap_put (edge_jobmap_t *self, uint64_t job_id, void *req, int64_t since_ms)
{
    if (job_id == 0)
        return -1;
    if ((self->size + 1) * 2 > self->cap && s_grow (self))
        return -1;
    edge_route_t *r = s_slot (self, job_id);
    if (r->job_id == 0)
        self->size++;
    r->job_id = job_id;
    r->req = req;
    r->since_ms = since_ms;
    return 0;
}

const edge_route_t *edge_jobmap_get (const edge_jobmap_t *self, uint64_t job_id)
{
    if (job_id == 0)
        return NULL;
    edge_route_t *r = s_slot (self, job_id);
    return r->job_id ? r : NULL;
}

//  Backward-shift deletion: pull later members of the probe run into the hole.
static void s_remove_at (edge_jobmap_t *self, size_t hole)
{
    size_t mask = self->cap - 1;
    size_t i = hole;
    while (true) {
        i = (i + 1) & mask;
        if (self->slots[i].job_id == 0)
            break;
        size_t home = s_hash (self->slots[i].job_id) & mask;
        //  Move slot i into the hole unless its home lies cyclically in (hole, i]
        bool stays = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!stays) {
            self->slots[hole] = self->slots[i];
            hole = i;
        }
    }
    memset (&self->slots[hole], 0, sizeof self->slots[hole]);
    self->size--;
}

bool edge_jobmap_take (edge_jobmap_t *self, uint64_t job_id, edge_route_t *out)
{
    if (job_id == 0)
        return false;
    edge_route_t *r = s_slot (self, job_id);
    if (r->job_id == 0)
        return false;
    if (out)
        *out = *r;
    s_remove_at (self, (size_t) (r - self->slots));
    return true;
}

size_t edge_jobmap_size (const edge_jobmap_t *self)
{
    return self->size;
}

void edge_jobmap_drain (edge_jobmap_t *self, void (*fn) (const edge_route_t *r, void *arg),
                        void *arg)
{
    //  Empty the table first, so fn may put or take routes while it runs
    edge_route_t *copy = fn && self->size ? malloc (self->size * sizeof *copy) : NULL;
    size_t n = 0;
    for (size_t i = 0; copy && i < self->cap; i++)
        if (self->slots[i].job_id)
            copy[n++] = self->slots[i];
    memset (self->slots, 0, self->cap * sizeof *self->slots);
    self->size = 0;
    for (size_t i = 0; i < n; i++)
        fn (&copy[i], arg);
    free (copy);
}
