// HTTP reply bodies for the edge: success, OpenAI errors, models list (pure logic).
#include "reply.h"
#include "price.h"
#include "utf8.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MESSAGE_MAX 1024

typedef struct {
    const cfg_t *cfg;                   // prices; NULL = no cost fields
    const char *winner;
    const Aigw__Usage *winner_usage;
} s_price_t;

int edge_reply_status (Aigw__ErrorCode code)
{
    switch (code) {
        case AIGW__ERROR_CODE__ERR_BAD_REQUEST:   return 400;
        case AIGW__ERROR_CODE__ERR_UNKNOWN_MODEL: return 404;
        case AIGW__ERROR_CODE__ERR_OVERLOADED:
        case AIGW__ERROR_CODE__ERR_RATE_LIMITED:  return 429;
        case AIGW__ERROR_CODE__ERR_UPSTREAM_AUTH:
        case AIGW__ERROR_CODE__ERR_UPSTREAM:
        case AIGW__ERROR_CODE__ERR_WORKER_LOST:
        case AIGW__ERROR_CODE__ERR_TTFT:          return 502;
        case AIGW__ERROR_CODE__ERR_UNAVAILABLE:
        case AIGW__ERROR_CODE__ERR_COOLDOWN:      return 503;
        case AIGW__ERROR_CODE__ERR_TIMEOUT:       return 504;
        case AIGW__ERROR_CODE__ERR_CANCELLED:     return 499;
        default:                                  return 500;
    }
}

const char *edge_reply_error_type (int status)
{
    switch (status) {
        case 429: return "rate_limit_error";
        case 499: return "cancelled";
        case 500: return "server_error";
        case 502: return "upstream_error";
        case 503: return "service_unavailable";
        case 504: return "timeout_error";
    }
    return status >= 500 ? "server_error" : "invalid_request_error";
}

const char *edge_reply_code_name (Aigw__ErrorCode code)
{
    switch (code) {
        case AIGW__ERROR_CODE__ERR_NONE:          return "none";
        case AIGW__ERROR_CODE__ERR_BAD_REQUEST:   return "bad_request";
        case AIGW__ERROR_CODE__ERR_UNKNOWN_MODEL: return "model_not_found";
        case AIGW__ERROR_CODE__ERR_OVERLOADED:    return "overloaded";
        case AIGW__ERROR_CODE__ERR_UPSTREAM:      return "upstream_error";
        case AIGW__ERROR_CODE__ERR_UNAVAILABLE:   return "unavailable";
        case AIGW__ERROR_CODE__ERR_TIMEOUT:       return "timeout";
        case AIGW__ERROR_CODE__ERR_CANCELLED:     return "cancelled";
        case AIGW__ERROR_CODE__ERR_INTERNAL:      return "internal_error";
        case AIGW__ERROR_CODE__ERR_TTFT:          return "ttft_timeout";
        case AIGW__ERROR_CODE__ERR_WORKER_LOST:   return "worker_lost";
        case AIGW__ERROR_CODE__ERR_UPSTREAM_AUTH: return "upstream_auth_failed";
        case AIGW__ERROR_CODE__ERR_RATE_LIMITED:  return "rate_limit_exceeded";
        case AIGW__ERROR_CODE__ERR_COOLDOWN:      return "cooldown";
        default:                                  return "internal_error";
    }
}

static const char *s_outcome_name (Aigw__Outcome o)
{
    switch (o) {
        case AIGW__OUTCOME__OUTCOME_WON:       return "won";
        case AIGW__OUTCOME__OUTCOME_CANCELLED: return "cancelled";
        case AIGW__OUTCOME__OUTCOME_FAILED:    return "failed";
        case AIGW__OUTCOME__OUTCOME_RUNNING:   return "running";
        case AIGW__OUTCOME__OUTCOME_SKIPPED:   return "skipped";
        default:                               return "pending";
    }
}

