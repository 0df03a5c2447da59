// Growable text buffer with a hard size limit (curl dynbuf style): appends past the
// limit fail and set toobig, so nothing filled from outside grows without bound.
#ifndef AIGW_EDGE_EBUF_H
#define AIGW_EDGE_EBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *data;                         // NUL-terminated when len > 0; owned
    size_t len;
    size_t cap;
    size_t max;                         // hard limit on len
    bool toobig;                        // an append was refused (limit or out of memory)
} ebuf_t;

//  Start empty with a limit of max bytes (no allocation yet).
void ebuf_init (ebuf_t *b, size_t max);
//  Free the data; the buffer may be reused after ebuf_init.
void ebuf_free (ebuf_t *b);
//  Hand over the data (caller frees) and reset the buffer to empty.
char *ebuf_take (ebuf_t *b, size_t *len);

//  Append; 0, or -1 when the limit is reached (toobig set, buffer unchanged).
int ebuf_putn (ebuf_t *b, const char *s, size_t n);
int ebuf_puts (ebuf_t *b, const char *s);
int ebuf_putc (ebuf_t *b, char c);
int ebuf_printf (ebuf_t *b, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

#endif
