// The edge's HTTP server: civetweb handlers for the OpenAI-compatible API, health and
// readiness. Each handler thread talks to the broker link through its own socket.
#include "http.h"
#include "request.h"
#include "response.h"
#include "observe.h"
#include "stream.h"
#include "waiter.h"
#include "cwatch.h"
#include "wire.h"
#include "log.h"
#include "aclock.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define S_GRACE_MS 2000                 // wait past the job deadline before answering 504
#define S_KEEP_ALIVE_MS "15000"         // idle keep-alive connection holds a thread this long
#define S_REQUEST_TIMEOUT_MS "30000"    // socket read/write timeout
#define S_HEAD_MAX 1024
#define S_WATCH_AFTER_MS 10             // non-stream jobs: watch the client's socket from then

struct _edge_http_t {
    const cfg_t *cfg;
    edge_link_t *link;
    struct mg_context *mg;
    observe_t *obs;                     // metrics, /metrics, event stream, dashboard
    _Atomic uint64_t requests, s2xx, s4xx, s5xx, timeouts;
    _Atomic uint64_t streams, client_gone;  // SSE answers; clients that hung up while waiting
    _Atomic bool draining;              // shutting down: no new jobs
    _Atomic int in_flight;              // jobs submitted and not yet answered
};

//  Per civetweb worker thread: the handler's socket to the link, made on first use.
typedef struct {
    edge_client_t *client;
    cwatch_t watch;                     // the last client socket found (keep-alive reuse)
} s_thread_t;

//  --------------------------------------------------------------- replies

static bool s_has_token (const char *header, const char *token)
{
    size_t tlen = strlen (token);
    for (const char *p = header; *p;) {
        p += strspn (p, " \t,");
        size_t len = strcspn (p, ",");
        size_t trimmed = len;
        while (trimmed && (p[trimmed - 1] == ' ' || p[trimmed - 1] == '\t'))
            trimmed--;
        if (trimmed == tlen && strncasecmp (p, token, tlen) == 0)
            return true;
        p += len;
    }
    return false;
}

//  Same decision civetweb makes after the handler (body consumed, client's wish,
//  HTTP version), so the Connection header we send matches what happens.
static bool s_keep_alive (struct mg_connection *conn, bool body_consumed)
{
    if (!body_consumed)
        return false;
    const char *h = mg_get_header (conn, "Connection");
    if (h)
        return s_has_token (h, "keep-alive");
    const struct mg_request_info *ri = mg_get_request_info (conn);
    return ri->http_version && strcmp (ri->http_version, "1.1") == 0;
}

static void s_count_status (edge_http_t *self, int status)
{
    atomic_fetch_add_explicit (&self->requests, 1, memory_order_relaxed);
    _Atomic uint64_t *c = status < 300 ? &self->s2xx : status < 500 ? &self->s4xx : &self->s5xx;
    atomic_fetch_add_explicit (c, 1, memory_order_relaxed);
}

//  Write status line, headers and body with one mg_write (no Nagle stalls).
//  extra: more header lines ("Name: value\r\n"), may be NULL. Returns the status.
static int s_send (edge_http_t *self, struct mg_connection *conn, edge_reply_t *reply,
                   bool keep_alive, const char *extra)
{
    char head[S_HEAD_MAX];
    char winner[CFG_NAME_MAX + 32] = "";
    if (reply->winner[0])
        snprintf (winner, sizeof winner, "x-aigw-winner: %s\r\n", reply->winner);
    int n = snprintf (head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nCache-Control: no-store\r\n"
                      "Connection: %s\r\n%s%s\r\n",
                      reply->status, mg_get_response_code_text (conn, reply->status),
                      reply->len, keep_alive ? "keep-alive" : "close", winner,
                      extra ? extra : "");
    if (n < 0 || (size_t) n >= sizeof head)
        return 500;
    if (!keep_alive)
        mg_disable_connection_keep_alive (conn);
    char *out = malloc ((size_t) n + reply->len);
    if (out) {
        memcpy (out, head, (size_t) n);
        memcpy (out + n, reply->body, reply->len);
        mg_write (conn, out, (size_t) n + reply->len);
        free (out);
    }
    s_count_status (self, reply->status);
    return reply->status;
}

