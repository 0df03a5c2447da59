// The edge's HTTP server on libmicrohttpd: edge/threads event loops, each with its own
// MHD daemon (external epoll), listening socket (SO_REUSEPORT), broker link and timers.
// A request that waits for the broker or streams is suspended and holds no thread.
#ifndef AIGW_EDGE_SERVER_H
#define AIGW_EDGE_SERVER_H

#include <stdint.h>

#include "cfg.h"
#include "link.h"

typedef struct _edge_server_t edge_server_t;

typedef struct {
    uint64_t requests;                  // requests answered (all routes)
    uint64_t status_2xx;
    uint64_t status_4xx;
    uint64_t status_5xx;
    uint64_t timeouts;                  // 504 decided by the edge (no answer in time)
    uint64_t streams;                   // SSE chat answers (stream: true)
    uint64_t client_gone;               // clients that hung up while their job ran
    uint64_t conn_refused;              // connections closed at accept (limits)
    uint64_t conn_over_limit;           // connections answered 503 (max_connections)
    uint64_t per_ip_refused;            // of conn_refused, for max_per_ip
    uint64_t header_timeouts;           // 408: headers not complete in time
    uint64_t jobs_refused;              // 429: max_jobs reached
    uint64_t bad_framing;               // 400: duplicate or conflicting length headers
    uint64_t stream_overflow;           // SSE clients dropped at stream_buffer
    uint64_t connections;               // open now
    uint64_t jobs_in_flight;            // now
} edge_server_stats_t;

//  Listen on cfg->edge.listen and start the loops (cfg->edge.threads, 0 = one per
//  core). cfg must outlive the server. NULL (logged) on failure.
edge_server_t *edge_server_new (const cfg_t *cfg);

//  Stop every loop and free. Requests still open are closed. Nulls *self_p.
void edge_server_destroy (edge_server_t **self_p);

//  Refuse new chat jobs (503 shutting_down) from now on; jobs in flight go on.
void edge_server_drain (edge_server_t *self);

//  Chat jobs submitted and not yet answered.
int edge_server_in_flight (edge_server_t *self);

//  Answer every waiting job now with 503 and cancel it at the broker (shutdown).
void edge_server_fail_all (edge_server_t *self);

//  The listening port (useful with listen = 127.0.0.1:0).
int edge_server_port (edge_server_t *self);

void edge_server_stats (edge_server_t *self, edge_server_stats_t *out);

//  The broker links' counters, summed over the loops.
void edge_server_link_stats (edge_server_t *self, edge_link_stats_t *out);

#endif