//  Microseconds as milliseconds with up to 3 decimals ("58.668", "0.1", "42"), in
//  integer arithmetic: cJSON's own number printing (%1.15g, then sscanf to check the
//  round trip) was a tenth of the edge's CPU per request.
static void s_add_ms (cJSON *obj, const char *key, bool has, uint64_t us)
{
    if (!has) {
        cJSON_AddNullToObject (obj, key);
        return;
    }
    char digits[24], text[32];
    size_t nd = 0;
    for (uint64_t ms = us / 1000; nd == 0 || ms; ms /= 10)
        digits[nd++] = (char) ('0' + ms % 10);
    char *p = text;
    while (nd)
        *p++ = digits[--nd];
    *p = 0;
    unsigned frac = (unsigned) (us % 1000);
    if (frac) {
        *p++ = '.';
        for (unsigned div = 100; div && frac; div /= 10) {
            *p++ = (char) ('0' + frac / div);
            frac %= div;
        }
        *p = 0;
    }
    cJSON_AddRawToObject (obj, key, text);
}

//  Add a string that may hold bytes from outside (client, broker, upstream): invalid
//  UTF-8 becomes U+FFFD, so every body the edge writes is valid UTF-8.
static void s_add_text (cJSON *obj, const char *key, const char *value)
{
    size_t len = strlen (value);
    if (utf8_valid (value, len)) {
        cJSON_AddStringToObject (obj, key, value);
        return;
    }
    char *clean = malloc (3 * len + 1);
    if (clean)
        utf8_sanitize (clean, 3 * len + 1, value, len);
    cJSON_AddStringToObject (obj, key, clean ? clean : "");
    free (clean);
}

static void s_add_str (cJSON *obj, const char *key, const char *value)
{
    if (value && value[0])
        s_add_text (obj, key, value);
    else
        cJSON_AddNullToObject (obj, key);
}

//  The attempt's failure reason: its text if any, else its code name, else null.
static const char *s_attempt_error (const Aigw__AttemptInfo *a)
{
    if (a->reason && a->reason[0])
        return a->reason;
    if (a->has_error && a->error != AIGW__ERROR_CODE__ERR_NONE)
        return edge_reply_code_name (a->error);
    return NULL;
}

//  "usage" and "cost_usd" of an attempt (null when not known yet); adds its cost to *sum.
static void s_attempt_cost (cJSON *o, const Aigw__AttemptInfo *a, const s_price_t *p,
                            double *sum, bool *pending)
{
    const Aigw__Usage *u = edge_price_usage (a, p->winner, p->winner_usage);
    if (!u) {
        cJSON_AddNullToObject (o, "usage");
        cJSON_AddNullToObject (o, "cost_usd");
        if (a->outcome == AIGW__OUTCOME__OUTCOME_CANCELLED
            || a->outcome == AIGW__OUTCOME__OUTCOME_RUNNING)
            *pending = true;
        return;
    }
    cJSON *uo = cJSON_AddObjectToObject (o, "usage");
    if (uo) {
        cJSON_AddNumberToObject (uo, "prompt_tokens", u->has_prompt_tokens ? u->prompt_tokens : 0);
        cJSON_AddNumberToObject (uo, "completion_tokens",
                                 u->has_completion_tokens ? u->completion_tokens : 0);
    }
    double usd = edge_price_cost (p->cfg, a->target, u);
    cJSON_AddNumberToObject (o, "cost_usd", usd);
    *sum += usd;
}

//  Index in attempts[0..n) of the attempt with this id, -1 if none.
static int s_attempt_index (Aigw__AttemptInfo **attempts, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (attempts[i] && attempts[i]->attempt_id == id)
            return (int) i;
    return -1;
}

