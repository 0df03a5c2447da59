// Unit tests for the edge's SSE formatting (edge/sse.c): chunk rewriting, closing and
// error events, HTTP chunk framing, malformed chunks and limits.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <cJSON.h>

#include "sse.h"
#include "chunked.h"

static const char *s_chunk1 =
    "{\"id\":\"chatcmpl-up-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
    "\"model\":\"gpt-4o-2024\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},"
    "\"finish_reason\":null}]}";
static const char *s_chunk2 =
    "{\"id\":\"chatcmpl-up-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
    "\"model\":\"gpt-4o-2024\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},"
    "\"finish_reason\":null}],\"usage\":null}";

static void s_mk_chunk (Aigw__Chunk *c, uint32_t seq, const char *model, const char *json)
{
    aigw__chunk__init (c);
    c->job_id = 9;
    c->has_seq = true;
    c->seq = seq;
    c->model = (char *) model;
    if (json) {
        c->has_delta_json = true;
        c->delta_json.data = (uint8_t *) json;
        c->delta_json.len = strlen (json);
    }
}

//  The buffer's text as a C string (caller frees).
static char *s_text (sse_buf_t *b)
{
    char *t = malloc (b->len + 1);
    memcpy (t, b->mem + SSE_HEADROOM, b->len);
    t[b->len] = 0;
    return t;
}

//  Parse the JSON of a single "data: <json>\n\n" event.
static cJSON *s_data_json (const char *event)
{
    assert_memory_equal (event, "data: ", 6);
    size_t len = strlen (event);
    assert_true (len > 8);
    assert_memory_equal (event + len - 2, "\n\n", 2);
    cJSON *j = cJSON_ParseWithLength (event + 6, len - 8);
    assert_non_null (j);
    return j;
}

static const char *s_str (const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (o, key);
    assert_true (cJSON_IsString (v));
    return v->valuestring;
}

static cJSON *s_delta (cJSON *root)
{
    cJSON *choices = cJSON_GetObjectItemCaseSensitive (root, "choices");
    assert_true (cJSON_IsArray (choices));
    return cJSON_GetObjectItemCaseSensitive (cJSON_GetArrayItem (choices, 0), "delta");
}

static void test_first_and_later_chunks (void **state)
{
    sse_state_t st;
    sse_buf_t buf = { 0 };
    sse_state_init (&st, 0xabc, 42, CFG_POLICY_RACE, false);
    Aigw__Chunk c;
    s_mk_chunk (&c, 0, "fast", s_chunk1);
    assert_int_equal (sse_chunk (&st, &c, &buf), SSE_OK);
    char *t = s_text (&buf);
    cJSON *j = s_data_json (t);
    //  model is the winning target; the first chunk names the winner and the role
    assert_string_equal (s_str (j, "model"), "fast");
    assert_string_equal (s_str (cJSON_GetObjectItemCaseSensitive (j, "aigw"), "winner"), "fast");
    cJSON *delta = s_delta (j);
    assert_string_equal (s_str (delta, "role"), "assistant");
    assert_string_equal (s_str (delta, "content"), "Hel");
    assert_string_equal (s_str (j, "id"), "chatcmpl-up-1");
    assert_string_equal (st.winner, "fast");
    assert_string_equal (st.id, "chatcmpl-up-1");
    assert_int_equal (st.created, 1700000000);
    cJSON_Delete (j);
    free (t);

    sse_buf_reset (&buf);
    s_mk_chunk (&c, 1, "fast", s_chunk2);
    assert_int_equal (sse_chunk (&st, &c, &buf), SSE_OK);
    t = s_text (&buf);
    j = s_data_json (t);
    assert_string_equal (s_str (j, "model"), "fast");
    assert_null (cJSON_GetObjectItemCaseSensitive (j, "aigw"));
    assert_null (cJSON_GetObjectItemCaseSensitive (s_delta (j), "role"));
    assert_null (cJSON_GetObjectItemCaseSensitive (j, "usage"));
    assert_string_equal (s_str (s_delta (j), "content"), "lo");
    assert_int_equal (st.sent, 2);
    assert_int_equal (st.next_seq, 2);
    cJSON_Delete (j);
    free (t);
    //  A client that asked for usage sees "usage": null as OpenAI sends it
    st.include_usage = true;
    sse_buf_reset (&buf);
    s_mk_chunk (&c, 2, "fast", s_chunk2);
    assert_int_equal (sse_chunk (&st, &c, &buf), SSE_OK);
    t = s_text (&buf);
    assert_non_null (strstr (t, "\"usage\":null"));
    free (t);
    sse_buf_free (&buf);
    sse_buf_free (&buf);        // safe twice
}

