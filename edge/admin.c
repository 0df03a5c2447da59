// The admin API for virtual keys (see admin.h).
#define _GNU_SOURCE
#include "admin.h"

#include <cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_PREFIX "/v1/aigw/keys"
#define S_LIMIT_MAX 1000000000LL        // rpm, tpm, max_parallel
#define S_BUDGET_MAX 1e9

//  --------------------------------------------------------------- replies

static int s_reply (cJSON *root, int status, char **out, size_t *out_len)
{
    char *text = root ? cJSON_PrintUnformatted (root) : NULL;
    cJSON_Delete (root);
    *out = text;
    *out_len = text ? strlen (text) : 0;
    return text ? status : 500;
}

static int s_error (int status, const char *code, const char *param, const char *message,
                    char **out, size_t *out_len)
{
    cJSON *root = cJSON_CreateObject ();
    cJSON *e = root ? cJSON_AddObjectToObject (root, "error") : NULL;
    if (e) {
        cJSON_AddStringToObject (e, "message", message);
        cJSON_AddStringToObject (e, "type", status >= 500 ? "server_error"
                                                          : "invalid_request_error");
        cJSON_AddStringToObject (e, "code", code);
        if (param)
            cJSON_AddStringToObject (e, "param", param);
        else
            cJSON_AddNullToObject (e, "param");
    }
    return s_reply (root, status, out, out_len);
}

static void s_add_time (cJSON *o, const char *key, int64_t unix_s)
{
    if (unix_s > 0)
        cJSON_AddNumberToObject (o, key, (double) unix_s);
    else
        cJSON_AddNullToObject (o, key);
}

static cJSON *s_key_json (const keys_view_t *v)
{
    const keys_spec_t *sp = &v->spec;
    cJSON *o = cJSON_CreateObject ();
    if (!o)
        return NULL;
    cJSON_AddStringToObject (o, "object", "aigw.key");
    cJSON_AddStringToObject (o, "name", sp->name);
    cJSON_AddStringToObject (o, "hint", v->hint);
    cJSON *models = cJSON_AddArrayToObject (o, "models");
    for (const char *p = sp->models; models && *p;) {
        p += strspn (p, " ,");
        size_t len = strcspn (p, ",");
        if (len) {
            char pat[KEYS_MODELS_MAX];
            snprintf (pat, sizeof pat, "%.*s", (int) len, p);
            cJSON_AddItemToArray (models, cJSON_CreateString (pat));
        }
        p += len;
    }
    cJSON_AddNumberToObject (o, "rpm", (double) sp->rpm);
    cJSON_AddNumberToObject (o, "tpm", (double) sp->tpm);
    cJSON_AddNumberToObject (o, "max_parallel", (double) sp->max_parallel);
    cJSON_AddNumberToObject (o, "budget_usd", sp->budget_usd);
    cJSON_AddStringToObject (o, "budget_period",
                             sp->budget_period == KEYS_PERIOD_MONTH ? "month" : "day");
    s_add_time (o, "expires_at", sp->expires_at);
    cJSON *meta = sp->metadata[0] ? cJSON_Parse (sp->metadata) : NULL;
    if (meta)
        cJSON_AddItemToObject (o, "metadata", meta);
    else
        cJSON_AddObjectToObject (o, "metadata");
    s_add_time (o, "created_at", v->created_at);
    cJSON_AddBoolToObject (o, "revoked", v->revoked_at != 0);
    s_add_time (o, "revoked_at", v->revoked_at);
    cJSON_AddBoolToObject (o, "expired", v->expired);
    cJSON_AddNumberToObject (o, "requests_last_minute", (double) v->requests_last_minute);
    cJSON_AddNumberToObject (o, "tokens_last_minute", (double) v->tokens_last_minute);
    cJSON_AddNumberToObject (o, "in_flight", (double) v->in_flight);
    cJSON_AddNumberToObject (o, "spend_usd", v->spend_usd);
    if (sp->budget_usd > 0) {
        double left = sp->budget_usd - v->spend_usd;
        cJSON_AddNumberToObject (o, "budget_remaining_usd", left > 0 ? left : 0);
    }
    else
        cJSON_AddNullToObject (o, "budget_remaining_usd");
    s_add_time (o, "period_start", v->period_start);
    cJSON_AddNumberToObject (o, "total_requests", (double) v->total_requests);
    cJSON_AddNumberToObject (o, "total_tokens", (double) v->total_tokens);
    cJSON_AddNumberToObject (o, "total_spend_usd", v->total_spend_usd);
    return o;
}

