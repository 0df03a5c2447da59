// Observability routes of the edge: GET /metrics (Prometheus), GET /v1/aigw/events (the
// metrics-stream bridge as SSE), the dashboard and its static files from
// edge/document_root. The server-side entry points are in edge_int.h.
#ifndef AIGW_EDGE_OBSERVE_H
#define AIGW_EDGE_OBSERVE_H

#include <stddef.h>

#define OBSERVE_STALE_MS 3000           // broker series leave /metrics after this silence
#define OBSERVE_CLIENTS_MAX 32          // event-stream browsers at once
#define OBSERVE_METRICS_MAX (8u << 20)  // /metrics body limit


#endif
