// The HTTP provider adapter: builds the request through the model's dialect, runs it on
// the loop's HTTP transport (wk_http), and turns the reply (whole, or streamed) into the answer.
#include "wk_upstream.h"
#include "wk_errbody.h"
#include "wk_http.h"
#include "wk_usage.h"
#include "aclock.h"
#include "log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  ---- model setup

static struct curl_slist *s_headers (const wk_dialect_t *d, const char *accept)
{
    struct curl_slist *h = curl_slist_append (NULL, "Content-Type: application/json");
    h = h ? curl_slist_append (h, accept) : NULL;
    h = h ? curl_slist_append (h, "Expect:") : NULL;   // no 100-continue round trip
    for (size_t i = 0; h && d->extra_headers && d->extra_headers [i]; i++)
        h = curl_slist_append (h, d->extra_headers [i]);
    return h;
}

//  Add the key header to a list. 0 / -1. The text is scrubbed at fini.
static int s_add_key (struct curl_slist *h, const char *fmt, const char *key)
{
    size_t len = strlen (fmt) + strlen (key) + 1;
    char *line = malloc (len);
    if (!line)
        return -1;
    snprintf (line, len, fmt, key);
    struct curl_slist *h2 = curl_slist_append (h, line);
    explicit_bzero (line, len);
    free (line);
    return h2 ? 0 : -1;
}

int wk_upstream_model_init (wk_model_t *m, const wk_dialect_t *d)
{
    const cfg_model_t *c = m->cfg;
    size_t blen = strlen (c->base_url);
    while (blen > 0 && c->base_url [blen - 1] == '/')
        blen--;
    snprintf (m->url, sizeof m->url, "%.*s%s", (int) blen, c->base_url, d->path);
    m->dialect = d;
    m->headers = s_headers (d, "Accept: application/json");
    m->headers_sse = s_headers (d, d->framing == WK_FRAMING_SSE ? "Accept: text/event-stream"
                                                                : "Accept: application/x-ndjson");
    if (!m->headers || !m->headers_sse)
        return -1;
    if (!c->api_key_env [0])
        return 0;
    const char *key = getenv (c->api_key_env);
    if (!key || !*key) {
        m->key_missing = true;
        log_warn ("model %s: API key env var %s is not set; its attempts will fail",
                  c->name, c->api_key_env);
        return 0;
    }
    if (s_add_key (m->headers, d->auth_fmt, key) || s_add_key (m->headers_sse, d->auth_fmt, key))
        return -1;
    return 0;
}

static void s_free_headers (struct curl_slist **h)
{
    //  Scrub the key from the header list before freeing it
    for (struct curl_slist *i = *h; i; i = i->next)
        if (i->data)
            explicit_bzero (i->data, strlen (i->data));
    curl_slist_free_all (*h);
    *h = NULL;
}

void wk_upstream_model_fini (wk_model_t *m)
{
    s_free_headers (&m->headers);
    s_free_headers (&m->headers_sse);
}

//  ---- attempt

static int s_emit (void *arg, const char *json, size_t len)
{
    wk_attempt_t *a = arg;
    return wk_attempt_reply_chunk (a, json, len);
}

//  The streamed reply's state comes first, so the dialect's build may set it up.
static int s_prepare (wk_attempt_t *a, const char *req, size_t req_len)
{
    const wk_dialect_t *d = a->model->dialect;
    const cfg_model_t *c = a->model->cfg;
    if (a->stream) {
        a->st = malloc (sizeof *a->st);
        if (!a->st) {
            wk_attempt_reply_error (a, AIGW__ERROR_CODE__ERR_INTERNAL, 0, "out of memory");
            return -1;
        }
        wk_stream_init (a->st, d->framing, d->event, c->max_response_bytes, a->created, s_emit, a);
        a->st->finish_ends = d->finish_ends;
    }
    buf_t body;
    buf_init (&body, req_len * 2 + WK_UPSTREAM_REQ_SLACK);
    char err [256] = "";
    if (d->build (a, req, req_len, &body, err, sizeof err)) {
        buf_free (&body);
        wk_attempt_reply_error (a, AIGW__ERROR_CODE__ERR_BAD_REQUEST, 0, "%s", err);
        return -1;
    }
    a->req_body = body.data;        // the attempt owns it now
    a->req_len = body.len;
    buf_init (&a->resp, c->max_response_bytes);
    return 0;
}

