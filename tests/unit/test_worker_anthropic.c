// Unit tests of the anthropic provider's translation: OpenAI request -> Messages request,
// Messages reply -> chat.completion, and the SSE stream (every split point identical,
// tool_use pieces, error events, cut streams, caps).
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "test_worker_stream.h"
#include "wk_anthropic.h"

#define GET cJSON_GetObjectItemCaseSensitive

static cJSON *s_translate (const char *req, uint32_t dflt, bool stream, char *err)
{
    buf_t out;
    buf_init (&out, 1 << 20);
    char e [256] = "";
    cJSON *root = NULL;
    if (wk_anthropic_request (req, strlen (req), "claude-x", dflt, stream, &out, e, sizeof e) == 0)
        root = cJSON_Parse (out.data);
    if (err)
        snprintf (err, 256, "%s", e);
    buf_free (&out);
    return root;
}

static void test_request_basic (void **state)
{
    cJSON *r = s_translate (
        "{\"model\":\"c\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"Use French.\"}]},"
        "{\"role\":\"user\",\"content\":\"hi\"},"
        "{\"role\":\"assistant\",\"content\":\"salut\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"look\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,QUJD\"}}]}],"
        "\"temperature\":0.5,\"top_p\":0.9,\"stop\":\"END\",\"n\":1,\"user\":\"u1\","
        "\"response_format\":{\"type\":\"json_object\"}}", 333, true, NULL);
    assert_non_null (r);
    assert_string_equal (GET (r, "model")->valuestring, "claude-x");
    assert_int_equal (GET (r, "max_tokens")->valueint, 333);
    assert_true (cJSON_IsTrue (GET (r, "stream")));
    assert_string_equal (GET (r, "system")->valuestring, "Be brief.\n\nUse French.");
    cJSON *msgs = GET (r, "messages");
    assert_int_equal (cJSON_GetArraySize (msgs), 3);
    cJSON *m0 = cJSON_GetArrayItem (msgs, 0);
    assert_string_equal (GET (m0, "role")->valuestring, "user");
    assert_string_equal (GET (m0, "content")->valuestring, "hi");
    assert_string_equal (GET (cJSON_GetArrayItem (msgs, 1), "role")->valuestring, "assistant");
    cJSON *parts = GET (cJSON_GetArrayItem (msgs, 2), "content");
    assert_string_equal (GET (cJSON_GetArrayItem (parts, 0), "text")->valuestring, "look");
    cJSON *img = GET (cJSON_GetArrayItem (parts, 1), "source");
    assert_string_equal (GET (img, "type")->valuestring, "base64");
    assert_string_equal (GET (img, "media_type")->valuestring, "image/png");
    assert_string_equal (GET (img, "data")->valuestring, "QUJD");
    assert_true (GET (r, "temperature")->valuedouble == 0.5);
    assert_true (GET (r, "top_p")->valuedouble == 0.9);
    assert_string_equal (cJSON_GetArrayItem (GET (r, "stop_sequences"), 0)->valuestring, "END");
    assert_string_equal (GET (GET (r, "metadata"), "user_id")->valuestring, "u1");
    assert_null (GET (r, "n"));
    assert_null (GET (r, "response_format"));
    cJSON_Delete (r);
    //  max_completion_tokens wins over max_tokens; no stream flag when not streaming
    r = s_translate ("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":5,"
                     "\"max_completion_tokens\":7,\"stop\":[\"a\",\"b\"]}", 100, false, NULL);
    assert_int_equal (GET (r, "max_tokens")->valueint, 7);
    assert_null (GET (r, "stream"));
    assert_null (GET (r, "system"));
    assert_int_equal (cJSON_GetArraySize (GET (r, "stop_sequences")), 2);
    cJSON_Delete (r);
    r = s_translate ("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 0, false, NULL);
    assert_int_equal (GET (r, "max_tokens")->valueint, 1024);
    cJSON_Delete (r);
}

static void test_request_tools (void **state)
{
    cJSON *r = s_translate (
        "{\"messages\":[{\"role\":\"user\",\"content\":\"weather?\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
        "{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"w\",\"arguments\":\"{\\\"c\\\":\\\"P\\\"}\"}},"
        "{\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":\"w\",\"arguments\":\"{}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"sunny\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_2\",\"content\":\"rain\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"w\",\"description\":\"d\","
        "\"parameters\":{\"type\":\"object\",\"properties\":{\"c\":{\"type\":\"string\"}}}}}],"
        "\"tool_choice\":\"required\",\"parallel_tool_calls\":false}", 10, false, NULL);
    assert_non_null (r);
    cJSON *msgs = GET (r, "messages");
    assert_int_equal (cJSON_GetArraySize (msgs), 3);
    cJSON *blocks = GET (cJSON_GetArrayItem (msgs, 1), "content");
    assert_int_equal (cJSON_GetArraySize (blocks), 2);
    cJSON *use = cJSON_GetArrayItem (blocks, 0);
    assert_string_equal (GET (use, "type")->valuestring, "tool_use");
    assert_string_equal (GET (use, "id")->valuestring, "call_1");
    assert_string_equal (GET (GET (use, "input"), "c")->valuestring, "P");
    //  Both tool results share one user message
    cJSON *results = GET (cJSON_GetArrayItem (msgs, 2), "content");
    assert_string_equal (GET (cJSON_GetArrayItem (msgs, 2), "role")->valuestring, "user");
    assert_int_equal (cJSON_GetArraySize (results), 2);
    assert_string_equal (GET (cJSON_GetArrayItem (results, 1), "tool_use_id")->valuestring, "call_2");
    assert_string_equal (GET (cJSON_GetArrayItem (results, 1), "content")->valuestring, "rain");
    cJSON *tool = cJSON_GetArrayItem (GET (r, "tools"), 0);
    assert_string_equal (GET (tool, "name")->valuestring, "w");
    assert_string_equal (GET (tool, "description")->valuestring, "d");
    assert_non_null (GET (GET (tool, "input_schema"), "properties"));
    cJSON *tc = GET (r, "tool_choice");
    assert_string_equal (GET (tc, "type")->valuestring, "any");
    assert_true (cJSON_IsTrue (GET (tc, "disable_parallel_tool_use")));
    cJSON_Delete (r);
    r = s_translate ("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":"
                     "\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":{\"type\":"
                     "\"function\",\"function\":{\"name\":\"f\"}}}", 10, false, NULL);
    assert_string_equal (GET (GET (r, "tool_choice"), "type")->valuestring, "tool");
    assert_string_equal (GET (GET (r, "tool_choice"), "name")->valuestring, "f");
    assert_string_equal (GET (GET (cJSON_GetArrayItem (GET (r, "tools"), 0), "input_schema"),
                              "type")->valuestring, "object");
    cJSON_Delete (r);
}

static void test_request_bad (void **state)
{
    struct { const char *req; const char *why; } bad [] = {
        { "not json", "not a well-formed JSON object" },
        { "[1]", "not a well-formed JSON object" },
        { "{\"model\":\"x\"}", "no messages array" },
        { "{\"messages\":[{\"content\":\"x\"}]}", "message has no role" },
        { "{\"messages\":[{\"role\":\"function\",\"content\":\"x\"}]}", "role 'function'" },
        { "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\"}]}]}",
          "part type 'input_audio'" },
        { "{\"messages\":[{\"role\":\"user\"}]}", "user message has no content" },
        { "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", "string or an array" },
        { "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"f\","
          "\"arguments\":\"{oops\"}}]}]}", "arguments are not a JSON object" },
        { "{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", "no tool_call_id" },
        { "{\"messages\":[],\"stop\":5}", "stop must be" },
        { "{\"messages\":[],\"tools\":[{\"type\":\"retrieval\"}]}", "only function tools" },
        { "{\"messages\":[],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
          "\"tool_choice\":\"sometimes\"}", "tool_choice is not" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        char err [256];
        cJSON *r = s_translate (bad [i].req, 10, false, err);
        if (r || !strstr (err, bad [i].why))
            fail_msg ("case %zu: accepted or wrong reason '%s'", i, err);
    }
}

static void test_response (void **state)
{
    const char *body =
        "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\","
        "\"content\":[{\"type\":\"thinking\",\"thinking\":\"hmm\"},{\"type\":\"text\",\"text\":\"Let me \"},"
        "{\"type\":\"text\",\"text\":\"check.\"},{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"w\","
        "\"input\":{\"c\":\"P\"}}],\"stop_reason\":\"tool_use\",\"stop_sequence\":null,"
        "\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":5,\"output_tokens\":4}}";
    buf_t out;
    buf_init (&out, 1 << 16);
    wk_usage_t u;
    char err [256] = "";
    assert_int_equal (wk_anthropic_response (body, strlen (body), 99, &out, &u, err, sizeof err), 0);
    assert_true (u.has);
    assert_int_equal (u.prompt_tokens, 15);
    assert_int_equal (u.completion_tokens, 4);
    cJSON *r = cJSON_Parse (out.data);
    assert_non_null (r);
    assert_string_equal (GET (r, "id")->valuestring, "msg_1");
    assert_string_equal (GET (r, "object")->valuestring, "chat.completion");
    assert_int_equal (GET (r, "created")->valueint, 99);
    cJSON *ch = cJSON_GetArrayItem (GET (r, "choices"), 0);
    assert_string_equal (GET (ch, "finish_reason")->valuestring, "tool_calls");
    cJSON *msg = GET (ch, "message");
    assert_string_equal (GET (msg, "content")->valuestring, "Let me check.");
    cJSON *tc = cJSON_GetArrayItem (GET (msg, "tool_calls"), 0);
    assert_string_equal (GET (tc, "id")->valuestring, "toolu_1");
    assert_string_equal (GET (GET (tc, "function"), "arguments")->valuestring, "{\"c\":\"P\"}");
    assert_int_equal (GET (GET (r, "usage"), "total_tokens")->valueint, 19);
    cJSON_Delete (r);
    buf_free (&out);
    //  Stop reasons
    assert_string_equal (wk_anthropic_finish ("end_turn"), "stop");
    assert_string_equal (wk_anthropic_finish ("stop_sequence"), "stop");
    assert_string_equal (wk_anthropic_finish ("max_tokens"), "length");
    assert_string_equal (wk_anthropic_finish ("tool_use"), "tool_calls");
    assert_string_equal (wk_anthropic_finish (NULL), "stop");
    //  Garbled replies
    const char *bad [] = { "", "<html>", "{\"type\":\"message\"}", "[]",
                           "{\"type\":\"error\",\"error\":{\"type\":\"x\",\"message\":\"boom\"}}" };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        buf_init (&out, 1 << 16);
        assert_int_equal (wk_anthropic_response (bad [i], strlen (bad [i]), 1, &out, &u, err,
                                                 sizeof err), -1);
        buf_free (&out);
    }
    assert_string_equal (err, "upstream error: boom");
}

//  ---- stream

static const h_cfg_t ANT = { .framing = WK_FRAMING_SSE, .fn = wk_anthropic_stream_event, .max = 1 << 20 };

#define A_START "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_7\"," \
    "\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"stop_reason\":null," \
    "\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n"
#define A_BLOCK0 "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0," \
    "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
#define A_DELTA(t) "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0," \
    "\"delta\":{\"type\":\"text_delta\",\"text\":\"" t "\"}}\n\n"
#define A_STOP(i) "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":" i "}\n\n"
#define A_TOOL "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1," \
    "\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_9\",\"name\":\"w\",\"input\":{}}}\n\n" \
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":" \
    "{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n" \
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":" \
    "{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"c\\\": \"}}\n\n" \
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":" \
    "{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"P\\\"}\"}}\n\n"
#define A_END(reason) "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":" \
    "\"" reason "\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":9}}\n\n" \
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"