//  Send an edge-decided error. Returns the status for civetweb's log.
static int s_send_error (edge_http_t *self, struct mg_connection *conn, int status,
                         const char *code, const char *message, bool keep_alive,
                         const char *extra)
{
    edge_reply_t reply;
    if (edge_reply_simple (&reply, status, code, message)) {
        mg_send_http_error (conn, 500, "out of memory");
        return 500;
    }
    int rc = s_send (self, conn, &reply, keep_alive, extra);
    edge_reply_reset (&reply);
    return rc;
}

static int s_send_reply (edge_http_t *self, struct mg_connection *conn, edge_reply_t *reply,
                         int rc, bool keep_alive)
{
    if (rc)
        return s_send_error (self, conn, 500, "internal_error", "out of memory", keep_alive, NULL);
    int status = s_send (self, conn, reply, keep_alive, NULL);
    edge_reply_reset (reply);
    return status;
}

//  --------------------------------------------------------------- routing

//  Exact path and method check shared by every handler. Returns 0 if the
//  request may proceed, else the status already sent (404/405).
static int s_route (edge_http_t *self, struct mg_connection *conn, const char *path,
                    const char *method)
{
    const struct mg_request_info *ri = mg_get_request_info (conn);
    bool consumed = ri->content_length <= 0;
    if (!ri->local_uri || strcmp (ri->local_uri, path) != 0)
        return s_send_error (self, conn, 404, "not_found", "no such route",
                             s_keep_alive (conn, consumed), NULL);
    if (strcmp (ri->request_method, method) != 0) {
        char allow[64];
        snprintf (allow, sizeof allow, "Allow: %s\r\n", method);
        char msg[96];
        snprintf (msg, sizeof msg, "method %.16s not allowed here (use %s)",
                  ri->request_method, method);
        return s_send_error (self, conn, 405, "method_not_allowed", msg,
                             s_keep_alive (conn, consumed), allow);
    }
    return 0;
}

static int s_not_found (struct mg_connection *conn, void *cbdata)
{
    const struct mg_request_info *ri = mg_get_request_info (conn);
    return s_send_error (cbdata, conn, 404, "not_found", "no such route",
                         s_keep_alive (conn, ri->content_length <= 0), NULL);
}

static int s_healthz (struct mg_connection *conn, void *cbdata)
{
    edge_http_t *self = cbdata;
    int rc = s_route (self, conn, "/healthz", "GET");
    if (rc)
        return rc;
    edge_reply_t reply;
    const char *pairs[] = { "status", "ok" };
    rc = edge_reply_pairs (&reply, 200, pairs, 1);
    return s_send_reply (self, conn, &reply, rc, s_keep_alive (conn, true));
}

static int s_readyz (struct mg_connection *conn, void *cbdata)
{
    edge_http_t *self = cbdata;
    int rc = s_route (self, conn, "/readyz", "GET");
    if (rc)
        return rc;
    edge_status_t *st = edge_link_status (self->link);
    edge_reply_t reply;
    rc = edge_reply_ready (&reply, edge_link_up (self->link), st, self->cfg->edge.broker);
    edge_status_release (&st);
    return s_send_reply (self, conn, &reply, rc, s_keep_alive (conn, true));
}

static int s_models (struct mg_connection *conn, void *cbdata)
{
    edge_http_t *self = cbdata;
    int rc = s_route (self, conn, "/v1/models", "GET");
    if (rc)
        return rc;
    edge_status_t *st = edge_link_up (self->link) ? edge_link_status (self->link) : NULL;
    edge_reply_t reply;
    rc = edge_reply_models (&reply, self->cfg, st);
    edge_status_release (&st);
    return s_send_reply (self, conn, &reply, rc, s_keep_alive (conn, true));
}

