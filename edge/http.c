// The edge's request handling on libmicrohttpd: framing and limit checks, routing,
// CORS, the simple routes, and chat completions (submit, suspend, resume on the
// answer). Runs on the loop thread that owns the connection.
#include "edge_int.h"
#include "observe.h"
#include "response.h"
#include "admin.h"
#include "aclock.h"
#include "log.h"
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_CHAT "/v1/chat/completions"
#define S_MODELS "/v1/models"
#define S_BODY_STEP 4096

//  --------------------------------------------------------------- replies

static bool s_origin_allowed (const cfg_t *cfg, const char *origin, bool *any)
{
    *any = false;
    const char *list = cfg->edge.cors_origins;
    size_t olen = strlen (origin);
    for (const char *p = list; *p;) {
        p += strspn (p, " \t,");
        size_t len = strcspn (p, ",");
        size_t trimmed = len;
        while (trimmed && (p[trimmed - 1] == ' ' || p[trimmed - 1] == '\t'))
            trimmed--;
        if (trimmed == 1 && *p == '*')
            *any = true;
        if (*any || (trimmed == olen && trimmed && strncasecmp (p, origin, olen) == 0))
            return true;
        p += len;
    }
    return false;
}

void edge_http_cors (edge_req_t *r, struct MHD_Response *resp)
{
    const cfg_t *cfg = edge_server_cfg (r->loop->srv);
    if (!cfg->edge.cors_origins[0])
        return;
    const char *origin = MHD_lookup_connection_value (r->mc, MHD_HEADER_KIND, "Origin");
    bool any;
    if (!origin || !s_origin_allowed (cfg, origin, &any))
        return;
    MHD_add_response_header (resp, "Access-Control-Allow-Origin", any ? "*" : origin);
    if (!any)
        MHD_add_response_header (resp, "Vary", "Origin");
    MHD_add_response_header (resp, "Access-Control-Expose-Headers",
                             "x-aigw-winner, retry-after, x-request-id");
}

//  Add "Name: value\n" lines to a response.
static void s_add_extra (struct MHD_Response *resp, const char *extra)
{
    for (const char *p = extra; p && *p;) {
        const char *eol = strchr (p, '\n');
        size_t len = eol ? (size_t) (eol - p) : strlen (p);
        const char *colon = memchr (p, ':', len);
        if (colon) {
            char name[64], value[256];
            snprintf (name, sizeof name, "%.*s", (int) (colon - p), p);
            const char *v = colon + 1 + strspn (colon + 1, " ");
            snprintf (value, sizeof value, "%.*s", (int) (len - (size_t) (v - p)), v);
            MHD_add_response_header (resp, name, value);
        }
        p += len + (eol ? 1 : 0);
    }
}

enum MHD_Result edge_http_send (edge_req_t *r, int status, const char *type, char *body,
                                size_t len, const char *extra)
{
    struct MHD_Response *resp = body
        ? MHD_create_response_from_buffer (len, body, MHD_RESPMEM_MUST_FREE)
        : MHD_create_response_from_buffer (0, (void *) "", MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free (body);
        return MHD_NO;
    }
    if (type)
        MHD_add_response_header (resp, "Content-Type", type);
    MHD_add_response_header (resp, "Cache-Control", "no-store");
    s_add_extra (resp, extra);
    s_add_extra (resp, r->rl_headers);
    edge_http_cors (r, resp);
    enum MHD_Result rc = MHD_queue_response (r->mc, (unsigned) status, resp);
    MHD_destroy_response (resp);
    r->status = status;
    r->state = EDGE_REQ_DONE;
    return rc;
}

enum MHD_Result edge_http_sse (edge_req_t *r, MHD_ContentReaderCallback reader)
{
    struct MHD_Response *resp = MHD_create_response_from_callback (MHD_SIZE_UNKNOWN,
                                                                   EDGE_SSE_BLOCK, reader, r,
                                                                   NULL);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header (resp, "Content-Type", "text/event-stream; charset=utf-8");
    MHD_add_response_header (resp, "Cache-Control", "no-cache");
    MHD_add_response_header (resp, "X-Accel-Buffering", "no");
    s_add_extra (resp, r->rl_headers);
    edge_http_cors (r, resp);
    enum MHD_Result rc = MHD_queue_response (r->mc, 200, resp);
    MHD_destroy_response (resp);
    r->status = 200;
    return rc;
}