static cJSON *s_attempt_json (const Aigw__AttemptInfo *a, const s_price_t *p, double *sum,
                              bool *pending)
{
    cJSON *o = cJSON_CreateObject ();
    if (!o)
        return NULL;
    s_add_str (o, "model", a->target);
    cJSON_AddStringToObject (o, "outcome", s_outcome_name (a->outcome));
    s_add_str (o, "worker", a->worker);
    s_add_ms (o, "started_ms", a->has_started_us, a->started_us);
    s_add_ms (o, "first_token_ms", a->has_first_token_us, a->first_token_us);
    s_add_ms (o, "finished_ms", a->has_finished_us, a->finished_us);
    s_add_str (o, "error", s_attempt_error (a));
    if (a->has_upstream_status)
        cJSON_AddNumberToObject (o, "upstream_status", a->upstream_status);
    if (a->upstream_code && a->upstream_code[0])
        s_add_text (o, "upstream_code", a->upstream_code);
    if (a->has_retry_after_ms)
        cJSON_AddNumberToObject (o, "retry_after_ms", a->retry_after_ms);
    if (a->has_error && a->error != AIGW__ERROR_CODE__ERR_NONE)
        s_add_str (o, "error_code", edge_reply_code_name (a->error));
    if (a->has_hedge && a->hedge)
        cJSON_AddBoolToObject (o, "hedge", true);
    if (p && p->cfg)
        s_attempt_cost (o, a, p, sum, pending);
    return o;
}

cJSON *edge_reply_aigw_json (const char *winner, cfg_policy_t policy, bool has_latency,
                             uint64_t latency_us, Aigw__AttemptInfo **attempts, size_t n,
                             const cfg_t *cfg, const Aigw__Usage *winner_usage)
{
    s_price_t price = { cfg, winner, winner_usage };
    double sum = 0.0;
    bool pending = false;
    cJSON *o = cJSON_CreateObject ();
    if (!o)
        return NULL;
    s_add_str (o, "winner", winner);
    cJSON_AddStringToObject (o, "policy", cfg_policy_name (policy));
    s_add_ms (o, "latency_ms", has_latency, latency_us);
    cJSON *arr = cJSON_AddArrayToObject (o, "attempts");
    for (size_t i = 0; arr && i < n; i++) {
        cJSON *a = attempts[i] ? s_attempt_json (attempts[i], &price, &sum, &pending) : NULL;
        if (!a)
            continue;
        //  A retry names the attempt it retries by its place in this list
        int of = attempts[i]->has_retry_of ? s_attempt_index (attempts, n, attempts[i]->retry_of)
                                           : -1;
        if (of >= 0)
            cJSON_AddNumberToObject (a, "retry_of", of);
        cJSON_AddItemToArray (arr, a);
    }
    if (cfg) {
        cJSON_AddNumberToObject (o, "cost_usd", sum);
        //  A cancelled loser's usage reaches the edge after the answer (SPEND); it is
        //  charged then, so the cost here is not final yet.
        cJSON_AddBoolToObject (o, "cost_final", !pending);
    }
    return o;
}

void edge_reply_aigw_budget (cJSON *aigw, bool hedge_suppressed, bool retry_suppressed)
{
    if (!aigw)
        return;
    if (hedge_suppressed)
        cJSON_AddBoolToObject (aigw, "hedge_suppressed", true);
    if (retry_suppressed)
        cJSON_AddBoolToObject (aigw, "retry_suppressed", true);
}

//  Print root into the reply body and free root. Returns 0 / -1.
static int s_finish (edge_reply_t *reply, int status, cJSON *root)
{
    char *text = root ? cJSON_PrintUnformatted (root) : NULL;
    cJSON_Delete (root);
    if (!text)
        return -1;
    reply->status = status;
    reply->body = text;
    reply->len = strlen (text);
    return 0;
}

static cJSON *s_error_root (int status, const char *code, const char *message)
{
    cJSON *root = cJSON_CreateObject ();
    cJSON *e = root ? cJSON_AddObjectToObject (root, "error") : NULL;
    if (!e) {
        cJSON_Delete (root);
        return NULL;
    }
    s_add_text (e, "message", message ? message : "");
    cJSON_AddStringToObject (e, "type", edge_reply_error_type (status));
    cJSON_AddStringToObject (e, "code", code ? code : "error");
    return root;
}

void edge_reply_reset (edge_reply_t *reply)
{
    if (!reply)
        return;
    free (reply->body);
    memset (reply, 0, sizeof *reply);
}

