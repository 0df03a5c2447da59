// Intrusive chained hash table with a seeded 64-bit hash (FNV-1a plus a final mix).
#include "hmap.h"

#include <stdlib.h>

#define BHASH_MIN_SLOTS 64

static uint64_t s_seed = 0x9e3779b97f4a7c15ULL;

void hmap_seed (uint64_t seed)
{
    if (seed)
        s_seed = seed;
}

static uint64_t s_mix (uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

uint64_t hmap_bytes (const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ULL ^ s_seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return s_mix (h);
}

uint64_t hmap_u64 (uint64_t v)
{
    return s_mix (v ^ s_seed);
}

int hmap_init (hmap_t *self, hmap_eq_fn *eq)
{
    self->slots = calloc (BHASH_MIN_SLOTS, sizeof *self->slots);
    self->nslots = BHASH_MIN_SLOTS;
    self->size = 0;
    self->eq = eq;
    return self->slots ? 0 : -1;
}

void hmap_fini (hmap_t *self)
{
    free (self->slots);
    self->slots = NULL;
    self->nslots = 0;
    self->size = 0;
}

hmap_node_t *hmap_find (const hmap_t *self, uint64_t hash, const void *key)
{
    if (!self->nslots)
        return NULL;
    hmap_node_t *n = self->slots[hash & (self->nslots - 1)];
    for (; n; n = n->next)
        if (n->hash == hash && self->eq (n, key))
            return n;
    return NULL;
}

static void s_grow (hmap_t *self)
{
    size_t nslots = self->nslots * 2;
    hmap_node_t **slots = calloc (nslots, sizeof *slots);
    if (!slots)
        return;
    for (size_t i = 0; i < self->nslots; i++) {
        hmap_node_t *n = self->slots[i];
        while (n) {
            hmap_node_t *next = n->next;
            size_t s = n->hash & (nslots - 1);
            n->next = slots[s];
            slots[s] = n;
            n = next;
        }
    }
    free (self->slots);
    self->slots = slots;
    self->nslots = nslots;
}

void hmap_insert (hmap_t *self, hmap_node_t *node, uint64_t hash)
{
    if (self->size >= self->nslots)
        s_grow (self);
    size_t s = hash & (self->nslots - 1);
    node->hash = hash;
    node->next = self->slots[s];
    self->slots[s] = node;
    self->size++;
}

void hmap_remove (hmap_t *self, hmap_node_t *node)
{
    hmap_node_t **pp = &self->slots[node->hash & (self->nslots - 1)];
    while (*pp && *pp != node)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = node->next;
        node->next = NULL;
        self->size--;
    }
}

hmap_node_t *hmap_pop (hmap_t *self, size_t *cursor)
{
    for (; self->size && *cursor < self->nslots; ++*cursor) {
        hmap_node_t *n = self->slots[*cursor];
        if (n) {
            self->slots[*cursor] = n->next;
            n->next = NULL;
            self->size--;
            return n;
        }
    }
    return NULL;
}

hmap_node_t *hmap_any (const hmap_t *self)
{
    for (size_t i = 0; self->size && i < self->nslots; i++)
        if (self->slots[i])
            return self->slots[i];
    return NULL;
}

void hmap_each (const hmap_t *self, void (*fn) (hmap_node_t *node, void *arg), void *arg)
{
    for (size_t i = 0; i < self->nslots; i++)
        for (hmap_node_t *n = self->slots[i]; n; n = n->next)
            fn (n, arg);
}