static void test_stream_text (void **state)
{
    h_run_t r;
    h_every_split (&ANT, A_START A_BLOCK0 "event: ping\ndata: {\"type\": \"ping\"}\n\n"
                   A_DELTA ("Hello") A_DELTA (" w\\u00f6rld") A_STOP ("0") A_END ("end_turn"), &r);
    assert_int_equal (r.rc, 0);
    assert_true (r.complete);
    assert_int_equal (r.chunks, 3);
    assert_string_equal (r.chunks_log,
        "{\"id\":\"msg_7\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"claude-x\","
        "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hello\"},\"logprobs\":null,"
        "\"finish_reason\":null}]}\n"
        "{\"id\":\"msg_7\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"claude-x\","
        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" w\xc3\xb6rld\"},\"logprobs\":null,"
        "\"finish_reason\":null}]}\n"
        "{\"id\":\"msg_7\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"claude-x\","
        "\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n");
    assert_true (r.usage.has);
    assert_int_equal (r.usage.prompt_tokens, 12);
    assert_int_equal (r.usage.completion_tokens, 9);
    cJSON *root = cJSON_Parse (r.result);
    cJSON *msg = GET (cJSON_GetArrayItem (GET (root, "choices"), 0), "message");
    assert_string_equal (GET (msg, "content")->valuestring, "Hello w\xc3\xb6rld");
    cJSON_Delete (root);
    h_free (&r);
}

