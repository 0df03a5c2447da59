// Server-Sent Events formatting for streamed chat completions (pure logic, no I/O).
#include "sse.h"
#include "reply.h"

#include <cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sse_state_init (sse_state_t *st, uint64_t job_id, int64_t created_s, cfg_policy_t policy,
                     bool include_usage)
{
    memset (st, 0, sizeof *st);
    snprintf (st->id, sizeof st->id, "chatcmpl-aigw-%" PRIx64, job_id);
    st->created = created_s;
    st->policy = policy;
    st->include_usage = include_usage;
}

void sse_buf_reset (sse_buf_t *b)
{
    b->len = 0;
}

void sse_buf_free (sse_buf_t *b)
{
    free (b->mem);
    memset (b, 0, sizeof *b);
}

//  Make room for n more text bytes (plus headroom and tail). 0 / -1.
static int s_reserve (sse_buf_t *b, size_t n)
{
    if (n > SSE_TEXT_MAX || b->len > SSE_TEXT_MAX - n)
        return -1;
    if (b->mem && b->len + n <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + n)
        cap *= 2;
    char *mem = realloc (b->mem, SSE_HEADROOM + cap + SSE_TAIL);
    if (!mem)
        return -1;
    b->mem = mem;
    b->cap = cap;
    return 0;
}

sse_rc_t sse_append (sse_buf_t *b, const char *text, size_t len)
{
    if (s_reserve (b, len))
        return SSE_ERR_MEMORY;
    memcpy (b->mem + SSE_HEADROOM + b->len, text, len);
    b->len += len;
    return SSE_OK;
}

//  Append "<prefix><json of root>\n\n" and free root. A NULL root is out of memory.
static sse_rc_t s_event (sse_buf_t *b, const char *prefix, cJSON *root)
{
    char *text = root ? cJSON_PrintUnformatted (root) : NULL;
    cJSON_Delete (root);
    if (!text)
        return SSE_ERR_MEMORY;
    size_t plen = strlen (prefix), tlen = strlen (text);
    size_t start = b->len;
    sse_rc_t rc = SSE_ERR_MEMORY;
    if (sse_append (b, prefix, plen) == SSE_OK && sse_append (b, text, tlen) == SSE_OK
        && sse_append (b, "\n\n", 2) == SSE_OK)
        rc = SSE_OK;
    else
        b->len = start;
    free (text);
    return rc;
}

static void s_set_string (cJSON *obj, const char *key, const char *value)
{
    cJSON *v = cJSON_CreateString (value);
    if (!v)
        return;
    if (cJSON_GetObjectItemCaseSensitive (obj, key))
        cJSON_ReplaceItemInObjectCaseSensitive (obj, key, v);
    else
        cJSON_AddItemToObject (obj, key, v);
}

//  First chunk: every choice's delta says who speaks, as OpenAI's first chunk does.
static void s_add_roles (cJSON *root)
{
    cJSON *choices = cJSON_GetObjectItemCaseSensitive (root, "choices");
    if (!cJSON_IsArray (choices))
        return;
    cJSON *choice;
    cJSON_ArrayForEach (choice, choices) {
        if (!cJSON_IsObject (choice))
            continue;
        cJSON *delta = cJSON_GetObjectItemCaseSensitive (choice, "delta");
        if (!delta)
            delta = cJSON_AddObjectToObject (choice, "delta");
        if (cJSON_IsObject (delta) && !cJSON_GetObjectItemCaseSensitive (delta, "role"))
            cJSON_AddStringToObject (delta, "role", "assistant");
    }
}

//  Remember the first chunk's id and created for the closing chunks.
static void s_note_first (sse_state_t *st, const cJSON *root, const char *model)
{
    snprintf (st->winner, sizeof st->winner, "%s", model ? model : "");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive (root, "id");
    if (cJSON_IsString (id) && id->valuestring[0] && strlen (id->valuestring) < sizeof st->id)
        snprintf (st->id, sizeof st->id, "%s", id->valuestring);
    const cJSON *created = cJSON_GetObjectItemCaseSensitive (root, "created");
    if (cJSON_IsNumber (created) && created->valuedouble >= 0 && created->valuedouble < 1e15)
        st->created = (int64_t) created->valuedouble;
}

//  Parse exactly len bytes as one JSON object (only whitespace may follow). NULL if not.
static cJSON *s_parse_object (const char *json, size_t len)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts (json, len, &end, false);
    bool ok = cJSON_IsObject (root) && end;
    for (const char *p = end; ok && p < json + len; p++)
        ok = *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n';
    if (!ok) {
        cJSON_Delete (root);
        return NULL;
    }
    return root;
}

