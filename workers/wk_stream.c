// Streamed reply state: drives the SSE or NDJSON parser into a dialect's event handler,
// forwards chunks through the emit callback, records the end marker or the failure.
#include "wk_stream.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void wk_stream_init (wk_stream_t *s, wk_framing_t framing, wk_stream_event_fn on_event,
                     size_t max_bytes, int64_t created, wk_emit_fn emit, void *emit_arg)
{
    memset (s, 0, sizeof *s);
    size_t line_max = max_bytes < WK_STREAM_LINE_MAX ? max_bytes : WK_STREAM_LINE_MAX;
    s->framing = framing;
    wk_sse_init (&s->sse, line_max, line_max);
    wk_ndjson_init (&s->nd, line_max);
    s->on_event = on_event;
    s->emit = emit;
    s->emit_arg = emit_arg;
    wk_compl_init (&s->compl, max_bytes);
    s->compl.created = created;
    buf_init (&s->scratch, line_max + 4096);
    for (int i = 0; i < WK_STREAM_BLOCKS; i++)
        s->block_tool [i] = -1;
}

void wk_stream_free (wk_stream_t *s)
{
    wk_sse_free (&s->sse);
    wk_ndjson_free (&s->nd);
    wk_compl_free (&s->compl);
    buf_free (&s->scratch);
}

int wk_stream_fail (wk_stream_t *s, const char *fmt, ...)
{
    if (!s->failed) {
        va_list ap;
        va_start (ap, fmt);
        vsnprintf (s->reason, sizeof s->reason, fmt, ap);
        va_end (ap);
        s->failed = true;
    }
    return WK_STREAM_FAIL;
}

static int s_on_sse (void *arg, const char *event, const char *data, size_t len)
{
    wk_stream_t *s = arg;
    s->events++;
    return s->on_event (s, event, data, len);
}

static int s_on_line (void *arg, const char *line, size_t len)
{
    wk_stream_t *s = arg;
    s->events++;
    return s->on_event (s, "", line, len);
}

//  Fold a parser or handler result into the stream's state. 0 / -1.
static int s_outcome (wk_stream_t *s, int rc, const char *parser_error)
{
    if (rc == WK_STREAM_END)
        s->ended = true;
    else
    if (rc == WK_SSE_BAD)
        wk_stream_fail (s, "%s", parser_error);
    else
    if (rc)
        wk_stream_fail (s, "stream handler failed");    // keeps the handler's own reason
    return s->failed ? -1 : 0;
}

int wk_stream_feed (wk_stream_t *s, const char *bytes, size_t len)
{
    if (s->failed)
        return -1;
    if (s->ended)
        return 0;
    if (s->framing == WK_FRAMING_SSE)
        return s_outcome (s, wk_sse_feed (&s->sse, bytes, len, s_on_sse, s), s->sse.error);
    return s_outcome (s, wk_ndjson_feed (&s->nd, bytes, len, s_on_line, s), s->nd.error);
}

int wk_stream_finish (wk_stream_t *s)
{
    if (s->failed)
        return -1;
    if (s->ended || s->framing != WK_FRAMING_NDJSON)
        return 0;
    return s_outcome (s, wk_ndjson_finish (&s->nd, s_on_line, s), s->nd.error);
}

bool wk_stream_complete (const wk_stream_t *s)
{
    if (s->failed)
        return false;
    return s->ended || (s->finish_ends && wk_compl_finished (&s->compl));
}

int wk_stream_emit (wk_stream_t *s, const char *json, size_t len)
{
    if (s->emit (s->emit_arg, json, len)) {
        s->emit_failed = true;
        return wk_stream_fail (s, "cannot send CHUNK %u to the broker (send queue full)",
                               s->chunks);
    }
    s->chunks++;
    return 0;
}

int wk_stream_emit_delta (wk_stream_t *s, wk_delta_t *d)
{
    d->role = !s->role_sent;
    buf_reset (&s->scratch);
    if (wk_compl_chunk_render (&s->scratch, s->compl.id, s->compl.model, s->compl.created, d))
        return wk_stream_fail (s, "stream chunk larger than %zu bytes", s->scratch.max);
    s->role_sent = true;
    return wk_stream_emit (s, s->scratch.data, s->scratch.len);
}

int wk_stream_result (const wk_stream_t *s, buf_t *out)
{
    return wk_compl_render (&s->compl, out);
}
