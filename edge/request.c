// Chat-completions request parsing and model resolution (pure logic, no I/O).
#include "request.h"
#include "jdepth.h"
#include "utf8.h"

#include <cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_CODE_INVALID   "invalid_request"
#define S_CODE_JSON      "invalid_json"
#define S_CODE_NOMODEL   "model_not_found"
#define S_CODE_DEPTH     "json_too_deep"
#define S_NAME_SHOWN     32     // bytes of an over-long model name quoted in a message
#define S_KEY_SHOWN      64     // bytes of an unknown "aigw" key quoted in a message

//  Fill err with a status, static code and formatted message; bytes of the message
//  that are not valid UTF-8 become U+FFFD (it goes into JSON bodies). Returns -1.
static int s_err_set (edge_err_t *err, int status, const char *code, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

static int s_err_set (edge_err_t *err, int status, const char *code, const char *fmt, ...)
{
    err->status = status;
    err->code = code;
    char raw[2 * sizeof err->message];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (raw, sizeof raw, fmt, ap);
    va_end (ap);
    //  Messages quote client bytes (model names, keys): keep them valid UTF-8
    utf8_sanitize (err->message, sizeof err->message, raw, strlen (raw));
    return -1;
}

void edge_request_reset (edge_job_t *job)
{
    if (!job)
        return;
    free (job->payload);
    memset (job, 0, sizeof *job);
}

static bool s_is_model (const cfg_t *cfg, const char *name, edge_live_fn *live, void *arg)
{
    return cfg_model (cfg, name) || (live && live (arg, name));
}

static int s_add_target (edge_job_t *job, const char *name, size_t len, edge_err_t *err)
{
    if (job->ntargets == CFG_TARGETS_MAX)
        return s_err_set (err, 400, S_CODE_INVALID, "too many targets (at most %d)",
                             CFG_TARGETS_MAX);
    if (len >= CFG_NAME_MAX)
        return s_err_set (err, 404, S_CODE_NOMODEL, "The model '%.*s...' does not exist",
                             (int) utf8_cut (name, len, S_NAME_SHOWN), name);
    memcpy (job->targets[job->ntargets], name, len);
    job->targets[job->ntargets][len] = 0;
    job->ntargets++;
    return 0;
}

//  Add one named model as a target; 404 unless config or the broker knows it.
static int s_add_model (const cfg_t *cfg, edge_job_t *job, const char *name, size_t len,
                        edge_live_fn *live, void *arg, edge_err_t *err)
{
    if (s_add_target (job, name, len, err))
        return -1;
    const char *t = job->targets[job->ntargets - 1];
    if (!s_is_model (cfg, t, live, arg)) {
        job->ntargets--;
        return s_err_set (err, 404, S_CODE_NOMODEL, "The model '%s' does not exist", t);
    }
    return 0;
}

static void s_apply_group (edge_job_t *job, const cfg_group_t *g)
{
    for (size_t i = 0; i < g->ntargets; i++)
        snprintf (job->targets[i], CFG_NAME_MAX, "%s", g->targets[i]);
    job->ntargets = g->ntargets;
    job->policy = g->policy;
    job->hedge_set = !g->hedge_auto && g->hedge_delay_ms > 0;
    job->hedge_delay_ms = job->hedge_set ? g->hedge_delay_ms : 0;
    job->deadline_ms = g->deadline_ms;
    job->ttft_timeout_ms = g->ttft_timeout_ms;
    job->retries_set = g->retries != CFG_RETRIES_UNSET;
    job->retries = job->retries_set ? (uint32_t) g->retries : 0;
    job->retry_backoff_ms = g->retry_backoff_ms;
}

//  A single model's own retry settings.
static void s_apply_model (const cfg_t *cfg, edge_job_t *job)
{
    const cfg_model_t *m = cfg_model (cfg, job->targets[0]);
    if (!m)
        return;
    job->retries_set = m->retries != CFG_RETRIES_UNSET;
    job->retries = job->retries_set ? (uint32_t) m->retries : 0;
    job->retry_backoff_ms = m->retry_backoff_ms;
}

//  "a, b" -> race of a and b; every element must be a model.
static int s_resolve_list (const cfg_t *cfg, edge_job_t *job, edge_live_fn *live, void *arg,
                           edge_err_t *err)
{
    const char *p = job->model;
    while (true) {
        p += strspn (p, " \t");
        size_t len = strcspn (p, ",");
        size_t name_len = len;
        while (name_len > 0 && (p[name_len - 1] == ' ' || p[name_len - 1] == '\t'))
            name_len--;
        if (name_len == 0)
            return s_err_set (err, 400, S_CODE_INVALID,
                                 "model: empty name in the list '%s'", job->model);
        if (s_add_model (cfg, job, p, name_len, live, arg, err))
            return -1;
        if (p[len] == 0)
            break;
        p += len + 1;
    }
    job->policy = CFG_POLICY_RACE;
    return 0;
}

//  Resolve `model` (already copied into job->model) into targets and defaults.
static int s_resolve (const cfg_t *cfg, edge_job_t *job, edge_live_fn *live, void *arg,
                      edge_err_t *err)
{
    if (strchr (job->model, ','))
        return s_resolve_list (cfg, job, live, arg, err);
    const cfg_group_t *g = cfg_group (cfg, job->model);
    if (g) {
        s_apply_group (job, g);
        return 0;
    }
    job->policy = CFG_POLICY_RACE;
    if (s_add_model (cfg, job, job->model, strlen (job->model), live, arg, err))
        return -1;
    s_apply_model (cfg, job);
    return 0;
}

static int s_check_messages (const cJSON *root, edge_err_t *err)
{
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive (root, "messages");
    if (!msgs)
        return s_err_set (err, 400, S_CODE_INVALID, "messages: required");
    if (!cJSON_IsArray (msgs) || !msgs->child)
        return s_err_set (err, 400, S_CODE_INVALID, "messages: must be a non-empty array");
    int i = 0;
    for (const cJSON *m = msgs->child; m; m = m->next, i++) {
        if (!cJSON_IsObject (m))
            return s_err_set (err, 400, S_CODE_INVALID, "messages[%d]: must be an object", i);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive (m, "role");
        if (!cJSON_IsString (role))
            return s_err_set (err, 400, S_CODE_INVALID, "messages[%d].role: must be a string", i);
    }
    return 0;
}

//  The fields the edge reads must appear once: cJSON looks at the first of duplicate
//  keys, most upstream parsers take the last, so a second "model" would go unchecked.
static int s_check_unique (const cJSON *root, edge_err_t *err)
{
    static const char *const fields[] = { "model", "messages", "stream", "stream_options",
                                          "aigw" };
    unsigned seen = 0;
    for (const cJSON *v = root->child; v; v = v->next)
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
            if (strcmp (v->string, fields[i]))
                continue;
            if (seen & (1u << i))
                return s_err_set (err, 400, S_CODE_INVALID, "%s: given more than once",
                                     fields[i]);
            seen |= 1u << i;
        }
    return 0;
}

