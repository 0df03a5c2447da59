// Internals shared by the edge's server modules (server.c, http.c, stream.c, observe.c):
// the event loop, the per-connection and per-request state. Not a public API.
#ifndef AIGW_EDGE_INT_H
#define AIGW_EDGE_INT_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "auth.h"
#include "cfg.h"
#include "emetrics.h"
#include "fanout.h"
#include "link.h"
#include "request.h"
#include "server.h"
#include "sse.h"
#include "status.h"
#include "theap.h"

typedef struct _edge_loop_t edge_loop_t;
typedef struct _edge_req_t edge_req_t;
typedef struct _edge_conn_t edge_conn_t;
typedef struct _observe_t observe_t;

#define EDGE_GRACE_MS 2000              // wait past the job deadline before answering 504
#define EDGE_EVENTS_PING_MS 15000       // event stream comment after this much silence
#define EDGE_SSE_BLOCK 1024             // MHD's reader buffer (HTTP/1.0 bodies; 1 KiB each)

//  A timer in the loop's heap; fire is called on the loop thread when it is due.
typedef struct {
    theap_node_t node;                  // first: the heap hands back this pointer
    void (*fire) (void *owner, int64_t now_ms);
    void *owner;
} edge_timer_t;

//  One TCP (or TLS) connection, MHD's socket context.
struct _edge_conn_t {
    edge_loop_t *loop;
    int fd;
    uint8_t ip[16];                     // client address for the per-IP count
    uint8_t ip_len;                     // 4 or 16; 0 = not counted
    bool over_limit;                    // beyond max_connections: answer 503 and close
    bool in_request;                    // headers of the current request are complete
    bool line_seen;                     // the current request's first line arrived
    uint32_t requests;                  // requests completed on it
    bool watched;                       // fd is in the loop's hang-up set
    bool hup;                           // the client hung up (seen by the watch)
    edge_req_t *watcher;                // the request waiting or streaming on it, or NULL
    edge_timer_t header_timer;          // header_timeout_ms
};

typedef enum {
    EDGE_REQ_HEADERS,                   // request line seen, headers not yet complete
    EDGE_REQ_BODY,                      // headers done, reading (or discarding) the body
    EDGE_REQ_WAIT,                      // chat job submitted, connection suspended
    EDGE_REQ_ANSWER,                    // final answer (or failure) ready to send
    EDGE_REQ_STREAM,                    // SSE chat stream being served
    EDGE_REQ_EVENTS,                    // metrics event stream being served
    EDGE_REQ_DONE,                      // response queued
} edge_req_state_t;

//  One HTTP request, MHD's per-request context (from the URI callback to completion).
struct _edge_req_t {
    edge_loop_t *loop;
    struct MHD_Connection *mc;
    edge_conn_t *conn;
    edge_req_state_t state;
    em_route_t route;
    size_t target_len;                  // request-target bytes (path and query)
    int64_t start_us;
    int status;                         // for metrics and logs (499: the client left)
    int64_t upstream_us;                // winner's upstream span, -1 = none
    bool suspended;
    bool watched;                       // conn->watcher is this request
    bool gone;                          // the client hung up
    bool job_live;                      // submitted, no final answer yet (counted in max_jobs)
    bool too_big;                       // body over the limit
    bool timed_out;                     // the edge's own deadline passed
    char *body;                         // owned
    size_t len, cap;
    size_t discarded;                   // body bytes dropped (routes without a body)
    cfg_policy_t policy;                // of the submitted job
    bool stream;                        // stream: true
    bool include_usage;                 // stream_options.include_usage
    uint64_t job_id;
    bool has_ticket;                    // a key admitted it (keys_release at the end)
    uint64_t ticket;
    char account[KEYS_NAME_MAX];        // the paying key's name ("" = none)
    char rl_headers[640];               // x-ratelimit-* lines sent with the answer
    int64_t deadline_ms;                // give up then (aclock ms)
    int64_t ping_at_ms;                 // next keep-alive comment (streams)
    edge_timer_t timer;
    edge_answer_t answer;               // final answer of a non-streaming job
    //  Streams (chat SSE and metrics events)
    sse_state_t sse;
    sse_buf_t out;                      // text waiting for MHD to take it
    size_t out_off;                     // bytes of out already taken
    bool ended;                         // the last event is in out
    fanout_client_t *fc;                // metrics events
    edge_req_t *ev_prev, *ev_next;      // in loop->events
    bool preamble;                      // metrics events: "retry:" line sent
    edge_req_t *all_prev, *all_next;    // in loop->reqs
};

struct _edge_loop_t {
    edge_server_t *srv;
    int index;
    pthread_t thread;
    bool started;
    int listen_fd;                      // owned until MHD takes it
    struct MHD_Daemon *mhd;
    edge_link_t *link;
    int watch_fd;                       // epoll: client hang-ups (EPOLLRDHUP)
    int wake_fd;                        // eventfd: stop, fail, metrics events
    theap_t timers;
    edge_req_t *events;                 // metrics event streams on this loop
    edge_req_t *reqs;                   // every request this loop's MHD knows of
    _Atomic bool stop;
    _Atomic bool fail;                  // answer every waiting job now (shutdown)
    _Atomic bool idle;                  // no job waiting (for the drain)
};