int edge_reply_typed (edge_reply_t *reply, int status, const char *type, const char *code,
                      const char *message)
{
    memset (reply, 0, sizeof *reply);
    cJSON *root = s_error_root (status, code, message);
    cJSON *e = root ? cJSON_GetObjectItemCaseSensitive (root, "error") : NULL;
    if (e && type)
        cJSON_ReplaceItemInObjectCaseSensitive (e, "type", cJSON_CreateString (type));
    return s_finish (reply, status, root);
}

int edge_reply_simple (edge_reply_t *reply, int status, const char *code, const char *message)
{
    memset (reply, 0, sizeof *reply);
    return s_finish (reply, status, s_error_root (status, code, message));
}

//  Copy a header-safe version of name (printable ASCII, no spaces) into dst.
static void s_header_value (char *dst, size_t size, const char *name)
{
    size_t o = 0;
    for (const char *p = name ? name : ""; *p && o + 1 < size; p++)
        if (*p > 0x20 && *p < 0x7f)
            dst[o++] = *p;
    dst[o] = 0;
}

//  Locate the outer braces of a JSON object text. Returns 0 and sets *close (index
//  of the final '}') and *empty (nothing between the braces), or -1.
static int s_object_span (const char *s, size_t len, size_t *close, bool *empty)
{
    //  "Whitespace" as cJSON reads it (every byte up to 0x20, NUL included), so a body the
    //  worker's cJSON accepted is framed the same way here
    size_t a = 0, b = len;
    while (a < len && (unsigned char) s[a] <= 0x20)
        a++;
    while (b > a && (unsigned char) s[b - 1] <= 0x20)
        b--;
    if (b - a < 2 || s[a] != '{' || s[b - 1] != '}')
        return -1;
    size_t i = a + 1;
    while (i < b - 1 && (unsigned char) s[i] <= 0x20)
        i++;
    *close = b - 1;
    *empty = i == b - 1;
    return 0;
}

//  The span of the top-level "model" string's contents in a JSON object text (between
//  its quotes), scanning once without parsing: strings (with escapes) and nesting are
//  skipped. False when there is none (or the text is not what it should be).
static bool s_top_model (const char *s, size_t close, size_t *vs, size_t *ve)
{
    size_t i = 0;
    while (i < close && s[i] != '{')
        i++;
    int depth = 0;
    bool want_key = false, model_key = false, want_value = false;
    for (; i < close; i++) {
        char c = s[i];
        if (c == '"') {
            size_t start = ++i;
            while (i < close && s[i] != '"')
                i += s[i] == '\\' ? 2 : 1;
            if (i >= close)
                return false;
            if (depth == 1 && want_key) {
                model_key = i - start == 5 && memcmp (s + start, "model", 5) == 0;
                want_key = false;
            }
            else
            if (depth == 1 && want_value) {
                if (model_key) {
                    *vs = start;
                    *ve = i;
                    return true;
                }
                want_value = false;
            }
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
            want_key = depth == 1;
            want_value = false;
        }
        else
        if (c == '}' || c == ']')
            depth--;
        else
        if (c == ':' && depth == 1)
            want_value = true;
        else
        if (c == ',' && depth == 1) {
            want_key = true;
            want_value = model_key = false;
        }
        else
        if (depth == 1 && want_value && (unsigned char) c > 0x20)
            want_value = model_key = false;     // a number, true, null... not a string
    }
    return false;
}

//  Splice ,"aigw":{...} before the final brace of the upstream object (no reparse);
//  with name, the top-level "model" string at [vs, ve) becomes name.
static int s_splice (edge_reply_t *reply, const char *json, size_t close, bool empty,
                     const char *aigw, const char *name, size_t vs, size_t ve)
{
    static const char key[] = "\"aigw\":";
    size_t alen = strlen (aigw);
    size_t nlen = name ? strlen (name) : 0;
    size_t total = close + nlen + (empty ? 0 : 1) + (sizeof key - 1) + alen + 1;
    char *out = malloc (total + 1);
    if (!out)
        return -1;
    size_t o = 0;
    if (name) {
        memcpy (out, json, vs);
        memcpy (out + vs, name, nlen);
        memcpy (out + vs + nlen, json + ve, close - ve);
        o = close - (ve - vs) + nlen;
    }
    else {
        memcpy (out, json, close);
        o = close;
    }
    if (!empty)
        out[o++] = ',';
    memcpy (out + o, key, sizeof key - 1);
    o += sizeof key - 1;
    memcpy (out + o, aigw, alen);
    o += alen;
    out[o++] = '}';
    out[o] = 0;
    reply->body = out;
    reply->len = o;
    return 0;
}