static void test_role_kept_and_tools (void **state)
{
    sse_state_t st;
    sse_buf_t buf = { 0 };
    sse_state_init (&st, 1, 42, CFG_POLICY_RACE, false);
    //  A role already there is kept; a choice without delta gets one; no model in the
    //  Chunk: the JSON's own model names the winner
    const char *json = "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"tool\",\"tool_calls\":"
                       "[{\"index\":0,\"id\":\"c1\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}},"
                       "{\"index\":1}],\"model\":\"m-up\",\"aigw\":{\"spoof\":1}}";
    Aigw__Chunk c;
    s_mk_chunk (&c, 0, NULL, json);
    assert_int_equal (sse_chunk (&st, &c, &buf), SSE_OK);
    char *t = s_text (&buf);
    cJSON *j = s_data_json (t);
    assert_string_equal (s_str (j, "model"), "m-up");
    cJSON *choices = cJSON_GetObjectItemCaseSensitive (j, "choices");
    cJSON *d0 = cJSON_GetObjectItemCaseSensitive (cJSON_GetArrayItem (choices, 0), "delta");
    cJSON *d1 = cJSON_GetObjectItemCaseSensitive (cJSON_GetArrayItem (choices, 1), "delta");
    assert_string_equal (s_str (d0, "role"), "tool");
    assert_non_null (cJSON_GetObjectItemCaseSensitive (d0, "tool_calls"));
    assert_string_equal (s_str (d1, "role"), "assistant");
    //  An upstream "aigw" is replaced by ours
    cJSON *aigw = cJSON_GetObjectItemCaseSensitive (j, "aigw");
    assert_null (cJSON_GetObjectItemCaseSensitive (aigw, "spoof"));
    assert_string_equal (s_str (aigw, "winner"), "m-up");
    //  The fallback id stays (the chunk had none)
    assert_string_equal (st.id, "chatcmpl-aigw-1");
    cJSON_Delete (j);
    free (t);
    sse_buf_free (&buf);
}

static void test_bad_chunks (void **state)
{
    sse_state_t st;
    sse_buf_t buf = { 0 };
    sse_state_init (&st, 1, 42, CFG_POLICY_RACE, false);
    Aigw__Chunk c;
    const char *bad[] = { "not json", "[1,2]", "\"text\"", "{\"a\":", "{}x" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_mk_chunk (&c, 0, "m", bad[i]);
        assert_int_equal (sse_chunk (&st, &c, &buf), SSE_ERR_CHUNK);
        assert_int_equal (buf.len, 0);
    }
    s_mk_chunk (&c, 0, "m", NULL);
    assert_int_equal (sse_chunk (&st, &c, &buf), SSE_ERR_CHUNK);
    //  Not NUL-terminated: only len bytes are read
    char raw[64];
    memset (raw, '{', sizeof raw);
    s_mk_chunk (&c, 0, "m", NULL);
    c.has_delta_json = true;
    c.delta_json.data = (uint8_t *) raw;
    c.delta_json.len = sizeof raw;
    assert_int_equal (sse_chunk (&st, &c, &buf), SSE_ERR_CHUNK);
    //  Sequence: 0 then 2 is a gap; nothing was counted as sent
    s_mk_chunk (&c, 0, "m", "{\"choices\":[]}");
    assert_int_equal (sse_chunk (&st, &c, &buf), SSE_OK);
    s_mk_chunk (&c, 2, "m", "{\"choices\":[]}");
    sse_buf_reset (&buf);
    assert_int_equal (sse_chunk (&st, &c, &buf), SSE_ERR_GAP);
    assert_int_equal (buf.len, 0);
    assert_int_equal (st.sent, 1);
    //  A repeated seq is a gap too
    s_mk_chunk (&c, 0, "m", "{\"choices\":[]}");
    assert_int_equal (sse_chunk (&st, &c, &buf), SSE_ERR_GAP);
    sse_buf_free (&buf);
}

static void s_attempts (Aigw__AttemptInfo *a, Aigw__AttemptInfo **p)
{
    aigw__attempt_info__init (&a[0]);
    a[0].attempt_id = 1;
    a[0].target = "fast";
    a[0].outcome = AIGW__OUTCOME__OUTCOME_WON;
    a[0].has_started_us = true;
    a[0].started_us = 100;
    a[0].has_first_token_us = true;
    a[0].first_token_us = 2500;
    aigw__attempt_info__init (&a[1]);
    a[1].attempt_id = 2;
    a[1].target = "slow";
    a[1].outcome = AIGW__OUTCOME__OUTCOME_CANCELLED;
    p[0] = &a[0];
    p[1] = &a[1];
}

//  Split the buffer into its events (at most 8); returns how many.
static int s_events (const char *text, char events[][2048])
{
    int n = 0;
    const char *p = text;
    while (*p && n < 8) {
        const char *end = strstr (p, "\n\n");
        assert_non_null (end);
        snprintf (events[n++], 2048, "%.*s", (int) (end + 2 - p), p);
        p = end + 2;
    }
    return n;
}