//  --------------------------------------------------------------- chat

//  Read exactly cl bytes (Content-Length already checked against the limit).
static char *s_read_known (struct mg_connection *conn, size_t cl, size_t *len)
{
    char *buf = malloc (cl + 1);
    while (buf && *len < cl) {
        int n = mg_read (conn, buf + *len, cl - *len);
        if (n <= 0) {
            free (buf);
            return NULL;
        }
        *len += (size_t) n;
    }
    if (buf)
        buf[*len] = 0;
    return buf;
}

//  Read a body of unknown length (chunked), refusing to hold more than max bytes.
static char *s_read_unknown (struct mg_connection *conn, uint64_t max, size_t *len,
                             bool *too_big)
{
    size_t cap = 4096;
    char *buf = malloc (cap);
    while (buf) {
        if (*len + 1 >= cap) {
            size_t ncap = cap * 2 > max + 2 ? (size_t) max + 2 : cap * 2;
            char *nbuf = ncap > cap ? realloc (buf, ncap) : NULL;
            if (!nbuf)
                break;
            buf = nbuf;
            cap = ncap;
        }
        int n = mg_read (conn, buf + *len, cap - 1 - *len);
        if (n == 0) {
            buf[*len] = 0;
            return buf;
        }
        if (n < 0)
            break;
        *len += (size_t) n;
        if (*len > max) {
            *too_big = true;
            break;
        }
    }
    free (buf);
    return NULL;
}

//  Read the whole body, at most max bytes. Returns the buffer (caller frees) and
//  its length; NULL with *too_big set when the body exceeds max (a declared
//  Content-Length over the limit is refused without reading), NULL alone on a
//  read error or out of memory.
static char *s_read_body (struct mg_connection *conn, uint64_t max, size_t *len, bool *too_big)
{
    const struct mg_request_info *ri = mg_get_request_info (conn);
    *len = 0;
    *too_big = ri->content_length > 0 && (uint64_t) ri->content_length > max;
    if (*too_big)
        return NULL;
    if (ri->content_length >= 0)
        return s_read_known (conn, (size_t) ri->content_length, len);
    return s_read_unknown (conn, max, len, too_big);
}

static bool s_known (void *arg, const char *name)
{
    return edge_status_model (arg, name) != NULL;
}

static edge_client_t *s_client (edge_http_t *self, struct mg_connection *conn)
{
    s_thread_t *t = mg_get_thread_pointer (conn);
    if (!t)
        return NULL;
    if (!t->client)
        t->client = edge_client_new (self->link);
    return t->client;
}

//  The HTTP client's socket (civetweb has no accessor; see cwatch.h). arg: the conn.
static int s_find_fd (void *arg)
{
    struct mg_connection *conn = arg;
    s_thread_t *t = mg_get_thread_pointer (conn);
    const struct mg_request_info *ri = mg_get_request_info (conn);
    if (!t || !ri || ri->is_ssl)
        return -1;
    return cwatch_find (&t->watch, ri->remote_addr, ri->remote_port, ri->server_port);
}

static int64_t s_until (edge_http_t *self, const edge_job_t *job)
{
    uint32_t deadline = job->deadline_ms ? job->deadline_ms : self->cfg->broker.deadline_ms;
    return aclock_now_ms () + deadline + S_GRACE_MS;
}

