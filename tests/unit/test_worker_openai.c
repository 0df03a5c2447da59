// Unit tests of the worker's openai provider pure parts: the JSON member scanner,
// request rewriting, reply classification (good, garbled, error, oversize) and snippets.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wk_json.h"
#include "wk_openai.h"
#include "wk_upstream.h"

//  ---- scanner

static void test_members_basic (void **state)
{
    const char *js = " { \"a\" : 1 , \"b\":[1,{\"x\":\"}\"}], \"c\":{\"d\":null} } ";
    wk_json_member_t m [8];
    int n = wk_json_members (js, strlen (js), m, 8);
    assert_int_equal (n, 3);
    assert_true (wk_json_key_is (js, &m [0], "a"));
    assert_true (wk_json_key_is (js, &m [1], "b"));
    assert_false (wk_json_key_is (js, &m [1], "bb"));
    assert_int_equal (m [1].val_len, strlen ("[1,{\"x\":\"}\"}]"));
    assert_memory_equal (js + m [1].val_off, "[1,{\"x\":\"}\"}]", m [1].val_len);
    assert_memory_equal (js + m [2].val_off, "{\"d\":null}", m [2].val_len);
    assert_int_equal (wk_json_members ("{}", 2, m, 8), 0);
}

static void test_members_malformed (void **state)
{
    const char *bad [] = {
        "", "[]", "\"x\"", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{\"a\":1} x",
        "{\"a\":tru}", "{\"a\":\"\\q\"}", "{\"a\":\"\\u12\"}", "{\"a\":[1,]}", "{a:1}",
        "{\"a\":01x}", "{\"a\":-}", "{\"a\":1.}", "{\"a\":\"x\ny\"}", "{\"a\":1 \"b\":2}",
    };
    wk_json_member_t m [8];
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        if (wk_json_members (bad [i], strlen (bad [i]), m, 8) != -1)
            fail_msg ("accepted malformed: %s", bad [i]);
    }
    //  Truncation anywhere never reads past the end
    const char *js = "{\"a\":[1,2,{\"b\":\"c\\\"d\"}],\"e\":-1.5e+3,\"f\":true}";
    for (size_t cut = 0; cut < strlen (js); cut++) {
        char *copy = malloc (cut ? cut : 1);
        memcpy (copy, js, cut);
        assert_int_equal (wk_json_members (copy, cut, m, 8), -1);
        free (copy);
    }
    assert_int_equal (wk_json_members (js, strlen (js), m, 8), 3);
    assert_int_equal (wk_json_members (js, strlen (js), m, 2), -1);     // too many members
}

static void test_members_depth_limit (void **state)
{
    char deep [400];
    size_t n = 0;
    n += snprintf (deep + n, sizeof deep - n, "{\"a\":");
    for (int i = 0; i < 100; i++)
        deep [n++] = '[';
    for (int i = 0; i < 100; i++)
        deep [n++] = ']';
    deep [n++] = '}';
    wk_json_member_t m [2];
    assert_int_equal (wk_json_members (deep, n, m, 2), -1);
}

static void test_put_string_escapes (void **state)
{
    buf_t b;
    buf_init (&b, 1024);
    assert_int_equal (buf_put_json_str (&b, "a\"b\\c\nd\te\x01"), 0);
    assert_string_equal (b.data, "\"a\\\"b\\\\c\\nd\\te\\u0001\"");
    buf_free (&b);
}

//  ---- rewriting

