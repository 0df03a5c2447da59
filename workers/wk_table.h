// Attempt table for the worker: fixed slots (one per unit of capacity), an index by
// (broker, attempt id) (common/hmap) and the attempts' timers (common/theap).
#ifndef AIGW_WK_TABLE_H
#define AIGW_WK_TABLE_H

#include "wk_attempt.h"

typedef struct _wk_table_t wk_table_t;

//  Create a table of capacity slots. Returns NULL on failure.
wk_table_t *wk_table_new (uint32_t capacity);
void wk_table_destroy (wk_table_t **self_p);

//  Take a free slot for attempt_id of broker (attempt ids are unique per broker only);
//  the slot is zeroed except its bookkeeping (a->broker, a->attempt_id). Returns NULL
//  if the table is full or (broker, attempt_id) is already live.
wk_attempt_t *wk_table_add (wk_table_t *self, uint32_t broker, uint64_t attempt_id);

//  Find a live attempt by broker and id, NULL if none. O(1).
wk_attempt_t *wk_table_find (wk_table_t *self, uint32_t broker, uint64_t attempt_id);

//  Free the attempt's slot (its timer must be disarmed first).
void wk_table_remove (wk_table_t *self, wk_attempt_t *a);

uint32_t wk_table_used (wk_table_t *self);
uint32_t wk_table_capacity (wk_table_t *self);

//  Slot by index (live or not), for walking all attempts at teardown.
wk_attempt_t *wk_table_slot (wk_table_t *self, uint32_t index);

//  ---- timers (earliest a->timer.when first)

//  Arm or move the attempt's timer. Never fails (at most one timer per slot).
void wk_table_timer_set (wk_table_t *self, wk_attempt_t *a, int64_t due_ms);
void wk_table_timer_clear (wk_table_t *self, wk_attempt_t *a);

//  The attempt with the earliest timer, NULL if none armed.
wk_attempt_t *wk_table_timer_first (wk_table_t *self);

#endif
