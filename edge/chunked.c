// HTTP/1.1 chunked transfer coding of buffered SSE text (see chunked.h).
#include "chunked.h"

#include <stdio.h>
#include <string.h>

//  The size line (at most 8 hex digits and CRLF) and "\r\n0\r\n\r\n" fit the buffer's room
_Static_assert (SSE_TEXT_MAX <= 0xffffffffu && SSE_HEADROOM >= 8 + 2 && SSE_TAIL >= 7,
                "sse_buf_t keeps too little room for the chunk framing");

static const char s_last_chunk[] = "0\r\n\r\n";

const char *chunked_frame (sse_buf_t *b, bool chunked, bool last, size_t *len)
{
    *len = 0;
    if (!b->len) {
        if (!chunked || !last)
            return NULL;
        *len = sizeof s_last_chunk - 1;
        return s_last_chunk;
    }
    char *text = b->mem + SSE_HEADROOM;
    if (!chunked) {
        *len = b->len;
        return text;
    }
    char head[SSE_HEADROOM + 1];
    int n = snprintf (head, sizeof head, "%zx\r\n", b->len);
    char *start = text - n;
    memcpy (start, head, (size_t) n);
    memcpy (text + b->len, last ? "\r\n0\r\n\r\n" : "\r\n", last ? 7 : 2);
    *len = (size_t) n + b->len + (last ? 7 : 2);
    return start;
}
