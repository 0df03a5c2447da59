// Unit tests of OpenAI stream handling and reply assembly: chunks forwarded byte for byte
// (not role-only or usage-only ones), tool calls assembled, every split point identical,
// end markers, in-stream errors, garbled and oversize streams, chunk rendering.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "test_worker_stream.h"
#include "wk_compl.h"
#include "wk_openai.h"

#define C_PRE "{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1718000000," \
              "\"model\":\"gpt-x\",\"system_fingerprint\":\"fp_1\",\"choices\":[{\"index\":0,\"delta\":"
#define C_ROLE C_PRE "{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}"
#define C_HELLO C_PRE "{\"content\":\"Hel\\u006co\"},\"finish_reason\":null}]}"
#define C_WORLD C_PRE "{\"content\":\" w\\u00f6rld \\\"q\\\"\"},\"finish_reason\":null}]}"
#define C_TOOL1 C_PRE "{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\"," \
                "\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}"
#define C_TOOL2 C_PRE "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]}," \
                "\"finish_reason\":null}]}"
#define C_TOOL3 C_PRE "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]}," \
                "\"finish_reason\":null}]}"
#define C_FINISH C_PRE "{},\"finish_reason\":\"tool_calls\"}]}"
#define C_USAGE "{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1718000000," \
                "\"model\":\"gpt-x\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":7," \
                "\"total_tokens\":18}}"

static const h_cfg_t OAI = {
    .framing = WK_FRAMING_SSE, .fn = wk_openai_stream_event, .finish_ends = true, .max = 1 << 20,
};

static const char *STREAM =
    ": OPENROUTER PROCESSING\n\n"
    "data: " C_ROLE "\n\n"
    "data: " C_HELLO "\r\n\r\n"
    "data:" C_WORLD "\n\n"
    "data: " C_TOOL1 "\n\n"
    "data: " C_TOOL2 "\n\n"
    ": keep-alive\n\n"
    "data: " C_TOOL3 "\n\n"
    "data: " C_FINISH "\n\n"
    "data: " C_USAGE "\n\n"
    "data: [DONE]\n\n";

static void test_openai_stream_every_split (void **state)
{
    h_run_t r;
    h_every_split (&OAI, STREAM, &r);
    assert_int_equal (r.rc, 0);
    assert_true (r.complete);
    assert_false (r.failed);
    //  Forwarded as they are: not the role-only chunk nor the usage-only one
    assert_int_equal (r.chunks, 6);
    assert_string_equal (r.chunks_log, C_HELLO "\n" C_WORLD "\n" C_TOOL1 "\n" C_TOOL2 "\n" C_TOOL3 "\n"
                                       C_FINISH "\n");
    assert_true (r.usage.has);
    assert_int_equal (r.usage.prompt_tokens, 11);
    assert_int_equal (r.usage.completion_tokens, 7);
    cJSON *root = cJSON_Parse (r.result);
    assert_non_null (root);
    assert_string_equal (cJSON_GetObjectItem (root, "id")->valuestring, "chatcmpl-9");
    assert_string_equal (cJSON_GetObjectItem (root, "object")->valuestring, "chat.completion");
    assert_string_equal (cJSON_GetObjectItem (root, "model")->valuestring, "gpt-x");
    assert_string_equal (cJSON_GetObjectItem (root, "system_fingerprint")->valuestring, "fp_1");
    assert_int_equal ((int64_t) cJSON_GetObjectItem (root, "created")->valuedouble, 1718000000);
    cJSON *ch = cJSON_GetArrayItem (cJSON_GetObjectItem (root, "choices"), 0);
    cJSON *msg = cJSON_GetObjectItem (ch, "message");
    assert_string_equal (cJSON_GetObjectItem (msg, "content")->valuestring,
                         "Hello w\xc3\xb6rld \"q\"");
    assert_string_equal (cJSON_GetObjectItem (ch, "finish_reason")->valuestring, "tool_calls");
    cJSON *tc = cJSON_GetArrayItem (cJSON_GetObjectItem (msg, "tool_calls"), 0);
    assert_string_equal (cJSON_GetObjectItem (tc, "id")->valuestring, "call_1");
    assert_string_equal (cJSON_GetObjectItem (tc, "type")->valuestring, "function");
    cJSON *fn = cJSON_GetObjectItem (tc, "function");
    assert_string_equal (cJSON_GetObjectItem (fn, "name")->valuestring, "get_weather");
    assert_string_equal (cJSON_GetObjectItem (fn, "arguments")->valuestring, "{\"city\":\"Paris\"}");
    cJSON *usage = cJSON_GetObjectItem (root, "usage");
    assert_int_equal (cJSON_GetObjectItem (usage, "total_tokens")->valueint, 18);
    cJSON_Delete (root);
    h_free (&r);
}

