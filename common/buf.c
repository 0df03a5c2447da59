// Bounded growable buffer and the JSON string escaper that writes into it.
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_MIN 256                     // first allocation

void buf_init (buf_t *b, size_t max)
{
    memset (b, 0, sizeof *b);
    b->max = max;
}

void buf_free (buf_t *b)
{
    free (b->data);
    buf_init (b, b->max);
}

void buf_reset (buf_t *b)
{
    b->len = 0;
    b->toobig = false;
    if (b->data)
        b->data[0] = 0;
}

char *buf_take (buf_t *b, size_t *len)
{
    char *data = b->data;
    if (len)
        *len = b->len;
    buf_init (b, b->max);
    return data;
}

//  Make room for n more bytes plus the NUL. 0 / -1 (toobig set).
static int s_reserve (buf_t *b, size_t n)
{
    if (b->toobig || n > b->max - b->len)
        goto toobig;
    if (b->len + n + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : BUF_MIN;
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

int buf_append (buf_t *b, const void *data, size_t n)
{
    if (s_reserve (b, n))
        return -1;
    if (n)
        memcpy (b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int buf_puts (buf_t *b, const char *s)
{
    return buf_append (b, s, strlen (s));
}

int buf_putc (buf_t *b, char c)
{
    return buf_append (b, &c, 1);
}

int buf_printf (buf_t *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start (ap, fmt);
    int n = vsnprintf (small, sizeof small, fmt, ap);
    va_end (ap);
    if (n < 0)
        return -1;
    if ((size_t) n < sizeof small)
        return buf_append (b, small, (size_t) n);
    if (s_reserve (b, (size_t) n))
        return -1;
    va_start (ap, fmt);
    vsnprintf (b->data + b->len, (size_t) n + 1, fmt, ap);
    va_end (ap);
    b->len += (size_t) n;
    return 0;
}

int buf_put_json_string (buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (buf_putc (b, '"'))
        return -1;
    size_t run = 0;                     // start of the bytes copied as they are
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        if (buf_append (b, s + run, i - run))
            return -1;
        run = i + 1;
        char esc[6] = { '\\', (char) c, 0, 0, 0, 0 };
        size_t len = 2;
        if (c == '\n')
            esc[1] = 'n';
        else
        if (c == '\r')
            esc[1] = 'r';
        else
        if (c == '\t')
            esc[1] = 't';
        else
        if (c < 0x20) {
            memcpy (esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            len = 6;
        }
        if (buf_append (b, esc, len))
            return -1;
    }
    if (buf_append (b, s + run, n - run))
        return -1;
    return buf_putc (b, '"');
}

int buf_put_json_str (buf_t *b, const char *s)
{
    return buf_put_json_string (b, s, strlen (s));
}
