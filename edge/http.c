// The edge's request handling on libmicrohttpd: framing and limit checks, routing,
// the key checks, the simple routes, and chat completions (submit, suspend, resume on
// the answer). Responses go out through respond.h. Runs on the loop thread that owns
// the connection.
#include "http.h"
#include "admin.h"
#include "auth.h"
#include "observe.h"
#include "reply.h"
#include "req.h"
#include "request.h"
#include "respond.h"
#include "shared.h"
#include "stream.h"
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

//  --------------------------------------------------------------- keys and admin

//  The secret the request presents (a pointer into MHD's header storage), or NULL.
static const char *s_secret (edge_req_t *r, size_t *len)
{
    return auth_secret (MHD_lookup_connection_value (r->mc, MHD_HEADER_KIND, "Authorization"),
                        MHD_lookup_connection_value (r->mc, MHD_HEADER_KIND, "x-api-key"), len);
}

static enum MHD_Result s_unauthorized (edge_req_t *r, const char *message)
{
    return edge_respond_error_typed (r, 401, "invalid_request_error", "invalid_api_key", message,
                                     "WWW-Authenticate: Bearer realm=\"aigw\"\n");
}

//  Routes for operators only: /metrics and /v1/aigw/events (when auth is on) and the
//  admin API (always). True when the request may go on; else an error is queued.
static bool s_admin_gate (edge_req_t *r, enum MHD_Result *res)
{
    auth_t *auth = r->loop->sh->auth;
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
                  "%s before starting the edge", r->loop->sh->cfg->edge.admin_key_env);
        *res = edge_respond_error_typed (r, 403, "permission_error", "admin_key_not_set", msg,
                                         NULL);
    }
    else
        *res = s_unauthorized (r, secret ? "the admin key is not correct"
                                         : "this route needs the admin key (Authorization: Bearer ...)");
    return false;
}

//  /v1/models with auth on: any valid key (or the admin key) may list.
static bool s_models_gate (edge_req_t *r, enum MHD_Result *res)
{
    auth_t *auth = r->loop->sh->auth;
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
    auth_t *auth = r->loop->sh->auth;
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
    const cfg_t *cfg = r->loop->sh->cfg;
    uint32_t deadline = job->deadline_ms ? job->deadline_ms : cfg->broker.deadline_ms;
    if (deadline > cfg->broker.max_deadline_ms)
        deadline = cfg->broker.max_deadline_ms;
    keys_admit_hold (auth_keys (auth), secret, len, ptrs, n, aclock_wall_ms (),
                     (int64_t) deadline + EDGE_GRACE_MS, &adm);
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
            *res = edge_respond_error_typed (r, 403, "permission_error", "model_not_allowed",
                                             adm.message, NULL);
            return false;
        case KEYS_UNAVAILABLE:
            *res = edge_respond_error (r, 503, "limits_unavailable", adm.message,
                                       "Retry-After: 1\n");
            return false;
        default: {
            char extra[sizeof r->rl_headers];
            auth_ratelimit_headers (&adm, true, extra, sizeof extra);
            *res = edge_respond_error_typed (r, 429, s_limit_type (adm.verdict),
                                             adm.verdict == KEYS_QUOTA ? "insufficient_quota"
                                                                       : "rate_limit_exceeded",
                                             adm.message, extra);
            return false;
        }
    }
}

//  The admin API (the gate has checked the admin key).
static enum MHD_Result s_admin (edge_req_t *r, const char *url, const char *method)
{
    keys_t *keys = auth_keys (r->loop->sh->auth);
    if (!keys)
        return edge_respond_error (r, 404, "keys_not_configured", "key management needs a key "
                                   "database: set edge/keys_db", NULL);
    char *out = NULL;
    size_t out_len = 0;
    int status = admin_handle (keys, method, url, r->body ? r->body : "", r->len,
                               aclock_wall_ms (), &out, &out_len);
    free (r->body);
    r->body = NULL;
    if (!out)
        return edge_respond_error (r, 500, "internal_error", "out of memory", NULL);
    return edge_respond_send (r, status, "application/json", out, out_len, NULL);
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
    edge_shared_t *sh = r->loop->sh;
    const cfg_t *cfg = sh->cfg;
    s_headers_t h = { 0 };
    MHD_get_connection_values (r->mc, MHD_HEADER_KIND, s_header_iter, &h);
    *refused = true;
    if (h.count > cfg->edge.max_headers || h.bytes + r->target_len > cfg->edge.max_header_bytes) {
        char msg[128];
        snprintf (msg, sizeof msg, "request headers exceed the limit (%u fields, %u bytes)",
                  cfg->edge.max_headers, cfg->edge.max_header_bytes);
        return edge_respond_error (r, 431, "headers_too_large", msg, "Connection: close\n");
    }
    if (h.content_length > 1 || (h.content_length && h.transfer_encoding)) {
        edge_shared_count (sh, EDGE_STAT_BAD_FRAMING);
        return edge_respond_error (r, 400, "bad_framing", h.content_length > 1
                                   ? "more than one Content-Length header"
                                   : "both Content-Length and Transfer-Encoding are present",
                                   "Connection: close\n");
    }
    const char *te = MHD_lookup_connection_value (r->mc, MHD_HEADER_KIND, "Transfer-Encoding");
    if (te && strcasecmp (te, "chunked") != 0) {
        edge_shared_count (sh, EDGE_STAT_BAD_FRAMING);
        return edge_respond_error (r, 400, "bad_framing", "only Transfer-Encoding: chunked is "
                                   "supported", "Connection: close\n");
    }
    if (r->conn && r->conn->over_limit)
        return edge_respond_error (r, 503, "too_many_connections", "the edge is at its "
                                   "connection limit; retry shortly",
                                   "Retry-After: 1\nConnection: close\n");
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
              (unsigned long long) r->loop->sh->cfg->edge.max_body);
    return edge_respond_error (r, 413, "request_too_large", msg, "Connection: close\n");
}