//  --------------------------------------------------------------- request fields

typedef struct {
    char param[32];
    char message[200];
} s_bad_t;

static int s_bad (s_bad_t *bad, const char *param, const char *message)
{
    snprintf (bad->param, sizeof bad->param, "%s", param);
    snprintf (bad->message, sizeof bad->message, "%s: %s", param, message);
    return -1;
}

static int s_count (const cJSON *v, const char *param, int64_t *out, s_bad_t *bad)
{
    if (!cJSON_IsNumber (v) || v->valuedouble < 0 || v->valuedouble > (double) S_LIMIT_MAX
        || v->valuedouble != floor (v->valuedouble))
        return s_bad (bad, param, "must be a whole number from 0 (no limit) to 1000000000");
    *out = (int64_t) v->valuedouble;
    return 0;
}

//  "2027-01-01T00:00:00Z" (or +00:00) to Unix seconds; -1 if not that shape.
static int64_t s_rfc3339 (const char *s)
{
    struct tm tm;
    memset (&tm, 0, sizeof tm);
    if (strlen (s) < 20 || s[0] < '0' || s[0] > '9')
        return -1;                      // strptime would skip leading spaces
    const char *rest = strptime (s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest || !(strcmp (rest, "Z") == 0 || strcmp (rest, "+00:00") == 0))
        return -1;
    struct tm want = tm;
    time_t t = timegm (&tm);
    struct tm back;
    //  timegm rolls impossible dates forward (Feb 30 -> Mar 2): refuse them instead
    if (t < 0 || !gmtime_r (&t, &back) || back.tm_year != want.tm_year
        || back.tm_mon != want.tm_mon || back.tm_mday != want.tm_mday
        || back.tm_hour != want.tm_hour || back.tm_min != want.tm_min
        || back.tm_sec != want.tm_sec)
        return -1;
    return (int64_t) t;
}

static int s_models (const cJSON *v, keys_spec_t *sp, s_bad_t *bad)
{
    if (!cJSON_IsArray (v) || cJSON_GetArraySize (v) == 0)
        return s_bad (bad, "models", "must be a non-empty array of model patterns");
    size_t o = 0;
    const cJSON *it;
    cJSON_ArrayForEach (it, v) {
        const char *p = cJSON_IsString (it) ? it->valuestring : NULL;
        size_t len = p ? strlen (p) : 0;
        if (!len || len > 127 || strpbrk (p, ", \t\r\n"))
            return s_bad (bad, "models", "each pattern is 1 to 127 characters without "
                          "commas or spaces");
        if (o + len + 2 > sizeof sp->models)
            return s_bad (bad, "models", "too many patterns");
        if (o)
            sp->models[o++] = ',';
        memcpy (sp->models + o, p, len);
        o += len;
        sp->models[o] = 0;
    }
    return 0;
}

