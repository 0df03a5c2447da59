// What every route does with its request (edge_int.h's edge_req_t): suspend and resume
// it on libmicrohttpd, watch its client for a hang-up, hand its buffered output to a
// body reader, end its job when the client is gone, charge an answer to its key.
// (Parsing a chat body is request.h's.) Loop thread only.
#ifndef AIGW_EDGE_REQ_H
#define AIGW_EDGE_REQ_H

#include <stddef.h>

#include "edge_int.h"
#include "aigw.pb-c.h"

//  Resume a suspended request (no-op if not suspended) / suspend it (no-op if it is).
void edge_req_resume (edge_req_t *r);
void edge_req_suspend (edge_req_t *r);

//  A waiting or streaming request learns of its client's hang-up (edge_req_gone).
//  Returns -1 when the client is already gone.
int edge_req_watch (edge_req_t *r);
void edge_req_unwatch (edge_req_t *r);

//  Move up to max bytes of r->out into buf (a reader's copy-out). Returns the count.
size_t edge_req_take_out (edge_req_t *r, char *buf, size_t max);

//  The client of a waiting or streaming request hung up (or must be dropped): status
//  499, the job cancelled at the broker, the request resumed to be closed.
void edge_req_gone (edge_req_t *r);

//  Charge a final answer's attempts to the request's key (spend.h).
void edge_req_settle (edge_req_t *r, Aigw__AttemptInfo *const *att, size_t n,
                      const char *winner, const Aigw__Usage *usage);

#endif