//  --------------------------------------------------------------- body

//  Append body bytes (chat), or count and drop them (other routes). False when the
//  client sent so much past the limit that the connection should just close.
static bool s_body (edge_req_t *r, const char *data, size_t n)
{
    uint64_t max = r->loop->sh->cfg->edge.max_body;
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
    return edge_respond_error (r, 405, "method_not_allowed", msg, extra);
}

static enum MHD_Result s_healthz (edge_req_t *r)
{
    edge_reply_t reply;
    const char *pairs[] = { "status", "ok" };
    int rc = edge_reply_pairs (&reply, 200, pairs, 1);
    return edge_respond_reply (r, &reply, rc, NULL);
}

static enum MHD_Result s_readyz (edge_req_t *r)
{
    edge_shared_t *sh = r->loop->sh;
    edge_status_t *st = edge_status_box_get (sh->box);
    edge_reply_t reply;
    int rc = edge_reply_ready (&reply, edge_shared_link_up (sh), st, sh->cfg->edge.broker);
    edge_status_release (&st);
    return edge_respond_reply (r, &reply, rc, NULL);
}

static enum MHD_Result s_models (edge_req_t *r, const char *id)
{
    edge_shared_t *sh = r->loop->sh;
    edge_status_t *st = edge_link_up (r->loop->link)
                      ? edge_status_box_get (sh->box) : NULL;
    edge_reply_t reply;
    int rc = id ? edge_reply_model (&reply, sh->cfg, st, id)
                : edge_reply_models (&reply, sh->cfg, st);
    edge_status_release (&st);
    return edge_respond_reply (r, &reply, rc, NULL);
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
        edge_timer_set (&r->loop->timers, &r->timer, r->deadline_ms);
        return;
    }
    edge_link_cancel (r->loop->link, r->job_id);
    r->job_live = false;
    edge_shared_job_done (r->loop->sh);
    r->timed_out = true;
    r->state = EDGE_REQ_ANSWER;
    edge_req_resume (r);
}

//  Submit the parsed job; on success the request waits (suspended) or streams. The
//  job itself (4 KB of names) is not kept: the request keeps what it needs.
static enum MHD_Result s_chat_submit (edge_req_t *r, edge_job_t *job)
{
    edge_shared_t *sh = r->loop->sh;
    const cfg_t *cfg = sh->cfg;
    if (r->conn && r->conn->hup) {      // the client left while its body was read
        r->gone = true;
        return MHD_NO;
    }
    if (!edge_shared_job_start (sh))
        return edge_respond_error (r, 429, "too_many_requests", "the edge is at its limit of "
                                   "jobs in flight (edge/max_jobs); retry shortly",
                                   "Retry-After: 1\n");
    r->job_id = edge_shared_job_id (sh);
    r->policy = job->policy;
    r->stream = job->stream;
    r->include_usage = job->include_usage;
    Aigw__Job pb;
    edge_request_to_pb (job, r->job_id, &pb);
    //  Always an account, so the broker reports cancelled losers' usage (SPEND) for the
    //  edge's cost figures; "*" (never a key name) when no key pays.
    pb.account = r->account[0] ? r->account : (char *) EDGE_NO_ACCOUNT;
    if (edge_link_submit (r->loop->link, &pb, job->payload, job->payload_len, r)) {
        edge_shared_job_done (sh);
        return edge_respond_error (r, 503, "broker_unavailable",
                                   "the broker is not connected; try again shortly",
                                   "Retry-After: 1\n");
    }
    r->job_live = true;
    edge_req_watch (r);
    uint32_t deadline = job->deadline_ms ? job->deadline_ms : cfg->broker.deadline_ms;
    r->deadline_ms = aclock_now_ms () + deadline + EDGE_GRACE_MS;
    log_debug ("job %llu model=%s targets=%zu%s", (unsigned long long) r->job_id, job->model,
               job->ntargets, job->stream ? " stream" : "");
    if (r->stream)
        return edge_stream_start (r);
    r->state = EDGE_REQ_WAIT;
    edge_timer_set (&r->loop->timers, &r->timer, r->deadline_ms);
    edge_req_suspend (r);
    return MHD_YES;
}

