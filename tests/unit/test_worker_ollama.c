// Unit tests of the ollama provider's translation: OpenAI request -> /api/chat request,
// reply -> chat.completion, and the NDJSON stream (every split point identical, done,
// error lines, garbled and oversize lines, a last line without its newline).
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "test_worker_stream.h"
#include "wk_ollama.h"

#define GET cJSON_GetObjectItemCaseSensitive

static cJSON *s_translate (const char *req, bool stream, char *err)
{
    buf_t out;
    buf_init (&out, 1 << 20);
    char e [256] = "";
    cJSON *root = NULL;
    if (wk_ollama_request (req, strlen (req), "llama3", stream, &out, e, sizeof e) == 0)
        root = cJSON_Parse (out.data);
    if (err)
        snprintf (err, 256, "%s", e);
    buf_free (&out);
    return root;
}

static void test_request (void **state)
{
    cJSON *r = s_translate (
        "{\"model\":\"x\",\"messages\":[{\"role\":\"system\",\"content\":\"sys\"},"
        "{\"role\":\"developer\",\"content\":\"dev\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/jpeg;base64,Zm9v\"}}]},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
        "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"k\\\":1}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"42\"}],"
        "\"temperature\":0.2,\"top_p\":0.5,\"seed\":7,\"max_tokens\":64,\"stop\":\"STOP\","
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}}],"
        "\"response_format\":{\"type\":\"json_object\"}}", false, NULL);
    assert_non_null (r);
    assert_string_equal (GET (r, "model")->valuestring, "llama3");
    assert_true (cJSON_IsFalse (GET (r, "stream")));
    cJSON *msgs = GET (r, "messages");
    assert_int_equal (cJSON_GetArraySize (msgs), 5);
    assert_string_equal (GET (cJSON_GetArrayItem (msgs, 1), "role")->valuestring, "system");
    cJSON *user = cJSON_GetArrayItem (msgs, 2);
    assert_string_equal (GET (user, "content")->valuestring, "a\nb");
    assert_string_equal (cJSON_GetArrayItem (GET (user, "images"), 0)->valuestring, "Zm9v");
    cJSON *asst = cJSON_GetArrayItem (msgs, 3);
    assert_string_equal (GET (asst, "content")->valuestring, "");
    cJSON *fn = GET (cJSON_GetArrayItem (GET (asst, "tool_calls"), 0), "function");
    assert_string_equal (GET (fn, "name")->valuestring, "f");
    assert_int_equal (GET (GET (fn, "arguments"), "k")->valueint, 1);
    assert_string_equal (GET (cJSON_GetArrayItem (msgs, 4), "role")->valuestring, "tool");
    cJSON *opt = GET (r, "options");
    assert_true (GET (opt, "temperature")->valuedouble == 0.2);
    assert_true (GET (opt, "top_p")->valuedouble == 0.5);
    assert_int_equal (GET (opt, "seed")->valueint, 7);
    assert_int_equal (GET (opt, "num_predict")->valueint, 64);
    assert_string_equal (cJSON_GetArrayItem (GET (opt, "stop"), 0)->valuestring, "STOP");
    assert_string_equal (GET (cJSON_GetArrayItem (GET (r, "tools"), 0), "type")->valuestring, "function");
    assert_string_equal (GET (r, "format")->valuestring, "json");
    cJSON_Delete (r);
    r = s_translate ("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_completion_tokens\":9,"
                     "\"max_tokens\":3,\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
                     "{\"name\":\"n\",\"schema\":{\"type\":\"object\"}}}}", true, NULL);
    assert_true (cJSON_IsTrue (GET (r, "stream")));
    assert_int_equal (GET (GET (r, "options"), "num_predict")->valueint, 9);
    assert_string_equal (GET (GET (r, "format"), "type")->valuestring, "object");
    cJSON_Delete (r);
    r = s_translate ("{\"messages\":[]}", true, NULL);
    assert_null (GET (r, "options"));
    cJSON_Delete (r);
    const char *bad [] = {
        "nope", "{}", "{\"messages\":[{\"content\":\"x\"}]}",
        ("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":"
         "{\"url\":\"https://x/y.png\"}}]}]}"),    // one element, split in two lines
        "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"arguments\":\"[1]\"}}]}]}",
        "{\"messages\":[],\"stop\":{}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        char err [256];
        assert_null (s_translate (bad [i], false, err));
        assert_true (strlen (err) > 0);
    }
}

static void test_response (void **state)
{
    const char *body =
        "{\"model\":\"llama3\",\"created_at\":\"2024-01-01T00:00:00Z\",\"message\":{\"role\":\"assistant\","
        "\"content\":\"Hi there\"},\"done_reason\":\"length\",\"done\":true,\"prompt_eval_count\":8,"
        "\"eval_count\":2}";
    buf_t out;
    buf_init (&out, 1 << 16);
    wk_usage_t u;
    char err [256] = "";
    assert_int_equal (wk_ollama_response (body, strlen (body), "chatcmpl-o1", 5, &out, &u, err,
                                          sizeof err), 0);
    assert_true (u.has);
    assert_int_equal (u.prompt_tokens, 8);
    assert_int_equal (u.completion_tokens, 2);
    assert_string_equal (out.data,
        "{\"id\":\"chatcmpl-o1\",\"object\":\"chat.completion\",\"created\":5,\"model\":\"llama3\","
        "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hi there\"},"
        "\"logprobs\":null,\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":8,"
        "\"completion_tokens\":2,\"total_tokens\":10}}");
    buf_free (&out);
    const char *tools = "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\","
                        "\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":{\"a\":[1,2]}}}]},"
                        "\"done_reason\":\"stop\",\"done\":true}";
    buf_init (&out, 1 << 16);
    assert_int_equal (wk_ollama_response (tools, strlen (tools), "i", 5, &out, &u, err, sizeof err), 0);
    assert_false (u.has);
    cJSON *r = cJSON_Parse (out.data);
    cJSON *ch = cJSON_GetArrayItem (GET (r, "choices"), 0);
    assert_string_equal (GET (ch, "finish_reason")->valuestring, "tool_calls");
    cJSON *tc = cJSON_GetArrayItem (GET (GET (ch, "message"), "tool_calls"), 0);
    assert_string_equal (GET (tc, "id")->valuestring, "call_0");
    assert_string_equal (GET (GET (tc, "function"), "arguments")->valuestring, "{\"a\":[1,2]}");
    assert_true (cJSON_IsNull (GET (GET (ch, "message"), "content")));
    cJSON_Delete (r);
    buf_free (&out);
    const char *bad [] = { "", "[]", "{\"model\":\"m\"}", "{\"error\":\"model 'x' not found\"}" };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        buf_init (&out, 1 << 16);
        assert_int_equal (wk_ollama_response (bad [i], strlen (bad [i]), "i", 1, &out, &u, err,
                                              sizeof err), -1);
        buf_free (&out);
    }
    assert_string_equal (err, "upstream error: model 'x' not found");
}