static cJSON *s_rewrite (const char *req, const char *upstream)
{
    buf_t out;
    buf_init (&out, 0);
    const char *err = NULL;
    if (wk_openai_rewrite (req, strlen (req), upstream, false, &out, &err)) {
        buf_free (&out);
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength (out.data, out.len);
    buf_free (&out);
    return root;
}

static void test_rewrite_replaces_model_keeps_rest (void **state)
{
    const char *tools = "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
                        "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}]";
    const char *rf = "{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"schema\":{}}}";
    char req [2048];
    snprintf (req, sizeof req,
              "{\"model\":\"gpt-fast\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
              "\"tools\":%s,\"response_format\":%s,\"temperature\":0.25,\"seed\":12345678901234567890,"
              "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"aigw\":{\"policy\":\"race\"}}",
              tools, rf);
    buf_t out;
    buf_init (&out, 0);
    const char *err = NULL;
    assert_int_equal (wk_openai_rewrite (req, strlen (req), "gpt-4o-2024", false, &out, &err), 0);
    //  Values other than model/stream are copied byte for byte
    assert_non_null (strstr (out.data, tools));
    assert_non_null (strstr (out.data, rf));
    assert_non_null (strstr (out.data, "\"seed\":12345678901234567890"));
    assert_null (strstr (out.data, "stream_options"));
    assert_null (strstr (out.data, "aigw"));
    cJSON *root = cJSON_ParseWithLength (out.data, out.len);
    assert_non_null (root);
    assert_string_equal (cJSON_GetStringValue (cJSON_GetObjectItem (root, "model")), "gpt-4o-2024");
    assert_true (cJSON_IsFalse (cJSON_GetObjectItem (root, "stream")));
    assert_int_equal (cJSON_GetArraySize (cJSON_GetObjectItem (root, "messages")), 1);
    assert_true (cJSON_GetNumberValue (cJSON_GetObjectItem (root, "temperature")) == 0.25);
    cJSON_Delete (root);
    buf_free (&out);
}

static void test_rewrite_adds_missing_model (void **state)
{
    cJSON *root = s_rewrite ("{\"messages\":[]}", "m\"q");
    assert_non_null (root);
    assert_string_equal (cJSON_GetStringValue (cJSON_GetObjectItem (root, "model")), "m\"q");
    assert_null (cJSON_GetObjectItem (root, "stream"));
    cJSON_Delete (root);
    root = s_rewrite ("{}", "m");
    assert_non_null (root);
    assert_string_equal (cJSON_GetStringValue (cJSON_GetObjectItem (root, "model")), "m");
    cJSON_Delete (root);
}

static void test_rewrite_rejects_non_object (void **state)
{
    const char *bad [] = { "", "[]", "{\"model\":", "null", "{\"a\":1}}" };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        buf_t out;
        buf_init (&out, 0);
        const char *err = NULL;
        assert_int_equal (wk_openai_rewrite (bad [i], strlen (bad [i]), "m", false, &out, &err), -1);
        assert_non_null (err);
        buf_free (&out);
    }
}

//  ---- reply classification

static void test_parse_good (void **state)
{
    const char *body = "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"choices\":["
                       "{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"hi\"},"
                       "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":12,"
                       "\"completion_tokens\":3,\"total_tokens\":15}}";
    wk_errbody_reply_t r;
    assert_int_equal (wk_openai_parse (200, body, strlen (body), &r), 0);
    assert_int_equal (r.code, AIGW__ERROR_CODE__ERR_NONE);
    assert_true (r.has_usage);
    assert_int_equal (r.prompt_tokens, 12);
    assert_int_equal (r.completion_tokens, 3);
    const char *nousage = "{\"choices\":[]}";
    assert_int_equal (wk_openai_parse (201, nousage, strlen (nousage), &r), 0);
    assert_false (r.has_usage);
}

static void test_parse_garbled (void **state)
{
    const char *bodies [] = {
        "<html>502 oops</html>", "{\"choices\":{}}", "[1,2]", "", "{\"choices\":[", "{\"id\":1}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies [0]; i++) {
        wk_errbody_reply_t r;
        assert_int_equal (wk_openai_parse (200, bodies [i], strlen (bodies [i]), &r), -1);
        assert_int_equal (r.code, AIGW__ERROR_CODE__ERR_UPSTREAM);
        assert_int_equal (r.status, 200);
        assert_non_null (strstr (r.message, "upstream returned malformed JSON"));
    }
}

