// SSE streaming of a chat job to its HTTP client (civetweb side of edge/sse.c).
#include "stream.h"
#include "sse.h"
#include "response.h"
#include "emetrics.h"
#include "wire.h"
#include "log.h"
#include "aclock.h"

#include <civetweb.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct {
    const edge_stream_t *req;
    bool chunked;                       // HTTP/1.1: chunked body, else close-delimited
    sse_state_t st;
    sse_buf_t buf;
    int64_t tick_at;                    // next keep-alive comment
} s_stream_t;

static int s_head (s_stream_t *s)
{
    char head[512];
    int n = snprintf (head, sizeof head,
                      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
                      "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n%s"
                      "Connection: %s\r\n\r\n",
                      s->chunked ? "Transfer-Encoding: chunked\r\n" : "",
                      s->chunked && s->req->keep_alive ? "keep-alive" : "close");
    if (!(s->chunked && s->req->keep_alive))
        mg_disable_connection_keep_alive (s->req->conn);
    return mg_write (s->req->conn, head, (size_t) n) == n ? 0 : -1;
}

//  Write what the buffer holds (last: also end the body). 0, or -1 when the write
//  failed (the client is gone).
static int s_flush (s_stream_t *s, bool last)
{
    size_t len = 0;
    const char *bytes = sse_frame (&s->buf, s->chunked, last, &len);
    int rc = 0;
    if (bytes && mg_write (s->req->conn, bytes, len) != (int) len)
        rc = -1;
    sse_buf_reset (&s->buf);
    s->tick_at = aclock_now_ms () + EDGE_STREAM_PING_MS;
    return rc;
}

static void s_gone (s_stream_t *s, edge_stream_result_t *out)
{
    edge_client_cancel (s->req->client, s->req->job_id);
    mg_disable_connection_keep_alive (s->req->conn);
    out->end = EDGE_STREAM_GONE;
    out->status = 499;
}

//  End with an error event the edge decided; the job is cancelled first.
static void s_fail (s_stream_t *s, int status, const char *code, const char *message,
                    edge_stream_result_t *out)
{
    edge_client_cancel (s->req->client, s->req->job_id);
    sse_buf_reset (&s->buf);
    sse_error_simple (&s->st, status, code, message, &s->buf);
    out->end = EDGE_STREAM_FAILED;
    out->status = status;
    if (s_flush (s, true))
        mg_disable_connection_keep_alive (s->req->conn);
}

static void s_bad_chunk (s_stream_t *s, sse_rc_t rc, edge_stream_result_t *out)
{
    char msg[160];
    if (rc == SSE_ERR_GAP) {
        snprintf (msg, sizeof msg, "the stream lost chunks after chunk %u (edge too slow to "
                  "take them)", s->st.sent);
        s_fail (s, 502, "stream_interrupted", msg, out);
    }
    else
    if (rc == SSE_ERR_CHUNK)
        s_fail (s, 502, "bad_upstream_response", "a stream chunk is not a JSON object", out);
    else
        s_fail (s, 500, "internal_error", "out of memory formatting the stream", out);
}

//  Handle one answer. Returns true when the stream has ended.
static bool s_answer (s_stream_t *s, edge_answer_t *a, edge_stream_result_t *out)
{
    if (a->chunk) {
        sse_rc_t rc = sse_chunk (&s->st, a->chunk, &s->buf);
        if (rc != SSE_OK) {
            s_bad_chunk (s, rc, out);
            return true;
        }
        out->chunks = s->st.sent;
        if (s_flush (s, false) == 0)
            return false;
        s_gone (s, out);
        return true;
    }
    bool failed = !a->result;
    if (a->result) {
        emetrics_note_result (a->result);
        if (sse_done (&s->st, a->result, &s->buf) != SSE_OK) {
            s_fail (s, 500, "internal_error", "out of memory ending the stream", out);
            return true;
        }
    }
    else
    if (sse_error (&s->st, a->error, &s->buf) != SSE_OK)
        sse_error_simple (&s->st, 500, "internal_error", "out of memory", &s->buf);
    out->end = failed ? EDGE_STREAM_FAILED : EDGE_STREAM_DONE;
    out->status = failed ? edge_status_of (a->error->code) : 200;
    if (s_flush (s, true))
        mg_disable_connection_keep_alive (s->req->conn);
    return true;
}

//  Keep-alive comment; true when the client is gone.
static bool s_ping (s_stream_t *s)
{
    sse_append (&s->buf, ": keep-alive\n\n", 14);
    return s_flush (s, false) != 0;
}

static void s_loop (s_stream_t *s, edge_stream_result_t *out)
{
    const edge_stream_t *req = s->req;
    edge_waiter_t w;
    edge_waiter_init (&w, req->client, req->job_id, req->until_ms, 0, req->find_fd,
                      req->find_arg);
    while (true) {
        edge_answer_t a;
        edge_wait_ev_t ev = edge_waiter_next (&w, s->tick_at, &a);
        if (ev == EDGE_WAIT_GONE || (ev == EDGE_WAIT_TICK && s_ping (s))) {
            s_gone (s, out);
            return;
        }
        if (ev == EDGE_WAIT_EXPIRED) {
            out->edge_timeout = true;
            s_fail (s, 504, "timeout", "no answer before the deadline", out);
            return;
        }
        if (ev == EDGE_WAIT_ANSWER) {
            bool ended = s_answer (s, &a, out);
            edge_answer_reset (&a);
            if (ended)
                return;
        }
    }
}

void edge_stream_serve (const edge_stream_t *req, edge_stream_result_t *out)
{
    memset (out, 0, sizeof *out);
    s_stream_t s = { .req = req };
    const struct mg_request_info *ri = mg_get_request_info (req->conn);
    s.chunked = ri->http_version && strcmp (ri->http_version, "1.1") == 0;
    sse_state_init (&s.st, req->job_id, (int64_t) time (NULL), req->policy, req->include_usage);
    s.tick_at = aclock_now_ms () + EDGE_STREAM_PING_MS;
    if (s_head (&s))
        s_gone (&s, out);
    else
        s_loop (&s, out);
    sse_buf_free (&s.buf);
    log_debug ("stream job %llu: %s, %u chunks, status %d", (unsigned long long) req->job_id,
               out->end == EDGE_STREAM_DONE ? "done" : out->end == EDGE_STREAM_FAILED
               ? "failed" : "client gone", out->chunks, out->status);
}
