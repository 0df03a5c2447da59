// Timers of an event loop: a node in the loop's heap (common/theap.h) and a callback,
// fired on the loop's thread when due. Loop thread only.
#ifndef AIGW_EDGE_TIMER_H
#define AIGW_EDGE_TIMER_H

#include <stdint.h>

#include "theap.h"

typedef struct {
    theap_node_t node;                  // first: the heap hands back this pointer
    void (*fire) (void *owner, int64_t now_ms);
    void *owner;
} edge_timer_t;

//  A disarmed timer that calls fire (owner, now) when due.
void edge_timer_init (edge_timer_t *t, void (*fire) (void *, int64_t), void *owner);

//  Arm t, or move it, to fire at when_ms (aclock ms). Out of memory is logged.
void edge_timer_set (theap_t *heap, edge_timer_t *t, int64_t when_ms);

//  Disarm t (no-op when it is not armed).
void edge_timer_clear (theap_t *heap, edge_timer_t *t);

//  Fire every timer due at now_ms, each disarmed before its call (it may re-arm).
void edge_timer_run (theap_t *heap, int64_t now_ms);

#endif
