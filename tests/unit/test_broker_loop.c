// In-process tests of the broker event loop over inproc://: the broker runs in a
// thread, fake workers and clients are DEALER sockets in the test thread, a SUB
// decodes the metrics stream. (Includes broker_int.h to shrink one socket's pipe.)
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>
#include <zmq.h>
#include <msgpack.h>

#include "aclock.h"
#include "aigw.pb-c.h"
#include "broker.h"
#include "broker_int.h"
#include "cfg.h"
#include "fake_peer.h"
#include "wire.h"

#define WAIT_MS 2000

typedef struct {
    void *ctx;
    cfg_t *cfg;
    broker_t *broker;
    pthread_t thread;
    int rc;
    char fe[64], be[64], mx[64];
    void *socks[8];
    size_t nsocks;
} fx_t;

static int s_fx_seq;

static void *s_run (void *arg)
{
    fx_t *fx = arg;
    fx->rc = broker_run (fx->broker);
    return NULL;
}

//  The worker socket of a test broker.
typedef enum {
    S_BE_INPROC = 0,
    S_BE_TCP,           // TCP loopback, ephemeral port
    S_BE_TINY,          // TCP with a send high-water mark of 1 and a 4 KiB kernel buffer
} s_backend_t;

//  Start a broker with a heartbeat of heartbeat_ms; a worker silent for liveness beats
//  is dead. S_BE_TINY: a worker that does not read fills its pipe fast.
//  extra: more config text (a models section), or "".
//  broker/start_hold_ms of the next s_start*: off unless a test about the hold sets it
static int s_hold_ms;

static void s_start_full (fx_t *fx, int liveness, int heartbeat_ms, s_backend_t backend,
                          const char *extra)
{
    bool tiny_pipes = backend == S_BE_TINY;
    memset (fx, 0, sizeof *fx);
    int seq = ++s_fx_seq;
    snprintf (fx->fe, sizeof fx->fe, "inproc://fe-%d", seq);
    if (backend != S_BE_INPROC)
        snprintf (fx->be, sizeof fx->be, "tcp://127.0.0.1:*");
    else
        snprintf (fx->be, sizeof fx->be, "inproc://be-%d", seq);
    snprintf (fx->mx, sizeof fx->mx, "inproc://mx-%d", seq);
    char text[2048];
    snprintf (text, sizeof text,
              "broker\n"
              "    frontend = %s\n"
              "    backend = %s\n"
              "    metrics = %s\n"
              "    heartbeat_ms = %d\n"
              "    liveness = %d\n"
              "    start_hold_ms = %d\n"
              "%s",
              fx->fe, fx->be, fx->mx, heartbeat_ms, liveness, s_hold_ms, extra);
    char err[256];
    fx->cfg = cfg_parse (text, "test", err, sizeof err);
    assert_non_null (fx->cfg);
    fx->ctx = zmq_ctx_new ();
    fx->broker = broker_new (fx->cfg, fx->ctx);
    assert_non_null (fx->broker);
    if (backend == S_BE_TCP) {
        size_t len = sizeof fx->be;                 // the port the kernel chose
        assert_int_equal (zmq_getsockopt (fx->broker->backend, ZMQ_LAST_ENDPOINT, fx->be,
                                          &len), 0);
    }
    if (tiny_pipes) {
        //  Before the loop runs (it owns the socket afterwards). A TCP listener keeps
        //  the options it was bound with, so bind again with the small ones.
        void *be = fx->broker->backend;
        int one = 1, small = 4096;
        size_t len = sizeof fx->be;
        assert_int_equal (zmq_getsockopt (be, ZMQ_LAST_ENDPOINT, fx->be, &len), 0);
        assert_int_equal (zmq_unbind (be, fx->be), 0);
        zmq_setsockopt (be, ZMQ_SNDHWM, &one, sizeof one);
        zmq_setsockopt (be, ZMQ_SNDBUF, &small, sizeof small);
        assert_int_equal (zmq_bind (be, "tcp://127.0.0.1:*"), 0);
        len = sizeof fx->be;
        assert_int_equal (zmq_getsockopt (be, ZMQ_LAST_ENDPOINT, fx->be, &len), 0);
    }
    assert_int_equal (pthread_create (&fx->thread, NULL, s_run, fx), 0);
}

static void s_start_cfg (fx_t *fx, int liveness, bool tiny_pipes, const char *extra)
{
    s_start_full (fx, liveness, 40, tiny_pipes ? S_BE_TINY : S_BE_INPROC, extra);
}

static void s_start_ex (fx_t *fx, int liveness, bool tiny_pipes)
{
    s_start_cfg (fx, liveness, tiny_pipes, "");
}

static void s_start (fx_t *fx, int liveness)
{
    s_start_ex (fx, liveness, false);
}

//  Stop the loop; counters are readable afterwards until s_destroy.
static void s_stop (fx_t *fx)
{
    broker_stop (fx->broker);
    pthread_join (fx->thread, NULL);
    assert_int_equal (fx->rc, 0);
}

static void s_destroy (fx_t *fx)
{
    for (size_t i = 0; i < fx->nsocks; i++)
        zmq_close (fx->socks[i]);
    broker_destroy (&fx->broker);
    cfg_destroy (&fx->cfg);
    zmq_ctx_term (fx->ctx);
}

static void *s_dealer (fx_t *fx, const char *ep)
{
    void *s = zmq_socket (fx->ctx, ZMQ_DEALER);
    assert_non_null (s);
    wire_setup_socket (s, false, 0);
    assert_int_equal (zmq_connect (s, ep), 0);
    fx->socks[fx->nsocks++] = s;
    return s;
}

//  Close one of the fixture's sockets now (a worker going away).
static void s_close (fx_t *fx, void *s)
{
    for (size_t i = 0; i < fx->nsocks; i++)
        if (fx->socks[i] == s) {
            fx->socks[i] = fx->socks[--fx->nsocks];
            break;
        }
    assert_int_equal (zmq_close (s), 0);
}

//  Receive one message within timeout_ms (malformed ones are dropped); returns 0 or -1.
static int s_recv (void *s, int timeout_ms, wire_msg_t *m)
{
    int64_t until = aclock_now_ms () + timeout_ms;
    int rc;
    do
        rc = fake_peer_recv (s, false, (int) (until - aclock_now_ms ()), m);
    while (rc == -2);
    return rc;
}

//  The next message to client c must be cmd: returns its body decoded with desc (caller
//  frees).
static void *s_expect (void *c, uint8_t cmd, const ProtobufCMessageDescriptor *desc)
{
    void *body = fake_peer_expect (c, false, WIRE_SIDE_CLIENT, cmd, desc, WAIT_MS, NULL);
    if (!body)
        fail_msg ("%s", fake_peer_why ());
    return body;
}

//  m, which a fake worker received, must be cmd: returns its body decoded with desc
//  (caller frees).
static void *s_decode (wire_msg_t *m, uint8_t cmd, const ProtobufCMessageDescriptor *desc)
{
    void *body = fake_peer_decode (m, WIRE_SIDE_WORKER, cmd, desc);
    if (!body)
        fail_msg ("%s", fake_peer_why ());
    return body;
}

//  Next non-heartbeat message for a worker; sends heartbeats while waiting.
static int s_worker_recv (void *w, int timeout_ms, wire_msg_t *m)
{
    int64_t until = aclock_now_ms () + timeout_ms;
    while (aclock_now_ms () < until) {
        wire_send (w, NULL, 0, WIRE_SIDE_WORKER, WIRE_W_HEARTBEAT, NULL, NULL);
        if (s_recv (w, 20, m) == 0) {
            if (m->cmd != WIRE_W_HEARTBEAT)
                return 0;
            wire_msg_close (m);
        }
    }
    return -1;
}

static void s_ready (void *w, const char *id, const char *model, uint32_t capacity)
{
    Aigw__WorkerHello h = AIGW__WORKER_HELLO__INIT;
    char *models[] = { (char *) model };
    h.worker_id = (char *) id;
    h.n_models = 1;
    h.models = models;
    h.capacity = capacity;
    assert_int_equal (wire_send (w, NULL, 0, WIRE_SIDE_WORKER, WIRE_W_READY, &h.base, NULL), 0);
}

//  Job.retries of the jobs s_submit_ex sends (-1: not set, the broker's default).
//  0 unless a test says otherwise: most tests here expect one attempt per target.
static int s_retries = 0;

static void s_submit_ex (void *c, uint64_t job_id, const char *t1, const char *t2,
                         uint32_t deadline_ms, bool stream, const char *payload)
{
    Aigw__Job j = AIGW__JOB__INIT;
    j.has_retries = s_retries >= 0;
    j.retries = s_retries >= 0 ? (uint32_t) s_retries : 0;
    char *targets[] = { (char *) t1, (char *) t2 };
    j.job_id = job_id;
    j.n_targets = t1 ? (t2 ? 2 : 1) : 0;
    j.targets = targets;
    j.has_deadline_ms = deadline_ms > 0;
    j.deadline_ms = deadline_ms;
    j.has_stream = stream;
    j.stream = stream;
    assert_int_equal (wire_send_bytes (c, NULL, 0, WIRE_SIDE_CLIENT, WIRE_C_SUBMIT, &j.base,
                                       payload, payload ? strlen (payload) : 0), 0);
}

static void s_submit (void *c, uint64_t job_id, const char *t1, const char *t2)
{
    s_submit_ex (c, job_id, t1, t2, 0, false, "{\"messages\":[]}");
}

static Aigw__Task *s_expect_task (void *w)
{
    wire_msg_t m;
    assert_int_equal (s_worker_recv (w, WAIT_MS, &m), 0);
    Aigw__Task *t = s_decode (&m, WIRE_W_TASK, &aigw__task__descriptor);
    assert_true (m.has_payload);
    assert_int_equal (zmq_msg_size (&m.payload), strlen ("{\"messages\":[]}"));
    wire_msg_close (&m);
    return t;
}

static uint64_t s_expect_cancel (void *w)
{
    wire_msg_t m;
    assert_int_equal (s_worker_recv (w, WAIT_MS, &m), 0);
    Aigw__AttemptRef *r = s_decode (&m, WIRE_W_CANCEL, &aigw__attempt_ref__descriptor);
    uint64_t id = r->attempt_id;
    protobuf_c_message_free_unpacked (&r->base, NULL);
    wire_msg_close (&m);
    return id;
}

static void s_result_tokens (void *w, const Aigw__Task *t, const char *json, uint32_t tokens)
{
    Aigw__Result r = AIGW__RESULT__INIT;
    Aigw__Usage u = AIGW__USAGE__INIT;
    u.has_completion_tokens = true;
    u.completion_tokens = tokens;
    r.job_id = t->job_id;
    r.has_attempt_id = true;
    r.attempt_id = t->attempt_id;
    r.has_response_json = true;
    r.response_json.data = (uint8_t *) json;
    r.response_json.len = strlen (json);
    r.usage = &u;
    assert_int_equal (wire_send (w, NULL, 0, WIRE_SIDE_WORKER, WIRE_W_RESULT, &r.base, NULL), 0);
}

static void s_result (void *w, const Aigw__Task *t, const char *json)
{
    s_result_tokens (w, t, json, 7);
}

static void s_chunk (void *w, const Aigw__Task *t, const char *delta)
{
    Aigw__Chunk ch = AIGW__CHUNK__INIT;
    ch.job_id = t->job_id;
    ch.has_attempt_id = true;
    ch.attempt_id = t->attempt_id;
    ch.has_delta_json = true;
    ch.delta_json.data = (uint8_t *) delta;
    ch.delta_json.len = strlen (delta);
    assert_int_equal (wire_send (w, NULL, 0, WIRE_SIDE_WORKER, WIRE_W_CHUNK, &ch.base, NULL), 0);
}

//  Next message to the client must be a CHUNK; caller frees it.
static Aigw__Chunk *s_expect_chunk (void *c)
{
    return s_expect (c, WIRE_C_CHUNK, &aigw__chunk__descriptor);
}

static void s_error (void *w, uint64_t job_id, uint64_t attempt_id, int code, const char *msg)
{
    Aigw__Error e = AIGW__ERROR__INIT;
    e.job_id = job_id;
    e.has_attempt_id = true;
    e.attempt_id = attempt_id;
    e.code = code;
    e.message = (char *) msg;
    assert_int_equal (wire_send (w, NULL, 0, WIRE_SIDE_WORKER, WIRE_W_ERROR, &e.base, NULL), 0);
}

