// Timers of an event loop (see timer.h).
#include "timer.h"
#include "log.h"

void edge_timer_init (edge_timer_t *t, void (*fire) (void *, int64_t), void *owner)
{
    theap_node_init (&t->node);
    t->fire = fire;
    t->owner = owner;
}

void edge_timer_set (theap_t *heap, edge_timer_t *t, int64_t when_ms)
{
    if (theap_set (heap, &t->node, when_ms))
        log_error ("out of memory arming a timer");
}

void edge_timer_clear (theap_t *heap, edge_timer_t *t)
{
    theap_remove (heap, &t->node);
}

void edge_timer_run (theap_t *heap, int64_t now_ms)
{
    theap_node_t *n;
    while ((n = theap_top (heap)) && n->when <= now_ms) {
        edge_timer_t *t = (edge_timer_t *) n;
        theap_remove (heap, n);
        t->fire (t->owner, now_ms);
    }
}
