// Observability routes of the edge: GET /metrics (Prometheus), GET /v1/aigw/events (the
// metrics-stream bridge as SSE), the dashboard and its static files from
// edge/document_root. The routes run on the loop thread.
#ifndef AIGW_EDGE_OBSERVE_H
#define AIGW_EDGE_OBSERVE_H

#include <stddef.h>
#include <stdint.h>

#include "edge_int.h"
#include "shared.h"

#define OBSERVE_STALE_MS 3000           // broker series leave /metrics after this silence
#define OBSERVE_CLIENTS_MAX 32          // event-stream browsers at once
#define OBSERVE_METRICS_MAX (8u << 20)  // /metrics body limit

typedef struct _observe_t observe_t;

//  Start the request metrics and the metrics-stream bridge. sh gives the configuration,
//  the broker status, the counters and the links; it must outlive the object (sh->auth
//  is read at each /metrics). NULL on failure.
observe_t *observe_new (edge_shared_t *sh);

//  Free; accepts NULL, nulls *self_p.
void observe_destroy (observe_t **self_p);

//  Stop the bridge (before the loops stop).
void observe_close (observe_t *self);

//  The request metrics (owned by self).
emetrics_t *observe_metrics (observe_t *self);

enum MHD_Result observe_metrics_route (observe_t *self, edge_req_t *r);
enum MHD_Result observe_events_route (observe_t *self, edge_req_t *r);
enum MHD_Result observe_static_route (observe_t *self, edge_req_t *r, const char *url,
                                      const char *method);

//  The loop's wake fd fired: resume event streams with news.
void observe_events_wake (edge_loop_t *loop);

//  An event stream's timer fired: a ping after silence.
void observe_events_timer (edge_req_t *r, int64_t now_ms);

//  An event stream ended: leave the loop's list and the fan-out.
void observe_events_leave (observe_t *self, edge_req_t *r);

#endif