static Aigw__Result *s_expect_result (void *c)
{
    return s_expect (c, WIRE_C_RESULT, &aigw__result__descriptor);
}

static Aigw__Error *s_expect_error (void *c)
{
    return s_expect (c, WIRE_C_ERROR, &aigw__error__descriptor);
}

static Aigw__BrokerStatus *s_ping (void *c)
{
    assert_int_equal (wire_send (c, NULL, 0, WIRE_SIDE_CLIENT, WIRE_C_PING, NULL, NULL), 0);
    return s_expect (c, WIRE_C_PONG, &aigw__broker_status__descriptor);
}

//  Wait until the broker reports n workers (READY is on another socket than PING): each
//  PONG says how many it has seen so far.
static void s_wait_workers (void *c, uint32_t n)
{
    int64_t until = aclock_now_ms () + WAIT_MS;
    while (aclock_now_ms () < until) {
        Aigw__BrokerStatus *st = s_ping (c);
        uint32_t have = st->workers;
        protobuf_c_message_free_unpacked (&st->base, NULL);
        if (have == n)
            return;
    }
    fail_msg ("broker never saw %u workers", n);
}

#define FREE(m) protobuf_c_message_free_unpacked (&(m)->base, NULL)

static void test_result (void **state)
{
    fx_t fx;
    s_start (&fx, 50);
    void *w = s_dealer (&fx, fx.be);
    void *c = s_dealer (&fx, fx.fe);
    s_ready (w, "w1", "m1", 4);
    s_wait_workers (c, 1);
    Aigw__BrokerStatus *st = s_ping (c);
    assert_int_equal (st->n_models, 1);
    assert_string_equal (st->models[0]->name, "m1");
    assert_int_equal (st->models[0]->capacity, 4);
    FREE (st);

    s_submit (c, 42, "m1", NULL);
    Aigw__Task *t = s_expect_task (w);
    assert_int_equal (t->job_id, 42);
    assert_string_equal (t->target, "m1");
    assert_true (t->has_deadline_ms && t->deadline_ms > 0);
    s_result (w, t, "{\"ok\":true}");
    Aigw__Result *r = s_expect_result (c);
    assert_int_equal (r->job_id, 42);
    assert_string_equal (r->model, "m1");
    assert_int_equal (r->response_json.len, strlen ("{\"ok\":true}"));
    assert_memory_equal (r->response_json.data, "{\"ok\":true}", r->response_json.len);
    assert_non_null (r->usage);
    assert_int_equal (r->usage->completion_tokens, 7);
    assert_int_equal (r->n_attempts, 1);
    assert_int_equal (r->attempts[0]->attempt_id, t->attempt_id);
    assert_int_equal (r->attempts[0]->outcome, AIGW__OUTCOME__OUTCOME_WON);
    assert_string_equal (r->attempts[0]->worker, "w1");
    assert_true (r->attempts[0]->has_finished_us);
    assert_true (r->attempts[0]->finished_us >= r->attempts[0]->started_us);
    assert_true (r->has_latency_us && r->latency_us > 0);
    FREE (r);
    FREE (t);
    s_stop (&fx);
    const broker_counters_t *k = broker_counters (fx.broker);
    assert_int_equal (k->jobs_accepted, 1);
    assert_int_equal (k->jobs_won, 1);
    assert_int_equal (k->attempts_started, 1);
    assert_int_equal (k->workers_joined, 1);
    assert_int_equal (broker_jobs_in_flight (fx.broker), 0);
    s_destroy (&fx);
}

//  A broker just started holds a job for a model no worker serves yet (its workers
//  are coming back after a restart) and hands it to the first worker that comes.
static void test_start_hold (void **state)
{
    fx_t fx;
    s_hold_ms = 60000;                  // far beyond this test
    s_start (&fx, 50);
    s_hold_ms = 0;
    void *c = s_dealer (&fx, fx.fe);
    s_submit (c, 41, "m", NULL);
    FREE (s_ping (c));                  // same socket: the SUBMIT was taken first
    void *w = s_dealer (&fx, fx.be);
    s_ready (w, "late", "m", 1);
    Aigw__Task *t = s_expect_task (w);
    assert_int_equal (t->job_id, 41);
    s_result (w, t, "{\"held\":true}");
    FREE (t);
    Aigw__Result *r = s_expect_result (c);
    assert_string_equal (r->model, "m");
    FREE (r);
    s_stop (&fx);
    s_destroy (&fx);
}

static void test_race_cancels_loser (void **state)
{
    fx_t fx;
    s_start (&fx, 50);
    void *wa = s_dealer (&fx, fx.be);
    void *wb = s_dealer (&fx, fx.be);
    void *c = s_dealer (&fx, fx.fe);
    s_ready (wa, "wa", "a", 2);
    s_ready (wb, "wb", "b", 2);
    s_wait_workers (c, 2);
    s_submit (c, 7, "a", "b");
    Aigw__Task *ta = s_expect_task (wa);
    Aigw__Task *tb = s_expect_task (wb);
    assert_int_not_equal (ta->attempt_id, tb->attempt_id);
    s_result (wb, tb, "{\"from\":\"b\"}");
    Aigw__Result *r = s_expect_result (c);
    assert_string_equal (r->model, "b");
    assert_int_equal (r->n_attempts, 2);
    assert_string_equal (r->attempts[0]->target, "a");
    assert_int_equal (r->attempts[0]->outcome, AIGW__OUTCOME__OUTCOME_CANCELLED);
    assert_int_equal (r->attempts[1]->outcome, AIGW__OUTCOME__OUTCOME_WON);
    FREE (r);
    //  The loser hears CANCEL for its attempt
    assert_int_equal (s_expect_cancel (wa), ta->attempt_id);
    //  Its late answer and its acknowledgement are dropped and counted
    s_result (wa, ta, "{\"from\":\"a\"}");
    s_error (wa, ta->job_id, ta->attempt_id, AIGW__ERROR_CODE__ERR_CANCELLED, "cancelled");
    //  The loser's credit came back: a new job to "a" is dispatched to it
    s_submit (c, 8, "a", NULL);
    Aigw__Task *t2 = s_expect_task (wa);
    s_result (wa, t2, "{}");
    r = s_expect_result (c);
    assert_int_equal (r->job_id, 8);
    FREE (r);
    FREE (t2);
    FREE (ta);
    FREE (tb);
    s_stop (&fx);
    const broker_counters_t *k = broker_counters (fx.broker);
    assert_int_equal (k->late_replies, 1);
    assert_int_equal (k->cancel_acks, 1);
    assert_int_equal (k->attempts_cancelled, 1);
    assert_int_equal (k->jobs_won, 2);
    s_destroy (&fx);
}

static void test_worker_lost_redispatch (void **state)
{
    fx_t fx;
    s_start (&fx, 3);
    void *w1 = s_dealer (&fx, fx.be);
    void *c = s_dealer (&fx, fx.fe);
    s_ready (w1, "w1", "m", 4);
    s_wait_workers (c, 1);
    s_submit (c, 1, "m", NULL);
    Aigw__Task *t1 = s_expect_task (w1);
    //  A second worker joins and keeps heartbeating; w1 falls silent
    void *w2 = s_dealer (&fx, fx.be);
    s_ready (w2, "w2", "m", 4);
    Aigw__Task *t2 = s_expect_task (w2);       // after w1 expires (3 x 40 ms)
    assert_int_equal (t2->job_id, 1);
    assert_string_equal (t2->target, "m");
    assert_int_not_equal (t2->attempt_id, t1->attempt_id);
    s_result (w2, t2, "{}");
    Aigw__Result *r = s_expect_result (c);
    assert_int_equal (r->n_attempts, 2);
    assert_int_equal (r->attempts[0]->outcome, AIGW__OUTCOME__OUTCOME_FAILED);
    assert_int_equal (r->attempts[0]->error, AIGW__ERROR_CODE__ERR_WORKER_LOST);
    assert_string_equal (r->attempts[0]->worker, "w1");
    assert_int_equal (r->attempts[1]->outcome, AIGW__OUTCOME__OUTCOME_WON);
    assert_string_equal (r->attempts[1]->worker, "w2");
    FREE (r);
    //  The dead worker speaks again: the broker tells it to reconnect
    wire_send (w1, NULL, 0, WIRE_SIDE_WORKER, WIRE_W_HEARTBEAT, NULL, NULL);
    wire_msg_t m;
    bool told = false;
    while (!told && s_recv (w1, WAIT_MS, &m) == 0) {
        told = m.cmd == WIRE_W_DISCONNECT;
        wire_msg_close (&m);
    }
    assert_true (told);
    FREE (t1);
    FREE (t2);
    s_stop (&fx);
    const broker_counters_t *k = broker_counters (fx.broker);
    assert_true (k->workers_lost >= 1);     // w2 may expire too once the test stops beating
    assert_int_equal (k->attempts_redispatched, 1);
    assert_true (k->unknown_worker >= 1);
    s_destroy (&fx);
}

static void test_malformed (void **state)
{
    fx_t fx;
    s_start (&fx, 50);
    void *c = s_dealer (&fx, fx.fe);
    void *w = s_dealer (&fx, fx.be);
    //  1: one junk frame
    zmq_send (c, "hello", 5, 0);
    //  2: good header, unknown command
    zmq_send (c, WIRE_CLIENT, 6, ZMQ_SNDMORE);
    zmq_send (c, "\x7f", 1, 0);
    //  3: SUBMIT whose body does not decode
    zmq_send (c, WIRE_CLIENT, 6, ZMQ_SNDMORE);
    zmq_send (c, "\x01", 1, ZMQ_SNDMORE);
    zmq_send (c, "\xff\xff\xff", 3, ZMQ_SNDMORE);
    zmq_send (c, "{}", 2, 0);
    //  4: worker header on the client socket
    wire_send (c, NULL, 0, WIRE_SIDE_WORKER, WIRE_W_READY, NULL, NULL);
    //  5: too many frames
    for (int i = 0; i < 6; i++)
        zmq_send (c, WIRE_CLIENT, 6, i < 5 ? ZMQ_SNDMORE : 0);
    //  6: worker READY that does not decode (missing required fields)
    wire_send (w, NULL, 0, WIRE_SIDE_WORKER, WIRE_W_READY, NULL, NULL);
    //  7: READY with capacity 0
    s_ready (w, "w", "m", 0);
    //  The broker is still alive and answers
    Aigw__BrokerStatus *st = s_ping (c);
    assert_int_equal (st->workers, 0);
    FREE (st);
    //  Bad SUBMITs get ERR_BAD_REQUEST
    s_submit (c, 1, NULL, NULL);
    Aigw__Error *e = s_expect_error (c);
    assert_int_equal (e->job_id, 1);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_BAD_REQUEST);
    FREE (e);
    s_submit_ex (c, 2, "m", NULL, 0, false, NULL);
    e = s_expect_error (c);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_BAD_REQUEST);
    assert_non_null (strstr (e->message, "payload"));
    FREE (e);
    //  A live job_id cannot be reused
    s_ready (w, "w", "m", 1);
    s_wait_workers (c, 1);
    s_submit (c, 3, "m", NULL);
    Aigw__Task *t = s_expect_task (w);
    s_submit (c, 3, "m", NULL);
    e = s_expect_error (c);
    assert_int_equal (e->job_id, 3);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_BAD_REQUEST);
    FREE (e);
    //  RESULT whose body does not decode, from a registered worker
    zmq_send (w, WIRE_WORKER, 6, ZMQ_SNDMORE);
    zmq_send (w, "\x04", 1, ZMQ_SNDMORE);
    zmq_send (w, "\x0a\xff", 2, 0);
    s_result (w, t, "{}");
    Aigw__Result *r = s_expect_result (c);
    assert_int_equal (r->job_id, 3);
    FREE (r);
    FREE (t);
    s_stop (&fx);
    const broker_counters_t *k = broker_counters (fx.broker);
    assert_int_equal (k->malformed, 8);
    assert_int_equal (k->jobs_rejected, 3);
    s_destroy (&fx);
}

