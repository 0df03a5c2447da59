// The openai provider: request rewriting (no re-serialisation), reply classification,
// stream events (chunks forwarded as they are, assembled for the RESULT), and its dialect.
#include "wk_openai.h"
#include "wk_attempt.h"
#include "wk_json.h"
#include "wk_errbody.h"
#include "wk_upstream.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WK_OPENAI_REWRITE_SLACK 4096    // rewritten request may grow by this much

//  ---- request rewriting

static int s_put_member (buf_t *out, const char *req, const wk_json_member_t *m,
                         const char *value, size_t value_len, bool *first)
{
    if (!*first && buf_append (out, ",", 1))
        return -1;
    *first = false;
    if (buf_append (out, req + m->key_off, m->key_len) || buf_append (out, ":", 1))
        return -1;
    return buf_append (out, value, value_len);
}

static int s_put_model (buf_t *out, const char *upstream_model, bool *first)
{
    if (!*first && buf_append (out, ",", 1))
        return -1;
    *first = false;
    if (buf_puts (out, "\"model\":"))
        return -1;
    return buf_put_json_str (out, upstream_model);
}

static int s_put_stream (buf_t *out, bool stream, bool *first)
{
    if (!*first && buf_append (out, ",", 1))
        return -1;
    *first = false;
    return buf_puts (out, stream ? "\"stream\":true,\"stream_options\":{\"include_usage\":true}"
                                    : "\"stream\":false");
}

int wk_openai_rewrite (const char *req, size_t len, const char *upstream_model, bool stream,
                       buf_t *out, const char **err)
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
    bool have_stream = false;
    int rc = buf_append (out, "{", 1);
    for (int i = 0; i < n && rc == 0; i++) {
        const wk_json_member_t *m = &members [i];
        if (wk_json_key_is (req, m, "model")) {
            rc = s_put_model (out, upstream_model, &first);
            have_model = true;
        }
        else
        if (wk_json_key_is (req, m, "stream")) {
            rc = s_put_stream (out, stream, &first);
            have_stream = true;
        }
        else
        if (!wk_json_key_is (req, m, "stream_options") && !wk_json_key_is (req, m, "aigw"))
            rc = s_put_member (out, req, m, req + m->val_off, m->val_len, &first);
    }
    if (rc == 0 && !have_model)
        rc = s_put_model (out, upstream_model, &first);
    if (rc == 0 && !have_stream && stream)
        rc = s_put_stream (out, stream, &first);
    if (rc == 0)
        rc = buf_append (out, "}", 1);
    if (rc)
        *err = "out of memory rewriting the request";
    return rc;
}

//  ---- reply classification

static bool s_count (const cJSON *usage, const char *name, uint32_t *out)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive (usage, name);
    if (!cJSON_IsNumber (n) || n->valuedouble < 0)
        return false;
    *out = n->valuedouble > UINT32_MAX ? UINT32_MAX : (uint32_t) n->valuedouble;
    return true;
}

int wk_openai_parse (long status, const char *body, size_t len, wk_errbody_reply_t *out)
{
    memset (out, 0, sizeof *out);
    out->status = status > 0 && status < 1000 ? (uint32_t) status : 0;
    if (status < 200 || status > 299)
        return wk_errbody_parse (status, body, len, out);
    cJSON *root = cJSON_ParseWithLength (body, len);
    if (!cJSON_IsObject (root)
    ||  !cJSON_IsArray (cJSON_GetObjectItemCaseSensitive (root, "choices"))) {
        cJSON_Delete (root);
        wk_errbody_fail (out, status, "upstream returned malformed JSON (HTTP %ld)%s", "");
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

//  ---- streamed replies

static uint32_t s_index (const cJSON *obj)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive (obj, "index");
    return cJSON_IsNumber (n) && n->valuedouble >= 0 && n->valuedouble < UINT32_MAX
         ? (uint32_t) n->valuedouble : 0;
}

static bool s_nonempty (const cJSON *item)
{
    const char *v = cJSON_GetStringValue (item);
    return v && *v;
}

//  One tool_calls piece of choice index into the assembly.
static int s_tool_piece (wk_stream_t *s, uint32_t index, const cJSON *tc)
{
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive (tc, "function");
    const char *args = cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (fn, "arguments"));
    if (wk_compl_tool (&s->compl, index, s_index (tc),
                       cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (tc, "id")),
                       cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (fn, "name")),
                       args, args ? strlen (args) : 0))
        return wk_stream_fail (s, "tool call index out of range or reply larger than %zu bytes",
                               s->compl.max);
    return 0;
}