size_t edge_req_take_out (edge_req_t *r, char *buf, size_t max)
{
    size_t n = r->out.len - r->out_off;
    if (n > max)
        n = max;
    memcpy (buf, r->out.mem + SSE_HEADROOM + r->out_off, n);
    r->out_off += n;
    if (r->out_off == r->out.len) {
        sse_buf_reset (&r->out);
        r->out_off = 0;
    }
    return n;
}

static enum MHD_Result s_send_reply (edge_req_t *r, edge_reply_t *reply, int rc,
                                     const char *extra)
{
    if (rc) {
        edge_reply_reset (reply);
        return edge_http_error (r, 500, "internal_error", "out of memory", NULL);
    }
    char more[CFG_NAME_MAX + 64 + 640] = "";
    int n = 0;
    if (reply->winner[0])
        n = snprintf (more, sizeof more, "x-aigw-winner: %s\n", reply->winner);
    if (reply->retry_after_s && n >= 0 && (size_t) n < sizeof more)
        n += snprintf (more + n, sizeof more - (size_t) n, "Retry-After: %u\n",
                       reply->retry_after_s);
    if (extra && n >= 0 && (size_t) n < sizeof more)
        snprintf (more + n, sizeof more - (size_t) n, "%s", extra);
    char *body = reply->body;
    reply->body = NULL;
    return edge_http_send (r, reply->status, "application/json", body, reply->len,
                           more[0] ? more : NULL);
}

enum MHD_Result edge_http_error (edge_req_t *r, int status, const char *code,
                                 const char *message, const char *extra)
{
    edge_reply_t reply;
    int rc = edge_reply_simple (&reply, status, code, message);
    return s_send_reply (r, &reply, rc, extra);
}

enum MHD_Result edge_http_error_typed (edge_req_t *r, int status, const char *type,
                                       const char *code, const char *message,
                                       const char *extra)
{
    edge_reply_t reply;
    int rc = edge_reply_typed (&reply, status, type, code, message);
    return s_send_reply (r, &reply, rc, extra);
}

//  --------------------------------------------------------------- keys and admin

//  The secret the request presents (a pointer into MHD's header storage), or NULL.
static const char *s_secret (edge_req_t *r, size_t *len)
{
    return auth_secret (MHD_lookup_connection_value (r->mc, MHD_HEADER_KIND, "Authorization"),
                        MHD_lookup_connection_value (r->mc, MHD_HEADER_KIND, "x-api-key"), len);
}

static enum MHD_Result s_unauthorized (edge_req_t *r, const char *message)
{
    return edge_http_error_typed (r, 401, "invalid_request_error", "invalid_api_key", message,
                                  "WWW-Authenticate: Bearer realm=\"aigw\"\n");
}

//  Routes for operators only: /metrics and /v1/aigw/events (when auth is on) and the
//  admin API (always). True when the request may go on; else an error is queued.
static bool s_admin_gate (edge_req_t *r, enum MHD_Result *res)
{
    auth_t *auth = edge_server_auth (r->loop->srv);
    bool admin_api = r->route == EM_ROUTE_ADMIN;
    if (!admin_api && !auth_required (auth))
        return true;
    size_t len = 0;
    const char *secret = s_secret (r, &len);
    if (auth_is_admin (auth, secret, len, true))
        return true;
    if (!auth_admin_set (auth)) {
        char msg[320];
        snprintf (msg, sizeof msg, "this route needs the admin key, and none is set: export "
                  "%s before starting the edge", edge_server_cfg (r->loop->srv)->edge.admin_key_env);
        *res = edge_http_error_typed (r, 403, "permission_error", "admin_key_not_set", msg, NULL);
    }
    else
        *res = s_unauthorized (r, secret ? "the admin key is not correct"
                                         : "this route needs the admin key (Authorization: Bearer ...)");
    return false;
}