static void test_stream_tool_use (void **state)
{
    h_run_t r;
    h_every_split (&ANT, A_START A_BLOCK0 A_DELTA ("Checking.") A_STOP ("0") A_TOOL A_STOP ("1")
                   A_END ("tool_use"), &r);
    assert_true (r.complete);
    assert_int_equal (r.chunks, 5);     // text, tool start, 2 argument pieces, finish
    assert_non_null (strstr (r.chunks_log, "\"delta\":{\"content\":null,\"tool_calls\":[{\"index\":0,"
                                           "\"id\":\"toolu_9\",\"type\":\"function\",\"function\":"
                                           "{\"name\":\"w\",\"arguments\":\"\"}}]}"));
    assert_non_null (strstr (r.chunks_log, "\"tool_calls\":[{\"index\":0,\"function\":"
                                           "{\"arguments\":\"{\\\"c\\\": \"}}]}"));
    cJSON *root = cJSON_Parse (r.result);
    cJSON *ch = cJSON_GetArrayItem (GET (root, "choices"), 0);
    assert_string_equal (GET (ch, "finish_reason")->valuestring, "tool_calls");
    cJSON *tc = cJSON_GetArrayItem (GET (GET (ch, "message"), "tool_calls"), 0);
    assert_string_equal (GET (GET (tc, "function"), "arguments")->valuestring, "{\"c\": \"P\"}");
    assert_string_equal (GET (tc, "id")->valuestring, "toolu_9");
    cJSON_Delete (root);
    h_free (&r);
}

