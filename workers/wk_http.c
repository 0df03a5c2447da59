// HTTP transport for provider adapters: one easy handle per attempt on one curl multi
// handle (shared connection cache, HTTP/1.1, TCP_NODELAY); abort closes.
#include "wk_http.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct _wk_http_t {
    CURLM *multi;
    wk_http_done_fn *done;      // finished transfers go here
    void *arg;                  // the done callback's
};

wk_http_t *wk_http_new (uint32_t max_connects, wk_http_done_fn *done, void *arg)
{
    wk_http_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->multi = curl_multi_init ();
    if (!self->multi) {
        free (self);
        return NULL;
    }
    //  Keep an idle connection per slot so bursts reuse them
    curl_multi_setopt (self->multi, CURLMOPT_MAXCONNECTS, (long) max_connects);
    self->done = done;
    self->arg = arg;
    return self;
}

void wk_http_destroy (wk_http_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    curl_multi_cleanup ((*self_p)->multi);
    free (*self_p);
    *self_p = NULL;
}

static size_t s_write (char *ptr, size_t size, size_t nmemb, void *userdata)
{
    wk_attempt_t *a = userdata;
    size_t n = size * nmemb;
    if (!a->model->prov->on_data || a->model->prov->on_data (a, ptr, n))
        return 0;                   // CURLE_WRITE_ERROR ends the transfer
    return n;
}

//  Response headers: only Retry-After / retry-after-ms are kept (bounded parse).
static size_t s_header (char *ptr, size_t size, size_t nitems, void *userdata)
{
    wk_attempt_t *a = userdata;
    size_t n = size * nitems;
    wk_retry_header (&a->retry, ptr, n, (int64_t) time (NULL));
    return n;
}

#define S_SET(opt, val) if (rc == CURLE_OK) rc = curl_easy_setopt (e, opt, val)

static CURLcode s_configure (CURL *e, wk_attempt_t *a, const wk_http_req_t *req)
{
    CURLcode rc = CURLE_OK;
    S_SET (CURLOPT_URL, req->url);
    S_SET (CURLOPT_POST, 1L);
    S_SET (CURLOPT_POSTFIELDS, req->body);
    S_SET (CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_len);
    S_SET (CURLOPT_HTTPHEADER, req->headers);
    S_SET (CURLOPT_WRITEFUNCTION, s_write);
    S_SET (CURLOPT_WRITEDATA, a);
    S_SET (CURLOPT_HEADERFUNCTION, s_header);
    S_SET (CURLOPT_HEADERDATA, a);
    S_SET (CURLOPT_PRIVATE, a);
    S_SET (CURLOPT_ERRORBUFFER, a->curl_err);
    S_SET (CURLOPT_NOSIGNAL, 1L);
    S_SET (CURLOPT_TCP_NODELAY, 1L);
    S_SET (CURLOPT_TCP_KEEPALIVE, 1L);
    S_SET (CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
    S_SET (CURLOPT_CONNECTTIMEOUT_MS, (long) req->connect_timeout_ms);
    S_SET (CURLOPT_TIMEOUT_MS, (long) req->timeout_ms);
    if (req->max_bytes)
        S_SET (CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) req->max_bytes);
    return rc;
}

int wk_http_start (wk_http_t *self, wk_attempt_t *a, const wk_http_req_t *req)
{
    a->curl_err [0] = 0;
    a->retry = (wk_retry_t) { 0 };
    a->upstream_code [0] = 0;
    CURL *e = curl_easy_init ();
    if (!e)
        return -1;
    CURLcode rc = s_configure (e, a, req);
    if (rc != CURLE_OK) {
        snprintf (a->curl_err, sizeof a->curl_err, "%s", curl_easy_strerror (rc));
        curl_easy_cleanup (e);
        return -1;
    }
    CURLMcode mrc = curl_multi_add_handle (self->multi, e);
    if (mrc != CURLM_OK) {
        snprintf (a->curl_err, sizeof a->curl_err, "%s", curl_multi_strerror (mrc));
        curl_easy_cleanup (e);
        return -1;
    }
    a->easy = e;
    return 0;
}

//  Removing an unfinished transfer makes libcurl close its HTTP/1.1 connection
//  (it is never returned to the cache), so the upstream sees the client go away.
void wk_http_abort (wk_http_t *self, wk_attempt_t *a)
{
    if (!a->easy)
        return;
    curl_multi_remove_handle (self->multi, a->easy);
    curl_easy_cleanup (a->easy);
    a->easy = NULL;
}

static void s_collect (wk_http_t *self)
{
    CURLMsg *msg;
    int left = 0;
    while ((msg = curl_multi_info_read (self->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        wk_attempt_t *a = NULL;
        curl_easy_getinfo (msg->easy_handle, CURLINFO_PRIVATE, (char **) &a);
        if (!a || a->easy != msg->easy_handle) {
            log_error ("curl reported a transfer with no attempt; dropped");
            continue;
        }
        long status = 0;
        curl_easy_getinfo (a->easy, CURLINFO_RESPONSE_CODE, &status);
        wk_done_t done = {
            .curl_code = msg->data.result, .http_status = status, .curl_error = a->curl_err,
        };
        self->done (self->arg, a, &done);
    }
}

void wk_http_perform (wk_http_t *self)
{
    int running = 0;
    curl_multi_perform (self->multi, &running);
    s_collect (self);
}

void wk_http_poll (wk_http_t *self, const int *fds, size_t nfds, int timeout_ms)
{
    struct curl_waitfd wfd [WK_HTTP_POLL_FDS_MAX];
    unsigned n = 0;
    for (size_t i = 0; i < nfds && n < WK_HTTP_POLL_FDS_MAX; i++)
        if (fds [i] >= 0)
            wfd [n++] = (struct curl_waitfd) { .fd = fds [i], .events = CURL_WAIT_POLLIN };
    curl_multi_poll (self->multi, n ? wfd : NULL, n, timeout_ms, NULL);
}

void wk_http_wakeup (wk_http_t *self)
{
    curl_multi_wakeup (self->multi);
}
