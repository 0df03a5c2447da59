// Internals shared by the edge's server modules: the per-connection, per-request and
// per-loop state (server.c owns the loops). Types only; each module declares its own
// functions (http.h, stream.h, req.h, respond.h, timer.h, shared.h, observe.h).
// Not a public API.
#ifndef AIGW_EDGE_INT_H
#define AIGW_EDGE_INT_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cfg.h"
#include "emetrics.h"
#include "fanout.h"
#include "keys.h"
#include "link.h"
#include "sse.h"
#include "theap.h"
#include "timer.h"

typedef struct _edge_loop_t edge_loop_t;
typedef struct _edge_req_t edge_req_t;
typedef struct _edge_conn_t edge_conn_t;
typedef struct _edge_server_t edge_server_t;   // server.h
typedef struct _edge_shared_t edge_shared_t;   // shared.h

#define EDGE_GRACE_MS 2000              // wait past the job deadline before answering 504
#define EDGE_EVENTS_PING_MS 15000       // event stream comment after this much silence
#define EDGE_SSE_BLOCK 1024             // MHD's reader buffer (HTTP/1.0 bodies; 1 KiB each)

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
    edge_server_t *srv;                 // for server.c
    edge_shared_t *sh;                  // what the loops share
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

#endif
