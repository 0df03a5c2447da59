// Job routing table on common/hmap; routes live in entries recycled through a free
// list, so the steady state allocates nothing.
#include "jobmap.h"
#include "hmap.h"

#include <stdlib.h>
#include <string.h>

#define s_container(ptr, type, member) ((type *) ((char *) (ptr) - offsetof (type, member)))

typedef struct s_entry {
    hmap_node_t node;
    edge_route_t route;
    struct s_entry *free_next;
} s_entry_t;

struct _edge_jobmap_t {
    hmap_t map;
    s_entry_t *free;                    // recycled entries
};

static bool s_eq (const hmap_node_t *node, const void *key)
{
    return s_container (node, s_entry_t, node)->route.job_id == *(const uint64_t *) key;
}

edge_jobmap_t *edge_jobmap_new (void)
{
    edge_jobmap_t *self = calloc (1, sizeof *self);
    if (!self || hmap_init (&self->map, s_eq)) {
        free (self);
        return NULL;
    }
    return self;
}

void edge_jobmap_destroy (edge_jobmap_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    edge_jobmap_t *self = *self_p;
    hmap_node_t *n;
    size_t cursor = 0;
    while ((n = hmap_pop (&self->map, &cursor)))
        free (s_container (n, s_entry_t, node));
    while (self->free) {
        s_entry_t *e = self->free;
        self->free = e->free_next;
        free (e);
    }
    hmap_fini (&self->map);
    free (self);
    *self_p = NULL;
}

static s_entry_t *s_find (const edge_jobmap_t *self, uint64_t job_id)
{
    hmap_node_t *n = job_id ? hmap_find (&self->map, hmap_u64 (job_id), &job_id) : NULL;
    return n ? s_container (n, s_entry_t, node) : NULL;
}

int edge_jobmap_put (edge_jobmap_t *self, uint64_t job_id, void *req, int64_t since_ms)
{
    if (job_id == 0)
        return -1;
    s_entry_t *e = s_find (self, job_id);
    if (!e) {
        e = self->free;
        if (e)
            self->free = e->free_next;
        else
        if (!(e = malloc (sizeof *e)))
            return -1;
        e->route.job_id = job_id;
        hmap_insert (&self->map, &e->node, hmap_u64 (job_id));
    }
    e->route.req = req;
    e->route.since_ms = since_ms;
    e->route.held = NULL;
    e->route.lost_ms = 0;
    e->route.broker = 0;
    return 0;
}

edge_route_t *edge_jobmap_get (const edge_jobmap_t *self, uint64_t job_id)
{
    s_entry_t *e = s_find (self, job_id);
    return e ? &e->route : NULL;
}

static void s_recycle (edge_jobmap_t *self, s_entry_t *e)
{
    hmap_remove (&self->map, &e->node);
    e->free_next = self->free;
    self->free = e;
}

bool edge_jobmap_take (edge_jobmap_t *self, uint64_t job_id, edge_route_t *out)
{
    s_entry_t *e = s_find (self, job_id);
    if (!e)
        return false;
    if (out)
        *out = e->route;
    s_recycle (self, e);
    return true;
}

size_t edge_jobmap_size (const edge_jobmap_t *self)
{
    return self->map.size;
}

void edge_jobmap_drain (edge_jobmap_t *self, void (*fn) (const edge_route_t *r, void *arg),
                        void *arg)
{
    //  Empty the table first, so fn may put or take routes while it runs
    size_t n = self->map.size;
    edge_route_t *copy = fn && n ? malloc (n * sizeof *copy) : NULL;
    size_t k = 0;
    hmap_node_t *node;
    size_t cursor = 0;
    while ((node = hmap_pop (&self->map, &cursor))) {
        s_entry_t *e = s_container (node, s_entry_t, node);
        if (copy)
            copy[k++] = e->route;
        e->free_next = self->free;
        self->free = e;
    }
    for (size_t i = 0; i < k; i++)
        fn (&copy[i], arg);
    free (copy);
}

typedef struct {
    void (*fn) (edge_route_t *r, void *arg);
    void *arg;
} s_each_t;

static void s_each (hmap_node_t *node, void *arg)
{
    s_each_t *e = arg;
    e->fn (&s_container (node, s_entry_t, node)->route, e->arg);
}

void edge_jobmap_each (const edge_jobmap_t *self, void (*fn) (edge_route_t *r, void *arg),
                       void *arg)
{
    s_each_t e = { fn, arg };
    hmap_each (&self->map, s_each, &e);
}