static void test_unavailable_timeout_cancel (void **state)
{
    fx_t fx;
    s_start (&fx, 50);
    void *w = s_dealer (&fx, fx.be);
    void *c = s_dealer (&fx, fx.fe);
    s_ready (w, "w", "m", 4);
    s_wait_workers (c, 1);
    //  Nobody serves "ghost"
    s_submit (c, 1, "ghost", NULL);
    Aigw__Error *e = s_expect_error (c);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_UNAVAILABLE);
    assert_non_null (strstr (e->message, "no worker serves model ghost"));
    assert_int_equal (e->n_attempts, 1);
    assert_int_equal (e->attempts[0]->outcome, AIGW__OUTCOME__OUTCOME_FAILED);
    FREE (e);
    //  ... but a race including it still wins through "m"
    s_submit (c, 2, "ghost", "m");
    Aigw__Task *t = s_expect_task (w);
    s_result (w, t, "{}");
    Aigw__Result *r = s_expect_result (c);
    assert_string_equal (r->model, "m");
    assert_int_equal (r->attempts[0]->error, AIGW__ERROR_CODE__ERR_UNAVAILABLE);
    FREE (r);
    FREE (t);
    //  Deadline: the worker never answers
    int64_t t0 = aclock_now_ms ();
    s_submit_ex (c, 3, "m", NULL, 100, false, "{\"messages\":[]}");
    t = s_expect_task (w);
    e = s_expect_error (c);
    int64_t took = aclock_now_ms () - t0;
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_TIMEOUT);
    assert_true (took >= 100);          // not before the deadline; ERR_TIMEOUT says why
    FREE (e);
    assert_int_equal (s_expect_cancel (w), t->attempt_id);
    FREE (t);
    //  Client CANCEL
    s_submit (c, 4, "m", NULL);
    t = s_expect_task (w);
    Aigw__JobRef ref = AIGW__JOB_REF__INIT;
    ref.job_id = 4;
    wire_send (c, NULL, 0, WIRE_SIDE_CLIENT, WIRE_C_CANCEL, &ref.base, NULL);
    e = s_expect_error (c);
    assert_int_equal (e->job_id, 4);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_CANCELLED);
    FREE (e);
    assert_int_equal (s_expect_cancel (w), t->attempt_id);
    FREE (t);
    s_stop (&fx);
    const broker_counters_t *k = broker_counters (fx.broker);
    assert_int_equal (k->jobs_timeout, 1);
    assert_int_equal (k->jobs_cancelled, 1);
    assert_int_equal (k->jobs_failed, 1);
    s_destroy (&fx);
}

static void test_queue_and_stream (void **state)
{
    fx_t fx;
    s_start (&fx, 50);
    void *w = s_dealer (&fx, fx.be);
    void *c = s_dealer (&fx, fx.fe);
    s_ready (w, "w", "m", 1);
    s_wait_workers (c, 1);
    //  Capacity 1: the second job waits in the queue until the first ends
    s_submit (c, 1, "m", NULL);
    s_submit_ex (c, 2, "m", NULL, 0, true, "{\"messages\":[]}");
    Aigw__Task *t1 = s_expect_task (w);
    assert_int_equal (t1->job_id, 1);
    Aigw__BrokerStatus *st = s_ping (c);
    assert_int_equal (st->models[0]->queued, 1);
    assert_int_equal (st->models[0]->in_flight, 1);
    FREE (st);
    s_error (w, 1, t1->attempt_id, AIGW__ERROR_CODE__ERR_UPSTREAM, "HTTP 500");
    Aigw__Error *e = s_expect_error (c);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_non_null (strstr (e->message, "m: HTTP 500"));
    FREE (e);
    Aigw__Task *t2 = s_expect_task (w);
    assert_int_equal (t2->job_id, 2);
    assert_true (t2->stream);
    //  Streaming: chunks flow to the client, the first names the model
    Aigw__Chunk ch = AIGW__CHUNK__INIT;
    ch.job_id = 2;
    ch.has_attempt_id = true;
    ch.attempt_id = t2->attempt_id;
    ch.has_delta_json = true;
    ch.delta_json.data = (uint8_t *) "{\"d\":1}";
    ch.delta_json.len = 7;
    wire_send (w, NULL, 0, WIRE_SIDE_WORKER, WIRE_W_CHUNK, &ch.base, NULL);
    wire_msg_t m;
    assert_int_equal (s_recv (c, WAIT_MS, &m), 0);
    assert_int_equal (m.cmd, WIRE_C_CHUNK);
    Aigw__Chunk *got = (Aigw__Chunk *) wire_unpack (&aigw__chunk__descriptor, &m.body);
    wire_msg_close (&m);
    assert_non_null (got);
    assert_int_equal (got->job_id, 2);
    assert_int_equal (got->seq, 0);
    assert_string_equal (got->model, "m");
    assert_int_equal (got->delta_json.len, 7);
    FREE (got);
    s_result (w, t2, "{}");
    Aigw__Result *r = s_expect_result (c);
    assert_int_equal (r->job_id, 2);
    assert_true (r->attempts[0]->has_first_token_us);
    FREE (r);
    FREE (t1);
    FREE (t2);
    s_stop (&fx);
    s_destroy (&fx);
}

static void test_hedge_timer (void **state)
{
    fx_t fx;
    s_start (&fx, 50);
    void *wa = s_dealer (&fx, fx.be);
    void *wb = s_dealer (&fx, fx.be);
    void *c = s_dealer (&fx, fx.fe);
    s_ready (wa, "wa", "a", 2);
    s_ready (wb, "wb", "b", 2);
    s_wait_workers (c, 2);
    Aigw__Job j = AIGW__JOB__INIT;
    char *targets[] = { "a", "b" };
    j.job_id = 5;
    j.n_targets = 2;
    j.targets = targets;
    j.has_policy = true;
    j.policy = AIGW__POLICY__POLICY_HEDGE;
    j.has_hedge_delay_ms = true;
    j.hedge_delay_ms = 60;
    const char *payload = "{\"messages\":[]}";
    int64_t t0 = aclock_now_us ();
    wire_send_bytes (c, NULL, 0, WIRE_SIDE_CLIENT, WIRE_C_SUBMIT, &j.base, payload,
                     strlen (payload));
    Aigw__Task *ta = s_expect_task (wa);
    //  "a" stays silent: "b" starts at the hedge delay, not before
    Aigw__Task *tb = s_expect_task (wb);
    int64_t waited = aclock_now_us () - t0;
    assert_true (waited >= 60000);      // not before the hedge delay (b's TASK proves it came)
    s_result (wb, tb, "{}");
    Aigw__Result *r = s_expect_result (c);
    assert_string_equal (r->model, "b");
    assert_int_equal (r->attempts[1]->started_us >= 60000, 1);
    FREE (r);
    assert_int_equal (s_expect_cancel (wa), ta->attempt_id);
    FREE (ta);
    FREE (tb);
    s_stop (&fx);
    s_destroy (&fx);
}

static void test_shutdown_answers_open_jobs (void **state)
{
    fx_t fx;
    s_start (&fx, 50);
    void *w = s_dealer (&fx, fx.be);
    void *c = s_dealer (&fx, fx.fe);
    s_ready (w, "w", "m", 1);
    s_wait_workers (c, 1);
    s_submit (c, 1, "m", NULL);
    Aigw__Task *t = s_expect_task (w);
    FREE (t);
    s_stop (&fx);
    Aigw__Error *e = s_expect_error (c);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_UNAVAILABLE);
    FREE (e);
    s_destroy (&fx);
}

//  Value of key in a msgpack map, or NULL.
static const msgpack_object *s_mp_find (const msgpack_object *map, const char *key)
{
    for (uint32_t i = 0; map->type == MSGPACK_OBJECT_MAP && i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen (key)
            && memcmp (kv->key.via.str.ptr, key, strlen (key)) == 0)
            return &kv->val;
    }
    return NULL;
}

//  Unsigned integer at key; returns true and sets *out.
static bool s_mp_get (const msgpack_object *map, const char *key, uint64_t *out)
{
    const msgpack_object *v = s_mp_find (map, key);
    if (!v || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return false;
    *out = v->via.u64;
    return true;
}

//  True if the string at key equals want.
static bool s_mp_str_is (const msgpack_object *map, const char *key, const char *want)
{
    const msgpack_object *v = s_mp_find (map, key);
    return v && v->type == MSGPACK_OBJECT_STR && v->via.str.size == strlen (want)
           && memcmp (v->via.str.ptr, want, v->via.str.size) == 0;
}

static bool s_mp_is_nil (const msgpack_object *map, const char *key)
{
    const msgpack_object *v = s_mp_find (map, key);
    return v && v->type == MSGPACK_OBJECT_NIL;
}

//  Element of the array at key whose "name"/"id"/"model" string field equals name.
static const msgpack_object *s_mp_item (const msgpack_object *map, const char *key,
                                        const char *field, const char *name)
{
    const msgpack_object *arr = s_mp_find (map, key);
    for (uint32_t i = 0; arr && arr->type == MSGPACK_OBJECT_ARRAY && i < arr->via.array.size; i++)
        if (s_mp_str_is (&arr->via.array.ptr[i], field, name))
            return &arr->via.array.ptr[i];
    return NULL;
}

//  Next message on topic within timeout_ms (others are skipped); unpacks into up.
static bool s_sub_next (void *sub, const char *topic, int timeout_ms, msgpack_unpacked *up)
{
    int64_t until = aclock_now_ms () + timeout_ms;
    for (;;) {
        int64_t left = until - aclock_now_ms ();
        zmq_pollitem_t it = { sub, 0, ZMQ_POLLIN, 0 };
        if (left <= 0 || zmq_poll (&it, 1, (long) left) <= 0)
            return false;
        char got[32];
        int n = zmq_recv (sub, got, sizeof got, 0);
        int more = 0;
        size_t sz = sizeof more;
        zmq_getsockopt (sub, ZMQ_RCVMORE, &more, &sz);
        assert_true (more);
        zmq_msg_t body;
        zmq_msg_init (&body);
        assert_true (zmq_msg_recv (&body, sub, 0) >= 0);
        bool match = n == (int) strlen (topic) && memcmp (got, topic, (size_t) n) == 0;
        if (match) {
            //  An unpacker copies the bytes and ties them to up's zone (plain
            //  msgpack_unpack_next would point into the frame we close below)
            msgpack_unpacker unp;
            assert_true (msgpack_unpacker_init (&unp, zmq_msg_size (&body)));
            assert_true (msgpack_unpacker_reserve_buffer (&unp, zmq_msg_size (&body)));
            memcpy (msgpack_unpacker_buffer (&unp), zmq_msg_data (&body), zmq_msg_size (&body));
            msgpack_unpacker_buffer_consumed (&unp, zmq_msg_size (&body));
            msgpack_unpacked_init (up);
            assert_int_equal (msgpack_unpacker_next (&unp, up), MSGPACK_UNPACK_SUCCESS);
            assert_int_equal (msgpack_unpacker_next (&unp, &(msgpack_unpacked) { 0 }),
                              MSGPACK_UNPACK_CONTINUE);    // exactly one object
            msgpack_unpacker_destroy (&unp);
            assert_int_equal (up->data.type, MSGPACK_OBJECT_MAP);
        }
        zmq_msg_close (&body);
        if (match)
            return true;
    }
}

//  A SUB on the broker's metrics stream, subscribed to everything.
static void *s_sub (fx_t *fx)
{
    void *sub = zmq_socket (fx->ctx, ZMQ_SUB);
    assert_non_null (sub);
    fx->socks[fx->nsocks++] = sub;
    assert_int_equal (zmq_setsockopt (sub, ZMQ_SUBSCRIBE, "", 0), 0);
    assert_int_equal (zmq_connect (sub, fx->mx), 0);
    //  The first message proves the broker's XPUB has the subscription (the metrics
    //  message goes out once a second), so no event after this is missed
    msgpack_unpacked up;
    assert_true (s_sub_next (sub, "metrics", 3000, &up));
    msgpack_unpacked_destroy (&up);
    return sub;
}

static void test_metrics_pub (void **state)
{
    fx_t fx;
    s_start (&fx, 50);
    void *sub = zmq_socket (fx.ctx, ZMQ_SUB);
    fx.socks[fx.nsocks++] = sub;
    zmq_setsockopt (sub, ZMQ_SUBSCRIBE, "metrics", 7);
    assert_int_equal (zmq_connect (sub, fx.mx), 0);
    void *c = s_dealer (&fx, fx.fe);
    void *w = s_dealer (&fx, fx.be);
    s_ready (w, "mw", "m", 2);
    s_wait_workers (c, 1);
    s_submit (c, 1, "nobody", NULL);
    Aigw__Error *e = s_expect_error (c);
    FREE (e);
    //  Published once a second: wait for one after the job
    bool seen = false;
    for (int tries = 0; tries < 3 && !seen; tries++) {
        char topic[16];
        zmq_pollitem_t it = { sub, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&it, 1, 1500) <= 0)
            continue;
        int n = zmq_recv (sub, topic, sizeof topic, 0);
        assert_int_equal (n, 7);
        assert_memory_equal (topic, "metrics", 7);
        zmq_msg_t body;
        zmq_msg_init (&body);
        assert_true (zmq_msg_recv (&body, sub, 0) > 0);
        msgpack_unpacked up;
        msgpack_unpacked_init (&up);
        assert_int_equal (msgpack_unpack_next (&up, zmq_msg_data (&body), zmq_msg_size (&body), NULL),
                          MSGPACK_UNPACK_SUCCESS);
        uint64_t accepted = 0, failed = 0, ts = 0, inflight = 9;
        const msgpack_object *counters = s_mp_find (&up.data, "counters");
        assert_non_null (counters);
        assert_true (s_mp_get (counters, "jobs_accepted", &accepted));
        assert_true (s_mp_get (counters, "jobs_failed", &failed));
        assert_true (s_mp_get (&up.data, "ts_ms", &ts));
        assert_true (s_mp_get (&up.data, "jobs_in_flight", &inflight));
        const msgpack_object *models = s_mp_find (&up.data, "models");
        const msgpack_object *workers = s_mp_find (&up.data, "workers");
        assert_true (models && models->type == MSGPACK_OBJECT_ARRAY);
        assert_true (workers && workers->type == MSGPACK_OBJECT_ARRAY);
        seen = accepted == 1 && failed == 1 && inflight == 0 && ts > 0;
        if (seen) {
            assert_int_equal (models->via.array.size, 1);
            assert_int_equal (workers->via.array.size, 1);
            const msgpack_object *w0 = &workers->via.array.ptr[0];
            const msgpack_object *id = s_mp_find (w0, "id");
            assert_true (id && id->type == MSGPACK_OBJECT_STR);
            assert_memory_equal (id->via.str.ptr, "mw", 2);
        }
        msgpack_unpacked_destroy (&up);
        zmq_msg_close (&body);
    }
    assert_true (seen);
    s_stop (&fx);
    s_destroy (&fx);
}