//  ----------------------------------------------------------------- server.c

const cfg_t *edge_server_cfg (edge_server_t *srv);
observe_t *edge_server_observe (edge_server_t *srv);
edge_status_box_t *edge_server_box (edge_server_t *srv);
auth_t *edge_server_auth (edge_server_t *srv);
bool edge_server_draining (edge_server_t *srv);
uint64_t edge_server_job_id (edge_server_t *srv);
//  Take a job slot (max_jobs); false when full. Release with edge_server_job_done.
bool edge_server_job_start (edge_server_t *srv);
void edge_server_job_done (edge_server_t *srv);
void edge_server_count (edge_server_t *srv, int status, bool stream, bool timeout, bool gone);
//  True when every loop's broker link is up (ready to serve on any connection).
bool edge_server_link_up (edge_server_t *srv);
void edge_server_count_framing (edge_server_t *srv);
void edge_server_count_overflow (edge_server_t *srv);

//  Timers and the hang-up watch of a loop.
void edge_timer_init (edge_timer_t *t, void (*fire) (void *, int64_t), void *owner);
void edge_timer_set (edge_loop_t *loop, edge_timer_t *t, int64_t when_ms);
void edge_timer_clear (edge_loop_t *loop, edge_timer_t *t);
//  A waiting or streaming request learns of its client's hang-up (edge_http_gone).
//  Returns -1 when the client is already gone.
int edge_watch (edge_req_t *r);
void edge_unwatch (edge_req_t *r);
//  Resume a suspended request (no-op if not suspended).
void edge_req_resume (edge_req_t *r);
void edge_req_suspend (edge_req_t *r);

//  ----------------------------------------------------------------- http.c

enum MHD_Result edge_http_access (void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls);
//  A link answer for a request (link callback).
void edge_http_answer (void *req, edge_answer_t *a, void *arg);
//  A request's timer fired (deadline, stream keep-alive, event stream ping).
void edge_http_timer (void *owner, int64_t now_ms);
//  The request ended (MHD completion); frees it.
void edge_http_completed (edge_req_t *r);
//  The client of a waiting or streaming request hung up.
void edge_http_gone (edge_req_t *r);

//  Queue a response with the common headers (Cache-Control, CORS, extra lines
//  "Name: value\n"). Takes ownership of body (malloc'd, may be NULL with len 0).
enum MHD_Result edge_http_send (edge_req_t *r, int status, const char *type, char *body,
                                size_t len, const char *extra);
//  Queue an OpenAI error body with an explicit type (401/403/429 of the key checks).
enum MHD_Result edge_http_error_typed (edge_req_t *r, int status, const char *type,
                                       const char *code, const char *message,
                                       const char *extra);
//  Charge a final answer's attempts to the request's key (spend.h).
void edge_http_settle (edge_req_t *r, Aigw__AttemptInfo *const *att, size_t n,
                       const char *winner, const Aigw__Usage *usage);
//  Queue an OpenAI error body the edge decided.
enum MHD_Result edge_http_error (edge_req_t *r, int status, const char *code,
                                 const char *message, const char *extra);
//  Queue the 200 Server-Sent Events response whose body reader is reader (cls = r).
enum MHD_Result edge_http_sse (edge_req_t *r, MHD_ContentReaderCallback reader);
//  Move up to max bytes of r->out into buf (a reader's copy-out). Returns the count.
size_t edge_req_take_out (edge_req_t *r, char *buf, size_t max);
//  Add the CORS headers a request's Origin earns (none when not allowed).
void edge_http_cors (edge_req_t *r, struct MHD_Response *resp);

//  ----------------------------------------------------------------- stream.c

//  Start the SSE answer of a submitted streaming chat job.
enum MHD_Result edge_stream_start (edge_req_t *r);
void edge_stream_answer (edge_req_t *r, edge_answer_t *a);
void edge_stream_timer (edge_req_t *r, int64_t now_ms);
//  End a stream with an error event the edge decided (cancels the job).
void edge_stream_fail (edge_req_t *r, int status, const char *code, const char *message);

//  ----------------------------------------------------------------- observe.c

observe_t *observe_new (edge_server_t *srv);
void observe_destroy (observe_t **self_p);
void observe_close (observe_t *self);
emetrics_t *observe_metrics (observe_t *self);
enum MHD_Result observe_metrics_route (edge_req_t *r);
enum MHD_Result observe_events_route (edge_req_t *r);
enum MHD_Result observe_static_route (edge_req_t *r, const char *url, const char *method);
//  The loop's wake fd fired: resume event streams with news.
void observe_events_wake (edge_loop_t *loop);
void observe_events_timer (edge_req_t *r, int64_t now_ms);
void observe_events_leave (edge_req_t *r);

#endif