static int s_check_model (const cJSON *root, edge_job_t *job, edge_err_t *err)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive (root, "model");
    if (!model)
        return s_err_set (err, 400, S_CODE_INVALID, "model: required");
    if (!cJSON_IsString (model) || !model->valuestring[0])
        return s_err_set (err, 400, S_CODE_INVALID, "model: must be a non-empty string");
    size_t len = strlen (model->valuestring);
    if (len >= sizeof job->model)
        return s_err_set (err, 400, S_CODE_INVALID, "model: longer than %zu bytes",
                             sizeof job->model - 1);
    memcpy (job->model, model->valuestring, len + 1);
    return 0;
}

//  `stream` (boolean) and `stream_options.include_usage` (boolean). stream_options
//  without streaming is accepted and ignored.
static int s_check_stream (const cJSON *root, edge_job_t *job, edge_err_t *err)
{
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive (root, "stream");
    if (stream && !cJSON_IsNull (stream) && !cJSON_IsBool (stream))
        return s_err_set (err, 400, S_CODE_INVALID, "stream: must be a boolean");
    job->stream = cJSON_IsTrue (stream);
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive (root, "stream_options");
    if (!opts || cJSON_IsNull (opts))
        return 0;
    if (!cJSON_IsObject (opts))
        return s_err_set (err, 400, S_CODE_INVALID, "stream_options: must be an object");
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive (opts, "include_usage");
    if (usage && !cJSON_IsNull (usage) && !cJSON_IsBool (usage))
        return s_err_set (err, 400, S_CODE_INVALID,
                             "stream_options.include_usage: must be a boolean");
    job->include_usage = job->stream && cJSON_IsTrue (usage);
    return 0;
}

//  A JSON integer in [min, UINT32_MAX]; -1 if not.
static int s_uint32 (const cJSON *v, uint32_t min, uint32_t *out)
{
    if (!cJSON_IsNumber (v))
        return -1;
    double d = v->valuedouble;
    if (!(d >= (double) min && d <= 4294967295.0))
        return -1;
    uint32_t u = (uint32_t) d;
    if ((double) u != d)
        return -1;
    *out = u;
    return 0;
}

