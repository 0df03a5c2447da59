// Worker event-loop tests: the real loop in a thread against a fake broker ROUTER on
// tcp loopback, with a tiny in-test HTTP/1.1 server standing in for an OpenAI upstream.
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aclock.h"
#include "aigw.pb-c.h"
#include "log.h"
#include "wire.h"
#include "worker.h"

//  ---------------------------------------------------------------- tiny HTTP server
//  Answers by the upstream model named in the request body: up-ok, up-500,
//  up-garbage, up-big (Content-Length too large), up-bigstream (close-delimited),
//  up-stall (never answers), up-partial (headers and part of the body, then nothing). Records connections, closes and the last request.

#define H_CONNS 32
#define H_BUF 65536

typedef struct {
    int fd;
    size_t len;
    bool stalled;
    char buf [H_BUF];
} h_conn_t;

typedef struct {
    int lfd;
    int port;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t lock;
    int accepted;               // connections accepted
    int requests;               // requests parsed
    int stall_closed;           // stalled connections the client closed
    int64_t stall_closed_us;
    char last_body [8192];
    char last_head [4096];
    h_conn_t conns [H_CONNS];
} h_server_t;

static h_server_t s_http;

static void h_send_all (int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send (fd, data, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        data += n;
        len -= (size_t) n;
    }
}

static void h_reply (int fd, int status, const char *body)
{
    char head [256];
    int n = snprintf (head, sizeof head, "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n", status, strlen (body));
    h_send_all (fd, head, (size_t) n);
    h_send_all (fd, body, strlen (body));
}