static void test_parse_error_bodies (void **state)
{
    wk_errbody_reply_t r;
    const char *e1 = "{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"rate_limit_error\"}}";
    assert_int_equal (wk_openai_parse (429, e1, strlen (e1), &r), -1);
    assert_int_equal (r.code, AIGW__ERROR_CODE__ERR_RATE_LIMITED);
    assert_int_equal (r.status, 429);
    assert_string_equal (r.message, "upstream HTTP 429: Rate limit reached");
    assert_string_equal (r.upstream_code, "rate_limit_error");

    const char *e2 = "{\"error\":\"model not found\"}";
    assert_int_equal (wk_openai_parse (404, e2, strlen (e2), &r), -1);
    assert_int_equal (r.code, AIGW__ERROR_CODE__ERR_BAD_REQUEST);
    assert_string_equal (r.message, "upstream HTTP 404: model not found");
    assert_string_equal (r.upstream_code, "");

    const char *e3 = "Bad\ngateway\r\n";
    assert_int_equal (wk_openai_parse (502, e3, strlen (e3), &r), -1);
    assert_string_equal (r.message, "upstream HTTP 502: Bad gateway  ");

    assert_int_equal (wk_openai_parse (500, "", 0, &r), -1);
    assert_string_equal (r.message, "upstream HTTP 500: (empty body)");

    //  A long message is cut to 200 characters
    char big [2048];
    int n = snprintf (big, sizeof big, "{\"error\":{\"message\":\"");
    for (int i = 0; i < 500; i++)
        big [n++] = 'x';
    n += snprintf (big + n, sizeof big - n, "\"}}");
    assert_int_equal (wk_openai_parse (500, big, (size_t) n, &r), -1);
    assert_int_equal (strlen (r.message), strlen ("upstream HTTP 500: ") + 200 + 3);
}

static void test_status_mapping (void **state)
{
    const long bad [] = { 400, 404, 413, 422 };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++)
        assert_int_equal (wk_errbody_status_code (bad [i]), AIGW__ERROR_CODE__ERR_BAD_REQUEST);
    assert_int_equal (wk_errbody_status_code (401), AIGW__ERROR_CODE__ERR_UPSTREAM_AUTH);
    assert_int_equal (wk_errbody_status_code (403), AIGW__ERROR_CODE__ERR_UPSTREAM_AUTH);
    assert_int_equal (wk_errbody_status_code (429), AIGW__ERROR_CODE__ERR_RATE_LIMITED);
    const long other [] = { 0, 200, 304, 405, 408, 409, 418, 500, 502, 503, 504, 599, 999 };
    for (size_t i = 0; i < sizeof other / sizeof other [0]; i++)
        assert_int_equal (wk_errbody_status_code (other [i]), AIGW__ERROR_CODE__ERR_UPSTREAM);
}

