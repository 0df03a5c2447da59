// How the edge answers a request on libmicrohttpd. edge_respond_queue is the one place
// a response gets its status and headers; the JSON, error and SSE responses, the CORS
// preflight and the raw answer on a connection without a request all go through here.
// (The bodies themselves are reply.h's.) Loop thread only.
#ifndef AIGW_EDGE_RESPOND_H
#define AIGW_EDGE_RESPOND_H

#include <stdbool.h>
#include <stddef.h>

#include "edge_int.h"
#include "reply.h"

//  Queue resp with status and these headers, in this order: Content-Type (type, none
//  when NULL), Cache-Control (cache), the extra lines ("Name: value\n", may be NULL),
//  the request's x-ratelimit-* lines, the CORS headers its Origin earns. Sets
//  r->status. Takes ownership of resp (MHD_NO when it is NULL).
enum MHD_Result edge_respond_queue (edge_req_t *r, int status, struct MHD_Response *resp,
                                    const char *type, const char *cache, const char *extra);

//  Queue a complete response (Cache-Control: no-store); the request is then done.
//  Takes ownership of body (malloc'd, may be NULL with len 0).
enum MHD_Result edge_respond_send (edge_req_t *r, int status, const char *type, char *body,
                                   size_t len, const char *extra);

//  Queue a built reply (JSON, with x-aigw-winner and Retry-After from it); rc is the
//  builder's result (nonzero: a 500 instead). Takes the reply's body.
enum MHD_Result edge_respond_reply (edge_req_t *r, edge_reply_t *reply, int rc,
                                    const char *extra);

//  Queue an OpenAI error body the edge decided.
enum MHD_Result edge_respond_error (edge_req_t *r, int status, const char *code,
                                    const char *message, const char *extra);

//  Queue an OpenAI error body with an explicit type (401/403/429 of the key checks).
enum MHD_Result edge_respond_error_typed (edge_req_t *r, int status, const char *type,
                                          const char *code, const char *message,
                                          const char *extra);

//  Queue the 200 Server-Sent Events response whose body reader is reader (cls = r).
enum MHD_Result edge_respond_sse (edge_req_t *r, MHD_ContentReaderCallback reader);

//  Answer OPTIONS: a CORS preflight from an allowed origin (edge/cors_origins), 403
//  from another, a plain 204 with Allow otherwise.
enum MHD_Result edge_respond_options (edge_req_t *r);

//  Write an OpenAI error answer (status line, headers, JSON body, Connection: close)
//  on socket fd itself, for a connection MHD holds no request for. True when sent.
bool edge_respond_raw (int fd, int status, const char *code, const char *message);

#endif