//  Wait for the job's final answer and turn it into a reply; a client that hangs up
//  meanwhile gets its job cancelled and status 499 (nothing to send). 0 / -1 (OOM).
static int s_await (edge_http_t *self, struct mg_connection *conn, edge_client_t *client,
                    edge_job_t *job, uint64_t job_id, edge_reply_t *reply)
{
    edge_waiter_t w;
    edge_waiter_init (&w, client, job_id, s_until (self, job), S_WATCH_AFTER_MS, s_find_fd, conn);
    while (true) {
        edge_answer_t answer;
        edge_wait_ev_t ev = edge_waiter_next (&w, 0, &answer);
        if (ev == EDGE_WAIT_GONE) {
            edge_client_cancel (client, job_id);
            atomic_fetch_add (&self->client_gone, 1);
            memset (reply, 0, sizeof *reply);
            reply->status = 499;
            return 0;
        }
        if (ev != EDGE_WAIT_ANSWER) {
            edge_client_cancel (client, job_id);
            atomic_fetch_add (&self->timeouts, 1);
            return edge_reply_simple (reply, 504, "timeout", "no answer before the deadline");
        }
        int rc = 1;
        if (answer.result) {
            emetrics_note_result (answer.result);       // for the overhead metric
            rc = edge_reply_result (reply, answer.result, job->policy);
        }
        else
        if (answer.error)
            rc = edge_reply_error (reply, answer.error, job->policy);
        edge_answer_reset (&answer);
        if (rc <= 0)
            return rc;
        //  A CHUNK on a non-streaming job: keep waiting for the final answer
    }
}

//  Answer a submitted streaming job with Server-Sent Events. Returns the status.
static int s_stream (edge_http_t *self, struct mg_connection *conn, edge_client_t *client,
                     edge_job_t *job, uint64_t job_id)
{
    edge_stream_t req = {
        .conn = conn, .client = client, .job_id = job_id, .until_ms = s_until (self, job),
        .policy = job->policy, .include_usage = job->include_usage,
        .keep_alive = s_keep_alive (conn, true), .find_fd = s_find_fd, .find_arg = conn
    };
    edge_stream_result_t out;
    atomic_fetch_add (&self->streams, 1);
    edge_stream_serve (&req, &out);
    if (out.end == EDGE_STREAM_GONE)
        atomic_fetch_add (&self->client_gone, 1);
    if (out.edge_timeout)
        atomic_fetch_add (&self->timeouts, 1);
    s_count_status (self, out.status);
    return out.status;
}

//  Send a reply built by the chat path; a 499 (client gone) is not sent.
static int s_chat_reply (edge_http_t *self, struct mg_connection *conn, edge_reply_t *reply,
                         int rc, bool keep_alive)
{
    if (rc == 0 && reply->status == 499) {
        mg_disable_connection_keep_alive (conn);
        s_count_status (self, 499);
        edge_reply_reset (reply);
        return 499;
    }
    return s_send_reply (self, conn, reply, rc, keep_alive);
}

//  Submit a parsed job and answer it: a JSON reply, or an SSE stream. Returns the status.
static int s_chat_submit (edge_http_t *self, struct mg_connection *conn, edge_job_t *job,
                          bool keep_alive)
{
    edge_client_t *client = s_client (self, conn);
    uint64_t job_id = edge_link_next_job_id (self->link);
    Aigw__Job pb;
    edge_job_to_pb (job, job_id, &pb);
    atomic_fetch_add (&self->in_flight, 1);
    edge_reply_t reply;
    int status;
    if (!client || edge_client_submit (client, &pb, job->payload, job->payload_len)) {
        int rc = edge_reply_simple (&reply, 500, "internal_error", "cannot reach the broker link");
        status = s_send_reply (self, conn, &reply, rc, keep_alive);
    }
    else
    if (job->stream)
        status = s_stream (self, conn, client, job, job_id);
    else {
        int rc = s_await (self, conn, client, job, job_id, &reply);
        status = s_chat_reply (self, conn, &reply, rc, keep_alive);
    }
    atomic_fetch_sub (&self->in_flight, 1);
    log_debug ("job %llu model=%s targets=%zu%s -> %d", (unsigned long long) job_id, job->model,
               job->ntargets, job->stream ? " stream" : "", status);
    return status;
}

