// Server-Sent Events answer for a `stream: true` chat request: headers at once,
// keep-alive comments, the winner's chunks, then [DONE] or an error event; a client
// that hangs up gets its job cancelled.
#ifndef AIGW_EDGE_STREAM_H
#define AIGW_EDGE_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "link.h"
#include "waiter.h"

struct mg_connection;

#define EDGE_STREAM_PING_MS 1000        // ": keep-alive" after this long without a write

typedef enum {
    EDGE_STREAM_DONE,                   // ended with data: [DONE]
    EDGE_STREAM_FAILED,                 // ended with an error event (no [DONE])
    EDGE_STREAM_GONE,                   // the client hung up; the job was cancelled
} edge_stream_end_t;

typedef struct {
    struct mg_connection *conn;
    edge_client_t *client;              // the handler's socket to the link
    uint64_t job_id;                    // already submitted
    int64_t until_ms;                   // the edge's own limit (deadline + grace)
    cfg_policy_t policy;
    bool include_usage;
    bool keep_alive;                    // the connection may serve another request after
    edge_find_fd_fn *find_fd;           // the client's socket, for hang-up detection
    void *find_arg;
} edge_stream_t;

typedef struct {
    edge_stream_end_t end;
    int status;                         // for logs and metrics: 200, the failure's, or 499
    uint32_t chunks;                    // chunks forwarded
    bool edge_timeout;                  // ended by until_ms (no final answer came)
} edge_stream_result_t;

//  Stream the job's answer to the client; returns when the stream has ended (by
//  until_ms at the latest, plus the time a blocked write takes: civetweb's
//  request_timeout_ms). Sends CANCEL through the link unless the job ended by itself.
void edge_stream_serve (const edge_stream_t *req, edge_stream_result_t *out);

#endif
