// Incremental SSE parser: splits lines (zero-copy when a line arrives whole), folds
// fields into events, caps lines and events; garbled lines are reported, not skipped.
#include "wk_sse.h"

#include <stdio.h>
#include <string.h>

void wk_sse_init (wk_sse_t *self, size_t max_line, size_t max_event)
{
    memset (self, 0, sizeof *self);
    buf_init (&self->line, max_line);
    buf_init (&self->data, max_event);
    self->max_line = max_line;
}

void wk_sse_free (wk_sse_t *self)
{
    buf_free (&self->line);
    buf_free (&self->data);
}

bool wk_sse_pending (const wk_sse_t *self)
{
    return self->line.len > 0 || self->have_data;
}

static int s_bad (wk_sse_t *self, const char *what, const char *line, size_t len)
{
    char shown [64];
    size_t n = len < 48 ? len : 48;
    for (size_t i = 0; i < n; i++)
        shown [i] = (unsigned char) line [i] < 0x20 ? ' ' : line [i];
    shown [n] = 0;
    if (line)
        snprintf (self->error, sizeof self->error, "%s: '%s%s'", what, shown, len > n ? "..." : "");
    else
        snprintf (self->error, sizeof self->error, "%s", what);
    return WK_SSE_BAD;
}

static int s_too_long (wk_sse_t *self)
{
    snprintf (self->error, sizeof self->error, "SSE line longer than %zu bytes", self->max_line);
    return WK_SSE_BAD;
}

static int s_dispatch (wk_sse_t *self, wk_sse_fn fn, void *arg)
{
    int rc = 0;
    if (self->have_data)
        rc = fn (arg, self->event, self->data.data ? self->data.data : "", self->data.len);
    buf_reset (&self->data);
    self->have_data = false;
    self->event [0] = 0;
    return rc;
}

static int s_data (wk_sse_t *self, const char *value, size_t len)
{
    if ((self->have_data && buf_append (&self->data, "\n", 1))
    ||  buf_append (&self->data, value, len)) {
        snprintf (self->error, sizeof self->error, "SSE event larger than %zu bytes",
                  self->data.max);
        return WK_SSE_BAD;
    }
    self->have_data = true;
    return 0;
}

//  One complete line (without its end).
static int s_line (wk_sse_t *self, const char *line, size_t len, wk_sse_fn fn, void *arg)
{
    if (!self->started && len >= 3 && memcmp (line, "\xEF\xBB\xBF", 3) == 0) {
        line += 3;          // a UTF-8 byte order mark opens the stream
        len -= 3;
    }
    self->started = true;
    if (len == 0)
        return s_dispatch (self, fn, arg);
    if (line [0] == ':')
        return 0;           // comment / keep-alive
    const char *colon = memchr (line, ':', len);
    size_t name_len = colon ? (size_t) (colon - line) : len;
    const char *value = colon ? colon + 1 : line + len;
    size_t value_len = (size_t) (line + len - value);
    if (value_len && *value == ' ') {
        value++;
        value_len--;
    }
    if (name_len == 4 && memcmp (line, "data", 4) == 0)
        return s_data (self, value, value_len);
    if (name_len == 5 && memcmp (line, "event", 5) == 0) {
        if (value_len >= sizeof self->event)
            return s_bad (self, "SSE event name too long", line, len);
        memcpy (self->event, value, value_len);
        self->event [value_len] = 0;
        return 0;
    }
    if ((name_len == 2 && memcmp (line, "id", 2) == 0)
    ||  (name_len == 5 && memcmp (line, "retry", 5) == 0))
        return 0;
    return s_bad (self, "malformed SSE line", line, len);
}

//  First CR or LF in [p, end), or end.
static const char *s_eol (const char *p, const char *end)
{
    while (p < end && *p != '\n' && *p != '\r')
        p++;
    return p;
}

int wk_sse_feed (wk_sse_t *self, const char *bytes, size_t len, wk_sse_fn fn, void *arg)
{
    const char *p = bytes;
    const char *end = bytes + len;
    while (p < end) {
        if (self->skip_lf) {
            self->skip_lf = false;
            if (*p == '\n') {
                p++;
                continue;
            }
        }
        const char *eol = s_eol (p, end);
        if (eol == end) {
            if (buf_append (&self->line, p, (size_t) (end - p)))
                return s_too_long (self);
            return 0;
        }
        const char *line = p;
        size_t line_len = (size_t) (eol - p);
        if (self->line.len) {       // the line began in an earlier feed
            if (buf_append (&self->line, p, line_len))
                return s_too_long (self);
            line = self->line.data;
            line_len = self->line.len;
        }
        else
        if (line_len > self->max_line)
            return s_too_long (self);
        self->skip_lf = *eol == '\r';
        p = eol + 1;
        int rc = s_line (self, line, line_len, fn, arg);
        buf_reset (&self->line);
        if (rc)
            return rc;
    }
    return 0;
}