//  Validate, then submit or refuse. Returns the status.
static int s_chat_job (edge_http_t *self, struct mg_connection *conn, const char *body,
                       size_t len, bool keep_alive)
{
    edge_status_t *st = edge_link_status (self->link);
    bool up = edge_link_up (self->link);
    edge_job_t job;
    edge_err_t err;
    int rc = edge_request_parse (self->cfg, body, len, s_known, st, &job, &err);
    edge_status_release (&st);
    if (rc == 0 && up) {
        int status = s_chat_submit (self, conn, &job, keep_alive);
        edge_job_reset (&job);
        return status;
    }
    edge_job_reset (&job);
    edge_reply_t reply;
    if (rc && !(err.status == 404 && !up))
        rc = edge_reply_simple (&reply, err.status, err.code, err.message);
    else
        rc = edge_reply_simple (&reply, 503, "broker_unavailable",
                                "the broker is not answering; try again shortly");
    return s_send_reply (self, conn, &reply, rc, keep_alive);
}

static int s_chat (struct mg_connection *conn, void *cbdata)
{
    edge_http_t *self = cbdata;
    int rc = s_route (self, conn, "/v1/chat/completions", "POST");
    if (rc)
        return rc;
    size_t len = 0;
    bool too_big = false;
    char *body = s_read_body (conn, self->cfg->edge.max_body, &len, &too_big);
    if (!body) {
        if (!too_big)
            return 400;     // the client went away mid-body: nobody to answer
        char msg[96];
        snprintf (msg, sizeof msg, "request body is larger than %llu bytes",
                  (unsigned long long) self->cfg->edge.max_body);
        return s_send_error (self, conn, 413, "request_too_large", msg, false, NULL);
    }
    int status;
    if (atomic_load (&self->draining))
        status = s_send_error (self, conn, 503, "shutting_down", "the edge is shutting down",
                               false, NULL);
    else
        status = s_chat_job (self, conn, body, len, s_keep_alive (conn, true));
    free (body);
    return status;
}

//  --------------------------------------------------------------- server

static void *s_init_thread (const struct mg_context *ctx, int thread_type)
{
    s_thread_t *t = thread_type == 1 ? calloc (1, sizeof (s_thread_t)) : NULL;
    if (t)
        cwatch_init (&t->watch);
    return t;
}

static void s_exit_thread (const struct mg_context *ctx, int thread_type, void *ptr)
{
    s_thread_t *t = ptr;
    if (!t)
        return;
    edge_client_destroy (&t->client);
    free (t);
}

static int s_log_message (const struct mg_connection *conn, const char *message)
{
    log_warn ("civetweb: %s", message);
    return 1;
}

//  Request metrics: civetweb calls these around every request on the handling thread.
static int s_begin_request (struct mg_connection *conn)
{
    edge_http_t *self = mg_get_user_data (mg_get_context (conn));
    observe_begin (self->obs, conn);
    return 0;
}

static void s_end_request (const struct mg_connection *conn, int status)
{
    edge_http_t *self = mg_get_user_data (mg_get_context (conn));
    observe_end (self->obs, conn, status);
}

static void s_handlers (edge_http_t *self)
{
    mg_set_request_handler (self->mg, "/v1/chat/completions", s_chat, self);
    mg_set_request_handler (self->mg, "/v1/models", s_models, self);
    mg_set_request_handler (self->mg, "/healthz", s_healthz, self);
    mg_set_request_handler (self->mg, "/readyz", s_readyz, self);
    //  Unknown API routes answer JSON; other paths are files when a document root is set
    mg_set_request_handler (self->mg, "/v1", s_not_found, self);
    if (!self->cfg->edge.document_root[0])
        mg_set_request_handler (self->mg, "**", s_not_found, self);
}

