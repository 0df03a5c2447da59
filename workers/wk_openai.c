// The openai provider: request rewriting (no re-serialisation), reply classification,
// and the adapter ops driving one non-streaming POST per attempt through wk_http.
#include "wk_openai.h"
#include "wk_core.h"
#include "wk_json.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WK_OPENAI_REWRITE_SLACK 4096    // rewritten request may grow by this much

//  ---- request rewriting

static int s_put_member (wk_buf_t *out, const char *req, const wk_json_member_t *m,
                         const char *value, size_t value_len, bool *first)
{
    if (!*first && wk_buf_append (out, ",", 1))
        return -1;
    *first = false;
    if (wk_buf_append (out, req + m->key_off, m->key_len) || wk_buf_append (out, ":", 1))
        return -1;
    return wk_buf_append (out, value, value_len);
}

static int s_put_model (wk_buf_t *out, const char *upstream_model, bool *first)
{
    if (!*first && wk_buf_append (out, ",", 1))
        return -1;
    *first = false;
    if (wk_buf_puts (out, "\"model\":"))
        return -1;
    return wk_json_put_string (out, upstream_model);
}

int wk_openai_rewrite (const char *req, size_t len, const char *upstream_model,
                       wk_buf_t *out, const char **err)
{
    wk_json_member_t members [WK_JSON_MEMBERS];
    int n = wk_json_members (req, len, members, WK_JSON_MEMBERS);
    if (n < 0) {
        *err = "request payload is not a well-formed JSON object";
        return -1;
    }
    out->max = len + strlen (upstream_model) * 6 + WK_OPENAI_REWRITE_SLACK;
    bool first = true;
    bool have_model = false;
    int rc = wk_buf_append (out, "{", 1);
    for (int i = 0; i < n && rc == 0; i++) {
        const wk_json_member_t *m = &members [i];
        if (wk_json_key_is (req, m, "model")) {
            rc = s_put_model (out, upstream_model, &first);
            have_model = true;
        }
        else
        if (wk_json_key_is (req, m, "stream"))
            rc = s_put_member (out, req, m, "false", 5, &first);
        else
        if (!wk_json_key_is (req, m, "stream_options") && !wk_json_key_is (req, m, "aigw"))
            rc = s_put_member (out, req, m, req + m->val_off, m->val_len, &first);
    }
    if (rc == 0 && !have_model)
        rc = s_put_model (out, upstream_model, &first);
    if (rc == 0)
        rc = wk_buf_append (out, "}", 1);
    if (rc)
        *err = "out of memory rewriting the request";
    return rc;
}

//  ---- reply classification

void wk_openai_snippet (char *dst, size_t dstlen, const char *s, size_t len, size_t max)
{
    if (dstlen < 4) {
        if (dstlen)
            dst [0] = 0;
        return;
    }
    size_t limit = max < dstlen - 4 ? max : dstlen - 4;
    bool cut = len > limit;
    size_t n = cut ? limit : len;
    //  Never split a UTF-8 sequence: back off over continuation bytes
    while (cut && n > 0 && ((unsigned char) s [n] & 0xC0) == 0x80)
        n--;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s [i];
        dst [i] = c < 0x20 || c == 0x7f ? ' ' : (char) c;
    }
    if (cut) {
        memcpy (dst + n, "...", 3);
        n += 3;
    }
    dst [n] = 0;
}

static void s_fail (wk_openai_reply_t *out, long status, const char *fmt, const char *detail)
{
    out->code = AIGW__ERROR_CODE__ERR_UPSTREAM;
    out->status = status > 0 && status < 1000 ? (uint32_t) status : 0;
    snprintf (out->message, sizeof out->message, fmt, status, detail);
}