static int s_field (const cJSON *f, keys_spec_t *sp, bool create, s_bad_t *bad)
{
    const char *k = f->string;
    if (strcmp (k, "name") == 0) {
        if (!create)
            return s_bad (bad, "name", "a key cannot be renamed");
        if (!cJSON_IsString (f) || !keys_name_ok (f->valuestring))
            return s_bad (bad, "name", "1 to 63 characters of letters, digits, '.', '_', '-'");
        snprintf (sp->name, sizeof sp->name, "%s", f->valuestring);
        return 0;
    }
    if (strcmp (k, "models") == 0)
        return s_models (f, sp, bad);
    if (strcmp (k, "rpm") == 0)
        return s_count (f, k, &sp->rpm, bad);
    if (strcmp (k, "tpm") == 0)
        return s_count (f, k, &sp->tpm, bad);
    if (strcmp (k, "max_parallel") == 0)
        return s_count (f, k, &sp->max_parallel, bad);
    if (strcmp (k, "budget_usd") == 0) {
        if (!cJSON_IsNumber (f) || !(f->valuedouble >= 0 && f->valuedouble <= S_BUDGET_MAX))
            return s_bad (bad, k, "must be a number of USD from 0 (no budget) to 1e9");
        sp->budget_usd = f->valuedouble;
        return 0;
    }
    if (strcmp (k, "budget_period") == 0) {
        const char *v = cJSON_IsString (f) ? f->valuestring : "";
        if (strcmp (v, "day") == 0)
            sp->budget_period = KEYS_PERIOD_DAY;
        else
        if (strcmp (v, "month") == 0)
            sp->budget_period = KEYS_PERIOD_MONTH;
        else
            return s_bad (bad, k, "must be \"day\" or \"month\"");
        return 0;
    }
    if (strcmp (k, "expires_at") == 0) {
        if (cJSON_IsNull (f))
            sp->expires_at = 0;
        else
        if (cJSON_IsNumber (f) && f->valuedouble >= 0 && f->valuedouble < 1e11
            && f->valuedouble == floor (f->valuedouble))
            sp->expires_at = (int64_t) f->valuedouble;
        else
        if (cJSON_IsString (f) && s_rfc3339 (f->valuestring) >= 0)
            sp->expires_at = s_rfc3339 (f->valuestring);
        else
            return s_bad (bad, k, "Unix seconds (0 = never) or a UTC time like "
                          "\"2027-01-01T00:00:00Z\"");
        return 0;
    }
    if (strcmp (k, "metadata") == 0) {
        char *text = cJSON_IsObject (f) ? cJSON_PrintUnformatted (f) : NULL;
        bool fits = text && strlen (text) < sizeof sp->metadata;
        if (fits)
            snprintf (sp->metadata, sizeof sp->metadata, "%s", text);
        free (text);
        return fits ? 0 : s_bad (bad, k, "must be a JSON object of at most 4 KiB");
    }
    return s_bad (bad, k, "unknown field");
}

static int s_fields (const cJSON *root, keys_spec_t *sp, bool create, s_bad_t *bad)
{
    const cJSON *f;
    cJSON_ArrayForEach (f, root)
        if (s_field (f, sp, create, bad))
            return -1;
    return 0;
}

//  --------------------------------------------------------------- routes

static int s_one (keys_t *keys, const char *name, int64_t now_ms, int status, const char *secret,
                  char **out, size_t *out_len)
{
    keys_view_t v;
    if (keys_get (keys, name, now_ms, &v))
        return s_error (404, "key_not_found", NULL, "no key with that name", out, out_len);
    cJSON *o = s_key_json (&v);
    if (o && secret)
        cJSON_AddStringToObject (o, "key", secret);
    return s_reply (o, status, out, out_len);
}

static cJSON *s_parse_object (const char *body, size_t len, char **out, size_t *out_len,
                              int *status)
{
    const char *end = NULL;
    cJSON *root = len ? cJSON_ParseWithLengthOpts (body, len, &end, 0) : NULL;
    //  Nothing but whitespace may follow the object (no second value, no NUL)
    size_t used = root && end ? (size_t) (end - body) : len;
    while (root && used < len && strchr (" \t\r\n", body[used]) && body[used])
        used++;
    if (cJSON_IsObject (root) && used == len)
        return root;
    cJSON_Delete (root);
    *status = s_error (400, "invalid_json", NULL, "the body must be a JSON object", out, out_len);
    return NULL;
}

static int s_create (keys_t *keys, const char *body, size_t len, int64_t now_ms, char **out,
                     size_t *out_len)
{
    int status = 0;
    cJSON *root = s_parse_object (body, len, out, out_len, &status);
    if (!root)
        return status;
    keys_spec_t sp;
    memset (&sp, 0, sizeof sp);
    snprintf (sp.models, sizeof sp.models, "*");
    s_bad_t bad = { "", "" };
    int rc = s_fields (root, &sp, true, &bad);
    cJSON_Delete (root);
    if (rc)
        return s_error (400, "invalid_field", bad.param, bad.message, out, out_len);
    if (!sp.name[0])
        return s_error (400, "invalid_field", "name", "name: required", out, out_len);
    char secret[KEYS_SECRET_MAX], err[256];
    rc = keys_create (keys, &sp, now_ms, secret, sizeof secret, err, sizeof err);
    if (rc == -2)
        return s_error (409, "key_exists", "name", "a key with that name exists (revoked keys "
                        "keep their name)", out, out_len);
    if (rc)
        return s_error (500, "database_error", NULL, err, out, out_len);
    status = s_one (keys, sp.name, now_ms, 201, secret, out, out_len);
    memset (secret, 0, sizeof secret);
    return status;
}

