// Attempt table: fixed slots, free stack, linear-probing id index with backward-shift
// delete, and an indexed binary min-heap of timers. All operations O(1) or O(log n).
#include "wk_table.h"

#include <stdlib.h>
#include <string.h>

struct _wk_table_t {
    uint32_t capacity;
    wk_attempt_t *slots;
    uint32_t *free_stack;       // indices of free slots
    uint32_t nfree;
    uint32_t *index;            // slot + 1, 0 = empty
    size_t index_mask;
    wk_attempt_t **heap;        // timers, earliest first
    size_t nheap;
};

static size_t s_hash (uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t) x;
}

wk_table_t *wk_table_new (uint32_t capacity)
{
    if (capacity == 0)
        return NULL;
    wk_table_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    size_t isize = 16;
    while (isize < (size_t) capacity * 2)
        isize *= 2;
    self->capacity = capacity;
    self->slots = calloc (capacity, sizeof *self->slots);
    self->free_stack = calloc (capacity, sizeof *self->free_stack);
    self->index = calloc (isize, sizeof *self->index);
    self->heap = calloc (capacity, sizeof *self->heap);
    self->index_mask = isize - 1;
    if (!self->slots || !self->free_stack || !self->index || !self->heap) {
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
    free (self->index);
    free (self->heap);
    free (self);
    *self_p = NULL;
}

//  Index position holding attempt_id, or the empty position where it would go.
static size_t s_probe (wk_table_t *self, uint64_t attempt_id)
{
    size_t i = s_hash (attempt_id) & self->index_mask;
    while (self->index [i]) {
        if (self->slots [self->index [i] - 1].attempt_id == attempt_id)
            return i;
        i = (i + 1) & self->index_mask;
    }
    return i;
}

wk_attempt_t *wk_table_find (wk_table_t *self, uint64_t attempt_id)
{
    size_t i = s_probe (self, attempt_id);
    return self->index [i] ? &self->slots [self->index [i] - 1] : NULL;
}

wk_attempt_t *wk_table_add (wk_table_t *self, uint64_t attempt_id)
{
    if (self->nfree == 0)
        return NULL;
    size_t i = s_probe (self, attempt_id);
    if (self->index [i])
        return NULL;
    uint32_t slot = self->free_stack [--self->nfree];
    wk_attempt_t *a = &self->slots [slot];
    memset (a, 0, sizeof *a);
    a->attempt_id = attempt_id;
    a->slot = slot;
    a->live = true;
    a->heap_idx = SIZE_MAX;
    self->index [i] = slot + 1;
    return a;
}

//  Backward-shift deletion keeps probe chains intact without tombstones.
static void s_index_delete (wk_table_t *self, size_t hole)
{
    size_t j = hole;
    self->index [hole] = 0;
    for (;;) {
        j = (j + 1) & self->index_mask;
        if (!self->index [j])
            return;
        size_t home = s_hash (self->slots [self->index [j] - 1].attempt_id) & self->index_mask;
        //  Move j into the hole unless its home lies cyclically in (hole, j]
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (stays)
            continue;
        self->index [hole] = self->index [j];
        self->index [j] = 0;
        hole = j;
    }
}

void wk_table_remove (wk_table_t *self, wk_attempt_t *a)
{
    if (!a || !a->live)
        return;
    wk_table_timer_clear (self, a);
    size_t i = s_probe (self, a->attempt_id);
    if (self->index [i] == a->slot + 1)
        s_index_delete (self, i);
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

//  ---- heap

static void s_heap_put (wk_table_t *self, size_t i, wk_attempt_t *a)
{
    self->heap [i] = a;
    a->heap_idx = i;
}

static void s_sift_up (wk_table_t *self, size_t i)
{
    wk_attempt_t *a = self->heap [i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (self->heap [parent]->due_ms <= a->due_ms)
            break;
        s_heap_put (self, i, self->heap [parent]);
        i = parent;
    }
    s_heap_put (self, i, a);
}

static void s_sift_down (wk_table_t *self, size_t i)
{
    wk_attempt_t *a = self->heap [i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= self->nheap)
            break;
        if (c + 1 < self->nheap && self->heap [c + 1]->due_ms < self->heap [c]->due_ms)
            c++;
        if (self->heap [c]->due_ms >= a->due_ms)
            break;
        s_heap_put (self, i, self->heap [c]);
        i = c;
    }
    s_heap_put (self, i, a);
}

void wk_table_timer_clear (wk_table_t *self, wk_attempt_t *a)
{
    size_t i = a->heap_idx;
    if (i == SIZE_MAX || i >= self->nheap || self->heap [i] != a)
        return;
    a->heap_idx = SIZE_MAX;
    wk_attempt_t *last = self->heap [--self->nheap];
    if (last == a)
        return;
    s_heap_put (self, i, last);
    s_sift_up (self, i);
    s_sift_down (self, last->heap_idx);
}

void wk_table_timer_set (wk_table_t *self, wk_attempt_t *a, int64_t due_ms)
{
    wk_table_timer_clear (self, a);
    a->due_ms = due_ms;
    s_heap_put (self, self->nheap++, a);
    s_sift_up (self, a->heap_idx);
}

wk_attempt_t *wk_table_timer_first (wk_table_t *self)
{
    return self->nheap ? self->heap [0] : NULL;
}
