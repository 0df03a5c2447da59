// Indexed binary min-heap of timers: each node knows its slot, so moving or
// removing a timer is O(log n) and nothing is ever scanned.
#ifndef AIGW_THEAP_H
#define AIGW_THEAP_H

#include <stddef.h>
#include <stdint.h>

#define THEAP_NONE ((size_t) -1)

typedef struct {
    int64_t when;   // due time (any monotonic unit)
    size_t idx;     // slot in the heap, THEAP_NONE when not queued
} theap_node_t;

typedef struct {
    theap_node_t **v;
    size_t n, cap;
} theap_t;

void theap_init (theap_t *self);
void theap_fini (theap_t *self);
//  Make room for n queued nodes, so that many theap_set calls cannot fail. 0 / -1.
int theap_reserve (theap_t *self, size_t n);
//  Mark a node as not queued (call once before first use).
void theap_node_init (theap_node_t *node);
//  Queue the node at `when`, or move it if queued. when == INT64_MAX removes it.
//  Returns 0, or -1 if the heap could not grow (node not queued).
int theap_set (theap_t *self, theap_node_t *node, int64_t when);
//  Remove a node if queued.
void theap_remove (theap_t *self, theap_node_t *node);
//  Earliest node or NULL.
theap_node_t *theap_top (const theap_t *self);

#endif
