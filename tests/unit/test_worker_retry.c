// Retry-After capture (wk_retry.c): delta-seconds, HTTP-dates, retry-after-ms, header
// lines in any case, precedence, caps, and junk that must be ignored without a crash.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "wk_retry.h"

//  Sun, 06 Nov 1994 08:49:37 GMT
#define NOW 784111777

static bool s_after (const char *v, uint32_t *ms)
{
    return wk_retry_after_value (v, strlen (v), NOW, ms);
}

static void test_seconds (void **state)
{
    uint32_t ms = 7;
    assert_true (s_after ("2", &ms));
    assert_int_equal (ms, 2000);
    assert_true (s_after (" 1.5\r\n", &ms));
    assert_int_equal (ms, 1500);
    assert_true (s_after ("0", &ms));
    assert_int_equal (ms, 0);
    assert_true (s_after ("0.0015", &ms));
    assert_int_equal (ms, 1);
    //  Capped at 24 h, however many digits
    assert_true (s_after ("86401", &ms));
    assert_int_equal (ms, WK_RETRY_MAX_MS);
    assert_true (s_after ("99999999999999999999999999999999999999", &ms));
    assert_int_equal (ms, WK_RETRY_MAX_MS);
}

static void test_dates (void **state)
{
    uint32_t ms = 7;
    assert_true (s_after ("Sun, 06 Nov 1994 08:49:40 GMT", &ms));
    assert_int_equal (ms, 3000);
    //  In the past: retry now
    assert_true (s_after ("Sun, 06 Nov 1994 08:00:00 GMT", &ms));
    assert_int_equal (ms, 0);
    //  Far away: capped
    assert_true (s_after ("Fri, 01 Jan 2100 00:00:00 GMT", &ms));
    assert_int_equal (ms, WK_RETRY_MAX_MS);
}

static void test_junk (void **state)
{
    const char *junk [] = {
        "", "   ", "-1", "+3", "1e3", "2s", "1.", ".5", "1.5.2", "0x10", "3 4", "soon",
        "Sun, 06 Nov 1994 08:49:40 GMT and then some more text to go past the limit",
        "Sun\x01, 06 Nov 1994", "\xff\xfe",
    };
    for (size_t i = 0; i < sizeof junk / sizeof junk [0]; i++) {
        uint32_t ms = 42;
        assert_false (s_after (junk [i], &ms));
        assert_int_equal (ms, 42);
    }
    uint32_t ms = 42;
    assert_false (wk_retry_ms_value ("abc", 3, &ms));
    assert_false (wk_retry_ms_value ("-5", 2, &ms));
    assert_false (wk_retry_after_value (NULL, 0, NOW, &ms));
    assert_int_equal (ms, 42);
}

static void test_ms_value (void **state)
{
    uint32_t ms = 0;
    assert_true (wk_retry_ms_value ("250", 3, &ms));
    assert_int_equal (ms, 250);
    assert_true (wk_retry_ms_value (" 12.9 ", 6, &ms));
    assert_int_equal (ms, 12);
    assert_true (wk_retry_ms_value ("999999999999", 12, &ms));
    assert_int_equal (ms, WK_RETRY_MAX_MS);
}

static void s_line (wk_retry_t *r, const char *line)
{
    wk_retry_header (r, line, strlen (line), NOW);
}

static void test_header_lines (void **state)
{
    wk_retry_t r = { 0 };
    s_line (&r, "HTTP/1.1 429 Too Many Requests\r\n");
    s_line (&r, "Content-Type: application/json\r\n");
    assert_false (r.has);
    s_line (&r, "retry-AFTER: 3\r\n");
    assert_true (r.has);
    assert_int_equal (r.ms, 3000);
    //  retry-after-ms wins, whichever comes first
    s_line (&r, "Retry-After-Ms: 1250\r\n");
    assert_int_equal (r.ms, 1250);
    s_line (&r, "Retry-After: 9\r\n");
    assert_int_equal (r.ms, 1250);
    //  Junk does not clear a good value
    s_line (&r, "retry-after-ms: lots\r\n");
    assert_int_equal (r.ms, 1250);
    //  A new response (after a 1xx or a redirect) starts over
    s_line (&r, "HTTP/1.1 503 Unavailable\r\n");
    assert_false (r.has);
    s_line (&r, "Retry-After: soon\r\n");
    s_line (&r, "Retry-After\r\n");
    s_line (&r, "Retry-After");
    s_line (&r, "Retry-Afterx: 5\r\n");
    s_line (&r, "\r\n");
    assert_false (r.has);
    s_line (&r, "Retry-After:Sun, 06 Nov 1994 08:49:38 GMT\r\n");
    assert_true (r.has);
    assert_int_equal (r.ms, 1000);
}

//  Raw bytes, unterminated, of every length: never read past len.
static void test_header_fuzz (void **state)
{
    const char *src = "retry-after-ms: 99999999999999999999.99999\r\nretry-after: Sun, 06 Nov";
    size_t n = strlen (src);
    for (size_t len = 0; len <= n; len++) {
        char *copy = test_malloc (len ? len : 1);
        memcpy (copy, src, len);
        wk_retry_t r = { 0 };
        wk_retry_header (&r, copy, len, NOW);
        wk_retry_header (&r, copy + (len > 17 ? 17 : len), len - (len > 17 ? 17 : len), NOW);
        assert_true (r.ms <= WK_RETRY_MAX_MS);
        test_free (copy);
    }
    unsigned char noise [256];
    for (size_t i = 0; i < sizeof noise; i++)
        noise [i] = (unsigned char) (i * 37 + 11);
    wk_retry_t r = { 0 };
    wk_retry_header (&r, (const char *) noise, sizeof noise, NOW);
    assert_false (r.has);
}

int main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_seconds),
        cmocka_unit_test (test_dates),
        cmocka_unit_test (test_junk),
        cmocka_unit_test (test_ms_value),
        cmocka_unit_test (test_header_lines),
        cmocka_unit_test (test_header_fuzz),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
