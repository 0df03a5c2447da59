// Server-Sent Events answer of a `stream: true` chat job on libmicrohttpd: headers at
// once, the winner's chunks as they come, keep-alive comments, then [DONE] or an error
// event. The content reader suspends the connection when it has nothing to send;
// a broker answer or a timer resumes it. Each client holds at most edge/stream_buffer
// bytes unsent: past that it is dropped and its job cancelled.
#include "stream.h"
#include "reply.h"
#include "req.h"
#include "respond.h"
#include "shared.h"
#include "aclock.h"
#include "log.h"
#include "wire.h"

#include <string.h>
#include <time.h>

#define S_PING_MS 1000                  // ": keep-alive" after this long without output

static size_t s_pending (edge_req_t *r)
{
    return r->out.len - r->out_off;
}

static void s_arm (edge_req_t *r)
{
    if (r->ended)
        edge_timer_clear (&r->loop->timers, &r->timer);
    else
        edge_timer_set (&r->loop->timers, &r->timer, r->ping_at_ms < r->deadline_ms
                                                     ? r->ping_at_ms : r->deadline_ms);
}

//  New output is in the buffer: push it out, or drop a client that does not read.
static void s_wrote (edge_req_t *r)
{
    r->ping_at_ms = aclock_now_ms () + S_PING_MS;
    if (s_pending (r) > r->loop->sh->cfg->edge.stream_buffer && !r->gone) {
        log_debug ("stream job %llu: client not reading, %zu bytes unsent; dropped",
                   (unsigned long long) r->job_id, s_pending (r));
        edge_shared_count (r->loop->sh, EDGE_STAT_STREAM_OVERFLOW);
        edge_req_gone (r);
        return;
    }
    s_arm (r);
    edge_req_resume (r);
}

static void s_job_over (edge_req_t *r)
{
    if (!r->job_live)
        return;
    r->job_live = false;
    edge_shared_job_done (r->loop->sh);
}

//  End a stream with an error event the edge decided (cancels the job).
static void s_fail (edge_req_t *r, int status, const char *code, const char *message)
{
    if (r->job_live)
        edge_link_cancel (r->loop->link, r->job_id);
    s_job_over (r);
    if (sse_error_simple (&r->sse, status, code, message, &r->out) != SSE_OK)
        r->gone = true;                 // cannot even say why: close
    r->status = status;
    r->ended = true;
    s_wrote (r);
}

static void s_bad_chunk (edge_req_t *r, sse_rc_t rc)
{
    char msg[160];
    if (rc == SSE_ERR_GAP) {
        snprintf (msg, sizeof msg, "the stream lost chunks after chunk %u", r->sse.sent);
        s_fail (r, 502, "stream_interrupted", msg);
    }
    else
    if (rc == SSE_ERR_CHUNK)
        s_fail (r, 502, "bad_upstream_response", "a stream chunk is not a JSON object");
    else
        s_fail (r, 500, "internal_error", "out of memory formatting the stream");
}

void edge_stream_answer (edge_req_t *r, edge_answer_t *a)
{
    if (r->ended || r->gone) {
        edge_link_answer_reset (a);
        return;
    }
    if (a->chunk) {
        sse_rc_t rc = sse_chunk (&r->sse, a->chunk, &r->out);
        edge_link_answer_reset (a);
        if (rc != SSE_OK)
            s_bad_chunk (r, rc);
        else
            s_wrote (r);
        return;
    }
    s_job_over (r);                     // RESULT or ERROR: the route is already gone
    if (a->result) {
        const Aigw__Result *res = a->result;
        edge_req_settle (r, res->attempts, res->n_attempts, res->model, res->usage);
        r->upstream_us = emetrics_upstream_us (a->result);
        if (sse_done (&r->sse, a->result, &r->out) != SSE_OK) {
            edge_link_answer_reset (a);
            s_fail (r, 500, "internal_error", "out of memory ending the stream");
            return;
        }
    }
    else {
        if (a->error)
            edge_req_settle (r, a->error->attempts, a->error->n_attempts, NULL, NULL);
        r->status = a->error ? edge_reply_status (a->error->code) : 500;
        if (!a->error || sse_error (&r->sse, a->error, &r->out) != SSE_OK)
            sse_error_simple (&r->sse, 500, "internal_error", "out of memory", &r->out);
    }
    edge_link_answer_reset (a);
    r->ended = true;
    s_wrote (r);
}

void edge_stream_timer (edge_req_t *r, int64_t now)
{
    if (r->ended || r->gone)
        return;
    if (now >= r->deadline_ms) {
        r->timed_out = true;
        s_fail (r, 504, "timeout", "no answer before the deadline");
        return;
    }
    if (now >= r->ping_at_ms && s_pending (r) == 0) {
        sse_append (&r->out, ": keep-alive\n\n", 14);
        s_wrote (r);
        return;
    }
    if (now >= r->ping_at_ms)
        r->ping_at_ms = now + S_PING_MS;
    s_arm (r);
}

static ssize_t s_reader (void *cls, uint64_t pos, char *buf, size_t max)
{
    edge_req_t *r = cls;
    if (r->gone)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (s_pending (r))
        return (ssize_t) edge_req_take_out (r, buf, max);
    if (r->ended)
        return MHD_CONTENT_READER_END_OF_STREAM;
    edge_req_suspend (r);
    return 0;
}

enum MHD_Result edge_stream_start (edge_req_t *r)
{
    r->state = EDGE_REQ_STREAM;
    r->status = 200;
    sse_state_init (&r->sse, r->job_id, (int64_t) time (NULL), r->policy,
                    r->include_usage);
    r->sse.cfg = r->loop->sh->cfg;
    r->ping_at_ms = aclock_now_ms () + S_PING_MS;
    s_arm (r);
    return edge_respond_sse (r, s_reader);
}