//  String contents that can be copied as they are into JSON: no control bytes (cJSON
//  lets raw ones through in what it parses, and they would end a raw copy early).
static bool s_plain_literal (const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) s[i] < 0x20)
            return false;
    return true;
}

//  A configured model name needs no JSON escaping (config.c allows [A-Za-z0-9-_.:@+/]).
static bool s_plain_name (const char *name)
{
    if (!name || !*name)
        return false;
    for (const char *p = name; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char) *p < 0x20)
            return false;
    return true;
}

int edge_reply_result (edge_reply_t *reply, const Aigw__Result *res, cfg_policy_t policy,
                       const cfg_t *cfg)
{
    memset (reply, 0, sizeof *reply);
    const char *json = res->has_response_json ? (const char *) res->response_json.data : NULL;
    size_t len = res->has_response_json ? res->response_json.len : 0;
    size_t close = 0;
    bool empty = false;
    if (!json || s_object_span (json, len, &close, &empty))
        return edge_reply_simple (reply, 502, "bad_upstream_response",
                                  "the winning upstream answer is not a JSON object");
    cJSON *aigw = edge_reply_aigw_json (res->model, policy, res->has_latency_us, res->latency_us,
                                        res->attempts, res->n_attempts, cfg, res->usage);
    edge_reply_aigw_budget (aigw, res->has_hedge_suppressed && res->hedge_suppressed,
                            res->has_retry_suppressed && res->retry_suppressed);
    //  One name per model: "model" is the configured name that won (the one a client can
    //  call again); the provider's own string moves to aigw.upstream_model.
    size_t vs = 0, ve = 0;
    const char *name = NULL;
    if (aigw && s_plain_name (res->model) && s_top_model (json, close, &vs, &ve)
        && s_plain_literal (json + vs, ve - vs)) {
        char *raw = malloc (ve - vs + 3);
        if (raw) {
            raw[0] = '"';
            memcpy (raw + 1, json + vs, ve - vs);
            raw[ve - vs + 1] = '"';
            raw[ve - vs + 2] = 0;
            cJSON_AddRawToObject (aigw, "upstream_model", raw);
            free (raw);
            name = res->model;
        }
    }
    char *text = aigw ? cJSON_PrintUnformatted (aigw) : NULL;
    cJSON_Delete (aigw);
    if (!text)
        return -1;
    int rc = s_splice (reply, json, close, empty, text, name, vs, ve);
    free (text);
    if (rc)
        return -1;
    reply->status = 200;
    s_header_value (reply->winner, sizeof reply->winner, res->model);
    return 0;
}

//  Message for a failed job: the broker's text or a default, then failed attempts'
//  reasons "(model: reason; ...)" so SDK users see them without reading "aigw".
static void s_error_message (char *buf, size_t size, const Aigw__Error *e)
{
    const char *base = e->message && e->message[0] ? e->message : NULL;
    if (!base)
        base = e->code == AIGW__ERROR_CODE__ERR_TIMEOUT ? "deadline exceeded"
             : e->code == AIGW__ERROR_CODE__ERR_UNAVAILABLE ? "no worker available for the model"
             : e->code == AIGW__ERROR_CODE__ERR_OVERLOADED ? "overloaded, try again later"
             : e->code == AIGW__ERROR_CODE__ERR_COOLDOWN ? "every target is cooling down after failures"
             : "every upstream attempt failed";
    int n = snprintf (buf, size, "%s", base);
    size_t o = n < 0 ? 0 : (size_t) n < size ? (size_t) n : size - 1;
    const char *sep = " (";
    for (size_t i = 0; i < e->n_attempts && o + 8 < size; i++) {
        const Aigw__AttemptInfo *a = e->attempts[i];
        const char *why = a ? s_attempt_error (a) : NULL;
        if (!why || a->outcome != AIGW__OUTCOME__OUTCOME_FAILED)
            continue;
        n = snprintf (buf + o, size - o, "%s%s: %s", sep, a->target ? a->target : "?", why);
        o += n < 0 ? 0 : (size_t) n < size - o ? (size_t) n : size - o - 1;
        sep = "; ";
    }
    if (sep[0] == ';' && o + 1 < size) {
        buf[o++] = ')';
        buf[o] = 0;
    }
}

