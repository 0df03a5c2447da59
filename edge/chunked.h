// HTTP/1.1 chunked transfer coding of buffered SSE text (pure): the chunk-size line and
// the trailing CRLF are written in place, in the room an sse_buf_t keeps around its text.
#ifndef AIGW_EDGE_CHUNKED_H
#define AIGW_EDGE_CHUNKED_H

#include <stdbool.h>
#include <stddef.h>

#include "sse.h"

//  The bytes to write for the buffered text: as is, or as one HTTP/1.1 chunk (chunked);
//  last (chunked only) also ends the chunked body. Sets *len; NULL when there is
//  nothing to write. The buffer must not change until the bytes are written.
const char *chunked_frame (sse_buf_t *b, bool chunked, bool last, size_t *len);

#endif