static void s_submit_stream (void *c, uint64_t job_id, const char *t1, const char *t2)
{
    s_submit_ex (c, job_id, t1, t2, 0, true, "{\"messages\":[]}");
}

//  Streaming race: the first CHUNK wins, the other attempt is cancelled at once,
//  only the winner's chunks reach the client (renumbered, model on every one).
static void test_stream_race (void **state)
{
    fx_t fx;
    s_start (&fx, 50);
    void *wa = s_dealer (&fx, fx.be);
    void *wb = s_dealer (&fx, fx.be);
    void *c = s_dealer (&fx, fx.fe);
    s_ready (wa, "wa", "a", 2);
    s_ready (wb, "wb", "b", 2);
    s_wait_workers (c, 2);
    s_submit_stream (c, 11, "a", "b");
    Aigw__Task *ta = s_expect_task (wa);
    Aigw__Task *tb = s_expect_task (wb);
    assert_true (ta->stream && tb->stream);
    s_chunk (wb, tb, "{\"d\":\"b0\"}");
    Aigw__Chunk *ch = s_expect_chunk (c);
    assert_int_equal (ch->job_id, 11);
    assert_int_equal (ch->seq, 0);
    assert_string_equal (ch->model, "b");
    assert_memory_equal (ch->delta_json.data, "{\"d\":\"b0\"}", ch->delta_json.len);
    FREE (ch);
    //  The loser is cancelled at the first token; its own chunk is never forwarded
    assert_int_equal (s_expect_cancel (wa), ta->attempt_id);
    s_chunk (wa, ta, "{\"d\":\"a0\"}");
    s_chunk (wb, tb, "{\"d\":\"b1\"}");
    s_chunk (wb, tb, "{\"d\":\"b2\"}");
    for (uint32_t i = 1; i <= 2; i++) {
        ch = s_expect_chunk (c);
        assert_int_equal (ch->seq, i);
        assert_string_equal (ch->model, "b");
        char want[16];
        snprintf (want, sizeof want, "{\"d\":\"b%u\"}", i);
        assert_int_equal (ch->delta_json.len, strlen (want));
        assert_memory_equal (ch->delta_json.data, want, strlen (want));
        FREE (ch);
    }
    s_result_tokens (wb, tb, "{\"final\":1}", 3);
    Aigw__Result *r = s_expect_result (c);
    assert_int_equal (r->job_id, 11);
    assert_string_equal (r->model, "b");
    assert_non_null (r->usage);
    assert_int_equal (r->usage->completion_tokens, 3);
    assert_int_equal (r->n_attempts, 2);
    assert_int_equal (r->attempts[0]->outcome, AIGW__OUTCOME__OUTCOME_CANCELLED);
    assert_int_equal (r->attempts[1]->outcome, AIGW__OUTCOME__OUTCOME_WON);
    assert_true (r->attempts[1]->has_first_token_us);
    FREE (r);
    FREE (ta);
    FREE (tb);
    s_stop (&fx);
    const broker_counters_t *k = broker_counters (fx.broker);
    assert_int_equal (k->late_replies, 1);            // the loser's chunk
    assert_int_equal (k->attempts_cancelled, 1);
    assert_int_equal (k->jobs_won, 1);
    s_destroy (&fx);
}

//  The streaming winner fails after its first chunks: no failover, one ERROR.
static void test_stream_winner_error (void **state)
{
    fx_t fx;
    s_start (&fx, 50);
    void *wa = s_dealer (&fx, fx.be);
    void *wb = s_dealer (&fx, fx.be);
    void *c = s_dealer (&fx, fx.fe);
    s_ready (wa, "wa", "a", 2);
    s_ready (wb, "wb", "b", 2);
    s_wait_workers (c, 2);
    //  fallback [a, b]: a streams, then fails; b must never start
    Aigw__Job j = AIGW__JOB__INIT;
    char *targets[] = { "a", "b" };
    j.job_id = 12;
    j.n_targets = 2;
    j.targets = targets;
    j.has_policy = true;
    j.policy = AIGW__POLICY__POLICY_FALLBACK;
    j.has_stream = j.stream = true;
    const char *payload = "{\"messages\":[]}";
    wire_send_bytes (c, NULL, 0, WIRE_SIDE_CLIENT, WIRE_C_SUBMIT, &j.base, payload, strlen (payload));
    Aigw__Task *ta = s_expect_task (wa);
    s_chunk (wa, ta, "{\"d\":0}");
    s_chunk (wa, ta, "{\"d\":1}");
    FREE (s_expect_chunk (c));
    FREE (s_expect_chunk (c));
    s_error (wa, 12, ta->attempt_id, AIGW__ERROR_CODE__ERR_UPSTREAM, "connection reset");
    Aigw__Error *e = s_expect_error (c);
    assert_int_equal (e->job_id, 12);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_string_equal (e->message, "stream failed after 2 chunks: connection reset");
    assert_int_equal (e->n_attempts, 2);
    assert_int_equal (e->attempts[0]->outcome, AIGW__OUTCOME__OUTCOME_FAILED);
    assert_int_equal (e->attempts[1]->outcome, AIGW__OUTCOME__OUTCOME_PENDING);
    FREE (e);
    wire_msg_t m;
    assert_int_equal (s_worker_recv (wb, 150, &m), -1);   // b never got a TASK
    FREE (ta);
    s_stop (&fx);
    s_destroy (&fx);
}

//  The worker of a streaming winner dies: ERR_WORKER_LOST, no re-dispatch.
static void test_stream_worker_lost (void **state)
{
    fx_t fx;
    s_start (&fx, 3);
    void *w1 = s_dealer (&fx, fx.be);
    void *c = s_dealer (&fx, fx.fe);
    s_ready (w1, "w1", "m", 4);
    s_wait_workers (c, 1);
    s_submit_stream (c, 13, "m", NULL);
    Aigw__Task *t = s_expect_task (w1);
    s_chunk (w1, t, "{\"d\":0}");
    FREE (s_expect_chunk (c));
    //  A healthy second worker for the same model joins; w1 falls silent
    void *w2 = s_dealer (&fx, fx.be);
    s_ready (w2, "w2", "m", 4);
    wire_msg_t m;
    assert_int_equal (s_worker_recv (w2, 400, &m), -1);   // w1 expired meanwhile; no TASK
    Aigw__Error *e = s_expect_error (c);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_WORKER_LOST);
    assert_non_null (strstr (e->message, "stream failed after 1 chunks: worker lost mid-stream"));
    assert_int_equal (e->n_attempts, 1);
    FREE (e);
    FREE (t);
    s_stop (&fx);
    assert_int_equal (broker_counters (fx.broker)->attempts_redispatched, 0);
    s_destroy (&fx);
}

//  TTFT applies to non-streaming attempts too: no RESULT in time fails the attempt
//  with ERR_TTFT, cancels it at its worker, and hedge starts the next target at once.
static void test_ttft_nonstream (void **state)
{
    fx_t fx;
    s_start (&fx, 50);
    void *wa = s_dealer (&fx, fx.be);
    void *wb = s_dealer (&fx, fx.be);
    void *c = s_dealer (&fx, fx.fe);
    s_ready (wa, "wa", "a", 2);
    s_ready (wb, "wb", "b", 2);
    s_wait_workers (c, 2);
    Aigw__Job j = AIGW__JOB__INIT;
    char *targets[] = { "a", "b" };
    j.job_id = 14;
    j.n_targets = 2;
    j.targets = targets;
    j.has_policy = true;
    j.policy = AIGW__POLICY__POLICY_HEDGE;
    j.has_hedge_delay_ms = true;
    j.hedge_delay_ms = 10000;
    j.has_ttft_timeout_ms = true;
    j.ttft_timeout_ms = 60;
    const char *payload = "{\"messages\":[]}";
    int64_t t0 = aclock_now_us ();
    wire_send_bytes (c, NULL, 0, WIRE_SIDE_CLIENT, WIRE_C_SUBMIT, &j.base, payload, strlen (payload));
    Aigw__Task *ta = s_expect_task (wa);
    assert_true (ta->has_ttft_timeout_ms);
    assert_int_equal (ta->ttft_timeout_ms, 60);
    Aigw__Task *tb = s_expect_task (wb);
    int64_t waited = aclock_now_us () - t0;
    assert_true (waited >= 60000);      // at the TTFT limit, not before
    assert_int_equal (s_expect_cancel (wa), ta->attempt_id);
    s_result (wb, tb, "{}");
    Aigw__Result *r = s_expect_result (c);
    assert_string_equal (r->model, "b");
    assert_int_equal (r->attempts[0]->outcome, AIGW__OUTCOME__OUTCOME_FAILED);
    assert_int_equal (r->attempts[0]->error, AIGW__ERROR_CODE__ERR_TTFT);
    assert_string_equal (r->attempts[0]->reason, "no first token within 60 ms");
    assert_true (r->attempts[1]->started_us >= 60000);
    FREE (r);
    FREE (ta);
    FREE (tb);
    s_stop (&fx);
    assert_int_equal (broker_counters (fx.broker)->attempts_failed, 1);
    s_destroy (&fx);
}