static void test_openai_stream_end_markers (void **state)
{
    h_run_t r;
    //  A finish_reason and a clean close is an end even without [DONE]
    h_run (&OAI, "data: " C_HELLO "\n\ndata: " C_FINISH "\n\n", strlen ("data: " C_HELLO "\n\ndata: " C_FINISH "\n\n"), 3, &r);
    assert_true (r.complete);
    h_free (&r);
    //  Content only, no finish and no [DONE]: a cut stream
    const char *cut = "data: " C_ROLE "\n\ndata: " C_HELLO "\n\ndata: " C_WORLD "\n\n";
    h_every_split (&OAI, cut, &r);
    assert_false (r.complete);
    assert_false (r.failed);
    assert_int_equal (r.chunks, 2);
    h_free (&r);
    //  Bytes after [DONE] (even garbage) are ignored
    const char *after = "data: " C_HELLO "\n\ndata: [DONE]\n\n<html>junk</html>\n";
    h_every_split (&OAI, after, &r);
    assert_true (r.complete);
    assert_false (r.failed);
    assert_int_equal (r.chunks, 1);
    h_free (&r);
}

static void test_openai_stream_errors (void **state)
{
    h_run_t r;
    h_every_split (&OAI, "data: " C_HELLO "\n\ndata: {\"error\":{\"message\":\"Rate limit reached\","
                   "\"type\":\"rate_limit\"}}\n\n", &r);
    assert_true (r.failed);
    assert_false (r.complete);
    assert_int_equal (r.chunks, 1);
    assert_string_equal (r.reason, "upstream stream error: Rate limit reached");
    h_free (&r);
    h_every_split (&OAI, "event: error\ndata: {\"message\":\"overloaded\"}\n\n", &r);
    assert_string_equal (r.reason, "upstream stream error: overloaded");
    h_free (&r);
    h_every_split (&OAI, "data: {\"object\":\"error\",\"message\":\"context too long\",\"code\":400}\n\n", &r);
    assert_string_equal (r.reason, "upstream stream error: context too long");
    h_free (&r);
    h_every_split (&OAI, "data: " C_HELLO "\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"x\"}\n\n", &r);
    assert_true (r.failed);
    assert_non_null (strstr (r.reason, "malformed SSE event: '{\"choices\""));
    h_free (&r);
    h_every_split (&OAI, "data: {\"choices\":{}}\n\n", &r);
    assert_string_equal (r.reason, "malformed SSE event: choices is not an array");
    h_free (&r);
    h_every_split (&OAI, "{\"id\":\"chatcmpl\",\"choices\":[]}\n", &r);
    assert_true (r.failed);
    assert_non_null (strstr (r.reason, "malformed SSE line"));
    h_free (&r);
    h_every_split (&OAI, "data: {\"choices\":[{\"index\":99,\"delta\":{\"content\":\"x\"}}]}\n\n", &r);
    assert_string_equal (r.reason, "choice index 99 out of range");
    h_free (&r);
}

static void test_openai_stream_caps (void **state)
{
    //  Lines are capped at max_bytes; so is the assembled reply
    h_cfg_t small = OAI;
    small.max = 200;
    h_run_t r;
    h_every_split (&small, STREAM, &r);
    assert_true (r.failed);
    assert_non_null (strstr (r.reason, "SSE line longer than 200 bytes"));
    h_free (&r);
    //  Short lines whose content adds up past the cap
    char *many = malloc (64 * 1024);
    size_t n = 0;
    for (int i = 0; i < 50; i++)
        n += (size_t) snprintf (many + n, 64 * 1024 - n, "data: " C_HELLO "\n\n");
    small.max = 240;                    // lines of 201 bytes fit; 48 x 5 bytes of content do
    h_run (&small, many, n, n, &r);
    assert_true (r.failed);
    assert_int_equal (r.chunks, 48);
    assert_string_equal (r.reason, "streamed reply larger than 240 bytes");
    h_free (&r);
    free (many);
    //  A chunk that cannot be sent fails the stream and says so
    h_cfg_t failing = OAI;
    failing.fail_at = 2;
    h_run (&failing, STREAM, strlen (STREAM), 7, &r);
    assert_true (r.failed);
    assert_true (r.emit_failed);
    assert_int_equal (r.chunks, 1);
    assert_string_equal (r.reason, "cannot send CHUNK 1 to the broker (send queue full)");
    h_free (&r);
}

static void test_openai_rewrite_stream (void **state)
{
    const char *req = "{\"model\":\"a\",\"stream\":false,\"stream_options\":{\"x\":1},"
                      "\"messages\":[],\"n\":1}";
    buf_t out;
    buf_init (&out, 0);
    const char *err = NULL;
    assert_int_equal (wk_openai_rewrite (req, strlen (req), "up", true, &out, &err), 0);
    assert_string_equal (out.data, "{\"model\":\"up\",\"stream\":true,\"stream_options\":"
                         "{\"include_usage\":true},\"messages\":[],\"n\":1}");
    buf_free (&out);
    buf_init (&out, 0);
    assert_int_equal (wk_openai_rewrite ("{\"messages\":[]}", 15, "up", true, &out, &err), 0);
    assert_string_equal (out.data, "{\"messages\":[],\"model\":\"up\",\"stream\":true,"
                         "\"stream_options\":{\"include_usage\":true}}");
    buf_free (&out);
}

