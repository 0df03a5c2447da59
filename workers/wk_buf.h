// Growable byte buffer with a hard size limit (curl dynbuf style): refuses to grow past max.
#ifndef AIGW_WK_BUF_H
#define AIGW_WK_BUF_H

#include <stddef.h>
#include <stdbool.h>

typedef struct {
    char *data;         // always NUL-terminated when not NULL
    size_t len;         // bytes used (excluding the NUL)
    size_t cap;         // bytes allocated
    size_t max;         // hard limit on len
} wk_buf_t;

//  Start an empty buffer that may hold at most max bytes. No allocation yet.
void wk_buf_init (wk_buf_t *self, size_t max);

//  Append n bytes. Returns 0, or -1 (buffer unchanged) if len would pass max
//  or memory ran out.
int wk_buf_append (wk_buf_t *self, const void *data, size_t n);

//  Append a NUL-terminated string; as wk_buf_append.
int wk_buf_puts (wk_buf_t *self, const char *s);

//  Forget the contents, keep the allocation.
void wk_buf_reset (wk_buf_t *self);

//  Free the allocation. Safe to call twice.
void wk_buf_free (wk_buf_t *self);

#endif
