// Bounded growable text buffer.
#include "ebuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ebuf_init (ebuf_t *b, size_t max)
{
    memset (b, 0, sizeof *b);
    b->max = max;
}

void ebuf_free (ebuf_t *b)
{
    free (b->data);
    ebuf_init (b, b->max);
}

char *ebuf_take (ebuf_t *b, size_t *len)
{
    char *data = b->data;
    if (len)
        *len = b->len;
    size_t max = b->max;
    ebuf_init (b, max);
    return data;
}

//  Make room for n more bytes plus the NUL. 0 / -1.
static int s_reserve (ebuf_t *b, size_t n)
{
    if (b->toobig || n > b->max - b->len)
        goto toobig;
    if (b->len + n + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
        cap *= 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    char *data = realloc (b->data, cap);
    if (!data)
        goto toobig;
    b->data = data;
    b->cap = cap;
    return 0;
toobig:
    b->toobig = true;
    return -1;
}

int ebuf_putn (ebuf_t *b, const char *s, size_t n)
{
    if (s_reserve (b, n))
        return -1;
    memcpy (b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int ebuf_puts (ebuf_t *b, const char *s)
{
    return ebuf_putn (b, s, strlen (s));
}

int ebuf_putc (ebuf_t *b, char c)
{
    return ebuf_putn (b, &c, 1);
}

int ebuf_printf (ebuf_t *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start (ap, fmt);
    int n = vsnprintf (small, sizeof small, fmt, ap);
    va_end (ap);
    if (n < 0)
        return -1;
    if ((size_t) n < sizeof small)
        return ebuf_putn (b, small, (size_t) n);
    if (s_reserve (b, (size_t) n))
        return -1;
    va_start (ap, fmt);
    vsnprintf (b->data + b->len, (size_t) n + 1, fmt, ap);
    va_end (ap);
    b->len += (size_t) n;
    return 0;
}