edge_http_t *edge_http_new (const cfg_t *cfg, edge_link_t *link)
{
    edge_http_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->cfg = cfg;
    self->link = link;
    self->obs = observe_new (cfg, link);
    if (!self->obs) {
        free (self);
        return NULL;
    }
    char threads[16];
    snprintf (threads, sizeof threads, "%u", cfg->edge.threads ? cfg->edge.threads : 64);
    const char *options[] = {
        "listening_ports", cfg->edge.listen,
        "num_threads", threads,
        "enable_keep_alive", "yes",
        "keep_alive_timeout_ms", S_KEEP_ALIVE_MS,
        "request_timeout_ms", S_REQUEST_TIMEOUT_MS,
        "tcp_nodelay", "1",
        "enable_directory_listing", "no",
        //  Last, so that without a document root the list ends here
        cfg->edge.document_root[0] ? "document_root" : NULL, cfg->edge.document_root,
        NULL, NULL
    };
    struct mg_callbacks callbacks;
    memset (&callbacks, 0, sizeof callbacks);
    callbacks.init_thread = s_init_thread;
    callbacks.exit_thread = s_exit_thread;
    callbacks.log_message = s_log_message;
    callbacks.begin_request = s_begin_request;
    callbacks.end_request = s_end_request;
    struct mg_init_data init = { &callbacks, self, options };
    char text[256] = "";
    unsigned code = 0;
    struct mg_error_data error = { &code, text, sizeof text };
    self->mg = mg_start2 (&init, &error);
    if (!self->mg) {
        log_error ("cannot start HTTP server on %s: %s", cfg->edge.listen,
                   text[0] ? text : "unknown error");
        observe_destroy (&self->obs);
        free (self);
        return NULL;
    }
    s_handlers (self);
    observe_attach (self->obs, self->mg);
    return self;
}

typedef struct {
    struct mg_context *mg;
    _Atomic bool done;
} s_stopper_t;

static void *s_stopper (void *arg)
{
    s_stopper_t *st = arg;
    mg_stop (st->mg);
    atomic_store (&st->done, true);
    return NULL;
}

//  Connect to our own port and hang up: wakes civetweb's accept loop, which
//  otherwise notices the stop flag only after its 2 s poll quantum.
static void s_poke (const cfg_t *cfg, int port)
{
    char host[64];
    snprintf (host, sizeof host, "%.*s", (int) strcspn (cfg->edge.listen, ":,"), cfg->edge.listen);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port) };
    if (!strchr (cfg->edge.listen, ':') || strcmp (host, "0.0.0.0") == 0
        || inet_pton (AF_INET, host, &sa.sin_addr) != 1)
        inet_pton (AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (connect (fd, (struct sockaddr *) &sa, sizeof sa) == 0)
        shutdown (fd, SHUT_RDWR);
    close (fd);
}

void edge_http_destroy (edge_http_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    edge_http_t *self = *self_p;
    *self_p = NULL;
    int port = edge_http_port (self);
    observe_close (self->obs);          // end event streams: civetweb's stop waits for them
    s_stopper_t st = { .mg = self->mg };
    pthread_t thread;
    if (pthread_create (&thread, NULL, s_stopper, &st) == 0) {
        struct timespec tick = { 0, 20 * 1000 * 1000 };
        for (int i = 0; i < 150 && !atomic_load (&st.done); i++) {
            nanosleep (&tick, NULL);
            if (port > 0 && !atomic_load (&st.done))
                s_poke (self->cfg, port);
        }
        pthread_join (thread, NULL);
    }
    else
        mg_stop (self->mg);
    observe_destroy (&self->obs);
    free (self);
}

void edge_http_drain (edge_http_t *self)
{
    atomic_store (&self->draining, true);
}

int edge_http_in_flight (edge_http_t *self)
{
    return atomic_load (&self->in_flight);
}

int edge_http_port (edge_http_t *self)
{
    struct mg_server_port ports[4];
    int n = mg_get_server_ports (self->mg, 4, ports);
    return n > 0 ? ports[0].port : 0;
}

void edge_http_stats (edge_http_t *self, edge_http_stats_t *out)
{
    out->requests = atomic_load (&self->requests);
    out->status_2xx = atomic_load (&self->s2xx);
    out->status_4xx = atomic_load (&self->s4xx);
    out->status_5xx = atomic_load (&self->s5xx);
    out->timeouts = atomic_load (&self->timeouts);
    out->streams = atomic_load (&self->streams);
    out->client_gone = atomic_load (&self->client_gone);
}
