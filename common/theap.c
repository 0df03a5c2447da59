// Indexed binary min-heap of timer nodes embedded in caller structs.
#include "theap.h"

#include <stdlib.h>

void theap_init (theap_t *self)
{
    self->v = NULL;
    self->n = self->cap = 0;
}

void theap_fini (theap_t *self)
{
    for (size_t i = 0; i < self->n; i++)
        self->v[i]->idx = THEAP_NONE;
    free (self->v);
    theap_init (self);
}

void theap_node_init (theap_node_t *node)
{
    node->when = INT64_MAX;
    node->idx = THEAP_NONE;
}

static void s_place (theap_t *self, size_t i, theap_node_t *node)
{
    self->v[i] = node;
    node->idx = i;
}

static void s_up (theap_t *self, size_t i)
{
    theap_node_t *node = self->v[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (self->v[p]->when <= node->when)
            break;
        s_place (self, i, self->v[p]);
        i = p;
    }
    s_place (self, i, node);
}

static void s_down (theap_t *self, size_t i)
{
    theap_node_t *node = self->v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= self->n)
            break;
        if (c + 1 < self->n && self->v[c + 1]->when < self->v[c]->when)
            c++;
        if (node->when <= self->v[c]->when)
            break;
        s_place (self, i, self->v[c]);
        i = c;
    }
    s_place (self, i, node);
}

void theap_remove (theap_t *self, theap_node_t *node)
{
    size_t i = node->idx;
    if (i == THEAP_NONE || i >= self->n || self->v[i] != node)
        return;
    node->idx = THEAP_NONE;
    self->n--;
    if (i == self->n)
        return;
    theap_node_t *moved = self->v[self->n];
    s_place (self, i, moved);
    s_up (self, i);
    s_down (self, moved->idx);
}

int theap_reserve (theap_t *self, size_t n)
{
    if (n <= self->cap)
        return 0;
    theap_node_t **v = realloc (self->v, n * sizeof *v);
    if (!v)
        return -1;
    self->v = v;
    self->cap = n;
    return 0;
}

int theap_set (theap_t *self, theap_node_t *node, int64_t when)
{
    if (when == INT64_MAX) {
        theap_remove (self, node);
        node->when = when;
        return 0;
    }
    if (node->idx != THEAP_NONE) {
        int64_t old = node->when;
        node->when = when;
        if (when < old)
            s_up (self, node->idx);
        else
        if (when > old)
            s_down (self, node->idx);
        return 0;
    }
    if (self->n == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 256;
        theap_node_t **v = realloc (self->v, cap * sizeof *v);
        if (!v)
            return -1;
        self->v = v;
        self->cap = cap;
    }
    node->when = when;
    s_place (self, self->n++, node);
    s_up (self, node->idx);
    return 0;
}

theap_node_t *theap_top (const theap_t *self)
{
    return self->n ? self->v[0] : NULL;
}