static enum MHD_Result s_chat_ready (edge_req_t *r)
{
    edge_shared_t *sh = r->loop->sh;
    if (r->too_big)
        return s_too_big (r);
    if (edge_shared_draining (sh))
        return edge_respond_error (r, 503, "shutting_down", "the edge is shutting down",
                                   "Connection: close\n");
    edge_status_t *st = edge_status_box_get (sh->box);
    bool up = edge_link_up (r->loop->link);
    edge_err_t err;
    edge_job_t *job = calloc (1, sizeof *job);
    if (!job) {
        edge_status_release (&st);
        return edge_respond_error (r, 500, "internal_error", "out of memory", NULL);
    }
    int rc = edge_request_parse (sh->cfg, r->body ? r->body : "", r->len, s_known, st, job,
                                 &err);
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
        res = edge_respond_error (r, err.status, err.code, err.message, NULL);
    else
        res = edge_respond_error (r, 503, "broker_unavailable",
                                  "the broker is not answering; try again shortly",
                                  "Retry-After: 1\n");
    edge_request_reset (job);
    free (job);
    return res;
}

//  The final answer of a non-streaming job (or the edge's own timeout).
static enum MHD_Result s_chat_answer (edge_req_t *r)
{
    edge_reply_t reply;
    int rc = 1;
    if (r->timed_out)
        return edge_respond_error (r, 504, "timeout", "no answer before the deadline", NULL);
    const cfg_t *cfg = r->loop->sh->cfg;
    if (r->answer.result) {
        const Aigw__Result *res = r->answer.result;
        r->upstream_us = emetrics_upstream_us (res);
        edge_req_settle (r, res->attempts, res->n_attempts, res->model, res->usage);
        rc = edge_reply_result (&reply, res, r->policy, cfg);
    }
    else
    if (r->answer.error) {
        const Aigw__Error *e = r->answer.error;
        edge_req_settle (r, e->attempts, e->n_attempts, NULL, NULL);
        rc = edge_reply_error (&reply, e, r->policy, cfg);
    }
    edge_link_answer_reset (&r->answer);
    if (rc > 0)
        return edge_respond_error (r, 500, "internal_error", "out of memory", NULL);
    return edge_respond_reply (r, &reply, rc, NULL);
}

void edge_http_answer (void *req, edge_answer_t *a, void *arg)
{
    edge_req_t *r = req;
    if (r->state == EDGE_REQ_STREAM) {
        edge_stream_answer (r, a);
        return;
    }
    if (a->cmd == WIRE_C_CHUNK || r->state != EDGE_REQ_WAIT) {
        edge_link_answer_reset (a);     // a CHUNK on a non-streaming job: wait for the end
        return;
    }
    r->answer = *a;
    memset (a, 0, sizeof *a);
    r->job_live = false;
    edge_shared_job_done (r->loop->sh);
    edge_timer_clear (&r->loop->timers, &r->timer);
    r->state = EDGE_REQ_ANSWER;
    edge_req_resume (r);
}

//  --------------------------------------------------------------- dispatch

//  Headers complete: check them and pick the route. MHD_YES to read the body.
static enum MHD_Result s_begin (edge_req_t *r, const char *url, const char *method)
{
    if (r->conn) {
        r->conn->in_request = true;
        edge_timer_clear (&r->loop->timers, &r->conn->header_timer);
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
        if (s_declared_too_big (r, r->loop->sh->cfg->edge.max_body)) {
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
        return edge_respond_options (r);
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
        case EM_ROUTE_METRICS: return observe_metrics_route (r->loop->sh->obs, r);
        case EM_ROUTE_EVENTS: return observe_events_route (r->loop->sh->obs, r);
        default: break;
    }
    if (api)
        return edge_respond_error (r, 404, "not_found", "no such route", NULL);
    return observe_static_route (r->loop->sh->obs, r, url, method);
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
    edge_req_unwatch (r);
    edge_timer_clear (&loop->timers, &r->timer);
    if (r->job_live) {
        edge_link_cancel (loop->link, r->job_id);
        r->job_live = false;
        edge_shared_job_done (loop->sh);
        r->gone = true;
    }
    if (r->fc)
        observe_events_leave (loop->sh->obs, r);
    if (r->has_ticket) {
        keys_release (auth_keys (loop->sh->auth), r->ticket);
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
    emetrics_request_done (observe_metrics (loop->sh->obs), r->route, status, (uint64_t) latency,
                           overhead);
    edge_shared_count_answer (loop->sh, status, r->route == EM_ROUTE_CHAT && r->stream,
                              r->timed_out, r->gone && r->route == EM_ROUTE_CHAT);
    if (r->route == EM_ROUTE_CHAT)
        log_debug ("job %llu -> %d", (unsigned long long) r->job_id, status);
    free (r->body);
    edge_link_answer_reset (&r->answer);
    sse_buf_free (&r->out);
    free (r);
}