//  ---- assembly and chunk rendering

static void test_compl_render (void **state)
{
    wk_compl_t c;
    wk_compl_init (&c, 1000);
    c.created = 5;
    wk_compl_meta (&c, "id-1", "m\"1", NULL);
    wk_compl_meta (&c, "id-2", "other", "fp");          // first wins, fingerprint is new
    assert_int_equal (wk_compl_text (&c, 0, "a\nb", 3), 0);
    assert_int_equal (wk_compl_tool (&c, 1, 1, "t1", "fn", "{}", 2), 0);
    assert_int_equal (wk_compl_finish (&c, 1, "tool_calls"), 0);
    assert_false (wk_compl_finished (&c));
    assert_int_equal (wk_compl_finish (&c, 0, "stop"), 0);
    assert_true (wk_compl_finished (&c));
    assert_int_equal (wk_compl_text (&c, WK_COMPL_CHOICES, "x", 1), -1);
    assert_int_equal (wk_compl_tool (&c, 0, WK_COMPL_TOOLS, NULL, NULL, "x", 1), -1);
    char big [1200];
    memset (big, 'x', sizeof big);
    assert_int_equal (wk_compl_text (&c, 0, big, sizeof big), -1);
    c.usage = (wk_usage_t) { .has = true, .prompt_tokens = 2, .completion_tokens = 3 };
    buf_t out;
    buf_init (&out, 1 << 16);
    assert_int_equal (wk_compl_render (&c, &out), 0);
    assert_string_equal (out.data,
        "{\"id\":\"id-1\",\"object\":\"chat.completion\",\"created\":5,\"model\":\"m\\\"1\","
        "\"system_fingerprint\":\"fp\",\"choices\":["
        "{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"a\\nb\"},\"logprobs\":null,"
        "\"finish_reason\":\"stop\"},"
        "{\"index\":1,\"message\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
        "{\"id\":\"\",\"type\":\"function\",\"function\":{\"name\":\"\",\"arguments\":\"\"}},"
        "{\"id\":\"t1\",\"type\":\"function\",\"function\":{\"name\":\"fn\",\"arguments\":\"{}\"}}]},"
        "\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],"
        "\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3,\"total_tokens\":5}}");
    cJSON *parsed = cJSON_Parse (out.data);
    assert_non_null (parsed);
    cJSON_Delete (parsed);
    buf_free (&out);
    wk_compl_free (&c);
    //  Nothing at all still renders one empty choice
    wk_compl_init (&c, 10);
    buf_init (&out, 1 << 16);
    assert_int_equal (wk_compl_render (&c, &out), 0);
    assert_non_null (strstr (out.data, "\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}"));
    buf_free (&out);
    wk_compl_free (&c);
}

static void test_chunk_render (void **state)
{
    buf_t out;
    buf_init (&out, 4096);
    wk_delta_t d = { .role = true, .content = "hi\t", .content_len = 3 };
    assert_int_equal (wk_compl_chunk_render (&out, "c1", "m", 7, &d), 0);
    assert_string_equal (out.data, "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,"
                         "\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
                         "\"content\":\"hi\\t\"},\"logprobs\":null,\"finish_reason\":null}]}");
    buf_reset (&out);
    wk_delta_t t = { .tool = true, .tool_index = 2, .tool_id = "x", .tool_name = "f",
                     .tool_args = "{\"a\"", .tool_args_len = 4 };
    assert_int_equal (wk_compl_chunk_render (&out, "c1", "m", 7, &t), 0);
    assert_non_null (strstr (out.data, "\"delta\":{\"content\":null,\"tool_calls\":[{\"index\":2,"
                             "\"id\":\"x\",\"type\":\"function\",\"function\":{\"name\":\"f\","
                             "\"arguments\":\"{\\\"a\\\"\"}}]}"));
    cJSON *root = cJSON_Parse (out.data);
    assert_non_null (root);
    cJSON_Delete (root);
    buf_reset (&out);
    wk_delta_t f = { .finish = "length" };
    assert_int_equal (wk_compl_chunk_render (&out, "c1", "m", 7, &f), 0);
    assert_non_null (strstr (out.data, "\"delta\":{},\"logprobs\":null,\"finish_reason\":\"length\"}]}"));
    buf_free (&out);
}

int main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_openai_stream_every_split),
        cmocka_unit_test (test_openai_stream_end_markers),
        cmocka_unit_test (test_openai_stream_errors),
        cmocka_unit_test (test_openai_stream_caps),
        cmocka_unit_test (test_openai_rewrite_stream),
        cmocka_unit_test (test_compl_render),
        cmocka_unit_test (test_chunk_render),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
