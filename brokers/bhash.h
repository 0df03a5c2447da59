// Intrusive chained hash table for the broker's hot tables (jobs, attempts, workers).
// No allocation per insert: the node lives inside the caller's struct.
#ifndef AIGW_BHASH_H
#define AIGW_BHASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bhash_node_t {
    struct bhash_node_t *next;  // chain
    uint64_t hash;              // full hash, compared before eq
} bhash_node_t;

//  True if node's key equals key (the caller knows both types).
typedef bool (bhash_eq_fn) (const bhash_node_t *node, const void *key);

typedef struct {
    bhash_node_t **slots;
    size_t nslots;              // power of two
    size_t size;                // number of nodes
    bhash_eq_fn *eq;
} bhash_t;

//  Initialise an empty table. Returns 0 / -1 (out of memory).
int bhash_init (bhash_t *self, bhash_eq_fn *eq);
//  Free the slot array; nodes belong to the caller and are not touched.
void bhash_fini (bhash_t *self);
//  Node with this hash and key, or NULL.
bhash_node_t *bhash_find (const bhash_t *self, uint64_t hash, const void *key);
//  Insert a node (not already present). Grows the slot array at load 1; if that
//  fails the node is still inserted (chains just get longer).
void bhash_insert (bhash_t *self, bhash_node_t *node, uint64_t hash);
//  Remove a node that is in the table.
void bhash_remove (bhash_t *self, bhash_node_t *node);
//  Any node of the table, or NULL if empty (for draining at shutdown).
bhash_node_t *bhash_any (const bhash_t *self);

//  Seeded hashes. Set the process-wide seed once at startup (0 keeps the default).
void bhash_seed (uint64_t seed);
uint64_t bhash_bytes (const void *data, size_t len);
uint64_t bhash_u64 (uint64_t v);

#endif