cJSON *edge_reply_error_json (const Aigw__Error *e, cfg_policy_t policy, const char *winner,
                              int *status, const cfg_t *cfg)
{
    *status = edge_reply_status (e->code);
    char message[S_MESSAGE_MAX];
    s_error_message (message, sizeof message, e);
    const char *code = edge_reply_code_name (e->code);
    //  A request every provider refused keeps the provider's own code (e.g.
    //  context_length_exceeded), as OpenAI's SDKs and clients expect
    for (size_t i = 0; e->code == AIGW__ERROR_CODE__ERR_BAD_REQUEST && i < e->n_attempts; i++) {
        const Aigw__AttemptInfo *a = e->attempts[i];
        if (a && a->outcome == AIGW__OUTCOME__OUTCOME_FAILED && a->upstream_code
            && a->upstream_code[0]) {
            code = a->upstream_code;
            break;
        }
    }
    cJSON *root = s_error_root (*status, code, message);
    if (!root)
        return NULL;
    if (e->has_upstream_status)
        cJSON_AddNumberToObject (cJSON_GetObjectItemCaseSensitive (root, "error"),
                                 "upstream_status", e->upstream_status);
    if (e->n_attempts > 0 || winner) {
        cJSON *aigw = edge_reply_aigw_json (winner, policy, false, 0, e->attempts, e->n_attempts,
                                            cfg, NULL);
        edge_reply_aigw_budget (aigw, e->has_hedge_suppressed && e->hedge_suppressed,
                                e->has_retry_suppressed && e->retry_suppressed);
        if (aigw)
            cJSON_AddItemToObject (root, "aigw", aigw);
    }
    return root;
}

cJSON *edge_reply_simple_json (int status, const char *code, const char *message)
{
    return s_error_root (status, code, message);
}

uint32_t edge_reply_retry_after (const Aigw__Error *e)
{
    //  Every target cooling: the broker gives the shortest cooldown left
    if (e->code == AIGW__ERROR_CODE__ERR_COOLDOWN)
        return e->has_retry_after_ms ? (e->retry_after_ms + 999) / 1000 : 1;
    uint32_t best = 0;
    for (size_t i = 0; i < e->n_attempts; i++) {
        const Aigw__AttemptInfo *a = e->attempts[i];
        if (!a || !a->has_retry_after_ms || a->error != AIGW__ERROR_CODE__ERR_RATE_LIMITED)
            continue;
        uint32_t s = (a->retry_after_ms + 999) / 1000;
        if (s == 0)
            s = 1;
        if (!best || s < best)
            best = s;
    }
    return best;
}

int edge_reply_error (edge_reply_t *reply, const Aigw__Error *e, cfg_policy_t policy,
                      const cfg_t *cfg)
{
    memset (reply, 0, sizeof *reply);
    int status = 500;
    cJSON *root = edge_reply_error_json (e, policy, NULL, &status, cfg);
    if (!root)
        return -1;
    int rc = s_finish (reply, status, root);
    if (status == 429 || status == 503)
        reply->retry_after_s = edge_reply_retry_after (e);
    return rc;
}

static cJSON *s_model_entry (const char *id, const char *kind, uint32_t workers)
{
    cJSON *o = cJSON_CreateObject ();
    if (!o)
        return NULL;
    s_add_text (o, "id", id);
    cJSON_AddStringToObject (o, "object", "model");
    cJSON_AddNumberToObject (o, "created", 0);
    cJSON_AddStringToObject (o, "owned_by", "aigw");
    cJSON *a = cJSON_AddObjectToObject (o, "aigw");
    if (a) {
        cJSON_AddStringToObject (a, "kind", kind);
        cJSON_AddNumberToObject (a, "workers", workers);
    }
    return o;
}

