// Attempt table: fixed slots with a free stack, the id index (common/hmap: the node
// lives in the attempt) and the timers (common/theap, reserved for every slot, so
// arming never fails). All operations O(1) or O(log n).
#include "wk_table.h"

#include <stdlib.h>
#include <string.h>

#define s_container(ptr, type, member) ((type *) ((char *) (ptr) - offsetof (type, member)))

struct _wk_table_t {
    uint32_t capacity;
    wk_attempt_t *slots;
    uint32_t *free_stack;       // indices of free slots
    uint32_t nfree;
    hmap_t index;               // live attempts by (broker, attempt_id)
    theap_t timers;             // armed attempts, earliest first
};

typedef struct {
    uint64_t attempt_id;
    uint32_t broker;
} s_key_t;

static bool s_eq (const hmap_node_t *node, const void *key)
{
    const wk_attempt_t *a = s_container (node, wk_attempt_t, node);
    const s_key_t *k = key;
    return a->attempt_id == k->attempt_id && a->broker == k->broker;
}

static uint64_t s_hash (uint32_t broker, uint64_t attempt_id)
{
    return hmap_u64 (attempt_id ^ ((uint64_t) broker << 56));
}

wk_table_t *wk_table_new (uint32_t capacity)
{
    if (capacity == 0)
        return NULL;
    wk_table_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->capacity = capacity;
    theap_init (&self->timers);
    self->slots = calloc (capacity, sizeof *self->slots);
    self->free_stack = calloc (capacity, sizeof *self->free_stack);
    if (!self->slots || !self->free_stack || hmap_init (&self->index, s_eq)
        || theap_reserve (&self->timers, capacity)) {
        wk_table_destroy (&self);
        return NULL;
    }
    for (uint32_t i = 0; i < capacity; i++)
        self->free_stack [i] = capacity - 1 - i;
    self->nfree = capacity;
    return self;
}

void wk_table_destroy (wk_table_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    wk_table_t *self = *self_p;
    free (self->slots);
    free (self->free_stack);
    hmap_fini (&self->index);
    theap_fini (&self->timers);
    free (self);
    *self_p = NULL;
}

wk_attempt_t *wk_table_find (wk_table_t *self, uint32_t broker, uint64_t attempt_id)
{
    s_key_t key = { .attempt_id = attempt_id, .broker = broker };
    hmap_node_t *n = hmap_find (&self->index, s_hash (broker, attempt_id), &key);
    return n ? s_container (n, wk_attempt_t, node) : NULL;
}

wk_attempt_t *wk_table_add (wk_table_t *self, uint32_t broker, uint64_t attempt_id)
{
    if (self->nfree == 0 || wk_table_find (self, broker, attempt_id))
        return NULL;
    uint32_t slot = self->free_stack [--self->nfree];
    wk_attempt_t *a = &self->slots [slot];
    memset (a, 0, sizeof *a);
    a->attempt_id = attempt_id;
    a->broker = broker;
    a->slot = slot;
    a->live = true;
    theap_node_init (&a->timer);
    hmap_insert (&self->index, &a->node, s_hash (broker, attempt_id));
    return a;
}

void wk_table_remove (wk_table_t *self, wk_attempt_t *a)
{
    if (!a || !a->live)
        return;
    wk_table_timer_clear (self, a);
    hmap_remove (&self->index, &a->node);
    a->live = false;
    self->free_stack [self->nfree++] = a->slot;
}

uint32_t wk_table_used (wk_table_t *self)
{
    return self->capacity - self->nfree;
}

uint32_t wk_table_capacity (wk_table_t *self)
{
    return self->capacity;
}

wk_attempt_t *wk_table_slot (wk_table_t *self, uint32_t index)
{
    return index < self->capacity ? &self->slots [index] : NULL;
}

void wk_table_timer_clear (wk_table_t *self, wk_attempt_t *a)
{
    theap_remove (&self->timers, &a->timer);
}

void wk_table_timer_set (wk_table_t *self, wk_attempt_t *a, int64_t due_ms)
{
    //  Reserved for every slot at creation: cannot fail
    (void) theap_set (&self->timers, &a->timer, due_ms);
}

wk_attempt_t *wk_table_timer_first (wk_table_t *self)
{
    theap_node_t *n = theap_top (&self->timers);
    return n ? s_container (n, wk_attempt_t, timer) : NULL;
}
