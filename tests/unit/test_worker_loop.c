// Worker event-loop tests: the real loop in a thread against a fake broker ROUTER on
// tcp loopback, with a tiny in-test HTTP/1.1 server standing in for OpenAI, Anthropic and
// Ollama upstreams (whole and streamed replies, cut and stalled streams).
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
//  up-stall (never answers), up-partial (headers and part of the body, then
//  nothing), up-nousage (a reply without usage); streams: up-sse (OpenAI SSE in pieces split mid-line), up-sse-cut,
//  up-sse-stall, up-sse-err, up-429; up-anth (Anthropic), up-olla (Ollama); error
//  statuses: up-e400, up-e401, up-e429 (Retry-After: 3), up-e503 (a date in the past),
//  up-anth-429 (Anthropic rate_limit_error).
//  Records connections, closes and the last request.

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

//  A whole reply; extra: more header lines ("Name: value\r\n"...), or "".
static void h_reply_ex (int fd, int status, const char *extra, const char *body)
{
    char head [512];
    int n = snprintf (head, sizeof head, "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                      "%sContent-Length: %zu\r\n\r\n", status, extra, strlen (body));
    h_send_all (fd, head, (size_t) n);
    h_send_all (fd, body, strlen (body));
}

static void h_reply (int fd, int status, const char *body)
{
    h_reply_ex (fd, status, "", body);
}

//  Error statuses with the providers' error bodies. false if the model is not one.
static bool h_error_status (int fd, const char *tmp)
{
    if (strstr (tmp, "\"up-e400\""))
        h_reply (fd, 400, "{\"error\":{\"message\":\"too long\",\"type\":\"invalid_request_error\","
                          "\"code\":\"context_length_exceeded\"}}");
    else
    if (strstr (tmp, "\"up-e401\""))
        h_reply_ex (fd, 401, "Retry-After: 5\r\n", "{\"error\":{\"message\":\"Incorrect API key\","
                    "\"type\":\"invalid_request_error\",\"code\":\"invalid_api_key\"}}");
    else
    if (strstr (tmp, "\"up-e429\""))
        h_reply_ex (fd, 429, "retry-after: 3\r\n", "{\"error\":{\"message\":\"Rate limit reached\","
                    "\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}");
    else
    if (strstr (tmp, "\"up-e503\""))
        h_reply_ex (fd, 503, "Retry-After: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
                    "{\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\",\"code\":null}}");
    else
    if (strstr (tmp, "\"up-anth-429\""))
        h_reply_ex (fd, 429, "Retry-After: 1.5\r\nretry-after-ms: 250\r\n",
                    "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\","
                    "\"message\":\"Number of request tokens has exceeded your rate limit\"}}");
    else
        return false;
    return true;
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

static const char *H_NOUSAGE =
    "{\"id\":\"chatcmpl-up\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"up-ok\","
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"hello\"},"
    "\"finish_reason\":\"stop\"}]}";

static void h_stream_head (int fd, const char *ctype)
{
    char head [256];
    int n = snprintf (head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n", ctype);
    h_send_all (fd, head, (size_t) n);
}

//  One HTTP/1.1 chunk, sent on its own after a short pause so it is read alone.
static void h_piece (int fd, const char *text)
{
    usleep (3000);
    char head [32];
    int n = snprintf (head, sizeof head, "%zx\r\n", strlen (text));
    h_send_all (fd, head, (size_t) n);
    h_send_all (fd, text, strlen (text));
    h_send_all (fd, "\r\n", 2);
}

static void h_stream_end (int fd)
{
    h_send_all (fd, "0\r\n\r\n", 5);
}

#define H_PRE "{\"id\":\"chatcmpl-s\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up-sse\"," \
              "\"choices\":[{\"index\":0,\"delta\":"
#define H_C_HELLO H_PRE "{\"content\":\"Hello\"},\"finish_reason\":null}]}"
#define H_C_WORLD H_PRE "{\"content\":\" world\"},\"finish_reason\":null}]}"
#define H_C_TOOL H_PRE "{\"tool_calls\":[{\"index\":0,\"id\":\"call_7\",\"type\":\"function\"," \
                 "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},\"finish_reason\":null}]}"
#define H_C_FINISH H_PRE "{},\"finish_reason\":\"tool_calls\"}]}"

//  OpenAI stream in pieces; a piece boundary falls inside the first content line.
static void h_sse (int fd)
{
    h_stream_head (fd, "text/event-stream");
    h_piece (fd, "data: " H_PRE "{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}"
                 "\n\ndata: {\"id\":\"chatcmpl-s\",\"object\":\"chat.completion.chunk\",\"crea");
    h_piece (fd, "ted\":1,\"model\":\"up-sse\",\"choices\":[{\"index\":0,\"delta\":"
                 "{\"content\":\"Hello\"},\"finish_reason\":null}]}\r\n\r\n: ping\r\n\r\n");
    h_piece (fd, "data: " H_C_WORLD "\n\n");
    h_piece (fd, "data: " H_C_TOOL "\n\ndata: " H_C_FINISH "\n\n");
    h_piece (fd, "data: {\"id\":\"chatcmpl-s\",\"choices\":[],\"usage\":{\"prompt_tokens\":4,"
                 "\"completion_tokens\":2,\"total_tokens\":6}}\n\ndata: [DONE]\n\n");
    h_stream_end (fd);
}

static const char *H_ANTH_FULL =
    "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"up-anth\","
    "\"content\":[{\"type\":\"text\",\"text\":\"Hi from claude\"}],\"stop_reason\":\"max_tokens\","
    "\"usage\":{\"input_tokens\":9,\"output_tokens\":3}}";

static void h_anthropic (int fd, bool stream)
{
    if (!stream) {
        h_reply (fd, 200, H_ANTH_FULL);
        return;
    }
    h_stream_head (fd, "text/event-stream");
    h_piece (fd, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_2\","
                 "\"model\":\"up-anth\",\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n"
                 "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
                 "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\n");
    h_piece (fd, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
                 "\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n");
    h_piece (fd, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
                 "\"delta\":{\"type\":\"text_delta\",\"text\":\" there\"}}\n\n"
                 "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n");
    h_piece (fd, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
                 "\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n"
                 "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    h_stream_end (fd);
}

static void h_ollama (int fd, bool stream)
{
    const char *done = "{\"model\":\"up-olla\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},"
                       "\"done_reason\":\"stop\",\"done\":true,\"prompt_eval_count\":7,\"eval_count\":2}\n";
    if (!stream) {
        h_reply (fd, 200, "{\"model\":\"up-olla\",\"message\":{\"role\":\"assistant\",\"content\":"
                          "\"Hi llama\"},\"done_reason\":\"stop\",\"done\":true,\"prompt_eval_count\":7,"
                          "\"eval_count\":2}");
        return;
    }
    h_stream_head (fd, "application/x-ndjson");
    h_piece (fd, "{\"model\":\"up-olla\",\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"do");
    h_piece (fd, "ne\":false}\n{\"model\":\"up-olla\",\"message\":{\"role\":\"assistant\",\"content\":"
                 "\" llama\"},\"done\":false}\n");
    h_piece (fd, done);
    h_stream_end (fd);
}

//  Streamed replies that go wrong. Returns false if the connection must close.
static bool h_sse_bad (h_conn_t *c, const char *tmp)
{
    if (strstr (tmp, "\"up-429\"")) {
        h_reply (c->fd, 429, "{\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit\"}}");
        return true;
    }
    h_stream_head (c->fd, "text/event-stream");
    if (strstr (tmp, "\"up-sse-err\"")) {
        h_piece (c->fd, "data: {\"error\":{\"message\":\"model overloaded\"}}\n\n");
        h_stream_end (c->fd);
        return true;
    }
    h_piece (c->fd, "data: " H_C_HELLO "\n\n");
    if (strstr (tmp, "\"up-sse-nofin\"")) {
        h_piece (c->fd, "data: " H_C_FINISH "\n\ndata: [DONE]\n\n");
        c->stalled = true;      // the chunked body never ends
        return true;
    }
    if (strstr (tmp, "\"up-sse-stall\"")) {
        c->stalled = true;
        return true;
    }
    h_piece (c->fd, "data: " H_C_WORLD "\n\n");
    return false;               // up-sse-cut: close with no terminator
}

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
    if (h_error_status (c->fd, tmp))
        return true;
    if (strstr (tmp, "\"up-ok\""))
        h_reply (c->fd, 200, H_OK);
    else
    if (strstr (tmp, "\"up-nousage\""))
        h_reply (c->fd, 200, H_NOUSAGE);
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
    if (strstr (tmp, "\"up-sse\""))
        h_sse (c->fd);
    else
    if (strstr (tmp, "\"up-sse-") || strstr (tmp, "\"up-429\""))
        return h_sse_bad (c, tmp);
    else
    if (strstr (tmp, "\"up-anth\""))
        h_anthropic (c->fd, strstr (tmp, "\"stream\":true") != NULL);
    else
    if (strstr (tmp, "\"up-olla\""))
        h_ollama (c->fd, strstr (tmp, "\"stream\":true") != NULL);
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

static void b_send_task_ex (b_broker_t *b, uint64_t attempt, const char *target,
                            const char *payload, uint32_t deadline_ms, bool stream)
{
    Aigw__Task t = AIGW__TASK__INIT;
    t.has_stream = stream;
    t.stream = stream;
    t.job_id = attempt + 1000;
    t.attempt_id = attempt;
    t.target = (char *) target;
    t.has_deadline_ms = deadline_ms > 0;
    t.deadline_ms = deadline_ms;
    assert_int_equal (wire_send_bytes (b->router, b->wid, b->wid_len, WIRE_SIDE_WORKER, WIRE_W_TASK,
                                       &t.base, payload, payload ? strlen (payload) : 0), 0);
}

static void b_send_task (b_broker_t *b, uint64_t attempt, const char *target, const char *payload,
                         uint32_t deadline_ms)
{
    b_send_task_ex (b, attempt, target, payload, deadline_ms, false);
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

//  Expect an ERROR for attempt; returns it unpacked (caller frees).
static Aigw__Error *b_expect_error_msg (b_broker_t *b, uint64_t attempt, int timeout_ms)
{
    wire_msg_t m;
    assert_int_equal (b_recv (b, timeout_ms, &m), 0);
    if (m.cmd != WIRE_W_ERROR)
        fail_msg ("expected ERROR, got %s", wire_cmd_name (WIRE_SIDE_WORKER, m.cmd));
    Aigw__Error *e = (Aigw__Error *) wire_unpack (&aigw__error__descriptor, &m.body);
    assert_non_null (e);
    assert_int_equal (e->attempt_id, attempt);
    assert_int_equal (e->job_id, attempt + 1000);
    wire_msg_close (&m);
    return e;
}

//  Expect an ERROR for attempt with usage; returns its code, copies the usage.
static int b_expect_error_usage (b_broker_t *b, uint64_t attempt, int timeout_ms, Aigw__Usage *usage)
{
    wire_msg_t m;
    assert_int_equal (b_recv (b, timeout_ms, &m), 0);
    if (m.cmd != WIRE_W_ERROR)
        fail_msg ("expected ERROR, got %s", wire_cmd_name (WIRE_SIDE_WORKER, m.cmd));
    Aigw__Error *e = (Aigw__Error *) wire_unpack (&aigw__error__descriptor, &m.body);
    assert_non_null (e);
    assert_int_equal (e->attempt_id, attempt);
    assert_non_null (e->usage);
    assert_true (e->usage->has_prompt_tokens && e->usage->has_completion_tokens);
    *usage = *e->usage;
    int code = e->code;
    protobuf_c_message_free_unpacked (&e->base, NULL);
    wire_msg_close (&m);
    return code;
}

//  Expect a CHUNK for attempt with the given seq; returns it (caller frees).
static Aigw__Chunk *b_expect_chunk (b_broker_t *b, uint64_t attempt, uint32_t seq, int timeout_ms)
{
    wire_msg_t m;
    assert_int_equal (b_recv (b, timeout_ms, &m), 0);
    if (m.cmd == WIRE_W_ERROR) {
        Aigw__Error *e = (Aigw__Error *) wire_unpack (&aigw__error__descriptor, &m.body);
        fail_msg ("expected CHUNK, got ERROR %d: %s", e ? (int) e->code : -1, e ? e->message : "?");
    }
    if (m.cmd != WIRE_W_CHUNK)
        fail_msg ("expected CHUNK, got %s", wire_cmd_name (WIRE_SIDE_WORKER, m.cmd));
    Aigw__Chunk *c = (Aigw__Chunk *) wire_unpack (&aigw__chunk__descriptor, &m.body);
    assert_non_null (c);
    assert_int_equal (c->attempt_id, attempt);
    assert_int_equal (c->job_id, attempt + 1000);
    assert_true (c->has_seq);
    assert_int_equal (c->seq, seq);
    assert_true (c->has_delta_json);
    wire_msg_close (&m);
    return c;
}

//  The content of a chunk's choices[0].delta ("" if none); checks the JSON shape
//  and that it carries a token (content, tool_calls or finish_reason).
static void b_chunk_content (const Aigw__Chunk *c, char *out, size_t outlen)
{
    cJSON *root = cJSON_ParseWithLength ((const char *) c->delta_json.data, c->delta_json.len);
    assert_non_null (root);
    assert_string_equal (cJSON_GetStringValue (cJSON_GetObjectItem (root, "object")),
                         "chat.completion.chunk");
    cJSON *ch = cJSON_GetArrayItem (cJSON_GetObjectItem (root, "choices"), 0);
    cJSON *delta = cJSON_GetObjectItem (ch, "delta");
    const char *content = cJSON_GetStringValue (cJSON_GetObjectItem (delta, "content"));
    bool token = (content && *content) || cJSON_GetArraySize (cJSON_GetObjectItem (delta, "tool_calls"))
              || cJSON_IsString (cJSON_GetObjectItem (ch, "finish_reason"));
    assert_true (token);
    snprintf (out, outlen, "%s", content ? content : "");
    cJSON_Delete (root);
}

//  What a streamed attempt sent: CHUNKs (contents joined into text), then a
//  RESULT or an ERROR.
typedef struct {
    uint32_t chunks;
    char text [4096];
    Aigw__Result *result;       // owned, NULL if it ended in ERROR
    int code;                   // ERROR code, 0 for RESULT
    char msg [512];
    uint32_t status;
    int64_t first_us;           // when the first and the last CHUNK arrived
    int64_t last_us;
    bool has_usage;             // the ERROR's usage
    Aigw__Usage usage;
} b_stream_t;

static void b_collect_chunk (wire_msg_t *m, uint64_t attempt, b_stream_t *out, size_t *len)
{
    Aigw__Chunk *c = (Aigw__Chunk *) wire_unpack (&aigw__chunk__descriptor, &m->body);
    assert_non_null (c);
    assert_int_equal (c->attempt_id, attempt);
    assert_int_equal (c->job_id, attempt + 1000);
    assert_true (c->has_seq && c->has_delta_json);
    assert_int_equal (c->seq, out->chunks);
    char piece [1024];
    b_chunk_content (c, piece, sizeof piece);
    *len += (size_t) snprintf (out->text + *len, sizeof out->text - *len, "%s", piece);
    out->last_us = aclock_now_us ();
    if (out->chunks++ == 0)
        out->first_us = out->last_us;
    protobuf_c_message_free_unpacked (&c->base, NULL);
}

static void b_collect (b_broker_t *b, uint64_t attempt, int timeout_ms, b_stream_t *out)
{
    memset (out, 0, sizeof *out);
    size_t len = 0;
    for (;;) {
        wire_msg_t m;
        assert_int_equal (b_recv (b, timeout_ms, &m), 0);
        if (m.cmd == WIRE_W_CHUNK) {
            b_collect_chunk (&m, attempt, out, &len);
            wire_msg_close (&m);
            continue;
        }
        if (m.cmd == WIRE_W_RESULT) {
            out->result = (Aigw__Result *) wire_unpack (&aigw__result__descriptor, &m.body);
            assert_non_null (out->result);
            assert_int_equal (out->result->attempt_id, attempt);
            wire_msg_close (&m);
            return;
        }
        assert_int_equal (m.cmd, WIRE_W_ERROR);
        Aigw__Error *e = (Aigw__Error *) wire_unpack (&aigw__error__descriptor, &m.body);
        assert_non_null (e);
        assert_int_equal (e->attempt_id, attempt);
        out->code = e->code;
        out->status = e->has_upstream_status ? e->upstream_status : 0;
        out->has_usage = e->usage != NULL;
        if (e->usage)
            out->usage = *e->usage;
        snprintf (out->msg, sizeof out->msg, "%s", e->message ? e->message : "");
        protobuf_c_message_free_unpacked (&e->base, NULL);
        wire_msg_close (&m);
        return;
    }
}

//  The RESULT's choices[0].message.content, and its finish_reason.
static void b_result_message (const Aigw__Result *r, char *content, size_t len, char *finish,
                              size_t flen)
{
    cJSON *root = cJSON_ParseWithLength ((const char *) r->response_json.data, r->response_json.len);
    assert_non_null (root);
    assert_string_equal (cJSON_GetStringValue (cJSON_GetObjectItem (root, "object")), "chat.completion");
    cJSON *ch = cJSON_GetArrayItem (cJSON_GetObjectItem (root, "choices"), 0);
    const char *c = cJSON_GetStringValue (cJSON_GetObjectItem (cJSON_GetObjectItem (ch, "message"),
                                                               "content"));
    snprintf (content, len, "%s", c ? c : "(null)");
    const char *fr = cJSON_GetStringValue (cJSON_GetObjectItem (ch, "finish_reason"));
    snprintf (finish, flen, "%s", fr ? fr : "(null)");
    cJSON_Delete (root);
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
    char text [8192];
    int p = s_http.port;
    snprintf (text, sizeof text,
        "broker\n    heartbeat_ms = 100\n    liveness = 3\n"
        "worker\n    capacity = 2\n"
        "models\n"
        "    sim-fast\n        provider = sim\n        latency_ms = 5\n        jitter = 0.3\n"
        "    sim-slow\n        provider = sim\n        latency_ms = 60000\n"
        "    sim-fail\n        provider = sim\n        latency_ms = 1\n        fail_rate = 1\n"
        "    later\n        provider = anthropic\n        base_url = http://127.0.0.1:1\n"
        "    sim-words\n        provider = sim\n        latency_ms = 5\n        tokens_per_s = 100\n"
        "        text = one two three\n"
        "    sim-midwords\n        provider = sim\n        latency_ms = 1\n        tokens_per_s = 20\n"
        "        text = a b c d e f\n"
        "    sim-slowwords\n        provider = sim\n        latency_ms = 1\n        tokens_per_s = 5\n"
        "        text = a b c d e f\n"
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
        "    oa-nousage\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-nousage\n"
        "    oa-nokey\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        api_key_env = AIGW_TEST_WORKER_UNSET\n"
        "    oa-refused\n        provider = openai\n        base_url = http://127.0.0.1:1/v1\n"
        "    oa-sse\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-sse\n"
        "    oa-sse-cut\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-sse-cut\n"
        "    oa-sse-stall\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-sse-stall\n"
        "    oa-sse-nofin\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-sse-nofin\n"
        "    oa-sse-err\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-sse-err\n"
        "    oa-429\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-429\n"
        "    an-ok\n        provider = anthropic\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-anth\n        api_key_env = AIGW_TEST_WORKER_KEY\n"
        "        max_tokens = 77\n"
        "    ol-ok\n        provider = ollama\n        base_url = http://127.0.0.1:%d\n"
        "        upstream_model = up-olla\n"
        "    oa-e400\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-e400\n"
        "    oa-e401\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-e401\n"
        "    oa-e429\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-e429\n"
        "    oa-e503\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-e503\n"
        "    an-429\n        provider = anthropic\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-anth-429\n",
        p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p);
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
    assert_int_equal (h->n_models, 30);
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
                      AIGW__ERROR_CODE__ERR_BAD_REQUEST);
    assert_string_equal (msg, "only function tools with a name are supported by anthropic");
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
    b_send_cancel (&f->b, 10);
    assert_int_equal (b_expect_error (&f->b, 10, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_CANCELLED);
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
    assert_true (took >= 45);           // not before the 50 ms deadline
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
    b_send_cmd (&f->b, WIRE_W_DISCONNECT);
    wire_msg_t m;
    assert_int_equal (b_recv (&f->b, 1000, &m), 0);
    assert_int_equal (m.cmd, WIRE_W_READY);
    wire_msg_close (&m);
    //  The broker was talking: READY came within b_recv's 1 s (the first back-off
    //  step), so there was no back-off
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
    assert_true (took >= 900);          // it backed off (about 1 s) before READY
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

static const char *REQ_PLAIN = "{\"model\":\"x\",\"messages\":[{\"role\":\"system\",\"content\":\"S\"},"
                               "{\"role\":\"user\",\"content\":\"say hi please\"}],\"max_tokens\":50,"
                               "\"stream\":true}";

//  Upstream error statuses: the code mapping, the provider's code and message,
//  and Retry-After (sent for 429 and 503 only).
static void test_upstream_error_mapping (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    b_send_task (&f->b, 80, "oa-e400", REQ, 0);
    Aigw__Error *e = b_expect_error_msg (&f->b, 80, 2000);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_BAD_REQUEST);
    assert_true (e->has_upstream_status);
    assert_int_equal (e->upstream_status, 400);
    assert_string_equal (e->upstream_code, "context_length_exceeded");
    assert_non_null (strstr (e->message, "too long"));
    assert_false (e->has_retry_after_ms);
    protobuf_c_message_free_unpacked (&e->base, NULL);

    b_send_task (&f->b, 81, "oa-e401", REQ, 0);
    e = b_expect_error_msg (&f->b, 81, 2000);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_UPSTREAM_AUTH);
    assert_int_equal (e->upstream_status, 401);
    assert_string_equal (e->upstream_code, "invalid_api_key");
    assert_string_equal (e->message, "upstream HTTP 401: Incorrect API key");
    assert_false (e->has_retry_after_ms);       // not a 429/503
    protobuf_c_message_free_unpacked (&e->base, NULL);

    //  Streamed: the error status is read as a whole body all the same
    b_send_task_ex (&f->b, 82, "oa-e429", REQ, 0, true);
    e = b_expect_error_msg (&f->b, 82, 2000);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_RATE_LIMITED);
    assert_int_equal (e->upstream_status, 429);
    assert_string_equal (e->upstream_code, "rate_limit_exceeded");
    assert_true (e->has_retry_after_ms);
    assert_int_equal (e->retry_after_ms, 3000);
    protobuf_c_message_free_unpacked (&e->base, NULL);

    b_send_task (&f->b, 83, "oa-e503", REQ, 0);
    e = b_expect_error_msg (&f->b, 83, 2000);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_int_equal (e->upstream_status, 503);
    assert_string_equal (e->upstream_code, "server_error");      // code null: the type
    assert_true (e->has_retry_after_ms);
    assert_int_equal (e->retry_after_ms, 0);    // a date in the past
    protobuf_c_message_free_unpacked (&e->base, NULL);

    b_send_task (&f->b, 84, "an-429", REQ_PLAIN, 0);
    e = b_expect_error_msg (&f->b, 84, 2000);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_RATE_LIMITED);
    assert_int_equal (e->upstream_status, 429);
    assert_string_equal (e->upstream_code, "rate_limit_error");
    assert_non_null (strstr (e->message, "exceeded your rate limit"));
    assert_true (e->has_retry_after_ms);
    assert_int_equal (e->retry_after_ms, 250);  // retry-after-ms wins
    protobuf_c_message_free_unpacked (&e->base, NULL);

    b_send_task (&f->b, 85, "oa-500", REQ, 0);
    e = b_expect_error_msg (&f->b, 85, 2000);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_int_equal (e->upstream_status, 500);
    assert_string_equal (e->upstream_code, "server_error");
    assert_string_equal (e->message, "upstream HTTP 500: boom");
    protobuf_c_message_free_unpacked (&e->base, NULL);

    //  A connection error: no status, no code
    b_send_task (&f->b, 86, "oa-refused", REQ, 0);
    e = b_expect_error_msg (&f->b, 86, 2000);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_false (e->has_upstream_status);
    assert_null (e->upstream_code);
    assert_false (e->has_retry_after_ms);
    protobuf_c_message_free_unpacked (&e->base, NULL);
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

//  ---- streaming


static void test_stream_sim (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    //  100 words/s: one CHUNK per word about 10 ms apart, a finish CHUNK, then RESULT
    b_stream_t st;
    b_send_task_ex (&f->b, 200, "sim-words", REQ, 0, true);
    b_collect (&f->b, 200, 2000, &st);
    assert_non_null (st.result);
    assert_int_equal (st.chunks, 4);
    assert_string_equal (st.text, "one two three");
    assert_true (st.last_us - st.first_us >= 15000);
    char content [256], finish [32];
    b_result_message (st.result, content, sizeof content, finish, sizeof finish);
    assert_string_equal (content, "one two three");
    assert_string_equal (finish, "stop");
    assert_int_equal (st.result->usage->completion_tokens, 3);
    protobuf_c_message_free_unpacked (&st.result->base, NULL);
    //  tokens_per_s = 0: every word at once after the latency
    b_send_task_ex (&f->b, 201, "sim-fast", REQ, 0, true);
    b_collect (&f->b, 201, 2000, &st);
    assert_non_null (st.result);
    assert_true (st.chunks >= 2);
    //  One burst: well under the 15 ms that the paced stream of the same text took above
    //  (a generous bound stated as such)
    assert_true (st.last_us - st.first_us < 15000);
    protobuf_c_message_free_unpacked (&st.result->base, NULL);
    //  A deadline in the middle of the stream: ERR_TIMEOUT after the words so far
    b_send_task_ex (&f->b, 202, "sim-midwords", REQ, 125, true);
    b_collect (&f->b, 202, 2000, &st);
    assert_null (st.result);
    assert_int_equal (st.code, AIGW__ERROR_CODE__ERR_TIMEOUT);
    assert_int_equal (st.chunks, 3);
    assert_string_equal (st.msg, "sim: deadline of 125 ms passed after 3 chunks");
    //  CANCEL mid-stream stops the timer chain: nothing follows the acknowledgement
    b_send_task_ex (&f->b, 203, "sim-slowwords", REQ, 0, true);
    Aigw__Chunk *c = b_expect_chunk (&f->b, 203, 0, 1000);
    protobuf_c_message_free_unpacked (&c->base, NULL);
    b_send_cancel (&f->b, 203);
    char msg [512];
    assert_int_equal (b_expect_error (&f->b, 203, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_CANCELLED);
    wire_msg_t m;
    assert_int_equal (b_recv (&f->b, 250, &m), -1);     // the next word was due at 200 ms
    s_stop_worker (f);
    assert_int_equal (f->stats.streams, 4);
    assert_int_equal (f->stats.cancelled, 1);
}

static void test_stream_openai (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    int accepted0 = h_get (&s_http.accepted);
    b_stream_t st;
    b_send_task_ex (&f->b, 210, "oa-sse", REQ, 0, true);
    b_collect (&f->b, 210, 2000, &st);
    if (!st.result)
        fail_msg ("stream ended in ERROR %d: %s", st.code, st.msg);
    //  Hello, world, the tool call, the finish: not the role-only nor the usage chunk
    assert_int_equal (st.chunks, 4);
    assert_string_equal (st.text, "Hello world");
    char content [256], finish [32];
    b_result_message (st.result, content, sizeof content, finish, sizeof finish);
    assert_string_equal (content, "Hello world");
    assert_string_equal (finish, "tool_calls");
    assert_non_null (strstr ((const char *) st.result->response_json.data,
                             "\"tool_calls\":[{\"id\":\"call_7\",\"type\":\"function\","
                             "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]"));
    assert_non_null (st.result->usage);
    assert_int_equal (st.result->usage->prompt_tokens, 4);
    assert_int_equal (st.result->usage->completion_tokens, 2);
    protobuf_c_message_free_unpacked (&st.result->base, NULL);
    pthread_mutex_lock (&s_http.lock);
    assert_non_null (strstr (s_http.last_body, "\"stream\":true,\"stream_options\":{\"include_usage\":true}"));
    assert_non_null (strcasestr (s_http.last_head, "Accept: text/event-stream"));
    pthread_mutex_unlock (&s_http.lock);
    //  The chunked body closed properly: the next stream reuses the connection
    b_send_task_ex (&f->b, 211, "oa-sse", REQ, 0, true);
    b_collect (&f->b, 211, 2000, &st);
    assert_non_null (st.result);
    protobuf_c_message_free_unpacked (&st.result->base, NULL);
    assert_int_equal (h_get (&s_http.accepted) - accepted0, 1);
    s_stop_worker (f);
    assert_int_equal (f->stats.chunks, 8);
    assert_int_equal (f->stats.completed, 2);
}

static void test_stream_failures (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    b_stream_t st;
    b_send_task_ex (&f->b, 220, "oa-sse-cut", REQ, 0, true);
    b_collect (&f->b, 220, 2000, &st);
    assert_null (st.result);
    assert_int_equal (st.chunks, 2);
    assert_int_equal (st.code, AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_non_null (strstr (st.msg, "upstream stream cut after 2 chunks"));
    b_send_task_ex (&f->b, 221, "oa-sse-err", REQ, 0, true);
    b_collect (&f->b, 221, 2000, &st);
    assert_int_equal (st.chunks, 0);
    assert_string_equal (st.msg, "upstream stream error: model overloaded (after 0 chunks)");
    assert_int_equal (st.status, 200);
    b_send_task_ex (&f->b, 222, "oa-429", REQ, 0, true);
    b_collect (&f->b, 222, 2000, &st);
    assert_int_equal (st.code, AIGW__ERROR_CODE__ERR_RATE_LIMITED);
    assert_int_equal (st.status, 429);
    assert_string_equal (st.msg, "upstream HTTP 429: slow down");
    //  A stall after the first chunk runs into the deadline (well inside the
    //  fixture's 300 ms broker liveness)
    int stalled0 = h_get (&s_http.stall_closed);
    b_send_task_ex (&f->b, 223, "oa-sse-stall", REQ, 150, true);
    b_collect (&f->b, 223, 2000, &st);
    assert_int_equal (st.chunks, 1);
    assert_int_equal (st.code, AIGW__ERROR_CODE__ERR_TIMEOUT);
    assert_non_null (strstr (st.msg, "upstream stream cut after 1 chunks: Timeout was reached"));
    //  Its connection closes too; wait for that, so it is not counted below
    assert_int_equal (h_wait (&s_http.stall_closed, stalled0 + 1, 5000), stalled0 + 1);
    //  [DONE] came but the body never closes: RESULT after a short grace (no RESULT
    //  at all would time b_collect out), and the connection is closed rather than kept
    int closed0 = h_get (&s_http.stall_closed);
    b_send_task_ex (&f->b, 224, "oa-sse-nofin", REQ, 0, true);
    b_collect (&f->b, 224, 2000, &st);
    if (!st.result)
        fail_msg ("ERROR %d: %s", st.code, st.msg);
    assert_int_equal (st.chunks, 2);
    protobuf_c_message_free_unpacked (&st.result->base, NULL);
    assert_int_equal (h_wait (&s_http.stall_closed, closed0 + 1, 1000), closed0 + 1);
}

static void test_stream_cancel_closes_connection (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    int closed0 = h_get (&s_http.stall_closed);
    b_send_task_ex (&f->b, 230, "oa-sse-stall", REQ, 0, true);
    Aigw__Chunk *c = b_expect_chunk (&f->b, 230, 0, 2000);
    protobuf_c_message_free_unpacked (&c->base, NULL);
    usleep (20000);
    assert_int_equal (h_get (&s_http.stall_closed), closed0);
    int64_t t0 = aclock_now_us ();
    b_send_cancel (&f->b, 230);
    char msg [512];
    assert_int_equal (b_expect_error (&f->b, 230, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_CANCELLED);
    assert_int_equal (h_wait (&s_http.stall_closed, closed0 + 1, 1000), closed0 + 1);
    pthread_mutex_lock (&s_http.lock);
    int64_t gap = s_http.stall_closed_us - t0;
    pthread_mutex_unlock (&s_http.lock);
    assert_true (gap < 500000);
}

static void test_anthropic_and_ollama (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    char content [256], finish [32];
    b_send_task (&f->b, 240, "an-ok", REQ_PLAIN, 0);
    Aigw__Result *r = b_expect_result (&f->b, 240, 2000);
    b_result_message (r, content, sizeof content, finish, sizeof finish);
    assert_string_equal (content, "Hi from claude");
    assert_string_equal (finish, "length");
    assert_int_equal (r->usage->prompt_tokens, 9);
    assert_int_equal (r->usage->completion_tokens, 3);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    pthread_mutex_lock (&s_http.lock);
    assert_non_null (strstr (s_http.last_head, "POST /v1/messages HTTP/1.1"));
    assert_non_null (strcasestr (s_http.last_head, "x-api-key: sekrit-test-key"));
    assert_non_null (strcasestr (s_http.last_head, "anthropic-version: 2023-06-01"));
    assert_null (strcasestr (s_http.last_head, "Authorization:"));
    assert_non_null (strstr (s_http.last_body, "\"system\":\"S\""));
    assert_non_null (strstr (s_http.last_body, "\"max_tokens\":50"));
    assert_null (strstr (s_http.last_body, "\"stream\""));
    pthread_mutex_unlock (&s_http.lock);
    b_stream_t st;
    b_send_task_ex (&f->b, 241, "an-ok", REQ_PLAIN, 0, true);
    b_collect (&f->b, 241, 2000, &st);
    if (!st.result)
        fail_msg ("anthropic stream ended in ERROR %d: %s", st.code, st.msg);
    assert_int_equal (st.chunks, 3);
    assert_string_equal (st.text, "Hi there");
    b_result_message (st.result, content, sizeof content, finish, sizeof finish);
    assert_string_equal (content, "Hi there");
    assert_string_equal (finish, "stop");
    assert_int_equal (st.result->usage->completion_tokens, 2);
    protobuf_c_message_free_unpacked (&st.result->base, NULL);
    //  Ollama, whole and streamed (NDJSON lines split across reads)
    b_send_task (&f->b, 242, "ol-ok", REQ_PLAIN, 0);
    r = b_expect_result (&f->b, 242, 2000);
    b_result_message (r, content, sizeof content, finish, sizeof finish);
    assert_string_equal (content, "Hi llama");
    assert_int_equal (r->usage->prompt_tokens, 7);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    pthread_mutex_lock (&s_http.lock);
    assert_non_null (strstr (s_http.last_head, "POST /api/chat HTTP/1.1"));
    assert_non_null (strstr (s_http.last_body, "\"stream\":false"));
    assert_non_null (strstr (s_http.last_body, "\"num_predict\":50"));
    pthread_mutex_unlock (&s_http.lock);
    b_send_task_ex (&f->b, 243, "ol-ok", REQ_PLAIN, 0, true);
    b_collect (&f->b, 243, 2000, &st);
    if (!st.result)
        fail_msg ("ollama stream ended in ERROR %d: %s", st.code, st.msg);
    assert_int_equal (st.chunks, 3);
    assert_string_equal (st.text, "Hi llama");
    b_result_message (st.result, content, sizeof content, finish, sizeof finish);
    assert_string_equal (content, "Hi llama");
    assert_int_equal (st.result->usage->completion_tokens, 2);
    protobuf_c_message_free_unpacked (&st.result->base, NULL);
}

//  ---- usage on every answer

//  Read CHUNKs of attempt until its ERROR; returns the CHUNKs seen, copies the usage.
static uint32_t s_chunks_until_error (fix_t *f, uint64_t attempt, int *code, Aigw__Usage *usage)
{
    uint32_t chunks = 0;
    for (;;) {
        wire_msg_t m;
        assert_int_equal (b_recv (&f->b, 2000, &m), 0);
        if (m.cmd == WIRE_W_CHUNK) {
            chunks++;
            wire_msg_close (&m);
            continue;
        }
        assert_int_equal (m.cmd, WIRE_W_ERROR);
        Aigw__Error *e = (Aigw__Error *) wire_unpack (&aigw__error__descriptor, &m.body);
        assert_non_null (e);
        assert_int_equal (e->attempt_id, attempt);
        assert_non_null (e->usage);
        *usage = *e->usage;
        *code = e->code;
        protobuf_c_message_free_unpacked (&e->base, NULL);
        wire_msg_close (&m);
        return chunks;
    }
}

//  The sim's counts are exact: its prompt words, the words it had streamed by the
//  cancel; a refused TASK and an injected failure consumed nothing.
static void test_usage_sim (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    Aigw__Usage u;
    int code = 0;
    //  Streaming at 5 words/s, cancelled after its first word: the acknowledgement
    //  counts every word sent before it (the first, and any that fell due meanwhile)
    b_send_task_ex (&f->b, 300, "sim-slowwords", REQ, 0, true);
    Aigw__Chunk *c = b_expect_chunk (&f->b, 300, 0, 2000);
    protobuf_c_message_free_unpacked (&c->base, NULL);
    b_send_cancel (&f->b, 300);
    uint32_t chunks = 1 + s_chunks_until_error (f, 300, &code, &u);
    assert_int_equal (code, AIGW__ERROR_CODE__ERR_CANCELLED);
    assert_int_equal (u.prompt_tokens, 3);
    assert_true (u.completion_tokens > 0);
    assert_int_equal (u.completion_tokens, chunks);
    assert_false (u.has_estimated && u.estimated);
    //  Not streaming: nothing is emitted before the reply
    b_send_task (&f->b, 301, "sim-slow", REQ, 0);
    b_send_cancel (&f->b, 301);
    assert_int_equal (b_expect_error_usage (&f->b, 301, 2000, &u), AIGW__ERROR_CODE__ERR_CANCELLED);
    assert_int_equal (u.prompt_tokens, 3);
    assert_int_equal (u.completion_tokens, 0);
    assert_false (u.has_estimated && u.estimated);
    //  A deadline mid-stream: the words sent so far
    b_stream_t st;
    b_send_task_ex (&f->b, 302, "sim-midwords", REQ, 125, true);
    b_collect (&f->b, 302, 2000, &st);
    assert_int_equal (st.code, AIGW__ERROR_CODE__ERR_TIMEOUT);
    assert_true (st.has_usage);
    assert_int_equal (st.usage.prompt_tokens, 3);
    assert_int_equal (st.usage.completion_tokens, st.chunks);
    //  Refused and failed attempts: zero, and not an estimate
    b_send_task (&f->b, 303, "no-such-model", REQ, 0);
    assert_int_equal (b_expect_error_usage (&f->b, 303, 2000, &u), AIGW__ERROR_CODE__ERR_UNKNOWN_MODEL);
    assert_int_equal (u.prompt_tokens + u.completion_tokens, 0);
    assert_false (u.has_estimated && u.estimated);
    b_send_task (&f->b, 304, "sim-fail", REQ, 0);
    assert_int_equal (b_expect_error_usage (&f->b, 304, 2000, &u), AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_int_equal (u.prompt_tokens + u.completion_tokens, 0);
    //  The RESULT: exact counts
    b_send_task (&f->b, 305, "sim-fast", REQ, 0);
    Aigw__Result *r = b_expect_result (&f->b, 305, 2000);
    assert_non_null (r->usage);
    assert_int_equal (r->usage->prompt_tokens, 3);
    assert_true (r->usage->completion_tokens > 0);
    assert_false (r->usage->has_estimated && r->usage->estimated);
    protobuf_c_message_free_unpacked (&r->base, NULL);
}

//  HTTP upstreams: the upstream's counts when it gave them, else estimates (prompt:
//  "say hi please" is 13 bytes, 4 tokens; completion: the CHUNKs sent, or the reply
//  text / 4), marked estimated; an upstream that refused consumed nothing.
static void test_usage_upstream (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    Aigw__Usage u;
    int code = 0;
    //  Cancelled while waiting for the reply: the prompt, no completion
    int requests0 = h_get (&s_http.requests);
    b_send_task (&f->b, 310, "oa-stall", REQ, 0);
    assert_int_equal (h_wait (&s_http.requests, requests0 + 1, 2000), requests0 + 1);
    b_send_cancel (&f->b, 310);
    assert_int_equal (b_expect_error_usage (&f->b, 310, 2000, &u), AIGW__ERROR_CODE__ERR_CANCELLED);
    assert_int_equal (u.prompt_tokens, 4);
    assert_int_equal (u.completion_tokens, 0);
    assert_true (u.has_estimated && u.estimated);
    //  Cancelled mid-stream after one chunk (the upstream stalls after it)
    b_send_task_ex (&f->b, 311, "oa-sse-stall", REQ, 0, true);
    Aigw__Chunk *c = b_expect_chunk (&f->b, 311, 0, 2000);
    protobuf_c_message_free_unpacked (&c->base, NULL);
    b_send_cancel (&f->b, 311);
    assert_int_equal (s_chunks_until_error (f, 311, &code, &u), 0);
    assert_int_equal (code, AIGW__ERROR_CODE__ERR_CANCELLED);
    assert_int_equal (u.prompt_tokens, 4);
    assert_int_equal (u.completion_tokens, 1);
    assert_true (u.has_estimated && u.estimated);
    //  A stream cut after two chunks
    b_stream_t st;
    b_send_task_ex (&f->b, 312, "oa-sse-cut", REQ, 0, true);
    b_collect (&f->b, 312, 2000, &st);
    assert_int_equal (st.code, AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_true (st.has_usage);
    assert_int_equal (st.usage.completion_tokens, 2);
    assert_int_equal (st.usage.prompt_tokens, 4);
    //  Refused by the upstream (HTTP 500) or never sent (connection refused)
    b_send_task (&f->b, 313, "oa-500", REQ, 0);
    assert_int_equal (b_expect_error_usage (&f->b, 313, 2000, &u), AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_int_equal (u.prompt_tokens + u.completion_tokens, 0);
    assert_false (u.has_estimated && u.estimated);
    b_send_task (&f->b, 314, "oa-refused", REQ, 0);
    assert_int_equal (b_expect_error_usage (&f->b, 314, 2000, &u), AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_int_equal (u.prompt_tokens + u.completion_tokens, 0);
    //  RESULTs: the upstream's usage as it is; none given: estimated
    b_send_task (&f->b, 315, "oa-ok", REQ, 0);
    Aigw__Result *r = b_expect_result (&f->b, 315, 2000);
    assert_int_equal (r->usage->prompt_tokens, 5);
    assert_int_equal (r->usage->completion_tokens, 2);
    assert_false (r->usage->has_estimated && r->usage->estimated);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    b_send_task (&f->b, 316, "oa-nousage", REQ, 0);
    r = b_expect_result (&f->b, 316, 2000);
    assert_non_null (r->usage);
    assert_int_equal (r->usage->prompt_tokens, 4);
    assert_int_equal (r->usage->completion_tokens, 2);      // "hello": 5 bytes
    assert_true (r->usage->has_estimated && r->usage->estimated);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    //  A stream with no usage event: one token per CHUNK
    b_send_task_ex (&f->b, 317, "oa-sse-nofin", REQ, 0, true);
    b_collect (&f->b, 317, 2000, &st);
    assert_non_null (st.result);
    assert_non_null (st.result->usage);
    assert_int_equal (st.result->usage->completion_tokens, st.chunks);
    assert_int_equal (st.result->usage->prompt_tokens, 4);
    assert_true (st.result->usage->has_estimated && st.result->usage->estimated);
    protobuf_c_message_free_unpacked (&st.result->base, NULL);
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
        cmocka_unit_test_setup_teardown (test_upstream_error_mapping, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_openai_cancel_closes_connection, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_stream_sim, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_stream_openai, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_stream_failures, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_stream_cancel_closes_connection, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_anthropic_and_ollama, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_usage_sim, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_usage_upstream, s_setup, s_teardown),
        cmocka_unit_test (test_bad_options),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