//  ---- stream

static const h_cfg_t OLL = { .framing = WK_FRAMING_NDJSON, .fn = wk_ollama_stream_event,
                             .max = 1 << 20, .id = "chatcmpl-ollama-1" };

#define O_LINE(t) "{\"model\":\"llama3\",\"created_at\":\"2024-01-01T00:00:00Z\",\"message\":" \
    "{\"role\":\"assistant\",\"content\":\"" t "\"},\"done\":false}\n"
#define O_DONE "{\"model\":\"llama3\",\"created_at\":\"2024-01-01T00:00:00Z\",\"message\":{\"role\":" \
    "\"assistant\",\"content\":\"\"},\"done_reason\":\"stop\",\"done\":true,\"total_duration\":5," \
    "\"prompt_eval_count\":6,\"eval_count\":3}"

static void test_stream (void **state)
{
    h_run_t r;
    //  The last line has no newline: it still counts at the end of the body
    h_every_split (&OLL, O_LINE ("Hello") "\r\n" O_LINE (" big") O_LINE ("") O_LINE (" w\\u00f6rld") O_DONE, &r);
    assert_int_equal (r.rc, 0);
    assert_true (r.complete);
    assert_int_equal (r.chunks, 4);
    assert_non_null (strstr (r.chunks_log,
        "{\"id\":\"chatcmpl-ollama-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
        "\"model\":\"llama3\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":"
        "\"Hello\"},\"logprobs\":null,\"finish_reason\":null}]}\n"));
    assert_non_null (strstr (r.chunks_log, "\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n"));
    assert_int_equal (r.usage.prompt_tokens, 6);
    assert_int_equal (r.usage.completion_tokens, 3);
    cJSON *root = cJSON_Parse (r.result);
    assert_string_equal (GET (root, "id")->valuestring, "chatcmpl-ollama-1");
    cJSON *msg = GET (cJSON_GetArrayItem (GET (root, "choices"), 0), "message");
    assert_string_equal (GET (msg, "content")->valuestring, "Hello big w\xc3\xb6rld");
    cJSON_Delete (root);
    h_free (&r);
    //  Tool calls arrive whole
    h_every_split (&OLL, "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":"
                   "[{\"function\":{\"name\":\"f\",\"arguments\":{\"x\":1}}}]},\"done\":false}\n"
                   "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,"
                   "\"done_reason\":\"stop\"}\n", &r);
    assert_true (r.complete);
    assert_int_equal (r.chunks, 2);
    assert_non_null (strstr (r.chunks_log, "\"tool_calls\":[{\"index\":0,\"id\":\"call_0\",\"type\":"
                                           "\"function\",\"function\":{\"name\":\"f\",\"arguments\":"
                                           "\"{\\\"x\\\":1}\"}}]"));
    assert_non_null (strstr (r.chunks_log, "\"finish_reason\":\"tool_calls\""));
    h_free (&r);
}

static void test_stream_failures (void **state)
{
    h_run_t r;
    h_every_split (&OLL, O_LINE ("Hi") "{\"error\":\"out of memory\"}\n", &r);
    assert_true (r.failed);
    assert_int_equal (r.chunks, 1);
    assert_string_equal (r.reason, "upstream stream error: out of memory");
    h_free (&r);
    h_every_split (&OLL, O_LINE ("Hi") O_LINE ("there"), &r);
    assert_false (r.complete);          // cut: no done:true
    assert_false (r.failed);
    assert_int_equal (r.chunks, 2);
    h_free (&r);
    h_every_split (&OLL, O_LINE ("Hi") "data: {\"x\":1}\n", &r);
    assert_true (r.failed);
    assert_non_null (strstr (r.reason, "malformed NDJSON line: 'data: {\"x\":1}'"));
    h_free (&r);
    h_every_split (&OLL, O_LINE ("Hi") "{\"model\":\"m\",\"message\":{\"content\":\"tr", &r);
    assert_true (r.failed);             // a cut mid-line at the end is garbled
    h_free (&r);
    //  Bytes after done:true are ignored
    h_every_split (&OLL, O_DONE "\n<junk>\n", &r);
    assert_true (r.complete);
    h_free (&r);
    h_cfg_t small = OLL;
    small.max = 64;
    h_every_split (&small, O_LINE ("Hi"), &r);
    assert_string_equal (r.reason, "NDJSON line longer than 64 bytes");
    h_free (&r);
}

int main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_request),
        cmocka_unit_test (test_response),
        cmocka_unit_test (test_stream),
        cmocka_unit_test (test_stream_failures),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