//  /v1/models with auth on: any valid key (or the admin key) may list.
static bool s_models_gate (edge_req_t *r, enum MHD_Result *res)
{
    auth_t *auth = edge_server_auth (r->loop->srv);
    if (!auth_required (auth))
        return true;
    size_t len = 0;
    const char *secret = s_secret (r, &len);
    if (auth_is_admin (auth, secret, len, false))
        return true;
    keys_verdict_t v = secret ? keys_check (auth_keys (auth), secret, len, aclock_wall_ms ())
                              : KEYS_UNAUTHORIZED;
    if (v == KEYS_UNAUTHORIZED) {
        auth_count (auth, v);
        *res = s_unauthorized (r, secret ? "the API key is not valid (unknown, expired or revoked)"
                                         : "no API key: send Authorization: Bearer sk-aigw-...");
        return false;
    }
    return true;
}

//  Split the request's `model` ("a", "group" or "a, b") into names for the key check.
static size_t s_model_names (const char *model, char names[][CFG_NAME_MAX],
                             const char **ptrs, size_t max)
{
    size_t n = 0;
    for (const char *p = model; *p && n < max;) {
        p += strspn (p, " \t,");
        size_t len = strcspn (p, ",");
        size_t t = len;
        while (t && (p[t - 1] == ' ' || p[t - 1] == '\t'))
            t--;
        if (t) {
            snprintf (names[n], CFG_NAME_MAX, "%.*s", (int) t, p);
            ptrs[n] = names[n];
            n++;
        }
        p += len;
    }
    return n;
}

static const char *s_limit_type (keys_verdict_t v)
{
    return v == KEYS_QUOTA ? "insufficient_quota" : v == KEYS_RATE_TOKENS ? "tokens" : "requests";
}

//  Admit a parsed chat job under the request's key. MHD_YES when admitted (r holds the
//  ticket and the rate-limit headers); else the refusal is queued in *res.
static bool s_admit (edge_req_t *r, const edge_job_t *job, enum MHD_Result *res)
{
    auth_t *auth = edge_server_auth (r->loop->srv);
    if (!auth_required (auth))
        return true;
    size_t len = 0;
    const char *secret = s_secret (r, &len);
    keys_admit_t adm;
    memset (&adm, 0, sizeof adm);
    if (!secret) {
        auth_count (auth, KEYS_UNAUTHORIZED);
        *res = s_unauthorized (r, "no API key: send Authorization: Bearer sk-aigw-... "
                                  "(or x-api-key)");
        return false;
    }
    char names[CFG_TARGETS_MAX][CFG_NAME_MAX];
    const char *ptrs[CFG_TARGETS_MAX];
    size_t n = s_model_names (job->model, names, ptrs, CFG_TARGETS_MAX);
    keys_admit (auth_keys (auth), secret, len, ptrs, n, aclock_wall_ms (), &adm);
    auth_count (auth, adm.verdict);
    switch (adm.verdict) {
        case KEYS_OK:
            r->has_ticket = true;
            r->ticket = adm.ticket;
            snprintf (r->account, sizeof r->account, "%s", adm.name);
            auth_ratelimit_headers (&adm, false, r->rl_headers, sizeof r->rl_headers);
            return true;
        case KEYS_UNAUTHORIZED:
            *res = s_unauthorized (r, adm.message[0] ? adm.message : "the API key is not valid");
            return false;
        case KEYS_FORBIDDEN:
            *res = edge_http_error_typed (r, 403, "permission_error", "model_not_allowed",
                                          adm.message, NULL);
            return false;
        default: {
            char extra[sizeof r->rl_headers];
            auth_ratelimit_headers (&adm, true, extra, sizeof extra);
            *res = edge_http_error_typed (r, 429, s_limit_type (adm.verdict),
                                          adm.verdict == KEYS_QUOTA ? "insufficient_quota"
                                                                    : "rate_limit_exceeded",
                                          adm.message, extra);
            return false;
        }
    }
}

void edge_http_settle (edge_req_t *r, Aigw__AttemptInfo *const *att, size_t n,
                       const char *winner, const Aigw__Usage *usage)
{
    spend_answer (auth_spend (edge_server_auth (r->loop->srv)), r->account, att, n, winner,
                  usage, aclock_wall_ms ());
}

