// The anthropic provider: OpenAI <-> Anthropic Messages translation (requests, replies,
// stream events) and its dialect for the shared HTTP adapter.
#include "wk_anthropic.h"
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

//  Parsing the request in one go keeps the translation in one place; each helper
//  returns 0 or -1 with the reason already in t->err.
typedef struct {
    char *err;
    size_t errlen;
    buf_t system;            // joined system text
} s_tr_t;

static int s_bad (s_tr_t *t, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
static int s_bad (s_tr_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (t->err, t->errlen, fmt, ap);
    va_end (ap);
    return -1;
}

//  ---- request: content

static int s_text_into (s_tr_t *t, buf_t *buf, const cJSON *content)
{
    if (cJSON_IsString (content)) {
        if ((buf->len && buf_puts (buf, "\n\n")) || buf_puts (buf, content->valuestring))
            return s_bad (t, "system text too large");
        return 0;
    }
    const cJSON *part;
    cJSON_ArrayForEach (part, (cJSON_IsArray (content) ? content : NULL)) {
        const char *text = S_STR (part, "text");
        if (!text)
            return s_bad (t, "system message parts must be text");
        if ((buf->len && buf_puts (buf, "\n\n")) || buf_puts (buf, text))
            return s_bad (t, "system text too large");
    }
    return 0;
}

//  "data:image/png;base64,XXXX" or an http(s) URL -> an image block.
static cJSON *s_image (s_tr_t *t, const cJSON *part)
{
    const char *url = S_STR (S_GET (part, "image_url"), "url");
    if (!url)
        url = S_STR (part, "image_url");
    if (!url) {
        s_bad (t, "image_url part has no url");
        return NULL;
    }
    cJSON *block = cJSON_CreateObject ();
    cJSON *src = cJSON_AddObjectToObject (block, "source");
    cJSON_AddStringToObject (block, "type", "image");
    const char *comma = strchr (url, ',');
    if (strncmp (url, "data:", 5) == 0 && comma && strstr (url, ";base64,") == comma - 7) {
        char media [128];
        snprintf (media, sizeof media, "%.*s", (int) (comma - 7 - (url + 5)), url + 5);
        cJSON_AddStringToObject (src, "type", "base64");
        cJSON_AddStringToObject (src, "media_type", media);
        cJSON_AddStringToObject (src, "data", comma + 1);
    }
    else {
        cJSON_AddStringToObject (src, "type", "url");
        cJSON_AddStringToObject (src, "url", url);
    }
    return block;
}

static cJSON *s_text_block (const char *text)
{
    cJSON *block = cJSON_CreateObject ();
    cJSON_AddStringToObject (block, "type", "text");
    cJSON_AddStringToObject (block, "text", text);
    return block;
}

//  Content parts -> an array of Anthropic blocks (appended to blocks).
static int s_parts (s_tr_t *t, const cJSON *content, cJSON *blocks)
{
    const cJSON *part;
    cJSON_ArrayForEach (part, content) {
        const char *type = S_STR (part, "type");
        cJSON *block = NULL;
        if (type && strcmp (type, "text") == 0 && S_STR (part, "text"))
            block = s_text_block (S_STR (part, "text"));
        else
        if (type && strcmp (type, "image_url") == 0)
            block = s_image (t, part);
        else
            return s_bad (t, "content part type '%.40s' is not supported by anthropic",
                          type ? type : "?");
        if (!block)
            return -1;
        cJSON_AddItemToArray (blocks, block);
    }
    return 0;
}

//  OpenAI content (string, parts, or null) -> Anthropic content; NULL on error.
static cJSON *s_content (s_tr_t *t, const cJSON *content, bool array)
{
    if (cJSON_IsString (content) && !array)
        return cJSON_CreateString (content->valuestring);
    cJSON *blocks = cJSON_CreateArray ();
    if (cJSON_IsString (content) && *content->valuestring)
        cJSON_AddItemToArray (blocks, s_text_block (content->valuestring));
    else
    if (cJSON_IsArray (content) && s_parts (t, content, blocks)) {
        cJSON_Delete (blocks);
        return NULL;
    }
    else
    if (content && !cJSON_IsNull (content) && !cJSON_IsString (content) && !cJSON_IsArray (content)) {
        cJSON_Delete (blocks);
        s_bad (t, "message content must be a string or an array of parts");
        return NULL;
    }
    return blocks;
}

//  ---- request: messages

static int s_tool_use (s_tr_t *t, const cJSON *calls, cJSON *blocks)
{
    const cJSON *call;
    cJSON_ArrayForEach (call, calls) {
        const cJSON *fn = S_GET (call, "function");
        const char *args = S_STR (fn, "arguments");
        cJSON *input = args && *args ? cJSON_Parse (args) : cJSON_CreateObject ();
        if (!cJSON_IsObject (input)) {
            cJSON_Delete (input);
            return s_bad (t, "tool call arguments are not a JSON object");
        }
        cJSON *block = cJSON_CreateObject ();
        cJSON_AddStringToObject (block, "type", "tool_use");
        cJSON_AddStringToObject (block, "id", S_STR (call, "id") ? S_STR (call, "id") : "");
        cJSON_AddStringToObject (block, "name", S_STR (fn, "name") ? S_STR (fn, "name") : "");
        cJSON_AddItemToObject (block, "input", input);
        cJSON_AddItemToArray (blocks, block);
    }
    return 0;
}

static int s_add_message (cJSON *msgs, const char *role, cJSON *content)
{
    if (!content)
        return -1;
    cJSON *m = cJSON_CreateObject ();
    cJSON_AddStringToObject (m, "role", role);
    cJSON_AddItemToObject (m, "content", content);
    cJSON_AddItemToArray (msgs, m);
    return 0;
}

//  A tool message becomes a tool_result block; consecutive ones share a user message.
static int s_tool_result (s_tr_t *t, const cJSON *m, cJSON *msgs)
{
    const char *id = S_STR (m, "tool_call_id");
    if (!id)
        return s_bad (t, "tool message has no tool_call_id");
    cJSON *block = cJSON_CreateObject ();
    cJSON_AddStringToObject (block, "type", "tool_result");
    cJSON_AddStringToObject (block, "tool_use_id", id);
    cJSON *content = s_content (t, S_GET (m, "content"), false);
    if (!content) {
        cJSON_Delete (block);
        return -1;
    }
    cJSON_AddItemToObject (block, "content", content);
    cJSON *last = cJSON_GetArrayItem (msgs, cJSON_GetArraySize (msgs) - 1);
    cJSON *last_content = S_GET (last, "content");
    const char *last_role = S_STR (last, "role");
    cJSON *last_block = cJSON_GetArrayItem (last_content, cJSON_GetArraySize (last_content) - 1);
    if (last_role && strcmp (last_role, "user") == 0 && cJSON_IsArray (last_content)
    &&  S_STR (last_block, "type") && strcmp (S_STR (last_block, "type"), "tool_result") == 0) {
        cJSON_AddItemToArray (last_content, block);
        return 0;
    }
    cJSON *blocks = cJSON_CreateArray ();
    cJSON_AddItemToArray (blocks, block);
    return s_add_message (msgs, "user", blocks);
}

static int s_message (s_tr_t *t, const cJSON *m, cJSON *msgs)
{
    const char *role = S_STR (m, "role");
    const cJSON *content = S_GET (m, "content");
    if (!role)
        return s_bad (t, "message has no role");
    if (strcmp (role, "system") == 0 || strcmp (role, "developer") == 0)
        return s_text_into (t, &t->system, content);
    if (strcmp (role, "tool") == 0)
        return s_tool_result (t, m, msgs);
    if (strcmp (role, "user") == 0) {
        if (!content || cJSON_IsNull (content))
            return s_bad (t, "user message has no content");
        return s_add_message (msgs, "user", s_content (t, content, false));
    }
    if (strcmp (role, "assistant") != 0)
        return s_bad (t, "message role '%.40s' is not supported by anthropic", role);
    const cJSON *calls = S_GET (m, "tool_calls");
    bool tools = cJSON_GetArraySize (calls) > 0;
    cJSON *c = s_content (t, content, tools || !cJSON_IsString (content));
    if (c && tools && s_tool_use (t, calls, c)) {
        cJSON_Delete (c);
        return -1;
    }
    return s_add_message (msgs, "assistant", c);
}

//  ---- request: parameters

static uint32_t s_max_tokens (const cJSON *root, uint32_t dflt)
{
    const char *names [] = { "max_completion_tokens", "max_tokens" };
    for (int i = 0; i < 2; i++) {
        const cJSON *n = S_GET (root, names [i]);
        if (cJSON_IsNumber (n) && n->valuedouble >= 1)
            return n->valuedouble > UINT32_MAX ? UINT32_MAX : (uint32_t) n->valuedouble;
    }
    return dflt ? dflt : 1024;
}

static void s_copy_number (const cJSON *from, cJSON *to, const char *name)
{
    const cJSON *n = S_GET (from, name);
    if (cJSON_IsNumber (n))
        cJSON_AddItemToObject (to, name, cJSON_Duplicate (n, false));
}

static int s_stop (s_tr_t *t, const cJSON *stop, cJSON *out)
{
    if (!stop || cJSON_IsNull (stop))
        return 0;
    cJSON *seqs = cJSON_AddArrayToObject (out, "stop_sequences");
    if (cJSON_IsString (stop)) {
        cJSON_AddItemToArray (seqs, cJSON_CreateString (stop->valuestring));
        return 0;
    }
    const cJSON *s;
    cJSON_ArrayForEach (s, (cJSON_IsArray (stop) ? stop : NULL)) {
        if (!cJSON_IsString (s))
            return s_bad (t, "stop must be a string or an array of strings");
        cJSON_AddItemToArray (seqs, cJSON_CreateString (s->valuestring));
    }
    return cJSON_IsArray (stop) ? 0 : s_bad (t, "stop must be a string or an array of strings");
}

static int s_tools (s_tr_t *t, const cJSON *tools, cJSON *out)
{
    if (!cJSON_IsArray (tools))
        return 0;
    cJSON *list = cJSON_AddArrayToObject (out, "tools");
    const cJSON *tool;
    cJSON_ArrayForEach (tool, tools) {
        const cJSON *fn = S_GET (tool, "function");
        const char *type = S_STR (tool, "type");
        if (!type || strcmp (type, "function") != 0 || !S_STR (fn, "name"))
            return s_bad (t, "only function tools with a name are supported by anthropic");
        cJSON *a = cJSON_CreateObject ();
        cJSON_AddStringToObject (a, "name", S_STR (fn, "name"));
        if (S_STR (fn, "description"))
            cJSON_AddStringToObject (a, "description", S_STR (fn, "description"));
        const cJSON *params = S_GET (fn, "parameters");
        cJSON *schema = cJSON_IsObject (params) ? cJSON_Duplicate (params, true)
                                                : cJSON_Parse ("{\"type\":\"object\"}");
        cJSON_AddItemToObject (a, "input_schema", schema);
        cJSON_AddItemToArray (list, a);
    }
    return 0;
}

static int s_tool_choice (s_tr_t *t, const cJSON *root, cJSON *out)
{
    const cJSON *tc = S_GET (root, "tool_choice");
    const cJSON *parallel = S_GET (root, "parallel_tool_calls");
    if (!tc && !cJSON_IsFalse (parallel))
        return 0;
    if (!S_GET (out, "tools"))
        return 0;
    cJSON *choice = cJSON_AddObjectToObject (out, "tool_choice");
    const char *mode = cJSON_GetStringValue (tc);
    const char *name = S_STR (S_GET (tc, "function"), "name");
    if (!tc || (mode && strcmp (mode, "auto") == 0))
        cJSON_AddStringToObject (choice, "type", "auto");
    else
    if (mode && strcmp (mode, "none") == 0)
        cJSON_AddStringToObject (choice, "type", "none");
    else
    if (mode && strcmp (mode, "required") == 0)
        cJSON_AddStringToObject (choice, "type", "any");
    else
    if (name) {
        cJSON_AddStringToObject (choice, "type", "tool");
        cJSON_AddStringToObject (choice, "name", name);
    }
    else
        return s_bad (t, "tool_choice is not auto, none, required or a function");
    if (cJSON_IsFalse (parallel))
        cJSON_AddBoolToObject (choice, "disable_parallel_tool_use", true);
    return 0;
}

static int s_params (s_tr_t *t, const cJSON *root, cJSON *out)
{
    s_copy_number (root, out, "temperature");
    s_copy_number (root, out, "top_p");
    s_copy_number (root, out, "top_k");
    const char *user = S_STR (root, "user");
    if (user)
        cJSON_AddStringToObject (cJSON_AddObjectToObject (out, "metadata"), "user_id", user);
    if (s_stop (t, S_GET (root, "stop"), out) || s_tools (t, S_GET (root, "tools"), out))
        return -1;
    return s_tool_choice (t, root, out);
}

static int s_translate (s_tr_t *t, const cJSON *root, cJSON *out)
{
    const cJSON *messages = S_GET (root, "messages");
    if (!cJSON_IsArray (messages))
        return s_bad (t, "request has no messages array");
    cJSON *msgs = cJSON_CreateArray ();
    const cJSON *m;
    cJSON_ArrayForEach (m, messages) {
        if (s_message (t, m, msgs)) {
            cJSON_Delete (msgs);
            return -1;
        }
    }
    if (t->system.len)
        cJSON_AddStringToObject (out, "system", t->system.data);
    cJSON_AddItemToObject (out, "messages", msgs);
    return s_params (t, root, out);
}

int wk_anthropic_request (const char *req, size_t len, const char *upstream_model,
                          uint32_t default_max_tokens, bool stream, buf_t *out,
                          char *err, size_t errlen)
{
    s_tr_t t = { .err = err, .errlen = errlen };
    buf_init (&t.system, len + 1);
    cJSON *root = cJSON_ParseWithLength (req, len);
    cJSON *tr = cJSON_CreateObject ();
    int rc = -1;
    if (!cJSON_IsObject (root)) {
        s_bad (&t, "request payload is not a well-formed JSON object");
        goto cleanup;
    }
    cJSON_AddStringToObject (tr, "model", upstream_model);
    cJSON_AddNumberToObject (tr, "max_tokens", s_max_tokens (root, default_max_tokens));
    if (stream)
        cJSON_AddBoolToObject (tr, "stream", true);
    if (s_translate (&t, root, tr))
        goto cleanup;
    char *text = cJSON_PrintUnformatted (tr);
    rc = text && buf_puts (out, text) == 0 ? 0 : s_bad (&t, "translated request too large");
    free (text);
cleanup:
    cJSON_Delete (root);
    cJSON_Delete (tr);
    buf_free (&t.system);
    return rc;
}

//  ---- replies

const char *wk_anthropic_finish (const char *stop_reason)
{
    if (!stop_reason)
        return "stop";
    if (strcmp (stop_reason, "max_tokens") == 0)
        return "length";
    if (strcmp (stop_reason, "tool_use") == 0)
        return "tool_calls";
    if (strcmp (stop_reason, "refusal") == 0)
        return "content_filter";
    return "stop";              // end_turn, stop_sequence, pause_turn
}

static uint32_t s_tokens (const cJSON *usage, const char *name)
{
    const cJSON *n = S_GET (usage, name);
    return cJSON_IsNumber (n) && n->valuedouble >= 0 && n->valuedouble < UINT32_MAX
         ? (uint32_t) n->valuedouble : 0;
}

//  Input tokens, counting cached prompt tokens in.
static uint32_t s_input_tokens (const cJSON *usage)
{
    uint64_t n = (uint64_t) s_tokens (usage, "input_tokens")
               + s_tokens (usage, "cache_creation_input_tokens")
               + s_tokens (usage, "cache_read_input_tokens");
    return n > UINT32_MAX ? UINT32_MAX : (uint32_t) n;
}

static int s_block (wk_compl_t *c, const cJSON *block, uint32_t *ntools)
{
    const char *type = S_STR (block, "type");
    if (type && strcmp (type, "text") == 0 && S_STR (block, "text"))
        return wk_compl_text (c, 0, S_STR (block, "text"), strlen (S_STR (block, "text")));
    if (!type || strcmp (type, "tool_use") != 0)
        return 0;               // thinking and other blocks are not part of the reply
    char *input = cJSON_PrintUnformatted (S_GET (block, "input"));
    int rc = wk_compl_tool (c, 0, (*ntools)++, S_STR (block, "id"), S_STR (block, "name"),
                            input ? input : "{}", input ? strlen (input) : 2);
    free (input);
    return rc;
}

static int s_response (wk_compl_t *c, const cJSON *root, char *err, size_t errlen)
{
    const cJSON *content = S_GET (root, "content");
    if (!cJSON_IsArray (content)) {
        snprintf (err, errlen, "upstream returned malformed JSON (HTTP 200)");
        return -1;
    }
    wk_compl_meta (c, S_STR (root, "id"), S_STR (root, "model"), NULL);
    wk_compl_text (c, 0, "", 0);
    uint32_t ntools = 0;
    const cJSON *block;
    cJSON_ArrayForEach (block, content) {
        if (s_block (c, block, &ntools)) {
            snprintf (err, errlen, "upstream reply larger than %zu bytes", c->max);
            return -1;
        }
    }
    wk_compl_finish (c, 0, wk_anthropic_finish (S_STR (root, "stop_reason")));
    const cJSON *usage = S_GET (root, "usage");
    c->usage.has = cJSON_IsObject (usage);
    c->usage.prompt_tokens = s_input_tokens (usage);
    c->usage.completion_tokens = s_tokens (usage, "output_tokens");
    return 0;
}

int wk_anthropic_response (const char *body, size_t len, int64_t created, buf_t *out,
                           wk_usage_t *usage, char *err, size_t errlen)
{
    return wk_upstream_translate (body, len, NULL, created, s_response, out, usage, err, errlen);
}

//  ---- stream events

static int s_block_index (wk_stream_t *s, const cJSON *root)
{
    const cJSON *n = S_GET (root, "index");
    if (!cJSON_IsNumber (n) || n->valuedouble < 0 || n->valuedouble >= WK_STREAM_BLOCKS)
        return -1;
    return (int) n->valuedouble;
}

static int s_emit_text (wk_stream_t *s, const char *text)
{
    if (!text || !*text)
        return 0;
    size_t len = strlen (text);
    if (wk_compl_text (&s->compl, 0, text, len))
        return wk_stream_fail (s, "streamed reply larger than %zu bytes", s->compl.max);
    wk_delta_t d = { .content = text, .content_len = len };
    return wk_stream_emit_delta (s, &d);
}

static int s_emit_tool (wk_stream_t *s, int tool, const char *id, const char *name,
                        const char *args)
{
    size_t len = args ? strlen (args) : 0;
    if (wk_compl_tool (&s->compl, 0, (uint32_t) tool, id, name, args, len))
        return wk_stream_fail (s, "too many tool calls or reply larger than %zu bytes",
                               s->compl.max);
    wk_delta_t d = { .tool = true, .tool_index = (uint32_t) tool, .tool_id = id,
                     .tool_name = name, .tool_args = args, .tool_args_len = len };
    return wk_stream_emit_delta (s, &d);
}

static int s_block_start (wk_stream_t *s, const cJSON *root)
{
    int index = s_block_index (s, root);
    const cJSON *block = S_GET (root, "content_block");
    const char *type = S_STR (block, "type");
    if (index < 0 || !type)
        return wk_stream_fail (s, "malformed content_block_start event");
    if (strcmp (type, "text") == 0)
        return s_emit_text (s, S_STR (block, "text"));
    if (strcmp (type, "tool_use") != 0)
        return 0;
    if (s->ntools >= WK_COMPL_TOOLS)
        return wk_stream_fail (s, "more than %d tool calls", WK_COMPL_TOOLS);
    int tool = (int) s->ntools++;
    s->block_tool [index] = (int16_t) tool;
    const char *id = S_STR (block, "id");
    const char *name = S_STR (block, "name");
    return s_emit_tool (s, tool, id ? id : "", name ? name : "", "");
}

static int s_block_delta (wk_stream_t *s, const cJSON *root)
{
    int index = s_block_index (s, root);
    const cJSON *delta = S_GET (root, "delta");
    const char *type = S_STR (delta, "type");
    if (index < 0 || !type)
        return wk_stream_fail (s, "malformed content_block_delta event");
    if (strcmp (type, "text_delta") == 0)
        return s_emit_text (s, S_STR (delta, "text"));
    const char *partial = S_STR (delta, "partial_json");
    if (strcmp (type, "input_json_delta") == 0 && s->block_tool [index] >= 0 && partial && *partial)
        return s_emit_tool (s, s->block_tool [index], NULL, NULL, partial);
    return 0;                   // thinking, signature, citations
}

static int s_message_start (wk_stream_t *s, const cJSON *root)
{
    const cJSON *msg = S_GET (root, "message");
    wk_compl_meta (&s->compl, S_STR (msg, "id"), S_STR (msg, "model"), NULL);
    const cJSON *usage = S_GET (msg, "usage");
    if (cJSON_IsObject (usage)) {
        s->compl.usage.has = true;
        s->compl.usage.prompt_tokens = s_input_tokens (usage);
        s->compl.usage.completion_tokens = s_tokens (usage, "output_tokens");
    }
    return 0;
}

static int s_message_delta (wk_stream_t *s, const cJSON *root)
{
    const cJSON *usage = S_GET (root, "usage");
    if (cJSON_IsObject (usage)) {
        s->compl.usage.has = true;
        if (S_GET (usage, "output_tokens"))
            s->compl.usage.completion_tokens = s_tokens (usage, "output_tokens");
        if (S_GET (usage, "input_tokens"))
            s->compl.usage.prompt_tokens = s_input_tokens (usage);
    }
    const char *stop = S_STR (S_GET (root, "delta"), "stop_reason");
    if (!stop)
        return 0;
    const char *finish = wk_anthropic_finish (stop);
    wk_compl_finish (&s->compl, 0, finish);
    wk_delta_t d = { .finish = finish };
    return wk_stream_emit_delta (s, &d);
}

static int s_stream_error (wk_stream_t *s, const cJSON *root)
{
    const cJSON *e = S_GET (root, "error");
    const char *type = S_STR (e, "type");
    const char *msg = S_STR (e, "message");
    char shown [WK_ERRBODY_DETAIL_MAX + 8];
    wk_errbody_snippet (shown, sizeof shown, msg ? msg : "(no message)",
                       msg ? strlen (msg) : 12, WK_ERRBODY_DETAIL_MAX);
    return wk_stream_fail (s, "upstream stream error: %s%s%s", type ? type : "",
                           type ? ": " : "", shown);
}

static int s_event (wk_stream_t *s, const char *type, const cJSON *root)
{
    if (strcmp (type, "content_block_delta") == 0)
        return s_block_delta (s, root);
    if (strcmp (type, "content_block_start") == 0)
        return s_block_start (s, root);
    if (strcmp (type, "message_start") == 0)
        return s_message_start (s, root);
    if (strcmp (type, "message_delta") == 0)
        return s_message_delta (s, root);
    if (strcmp (type, "message_stop") == 0)
        return WK_STREAM_END;
    if (strcmp (type, "error") == 0)
        return s_stream_error (s, root);
    return 0;                   // ping, content_block_stop, new event types
}

int wk_anthropic_stream_event (wk_stream_t *s, const char *event, const char *data, size_t len)
{
    cJSON *root = cJSON_ParseWithLength (data, len);
    if (!cJSON_IsObject (root)) {
        cJSON_Delete (root);
        char shown [WK_ERRBODY_DETAIL_MAX + 8];
        wk_errbody_snippet (shown, sizeof shown, data, len, 80);
        return wk_stream_fail (s, "malformed SSE event: '%s'", shown);
    }
    const char *type = S_STR (root, "type");
    int rc = s_event (s, type ? type : event, root);
    cJSON_Delete (root);
    return rc;
}

//  ---- dialect

static int s_build (const wk_attempt_t *a, const char *req, size_t len, buf_t *out,
                    char *err, size_t errlen)
{
    const cfg_model_t *c = a->model->cfg;
    return wk_anthropic_request (req, len, c->upstream_model, c->max_tokens, a->stream, out,
                                 err, errlen);
}

static int s_full (const wk_attempt_t *a, const char *body, size_t len, buf_t *out,
                   const char **json, size_t *json_len, wk_usage_t *usage, char *err, size_t errlen)
{
    if (wk_anthropic_response (body, len, a->created, out, usage, err, errlen))
        return -1;
    *json = out->data;
    *json_len = out->len;
    return 0;
}

static const char *const s_headers [] = { "anthropic-version: " WK_ANTHROPIC_VERSION, NULL };

static const wk_dialect_t s_dialect = {
    .name = "anthropic",
    .path = "/messages",
    .auth_fmt = "x-api-key: %s",
    .extra_headers = s_headers,
    .framing = WK_FRAMING_SSE,
    .build = s_build,
    .full = s_full,
    .event = wk_anthropic_stream_event,
};

WK_UPSTREAM_PROVIDER (wk_anthropic_provider, "anthropic", s_dialect);
