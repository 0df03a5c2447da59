// Growable byte buffer with a hard size limit; doubles its allocation up to the limit.
#include "wk_buf.h"

#include <stdlib.h>
#include <string.h>

#define WK_BUF_MIN 1024

void wk_buf_init (wk_buf_t *self, size_t max)
{
    self->data = NULL;
    self->len = 0;
    self->cap = 0;
    self->max = max;
}

static int s_reserve (wk_buf_t *self, size_t need)
{
    if (need + 1 <= self->cap)
        return 0;
    size_t cap = self->cap ? self->cap : WK_BUF_MIN;
    while (cap < need + 1)
        cap *= 2;
    if (cap > self->max + 1)
        cap = self->max + 1;
    char *p = realloc (self->data, cap);
    if (!p)
        return -1;
    self->data = p;
    self->cap = cap;
    return 0;
}

int wk_buf_append (wk_buf_t *self, const void *data, size_t n)
{
    if (n > self->max - self->len)
        return -1;
    if (s_reserve (self, self->len + n))
        return -1;
    if (n)
        memcpy (self->data + self->len, data, n);
    self->len += n;
    self->data [self->len] = 0;
    return 0;
}

int wk_buf_puts (wk_buf_t *self, const char *s)
{
    return wk_buf_append (self, s, strlen (s));
}

void wk_buf_reset (wk_buf_t *self)
{
    self->len = 0;
    if (self->data)
        self->data [0] = 0;
}

void wk_buf_free (wk_buf_t *self)
{
    free (self->data);
    self->data = NULL;
    self->len = 0;
    self->cap = 0;
}
