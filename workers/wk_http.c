// HTTP transport for provider adapters: one easy handle per attempt on the loop's
// curl multi handle (shared connection cache, HTTP/1.1, TCP_NODELAY); abort closes.
#include "wk_core.h"
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

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

int wk_http_start (worker_t *w, wk_attempt_t *a, const wk_http_req_t *req)
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
    CURLMcode mrc = curl_multi_add_handle (wk_multi (w), e);
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
void wk_http_abort (worker_t *w, wk_attempt_t *a)
{
    if (!a->easy)
        return;
    curl_multi_remove_handle (wk_multi (w), a->easy);
    curl_easy_cleanup (a->easy);
    a->easy = NULL;
}

void wk_http_collect (worker_t *w)
{
    CURLM *multi = wk_multi (w);
    CURLMsg *msg;
    int left = 0;
    while ((msg = curl_multi_info_read (multi, &left))) {
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
        a->model->prov->on_done (w, a, &done);
        wk_attempt_end (w, a);
    }
}