static void h_big (int fd, bool with_length)
{
    enum { N = 100000 };
    char *body = malloc (N);
    memset (body, 'a', N);
    char head [256];
    int n = with_length
          ? snprintf (head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", N)
          : snprintf (head, sizeof head, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    h_send_all (fd, head, (size_t) n);
    h_send_all (fd, body, N);
    free (body);
}

static const char *H_OK =
    "{\"id\":\"chatcmpl-up\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"up-ok\","
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"hello\"},"
    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,"
    "\"total_tokens\":7}}";

//  Handle one complete request; returns false if the connection must close.
static bool h_handle (h_conn_t *c, const char *head, size_t head_len, const char *body,
                      size_t body_len)
{
    pthread_mutex_lock (&s_http.lock);
    s_http.requests++;
    snprintf (s_http.last_head, sizeof s_http.last_head, "%.*s", (int) head_len, head);
    snprintf (s_http.last_body, sizeof s_http.last_body, "%.*s", (int) body_len, body);
    pthread_mutex_unlock (&s_http.lock);
    char tmp [8192];
    snprintf (tmp, sizeof tmp, "%.*s", (int) body_len, body);
    if (strstr (tmp, "\"up-ok\""))
        h_reply (c->fd, 200, H_OK);
    else
    if (strstr (tmp, "\"up-500\""))
        h_reply (c->fd, 500, "{\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}");
    else
    if (strstr (tmp, "\"up-garbage\""))
        h_reply (c->fd, 200, "<html>not json</html>");
    else
    if (strstr (tmp, "\"up-big\""))
        h_big (c->fd, true);
    else
    if (strstr (tmp, "\"up-bigstream\"")) {
        h_big (c->fd, false);
        return false;
    }
    else
    if (strstr (tmp, "\"up-stall\""))
        c->stalled = true;
    else
    if (strstr (tmp, "\"up-partial\"")) {
        const char *part = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{\"choices\"";
        h_send_all (c->fd, part, strlen (part));
        c->stalled = true;
    }
    else
        h_reply (c->fd, 404, "{\"error\":{\"message\":\"no such model\"}}");
    return true;
}

//  Parse as many whole requests as the buffer holds. False: close the connection.
static bool h_parse (h_conn_t *c)
{
    for (;;) {
        char *end = memmem (c->buf, c->len, "\r\n\r\n", 4);
        if (!end)
            return c->len < H_BUF;
        size_t head_len = (size_t) (end - c->buf) + 4;
        size_t body_len = 0;
        char save = c->buf [head_len - 1];
        c->buf [head_len - 1] = 0;
        char *cl = strcasestr (c->buf, "\r\ncontent-length:");
        if (cl)
            body_len = strtoul (cl + 17, NULL, 10);
        c->buf [head_len - 1] = save;
        if (c->len < head_len + body_len)
            return head_len + body_len <= H_BUF;
        bool keep = h_handle (c, c->buf, head_len, c->buf + head_len, body_len);
        memmove (c->buf, c->buf + head_len + body_len, c->len - head_len - body_len);
        c->len -= head_len + body_len;
        if (!keep)
            return false;
    }
}

static void h_close (h_conn_t *c, bool by_client)
{
    if (by_client && c->stalled) {
        pthread_mutex_lock (&s_http.lock);
        s_http.stall_closed++;
        s_http.stall_closed_us = aclock_now_us ();
        pthread_mutex_unlock (&s_http.lock);
    }
    close (c->fd);
    c->fd = -1;
}

static void h_read (h_conn_t *c)
{
    ssize_t n = recv (c->fd, c->buf + c->len, H_BUF - c->len, 0);
    if (n <= 0) {
        h_close (c, true);
        return;
    }
    c->len += (size_t) n;
    if (!h_parse (c))
        h_close (c, false);
}

static void h_accept (void)
{
    int fd = accept (s_http.lfd, NULL, NULL);
    if (fd < 0)
        return;
    for (int i = 0; i < H_CONNS; i++) {
        if (s_http.conns [i].fd < 0) {
            s_http.conns [i].fd = fd;
            s_http.conns [i].len = 0;
            s_http.conns [i].stalled = false;
            pthread_mutex_lock (&s_http.lock);
            s_http.accepted++;
            pthread_mutex_unlock (&s_http.lock);
            return;
        }
    }
    close (fd);
}

static void *h_main (void *arg)
{
    while (!atomic_load (&s_http.stop)) {
        struct pollfd pfd [H_CONNS + 1];
        int map [H_CONNS + 1];
        int n = 0;
        pfd [n] = (struct pollfd) { .fd = s_http.lfd, .events = POLLIN };
        map [n++] = -1;
        for (int i = 0; i < H_CONNS; i++)
            if (s_http.conns [i].fd >= 0) {
                pfd [n] = (struct pollfd) { .fd = s_http.conns [i].fd, .events = POLLIN };
                map [n++] = i;
            }
        if (poll (pfd, (nfds_t) n, 20) <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            if (!pfd [i].revents)
                continue;
            if (map [i] < 0)
                h_accept ();
            else
                h_read (&s_http.conns [map [i]]);
        }
    }
    for (int i = 0; i < H_CONNS; i++)
        if (s_http.conns [i].fd >= 0)
            close (s_http.conns [i].fd);
    return NULL;
}

static int h_start (void)
{
    memset (&s_http, 0, sizeof s_http);
    for (int i = 0; i < H_CONNS; i++)
        s_http.conns [i].fd = -1;
    pthread_mutex_init (&s_http.lock, NULL);
    s_http.lfd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
    sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (bind (s_http.lfd, (struct sockaddr *) &sa, sizeof sa) || listen (s_http.lfd, 64)
    ||  getsockname (s_http.lfd, (struct sockaddr *) &sa, &len))
        return -1;
    s_http.port = ntohs (sa.sin_port);
    return pthread_create (&s_http.thread, NULL, h_main, NULL);
}

static void h_stop (void)
{
    atomic_store (&s_http.stop, true);
    pthread_join (s_http.thread, NULL);
    close (s_http.lfd);
}

static int h_get (int *field)
{
    pthread_mutex_lock (&s_http.lock);
    int v = *field;
    pthread_mutex_unlock (&s_http.lock);
    return v;
}

//  Wait until *field reaches at least want; returns the value seen.
static int h_wait (int *field, int want, int timeout_ms)
{
    int64_t until = aclock_now_ms () + timeout_ms;
    int v;
    while ((v = h_get (field)) < want && aclock_now_ms () < until)
        usleep (2000);
    return v;
}

//  ---------------------------------------------------------------- fake broker

typedef struct {
    void *ctx;
    void *router;
    char endpoint [64];
    uint8_t wid [WIRE_ID_MAX];  // routing id of the worker's current socket
    size_t wid_len;
} b_broker_t;

static int b_bind (b_broker_t *b, const char *endpoint)
{
    b->router = zmq_socket (b->ctx, ZMQ_ROUTER);
    wire_setup_socket (b->router, true, 8 * 1024 * 1024);
    //  A re-bind right after close may race the old listener's teardown
    for (int i = 0; i < 100; i++) {
        if (zmq_bind (b->router, endpoint) == 0)
            break;
        usleep (10000);
        if (i == 99)
            return -1;
    }
    size_t len = sizeof b->endpoint;
    return zmq_getsockopt (b->router, ZMQ_LAST_ENDPOINT, b->endpoint, &len);
}

//  Next message of any command within timeout_ms. 0, or -1 on timeout.
static int b_recv_any (b_broker_t *b, int timeout_ms, wire_msg_t *m)
{
    int64_t until = aclock_now_ms () + timeout_ms;
    for (;;) {
        int rc = wire_recv (b->router, true, m);
        if (rc == 0) {
            memcpy (b->wid, m->id, m->id_len);
            b->wid_len = m->id_len;
            return 0;
        }
        assert_int_not_equal (rc, -2);
        int64_t left = until - aclock_now_ms ();
        if (left <= 0)
            return -1;
        zmq_pollitem_t item = { b->router, 0, ZMQ_POLLIN, 0 };
        zmq_poll (&item, 1, (long) left);
    }
}

//  Next message that is not a HEARTBEAT.
static int b_recv (b_broker_t *b, int timeout_ms, wire_msg_t *m)
{
    int64_t until = aclock_now_ms () + timeout_ms;
    for (;;) {
        int64_t left = until - aclock_now_ms ();
        if (b_recv_any (b, left > 0 ? (int) left : 0, m))
            return -1;
        if (m->cmd != WIRE_W_HEARTBEAT)
            return 0;
        wire_msg_close (m);
    }
}

static void b_send_task (b_broker_t *b, uint64_t attempt, const char *target, const char *payload,
                         uint32_t deadline_ms)
{
    Aigw__Task t = AIGW__TASK__INIT;
    t.job_id = attempt + 1000;
    t.attempt_id = attempt;
    t.target = (char *) target;
    t.has_deadline_ms = deadline_ms > 0;
    t.deadline_ms = deadline_ms;
    assert_int_equal (wire_send_bytes (b->router, b->wid, b->wid_len, WIRE_SIDE_WORKER, WIRE_W_TASK,
                                       &t.base, payload, payload ? strlen (payload) : 0), 0);
}

static void b_send_cancel (b_broker_t *b, uint64_t attempt)
{
    Aigw__AttemptRef r = AIGW__ATTEMPT_REF__INIT;
    r.attempt_id = attempt;
    assert_int_equal (wire_send (b->router, b->wid, b->wid_len, WIRE_SIDE_WORKER, WIRE_W_CANCEL,
                                 &r.base, NULL), 0);
}

static void b_send_cmd (b_broker_t *b, uint8_t cmd)
{
    assert_int_equal (wire_send (b->router, b->wid, b->wid_len, WIRE_SIDE_WORKER, cmd, NULL, NULL), 0);
}

//  Expect an ERROR for attempt; returns its code, copies the message.
static int b_expect_error (b_broker_t *b, uint64_t attempt, int timeout_ms, char *msg, size_t msglen,
                           uint32_t *status)
{
    wire_msg_t m;
    assert_int_equal (b_recv (b, timeout_ms, &m), 0);
    if (m.cmd != WIRE_W_ERROR)
        fail_msg ("expected ERROR, got %s", wire_cmd_name (WIRE_SIDE_WORKER, m.cmd));
    Aigw__Error *e = (Aigw__Error *) wire_unpack (&aigw__error__descriptor, &m.body);
    assert_non_null (e);
    assert_int_equal (e->attempt_id, attempt);
    assert_int_equal (e->job_id, attempt + 1000);
    int code = e->code;
    if (msg)
        snprintf (msg, msglen, "%s", e->message ? e->message : "");
    if (status)
        *status = e->has_upstream_status ? e->upstream_status : 0;
    protobuf_c_message_free_unpacked (&e->base, NULL);
    wire_msg_close (&m);
    return code;
}

//  Expect a RESULT for attempt; returns the unpacked Result (caller frees).
static Aigw__Result *b_expect_result (b_broker_t *b, uint64_t attempt, int timeout_ms)
{
    wire_msg_t m;
    assert_int_equal (b_recv (b, timeout_ms, &m), 0);
    if (m.cmd == WIRE_W_ERROR) {
        Aigw__Error *e = (Aigw__Error *) wire_unpack (&aigw__error__descriptor, &m.body);
        fail_msg ("expected RESULT, got ERROR %d: %s", e ? (int) e->code : -1, e ? e->message : "?");
    }
    assert_int_equal (m.cmd, WIRE_W_RESULT);
    Aigw__Result *r = (Aigw__Result *) wire_unpack (&aigw__result__descriptor, &m.body);
    assert_non_null (r);
    assert_int_equal (r->attempt_id, attempt);
    assert_int_equal (r->job_id, attempt + 1000);
    wire_msg_close (&m);
    return r;
}

//  ---------------------------------------------------------------- fixture

typedef struct {
    b_broker_t b;
    cfg_t *cfg;
    worker_t *w;
    pthread_t thread;
    int rc;
    worker_stats_t stats;       // filled by s_stop_worker
} fix_t;

static const char *REQ = "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"say hi please\"}],"
                         "\"stream\":true,\"tools\":[{\"type\":\"function\"}]}";

static void *s_worker_thread (void *arg)
{
    fix_t *f = arg;
    f->rc = worker_run (f->w);
    return NULL;
}

static void s_start_worker (fix_t *f, uint32_t capacity)
{
    char text [4096];
    int p = s_http.port;
    snprintf (text, sizeof text,
        "broker\n    heartbeat_ms = 100\n    liveness = 3\n"
        "worker\n    capacity = 2\n"
        "models\n"
        "    sim-fast\n        provider = sim\n        latency_ms = 5\n        jitter = 0.3\n"
        "    sim-slow\n        provider = sim\n        latency_ms = 60000\n"
        "    sim-fail\n        provider = sim\n        latency_ms = 1\n        fail_rate = 1\n"
        "    later\n        provider = anthropic\n        base_url = http://127.0.0.1:1\n"
        "    oa-ok\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1/\n"
        "        upstream_model = up-ok\n        api_key_env = AIGW_TEST_WORKER_KEY\n"
        "    oa-500\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-500\n"
        "    oa-garbage\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-garbage\n"
        "    oa-big\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-big\n        max_response_bytes = 1024\n"
        "    oa-bigstream\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-bigstream\n        max_response_bytes = 1024\n"
        "    oa-stall\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-stall\n"
        "    oa-partial\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-partial\n"
        "    oa-nokey\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        api_key_env = AIGW_TEST_WORKER_UNSET\n"
        "    oa-refused\n        provider = openai\n        base_url = http://127.0.0.1:1/v1\n",
        p, p, p, p, p, p, p, p);
    char err [512];
    f->cfg = cfg_parse (text, "test", err, sizeof err);
    if (!f->cfg)
        fail_msg ("%s", err);
    worker_opts_t opts = { .id = "test-worker", .broker = f->b.endpoint, .capacity = capacity };
    f->w = worker_new (f->cfg, &opts, err, sizeof err);
    if (!f->w)
        fail_msg ("%s", err);
    assert_int_equal (pthread_create (&f->thread, NULL, s_worker_thread, f), 0);
}

static void s_stop_worker (fix_t *f)
{
    if (!f->w)
        return;
    worker_stop (f->w);
    pthread_join (f->thread, NULL);
    worker_stats (f->w, &f->stats);
    worker_destroy (&f->w);
    cfg_destroy (&f->cfg);
}

static int s_setup (void **state)
{
    fix_t *f = calloc (1, sizeof *f);
    f->b.ctx = zmq_ctx_new ();
    if (b_bind (&f->b, "tcp://127.0.0.1:*"))
        return -1;
    *state = f;
    return 0;
}

static int s_teardown (void **state)
{
    fix_t *f = *state;
    s_stop_worker (f);
    if (f->b.router)
        zmq_close (f->b.router);
    zmq_ctx_term (f->b.ctx);
    free (f);
    return 0;
}

//  Start a worker and consume its READY.
static void s_ready (fix_t *f, uint32_t capacity)
{
    s_start_worker (f, capacity);
    wire_msg_t m;
    assert_int_equal (b_recv (&f->b, 2000, &m), 0);
    assert_int_equal (m.cmd, WIRE_W_READY);
    wire_msg_close (&m);
}

//  ---------------------------------------------------------------- tests

static void test_ready_then_result (void **state)
{
    fix_t *f = *state;
    s_start_worker (f, 0);
    wire_msg_t m;
    assert_int_equal (b_recv (&f->b, 2000, &m), 0);
    assert_int_equal (m.cmd, WIRE_W_READY);
    Aigw__WorkerHello *h = (Aigw__WorkerHello *) wire_unpack (&aigw__worker_hello__descriptor, &m.body);
    assert_non_null (h);
    assert_string_equal (h->worker_id, "test-worker");
    assert_int_equal (h->capacity, 2);      // from worker/capacity
    assert_int_equal (h->n_models, 13);
    assert_string_equal (h->models [0], "sim-fast");
    assert_true (h->has_pid && h->pid == (uint32_t) getpid ());
    assert_non_null (strstr (h->version, "aigw-worker"));
    protobuf_c_message_free_unpacked (&h->base, NULL);
    wire_msg_close (&m);

    b_send_task (&f->b, 1, "sim-fast", REQ, 0);
    Aigw__Result *r = b_expect_result (&f->b, 1, 2000);
    assert_string_equal (r->model, "sim-fast");
    assert_non_null (r->usage);
    assert_int_equal (r->usage->prompt_tokens, 3);
    cJSON *root = cJSON_ParseWithLength ((const char *) r->response_json.data, r->response_json.len);
    assert_non_null (root);
    assert_string_equal (cJSON_GetStringValue (cJSON_GetObjectItem (root, "model")), "sim-fast");
    assert_int_equal (cJSON_GetArraySize (cJSON_GetObjectItem (root, "choices")), 1);
    cJSON_Delete (root);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    //  A clean stop says DISCONNECT
    s_stop_worker (f);
    assert_int_equal (f->rc, 0);
    assert_int_equal (b_recv (&f->b, 1000, &m), 0);
    assert_int_equal (m.cmd, WIRE_W_DISCONNECT);
    wire_msg_close (&m);
}

static void test_refusals_and_failures (void **state)
{
    fix_t *f = *state;
    s_ready (f, 0);
    char msg [512];
    b_send_task (&f->b, 2, "no-such-model", REQ, 0);
    assert_int_equal (b_expect_error (&f->b, 2, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_UNKNOWN_MODEL);
    b_send_task (&f->b, 3, "later", REQ, 0);
    assert_int_equal (b_expect_error (&f->b, 3, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_string_equal (msg, "provider anthropic not implemented yet");
    b_send_task (&f->b, 4, "sim-fail", REQ, 0);
    assert_int_equal (b_expect_error (&f->b, 4, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_string_equal (msg, "sim: injected failure");
    b_send_task (&f->b, 5, "sim-fast", NULL, 0);
    assert_int_equal (b_expect_error (&f->b, 5, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_BAD_REQUEST);
    b_send_task (&f->b, 6, "sim-fast", "not json", 0);
    assert_int_equal (b_expect_error (&f->b, 6, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_BAD_REQUEST);
    //  Malformed messages and an unknown CANCEL are dropped; the worker goes on
    zmq_send (f->b.router, f->b.wid, f->b.wid_len, ZMQ_SNDMORE);
    zmq_send (f->b.router, "BOGUS!", 6, 0);
    wire_send_bytes (f->b.router, f->b.wid, f->b.wid_len, WIRE_SIDE_WORKER, WIRE_W_TASK, NULL,
                     "\xff\xff", 2);
    wire_send (f->b.router, f->b.wid, f->b.wid_len, WIRE_SIDE_WORKER, WIRE_W_RESULT, NULL, NULL);
    b_send_cancel (&f->b, 999);
    b_send_task (&f->b, 7, "sim-fast", REQ, 0);
    Aigw__Result *r = b_expect_result (&f->b, 7, 2000);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    s_stop_worker (f);
    assert_int_equal (f->stats.malformed, 3);
    assert_int_equal (f->stats.unknown_cancels, 1);
    assert_int_equal (f->stats.rejected, 2);
    assert_int_equal (f->stats.completed, 1);
    assert_int_equal (f->rc, 0);
}

static void test_cancel_frees_slot (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    char msg [512];
    b_send_task (&f->b, 10, "sim-slow", REQ, 0);
    b_send_task (&f->b, 11, "sim-slow", REQ, 0);
    b_send_task (&f->b, 12, "sim-fast", REQ, 0);
    assert_int_equal (b_expect_error (&f->b, 12, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_OVERLOADED);
    int64_t t0 = aclock_now_us ();
    b_send_cancel (&f->b, 10);
    assert_int_equal (b_expect_error (&f->b, 10, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_CANCELLED);
    assert_true (aclock_now_us () - t0 < 500000);
    //  The slot is free: a new attempt runs
    b_send_task (&f->b, 13, "sim-fast", REQ, 0);
    Aigw__Result *r = b_expect_result (&f->b, 13, 2000);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    //  A second CANCEL for the same attempt is unknown now
    b_send_cancel (&f->b, 10);
    b_send_cancel (&f->b, 11);
    assert_int_equal (b_expect_error (&f->b, 11, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_CANCELLED);
    s_stop_worker (f);
    assert_int_equal (f->stats.cancelled, 2);
    assert_int_equal (f->stats.unknown_cancels, 1);
}

static void test_heartbeats_flow (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    b_send_task (&f->b, 20, "sim-slow", REQ, 0);
    int beats = 0;
    uint32_t in_flight = 99;
    int64_t until = aclock_now_ms () + 650;
    while (aclock_now_ms () < until) {
        wire_msg_t m;
        if (b_recv_any (&f->b, 50, &m))
            continue;
        if (m.cmd == WIRE_W_HEARTBEAT) {
            Aigw__WorkerStats *s = (Aigw__WorkerStats *)
                wire_unpack (&aigw__worker_stats__descriptor, &m.body);
            assert_non_null (s);
            assert_int_equal (s->capacity, 2);
            in_flight = s->in_flight;
            protobuf_c_message_free_unpacked (&s->base, NULL);
            beats++;
            b_send_cmd (&f->b, WIRE_W_HEARTBEAT);     // keep the worker's liveness up
        }
        wire_msg_close (&m);
    }
    assert_in_range (beats, 3, 10);
    assert_int_equal (in_flight, 1);
    s_stop_worker (f);
    assert_int_equal (f->stats.connects, 1);        // no reconnect while the broker talks
}

static void test_deadline_ends_sim_attempt (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    char msg [512];
    int64_t t0 = aclock_now_ms ();
    b_send_task (&f->b, 30, "sim-slow", REQ, 50);
    assert_int_equal (b_expect_error (&f->b, 30, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_TIMEOUT);
    int64_t took = aclock_now_ms () - t0;
    assert_in_range (took, 45, 500);
}

static void test_disconnect_reconnects (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    uint8_t old_id [WIRE_ID_MAX];
    size_t old_len = f->b.wid_len;
    memcpy (old_id, f->b.wid, old_len);
    b_send_cmd (&f->b, WIRE_W_HEARTBEAT);
    b_send_task (&f->b, 40, "sim-slow", REQ, 0);
    usleep (50000);
    int64_t t0 = aclock_now_ms ();
    b_send_cmd (&f->b, WIRE_W_DISCONNECT);
    wire_msg_t m;
    assert_int_equal (b_recv (&f->b, 1000, &m), 0);
    assert_int_equal (m.cmd, WIRE_W_READY);
    wire_msg_close (&m);
    assert_true (aclock_now_ms () - t0 < 800);      // the broker was talking: no back-off
    assert_false (f->b.wid_len == old_len && memcmp (f->b.wid, old_id, old_len) == 0);
    s_stop_worker (f);
    assert_int_equal (f->stats.orphaned, 1);
    assert_int_equal (f->stats.connects, 2);
}

static void test_broker_restart_heals (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    b_send_task (&f->b, 50, "sim-slow", REQ, 0);
    usleep (20000);
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "%s", f->b.endpoint);
    zmq_close (f->b.router);
    assert_int_equal (b_bind (&f->b, endpoint), 0);
    //  Silence is noticed after 3 x 100 ms, then a 1 s back-off, then READY
    wire_msg_t m;
    int64_t t0 = aclock_now_ms ();
    assert_int_equal (b_recv (&f->b, 5000, &m), 0);
    assert_int_equal (m.cmd, WIRE_W_READY);
    wire_msg_close (&m);
    int64_t took = aclock_now_ms () - t0;
    assert_in_range (took, 900, 4000);
    b_send_task (&f->b, 51, "sim-fast", REQ, 0);
    Aigw__Result *r = b_expect_result (&f->b, 51, 2000);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    s_stop_worker (f);
    assert_int_equal (f->stats.orphaned, 1);
    assert_true (f->stats.connects >= 2);
}

static void test_burst_no_missed_messages (void **state)
{
    enum { N = 600 };
    fix_t *f = *state;
    s_ready (f, 1000);
    static bool seen [N];
    memset (seen, 0, sizeof seen);
    int got = 0;
    for (int burst = 0; burst < 12; burst++) {
        for (int i = 0; i < N / 12; i++)
            b_send_task (&f->b, 100 + burst * (N / 12) + i, "sim-fast", REQ, 0);
        usleep (burst % 3 ? 1000 : 7000);
    }
    int64_t until = aclock_now_ms () + 5000;
    while (got < N && aclock_now_ms () < until) {
        wire_msg_t m;
        if (b_recv (&f->b, 100, &m))
            continue;
        assert_int_equal (m.cmd, WIRE_W_RESULT);
        Aigw__Result *r = (Aigw__Result *) wire_unpack (&aigw__result__descriptor, &m.body);
        assert_non_null (r);
        assert_in_range (r->attempt_id, 100, 100 + N - 1);
        assert_false (seen [r->attempt_id - 100]);
        seen [r->attempt_id - 100] = true;
        got++;
        protobuf_c_message_free_unpacked (&r->base, NULL);
        wire_msg_close (&m);
    }
    assert_int_equal (got, N);
}

static void test_idle_does_not_spin (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    int64_t until = aclock_now_ms () + 1000;
    while (aclock_now_ms () < until) {
        wire_msg_t m;
        if (b_recv_any (&f->b, 100, &m) == 0)
            wire_msg_close (&m);
        b_send_cmd (&f->b, WIRE_W_HEARTBEAT);
    }
    s_stop_worker (f);
    print_message ("idle 1 s: %" PRIu64 " loop wake-ups, %" PRIu64 " heartbeats sent\n",
                   f->stats.loops, f->stats.heartbeats);
    //  About one wake-up per heartbeat sent or received (~20/s); a spinning loop does 1e5+
    assert_true (f->stats.loops < 200);
    assert_true (f->stats.heartbeats >= 8);
}

//  ---- openai through the tiny server

static void test_openai_result_and_reuse (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    int accepted0 = h_get (&s_http.accepted);
    b_send_task (&f->b, 60, "oa-ok", REQ, 0);
    Aigw__Result *r = b_expect_result (&f->b, 60, 2000);
    assert_string_equal (r->model, "oa-ok");
    assert_int_equal (r->response_json.len, strlen (H_OK));
    assert_memory_equal (r->response_json.data, H_OK, strlen (H_OK));
    assert_non_null (r->usage);
    assert_int_equal (r->usage->prompt_tokens, 5);
    assert_int_equal (r->usage->completion_tokens, 2);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    pthread_mutex_lock (&s_http.lock);
    assert_non_null (strstr (s_http.last_head, "POST /v1/chat/completions HTTP/1.1"));
    assert_non_null (strcasestr (s_http.last_head, "Authorization: Bearer sekrit-test-key"));
    assert_non_null (strcasestr (s_http.last_head, "Content-Type: application/json"));
    assert_null (strcasestr (s_http.last_head, "Expect:"));
    assert_non_null (strstr (s_http.last_body, "\"model\":\"up-ok\""));
    assert_non_null (strstr (s_http.last_body, "\"stream\":false"));
    assert_non_null (strstr (s_http.last_body, "\"tools\":[{\"type\":\"function\"}]"));
    pthread_mutex_unlock (&s_http.lock);
    //  A second call reuses the kept-alive connection
    b_send_task (&f->b, 61, "oa-ok", REQ, 0);
    r = b_expect_result (&f->b, 61, 2000);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    assert_int_equal (h_get (&s_http.accepted) - accepted0, 1);
}

static void test_openai_errors (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    char msg [512];
    uint32_t status = 0;
    b_send_task (&f->b, 70, "oa-500", REQ, 0);
    assert_int_equal (b_expect_error (&f->b, 70, 2000, msg, sizeof msg, &status),
                      AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_string_equal (msg, "upstream HTTP 500: boom");
    assert_int_equal (status, 500);
    b_send_task (&f->b, 71, "oa-garbage", REQ, 0);
    assert_int_equal (b_expect_error (&f->b, 71, 2000, msg, sizeof msg, &status),
                      AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_non_null (strstr (msg, "upstream returned malformed JSON"));
    b_send_task (&f->b, 72, "oa-big", REQ, 0);
    assert_int_equal (b_expect_error (&f->b, 72, 2000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_string_equal (msg, "upstream response larger than 1024 bytes");
    b_send_task (&f->b, 73, "oa-bigstream", REQ, 0);
    assert_int_equal (b_expect_error (&f->b, 73, 2000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_string_equal (msg, "upstream response larger than 1024 bytes");
    int requests0 = h_get (&s_http.requests);
    b_send_task (&f->b, 74, "oa-nokey", REQ, 0);
    assert_int_equal (b_expect_error (&f->b, 74, 2000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_string_equal (msg, "API key env var AIGW_TEST_WORKER_UNSET is not set");
    assert_int_equal (h_get (&s_http.requests), requests0);
    b_send_task (&f->b, 75, "oa-refused", REQ, 0);
    assert_int_equal (b_expect_error (&f->b, 75, 2000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_non_null (strstr (msg, "Couldn't connect to server"));
    b_send_task (&f->b, 76, "oa-stall", REQ, 150);
    assert_int_equal (b_expect_error (&f->b, 76, 2000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_TIMEOUT);
    assert_non_null (strstr (msg, "Timeout was reached"));
}

//  CANCEL of a transfer waiting for its response, and of one with a partial
//  response, closes the upstream connection at once.
static void s_cancel_and_watch (fix_t *f, uint64_t attempt, const char *model)
{
    char msg [512];
    int requests0 = h_get (&s_http.requests);
    int closed0 = h_get (&s_http.stall_closed);
    b_send_task (&f->b, attempt, model, REQ, 0);
    assert_int_equal (h_wait (&s_http.requests, requests0 + 1, 2000), requests0 + 1);
    usleep (30000);
    assert_int_equal (h_get (&s_http.stall_closed), closed0);
    int64_t t0 = aclock_now_us ();
    b_send_cancel (&f->b, attempt);
    assert_int_equal (b_expect_error (&f->b, attempt, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_CANCELLED);
    assert_int_equal (h_wait (&s_http.stall_closed, closed0 + 1, 1000), closed0 + 1);
    pthread_mutex_lock (&s_http.lock);
    int64_t gap = s_http.stall_closed_us - t0;
    pthread_mutex_unlock (&s_http.lock);
    assert_true (gap < 500000);
}

static void test_openai_cancel_closes_connection (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    s_cancel_and_watch (f, 80, "oa-stall");
    s_cancel_and_watch (f, 81, "oa-partial");
    //  The worker goes on serving on a fresh connection
    b_send_task (&f->b, 82, "oa-ok", REQ, 0);
    Aigw__Result *r = b_expect_result (&f->b, 82, 2000);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    s_stop_worker (f);
    assert_int_equal (f->stats.cancelled, 2);
}

static void test_bad_options (void **state)
{
    char err [512];
    cfg_t *cfg = cfg_parse ("models\n    a\n        provider = sim\n", "t", err, sizeof err);
    assert_non_null (cfg);
    worker_opts_t opts = { .models = "a, nope" };
    assert_null (worker_new (cfg, &opts, err, sizeof err));
    assert_non_null (strstr (err, "nope"));
    opts.models = "a,a";
    worker_t *w = worker_new (cfg, &opts, err, sizeof err);
    assert_non_null (w);
    worker_destroy (&w);
    worker_destroy (&w);
    cfg_destroy (&cfg);
    cfg_t *empty = cfg_defaults ();
    assert_null (worker_new (empty, NULL, err, sizeof err));
    cfg_destroy (&empty);
}

static int s_group_setup (void **state)
{
    setenv ("AIGW_TEST_WORKER_KEY", "sekrit-test-key", 1);
    unsetenv ("AIGW_TEST_WORKER_UNSET");
    log_init ("worker-test", getenv ("AIGW_TEST_VERBOSE") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
    return h_start ();
}

static int s_group_teardown (void **state)
{
    h_stop ();
    return 0;
}

int main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_ready_then_result, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_refusals_and_failures, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_cancel_frees_slot, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_heartbeats_flow, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_deadline_ends_sim_attempt, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_disconnect_reconnects, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_broker_restart_heals, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_burst_no_missed_messages, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_idle_does_not_spin, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_openai_result_and_reuse, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_openai_errors, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_openai_cancel_closes_connection, s_setup, s_teardown),
        cmocka_unit_test (test_bad_options),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
