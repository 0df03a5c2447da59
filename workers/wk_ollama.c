// The ollama provider: OpenAI <-> Ollama /api/chat translation (requests, replies, NDJSON
// stream lines) and its dialect for the shared HTTP adapter.
#include "wk_ollama.h"
#include "wk_attempt.h"
#include "wk_errbody.h"
#include "wk_upstream.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_GET(obj, name) cJSON_GetObjectItemCaseSensitive (obj, name)
#define S_STR(obj, name) cJSON_GetStringValue (S_GET (obj, name))

static int s_bad (char *err, size_t errlen, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
static int s_bad (char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (err, errlen, fmt, ap);
    va_end (ap);
    return -1;
}

//  ---- request

//  Content parts: text joined by newlines into text, data-URL images into images.
static int s_parts (const cJSON *parts, buf_t *text, cJSON *images, char *err, size_t errlen)
{
    const cJSON *part;
    cJSON_ArrayForEach (part, parts) {
        const char *type = S_STR (part, "type");
        const char *url = S_STR (S_GET (part, "image_url"), "url");
        const char *b64 = url ? strstr (url, ";base64,") : NULL;
        if (type && strcmp (type, "text") == 0 && S_STR (part, "text")) {
            if ((text->len && buf_puts (text, "\n")) || buf_puts (text, S_STR (part, "text")))
                return s_bad (err, errlen, "message text too large");
        }
        else
        if (type && strcmp (type, "image_url") == 0 && b64 && strncmp (url, "data:", 5) == 0)
            cJSON_AddItemToArray (images, cJSON_CreateString (b64 + 8));
        else
            return s_bad (err, errlen, "content part type '%.40s' is not supported by ollama "
                          "(text, and images as data: URLs)", type ? type : "?");
    }
    return 0;
}

static int s_tool_calls (const cJSON *calls, cJSON *msg, char *err, size_t errlen)
{
    cJSON *list = cJSON_AddArrayToObject (msg, "tool_calls");
    const cJSON *call;
    cJSON_ArrayForEach (call, calls) {
        const cJSON *fn = S_GET (call, "function");
        const char *args = S_STR (fn, "arguments");
        cJSON *parsed = args && *args ? cJSON_Parse (args) : cJSON_CreateObject ();
        if (!cJSON_IsObject (parsed)) {
            cJSON_Delete (parsed);
            return s_bad (err, errlen, "tool call arguments are not a JSON object");
        }
        cJSON *item = cJSON_CreateObject ();
        cJSON *func = cJSON_AddObjectToObject (item, "function");
        cJSON_AddStringToObject (func, "name", S_STR (fn, "name") ? S_STR (fn, "name") : "");
        cJSON_AddItemToObject (func, "arguments", parsed);
        cJSON_AddItemToArray (list, item);
    }
    return 0;
}

static int s_message (const cJSON *m, cJSON *msgs, size_t max, char *err, size_t errlen)
{
    const char *role = S_STR (m, "role");
    if (!role)
        return s_bad (err, errlen, "message has no role");
    const cJSON *content = S_GET (m, "content");
    cJSON *out = cJSON_CreateObject ();
    cJSON_AddItemToArray (msgs, out);
    cJSON_AddStringToObject (out, "role", strcmp (role, "developer") == 0 ? "system" : role);
    if (cJSON_IsString (content)) {
        cJSON_AddStringToObject (out, "content", content->valuestring);
    }
    else
    if (cJSON_IsArray (content)) {
        buf_t text;
        buf_init (&text, max);
        cJSON *images = cJSON_CreateArray ();
        int rc = s_parts (content, &text, images, err, errlen);
        cJSON_AddStringToObject (out, "content", text.data ? text.data : "");
        if (cJSON_GetArraySize (images))
            cJSON_AddItemToObject (out, "images", images);
        else
            cJSON_Delete (images);
        buf_free (&text);
        if (rc)
            return -1;
    }
    else
        cJSON_AddStringToObject (out, "content", "");
    const cJSON *calls = S_GET (m, "tool_calls");
    if (cJSON_GetArraySize (calls) > 0 && s_tool_calls (calls, out, err, errlen))
        return -1;
    return 0;
}

static void s_copy (const cJSON *from, const char *name, cJSON *to, const char *as)
{
    const cJSON *v = S_GET (from, name);
    if (v && !cJSON_IsNull (v))
        cJSON_AddItemToObject (to, as, cJSON_Duplicate (v, true));
}

static int s_options (const cJSON *root, cJSON *out, char *err, size_t errlen)
{
    cJSON *opt = cJSON_CreateObject ();
    s_copy (root, "temperature", opt, "temperature");
    s_copy (root, "top_p", opt, "top_p");
    s_copy (root, "seed", opt, "seed");
    s_copy (root, "presence_penalty", opt, "presence_penalty");
    s_copy (root, "frequency_penalty", opt, "frequency_penalty");
    const cJSON *max = S_GET (root, "max_completion_tokens");
    s_copy (root, cJSON_IsNumber (max) ? "max_completion_tokens" : "max_tokens", opt, "num_predict");
    const cJSON *stop = S_GET (root, "stop");
    if (cJSON_IsString (stop))
        cJSON_AddItemToArray (cJSON_AddArrayToObject (opt, "stop"),
                              cJSON_CreateString (stop->valuestring));
    else
    if (cJSON_IsArray (stop))
        s_copy (root, "stop", opt, "stop");
    else
    if (stop && !cJSON_IsNull (stop)) {
        cJSON_Delete (opt);
        return s_bad (err, errlen, "stop must be a string or an array of strings");
    }
    if (cJSON_GetArraySize (opt))
        cJSON_AddItemToObject (out, "options", opt);
    else
        cJSON_Delete (opt);
    return 0;
}

//  response_format json_object -> "json"; json_schema -> the schema itself.
static void s_format (const cJSON *root, cJSON *out)
{
    const cJSON *rf = S_GET (root, "response_format");
    const char *type = S_STR (rf, "type");
    const cJSON *schema = S_GET (S_GET (rf, "json_schema"), "schema");
    if (type && strcmp (type, "json_object") == 0)
        cJSON_AddStringToObject (out, "format", "json");
    else
    if (type && strcmp (type, "json_schema") == 0 && cJSON_IsObject (schema))
        cJSON_AddItemToObject (out, "format", cJSON_Duplicate (schema, true));
}

static int s_translate (const cJSON *root, cJSON *out, size_t max, char *err, size_t errlen)
{
    const cJSON *messages = S_GET (root, "messages");
    if (!cJSON_IsArray (messages))
        return s_bad (err, errlen, "request has no messages array");
    cJSON *msgs = cJSON_AddArrayToObject (out, "messages");
    const cJSON *m;
    cJSON_ArrayForEach (m, messages)
        if (s_message (m, msgs, max, err, errlen))
            return -1;
    if (s_options (root, out, err, errlen))
        return -1;
    s_copy (root, "tools", out, "tools");
    s_format (root, out);
    return 0;
}

int wk_ollama_request (const char *req, size_t len, const char *upstream_model, bool stream,
                       buf_t *out, char *err, size_t errlen)
{
    cJSON *root = cJSON_ParseWithLength (req, len);
    cJSON *tr = cJSON_CreateObject ();
    int rc = -1;
    if (!cJSON_IsObject (root))
        s_bad (err, errlen, "request payload is not a well-formed JSON object");
    else {
        cJSON_AddStringToObject (tr, "model", upstream_model);
        cJSON_AddBoolToObject (tr, "stream", stream);
        if (s_translate (root, tr, len + 1, err, errlen) == 0) {
            char *text = cJSON_PrintUnformatted (tr);
            rc = text && buf_puts (out, text) == 0
               ? 0 : s_bad (err, errlen, "translated request too large");
            free (text);
        }
    }
    cJSON_Delete (root);
    cJSON_Delete (tr);
    return rc;
}

//  ---- replies

static uint32_t s_count (const cJSON *obj, const char *name)
{
    const cJSON *n = S_GET (obj, name);
    return cJSON_IsNumber (n) && n->valuedouble >= 0 && n->valuedouble < UINT32_MAX
         ? (uint32_t) n->valuedouble : 0;
}

static const char *s_finish (const cJSON *root, bool tools)
{
    const char *reason = S_STR (root, "done_reason");
    if (reason && strcmp (reason, "length") == 0)
        return "length";
    return tools ? "tool_calls" : "stop";
}

static void s_usage (wk_compl_t *c, const cJSON *root)
{
    c->usage.has = S_GET (root, "prompt_eval_count") || S_GET (root, "eval_count");
    c->usage.prompt_tokens = s_count (root, "prompt_eval_count");
    c->usage.completion_tokens = s_count (root, "eval_count");
}

//  Tool call i of a message: id "call_<i>", arguments printed as JSON text. 0 / -1.
static int s_tool (wk_compl_t *c, uint32_t i, const cJSON *call, char **args)
{
    const cJSON *fn = S_GET (call, "function");
    const cJSON *a = S_GET (fn, "arguments");
    *args = cJSON_IsString (a) ? strdup (a->valuestring)
          : a ? cJSON_PrintUnformatted (a) : strdup ("{}");
    char id [32];
    snprintf (id, sizeof id, "call_%" PRIu32, i);
    return *args ? wk_compl_tool (c, 0, i, id, S_STR (fn, "name"), *args, strlen (*args)) : -1;
}

static int s_response (wk_compl_t *c, const cJSON *root, char *err, size_t errlen)
{
    const cJSON *msg = S_GET (root, "message");
    const char *content = S_STR (msg, "content");
    if (!cJSON_IsObject (msg))
        return s_bad (err, errlen, "upstream returned malformed JSON (HTTP 200)");
    wk_compl_meta (c, NULL, S_STR (root, "model"), NULL);
    int rc = wk_compl_text (c, 0, content ? content : "", content ? strlen (content) : 0);
    uint32_t n = 0;
    const cJSON *call;
    cJSON_ArrayForEach (call, S_GET (msg, "tool_calls")) {
        char *args = NULL;
        rc = rc ? rc : s_tool (c, n++, call, &args);
        free (args);
    }
    if (rc)
        return s_bad (err, errlen, "upstream reply larger than %zu bytes", c->max);
    wk_compl_finish (c, 0, s_finish (root, n > 0));
    s_usage (c, root);
    return 0;
}

int wk_ollama_response (const char *body, size_t len, const char *id, int64_t created,
                        buf_t *out, wk_usage_t *usage, char *err, size_t errlen)
{
    return wk_upstream_translate (body, len, id, created, s_response, out, usage, err, errlen);
}

//  ---- stream lines

static int s_stream_tools (wk_stream_t *s, const cJSON *calls)
{
    const cJSON *call;
    cJSON_ArrayForEach (call, calls) {
        if (s->ntools >= WK_COMPL_TOOLS)
            return wk_stream_fail (s, "more than %d tool calls", WK_COMPL_TOOLS);
        uint32_t i = s->ntools++;
        char *args = NULL;
        if (s_tool (&s->compl, i, call, &args)) {
            free (args);
            return wk_stream_fail (s, "streamed reply larger than %zu bytes", s->compl.max);
        }
        const wk_compl_tool_t *t = &s->compl.choice [0].tools [i];
        wk_delta_t d = { .tool = true, .tool_index = i, .tool_id = t->id.data,
                         .tool_name = t->name.data ? t->name.data : "",
                         .tool_args = args, .tool_args_len = strlen (args) };
        int rc = wk_stream_emit_delta (s, &d);
        free (args);
        if (rc)
            return rc;
    }
    return 0;
}

static int s_stream_line (wk_stream_t *s, const cJSON *root)
{
    const cJSON *msg = S_GET (root, "message");
    const char *content = S_STR (msg, "content");
    wk_compl_meta (&s->compl, NULL, S_STR (root, "model"), NULL);
    wk_compl_text (&s->compl, 0, "", 0);
    if (content && *content) {
        size_t len = strlen (content);
        if (wk_compl_text (&s->compl, 0, content, len))
            return wk_stream_fail (s, "streamed reply larger than %zu bytes", s->compl.max);
        wk_delta_t d = { .content = content, .content_len = len };
        if (wk_stream_emit_delta (s, &d))
            return WK_STREAM_FAIL;
    }
    if (s_stream_tools (s, S_GET (msg, "tool_calls")))
        return WK_STREAM_FAIL;
    if (!cJSON_IsTrue (S_GET (root, "done")))
        return 0;
    s_usage (&s->compl, root);
    const char *finish = s_finish (root, s->ntools > 0);
    wk_compl_finish (&s->compl, 0, finish);
    wk_delta_t d = { .finish = finish };
    return wk_stream_emit_delta (s, &d) ? WK_STREAM_FAIL : WK_STREAM_END;
}

int wk_ollama_stream_event (wk_stream_t *s, const char *event, const char *data, size_t len)
{
    cJSON *root = cJSON_ParseWithLength (data, len);
    char shown [WK_ERRBODY_DETAIL_MAX + 8];
    int rc;
    if (!cJSON_IsObject (root)) {
        wk_errbody_snippet (shown, sizeof shown, data, len, 80);
        rc = wk_stream_fail (s, "malformed NDJSON line: '%s'", shown);
    }
    else
    if (S_GET (root, "error")) {
        wk_errbody_detail (data, len, shown, sizeof shown);
        rc = wk_stream_fail (s, "upstream stream error: %s", shown);
    }
    else
        rc = s_stream_line (s, root);
    cJSON_Delete (root);
    return rc;
}

//  ---- dialect

static void s_id (const wk_attempt_t *a, char *id, size_t len)
{
    snprintf (id, len, "chatcmpl-ollama-%016" PRIx64, a->attempt_id);
}

static int s_build (const wk_attempt_t *a, const char *req, size_t len, buf_t *out,
                    char *err, size_t errlen)
{
    if (wk_ollama_request (req, len, a->model->cfg->upstream_model, a->stream, out, err, errlen))
        return -1;
    if (a->st) {
        char id [48];
        s_id (a, id, sizeof id);
        wk_compl_meta (&a->st->compl, id, NULL, NULL);
    }
    return 0;
}

static int s_full (const wk_attempt_t *a, const char *body, size_t len, buf_t *out,
                   const char **json, size_t *json_len, wk_usage_t *usage, char *err, size_t errlen)
{
    char id [48];
    s_id (a, id, sizeof id);
    if (wk_ollama_response (body, len, id, a->created, out, usage, err, errlen))
        return -1;
    *json = out->data;
    *json_len = out->len;
    return 0;
}

static const wk_dialect_t s_dialect = {
    .name = "ollama",
    .path = "/api/chat",
    .auth_fmt = "Authorization: Bearer %s",
    .framing = WK_FRAMING_NDJSON,
    .build = s_build,
    .full = s_full,
    .event = wk_ollama_stream_event,
};

WK_UPSTREAM_PROVIDER (wk_ollama_provider, "ollama", s_dialect);