//  One element of a chunk's choices. Sets *forward if it carries something.
static int s_choice (wk_stream_t *s, const cJSON *ch, bool *forward)
{
    uint32_t index = s_index (ch);
    const cJSON *delta = cJSON_GetObjectItemCaseSensitive (ch, "delta");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive (delta, "content");
    const cJSON *refusal = cJSON_GetObjectItemCaseSensitive (delta, "refusal");
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive (delta, "tool_calls");
    const cJSON *finish = cJSON_GetObjectItemCaseSensitive (ch, "finish_reason");
    if (index >= WK_COMPL_CHOICES)
        return wk_stream_fail (s, "choice index %u out of range", index);
    int rc = wk_compl_text (&s->compl, index, "", 0);   // the choice exists now
    if (rc == 0 && s_nonempty (content))
        rc = wk_compl_text (&s->compl, index, content->valuestring, strlen (content->valuestring));
    if (rc == 0 && s_nonempty (refusal))
        rc = wk_compl_refusal (&s->compl, index, refusal->valuestring, strlen (refusal->valuestring));
    if (rc)
        return wk_stream_fail (s, "streamed reply larger than %zu bytes", s->compl.max);
    const cJSON *tc;
    cJSON_ArrayForEach (tc, (cJSON_IsArray (tools) ? tools : NULL))
        if (s_tool_piece (s, index, tc))
            return WK_STREAM_FAIL;
    if (s_nonempty (finish))
        wk_compl_finish (&s->compl, index, finish->valuestring);
    *forward = *forward || s_nonempty (content) || s_nonempty (refusal)
            || cJSON_GetArraySize (tools) > 0 || s_nonempty (finish);
    return 0;
}

static void s_chunk_meta (wk_stream_t *s, const cJSON *root)
{
    wk_compl_meta (&s->compl, cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (root, "id")),
                   cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (root, "model")),
                   cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (root, "system_fingerprint")));
    const cJSON *created = cJSON_GetObjectItemCaseSensitive (root, "created");
    if (cJSON_IsNumber (created))
        s->compl.created = (int64_t) created->valuedouble;
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive (root, "usage");
    if (cJSON_IsObject (usage)) {
        bool p = s_count (usage, "prompt_tokens", &s->compl.usage.prompt_tokens);
        bool c = s_count (usage, "completion_tokens", &s->compl.usage.completion_tokens);
        s->compl.usage.has = s->compl.usage.has || p || c;
    }
}

//  A parsed chunk: assemble it; forward the raw bytes if it carries a token.
static int s_chunk (wk_stream_t *s, const cJSON *root, const char *data, size_t len)
{
    const cJSON *err = cJSON_GetObjectItemCaseSensitive (root, "error");
    const char *object = cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (root, "object"));
    if ((err && !cJSON_IsNull (err)) || (object && strcmp (object, "error") == 0)) {
        char detail [WK_ERRBODY_DETAIL_MAX + 8];
        wk_errbody_detail (data, len, detail, sizeof detail);
        return wk_stream_fail (s, "upstream stream error: %s", detail);
    }
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive (root, "choices");
    if (choices && !cJSON_IsArray (choices))
        return wk_stream_fail (s, "malformed SSE event: choices is not an array");
    s_chunk_meta (s, root);
    bool forward = false;
    const cJSON *ch;
    cJSON_ArrayForEach (ch, choices)
        if (s_choice (s, ch, &forward))
            return WK_STREAM_FAIL;
    return forward ? wk_stream_emit (s, data, len) : 0;
}

int wk_openai_stream_event (wk_stream_t *s, const char *event, const char *data, size_t len)
{
    while (len && (data [len - 1] == ' ' || data [len - 1] == '\n' || data [len - 1] == '\r'))
        len--;
    if (len == 6 && memcmp (data, "[DONE]", 6) == 0)
        return WK_STREAM_END;
    char shown [WK_ERRBODY_DETAIL_MAX + 8];
    if (strcmp (event, "error") == 0) {
        wk_errbody_detail (data, len, shown, sizeof shown);
        return wk_stream_fail (s, "upstream stream error: %s", shown);
    }
    cJSON *root = cJSON_ParseWithLength (data, len);
    if (!cJSON_IsObject (root)) {
        cJSON_Delete (root);
        wk_errbody_snippet (shown, sizeof shown, data, len, 80);
        return wk_stream_fail (s, "malformed SSE event: '%s'", shown);
    }
    int rc = s_chunk (s, root, data, len);
    cJSON_Delete (root);
    return rc;
}

//  ---- dialect

static int s_build (const wk_attempt_t *a, const char *req, size_t len, buf_t *out,
                    char *err, size_t errlen)
{
    const char *why = NULL;
    if (wk_openai_rewrite (req, len, a->model->cfg->upstream_model, a->stream, out, &why) == 0)
        return 0;
    snprintf (err, errlen, "%s", why);
    return -1;
}

static int s_full (const wk_attempt_t *a, const char *body, size_t len, buf_t *out,
                   const char **json, size_t *json_len, wk_usage_t *usage, char *err, size_t errlen)
{
    wk_errbody_reply_t r;
    if (wk_openai_parse (200, body, len, &r)) {
        snprintf (err, errlen, "%s", r.message);
        return -1;
    }
    *json = body;               // passed on byte for byte
    *json_len = len;
    usage->has = r.has_usage;
    usage->prompt_tokens = r.prompt_tokens;
    usage->completion_tokens = r.completion_tokens;
    return 0;
}

static const wk_dialect_t s_dialect = {
    .name = "openai",
    .path = "/chat/completions",
    .auth_fmt = "Authorization: Bearer %s",
    .framing = WK_FRAMING_SSE,
    .finish_ends = true,
    .build = s_build,
    .full = s_full,
    .event = wk_openai_stream_event,
};

WK_UPSTREAM_PROVIDER (wk_openai_provider, "openai", s_dialect);
