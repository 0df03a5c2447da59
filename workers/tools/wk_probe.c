// aigw-worker-probe: a stand-in broker for manual checks and benchmarks of one worker.
// Binds a ROUTER, waits for READY, keeps C tasks in flight (streamed or not), optionally
// cancels, prints timings (and time to first chunk for streams).
#include "aclock.h"
#include "aigw.pb-c.h"
#include "wire.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROBE_MAX 1000000

typedef struct {
    const char *bind;
    const char *model;
    const char *payload;
    long count;
    long concurrency;
    long cancel_after_ms;       // -1 = never
    long deadline_ms;           // 0 = none
    bool quiet;
    bool stream;                // Task.stream
} probe_opts_t;

typedef struct {
    void *router;
    uint8_t wid [WIRE_ID_MAX];
    size_t wid_len;
    int64_t *sent_us;           // per attempt
    int64_t *lat_us;            // per finished attempt
    int64_t *ttft_us;           // per attempt that sent a CHUNK
    uint32_t *seq;              // per attempt: CHUNKs seen
    long nlat, nttft, results, errors, cancelled, next, in_flight, chunks, seq_errors;
} probe_t;

static int s_cmp (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

static void s_send_task (probe_t *p, const probe_opts_t *o)
{
    Aigw__Task t = AIGW__TASK__INIT;
    t.job_id = (uint64_t) p->next;
    t.attempt_id = (uint64_t) p->next;
    t.target = (char *) o->model;
    t.has_deadline_ms = o->deadline_ms > 0;
    t.deadline_ms = (uint32_t) o->deadline_ms;
    t.has_stream = o->stream;
    t.stream = o->stream;
    p->sent_us [p->next] = aclock_now_us ();
    wire_send_bytes (p->router, p->wid, p->wid_len, WIRE_SIDE_WORKER, WIRE_W_TASK, &t.base,
                     o->payload, strlen (o->payload));
    p->next++;
    p->in_flight++;
}

static void s_cancel_due (probe_t *p, const probe_opts_t *o, long *cancel_next)
{
    int64_t now = aclock_now_us ();
    while (*cancel_next < p->next && now - p->sent_us [*cancel_next] >= o->cancel_after_ms * 1000) {
        Aigw__AttemptRef r = AIGW__ATTEMPT_REF__INIT;
        r.attempt_id = (uint64_t) *cancel_next;
        wire_send (p->router, p->wid, p->wid_len, WIRE_SIDE_WORKER, WIRE_W_CANCEL, &r.base, NULL);
        (*cancel_next)++;
    }
}

static void s_on_chunk (probe_t *p, const probe_opts_t *o, wire_msg_t *m)
{
    Aigw__Chunk *c = (Aigw__Chunk *) wire_unpack (&aigw__chunk__descriptor, &m->body);
    if (!c)
        return;
    long id = (long) c->attempt_id;
    if (id >= 0 && id < p->next) {
        if (p->seq [id] == 0)
            p->ttft_us [p->nttft++] = aclock_now_us () - p->sent_us [id];
        if (c->seq != p->seq [id])
            p->seq_errors++;
        p->seq [id]++;
    }
    if (!o->quiet && p->chunks < 8)
        printf ("CHUNK %ld seq %u: %.*s\n", id, c->seq,
                (int) (c->delta_json.len > 300 ? 300 : c->delta_json.len),
                (const char *) c->delta_json.data);
    p->chunks++;
    protobuf_c_message_free_unpacked (&c->base, NULL);
}

static void s_on_reply (probe_t *p, const probe_opts_t *o, wire_msg_t *m)
{
    uint64_t id = 0;
    if (m->cmd == WIRE_W_RESULT) {
        Aigw__Result *r = (Aigw__Result *) wire_unpack (&aigw__result__descriptor, &m->body);
        if (!r)
            return;
        id = r->attempt_id;
        if (!o->quiet && p->results < 3)
            printf ("RESULT %" PRIu64 " %s: %.*s\n", id, r->model ? r->model : "",
                    (int) (r->response_json.len > 300 ? 300 : r->response_json.len),
                    (const char *) r->response_json.data);
        p->results++;
        protobuf_c_message_free_unpacked (&r->base, NULL);
    }
    else {
        Aigw__Error *e = (Aigw__Error *) wire_unpack (&aigw__error__descriptor, &m->body);
        if (!e)
            return;
        id = e->attempt_id;
        if (e->code == AIGW__ERROR_CODE__ERR_CANCELLED)
            p->cancelled++;
        else
            p->errors++;
        if (!o->quiet && p->errors + p->cancelled <= 3)
            printf ("ERROR %" PRIu64 " code %d status %u: %s\n", id, (int) e->code,
                    e->upstream_status, e->message ? e->message : "");
        protobuf_c_message_free_unpacked (&e->base, NULL);
    }
    if ((long) id < p->next) {
        p->lat_us [p->nlat++] = aclock_now_us () - p->sent_us [id];
        p->in_flight--;
    }
}

//  Wait for the worker's READY; returns 0 or -1 after 10 s.
static int s_wait_ready (probe_t *p)
{
    int64_t until = aclock_now_ms () + 10000;
    while (aclock_now_ms () < until) {
        zmq_pollitem_t item = { p->router, 0, ZMQ_POLLIN, 0 };
        zmq_poll (&item, 1, 100);
        wire_msg_t m;
        if (wire_recv (p->router, true, &m) != 0)
            continue;
        bool ready = m.cmd == WIRE_W_READY;
        if (ready) {
            memcpy (p->wid, m.id, m.id_len);
            p->wid_len = m.id_len;
        }
        wire_msg_close (&m);
        if (ready)
            return 0;
    }
    return -1;
}

static void s_run (probe_t *p, const probe_opts_t *o)
{
    long cancel_next = 0;
    int64_t last_hb = aclock_now_ms ();
    while (p->nlat < o->count) {
        while (p->next < o->count && p->in_flight < o->concurrency)
            s_send_task (p, o);
        if (o->cancel_after_ms >= 0)
            s_cancel_due (p, o, &cancel_next);
        zmq_pollitem_t item = { p->router, 0, ZMQ_POLLIN, 0 };
        zmq_poll (&item, 1, 5);
        wire_msg_t m;
        while (wire_recv (p->router, true, &m) == 0) {
            if (m.cmd == WIRE_W_RESULT || m.cmd == WIRE_W_ERROR)
                s_on_reply (p, o, &m);
            else
            if (m.cmd == WIRE_W_CHUNK)
                s_on_chunk (p, o, &m);
            wire_msg_close (&m);
        }
        if (aclock_now_ms () - last_hb >= 500) {
            wire_send (p->router, p->wid, p->wid_len, WIRE_SIDE_WORKER, WIRE_W_HEARTBEAT, NULL, NULL);
            last_hb = aclock_now_ms ();
        }
    }
}

int main (int argc, char **argv)
{
    probe_opts_t o = {
        .bind = "tcp://127.0.0.1:18001", .model = NULL, .count = 1, .concurrency = 1,
        .cancel_after_ms = -1,
        .payload = "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"hello there\"}]}",
    };
    static const struct option lo [] = {
        { "bind", 1, NULL, 'b' }, { "model", 1, NULL, 'm' }, { "count", 1, NULL, 'n' },
        { "concurrency", 1, NULL, 'c' }, { "cancel-after", 1, NULL, 'x' },
        { "deadline", 1, NULL, 'd' }, { "payload", 1, NULL, 'p' }, { "quiet", 0, NULL, 'q' },
        { "stream", 0, NULL, 's' },
        { NULL, 0, NULL, 0 }
    };
    int c;
    while ((c = getopt_long (argc, argv, "", lo, NULL)) != -1) {
        if (c == 'b') o.bind = optarg;
        else if (c == 'm') o.model = optarg;
        else if (c == 'n') o.count = strtol (optarg, NULL, 10);
        else if (c == 'c') o.concurrency = strtol (optarg, NULL, 10);
        else if (c == 'x') o.cancel_after_ms = strtol (optarg, NULL, 10);
        else if (c == 'd') o.deadline_ms = strtol (optarg, NULL, 10);
        else if (c == 'p') o.payload = optarg;
        else if (c == 'q') o.quiet = true;
        else if (c == 's') o.stream = true;
        else return 2;
    }
    if (!o.model || o.count < 1 || o.count > PROBE_MAX || o.concurrency < 1) {
        fprintf (stderr, "usage: aigw-worker-probe --model M [--bind EP] [--count N] "
                 "[--concurrency C] [--cancel-after MS] [--deadline MS] [--payload JSON] [--stream] "
                 "[--quiet]\n");
        return 2;
    }
    void *ctx = zmq_ctx_new ();
    probe_t p = { .router = zmq_socket (ctx, ZMQ_ROUTER) };
    p.sent_us = calloc ((size_t) o.count, sizeof *p.sent_us);
    p.lat_us = calloc ((size_t) o.count, sizeof *p.lat_us);
    p.ttft_us = calloc ((size_t) o.count, sizeof *p.ttft_us);
    p.seq = calloc ((size_t) o.count, sizeof *p.seq);
    wire_setup_socket (p.router, true, 8 * 1024 * 1024);
    if (zmq_bind (p.router, o.bind) || s_wait_ready (&p)) {
        fprintf (stderr, "aigw-worker-probe: no READY on %s\n", o.bind);
        return 1;
    }
    int64_t t0 = aclock_now_us ();
    s_run (&p, &o);
    double secs = (double) (aclock_now_us () - t0) / 1e6;
    qsort (p.lat_us, (size_t) p.nlat, sizeof *p.lat_us, s_cmp);
    printf ("%ld tasks in %.3f s (%.0f/s): %ld results, %ld errors, %ld cancelled; "
            "latency us p50 %" PRId64 " p99 %" PRId64 " max %" PRId64 "\n",
            o.count, secs, o.count / secs, p.results, p.errors, p.cancelled,
            p.lat_us [p.nlat / 2], p.lat_us [p.nlat * 99 / 100], p.lat_us [p.nlat - 1]);
    if (o.stream) {
        qsort (p.ttft_us, (size_t) p.nttft, sizeof *p.ttft_us, s_cmp);
        printf ("%ld chunks (%ld out of order); first chunk us p50 %" PRId64 " p99 %" PRId64 "\n",
                p.chunks, p.seq_errors, p.nttft ? p.ttft_us [p.nttft / 2] : 0,
                p.nttft ? p.ttft_us [p.nttft * 99 / 100] : 0);
    }
    wire_send (p.router, p.wid, p.wid_len, WIRE_SIDE_WORKER, WIRE_W_DISCONNECT, NULL, NULL);
    zmq_close (p.router);
    zmq_ctx_term (ctx);
    free (p.sent_us);
    free (p.lat_us);
    free (p.ttft_us);
    free (p.seq);
    return 0;
}