static int s_override_targets (const cfg_t *cfg, const cJSON *v, edge_job_t *job,
                               edge_live_fn *live, void *arg, edge_err_t *err)
{
    if (!cJSON_IsArray (v) || !v->child)
        return s_err_set (err, 400, S_CODE_INVALID,
                             "aigw.targets: must be a non-empty array of model names");
    job->ntargets = 0;
    int i = 0;
    for (const cJSON *t = v->child; t; t = t->next, i++) {
        if (!cJSON_IsString (t) || !t->valuestring[0])
            return s_err_set (err, 400, S_CODE_INVALID,
                                 "aigw.targets[%d]: must be a non-empty string", i);
        if (s_add_model (cfg, job, t->valuestring, strlen (t->valuestring), live, arg, err))
            return -1;
    }
    return 0;
}

static int s_override_hedge (const cJSON *v, edge_job_t *job, edge_err_t *err)
{
    if (cJSON_IsString (v) && strcmp (v->valuestring, "auto") == 0) {
        job->hedge_set = false;
        job->hedge_delay_ms = 0;
        return 0;
    }
    if (s_uint32 (v, 0, &job->hedge_delay_ms))
        return s_err_set (err, 400, S_CODE_INVALID,
                             "aigw.hedge_delay_ms: must be \"auto\" or an integer >= 0 (milliseconds)");
    job->hedge_set = true;
    return 0;
}

static int s_override_one (const cfg_t *cfg, const cJSON *v, edge_job_t *job,
                           edge_live_fn *live, void *arg, edge_err_t *err)
{
    const char *k = v->string;
    if (strcmp (k, "policy") == 0) {
        if (!cJSON_IsString (v) || cfg_policy_parse (v->valuestring, &job->policy))
            return s_err_set (err, 400, S_CODE_INVALID,
                                 "aigw.policy: must be \"race\", \"hedge\" or \"fallback\"");
        return 0;
    }
    if (strcmp (k, "targets") == 0)
        return s_override_targets (cfg, v, job, live, arg, err);
    if (strcmp (k, "hedge_delay_ms") == 0)
        return s_override_hedge (v, job, err);
    if (strcmp (k, "deadline_ms") == 0) {
        if (s_uint32 (v, 1, &job->deadline_ms) || job->deadline_ms > cfg->broker.max_deadline_ms)
            return s_err_set (err, 400, S_CODE_INVALID,
                                 "aigw.deadline_ms: must be an integer from 1 to %u (milliseconds)",
                                 cfg->broker.max_deadline_ms);
        return 0;
    }
    if (strcmp (k, "ttft_timeout_ms") == 0) {
        if (s_uint32 (v, 1, &job->ttft_timeout_ms))
            return s_err_set (err, 400, S_CODE_INVALID,
                                 "aigw.ttft_timeout_ms: must be a positive integer (milliseconds)");
        return 0;
    }
    if (strcmp (k, "retries") == 0) {
        if (s_uint32 (v, 0, &job->retries) || job->retries > CFG_RETRIES_MAX)
            return s_err_set (err, 400, S_CODE_INVALID,
                                 "aigw.retries: must be an integer from 0 to %d", CFG_RETRIES_MAX);
        job->retries_set = true;
        return 0;
    }
    if (strcmp (k, "retry_backoff_ms") == 0) {
        if (s_uint32 (v, 0, &job->retry_backoff_ms) || job->retry_backoff_ms > 60000)
            return s_err_set (err, 400, S_CODE_INVALID,
                                 "aigw.retry_backoff_ms: must be an integer from 0 to 60000 "
                                 "(milliseconds)");
        return 0;
    }
    return s_err_set (err, 400, S_CODE_INVALID, "aigw.%.*s: unknown field",
                         (int) utf8_cut (k, strlen (k), S_KEY_SHOWN), k);
}

//  Apply the optional "aigw" object on top of what `model` resolved to.
static int s_overrides (const cfg_t *cfg, const cJSON *aigw, edge_job_t *job,
                        edge_live_fn *live, void *arg, edge_err_t *err)
{
    if (!cJSON_IsObject (aigw))
        return s_err_set (err, 400, S_CODE_INVALID, "aigw: must be an object");
    for (const cJSON *v = aigw->child; v; v = v->next)
        if (s_override_one (cfg, v, job, live, arg, err))
            return -1;
    return 0;
}

//  With aigw.targets the request's `model` need not resolve: a group still gives
//  its policy and timings as the base, anything else starts from a plain race.
static int s_resolve_all (const cfg_t *cfg, const cJSON *root, edge_job_t *job,
                          edge_live_fn *live, void *arg, edge_err_t *err)
{
    const cJSON *aigw = cJSON_GetObjectItemCaseSensitive (root, "aigw");
    const cJSON *targets = cJSON_IsObject (aigw)
                           ? cJSON_GetObjectItemCaseSensitive (aigw, "targets") : NULL;
    if (targets) {
        const cfg_group_t *g = cfg_group (cfg, job->model);
        if (g)
            s_apply_group (job, g);
        else
            job->policy = CFG_POLICY_RACE;
    }
    else
    if (s_resolve (cfg, job, live, arg, err))
        return -1;
    if (aigw && s_overrides (cfg, aigw, job, live, arg, err))
        return -1;
    return 0;
}