static void test_stream_failures (void **state)
{
    h_run_t r;
    //  An error event after some text
    h_every_split (&ANT, A_START A_BLOCK0 A_DELTA ("Hi") "event: error\ndata: {\"type\":\"error\","
                   "\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n", &r);
    assert_true (r.failed);
    assert_int_equal (r.chunks, 1);
    assert_string_equal (r.reason, "upstream stream error: overloaded_error: Overloaded");
    h_free (&r);
    //  Cut: no message_stop (even after message_delta) is not complete
    h_every_split (&ANT, A_START A_BLOCK0 A_DELTA ("Hi") A_STOP ("0"), &r);
    assert_false (r.complete);
    assert_false (r.failed);
    h_free (&r);
    //  Garbled data, garbled lines, bad block index
    h_every_split (&ANT, A_START "event: content_block_delta\ndata: {\"type\":\n\n", &r);
    assert_non_null (strstr (r.reason, "malformed SSE event"));
    h_free (&r);
    h_every_split (&ANT, A_START "<!DOCTYPE html>\n", &r);
    assert_non_null (strstr (r.reason, "malformed SSE line"));
    h_free (&r);
    h_every_split (&ANT, "data: {\"type\":\"content_block_delta\",\"index\":999,\"delta\":"
                   "{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n", &r);
    assert_string_equal (r.reason, "malformed content_block_delta event");
    h_free (&r);
    //  Oversize line
    h_cfg_t small = ANT;
    small.max = 100;
    h_every_split (&small, A_START, &r);
    assert_string_equal (r.reason, "SSE line longer than 100 bytes");
    h_free (&r);
}

int main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_request_basic),
        cmocka_unit_test (test_request_tools),
        cmocka_unit_test (test_request_bad),
        cmocka_unit_test (test_response),
        cmocka_unit_test (test_stream_text),
        cmocka_unit_test (test_stream_tool_use),
        cmocka_unit_test (test_stream_failures),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