static void test_done (void **state)
{
    sse_state_t st;
    sse_buf_t buf = { 0 };
    sse_state_init (&st, 7, 42, CFG_POLICY_HEDGE, true);
    Aigw__Chunk c;
    s_mk_chunk (&c, 0, "fast", s_chunk1);
    assert_int_equal (sse_chunk (&st, &c, &buf), SSE_OK);
    sse_buf_reset (&buf);
    Aigw__AttemptInfo a[2], *p[2];
    s_attempts (a, p);
    Aigw__Usage usage = AIGW__USAGE__INIT;
    usage.has_prompt_tokens = usage.has_completion_tokens = true;
    usage.prompt_tokens = 5;
    usage.completion_tokens = 7;
    Aigw__Result res = AIGW__RESULT__INIT;
    res.job_id = 7;
    res.model = "fast";
    res.usage = &usage;
    res.n_attempts = 2;
    res.attempts = p;
    res.has_latency_us = true;
    res.latency_us = 3000;
    assert_int_equal (sse_done (&st, &res, &buf), SSE_OK);
    char *t = s_text (&buf);
    char ev[8][2048];
    assert_int_equal (s_events (t, ev), 3);
    //  Summary chunk: no choices, the aigw object with attempts
    cJSON *j = s_data_json (ev[0]);
    assert_string_equal (s_str (j, "object"), "chat.completion.chunk");
    assert_string_equal (s_str (j, "id"), "chatcmpl-up-1");
    assert_int_equal (cJSON_GetArraySize (cJSON_GetObjectItemCaseSensitive (j, "choices")), 0);
    assert_null (cJSON_GetObjectItemCaseSensitive (j, "usage"));
    cJSON *aigw = cJSON_GetObjectItemCaseSensitive (j, "aigw");
    assert_string_equal (s_str (aigw, "winner"), "fast");
    assert_string_equal (s_str (aigw, "policy"), "hedge");
    assert_true (cJSON_GetObjectItemCaseSensitive (aigw, "latency_ms")->valuedouble == 3.0);
    cJSON *att = cJSON_GetObjectItemCaseSensitive (aigw, "attempts");
    assert_int_equal (cJSON_GetArraySize (att), 2);
    assert_string_equal (s_str (cJSON_GetArrayItem (att, 1), "outcome"), "cancelled");
    cJSON_Delete (j);
    //  Usage chunk from Result.usage
    j = s_data_json (ev[1]);
    assert_int_equal (cJSON_GetArraySize (cJSON_GetObjectItemCaseSensitive (j, "choices")), 0);
    cJSON *u = cJSON_GetObjectItemCaseSensitive (j, "usage");
    assert_int_equal (cJSON_GetObjectItemCaseSensitive (u, "prompt_tokens")->valueint, 5);
    assert_int_equal (cJSON_GetObjectItemCaseSensitive (u, "total_tokens")->valueint, 12);
    assert_string_equal (s_str (j, "model"), "fast");
    cJSON_Delete (j);
    assert_string_equal (ev[2], "data: [DONE]\n\n");
    free (t);

    //  The response's usage object wins (it may carry details); no include_usage: no chunk
    sse_buf_reset (&buf);
    const char *resp = "{\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3,"
                       "\"completion_tokens_details\":{\"reasoning_tokens\":0}}}";
    res.has_response_json = true;
    res.response_json.data = (uint8_t *) resp;
    res.response_json.len = strlen (resp);
    assert_int_equal (sse_done (&st, &res, &buf), SSE_OK);
    t = s_text (&buf);
    assert_int_equal (s_events (t, ev), 3);
    assert_non_null (strstr (ev[1], "\"reasoning_tokens\":0"));
    free (t);
    st.include_usage = false;
    sse_buf_reset (&buf);
    assert_int_equal (sse_done (&st, &res, &buf), SSE_OK);
    t = s_text (&buf);
    assert_int_equal (s_events (t, ev), 2);
    assert_string_equal (ev[1], "data: [DONE]\n\n");
    free (t);
    //  No usage anywhere: null
    st.include_usage = true;
    res.usage = NULL;
    res.has_response_json = false;
    sse_buf_reset (&buf);
    assert_int_equal (sse_done (&st, &res, &buf), SSE_OK);
    t = s_text (&buf);
    assert_int_equal (s_events (t, ev), 3);
    assert_non_null (strstr (ev[1], "\"usage\":null"));
    free (t);
    sse_buf_free (&buf);
}