static bool s_only_space (const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            return false;
    return true;
}

//  Parse JSON strictly: one value, nothing but whitespace after it. The nesting is
//  checked first (cJSON recurses once per level, on a handler thread's stack).
static cJSON *s_parse_json (const char *body, size_t len, unsigned max_depth, edge_err_t *err)
{
    if (jdepth_check (body, len, max_depth)) {
        s_err_set (err, 400, S_CODE_DEPTH,
                      "request body nests arrays and objects deeper than %u levels", max_depth);
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = len ? cJSON_ParseWithLengthOpts (body, len, &end, false) : NULL;
    if (!root || (end && !s_only_space (end, body + len))) {
        cJSON_Delete (root);
        s_err_set (err, 400, S_CODE_JSON, "request body is not valid JSON");
        return NULL;
    }
    if (!cJSON_IsObject (root)) {
        cJSON_Delete (root);
        s_err_set (err, 400, S_CODE_JSON, "request body must be a JSON object");
        return NULL;
    }
    return root;
}

//  The payload is the body as sent when there is no "aigw" object, else reprinted.
static int s_payload (cJSON *root, const char *body, size_t len, edge_job_t *job,
                      edge_err_t *err)
{
    if (cJSON_GetObjectItemCaseSensitive (root, "aigw")) {
        cJSON_DeleteItemFromObjectCaseSensitive (root, "aigw");
        job->payload = cJSON_PrintUnformatted (root);
        job->payload_len = job->payload ? strlen (job->payload) : 0;
    }
    else {
        job->payload = malloc (len + 1);
        if (job->payload) {
            memcpy (job->payload, body, len);
            job->payload[len] = 0;
            job->payload_len = len;
        }
    }
    if (!job->payload)
        return s_err_set (err, 500, "internal_error", "out of memory");
    return 0;
}

int edge_request_parse (const cfg_t *cfg, const char *body, size_t len,
                        edge_live_fn *live, void *live_arg,
                        edge_job_t *job, edge_err_t *err)
{
    memset (job, 0, sizeof *job);
    memset (err, 0, sizeof *err);
    if (len > cfg->edge.max_body)
        return s_err_set (err, 413, "request_too_large",
                             "request body is larger than %llu bytes",
                             (unsigned long long) cfg->edge.max_body);
    cJSON *root = s_parse_json (body, len, cfg->edge.max_json_depth, err);
    if (!root)
        return -1;
    int rc = -1;
    if (s_check_unique (root, err) || s_check_model (root, job, err)
        || s_check_messages (root, err)
        || s_check_stream (root, job, err))
        goto cleanup;
    if (s_resolve_all (cfg, root, job, live, live_arg, err))
        goto cleanup;
    rc = s_payload (root, body, len, job, err);
cleanup:
    cJSON_Delete (root);
    if (rc)
        edge_request_reset (job);
    return rc;
}

void edge_request_to_pb (edge_job_t *job, uint64_t job_id, Aigw__Job *pb)
{
    aigw__job__init (pb);
    for (size_t i = 0; i < job->ntargets; i++)
        job->target_ptrs[i] = job->targets[i];
    pb->job_id = job_id;
    pb->n_targets = job->ntargets;
    pb->targets = job->target_ptrs;
    pb->has_policy = true;
    pb->policy = job->policy == CFG_POLICY_HEDGE ? AIGW__POLICY__POLICY_HEDGE
               : job->policy == CFG_POLICY_FALLBACK ? AIGW__POLICY__POLICY_FALLBACK
               : AIGW__POLICY__POLICY_RACE;
    pb->has_hedge_delay_ms = job->hedge_set;
    pb->hedge_delay_ms = job->hedge_delay_ms;
    pb->has_deadline_ms = job->deadline_ms > 0;
    pb->deadline_ms = job->deadline_ms;
    pb->has_ttft_timeout_ms = job->ttft_timeout_ms > 0;
    pb->ttft_timeout_ms = job->ttft_timeout_ms;
    pb->has_retries = job->retries_set;
    pb->retries = job->retries;
    pb->has_retry_backoff_ms = job->retry_backoff_ms > 0;
    pb->retry_backoff_ms = job->retry_backoff_ms;
    pb->has_stream = job->stream;
    pb->stream = job->stream;
}