int wk_upstream_start (wk_attempt_t *a, const char *req, size_t req_len)
{
    const cfg_model_t *c = a->model->cfg;
    if (a->model->key_missing) {
        wk_attempt_reply_error (a, AIGW__ERROR_CODE__ERR_UPSTREAM, 0,
                                "API key env var %s is not set", c->api_key_env);
        return -1;
    }
    if (s_prepare (a, req, req_len))
        return -1;
    a->prompt_est = wk_usage_prompt_estimate (req, req_len);
    wk_http_req_t hr = {
        .url = a->model->url, .headers = a->stream ? a->model->headers_sse : a->model->headers,
        .body = a->req_body, .body_len = a->req_len,
        .connect_timeout_ms = c->connect_timeout_ms, .timeout_ms = c->timeout_ms,
        .max_bytes = c->max_response_bytes,
    };
    if (a->deadline_ms && a->deadline_ms < hr.timeout_ms) {
        hr.timeout_ms = a->deadline_ms;
        a->deadline_bound = true;
    }
    if (wk_http_start (a->loop->http, a, &hr)) {
        wk_attempt_reply_error (a, AIGW__ERROR_CODE__ERR_INTERNAL, 0, "cannot start transfer: %s",
                                a->curl_err [0] ? a->curl_err : "out of memory");
        return -1;
    }
    a->reached = true;          // until the upstream refuses it or it is never sent
    return 0;
}

static bool s_ok (long status)
{
    return status >= 200 && status <= 299;
}

//  A streamed reply's usage as the upstream reported it so far.
static void s_sync_usage (wk_attempt_t *a)
{
    if (a->st)
        a->used = a->st->compl.usage;
}

//  The request never got to the upstream: nothing to pay for.
static bool s_not_sent (CURLcode code)
{
    return code == CURLE_COULDNT_RESOLVE_HOST || code == CURLE_COULDNT_RESOLVE_PROXY
        || code == CURLE_COULDNT_CONNECT || code == CURLE_SSL_CONNECT_ERROR;
}

int wk_upstream_on_data (wk_attempt_t *a, const char *data, size_t len)
{
    uint64_t max = a->model->cfg->max_response_bytes;
    if (len > max - a->resp_total) {
        a->too_big = true;
        return -1;
    }
    a->resp_total += len;
    if (!a->status) {
        curl_easy_getinfo (a->easy, CURLINFO_RESPONSE_CODE, &a->status);
        a->reached = s_ok (a->status);          // an error status: the upstream refused
    }
    if (!a->st || !s_ok (a->status))
        return buf_append (&a->resp, data, len) ? -1 : 0;
    bool ended = a->st->ended;
    int rc = wk_stream_feed (a->st, data, len);
    s_sync_usage (a);
    if (rc)
        return -1;
    //  The end marker came: give the body a moment to close so the connection is reused
    if (a->st->ended && !ended)
        wk_attempt_timer_arm (a, aclock_now_ms () + WK_UPSTREAM_GRACE_MS);
    return 0;
}

//  ---- replies

static void s_reply_usage (wk_attempt_t *a, const char *json, size_t len,
                           const wk_usage_t *u)
{
    Aigw__Usage usage = AIGW__USAGE__INIT;
    usage.has_prompt_tokens = usage.has_completion_tokens = u->has;
    usage.prompt_tokens = u->prompt_tokens;
    usage.completion_tokens = u->completion_tokens;
    wk_attempt_reply_result (a, json, len, u->has ? &usage : NULL);
}

static void s_stream_result (wk_attempt_t *a)
{
    buf_t out;
    buf_init (&out, a->model->cfg->max_response_bytes + 64 * 1024);
    if (wk_stream_result (a->st, &out))
        wk_attempt_reply_error (a, AIGW__ERROR_CODE__ERR_UPSTREAM, 0,
                                "assembled reply larger than %zu bytes", out.max);
    else
        s_reply_usage (a, out.data, out.len, &a->st->compl.usage);
    buf_free (&out);
}

static uint32_t s_status (long status)
{
    return status > 0 && status < 1000 ? (uint32_t) status : 0;
}

static void s_curl_error (wk_attempt_t *a, const wk_done_t *done, const char *what)
{
    Aigw__ErrorCode code = done->curl_code == CURLE_OPERATION_TIMEDOUT && a->deadline_bound
                         ? AIGW__ERROR_CODE__ERR_TIMEOUT : AIGW__ERROR_CODE__ERR_UPSTREAM;
    const char *detail = done->curl_error && *done->curl_error ? done->curl_error : "";
    wk_attempt_reply_error (a, code, s_status (done->http_status), "upstream %s%s%s%s", what,
                            curl_easy_strerror (done->curl_code), *detail ? ": " : "", detail);
}

