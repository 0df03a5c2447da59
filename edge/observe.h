// Observability glue for the HTTP server: per-request metrics from civetweb's
// begin/end callbacks, GET /metrics (Prometheus), GET /v1/aigw/events (SSE bridge)
// and the dashboard at / (edge/document_root).
#ifndef AIGW_EDGE_OBSERVE_H
#define AIGW_EDGE_OBSERVE_H

#include <stddef.h>

#include "config.h"
#include "emetrics.h"
#include "link.h"

struct mg_context;
struct mg_connection;

typedef struct _observe_t observe_t;

#define OBSERVE_STALE_MS 3000           // broker series leave /metrics after this silence
#define OBSERVE_CLIENTS_MAX 32          // event-stream browsers (also <= threads / 2)
#define OBSERVE_METRICS_MAX (8u << 20)  // /metrics body limit

//  Start the metrics and the bridge thread (SUB to cfg->broker.metrics). link may be
//  NULL. cfg and link must outlive the object. NULL on failure.
observe_t *observe_new (const cfg_t *cfg, edge_link_t *link);

//  Register /metrics, /v1/aigw/events and / on a started server.
void observe_attach (observe_t *self, struct mg_context *mg);

//  civetweb begin_request / end_request hooks (same thread, one request at a time).
void observe_begin (observe_t *self, const struct mg_connection *conn);
void observe_end (observe_t *self, const struct mg_connection *conn, int status);

//  End every event stream now (call before stopping civetweb, whose stop waits for
//  handlers).
void observe_close (observe_t *self);

//  Stop the bridge and free. Call after civetweb stopped. Nulls *self_p; accepts NULL.
void observe_destroy (observe_t **self_p);

emetrics_t *observe_metrics (observe_t *self);

//  Make a relative document root absolute against the directory of config_path (NULL:
//  the current directory). root has room for cap bytes. 0, or -1 (root unchanged)
//  if the result does not fit.
int observe_resolve_root (char *root, size_t cap, const char *config_path);

#endif
