// The edge's request handling on libmicrohttpd (http.c): the handler MHD calls for each
// request, and what the server hands it (broker answers, timers, completion). Loop
// thread only.
#ifndef AIGW_EDGE_HTTP_H
#define AIGW_EDGE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "edge_int.h"

//  MHD's access handler (cls = the loop): framing checks, routing, the routes.
enum MHD_Result edge_http_access (void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls);

//  A link answer for a request (link callback).
void edge_http_answer (void *req, edge_answer_t *a, void *arg);

//  A request's timer fired (deadline, stream keep-alive, event stream ping).
void edge_http_timer (void *owner, int64_t now_ms);

//  The request ended (MHD completion); frees it.
void edge_http_completed (edge_req_t *r);

#endif
