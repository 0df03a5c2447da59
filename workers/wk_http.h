// HTTP transport for provider adapters: one easy handle per attempt on a curl multi
// handle of its own; finished transfers go to the callback given at creation.
#ifndef AIGW_WK_HTTP_H
#define AIGW_WK_HTTP_H

#include <stdint.h>
#include <curl/curl.h>

#include "wk_attempt.h"

typedef struct _wk_http_t wk_http_t;

//  An HTTP request for wk_http_start. All pointers must stay valid until the
//  transfer ends or is aborted (the attempt or model owns them).
typedef struct {
    const char *url;
    struct curl_slist *headers;
    const char *body;
    size_t body_len;
    uint32_t connect_timeout_ms;
    uint32_t timeout_ms;        // whole transfer
    uint64_t max_bytes;         // refuse a declared Content-Length above this
} wk_http_req_t;

//  A transfer finished (called from wk_http_perform with the arg given to
//  wk_http_new). The attempt's handle is still attached: the callback replies
//  and ends the attempt, whose provider's cancel aborts it.
typedef void (wk_http_done_fn) (void *arg, wk_attempt_t *a, const wk_done_t *done);

//  Create a transport keeping up to max_connects idle connections. Returns NULL
//  on failure. curl_global_init must have been called.
wk_http_t *wk_http_new (uint32_t max_connects, wk_http_done_fn *done, void *arg);

//  Free the transport (abort every transfer first). Safe with NULL; nulls *self_p.
void wk_http_destroy (wk_http_t **self_p);

//  Start an HTTP POST for the attempt. Bytes go to a->model->prov->on_data;
//  completion to the done callback. 0 / -1 (a->curl_err says why).
int wk_http_start (wk_http_t *self, wk_attempt_t *a, const wk_http_req_t *req);

//  Abort the attempt's transfer at once: the connection is closed, not reused.
void wk_http_abort (wk_http_t *self, wk_attempt_t *a);

//  Move the transfers on (curl_multi_perform), then report every finished one
//  to the done callback.
void wk_http_perform (wk_http_t *self);

#define WK_HTTP_POLL_FDS_MAX 32       // extra fds one wk_http_poll watches

//  Sleep until a transfer's socket or one of the nfds fds (at most
//  WK_HTTP_POLL_FDS_MAX; negative ones are skipped) is readable, timeout_ms passes or
//  wk_http_wakeup is called.
void wk_http_poll (wk_http_t *self, const int *fds, size_t nfds, int timeout_ms);

//  End a wk_http_poll at once. Callable from any thread.
void wk_http_wakeup (wk_http_t *self);

#endif