static int s_update (keys_t *keys, const char *name, const char *body, size_t len,
                     int64_t now_ms, char **out, size_t *out_len)
{
    keys_view_t v;
    if (keys_get (keys, name, now_ms, &v))
        return s_error (404, "key_not_found", NULL, "no key with that name", out, out_len);
    int status = 0;
    cJSON *root = s_parse_object (body, len, out, out_len, &status);
    if (!root)
        return status;
    s_bad_t bad = { "", "" };
    int rc = s_fields (root, &v.spec, false, &bad);
    cJSON_Delete (root);
    if (rc)
        return s_error (400, "invalid_field", bad.param, bad.message, out, out_len);
    rc = keys_update (keys, &v.spec);
    if (rc == -2)
        return s_error (404, "key_not_found", NULL, "no key with that name", out, out_len);
    if (rc)
        return s_error (500, "database_error", NULL, "the key database refused the change",
                        out, out_len);
    return s_one (keys, name, now_ms, 200, NULL, out, out_len);
}

static int s_list (keys_t *keys, int64_t now_ms, char **out, size_t *out_len)
{
    cJSON *root = cJSON_CreateObject ();
    cJSON *data = root ? cJSON_AddArrayToObject (root, "data") : NULL;
    if (root)
        cJSON_AddStringToObject (root, "object", "list");
    size_t n = keys_count (keys);
    for (size_t i = 0; data && i < n; i++) {
        keys_view_t v;
        if (keys_get_at (keys, i, now_ms, &v) == 0)
            cJSON_AddItemToArray (data, s_key_json (&v));
    }
    return s_reply (root, 200, out, out_len);
}

int admin_handle (keys_t *keys, const char *method, const char *path, const char *body,
                  size_t body_len, int64_t now_ms, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    size_t plen = strlen (S_PREFIX);
    if (strncmp (path, S_PREFIX, plen) != 0 || (path[plen] && path[plen] != '/'))
        return s_error (404, "not_found", NULL, "no such route", out, out_len);
    const char *name = path[plen] == '/' ? path + plen + 1 : NULL;
    if (name && !*name)
        name = NULL;
    if (name && !keys_name_ok (name))
        return s_error (404, "key_not_found", NULL, "no key with that name", out, out_len);
    bool get = strcmp (method, "GET") == 0 || strcmp (method, "HEAD") == 0;
    if (!name) {
        if (get)
            return s_list (keys, now_ms, out, out_len);
        if (strcmp (method, "POST") == 0)
            return s_create (keys, body, body_len, now_ms, out, out_len);
        return s_error (405, "method_not_allowed", NULL, "use GET or POST on /v1/aigw/keys",
                        out, out_len);
    }
    if (get)
        return s_one (keys, name, now_ms, 200, NULL, out, out_len);
    if (strcmp (method, "PATCH") == 0)
        return s_update (keys, name, body, body_len, now_ms, out, out_len);
    if (strcmp (method, "DELETE") == 0) {
        int rc = keys_revoke (keys, name, now_ms);
        if (rc == -2)
            return s_error (404, "key_not_found", NULL, "no key with that name", out, out_len);
        if (rc)
            return s_error (500, "database_error", NULL, "the key database refused the change",
                            out, out_len);
        cJSON *o = cJSON_CreateObject ();
        if (o) {
            cJSON_AddStringToObject (o, "name", name);
            cJSON_AddBoolToObject (o, "revoked", true);
        }
        return s_reply (o, 200, out, out_len);
    }
    return s_error (405, "method_not_allowed", NULL, "use GET, PATCH or DELETE on "
                    "/v1/aigw/keys/{name}", out, out_len);
}
