// Connection generations of the worker socket (see bconn.h).
#include "bconn.h"

#include <stdlib.h>
#include <string.h>

void bconn_init (bconn_t *self)
{
    memset (self, 0, sizeof *self);
}

void bconn_fini (bconn_t *self)
{
    free (self->gen);
    free (self->closed);
    memset (self, 0, sizeof *self);
}

bool bconn_track (bconn_t *self, int fd)
{
    if (fd < 0 || fd >= BCONN_FD_MAX)
        return false;
    if ((size_t) fd < self->cap)
        return true;
    size_t cap = self->cap ? self->cap : 64;
    while (cap <= (size_t) fd)
        cap *= 2;
    uint32_t *gen = realloc (self->gen, cap * sizeof *gen);
    if (!gen)
        return false;
    memset (gen + self->cap, 0, (cap - self->cap) * sizeof *gen);
    self->gen = gen;
    self->cap = cap;
    return true;
}

uint32_t bconn_gen (const bconn_t *self, int fd)
{
    return fd >= 0 && (size_t) fd < self->cap ? self->gen[fd] : 0;
}

void bconn_accepted (bconn_t *self, int fd)
{
    if (bconn_track (self, fd))
        self->gen[fd]++;
}

int bconn_disconnected (bconn_t *self, int fd)
{
    if (!bconn_track (self, fd))
        return -1;
    uint32_t gen = self->gen[fd]++;         // a new connection on fd is another one
    if (self->nclosed >= BCONN_PENDING_MAX)
        return -1;
    if (self->nclosed == self->closed_cap) {
        size_t cap = self->closed_cap ? self->closed_cap * 2 : 16;
        bconn_closed_t *c = realloc (self->closed, cap * sizeof *c);
        if (!c)
            return -1;
        self->closed = c;
        self->closed_cap = cap;
    }
    self->closed[self->nclosed++] = (bconn_closed_t) { (uint32_t) fd, gen };
    return 0;
}

bool bconn_closing (const bconn_t *self, int fd)
{
    for (size_t i = 0; i < self->nclosed; i++)
        if (self->closed[i].fd == (uint32_t) fd)
            return true;
    return false;
}

bool bconn_take (bconn_t *self, bconn_closed_t *out)
{
    if (self->nclosed == 0)
        return false;
    *out = self->closed[0];
    memmove (self->closed, self->closed + 1, (self->nclosed - 1) * sizeof *self->closed);
    self->nclosed--;
    return true;
}