sse_rc_t sse_chunk (sse_state_t *st, const Aigw__Chunk *c, sse_buf_t *out)
{
    if (c->has_seq && c->seq != st->next_seq)
        return SSE_ERR_GAP;
    if (!c->has_delta_json || !c->delta_json.data || !c->delta_json.len)
        return SSE_ERR_CHUNK;
    cJSON *root = s_parse_object ((const char *) c->delta_json.data, c->delta_json.len);
    if (!root)
        return SSE_ERR_CHUNK;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive (root, "model");
    const char *winner = c->model && c->model[0] ? c->model
                       : cJSON_IsString (model) ? model->valuestring : NULL;
    bool first = st->sent == 0;
    if (first)
        s_note_first (st, root, winner);
    if (st->winner[0])
        s_set_string (root, "model", st->winner);
    //  The worker asks upstreams for usage; a client that did not sees no "usage": null
    if (!st->include_usage && cJSON_IsNull (cJSON_GetObjectItemCaseSensitive (root, "usage")))
        cJSON_DeleteItemFromObjectCaseSensitive (root, "usage");
    if (first) {
        s_add_roles (root);
        cJSON_DeleteItemFromObjectCaseSensitive (root, "aigw");
        cJSON *aigw = cJSON_AddObjectToObject (root, "aigw");
        if (aigw)
            cJSON_AddStringToObject (aigw, "winner", st->winner);
    }
    sse_rc_t rc = s_event (out, "data: ", root);
    if (rc == SSE_OK) {
        st->sent++;
        st->next_seq = c->has_seq ? c->seq + 1 : st->next_seq + 1;
    }
    return rc;
}

//  {"id", "object", "created", "model", "choices": []} for the closing chunks.
static cJSON *s_closing_chunk (const sse_state_t *st, const char *winner)
{
    cJSON *root = cJSON_CreateObject ();
    if (!root)
        return NULL;
    cJSON_AddStringToObject (root, "id", st->id);
    cJSON_AddStringToObject (root, "object", "chat.completion.chunk");
    cJSON_AddNumberToObject (root, "created", (double) st->created);
    cJSON_AddStringToObject (root, "model", winner ? winner : "");
    if (!cJSON_AddArrayToObject (root, "choices")) {
        cJSON_Delete (root);
        return NULL;
    }
    return root;
}

//  The usage for the usage chunk: the assembled response's "usage" object (it may
//  carry details), else Result.usage, else null.
static cJSON *s_usage (const Aigw__Result *res)
{
    if (res->has_response_json && res->response_json.data) {
        cJSON *resp = cJSON_ParseWithLength ((const char *) res->response_json.data,
                                             res->response_json.len);
        cJSON *usage = cJSON_DetachItemFromObjectCaseSensitive (resp, "usage");
        cJSON_Delete (resp);
        if (cJSON_IsObject (usage))
            return usage;
        cJSON_Delete (usage);
    }
    const Aigw__Usage *u = res->usage;
    if (!u || (!u->has_prompt_tokens && !u->has_completion_tokens))
        return cJSON_CreateNull ();
    cJSON *o = cJSON_CreateObject ();
    if (!o)
        return NULL;
    uint32_t p = u->has_prompt_tokens ? u->prompt_tokens : 0;
    uint32_t k = u->has_completion_tokens ? u->completion_tokens : 0;
    cJSON_AddNumberToObject (o, "prompt_tokens", p);
    cJSON_AddNumberToObject (o, "completion_tokens", k);
    cJSON_AddNumberToObject (o, "total_tokens", (double) p + k);
    return o;
}

sse_rc_t sse_done (sse_state_t *st, const Aigw__Result *res, sse_buf_t *out)
{
    size_t start = out->len;
    const char *winner = res->model && res->model[0] ? res->model : st->winner;
    cJSON *summary = s_closing_chunk (st, winner);
    cJSON *aigw = summary ? edge_reply_aigw_json (winner, st->policy, res->has_latency_us,
                                                  res->latency_us, res->attempts,
                                                  res->n_attempts, st->cfg, res->usage)
                          : NULL;
    edge_reply_aigw_budget (aigw, res->has_hedge_suppressed && res->hedge_suppressed,
                            res->has_retry_suppressed && res->retry_suppressed);
    if (summary && !aigw) {
        cJSON_Delete (summary);
        summary = NULL;
    }
    if (aigw)
        cJSON_AddItemToObject (summary, "aigw", aigw);
    sse_rc_t rc = s_event (out, "data: ", summary);
    if (rc == SSE_OK && st->include_usage) {
        cJSON *chunk = s_closing_chunk (st, winner);
        cJSON *usage = chunk ? s_usage (res) : NULL;
        if (usage)
            cJSON_AddItemToObject (chunk, "usage", usage);
        else {
            cJSON_Delete (chunk);
            chunk = NULL;
        }
        rc = s_event (out, "data: ", chunk);
    }
    if (rc == SSE_OK)
        rc = sse_append (out, "data: [DONE]\n\n", 14);
    if (rc != SSE_OK)
        out->len = start;
    return rc;
}

sse_rc_t sse_error (sse_state_t *st, const Aigw__Error *e, sse_buf_t *out)
{
    int status = 0;
    cJSON *root = edge_reply_error_json (e, st->policy, st->winner[0] ? st->winner : NULL,
                                         &status, st->cfg);
    return s_event (out, "event: error\ndata: ", root);
}

sse_rc_t sse_error_simple (sse_state_t *st, int status, const char *code, const char *message,
                           sse_buf_t *out)
{
    cJSON *root = edge_reply_simple_json (status, code, message);
    if (root && st->winner[0]) {
        cJSON *aigw = cJSON_AddObjectToObject (root, "aigw");
        if (aigw) {
            cJSON_AddStringToObject (aigw, "winner", st->winner);
            cJSON_AddStringToObject (aigw, "policy", cfg_policy_name (st->policy));
        }
    }
    return s_event (out, "event: error\ndata: ", root);
}