//  Workers serving the group's live targets (0 = the group is not live).
static uint32_t s_group_workers (const cfg_group_t *g, const edge_status_t *st)
{
    uint32_t sum = 0;
    for (size_t t = 0; t < g->ntargets; t++) {
        const edge_model_status_t *m = edge_status_model (st, g->targets[t]);
        if (m)
            sum += m->workers;
    }
    return sum;
}

int edge_reply_models (edge_reply_t *reply, const cfg_t *cfg, const edge_status_t *st)
{
    memset (reply, 0, sizeof *reply);
    cJSON *root = cJSON_CreateObject ();
    if (root)
        cJSON_AddStringToObject (root, "object", "list");
    cJSON *data = root ? cJSON_AddArrayToObject (root, "data") : NULL;
    if (!data) {
        cJSON_Delete (root);
        return -1;
    }
    for (size_t i = 0; st && i < st->nmodels; i++) {
        if (st->models[i].workers == 0)
            continue;
        cJSON *e = s_model_entry (st->models[i].name, "model", st->models[i].workers);
        if (e)
            cJSON_AddItemToArray (data, e);
    }
    for (size_t i = 0; st && i < cfg->ngroups; i++) {
        uint32_t workers = s_group_workers (&cfg->groups[i], st);
        cJSON *e = workers ? s_model_entry (cfg->groups[i].name, "group", workers) : NULL;
        if (e)
            cJSON_AddItemToArray (data, e);
    }
    return s_finish (reply, 200, root);
}

int edge_reply_model (edge_reply_t *reply, const cfg_t *cfg, const edge_status_t *st,
                      const char *id)
{
    memset (reply, 0, sizeof *reply);
    const edge_model_status_t *m = edge_status_model (st, id);
    const cfg_group_t *g = cfg_group (cfg, id);
    cJSON *e = NULL;
    if (m && m->workers)
        e = s_model_entry (m->name, "model", m->workers);
    else
    if (g && st && s_group_workers (g, st))
        e = s_model_entry (g->name, "group", s_group_workers (g, st));
    else {
        char msg[96 + CFG_NAME_MAX];
        snprintf (msg, sizeof msg, "The model '%.*s' does not exist or has no live worker",
                  CFG_NAME_MAX, id);
        return edge_reply_simple (reply, 404, "model_not_found", msg);
    }
    return s_finish (reply, 200, e);
}

int edge_reply_pairs (edge_reply_t *reply, int status, const char *const *pairs, size_t n)
{
    memset (reply, 0, sizeof *reply);
    cJSON *root = cJSON_CreateObject ();
    for (size_t i = 0; root && i < n; i++)
        cJSON_AddStringToObject (root, pairs[2 * i], pairs[2 * i + 1] ? pairs[2 * i + 1] : "");
    return s_finish (reply, status, root);
}

int edge_reply_ready (edge_reply_t *reply, bool link_up, const edge_status_t *st,
                      const char *broker_ep)
{
    memset (reply, 0, sizeof *reply);
    bool ready = link_up && st && st->workers > 0;
    cJSON *root = cJSON_CreateObject ();
    if (!root)
        return -1;
    cJSON_AddStringToObject (root, "status", ready ? "ready" : "unavailable");
    if (!link_up)
        cJSON_AddStringToObject (root, "reason", "the broker is not answering");
    else
    if (!ready)
        cJSON_AddStringToObject (root, "reason", "no worker is registered at the broker");
    cJSON_AddStringToObject (root, "broker", broker_ep ? broker_ep : "");
    cJSON_AddNumberToObject (root, "workers", link_up && st ? st->workers : 0);
    cJSON_AddNumberToObject (root, "models", link_up && st ? (double) st->nmodels : 0);
    return s_finish (reply, ready ? 200 : 503, root);
}