static void test_errors (void **state)
{
    sse_state_t st;
    sse_buf_t buf = { 0 };
    sse_state_init (&st, 7, 42, CFG_POLICY_RACE, false);
    Aigw__AttemptInfo a[2], *p[2];
    s_attempts (a, p);
    a[0].outcome = AIGW__OUTCOME__OUTCOME_FAILED;
    a[0].reason = "no first token within 200 ms";
    Aigw__Error e = AIGW__ERROR__INIT;
    e.job_id = 7;
    e.code = AIGW__ERROR_CODE__ERR_TTFT;
    e.n_attempts = 2;
    e.attempts = p;
    //  Before the first chunk: no winner
    assert_int_equal (sse_error (&st, &e, &buf), SSE_OK);
    char *t = s_text (&buf);
    const char *prefix = "event: error\ndata: ";
    assert_memory_equal (t, prefix, strlen (prefix));
    assert_null (strstr (t, "[DONE]"));
    cJSON *j = cJSON_Parse (t + strlen (prefix));
    assert_non_null (j);
    cJSON *err = cJSON_GetObjectItemCaseSensitive (j, "error");
    assert_string_equal (s_str (err, "type"), "upstream_error");
    assert_string_equal (s_str (err, "code"), "ttft_timeout");
    assert_non_null (strstr (s_str (err, "message"), "fast: no first token within 200 ms"));
    cJSON *aigw = cJSON_GetObjectItemCaseSensitive (j, "aigw");
    assert_true (cJSON_IsNull (cJSON_GetObjectItemCaseSensitive (aigw, "winner")));
    assert_int_equal (cJSON_GetArraySize (cJSON_GetObjectItemCaseSensitive (aigw, "attempts")), 2);
    cJSON_Delete (j);
    free (t);
    //  After the first chunk: the winner is named
    Aigw__Chunk c;
    s_mk_chunk (&c, 0, "fast", s_chunk1);
    sse_buf_reset (&buf);
    assert_int_equal (sse_chunk (&st, &c, &buf), SSE_OK);
    sse_buf_reset (&buf);
    e.code = AIGW__ERROR_CODE__ERR_UPSTREAM;
    e.message = "stream failed after 1 chunks: cut";
    assert_int_equal (sse_error (&st, &e, &buf), SSE_OK);
    t = s_text (&buf);
    assert_non_null (strstr (t, "\"winner\":\"fast\""));
    assert_non_null (strstr (t, "stream failed after 1 chunks"));
    assert_memory_equal (t + buf.len - 2, "\n\n", 2);
    free (t);
    //  Edge-decided error
    sse_buf_reset (&buf);
    assert_int_equal (sse_error_simple (&st, 504, "timeout", "no answer", &buf), SSE_OK);
    t = s_text (&buf);
    assert_string_equal (t, "event: error\ndata: {\"error\":{\"message\":\"no answer\","
                            "\"type\":\"timeout_error\",\"code\":\"timeout\"},"
                            "\"aigw\":{\"winner\":\"fast\",\"policy\":\"race\"}}\n\n");
    free (t);
    sse_buf_free (&buf);
}

static void test_frame (void **state)
{
    sse_buf_t buf = { 0 };
    size_t len = 0;
    assert_null (chunked_frame (&buf, false, false, &len));
    assert_null (chunked_frame (&buf, true, false, &len));
    const char *end = chunked_frame (&buf, true, true, &len);
    assert_int_equal (len, 5);
    assert_memory_equal (end, "0\r\n\r\n", 5);
    assert_int_equal (sse_append (&buf, ": keep-alive\n\n", 14), SSE_OK);
    const char *out = chunked_frame (&buf, false, false, &len);
    assert_int_equal (len, 14);
    assert_memory_equal (out, ": keep-alive\n\n", 14);
    out = chunked_frame (&buf, true, false, &len);
    assert_int_equal (len, 19);
    assert_memory_equal (out, "e\r\n: keep-alive\n\n\r\n", 19);
    out = chunked_frame (&buf, true, true, &len);
    assert_int_equal (len, 24);
    assert_memory_equal (out, "e\r\n: keep-alive\n\n\r\n0\r\n\r\n", 24);
    //  A big event grows the buffer; the size line is hex
    sse_buf_reset (&buf);
    char *big = malloc (100000);
    memset (big, 'x', 100000);
    assert_int_equal (sse_append (&buf, big, 100000), SSE_OK);
    out = chunked_frame (&buf, true, false, &len);
    assert_memory_equal (out, "186a0\r\n", 7);
    assert_int_equal (len, 7 + 100000 + 2);
    free (big);
    //  Over the hard limit: refused before reading a byte
    assert_int_equal (sse_append (&buf, "x", (size_t) SSE_TEXT_MAX + 1), SSE_ERR_MEMORY);
    assert_int_equal (buf.len, 100000);
    sse_buf_free (&buf);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_first_and_later_chunks),
        cmocka_unit_test (test_role_kept_and_tools),
        cmocka_unit_test (test_bad_chunks),
        cmocka_unit_test (test_done),
        cmocka_unit_test (test_errors),
        cmocka_unit_test (test_frame),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
