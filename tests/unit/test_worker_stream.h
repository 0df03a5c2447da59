// Test harness for the worker's stream dialects: runs a wk_stream over a byte string split
// at a given point, recording emitted chunks, the outcome and the assembled completion.
#ifndef TEST_WORKER_STREAM_H
#define TEST_WORKER_STREAM_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wk_stream.h"

typedef struct {
    buf_t log;               // emitted chunks, one per line
    int count;
    int fail_at;                // emit fails at this chunk (1-based), 0 = never
} h_emit_t;

static int h_emit (void *arg, const char *json, size_t len)
{
    h_emit_t *e = arg;
    if (++e->count == e->fail_at)
        return -1;
    buf_append (&e->log, json, len);
    buf_puts (&e->log, "\n");
    return 0;
}

typedef struct {
    int rc;                     // first non-zero feed/finish result
    bool complete;
    bool failed;
    bool emit_failed;
    uint32_t chunks;
    char reason [320];
    char *chunks_log;           // owned
    char *result;               // owned: chat.completion, or NULL when not complete
    wk_usage_t usage;
} h_run_t;

typedef struct {
    wk_framing_t framing;
    wk_stream_event_fn fn;
    bool finish_ends;
    size_t max;                 // max_bytes
    const char *id;             // preset compl id (ollama), or NULL
    int fail_at;
} h_cfg_t;

static void h_run (const h_cfg_t *c, const char *text, size_t n, size_t split, h_run_t *out)
{
    memset (out, 0, sizeof *out);
    h_emit_t e = { .fail_at = c->fail_at };
    buf_init (&e.log, 1 << 22);
    wk_stream_t s;
    wk_stream_init (&s, c->framing, c->fn, c->max, 1700000000, h_emit, &e);
    s.finish_ends = c->finish_ends;
    if (c->id)
        wk_compl_meta (&s.compl, c->id, NULL, NULL);
    out->rc = wk_stream_feed (&s, text, split);
    if (out->rc == 0)
        out->rc = wk_stream_feed (&s, text + split, n - split);
    if (out->rc == 0)
        out->rc = wk_stream_finish (&s);
    out->complete = wk_stream_complete (&s);
    out->failed = s.failed;
    out->emit_failed = s.emit_failed;
    out->chunks = s.chunks;
    snprintf (out->reason, sizeof out->reason, "%s", s.reason);
    out->chunks_log = strdup (e.log.data ? e.log.data : "");
    out->usage = s.compl.usage;
    if (out->complete) {
        buf_t r;
        buf_init (&r, 1 << 22);
        if (wk_stream_result (&s, &r) == 0)
            out->result = strdup (r.data);
        buf_free (&r);
    }
    buf_free (&e.log);
    wk_stream_free (&s);
}

static void h_free (h_run_t *r)
{
    free (r->chunks_log);
    free (r->result);
    r->chunks_log = r->result = NULL;
}

//  Run the whole text in one feed into *whole, then check that every split point
//  gives the same chunks, outcome, reason and completion. Caller frees whole.
static void h_every_split (const h_cfg_t *c, const char *text, h_run_t *whole)
{
    size_t n = strlen (text);
    h_run (c, text, n, n, whole);
    for (size_t i = 0; i < n; i++) {
        h_run_t r;
        h_run (c, text, n, i, &r);
        if (r.complete != whole->complete || r.failed != whole->failed
        ||  r.chunks != whole->chunks || strcmp (r.chunks_log, whole->chunks_log)
        ||  strcmp (r.reason, whole->reason)
        ||  (r.result == NULL) != (whole->result == NULL)
        ||  (r.result && strcmp (r.result, whole->result)))
            fail_msg ("split at %zu differs: chunks %u vs %u, reason '%s' vs '%s'", i, r.chunks,
                      whole->chunks, r.reason, whole->reason);
        h_free (&r);
    }
}

#endif
