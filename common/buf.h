// Growable byte buffer with a hard size limit (curl dynbuf style): an append that would
// pass the limit, or finds no memory, fails and sets toobig, and every append after it
// fails too, so nothing filled from outside grows without bound and a half-written
// text is never mistaken for a whole one. The one buffer of the edge and the workers.
#ifndef AIGW_BUF_H
#define AIGW_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *data;                         // NUL-terminated when not NULL; owned
    size_t len;                         // bytes used (excluding the NUL)
    size_t cap;                         // bytes allocated
    size_t max;                         // hard limit on len
    bool toobig;                        // an append was refused (limit or out of memory)
} buf_t;

//  Start empty with a limit of max bytes (no allocation yet).
void buf_init (buf_t *b, size_t max);
//  Free the data and start empty again (same limit). Safe to call twice.
void buf_free (buf_t *b);
//  Forget the contents and toobig, keep the allocation.
void buf_reset (buf_t *b);
//  Hand over the data (caller frees; NULL if nothing was appended) and start empty.
char *buf_take (buf_t *b, size_t *len);

//  Append; 0, or -1 when refused (toobig set, buffer unchanged).
int buf_append (buf_t *b, const void *data, size_t n);
int buf_puts (buf_t *b, const char *s);
int buf_putc (buf_t *b, char c);
int buf_printf (buf_t *b, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
//  Append s[0..n) as a JSON string literal, quotes included: `"` and `\` escaped,
//  \n \r \t as such, other control bytes as \u00XX; every other byte as it is (the
//  caller sees to UTF-8). The one JSON string escaper.
int buf_put_json_string (buf_t *b, const char *s, size_t n);
//  Same for a NUL-terminated string.
int buf_put_json_str (buf_t *b, const char *s);

#endif
