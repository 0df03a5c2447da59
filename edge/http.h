// The edge's HTTP server (civetweb): routes, handlers and response writing.
#ifndef AIGW_EDGE_HTTP_H
#define AIGW_EDGE_HTTP_H

#include <stdint.h>

#include "config.h"
#include "link.h"

typedef struct _edge_http_t edge_http_t;

typedef struct {
    uint64_t requests;                  // requests answered by our handlers
    uint64_t status_2xx;
    uint64_t status_4xx;
    uint64_t status_5xx;
    uint64_t timeouts;                  // 504 decided by the edge (no answer in time)
    uint64_t streams;                   // SSE answers (stream: true)
    uint64_t client_gone;               // clients that hung up while their job ran
} edge_http_stats_t;

//  Start civetweb on cfg->edge.listen with cfg->edge.threads handler threads. cfg
//  and link must outlive the server. Returns NULL (and logs why) on failure.
edge_http_t *edge_http_new (const cfg_t *cfg, edge_link_t *link);

//  Stop the server (joins every handler thread). Nulls *self_p; accepts NULL.
void edge_http_destroy (edge_http_t **self_p);

//  Refuse new chat jobs (503, connection closed) from now on; jobs already
//  submitted go on. Returns how many are still waiting for an answer.
void edge_http_drain (edge_http_t *self);
int edge_http_in_flight (edge_http_t *self);

//  The first listening port (useful with listen = 127.0.0.1:0), or 0.
int edge_http_port (edge_http_t *self);

void edge_http_stats (edge_http_t *self, edge_http_stats_t *out);

#endif