//  The most readable part of an error body: error.message, error (a string),
//  message, or the raw text.
static void s_error_detail (const char *body, size_t len, char *dst, size_t dstlen)
{
    cJSON *root = cJSON_ParseWithLength (body, len);
    const cJSON *err = cJSON_GetObjectItemCaseSensitive (root, "error");
    const char *text = cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (err, "message"));
    if (!text)
        text = cJSON_GetStringValue (err);
    if (!text)
        text = cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (root, "message"));
    if (text)
        wk_openai_snippet (dst, dstlen, text, strlen (text), WK_OPENAI_DETAIL_MAX);
    else
    if (len)
        wk_openai_snippet (dst, dstlen, body, len, WK_OPENAI_DETAIL_MAX);
    else
        snprintf (dst, dstlen, "(empty body)");
    cJSON_Delete (root);
}

static bool s_count (const cJSON *usage, const char *name, uint32_t *out)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive (usage, name);
    if (!cJSON_IsNumber (n) || n->valuedouble < 0)
        return false;
    *out = n->valuedouble > UINT32_MAX ? UINT32_MAX : (uint32_t) n->valuedouble;
    return true;
}

int wk_openai_parse (long status, const char *body, size_t len, wk_openai_reply_t *out)
{
    memset (out, 0, sizeof *out);
    out->status = status > 0 && status < 1000 ? (uint32_t) status : 0;
    if (status < 200 || status > 299) {
        char detail [WK_OPENAI_DETAIL_MAX + 8];
        s_error_detail (body, len, detail, sizeof detail);
        s_fail (out, status, "upstream HTTP %ld: %s", detail);
        return -1;
    }
    cJSON *root = cJSON_ParseWithLength (body, len);
    if (!cJSON_IsObject (root)
    ||  !cJSON_IsArray (cJSON_GetObjectItemCaseSensitive (root, "choices"))) {
        cJSON_Delete (root);
        s_fail (out, status, "upstream returned malformed JSON (HTTP %ld)%s", "");
        return -1;
    }
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive (root, "usage");
    bool p = s_count (usage, "prompt_tokens", &out->prompt_tokens);
    bool c = s_count (usage, "completion_tokens", &out->completion_tokens);
    out->has_usage = p || c;
    cJSON_Delete (root);
    out->code = AIGW__ERROR_CODE__ERR_NONE;
    return 0;
}

void wk_openai_too_big (uint64_t max, long status, wk_openai_reply_t *out)
{
    memset (out, 0, sizeof *out);
    out->code = AIGW__ERROR_CODE__ERR_UPSTREAM;
    out->status = status > 0 && status < 1000 ? (uint32_t) status : 0;
    snprintf (out->message, sizeof out->message, "upstream response larger than %" PRIu64 " bytes",
              max);
}

//  ---- adapter ops

static int s_model_init (wk_model_t *m)
{
    const cfg_model_t *c = m->cfg;
    size_t blen = strlen (c->base_url);
    while (blen > 0 && c->base_url [blen - 1] == '/')
        blen--;
    snprintf (m->url, sizeof m->url, "%.*s/chat/completions", (int) blen, c->base_url);
    struct curl_slist *h = NULL;
    h = curl_slist_append (h, "Content-Type: application/json");
    h = h ? curl_slist_append (h, "Accept: application/json") : NULL;
    h = h ? curl_slist_append (h, "Expect:") : NULL;   // no 100-continue round trip
    if (!h)
        return -1;
    m->headers = h;
    if (!c->api_key_env [0])
        return 0;
    const char *key = getenv (c->api_key_env);
    if (!key || !*key) {
        m->key_missing = true;
        log_warn ("model %s: API key env var %s is not set; its attempts will fail",
                  c->name, c->api_key_env);
        return 0;
    }
    size_t hlen = strlen (key) + 32;
    char *auth = malloc (hlen);
    if (!auth)
        return -1;
    snprintf (auth, hlen, "Authorization: Bearer %s", key);
    struct curl_slist *h2 = curl_slist_append (m->headers, auth);
    explicit_bzero (auth, hlen);
    free (auth);
    if (!h2)
        return -1;
    return 0;
}

static void s_model_fini (wk_model_t *m)
{
    //  Scrub the key from the header list before freeing it
    for (struct curl_slist *h = m->headers; h; h = h->next)
        if (h->data)
            explicit_bzero (h->data, strlen (h->data));
    curl_slist_free_all (m->headers);
    m->headers = NULL;
}