//  A worker that does not read: a TASK refused with EAGAIN fails just the attempt
//  (ERR_OVERLOADED, retried once), the worker stays registered and recovers.
static void test_pipe_full (void **state)
{
    fx_t fx;
    s_start_ex (&fx, 50, true);
    void *w = zmq_socket (fx.ctx, ZMQ_DEALER);
    fx.socks[fx.nsocks++] = w;
    wire_setup_socket (w, false, 0);
    int one = 1, small = 4096;
    zmq_setsockopt (w, ZMQ_RCVHWM, &one, sizeof one);
    zmq_setsockopt (w, ZMQ_RCVBUF, &small, sizeof small);
    assert_int_equal (zmq_connect (w, fx.be), 0);
    void *c = s_dealer (&fx, fx.fe);
    s_ready (w, "wp", "m", 64);
    s_wait_workers (c, 1);
    size_t big = 256 * 1024;
    char *payload = malloc (big + 1);
    assert_non_null (payload);
    memset (payload, 'x', big);
    payload[big] = 0;
    int jobs = 24, overloaded = 0, other = 0;
    for (int i = 0; i < jobs; i++)
        s_submit_ex (c, 100 + (uint64_t) i, "m", NULL, 0, false, payload);
    wire_msg_t m;
    while (s_recv (c, 500, &m) == 0) {
        Aigw__Error *e = m.cmd == WIRE_C_ERROR
                       ? (Aigw__Error *) wire_unpack (&aigw__error__descriptor, &m.body) : NULL;
        if (e && e->code == AIGW__ERROR_CODE__ERR_OVERLOADED && strstr (e->message, "pipe full"))
            overloaded++;
        else
            other++;
        if (e)
            FREE (e);
        wire_msg_close (&m);
    }
    assert_true (overloaded > 0);
    assert_int_equal (other, 0);
    Aigw__BrokerStatus *st = s_ping (c);
    assert_int_equal (st->workers, 1);                  // not dropped
    FREE (st);
    //  The worker catches up: it answers every TASK it got, all jobs end
    int answered = 0;
    int64_t until = aclock_now_ms () + WAIT_MS;
    while (answered + overloaded < jobs && aclock_now_ms () < until
           && s_worker_recv (w, 300, &m) == 0) {
        if (m.cmd == WIRE_W_TASK) {
            Aigw__Task *t = (Aigw__Task *) wire_unpack (&aigw__task__descriptor, &m.body);
            assert_non_null (t);
            s_result (w, t, "{}");
            answered++;
            FREE (t);
        }
        wire_msg_close (&m);
    }
    assert_int_equal (answered + overloaded, jobs);
    for (int i = 0; i < answered; i++)
        FREE (s_expect_result (c));
    free (payload);
    //  And takes new work
    s_submit (c, 999, "m", NULL);
    Aigw__Task *t = s_expect_task (w);
    s_result (w, t, "{}");
    Aigw__Result *r = s_expect_result (c);
    assert_int_equal (r->job_id, 999);
    FREE (r);
    FREE (t);
    answered++;
    s_stop (&fx);
    const broker_counters_t *k = broker_counters (fx.broker);
    assert_true (k->send_full >= (uint64_t) overloaded);
    assert_int_equal (k->workers_lost, 0);
    assert_int_equal (k->jobs_won, (uint64_t) answered);
    s_destroy (&fx);
}

//  The metrics stream: worker join/leave events, a job event with its attempts, and
//  per-model figures (wins, losses, tokens) in the once-a-second metrics message.
static void test_metrics_stream (void **state)
{
    fx_t fx;
    s_start (&fx, 50);
    void *sub = s_sub (&fx);
    void *wa = s_dealer (&fx, fx.be);
    void *wb = s_dealer (&fx, fx.be);
    void *c = s_dealer (&fx, fx.fe);
    s_ready (wa, "wa", "a", 2);
    msgpack_unpacked up;
    assert_true (s_sub_next (sub, "worker", WAIT_MS, &up));
    assert_true (s_mp_str_is (&up.data, "event", "join"));
    assert_true (s_mp_str_is (&up.data, "id", "wa"));
    assert_true (s_mp_is_nil (&up.data, "reason"));
    const msgpack_object *models = s_mp_find (&up.data, "models");
    assert_true (models && models->type == MSGPACK_OBJECT_ARRAY && models->via.array.size == 1);
    uint64_t v = 0;
    assert_true (s_mp_get (&up.data, "capacity", &v) && v == 2);
    assert_true (s_mp_get (&up.data, "ts_ms", &v) && v > 0);
    msgpack_unpacked_destroy (&up);
    s_ready (wb, "wb", "b", 2);
    assert_true (s_sub_next (sub, "worker", WAIT_MS, &up));
    assert_true (s_mp_str_is (&up.data, "id", "wb"));
    msgpack_unpacked_destroy (&up);
    s_wait_workers (c, 2);
    //  wa's own counters arrive with its heartbeat
    Aigw__WorkerStats ws = AIGW__WORKER_STATS__INIT;
    ws.has_completed = ws.has_failed = ws.has_cancelled = true;
    ws.completed = 5;
    ws.failed = 1;
    ws.cancelled = 2;
    wire_send (wa, NULL, 0, WIRE_SIDE_WORKER, WIRE_W_HEARTBEAT, &ws.base, NULL);
    //  Race a and b: b wins with 7 tokens
    s_submit (c, 21, "a", "b");
    Aigw__Task *ta = s_expect_task (wa);
    Aigw__Task *tb = s_expect_task (wb);
    s_result_tokens (wb, tb, "{}", 7);
    FREE (s_expect_result (c));
    assert_int_equal (s_expect_cancel (wa), ta->attempt_id);
    assert_true (s_sub_next (sub, "job", WAIT_MS, &up));
    const msgpack_object *job = &up.data;
    assert_true (s_mp_get (job, "job_id", &v) && v == 21);
    assert_true (s_mp_str_is (job, "outcome", "won"));
    assert_true (s_mp_str_is (job, "winner", "b"));
    assert_true (s_mp_str_is (job, "policy", "race"));
    assert_true (s_mp_is_nil (job, "error"));
    assert_true (s_mp_get (job, "tokens_saved", &v) && v == 7);
    assert_true (s_mp_get (job, "tokens_wasted", &v) && v == 0);
    const msgpack_object *targets = s_mp_find (job, "targets");
    assert_true (targets && targets->type == MSGPACK_OBJECT_ARRAY && targets->via.array.size == 2);
    const msgpack_object *lat = s_mp_find (job, "latency_ms");
    assert_true (lat && lat->type == MSGPACK_OBJECT_FLOAT64);
    const msgpack_object *aa = s_mp_item (job, "attempts", "model", "a");
    const msgpack_object *ab = s_mp_item (job, "attempts", "model", "b");
    assert_non_null (aa);
    assert_non_null (ab);
    assert_true (s_mp_str_is (aa, "outcome", "cancelled"));
    assert_true (s_mp_find (aa, "lost")->type == MSGPACK_OBJECT_BOOLEAN);
    assert_true (s_mp_find (aa, "lost")->via.boolean);
    assert_true (s_mp_str_is (aa, "worker", "wa"));
    assert_true (s_mp_get (aa, "attempt_id", &v) && v == ta->attempt_id);
    assert_true (s_mp_is_nil (aa, "first_token_ms"));
    assert_true (s_mp_str_is (ab, "outcome", "won"));
    assert_true (s_mp_get (ab, "tokens", &v) && v == 7);
    assert_true (s_mp_find (ab, "finished_ms")->type == MSGPACK_OBJECT_FLOAT64);
    msgpack_unpacked_destroy (&up);
    //  The loser had already produced tokens before it saw the CANCEL: wasted
    s_chunk (wa, ta, "{\"d\":0}");
    s_chunk (wa, ta, "{\"d\":1}");
    s_result_tokens (wa, ta, "{}", 5);
    //  Wait for a metrics message that has all of it
    bool seen = false;
    for (int tries = 0; tries < 4 && !seen; tries++) {
        if (!s_sub_next (sub, "metrics", 1500, &up))
            continue;
        const msgpack_object *ma = s_mp_item (&up.data, "models", "name", "a");
        const msgpack_object *mb = s_mp_item (&up.data, "models", "name", "b");
        const msgpack_object *wka = s_mp_item (&up.data, "workers", "id", "wa");
        assert_non_null (ma);
        assert_non_null (mb);
        assert_non_null (wka);
        uint64_t losses = 0, cancelled = 0, saved = 0, wasted = 0, wins = 0, errors = 9;
        uint64_t completed = 0, failed = 0, wcancelled = 0, wins_a = 9;
        s_mp_get (ma, "losses", &losses);
        s_mp_get (ma, "cancelled", &cancelled);
        s_mp_get (ma, "tokens_saved", &saved);
        s_mp_get (ma, "tokens_wasted", &wasted);
        s_mp_get (ma, "wins", &wins_a);
        s_mp_get (mb, "wins", &wins);
        s_mp_get (mb, "errors", &errors);
        s_mp_get (wka, "completed", &completed);
        s_mp_get (wka, "failed", &failed);
        s_mp_get (wka, "cancelled", &wcancelled);
        const msgpack_object *p = s_mp_find (s_mp_find (mb, "latency_ms"), "p50");
        assert_true (p && p->type == MSGPACK_OBJECT_FLOAT64);
        assert_non_null (s_mp_find (s_mp_find (mb, "ttft_ms"), "p99"));
        const msgpack_object *wm = s_mp_find (wka, "models");
        assert_true (wm && wm->type == MSGPACK_OBJECT_ARRAY && wm->via.array.size == 1);
        const msgpack_object *m0 = &wm->via.array.ptr[0];
        assert_true (m0->type == MSGPACK_OBJECT_STR && m0->via.str.size == 1 && m0->via.str.ptr[0] == 'a');
        seen = losses == 1 && cancelled == 1 && saved == 7 && wasted == 5 && wins_a == 0
               && wins == 1 && errors == 0 && completed == 5 && failed == 1 && wcancelled == 2
               && p->via.f64 > 0.0;
        msgpack_unpacked_destroy (&up);
    }
    assert_true (seen);
    //  A worker leaves
    wire_send (wa, NULL, 0, WIRE_SIDE_WORKER, WIRE_W_DISCONNECT, NULL, NULL);
    assert_true (s_sub_next (sub, "worker", WAIT_MS, &up));
    assert_true (s_mp_str_is (&up.data, "event", "leave"));
    assert_true (s_mp_str_is (&up.data, "id", "wa"));
    assert_true (s_mp_str_is (&up.data, "reason", "sent DISCONNECT"));
    msgpack_unpacked_destroy (&up);
    FREE (ta);
    FREE (tb);
    s_stop (&fx);
    s_destroy (&fx);
}

//  ---- usage, SPEND and cost

//  Models a (1 and 2 USD per million prompt / completion tokens) and b (3 and 4).
static const char *PRICED =
    "models\n"
    "    a\n        provider = sim\n        input_price = 1\n        output_price = 2\n"
    "    b\n        provider = sim\n        input_price = 3\n        output_price = 4\n";

static void s_submit_acct (void *c, uint64_t job_id, const char *t1, const char *t2, bool stream,
                           const char *account)
{
    Aigw__Job j = AIGW__JOB__INIT;
    char *targets[] = { (char *) t1, (char *) t2 };
    j.job_id = job_id;
    j.n_targets = t2 ? 2 : 1;
    j.targets = targets;
    j.has_stream = stream;
    j.stream = stream;
    j.account = (char *) account;
    assert_int_equal (wire_send_bytes (c, NULL, 0, WIRE_SIDE_CLIENT, WIRE_C_SUBMIT, &j.base,
                                       "{\"messages\":[]}", strlen ("{\"messages\":[]}")), 0);
}

static void s_result_usage (void *w, const Aigw__Task *t, uint32_t prompt, uint32_t completion)
{
    Aigw__Result r = AIGW__RESULT__INIT;
    Aigw__Usage u = AIGW__USAGE__INIT;
    u.has_prompt_tokens = u.has_completion_tokens = true;
    u.prompt_tokens = prompt;
    u.completion_tokens = completion;
    r.job_id = t->job_id;
    r.has_attempt_id = true;
    r.attempt_id = t->attempt_id;
    r.has_response_json = true;
    r.response_json.data = (uint8_t *) "{}";
    r.response_json.len = 2;
    r.usage = &u;
    assert_int_equal (wire_send (w, NULL, 0, WIRE_SIDE_WORKER, WIRE_W_RESULT, &r.base, NULL), 0);
}

//  An ERROR (a cancel acknowledgement with ERR_CANCELLED) carrying estimated usage.
static void s_error_usage (void *w, const Aigw__Task *t, int code, uint32_t prompt,
                           uint32_t completion)
{
    Aigw__Error e = AIGW__ERROR__INIT;
    Aigw__Usage u = AIGW__USAGE__INIT;
    u.has_prompt_tokens = u.has_completion_tokens = u.has_estimated = true;
    u.prompt_tokens = prompt;
    u.completion_tokens = completion;
    u.estimated = true;
    e.job_id = t->job_id;
    e.has_attempt_id = true;
    e.attempt_id = t->attempt_id;
    e.code = code;
    e.message = (char *) "x";
    e.usage = &u;
    assert_int_equal (wire_send (w, NULL, 0, WIRE_SIDE_WORKER, WIRE_W_ERROR, &e.base, NULL), 0);
}

static Aigw__Spend *s_expect_spend (void *c)
{
    return s_expect (c, WIRE_C_SPEND, &aigw__spend__descriptor);
}

