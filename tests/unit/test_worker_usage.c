// Worker usage estimates (wk_usage.c): text bytes / 4, the request's and reply's text,
// and which counts of an attempt are reported, estimated or zero.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "wk_usage.h"

static void test_tokens (void **state)
{
    assert_int_equal (wk_usage_tokens (0), 0);
    assert_int_equal (wk_usage_tokens (1), 1);
    assert_int_equal (wk_usage_tokens (4), 1);
    assert_int_equal (wk_usage_tokens (5), 2);
    assert_int_equal (wk_usage_tokens (UINT64_MAX), UINT32_MAX);
}

static void test_prompt_estimate (void **state)
{
    //  "hello" (5) + "abc" (3) + "de" (2) = 10 bytes: 3 tokens; images do not count
    const char *req = "{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"},"
                      "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"abc\"},"
                      "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:xyz\"}},"
                      "{\"type\":\"text\",\"text\":\"de\"}]},{\"role\":\"assistant\"}]}";
    assert_int_equal (wk_usage_prompt_estimate (req, strlen (req)), 3);
    assert_int_equal (wk_usage_prompt_estimate ("[1,2]", 5), 0);
    assert_int_equal (wk_usage_prompt_estimate ("{\"messages\":", 12), 0);
    assert_int_equal (wk_usage_prompt_estimate ("{\"messages\":7}", 14), 0);
}

static void test_completion_estimate (void **state)
{
    //  "hi there" (8) + arguments "{\"a\":1}" (7) = 15 bytes: 4 tokens
    const char *json = "{\"choices\":[{\"message\":{\"content\":\"hi there\",\"tool_calls\":"
                       "[{\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}}]}}]}";
    assert_int_equal (wk_usage_completion_estimate (json, strlen (json)), 4);
    assert_int_equal (wk_usage_completion_estimate ("garbage", 7), 0);
}

static void test_fill (void **state)
{
    wk_attempt_t a;
    memset (&a, 0, sizeof a);
    Aigw__Usage u;
    //  Never reached the model: nothing, and that is not an estimate
    a.prompt_est = 9;
    wk_usage_fill (&a, NULL, 0, &u);
    assert_true (u.has_prompt_tokens && u.has_completion_tokens);
    assert_int_equal (u.prompt_tokens + u.completion_tokens, 0);
    assert_false (u.has_estimated);
    //  Reached, nothing reported: the estimate, no completion yet
    a.reached = true;
    wk_usage_fill (&a, NULL, 0, &u);
    assert_int_equal (u.prompt_tokens, 9);
    assert_int_equal (u.completion_tokens, 0);
    assert_true (u.has_estimated && u.estimated);
    //  Streaming: 3 CHUNKs sent; a stale report (1 output token) loses to them
    a.stream = true;
    a.chunk_seq = 3;
    a.used = (wk_usage_t) { .has = true, .prompt_tokens = 12, .completion_tokens = 1 };
    wk_usage_fill (&a, NULL, 0, &u);
    assert_int_equal (u.prompt_tokens, 12);
    assert_int_equal (u.completion_tokens, 3);
    assert_true (u.estimated);
    //  A report that covers the CHUNKs is exact
    a.used.completion_tokens = 5;
    wk_usage_fill (&a, NULL, 0, &u);
    assert_int_equal (u.completion_tokens, 5);
    assert_false (u.has_estimated);
    //  RESULT: the upstream's final count stands even below the CHUNK count
    a.used.completion_tokens = 2;
    wk_usage_fill (&a, "{}", 2, &u);
    assert_int_equal (u.completion_tokens, 2);
    assert_false (u.has_estimated);
    //  RESULT with no report: CHUNKs for a stream, the reply text otherwise
    a.used = (wk_usage_t) { 0 };
    wk_usage_fill (&a, "{}", 2, &u);
    assert_int_equal (u.prompt_tokens, 9);
    assert_int_equal (u.completion_tokens, 3);
    assert_true (u.estimated);
    a.stream = false;
    a.chunk_seq = 0;
    const char *json = "{\"choices\":[{\"message\":{\"content\":\"12345678\"}}]}";
    wk_usage_fill (&a, json, strlen (json), &u);
    assert_int_equal (u.completion_tokens, 2);
    assert_true (u.estimated);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_tokens),
        cmocka_unit_test (test_prompt_estimate),
        cmocka_unit_test (test_completion_estimate),
        cmocka_unit_test (test_fill),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
