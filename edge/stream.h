// The Server-Sent Events answer of a `stream: true` chat job on libmicrohttpd (stream.c).
// Loop thread only.
#ifndef AIGW_EDGE_STREAM_H
#define AIGW_EDGE_STREAM_H

#include <stdint.h>

#include "edge_int.h"

//  Start the SSE answer of a submitted streaming chat job.
enum MHD_Result edge_stream_start (edge_req_t *r);

//  A broker answer for the stream: a CHUNK, or the final RESULT or ERROR.
void edge_stream_answer (edge_req_t *r, edge_answer_t *a);

//  The stream's timer fired: the edge's deadline or the keep-alive.
void edge_stream_timer (edge_req_t *r, int64_t now_ms);

#endif