static void test_error_codes (void **state)
{
    wk_errbody_reply_t r;
    //  OpenAI: code, else type when code is null
    const char *o1 = "{\"error\":{\"message\":\"too long\",\"type\":\"invalid_request_error\","
                     "\"code\":\"context_length_exceeded\",\"param\":null}}";
    assert_int_equal (wk_openai_parse (400, o1, strlen (o1), &r), -1);
    assert_int_equal (r.code, AIGW__ERROR_CODE__ERR_BAD_REQUEST);
    assert_string_equal (r.upstream_code, "context_length_exceeded");
    assert_string_equal (r.message, "upstream HTTP 400: too long");
    const char *o2 = "{\"error\":{\"message\":\"bad key\",\"type\":\"invalid_api_key\",\"code\":null}}";
    assert_int_equal (wk_openai_parse (401, o2, strlen (o2), &r), -1);
    assert_int_equal (r.code, AIGW__ERROR_CODE__ERR_UPSTREAM_AUTH);
    assert_string_equal (r.upstream_code, "invalid_api_key");
    const char *o3 = "{\"error\":{\"message\":\"x\",\"code\":503}}";
    assert_int_equal (wk_openai_parse (503, o3, strlen (o3), &r), -1);
    assert_string_equal (r.upstream_code, "503");
    //  Anthropic: error.type
    const char *a1 = "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\","
                     "\"message\":\"invalid x-api-key\"}}";
    assert_int_equal (wk_openai_parse (403, a1, strlen (a1), &r), -1);
    assert_int_equal (r.code, AIGW__ERROR_CODE__ERR_UPSTREAM_AUTH);
    assert_string_equal (r.upstream_code, "authentication_error");
    assert_string_equal (r.message, "upstream HTTP 403: invalid x-api-key");
    //  Ollama: a string, no code
    const char *l1 = "{\"error\":\"model 'x' not found\"}";
    assert_int_equal (wk_openai_parse (404, l1, strlen (l1), &r), -1);
    assert_string_equal (r.upstream_code, "");
    //  Outside input: non-printable bytes replaced, long codes cut to 63
    char big [512];
    int n = snprintf (big, sizeof big, "{\"error\":{\"code\":\"a\\u0001b\\n\u00e9");
    for (int i = 0; i < 100; i++)
        big [n++] = 'z';
    n += snprintf (big + n, sizeof big - (size_t) n, "\"}}");
    assert_int_equal (wk_openai_parse (500, big, (size_t) n, &r), -1);
    assert_int_equal (r.code, AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_int_equal (strlen (r.upstream_code), 63);
    assert_memory_equal (r.upstream_code, "a_b___zzz", 9);
    //  Code of the wrong type, error not an object, garbage
    const char *g [] = { "{\"error\":{\"code\":[1],\"type\":7}}", "{\"error\":[\"x\"]}", "<html>", "" };
    for (size_t i = 0; i < sizeof g / sizeof g [0]; i++) {
        assert_int_equal (wk_openai_parse (502, g [i], strlen (g [i]), &r), -1);
        assert_string_equal (r.upstream_code, "");
    }
}

static void test_too_big (void **state)
{
    wk_errbody_reply_t r;
    wk_errbody_too_big (1024, 200, &r);
    assert_int_equal (r.code, AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_string_equal (r.message, "upstream response larger than 1024 bytes");
    //  The accumulating buffer refuses to pass its cap
    buf_t b;
    buf_init (&b, 10);
    assert_int_equal (buf_append (&b, "0123456789", 10), 0);
    assert_int_equal (buf_append (&b, "x", 1), -1);
    assert_int_equal (b.len, 10);
    buf_free (&b);
    buf_free (&b);
}

static void test_snippet_utf8 (void **state)
{
    char out [32];
    //  "é" is two bytes; cutting after 3 bytes would split the second one
    const char *s = "a\xc3\xa9\xc3\xa9z";
    wk_errbody_snippet (out, sizeof out, s, strlen (s), 4);
    assert_string_equal (out, "a\xc3\xa9...");
    wk_errbody_snippet (out, sizeof out, s, strlen (s), 100);
    assert_string_equal (out, s);
    wk_errbody_snippet (out, 8, "0123456789abcdef", 16, 100);
    assert_int_equal (strlen (out), 7);
}

int main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_members_basic),
        cmocka_unit_test (test_members_malformed),
        cmocka_unit_test (test_members_depth_limit),
        cmocka_unit_test (test_put_string_escapes),
        cmocka_unit_test (test_rewrite_replaces_model_keeps_rest),
        cmocka_unit_test (test_rewrite_adds_missing_model),
        cmocka_unit_test (test_rewrite_rejects_non_object),
        cmocka_unit_test (test_parse_good),
        cmocka_unit_test (test_parse_garbled),
        cmocka_unit_test (test_parse_error_bodies),
        cmocka_unit_test (test_status_mapping),
        cmocka_unit_test (test_error_codes),
        cmocka_unit_test (test_too_big),
        cmocka_unit_test (test_snippet_utf8),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