//  A job for "a" alone that w answers at once: its RESULT reaching the client proves
//  the broker has handled everything w sent before (one pipe, in order), so a SPEND
//  that was going to come would have come first.
static void s_barrier (void *c, void *w, uint64_t job_id)
{
    s_submit_acct (c, job_id, "a", NULL, false, NULL);
    Aigw__Task *t = s_expect_task (w);
    s_result_usage (w, t, 1, 1);
    Aigw__Result *r = s_expect_result (c);
    assert_int_equal (r->job_id, job_id);
    FREE (r);
    FREE (t);
}

static const Aigw__AttemptInfo *s_info (const Aigw__Result *r, const char *target)
{
    for (size_t i = 0; i < r->n_attempts; i++)
        if (r->attempts[i]->target && strcmp (r->attempts[i]->target, target) == 0)
            return r->attempts[i];
    fail_msg ("no attempt for %s", target);
    return NULL;
}

//  A race with an account: the winner's usage is in its AttemptInfo; the loser's
//  acknowledgement, after the answer, becomes exactly one SPEND; a job without an
//  account never gets one.
static void test_spend_loser (void **state)
{
    fx_t fx;
    s_start_cfg (&fx, 50, false, PRICED);
    void *wa = s_dealer (&fx, fx.be);
    void *wb = s_dealer (&fx, fx.be);
    void *c = s_dealer (&fx, fx.fe);
    s_ready (wa, "wa", "a", 2);
    s_ready (wb, "wb", "b", 2);
    s_wait_workers (c, 2);
    s_submit_acct (c, 1, "a", "b", false, "key-1");
    Aigw__Task *ta = s_expect_task (wa);
    Aigw__Task *tb = s_expect_task (wb);
    s_result_usage (wb, tb, 10, 7);
    Aigw__Result *r = s_expect_result (c);
    const Aigw__AttemptInfo *ia = s_info (r, "a"), *ib = s_info (r, "b");
    assert_int_equal (ib->outcome, AIGW__OUTCOME__OUTCOME_WON);
    assert_non_null (ib->usage);
    assert_int_equal (ib->usage->prompt_tokens, 10);
    assert_int_equal (ib->usage->completion_tokens, 7);
    assert_int_equal (ia->outcome, AIGW__OUTCOME__OUTCOME_CANCELLED);
    assert_null (ia->usage);                        // not known yet: it comes as SPEND
    FREE (r);
    assert_int_equal (s_expect_cancel (wa), ta->attempt_id);
    s_error_usage (wa, ta, AIGW__ERROR_CODE__ERR_CANCELLED, 10, 3);
    Aigw__Spend *sp = s_expect_spend (c);
    assert_int_equal (sp->job_id, 1);
    assert_int_equal (sp->attempt_id, ta->attempt_id);
    assert_string_equal (sp->target, "a");
    assert_string_equal (sp->account, "key-1");
    assert_non_null (sp->usage);
    assert_int_equal (sp->usage->prompt_tokens, 10);
    assert_int_equal (sp->usage->completion_tokens, 3);
    assert_true (sp->usage->has_estimated && sp->usage->estimated);
    FREE (sp);
    //  A second word from the same attempt is not charged again
    s_error_usage (wa, ta, AIGW__ERROR_CODE__ERR_CANCELLED, 10, 3);
    s_barrier (c, wa, 2);
    FREE (ta);
    FREE (tb);
    //  No account: the loser's acknowledgement sends nothing to the client
    s_submit_acct (c, 3, "a", "b", false, NULL);
    ta = s_expect_task (wa);
    tb = s_expect_task (wb);
    s_result_usage (wb, tb, 10, 7);
    FREE (s_expect_result (c));
    assert_int_equal (s_expect_cancel (wa), ta->attempt_id);
    s_error_usage (wa, ta, AIGW__ERROR_CODE__ERR_CANCELLED, 10, 3);
    s_barrier (c, wa, 4);
    FREE (ta);
    FREE (tb);
    //  A failed attempt's usage is in the answer too
    s_submit_acct (c, 5, "a", "b", false, "key-1");
    ta = s_expect_task (wa);
    tb = s_expect_task (wb);
    s_error_usage (wa, ta, AIGW__ERROR_CODE__ERR_UPSTREAM, 10, 0);
    s_barrier (c, wa, 6);                           // a's error is in before b answers
    s_result_usage (wb, tb, 10, 7);
    r = s_expect_result (c);
    ia = s_info (r, "a");
    assert_int_equal (ia->outcome, AIGW__OUTCOME__OUTCOME_FAILED);
    assert_non_null (ia->usage);
    assert_int_equal (ia->usage->prompt_tokens, 10);
    assert_true (ia->usage->estimated);
    assert_non_null (s_info (r, "b")->usage);
    FREE (r);
    FREE (ta);
    FREE (tb);
    s_stop (&fx);
    const broker_counters_t *k = broker_counters (fx.broker);
    assert_int_equal (k->spend_sent, 1);
    assert_int_equal (k->spend_lost, 0);
    s_destroy (&fx);
}

//  A streaming race: the loser is cancelled at the first chunk and its
//  acknowledgement arrives before the answer, so its usage is in the answer's
//  AttemptInfo and no SPEND follows.
static void test_spend_before_answer (void **state)
{
    fx_t fx;
    s_start_cfg (&fx, 50, false, PRICED);
    void *wa = s_dealer (&fx, fx.be);
    void *wb = s_dealer (&fx, fx.be);
    void *c = s_dealer (&fx, fx.fe);
    s_ready (wa, "wa", "a", 2);
    s_ready (wb, "wb", "b", 2);
    s_wait_workers (c, 2);
    s_submit_acct (c, 1, "a", "b", true, "key-1");
    Aigw__Task *ta = s_expect_task (wa);
    Aigw__Task *tb = s_expect_task (wb);
    s_chunk (wb, tb, "{\"d\":0}");
    FREE (s_expect_chunk (c));
    assert_int_equal (s_expect_cancel (wa), ta->attempt_id);
    s_error_usage (wa, ta, AIGW__ERROR_CODE__ERR_CANCELLED, 10, 2);
    s_barrier (c, wa, 2);
    s_result_usage (wb, tb, 10, 7);
    Aigw__Result *r = s_expect_result (c);
    assert_int_equal (r->job_id, 1);
    const Aigw__AttemptInfo *ia = s_info (r, "a");
    assert_int_equal (ia->outcome, AIGW__OUTCOME__OUTCOME_CANCELLED);
    assert_non_null (ia->usage);
    assert_int_equal (ia->usage->completion_tokens, 2);
    assert_int_equal (s_info (r, "b")->usage->completion_tokens, 7);
    FREE (r);
    s_barrier (c, wa, 3);
    FREE (ta);
    FREE (tb);
    s_stop (&fx);
    assert_int_equal (broker_counters (fx.broker)->spend_sent, 0);
    s_destroy (&fx);
}

static bool s_mp_f64 (const msgpack_object *map, const char *key, double *out)
{
    const msgpack_object *v = s_mp_find (map, key);
    if (!v || v->type != MSGPACK_OBJECT_FLOAT64)
        return false;
    *out = v->via.f64;
    return true;
}

static bool s_near (double a, double b)
{
    return a > b - 1e-12 && a < b + 1e-12;
}

//  Cost figures: the job event's cost (winner's usage), per model cost_usd (winner,
//  and the loser once its acknowledgement came) and cost_saved_usd, and the totals.
static void test_cost_metrics (void **state)
{
    fx_t fx;
    s_start_cfg (&fx, 50, false, PRICED);
    void *sub = s_sub (&fx);
    void *wa = s_dealer (&fx, fx.be);
    void *wb = s_dealer (&fx, fx.be);
    void *c = s_dealer (&fx, fx.fe);
    s_ready (wa, "wa", "a", 2);
    s_ready (wb, "wb", "b", 2);
    s_wait_workers (c, 2);
    s_submit_acct (c, 1, "a", "b", false, NULL);
    Aigw__Task *ta = s_expect_task (wa);
    Aigw__Task *tb = s_expect_task (wb);
    s_result_usage (wb, tb, 10, 7);                 // b: 10 x 3 + 7 x 4 = 58 µUSD
    FREE (s_expect_result (c));
    assert_int_equal (s_expect_cancel (wa), ta->attempt_id);
    msgpack_unpacked up;
    assert_true (s_sub_next (sub, "job", WAIT_MS, &up));
    double v = 0;
    assert_true (s_mp_f64 (&up.data, "cost_usd", &v));
    assert_true (s_near (v, 58e-6));
    msgpack_unpacked_destroy (&up);
    s_error_usage (wa, ta, AIGW__ERROR_CODE__ERR_CANCELLED, 10, 3);    // a: 10 + 6 = 16 µUSD
    //  a saved 7 tokens (the winner's) at 2 USD per million: 14 µUSD
    bool seen = false;
    for (int tries = 0; tries < 4 && !seen; tries++) {
        if (!s_sub_next (sub, "metrics", 1500, &up))
            continue;
        const msgpack_object *ma = s_mp_item (&up.data, "models", "name", "a");
        const msgpack_object *mb = s_mp_item (&up.data, "models", "name", "b");
        assert_non_null (ma);
        assert_non_null (mb);
        double ca = 0, sa = 0, cb = 0, sb = 1, total = 0, saved = 0;
        assert_true (s_mp_f64 (ma, "cost_usd", &ca) && s_mp_f64 (ma, "cost_saved_usd", &sa));
        assert_true (s_mp_f64 (mb, "cost_usd", &cb) && s_mp_f64 (mb, "cost_saved_usd", &sb));
        assert_true (s_mp_f64 (&up.data, "cost_usd", &total));
        assert_true (s_mp_f64 (&up.data, "cost_saved_usd", &saved));
        seen = s_near (ca, 16e-6) && s_near (sa, 14e-6) && s_near (cb, 58e-6) && s_near (sb, 0)
               && s_near (total, 74e-6) && s_near (saved, 14e-6);
        msgpack_unpacked_destroy (&up);
    }
    assert_true (seen);
    FREE (ta);
    FREE (tb);
    s_stop (&fx);
    s_destroy (&fx);
}

//  ---------------------------------------------------------------------------
//  Retries and cooldown (brokers/health.c) through the broker

//  cmocka teardown: a failed test must not leave its s_retries to the next ones.
static int s_retries_reset (void **state)
{
    (void) state;
    s_retries = 0;
    return 0;
}

//  A worker's ERROR with the provider's HTTP status.
static void s_error_status (void *w, uint64_t job_id, uint64_t attempt_id, int code,
                            uint32_t status, const char *msg)
{
    Aigw__Error e = AIGW__ERROR__INIT;
    e.job_id = job_id;
    e.has_attempt_id = true;
    e.attempt_id = attempt_id;
    e.code = code;
    e.message = (char *) msg;
    e.has_upstream_status = status != 0;
    e.upstream_status = status;
    assert_int_equal (wire_send (w, NULL, 0, WIRE_SIDE_WORKER, WIRE_W_ERROR, &e.base, NULL), 0);
}

//  READY for two models (a barrier model next to the one under test).
static void s_ready2 (void *w, const char *id, const char *m1, const char *m2, uint32_t capacity)
{
    Aigw__WorkerHello h = AIGW__WORKER_HELLO__INIT;
    char *models[] = { (char *) m1, (char *) m2 };
    h.worker_id = (char *) id;
    h.n_models = 2;
    h.models = models;
    h.capacity = capacity;
    assert_int_equal (wire_send (w, NULL, 0, WIRE_SIDE_WORKER, WIRE_W_READY, &h.base, NULL), 0);
}

//  A broker whose targets cool down after `failures` failures in a row, for cooldown_ms.
static void s_start_health (fx_t *fx, uint32_t failures, uint32_t cooldown_ms)
{
    char extra[256];
    snprintf (extra, sizeof extra,
              "    cooldown_failures = %u\n"
              "    cooldown_ms = %u\n",
              failures, cooldown_ms);
    s_start_cfg (fx, 50, false, extra);
    assert_int_equal (fx->cfg->broker.health.cooldown_failures, failures);
    assert_int_equal (fx->cfg->broker.health.cooldown_ms, cooldown_ms);
}