static int s_start (worker_t *w, wk_attempt_t *a, const char *req, size_t req_len)
{
    const cfg_model_t *c = a->model->cfg;
    if (a->model->key_missing) {
        wk_reply_error (w, a, AIGW__ERROR_CODE__ERR_UPSTREAM, 0,
                        "API key env var %s is not set", c->api_key_env);
        return -1;
    }
    wk_buf_t body;
    wk_buf_init (&body, 0);
    const char *err = NULL;
    if (wk_openai_rewrite (req, req_len, c->upstream_model, &body, &err)) {
        wk_buf_free (&body);
        wk_reply_error (w, a, AIGW__ERROR_CODE__ERR_BAD_REQUEST, 0, "%s", err);
        return -1;
    }
    a->req_body = body.data;        // the attempt owns it now
    a->req_len = body.len;
    wk_buf_init (&a->resp, c->max_response_bytes);
    wk_http_req_t hr = {
        .url = a->model->url, .headers = a->model->headers,
        .body = a->req_body, .body_len = a->req_len,
        .connect_timeout_ms = c->connect_timeout_ms, .timeout_ms = c->timeout_ms,
        .max_bytes = c->max_response_bytes,
    };
    if (a->deadline_ms && a->deadline_ms < hr.timeout_ms) {
        hr.timeout_ms = a->deadline_ms;
        a->deadline_bound = true;
    }
    if (wk_http_start (w, a, &hr)) {
        wk_reply_error (w, a, AIGW__ERROR_CODE__ERR_INTERNAL, 0, "cannot start transfer: %s",
                        a->curl_err [0] ? a->curl_err : "out of memory");
        return -1;
    }
    return 0;
}

static int s_on_data (wk_attempt_t *a, const char *data, size_t len)
{
    if (wk_buf_append (&a->resp, data, len) == 0)
        return 0;
    a->too_big = a->resp.len + len > a->resp.max;
    return -1;
}

static void s_on_done (worker_t *w, wk_attempt_t *a, const wk_done_t *done)
{
    const cfg_model_t *c = a->model->cfg;
    wk_openai_reply_t r;
    if (a->too_big || done->curl_code == CURLE_FILESIZE_EXCEEDED)
        wk_openai_too_big (c->max_response_bytes, done->http_status, &r);
    else
    if (done->curl_code != CURLE_OK) {
        Aigw__ErrorCode code = done->curl_code == CURLE_OPERATION_TIMEDOUT && a->deadline_bound
                             ? AIGW__ERROR_CODE__ERR_TIMEOUT : AIGW__ERROR_CODE__ERR_UPSTREAM;
        uint32_t status = done->http_status > 0 && done->http_status < 1000
                        ? (uint32_t) done->http_status : 0;
        const char *detail = done->curl_error && *done->curl_error ? done->curl_error : "";
        wk_reply_error (w, a, code, status, "upstream %s%s%s", curl_easy_strerror (done->curl_code),
                        *detail ? ": " : "", detail);
        return;
    }
    else
    if (wk_openai_parse (done->http_status, a->resp.data, a->resp.len, &r) == 0) {
        Aigw__Usage usage = AIGW__USAGE__INIT;
        usage.has_prompt_tokens = r.has_usage;
        usage.prompt_tokens = r.prompt_tokens;
        usage.has_completion_tokens = r.has_usage;
        usage.completion_tokens = r.completion_tokens;
        wk_reply_result (w, a, a->resp.data, a->resp.len, r.has_usage ? &usage : NULL);
        return;
    }
    wk_reply_error (w, a, r.code, r.status, "%s", r.message);
}

static void s_cancel (worker_t *w, wk_attempt_t *a)
{
    wk_http_abort (w, a);
    free (a->req_body);
    a->req_body = NULL;
    a->req_len = 0;
    wk_buf_free (&a->resp);
}

const wk_provider_t wk_openai_provider = {
    .name = "openai",
    .model_init = s_model_init,
    .model_fini = s_model_fini,
    .start = s_start,
    .on_data = s_on_data,
    .on_done = s_on_done,
    .cancel = s_cancel,
};