//  The admin API (the gate has checked the admin key).
static enum MHD_Result s_admin (edge_req_t *r, const char *url, const char *method)
{
    keys_t *keys = auth_keys (edge_server_auth (r->loop->srv));
    if (!keys)
        return edge_http_error (r, 404, "keys_not_configured", "key management needs a key "
                                "database: set edge/keys_db", NULL);
    char *out = NULL;
    size_t out_len = 0;
    int status = admin_handle (keys, method, url, r->body ? r->body : "", r->len,
                               aclock_wall_ms (), &out, &out_len);
    free (r->body);
    r->body = NULL;
    if (!out)
        return edge_http_error (r, 500, "internal_error", "out of memory", NULL);
    return edge_http_send (r, status, "application/json", out, out_len, NULL);
}

//  --------------------------------------------------------------- framing checks

typedef struct {
    size_t count;                       // header fields
    size_t bytes;                       // their names and values
    size_t content_length;              // Content-Length fields
    bool transfer_encoding;
} s_headers_t;

static enum MHD_Result s_header_iter (void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    s_headers_t *h = cls;
    h->count++;
    h->bytes += strlen (key) + (value ? strlen (value) : 0) + 4;
    if (strcasecmp (key, "Content-Length") == 0)
        h->content_length++;
    if (strcasecmp (key, "Transfer-Encoding") == 0)
        h->transfer_encoding = true;
    return MHD_YES;
}

//  Refuse what the limits or RFC 9112 do not allow. Returns MHD_YES to go on (r->state
//  unchanged), else the result of the error queued.
static enum MHD_Result s_check_framing (edge_req_t *r, bool *refused)
{
    edge_server_t *srv = r->loop->srv;
    const cfg_t *cfg = edge_server_cfg (srv);
    s_headers_t h = { 0 };
    MHD_get_connection_values (r->mc, MHD_HEADER_KIND, s_header_iter, &h);
    *refused = true;
    if (h.count > cfg->edge.max_headers || h.bytes + r->target_len > cfg->edge.max_header_bytes) {
        char msg[128];
        snprintf (msg, sizeof msg, "request headers exceed the limit (%u fields, %u bytes)",
                  cfg->edge.max_headers, cfg->edge.max_header_bytes);
        return edge_http_error (r, 431, "headers_too_large", msg, "Connection: close\n");
    }
    if (h.content_length > 1 || (h.content_length && h.transfer_encoding)) {
        edge_server_count_framing (srv);
        return edge_http_error (r, 400, "bad_framing", h.content_length > 1
                                ? "more than one Content-Length header"
                                : "both Content-Length and Transfer-Encoding are present",
                                "Connection: close\n");
    }
    const char *te = MHD_lookup_connection_value (r->mc, MHD_HEADER_KIND, "Transfer-Encoding");
    if (te && strcasecmp (te, "chunked") != 0) {
        edge_server_count_framing (srv);
        return edge_http_error (r, 400, "bad_framing", "only Transfer-Encoding: chunked is "
                                "supported", "Connection: close\n");
    }
    if (r->conn && r->conn->over_limit)
        return edge_http_error (r, 503, "too_many_connections", "the edge is at its connection "
                                "limit; retry shortly", "Retry-After: 1\nConnection: close\n");
    *refused = false;
    return MHD_YES;
}

//  Content-Length over max_body: refuse before reading a byte (MHD then closes).
static bool s_declared_too_big (edge_req_t *r, uint64_t max)
{
    const char *cl = MHD_lookup_connection_value (r->mc, MHD_HEADER_KIND, "Content-Length");
    if (!cl)
        return false;
    char *end = NULL;
    unsigned long long n = strtoull (cl, &end, 10);
    return end != cl && n > max;
}

static enum MHD_Result s_too_big (edge_req_t *r)
{
    char msg[96];
    snprintf (msg, sizeof msg, "request body is larger than %llu bytes",
              (unsigned long long) edge_server_cfg (r->loop->srv)->edge.max_body);
    return edge_http_error (r, 413, "request_too_large", msg, "Connection: close\n");
}

//  --------------------------------------------------------------- body