//  Job job_id on `model` fails at its worker with ERR_UPSTREAM and status; the client
//  hears ERR_UPSTREAM (jobs without retries).
static void s_job_fails (void *c, void *w, uint64_t job_id, const char *model, uint32_t status)
{
    s_submit (c, job_id, model, NULL);
    Aigw__Task *t = s_expect_task (w);
    assert_int_equal (t->job_id, job_id);
    s_error_status (w, job_id, t->attempt_id, AIGW__ERROR_CODE__ERR_UPSTREAM, status, "HTTP 5xx");
    Aigw__Error *e = s_expect_error (c);
    assert_int_equal (e->job_id, job_id);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_UPSTREAM);
    FREE (e);
    FREE (t);
}

//  The next TASK at w is job_id's (messages to a worker keep their order, so no TASK of
//  an earlier job came in between); answer it and read the client's RESULT.
static void s_barrier_job (void *c, void *w, uint64_t job_id, const char *model)
{
    s_submit (c, job_id, model, NULL);
    Aigw__Task *t = s_expect_task (w);
    assert_int_equal (t->job_id, job_id);
    s_result (w, t, "{}");
    Aigw__Result *r = s_expect_result (c);
    assert_int_equal (r->job_id, job_id);
    FREE (r);
    FREE (t);
}

//  Submit job_id on model; true if the broker refused it with ERR_COOLDOWN (the client's
//  PING barrier says it answered at once), false if it was dispatched (no answer yet).
static bool s_submit_cooling (void *c, uint64_t job_id, const char *model)
{
    s_submit (c, job_id, model, NULL);
    assert_int_equal (wire_send (c, NULL, 0, WIRE_SIDE_CLIENT, WIRE_C_PING, NULL, NULL), 0);
    wire_msg_t m;
    assert_int_equal (s_recv (c, WAIT_MS, &m), 0);
    if (m.cmd == WIRE_C_PONG) {
        wire_msg_close (&m);
        return false;
    }
    assert_int_equal (m.cmd, WIRE_C_ERROR);
    Aigw__Error *e = (Aigw__Error *) wire_unpack (&aigw__error__descriptor, &m.body);
    wire_msg_close (&m);
    assert_non_null (e);
    assert_int_equal (e->job_id, job_id);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_COOLDOWN);
    assert_true (e->has_retry_after_ms && e->retry_after_ms > 0);
    FREE (e);
    assert_int_equal (s_recv (c, WAIT_MS, &m), 0);
    assert_int_equal (m.cmd, WIRE_C_PONG);
    wire_msg_close (&m);
    return true;
}

static void test_retry_then_win (void **state)
{
    s_retries = 1;
    fx_t fx;
    s_start (&fx, 50);
    void *w = s_dealer (&fx, fx.be);
    void *c = s_dealer (&fx, fx.fe);
    s_ready (w, "w", "m", 2);
    s_wait_workers (c, 1);
    s_submit (c, 1, "m", NULL);
    Aigw__Task *t1 = s_expect_task (w);
    s_error_status (w, 1, t1->attempt_id, AIGW__ERROR_CODE__ERR_UPSTREAM, 503, "HTTP 503");
    //  After the backoff the same job comes again, as a new attempt
    Aigw__Task *t2 = s_expect_task (w);
    assert_int_equal (t2->job_id, 1);
    assert_string_equal (t2->target, "m");
    assert_int_not_equal (t2->attempt_id, t1->attempt_id);
    s_result (w, t2, "{\"ok\":true}");
    Aigw__Result *r = s_expect_result (c);
    assert_int_equal (r->job_id, 1);
    assert_int_equal (r->attempt_id, t2->attempt_id);
    assert_int_equal (r->n_attempts, 2);
    const Aigw__AttemptInfo *a0 = r->attempts[0], *a1 = r->attempts[1];
    assert_int_equal (a0->attempt_id, t1->attempt_id);
    assert_int_equal (a0->outcome, AIGW__OUTCOME__OUTCOME_FAILED);
    assert_int_equal (a0->error, AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_true (a0->has_upstream_status);
    assert_int_equal (a0->upstream_status, 503);
    assert_false (a0->has_retry_of);
    assert_int_equal (a1->attempt_id, t2->attempt_id);
    assert_int_equal (a1->outcome, AIGW__OUTCOME__OUTCOME_WON);
    assert_true (a1->has_retry_of);
    assert_int_equal (a1->retry_of, t1->attempt_id);
    assert_false (a1->has_hedge && a1->hedge);
    assert_true (a1->started_us >= a0->finished_us);
    assert_false (r->has_retry_suppressed && r->retry_suppressed);
    FREE (r);
    FREE (t1);
    FREE (t2);
    s_stop (&fx);
    const broker_counters_t *k = broker_counters (fx.broker);
    assert_int_equal (k->attempts_retried, 1);
    assert_int_equal (k->attempts_started, 2);
    assert_int_equal (k->attempts_failed, 1);
    assert_int_equal (k->jobs_won, 1);
    assert_int_equal (k->jobs_failed, 0);
    assert_int_equal (k->breaker_trips, 0);
    s_destroy (&fx);
    s_retries = 0;
}

static void test_no_retry_client_error (void **state)
{
    s_retries = 1;
    fx_t fx;
    s_start (&fx, 50);
    void *w = s_dealer (&fx, fx.be);
    void *c = s_dealer (&fx, fx.fe);
    s_ready (w, "w", "m", 2);
    s_wait_workers (c, 1);
    //  A 400 is the client's request: answered at once, never retried
    s_submit (c, 1, "m", NULL);
    Aigw__Task *t = s_expect_task (w);
    s_error_status (w, 1, t->attempt_id, AIGW__ERROR_CODE__ERR_BAD_REQUEST, 400,
                    "context_length_exceeded");
    Aigw__Error *e = s_expect_error (c);
    assert_int_equal (e->job_id, 1);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_BAD_REQUEST);
    assert_int_equal (e->n_attempts, 1);
    assert_int_equal (e->attempts[0]->upstream_status, 400);
    FREE (e);
    FREE (t);
    //  A 504 neither (the deadline would only be spent again)
    s_submit (c, 2, "m", NULL);
    t = s_expect_task (w);
    assert_int_equal (t->job_id, 2);                  // no retry TASK of job 1 came first
    s_error_status (w, 2, t->attempt_id, AIGW__ERROR_CODE__ERR_UPSTREAM, 504, "HTTP 504");
    e = s_expect_error (c);
    assert_int_equal (e->job_id, 2);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_int_equal (e->n_attempts, 1);
    FREE (e);
    FREE (t);
    s_barrier_job (c, w, 3, "m");                     // nor one of job 2
    s_stop (&fx);
    const broker_counters_t *k = broker_counters (fx.broker);
    assert_int_equal (k->attempts_retried, 0);
    assert_int_equal (k->attempts_started, 3);
    assert_int_equal (k->jobs_failed, 2);
    s_destroy (&fx);
    s_retries = 0;
}

static void test_cooldown_skips (void **state)
{
    s_retries = 0;
    fx_t fx;
    s_start_health (&fx, 2, 60000);
    void *w = s_dealer (&fx, fx.be);
    void *c = s_dealer (&fx, fx.fe);
    s_ready2 (w, "w", "m", "n", 2);
    s_wait_workers (c, 1);
    s_job_fails (c, w, 1, "m", 500);
    s_job_fails (c, w, 2, "m", 500);                 // the second in a row trips "m"
    //  "m" is cooling: the third job fails at once, nothing sent upstream
    s_submit (c, 3, "m", NULL);
    Aigw__Error *e = s_expect_error (c);
    assert_int_equal (e->job_id, 3);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_COOLDOWN);
    assert_true (e->has_retry_after_ms);
    assert_true (e->retry_after_ms > 0 && e->retry_after_ms <= 60000);
    assert_non_null (strstr (e->message, "cooling down"));
    assert_int_equal (e->n_attempts, 1);
    assert_string_equal (e->attempts[0]->target, "m");
    assert_int_equal (e->attempts[0]->outcome, AIGW__OUTCOME__OUTCOME_SKIPPED);
    assert_true (e->attempts[0]->has_error);
    assert_int_equal (e->attempts[0]->error, AIGW__ERROR_CODE__ERR_COOLDOWN);
    FREE (e);
    //  The worker's next TASK is job 4's: none came for job 3
    s_barrier_job (c, w, 4, "n");
    //  A race of the cooling "m" and "n" runs on "n" alone
    s_submit (c, 5, "m", "n");
    Aigw__Task *t = s_expect_task (w);
    assert_int_equal (t->job_id, 5);
    assert_string_equal (t->target, "n");
    s_result (w, t, "{}");
    Aigw__Result *r = s_expect_result (c);
    assert_string_equal (r->model, "n");
    assert_int_equal (r->n_attempts, 2);
    assert_int_equal (r->attempts[0]->outcome, AIGW__OUTCOME__OUTCOME_SKIPPED);
    assert_int_equal (r->attempts[1]->outcome, AIGW__OUTCOME__OUTCOME_WON);
    FREE (r);
    FREE (t);
    s_stop (&fx);
    const broker_counters_t *k = broker_counters (fx.broker);
    assert_int_equal (k->breaker_trips, 1);
    assert_int_equal (k->attempts_skipped, 2);
    assert_int_equal (k->jobs_cooldown, 1);
    assert_int_equal (k->jobs_failed, 3);
    assert_int_equal (k->attempts_started, 4);
    s_destroy (&fx);
}

static void test_cooldown_recovers (void **state)
{
    s_retries = 0;
    fx_t fx;
    s_start_health (&fx, 2, 50);
    void *w = s_dealer (&fx, fx.be);
    void *c = s_dealer (&fx, fx.fe);
    s_ready (w, "w", "m", 4);
    s_wait_workers (c, 1);
    s_job_fails (c, w, 1, "m", 502);
    s_job_fails (c, w, 2, "m", 502);
    //  Cooling: skipped until the cooldown passes, then one job is let through (the probe)
    uint64_t id = 10;
    int skipped = 0;
    int64_t until = aclock_now_ms () + 5000;
    while (s_submit_cooling (c, id, "m")) {
        skipped++;
        id++;
        if (aclock_now_ms () > until)
            fail_msg ("the cooldown never ended");
        zmq_poll (NULL, 0, 10);
    }
    assert_true (skipped >= 1);                       // just after the trip it was cooling
    Aigw__Task *probe = s_expect_task (w);
    assert_int_equal (probe->job_id, id);
    //  While the probe is out, others still skip the target
    assert_true (s_submit_cooling (c, 1000, "m"));
    //  The probe answers: closed again, jobs go through normally
    s_result (w, probe, "{}");
    Aigw__Result *r = s_expect_result (c);
    assert_int_equal (r->job_id, id);
    FREE (r);
    FREE (probe);
    assert_false (s_submit_cooling (c, 2000, "m"));
    Aigw__Task *t = s_expect_task (w);
    assert_int_equal (t->job_id, 2000);
    assert_false (s_submit_cooling (c, 2001, "m"));  // more than one at a time again
    Aigw__Task *t2 = s_expect_task (w);
    assert_int_equal (t2->job_id, 2001);
    s_result (w, t, "{}");
    s_result (w, t2, "{}");
    FREE (s_expect_result (c));
    FREE (s_expect_result (c));
    FREE (t);
    FREE (t2);
    //  The trips were forgotten: it takes two failures in a row to trip again
    s_job_fails (c, w, 3000, "m", 500);
    assert_false (s_submit_cooling (c, 3001, "m"));
    t = s_expect_task (w);
    s_result (w, t, "{}");
    FREE (s_expect_result (c));
    FREE (t);
    s_stop (&fx);
    const broker_counters_t *k = broker_counters (fx.broker);
    assert_int_equal (k->breaker_trips, 1);
    assert_int_equal (k->attempts_skipped, (uint64_t) skipped + 1);
    assert_int_equal (k->jobs_cooldown, (uint64_t) skipped + 1);
    assert_int_equal (k->jobs_won, 4);
    s_destroy (&fx);
}

//  ---------------------------------------------------------------------------
//  Scale out: instance id, disconnect detection, capacity updates, bounces

//  The next HEARTBEAT the broker sends w: its BrokerBeat's instance.
static uint64_t s_beat_instance (void *w)
{
    wire_msg_t m;
    int64_t until = aclock_now_ms () + WAIT_MS;
    while (aclock_now_ms () < until && s_recv (w, WAIT_MS, &m) == 0) {
        if (m.cmd != WIRE_W_HEARTBEAT) {
            wire_msg_close (&m);
            continue;
        }
        Aigw__BrokerBeat *b = s_decode (&m, WIRE_W_HEARTBEAT, &aigw__broker_beat__descriptor);
        wire_msg_close (&m);
        assert_true (b->has_instance);
        uint64_t id = b->instance;
        FREE (b);
        return id;
    }
    fail_msg ("no HEARTBEAT from the broker");
    return 0;
}

