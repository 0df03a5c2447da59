// Intrusive chained hash table: the one hash map of the broker (jobs, attempts, workers),
// the edge (job routes) and the workers (attempts). No allocation per insert: the node
// lives inside the caller's struct.
#ifndef AIGW_HMAP_H
#define AIGW_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hmap_node_t {
    struct hmap_node_t *next;  // chain
    uint64_t hash;              // full hash, compared before eq
} hmap_node_t;

//  True if node's key equals key (the caller knows both types).
typedef bool (hmap_eq_fn) (const hmap_node_t *node, const void *key);

typedef struct {
    hmap_node_t **slots;
    size_t nslots;              // power of two
    size_t size;                // number of nodes
    hmap_eq_fn *eq;
} hmap_t;

//  Initialise an empty table. Returns 0 / -1 (out of memory).
int hmap_init (hmap_t *self, hmap_eq_fn *eq);
//  Free the slot array; nodes belong to the caller and are not touched.
void hmap_fini (hmap_t *self);
//  Node with this hash and key, or NULL.
hmap_node_t *hmap_find (const hmap_t *self, uint64_t hash, const void *key);
//  Insert a node (not already present). Grows the slot array at load 1; if that
//  fails the node is still inserted (chains just get longer).
void hmap_insert (hmap_t *self, hmap_node_t *node, uint64_t hash);
//  Remove a node that is in the table.
void hmap_remove (hmap_t *self, hmap_node_t *node);
//  Remove and return some node, or NULL when empty: start with *cursor = 0 and do not
//  insert while popping; emptying a table this way is O(slots + nodes).
hmap_node_t *hmap_pop (hmap_t *self, size_t *cursor);
//  Any node of the table, or NULL if empty (for draining at shutdown).
hmap_node_t *hmap_any (const hmap_t *self);

//  Call fn for every node; fn may change the nodes' payloads but must not insert or
//  remove.
void hmap_each (const hmap_t *self, void (*fn) (hmap_node_t *node, void *arg), void *arg);

//  Seeded hashes. Set the process-wide seed once at startup (0 keeps the default).
void hmap_seed (uint64_t seed);
uint64_t hmap_bytes (const void *data, size_t len);
uint64_t hmap_u64 (uint64_t v);

#endif