//  Append body bytes (chat), or count and drop them (other routes). False when the
//  client sent so much past the limit that the connection should just close.
static bool s_body (edge_req_t *r, const char *data, size_t n)
{
    uint64_t max = edge_server_cfg (r->loop->srv)->edge.max_body;
    bool keep = r->route == EM_ROUTE_CHAT || r->route == EM_ROUTE_ADMIN;
    if (!keep || r->too_big) {
        r->discarded += n;
        if (!keep && r->discarded > max)
            r->too_big = true;
        return r->discarded <= 2 * max + 65536;
    }
    if (r->len + n > max) {
        r->too_big = true;
        r->discarded = r->len + n;
        free (r->body);
        r->body = NULL;
        r->len = r->cap = 0;
        return true;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : S_BODY_STEP;
        while (cap < r->len + n + 1)
            cap *= 2;
        char *b = realloc (r->body, cap);
        if (!b)
            return false;
        r->body = b;
        r->cap = cap;
    }
    memcpy (r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = 0;
    return true;
}

//  --------------------------------------------------------------- simple routes

static bool s_is_get (const char *method)
{
    return strcmp (method, "GET") == 0 || strcmp (method, "HEAD") == 0;
}

static enum MHD_Result s_method_not_allowed (edge_req_t *r, const char *method,
                                             const char *allow)
{
    char msg[96], extra[64];
    snprintf (msg, sizeof msg, "method %.16s not allowed here (use %s)", method, allow);
    snprintf (extra, sizeof extra, "Allow: %s\n", allow);
    return edge_http_error (r, 405, "method_not_allowed", msg, extra);
}

static enum MHD_Result s_healthz (edge_req_t *r)
{
    edge_reply_t reply;
    const char *pairs[] = { "status", "ok" };
    int rc = edge_reply_pairs (&reply, 200, pairs, 1);
    return s_send_reply (r, &reply, rc, NULL);
}

static enum MHD_Result s_readyz (edge_req_t *r)
{
    edge_server_t *srv = r->loop->srv;
    edge_status_t *st = edge_status_box_get (edge_server_box (srv));
    edge_reply_t reply;
    int rc = edge_reply_ready (&reply, edge_server_link_up (srv), st,
                               edge_server_cfg (srv)->edge.broker);
    edge_status_release (&st);
    return s_send_reply (r, &reply, rc, NULL);
}

static enum MHD_Result s_models (edge_req_t *r, const char *id)
{
    edge_server_t *srv = r->loop->srv;
    edge_status_t *st = edge_link_up (r->loop->link)
                      ? edge_status_box_get (edge_server_box (srv)) : NULL;
    edge_reply_t reply;
    int rc = id ? edge_reply_model (&reply, edge_server_cfg (srv), st, id)
                : edge_reply_models (&reply, edge_server_cfg (srv), st);
    edge_status_release (&st);
    return s_send_reply (r, &reply, rc, NULL);
}

//  CORS preflight and plain OPTIONS.
static enum MHD_Result s_options (edge_req_t *r)
{
    const cfg_t *cfg = edge_server_cfg (r->loop->srv);
    const char *origin = MHD_lookup_connection_value (r->mc, MHD_HEADER_KIND, "Origin");
    const char *want = MHD_lookup_connection_value (r->mc, MHD_HEADER_KIND,
                                                    "Access-Control-Request-Method");
    if (!origin || !want)
        return edge_http_send (r, 204, NULL, NULL, 0, "Allow: GET, POST, OPTIONS\n");
    bool any;
    if (!cfg->edge.cors_origins[0] || !s_origin_allowed (cfg, origin, &any))
        return edge_http_error (r, 403, "cors_origin_not_allowed",
                                "this origin is not in edge/cors_origins", NULL);
    const char *hdrs = MHD_lookup_connection_value (r->mc, MHD_HEADER_KIND,
                                                    "Access-Control-Request-Headers");
    //  Echo the requested header names when they are plain tokens, else a fixed list
    const char *allowed = "authorization, content-type, x-api-key, anthropic-version";
    static const char token[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "0123456789-_, ";
    if (hdrs && strlen (hdrs) < 200 && strspn (hdrs, token) == strlen (hdrs))
        allowed = hdrs;
    char extra[400];
    snprintf (extra, sizeof extra, "Access-Control-Allow-Methods: GET, POST, OPTIONS\n"
              "Access-Control-Allow-Headers: %s\nAccess-Control-Max-Age: 600\n", allowed);
    return edge_http_send (r, 204, NULL, NULL, 0, extra);
}

//  --------------------------------------------------------------- chat

static bool s_known (void *arg, const char *name)
{
    return edge_status_model (arg, name) != NULL;
}

void edge_http_timer (void *owner, int64_t now)
{
    edge_req_t *r = owner;
    if (r->state == EDGE_REQ_STREAM) {
        edge_stream_timer (r, now);
        return;
    }
    if (r->state == EDGE_REQ_EVENTS) {
        observe_events_timer (r, now);
        return;
    }
    if (r->state != EDGE_REQ_WAIT)
        return;
    if (now < r->deadline_ms) {
        edge_timer_set (r->loop, &r->timer, r->deadline_ms);
        return;
    }
    edge_link_cancel (r->loop->link, r->job_id);
    r->job_live = false;
    edge_server_job_done (r->loop->srv);
    r->timed_out = true;
    r->state = EDGE_REQ_ANSWER;
    edge_req_resume (r);
}

//  Submit the parsed job; on success the request waits (suspended) or streams. The
//  job itself (4 KB of names) is not kept: the request keeps what it needs.
static enum MHD_Result s_chat_submit (edge_req_t *r, edge_job_t *job)
{
    edge_server_t *srv = r->loop->srv;
    const cfg_t *cfg = edge_server_cfg (srv);
    if (r->conn && r->conn->hup) {      // the client left while its body was read
        r->gone = true;
        return MHD_NO;
    }
    if (!edge_server_job_start (srv))
        return edge_http_error (r, 429, "too_many_requests", "the edge is at its limit of "
                                "jobs in flight (edge/max_jobs); retry shortly",
                                "Retry-After: 1\n");
    r->job_id = edge_server_job_id (srv);
    r->policy = job->policy;
    r->stream = job->stream;
    r->include_usage = job->include_usage;
    Aigw__Job pb;
    edge_job_to_pb (job, r->job_id, &pb);
    //  Always an account, so the broker reports cancelled losers' usage (SPEND) for the
    //  edge's cost figures; "*" (never a key name) when no key pays.
    pb.account = r->account[0] ? r->account : (char *) EDGE_NO_ACCOUNT;
    if (edge_link_submit (r->loop->link, &pb, job->payload, job->payload_len, r)) {
        edge_server_job_done (srv);
        return edge_http_error (r, 503, "broker_unavailable",
                                "the broker is not connected; try again shortly",
                                "Retry-After: 1\n");
    }
    r->job_live = true;
    edge_watch (r);
    uint32_t deadline = job->deadline_ms ? job->deadline_ms : cfg->broker.deadline_ms;
    r->deadline_ms = aclock_now_ms () + deadline + EDGE_GRACE_MS;
    log_debug ("job %llu model=%s targets=%zu%s", (unsigned long long) r->job_id, job->model,
               job->ntargets, job->stream ? " stream" : "");
    if (r->stream)
        return edge_stream_start (r);
    r->state = EDGE_REQ_WAIT;
    edge_timer_set (r->loop, &r->timer, r->deadline_ms);
    edge_req_suspend (r);
    return MHD_YES;
}

static enum MHD_Result s_chat_ready (edge_req_t *r)
{
    edge_server_t *srv = r->loop->srv;
    if (r->too_big)
        return s_too_big (r);
    if (edge_server_draining (srv))
        return edge_http_error (r, 503, "shutting_down", "the edge is shutting down",
                                "Connection: close\n");
    edge_status_t *st = edge_status_box_get (edge_server_box (srv));
    bool up = edge_link_up (r->loop->link);
    edge_err_t err;
    edge_job_t *job = calloc (1, sizeof *job);
    if (!job) {
        edge_status_release (&st);
        return edge_http_error (r, 500, "internal_error", "out of memory", NULL);
    }
    int rc = edge_request_parse (edge_server_cfg (srv), r->body ? r->body : "", r->len, s_known,
                                 st, job, &err);
    edge_status_release (&st);
    free (r->body);
    r->body = NULL;
    enum MHD_Result res;
    if (rc == 0 && up && !s_admit (r, job, &res))
        ;                               // refused by the key checks (res queued)
    else
    if (rc == 0 && up)
        res = s_chat_submit (r, job);
    else
    if (rc && !(err.status == 404 && !up))
        res = edge_http_error (r, err.status, err.code, err.message, NULL);
    else
        res = edge_http_error (r, 503, "broker_unavailable",
                               "the broker is not answering; try again shortly",
                               "Retry-After: 1\n");
    edge_job_reset (job);
    free (job);
    return res;
}

//  The final answer of a non-streaming job (or the edge's own timeout).
static enum MHD_Result s_chat_answer (edge_req_t *r)
{
    edge_reply_t reply;
    int rc = 1;
    if (r->timed_out)
        return edge_http_error (r, 504, "timeout", "no answer before the deadline", NULL);
    const cfg_t *cfg = edge_server_cfg (r->loop->srv);
    if (r->answer.result) {
        const Aigw__Result *res = r->answer.result;
        r->upstream_us = emetrics_upstream_us (res);
        edge_http_settle (r, res->attempts, res->n_attempts, res->model, res->usage);
        rc = edge_reply_result (&reply, res, r->policy, cfg);
    }
    else
    if (r->answer.error) {
        const Aigw__Error *e = r->answer.error;
        edge_http_settle (r, e->attempts, e->n_attempts, NULL, NULL);
        rc = edge_reply_error (&reply, e, r->policy, cfg);
    }
    edge_answer_reset (&r->answer);
    if (rc > 0)
        return edge_http_error (r, 500, "internal_error", "out of memory", NULL);
    return s_send_reply (r, &reply, rc, NULL);
}

void edge_http_answer (void *req, edge_answer_t *a, void *arg)
{
    edge_req_t *r = req;
    if (r->state == EDGE_REQ_STREAM) {
        edge_stream_answer (r, a);
        return;
    }
    if (a->cmd == WIRE_C_CHUNK || r->state != EDGE_REQ_WAIT) {
        edge_answer_reset (a);          // a CHUNK on a non-streaming job: wait for the end
        return;
    }
    r->answer = *a;
    memset (a, 0, sizeof *a);
    r->job_live = false;
    edge_server_job_done (r->loop->srv);
    edge_timer_clear (r->loop, &r->timer);
    r->state = EDGE_REQ_ANSWER;
    edge_req_resume (r);
}

void edge_http_gone (edge_req_t *r)
{
    if (r->gone || r->state == EDGE_REQ_DONE)
        return;
    r->gone = true;
    r->status = 499;
    if (r->job_live) {
        edge_link_cancel (r->loop->link, r->job_id);
        r->job_live = false;
        edge_server_job_done (r->loop->srv);
    }
    edge_req_resume (r);
}

//  --------------------------------------------------------------- dispatch

//  Headers complete: check them and pick the route. MHD_YES to read the body.
static enum MHD_Result s_begin (edge_req_t *r, const char *url, const char *method)
{
    if (r->conn) {
        r->conn->in_request = true;
        edge_timer_clear (r->loop, &r->conn->header_timer);
    }
    r->state = EDGE_REQ_BODY;
    bool refused;
    enum MHD_Result rc = s_check_framing (r, &refused);
    if (refused)
        return rc;
    if (strcmp (method, "OPTIONS") == 0)
        return MHD_YES;
    enum MHD_Result gated = MHD_YES;
    if ((r->route == EM_ROUTE_METRICS || r->route == EM_ROUTE_EVENTS
         || r->route == EM_ROUTE_ADMIN) && !s_admin_gate (r, &gated))
        return gated;
    if (r->route == EM_ROUTE_MODELS && !s_models_gate (r, &gated))
        return gated;
    if (r->route == EM_ROUTE_CHAT) {
        if (strcmp (method, "POST") != 0)
            return s_method_not_allowed (r, method, "POST");
        if (s_declared_too_big (r, edge_server_cfg (r->loop->srv)->edge.max_body)) {
            r->too_big = true;
            return s_too_big (r);
        }
    }
    return MHD_YES;
}

//  The whole request is in (or discarded): answer it.
static enum MHD_Result s_ready (edge_req_t *r, const char *url, const char *method)
{
    if (strcmp (method, "OPTIONS") == 0)
        return s_options (r);
    if (r->route == EM_ROUTE_CHAT)
        return s_chat_ready (r);
    if (r->too_big)
        return s_too_big (r);
    if (r->route == EM_ROUTE_ADMIN)
        return s_admin (r, url, method);
    bool api = strncmp (url, "/v1/", 4) == 0 || strcmp (url, "/v1") == 0;
    bool known = r->route != EM_ROUTE_API_OTHER && r->route != EM_ROUTE_STATIC;
    bool model = strncmp (url, S_MODELS "/", sizeof S_MODELS) == 0 && url[sizeof S_MODELS];
    if ((known || model) && !s_is_get (method))
        return s_method_not_allowed (r, method, "GET");
    enum MHD_Result gated = MHD_YES;
    if (model && !s_models_gate (r, &gated))
        return gated;
    if (model)
        return s_models (r, url + sizeof S_MODELS);
    switch (r->route) {
        case EM_ROUTE_MODELS: return s_models (r, NULL);
        case EM_ROUTE_HEALTHZ: return s_healthz (r);
        case EM_ROUTE_READYZ: return s_readyz (r);
        case EM_ROUTE_METRICS: return observe_metrics_route (r);
        case EM_ROUTE_EVENTS: return observe_events_route (r);
        default: break;
    }
    if (api)
        return edge_http_error (r, 404, "not_found", "no such route", NULL);
    return observe_static_route (r, url, method);
}

enum MHD_Result edge_http_access (void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls)
{
    edge_req_t *r = *con_cls;
    if (!r)
        return MHD_NO;                  // out of memory at the request line
    switch (r->state) {
        case EDGE_REQ_HEADERS:
            return s_begin (r, url, method);
        case EDGE_REQ_BODY:
            if (*upload_size) {
                bool ok = s_body (r, upload, *upload_size);
                *upload_size = 0;
                return ok ? MHD_YES : MHD_NO;
            }
            return s_ready (r, url, method);
        case EDGE_REQ_WAIT:
            if (r->gone)
                return MHD_NO;
            edge_req_suspend (r);       // woken without news: wait on
            return MHD_YES;
        case EDGE_REQ_ANSWER:
            return r->gone ? MHD_NO : s_chat_answer (r);
        default:
            return r->gone ? MHD_NO : MHD_YES;
    }
}

void edge_http_completed (edge_req_t *r)
{
    edge_loop_t *loop = r->loop;
    if (r->all_prev)
        r->all_prev->all_next = r->all_next;
    else
        loop->reqs = r->all_next;
    if (r->all_next)
        r->all_next->all_prev = r->all_prev;
    edge_unwatch (r);
    edge_timer_clear (loop, &r->timer);
    if (r->job_live) {
        edge_link_cancel (loop->link, r->job_id);
        r->job_live = false;
        edge_server_job_done (loop->srv);
        r->gone = true;
    }
    if (r->fc)
        observe_events_leave (r);
    if (r->has_ticket) {
        keys_release (auth_keys (edge_server_auth (loop->srv)), r->ticket);
        r->has_ticket = false;
    }
    int status = r->status ? r->status : r->state == EDGE_REQ_HEADERS ? 400 : 499;
    if (r->gone)
        status = 499;
    int64_t latency = aclock_now_us () - r->start_us;
    if (latency < 0)
        latency = 0;
    int64_t overhead = -1;
    if (r->route == EM_ROUTE_CHAT && r->upstream_us >= 0 && status >= 200 && status < 300)
        overhead = latency > r->upstream_us ? latency - r->upstream_us : 0;
    emetrics_request_done (observe_metrics (edge_server_observe (loop->srv)), r->route, status,
                           (uint64_t) latency, overhead);
    edge_server_count (loop->srv, status, r->route == EM_ROUTE_CHAT && r->stream,
                       r->timed_out, r->gone && r->route == EM_ROUTE_CHAT);
    if (r->route == EM_ROUTE_CHAT)
        log_debug ("job %llu -> %d", (unsigned long long) r->job_id, status);
    free (r->body);
    edge_answer_reset (&r->answer);
    sse_buf_free (&r->out);
    free (r);
}