//  The streamed reply's transfer ended (or the grace after its end marker ran out).
static void s_stream_done (wk_attempt_t *a, const wk_done_t *done)
{
    wk_stream_t *s = a->st;
    if (!done->timer && done->curl_code == CURLE_OK)
        wk_stream_finish (s);
    s_sync_usage (a);
    if (s->failed) {
        Aigw__ErrorCode code = s->emit_failed ? AIGW__ERROR_CODE__ERR_INTERNAL
                                              : AIGW__ERROR_CODE__ERR_UPSTREAM;
        wk_attempt_reply_error (a, code, s_status (a->status), "%s (after %" PRIu32 " chunks)",
                                s->reason, s->chunks);
        return;
    }
    if (wk_stream_complete (s)) {
        s_stream_result (a);
        return;
    }
    char what [96];
    snprintf (what, sizeof what, "stream cut after %" PRIu32 " chunks: ", s->chunks);
    if (done->curl_code != CURLE_OK)
        s_curl_error (a, done, what);
    else
        wk_attempt_reply_error (a, AIGW__ERROR_CODE__ERR_UPSTREAM, s_status (a->status),
                                "upstream stream cut after %" PRIu32 " chunks (no end marker)",
                                s->chunks);
}

static void s_whole_done (wk_attempt_t *a, const wk_done_t *done)
{
    wk_errbody_reply_t r;
    if (done->curl_code != CURLE_OK) {
        s_curl_error (a, done, "");
        return;
    }
    if (!s_ok (done->http_status)) {
        wk_errbody_parse (done->http_status, a->resp.data, a->resp.len, &r);
        snprintf (a->upstream_code, sizeof a->upstream_code, "%s", r.upstream_code);
        wk_attempt_reply_error (a, r.code, r.status, "%s", r.message);
        return;
    }
    buf_t out;
    buf_init (&out, a->model->cfg->max_response_bytes + 64 * 1024);
    const char *json = NULL;
    size_t json_len = 0;
    wk_usage_t usage = { 0 };
    char err [320] = "";
    if (a->model->dialect->full (a, a->resp.data ? a->resp.data : "", a->resp.len, &out, &json,
                                 &json_len, &usage, err, sizeof err) == 0)
        s_reply_usage (a, json, json_len, &usage);
    else
        wk_attempt_reply_error (a, AIGW__ERROR_CODE__ERR_UPSTREAM, s_status (done->http_status),
                                "%s", err);
    buf_free (&out);
}

void wk_upstream_on_done (wk_attempt_t *a, const wk_done_t *done)
{
    if ((done->http_status && !s_ok (done->http_status)) || s_not_sent (done->curl_code))
        a->reached = false;
    if (a->too_big || done->curl_code == CURLE_FILESIZE_EXCEEDED) {
        wk_errbody_reply_t r;
        wk_errbody_too_big (a->model->cfg->max_response_bytes, done->http_status, &r);
        if (a->st && a->st->chunks)
            wk_attempt_reply_error (a, r.code, r.status, "%s (after %" PRIu32 " chunks)", r.message,
                                    a->st->chunks);
        else
            wk_attempt_reply_error (a, r.code, r.status, "%s", r.message);
        return;
    }
    //  A streamed request whose reply is an error status is read as a whole body
    long status = done->timer ? a->status : done->http_status;
    if (a->st && s_ok (status))
        s_stream_done (a, done);
    else
        s_whole_done (a, done);
}

void wk_upstream_cancel (wk_attempt_t *a)
{
    wk_attempt_timer_disarm (a);
    //  Cancelled before the request went out (still connecting): nothing consumed
    long sent = 0;
    if (a->easy && !a->replied && !a->status
    &&  curl_easy_getinfo (a->easy, CURLINFO_REQUEST_SIZE, &sent) == CURLE_OK && sent == 0)
        a->reached = false;
    wk_http_abort (a->loop->http, a);
    free (a->req_body);
    a->req_body = NULL;
    a->req_len = 0;
    buf_free (&a->resp);
    if (a->st) {
        wk_stream_free (a->st);
        free (a->st);
        a->st = NULL;
    }
}

//  ---- shared reply translation (anthropic, ollama)

int wk_upstream_translate (const char *body, size_t len, const char *id, int64_t created,
                           wk_upstream_reader_fn read, buf_t *out, wk_usage_t *usage,
                           char *err, size_t errlen)
{
    cJSON *root = cJSON_ParseWithLength (body, len);
    wk_compl_t c;
    wk_compl_init (&c, out->max);
    if (id)
        wk_compl_meta (&c, id, NULL, NULL);
    c.created = created;
    int rc = -1;
    if (!cJSON_IsObject (root))
        snprintf (err, errlen, "upstream returned malformed JSON (HTTP 200)");
    else
    if (cJSON_GetObjectItemCaseSensitive (root, "error")) {
        char detail [WK_ERRBODY_DETAIL_MAX + 8];
        wk_errbody_detail (body, len, detail, sizeof detail);
        snprintf (err, errlen, "upstream error: %s", detail);
    }
    else
    if (read (&c, root, err, errlen) == 0) {
        rc = wk_compl_render (&c, out);
        if (rc)
            snprintf (err, errlen, "translated reply larger than %zu bytes", out->max);
        *usage = c.usage;
    }
    wk_compl_free (&c);
    cJSON_Delete (root);
    return rc;
}
