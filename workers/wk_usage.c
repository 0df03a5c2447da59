// Token usage of an attempt (see wk_usage.h): one place for every provider's estimates,
// used by the loop for each RESULT and ERROR it sends.
#include "wk_usage.h"

#include <cjson/cJSON.h>
#include <string.h>

#define S_GET(obj, key) cJSON_GetObjectItemCaseSensitive ((obj), (key))

uint32_t wk_usage_tokens (uint64_t bytes)
{
    uint64_t tokens = bytes / WK_USAGE_BYTES_PER_TOKEN + (bytes % WK_USAGE_BYTES_PER_TOKEN != 0);
    return tokens > UINT32_MAX ? UINT32_MAX : (uint32_t) tokens;
}

static uint64_t s_bytes (const char *text, size_t len)
{
    return len;
}

static uint64_t s_string_bytes (const cJSON *item)
{
    const char *s = cJSON_GetStringValue (item);
    return s ? strlen (s) : 0;
}

//  measure() of a message content: a string, or an array of {type, text} parts.
static uint64_t s_content (const cJSON *content, wk_usage_measure_fn *measure)
{
    const char *s = cJSON_GetStringValue (content);
    if (s)
        return measure (s, strlen (s));
    uint64_t sum = 0;
    const cJSON *part;
    cJSON_ArrayForEach (part, content) {
        const char *t = cJSON_GetStringValue (S_GET (part, "text"));
        sum += t ? measure (t, strlen (t)) : 0;
    }
    return sum;
}

int64_t wk_usage_prompt_sum (const char *req, size_t len, wk_usage_measure_fn *measure)
{
    cJSON *root = cJSON_ParseWithLength (req, len);
    if (!cJSON_IsObject (root)) {
        cJSON_Delete (root);
        return -1;
    }
    uint64_t sum = 0;
    const cJSON *msg;
    cJSON_ArrayForEach (msg, S_GET (root, "messages"))
        sum += s_content (S_GET (msg, "content"), measure);
    cJSON_Delete (root);
    return sum > INT64_MAX ? INT64_MAX : (int64_t) sum;
}

uint32_t wk_usage_prompt_estimate (const char *req, size_t len)
{
    int64_t bytes = wk_usage_prompt_sum (req, len, s_bytes);
    return wk_usage_tokens (bytes > 0 ? (uint64_t) bytes : 0);
}

static uint64_t s_message_bytes (const cJSON *message)
{
    uint64_t bytes = s_content (S_GET (message, "content"), s_bytes)
                   + s_string_bytes (S_GET (message, "refusal"));
    const cJSON *call;
    cJSON_ArrayForEach (call, S_GET (message, "tool_calls"))
        bytes += s_string_bytes (S_GET (S_GET (call, "function"), "arguments"));
    return bytes;
}

uint32_t wk_usage_completion_estimate (const char *json, size_t len)
{
    cJSON *root = cJSON_ParseWithLength (json, len);
    const cJSON *choices = cJSON_IsObject (root) ? S_GET (root, "choices") : NULL;
    uint64_t bytes = 0;
    const cJSON *choice;
    cJSON_ArrayForEach (choice, choices)
        bytes += s_message_bytes (S_GET (choice, "message"));
    cJSON_Delete (root);
    return wk_usage_tokens (bytes);
}

static uint32_t s_prompt (const wk_attempt_t *a, bool result, bool *estimated)
{
    const wk_usage_t *u = &a->used;
    if (!result && !a->reached)
        return 0;
    //  A reported 0 means "not reported" unless our estimate is 0 as well
    if (u->has && (u->prompt_tokens > 0 || a->prompt_est == 0))
        return u->prompt_tokens;
    *estimated = true;
    return a->prompt_est;
}

//  An ERROR: the upstream's count only if it covers the CHUNKs sent (a count from the
//  start of a stream, e.g. Anthropic's message_start, is stale by then).
static uint32_t s_completion_so_far (const wk_attempt_t *a, bool *estimated)
{
    uint32_t sent = a->chunk_seq;
    if (a->used.has && a->used.completion_tokens >= sent)
        return a->used.completion_tokens;
    if (sent > 0 || a->reached)
        *estimated = true;
    return sent;
}

static uint32_t s_completion_final (const wk_attempt_t *a, const char *json, size_t len,
                                    bool *estimated)
{
    if (a->used.has)
        return a->used.completion_tokens;
    *estimated = true;
    return a->stream ? a->chunk_seq : wk_usage_completion_estimate (json, len);
}

void wk_usage_fill (const wk_attempt_t *a, const char *json, size_t len, Aigw__Usage *out)
{
    aigw__usage__init (out);
    bool estimated = false;
    out->has_prompt_tokens = out->has_completion_tokens = true;
    out->prompt_tokens = s_prompt (a, json != NULL, &estimated);
    out->completion_tokens = json ? s_completion_final (a, json, len, &estimated)
                                  : s_completion_so_far (a, &estimated);
    out->has_estimated = estimated;
    out->estimated = estimated;
}
