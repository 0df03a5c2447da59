// Incremental NDJSON line splitter: zero-copy for lines that arrive whole, a capped
// carry buffer for lines split across reads.
#include "wk_ndjson.h"

#include <stdio.h>
#include <string.h>

void wk_ndjson_init (wk_ndjson_t *self, size_t max_line)
{
    memset (self, 0, sizeof *self);
    buf_init (&self->line, max_line);
    self->max_line = max_line;
}

void wk_ndjson_free (wk_ndjson_t *self)
{
    buf_free (&self->line);
}

static int s_too_long (wk_ndjson_t *self)
{
    snprintf (self->error, sizeof self->error, "NDJSON line longer than %zu bytes", self->max_line);
    return WK_NDJSON_BAD;
}

static int s_line (const char *line, size_t len, wk_ndjson_fn fn, void *arg)
{
    if (len && line [len - 1] == '\r')
        len--;
    size_t i = 0;
    while (i < len && (line [i] == ' ' || line [i] == '\t'))
        i++;
    return i == len ? 0 : fn (arg, line, len);
}

int wk_ndjson_feed (wk_ndjson_t *self, const char *bytes, size_t len, wk_ndjson_fn fn, void *arg)
{
    const char *p = bytes;
    const char *end = bytes + len;
    while (p < end) {
        const char *eol = memchr (p, '\n', (size_t) (end - p));
        if (!eol) {
            if (buf_append (&self->line, p, (size_t) (end - p)))
                return s_too_long (self);
            return 0;
        }
        const char *line = p;
        size_t line_len = (size_t) (eol - p);
        if (self->line.len) {
            if (buf_append (&self->line, p, line_len))
                return s_too_long (self);
            line = self->line.data;
            line_len = self->line.len;
        }
        else
        if (line_len > self->max_line)
            return s_too_long (self);
        p = eol + 1;
        int rc = s_line (line, line_len, fn, arg);
        buf_reset (&self->line);
        if (rc)
            return rc;
    }
    return 0;
}

int wk_ndjson_finish (wk_ndjson_t *self, wk_ndjson_fn fn, void *arg)
{
    if (!self->line.len)
        return 0;
    int rc = s_line (self->line.data, self->line.len, fn, arg);
    buf_reset (&self->line);
    return rc;
}