//  PONG, HEARTBEAT and the metrics message carry the broker's instance; another
//  broker has another.
static void test_instance (void **state)
{
    fx_t fx;
    s_start (&fx, 50);
    void *sub = s_sub (&fx);
    void *w = s_dealer (&fx, fx.be);
    void *c = s_dealer (&fx, fx.fe);
    s_ready (w, "w", "m", 1);
    s_wait_workers (c, 1);
    Aigw__BrokerStatus *st = s_ping (c);
    assert_true (st->has_instance);
    uint64_t id = st->instance;
    FREE (st);
    assert_true (id != 0);
    assert_true (s_beat_instance (w) == id);
    msgpack_unpacked up;
    assert_true (s_sub_next (sub, "metrics", 3000, &up));
    char hex[17];
    snprintf (hex, sizeof hex, "%016" PRIx64, id);
    assert_true (s_mp_str_is (&up.data, "instance", hex));
    msgpack_unpacked_destroy (&up);
    s_stop (&fx);
    s_destroy (&fx);

    fx_t fx2;
    s_start (&fx2, 50);
    c = s_dealer (&fx2, fx2.fe);
    st = s_ping (c);
    assert_true (st->has_instance && st->instance != 0);
    assert_true (st->instance != id);
    FREE (st);
    s_stop (&fx2);
    s_destroy (&fx2);
}

//  A worker whose connection closes is lost at once: heartbeat expiry would take 30 s
//  here, so only the disconnect can explain the re-dispatch.
static void test_disconnect_redispatch (void **state)
{
    fx_t fx;
    s_start_full (&fx, 30, 1000, S_BE_TCP, "");
    void *w1 = s_dealer (&fx, fx.be);
    void *c = s_dealer (&fx, fx.fe);
    s_ready (w1, "w1", "m", 4);
    s_wait_workers (c, 1);
    s_submit (c, 1, "m", NULL);
    Aigw__Task *t1 = s_expect_task (w1);
    void *w2 = s_dealer (&fx, fx.be);
    s_ready (w2, "w2", "m", 4);
    s_wait_workers (c, 2);
    s_close (&fx, w1);
    Aigw__Task *t2 = s_expect_task (w2);
    assert_int_equal (t2->job_id, 1);
    assert_int_not_equal (t2->attempt_id, t1->attempt_id);
    s_result (w2, t2, "{}");
    Aigw__Result *r = s_expect_result (c);
    assert_int_equal (r->n_attempts, 2);
    assert_int_equal (r->attempts[0]->outcome, AIGW__OUTCOME__OUTCOME_FAILED);
    assert_int_equal (r->attempts[0]->error, AIGW__ERROR_CODE__ERR_WORKER_LOST);
    assert_non_null (strstr (r->attempts[0]->reason, "connection closed"));
    assert_string_equal (r->attempts[0]->worker, "w1");
    assert_int_equal (r->attempts[1]->outcome, AIGW__OUTCOME__OUTCOME_WON);
    assert_string_equal (r->attempts[1]->worker, "w2");
    assert_true (r->attempts[1]->has_retry_of);
    assert_int_equal (r->attempts[1]->retry_of, t1->attempt_id);
    FREE (r);
    s_wait_workers (c, 1);
    //  A new worker on a new connection (the kernel may give it w1's old fd) is not
    //  mistaken for w1: it stays registered and works
    void *w3 = s_dealer (&fx, fx.be);
    s_ready (w3, "w3", "m", 8);
    s_wait_workers (c, 2);
    s_submit (c, 2, "m", NULL);
    Aigw__Task *t3 = s_expect_task (w3);        // most free credits
    s_result (w3, t3, "{}");
    r = s_expect_result (c);
    assert_int_equal (r->job_id, 2);
    FREE (r);
    FREE (t1);
    FREE (t2);
    FREE (t3);
    s_stop (&fx);
    const broker_counters_t *k = broker_counters (fx.broker);
    assert_int_equal (k->workers_disconnected, 1);
    assert_int_equal (k->workers_lost, 1);
    assert_int_equal (k->attempts_redispatched, 1);
    assert_int_equal (k->workers_joined, 3);
    s_destroy (&fx);
}

static void s_beat_capacity (void *w, uint32_t capacity)
{
    Aigw__WorkerStats ws = AIGW__WORKER_STATS__INIT;
    ws.has_capacity = true;
    ws.capacity = capacity;
    assert_int_equal (wire_send (w, NULL, 0, WIRE_SIDE_WORKER, WIRE_W_HEARTBEAT, &ws.base,
                                 NULL), 0);
}

//  Wait until the broker reports capacity for the only model.
static void s_wait_capacity (void *c, uint32_t capacity)
{
    int64_t until = aclock_now_ms () + WAIT_MS;
    while (aclock_now_ms () < until) {
        Aigw__BrokerStatus *st = s_ping (c);
        bool ok = st->n_models == 1 && st->models[0]->capacity == capacity;
        FREE (st);
        if (ok)
            return;
    }
    fail_msg ("the broker never reported capacity %u", capacity);
}

//  A HEARTBEAT's capacity is the worker's new capacity: 0 holds work back, growing it
//  sends what waits.
static void test_capacity_update (void **state)
{
    fx_t fx;
    s_start (&fx, 50);
    void *w = s_dealer (&fx, fx.be);
    void *c = s_dealer (&fx, fx.fe);
    s_ready (w, "w", "m", 1);
    s_wait_workers (c, 1);
    s_beat_capacity (w, 0);
    s_wait_capacity (c, 0);
    s_submit (c, 1, "m", NULL);
    Aigw__BrokerStatus *st = s_ping (c);          // after the SUBMIT on the same socket
    assert_int_equal (st->models[0]->queued, 1);
    assert_int_equal (st->models[0]->in_flight, 0);
    FREE (st);
    s_beat_capacity (w, 1);
    Aigw__Task *t = s_expect_task (w);
    assert_int_equal (t->job_id, 1);
    s_result (w, t, "{}");
    Aigw__Result *r = s_expect_result (c);
    assert_int_equal (r->job_id, 1);
    FREE (r);
    FREE (t);
    s_stop (&fx);
    const broker_counters_t *k = broker_counters (fx.broker);
    assert_int_equal (k->jobs_won, 1);
    assert_int_equal (k->attempts_started, 1);
    s_destroy (&fx);
}

//  A full worker sends a TASK back (ERR_OVERLOADED): the same attempt goes to another
//  worker; no failure, no re-dispatch used, nothing against the target's health.
static void test_bounce (void **state)
{
    fx_t fx;
    s_start_health (&fx, 1, 60000);                 // one bad verdict would trip "m"
    void *wa = s_dealer (&fx, fx.be);
    void *c = s_dealer (&fx, fx.fe);
    s_ready (wa, "wa", "m", 2);
    s_wait_workers (c, 1);
    s_submit (c, 1, "m", NULL);
    Aigw__Task *ta = s_expect_task (wa);
    void *wb = s_dealer (&fx, fx.be);
    s_ready (wb, "wb", "m", 1);
    s_wait_workers (c, 2);
    s_error (wa, 1, ta->attempt_id, AIGW__ERROR_CODE__ERR_OVERLOADED, "worker full");
    Aigw__Task *tb = s_expect_task (wb);
    assert_int_equal (tb->job_id, 1);
    assert_int_equal (tb->attempt_id, ta->attempt_id);
    s_result (wb, tb, "{}");
    Aigw__Result *r = s_expect_result (c);
    assert_int_equal (r->n_attempts, 1);
    assert_int_equal (r->attempts[0]->outcome, AIGW__OUTCOME__OUTCOME_WON);
    assert_string_equal (r->attempts[0]->worker, "wb");
    FREE (r);
    //  "m" is not cooling: the next job goes out
    s_submit (c, 2, "m", NULL);
    Aigw__Task *t2 = s_expect_task (wa);            // the most free credits
    s_result (wa, t2, "{}");
    r = s_expect_result (c);
    assert_int_equal (r->job_id, 2);
    FREE (r);
    FREE (ta);
    FREE (tb);
    FREE (t2);
    s_stop (&fx);
    const broker_counters_t *k = broker_counters (fx.broker);
    assert_int_equal (k->attempts_bounced, 1);
    assert_int_equal (k->attempts_failed, 0);
    assert_int_equal (k->attempts_redispatched, 0);
    assert_int_equal (k->attempts_started, 2);
    assert_int_equal (k->breaker_trips, 0);
    assert_int_equal (k->jobs_won, 2);
    s_destroy (&fx);
}

//  A worker that keeps sending the same attempt back: it waits in the queue and comes
//  back to it (with the worker's next heartbeat), a few times, then fails ERR_OVERLOADED.
static void test_bounce_limit (void **state)
{
    fx_t fx;
    s_start (&fx, 50);
    void *w = s_dealer (&fx, fx.be);
    void *c = s_dealer (&fx, fx.fe);
    s_ready (w, "w", "m", 1);
    s_wait_workers (c, 1);
    s_submit (c, 1, "m", NULL);
    Aigw__Task *t = s_expect_task (w);
    uint64_t id = t->attempt_id;
    Aigw__Error *e = NULL;
    int bounces = 0;
    while (t) {
        assert_int_equal (t->attempt_id, id);
        s_error (w, 1, id, AIGW__ERROR_CODE__ERR_OVERLOADED, "worker full");
        bounces++;
        FREE (t);
        t = NULL;
        //  Either the TASK comes again or the client hears the job's ERROR
        int64_t until = aclock_now_ms () + WAIT_MS;
        while (!t && !e && aclock_now_ms () < until) {
            wire_msg_t m;
            if (s_worker_recv (w, 50, &m) == 0) {
                t = s_decode (&m, WIRE_W_TASK, &aigw__task__descriptor);
                wire_msg_close (&m);
            }
            else
            if (s_recv (c, 0, &m) == 0) {
                e = fake_peer_decode (&m, WIRE_SIDE_CLIENT, WIRE_C_ERROR, &aigw__error__descriptor);
                wire_msg_close (&m);
                assert_non_null (e);
            }
        }
        assert_true (t || e);
        assert_true (bounces <= 10);
    }
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_OVERLOADED);
    assert_non_null (strstr (e->message, "sent back 4 times"));
    FREE (e);
    s_stop (&fx);
    const broker_counters_t *k = broker_counters (fx.broker);
    assert_int_equal (bounces, 4);                  // BJOBS_BOUNCES_MAX + 1
    assert_int_equal (k->attempts_bounced, 4);
    assert_int_equal (k->attempts_failed, 1);
    assert_int_equal (k->attempts_started, 1);
    assert_int_equal (k->jobs_failed, 1);
    s_destroy (&fx);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_result),
        cmocka_unit_test (test_race_cancels_loser),
        cmocka_unit_test (test_worker_lost_redispatch),
        cmocka_unit_test (test_malformed),
        cmocka_unit_test (test_unavailable_timeout_cancel),
        cmocka_unit_test (test_queue_and_stream),
        cmocka_unit_test (test_hedge_timer),
        cmocka_unit_test (test_shutdown_answers_open_jobs),
        cmocka_unit_test (test_metrics_pub),
        cmocka_unit_test (test_start_hold),
        cmocka_unit_test (test_stream_race),
        cmocka_unit_test (test_stream_winner_error),
        cmocka_unit_test (test_stream_worker_lost),
        cmocka_unit_test (test_ttft_nonstream),
        cmocka_unit_test (test_pipe_full),
        cmocka_unit_test (test_metrics_stream),
        cmocka_unit_test (test_spend_loser),
        cmocka_unit_test (test_spend_before_answer),
        cmocka_unit_test (test_cost_metrics),
        cmocka_unit_test_teardown (test_retry_then_win, s_retries_reset),
        cmocka_unit_test_teardown (test_no_retry_client_error, s_retries_reset),
        cmocka_unit_test_teardown (test_cooldown_skips, s_retries_reset),
        cmocka_unit_test_teardown (test_cooldown_recovers, s_retries_reset),
        cmocka_unit_test (test_instance),
        cmocka_unit_test (test_disconnect_redispatch),
        cmocka_unit_test (test_capacity_update),
        cmocka_unit_test (test_bounce),
        cmocka_unit_test (test_bounce_limit),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
