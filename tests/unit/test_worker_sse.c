// Unit tests of the worker's stream framing parsers (SSE and NDJSON): every split point
// gives the same events, line ends, comments, garbled input, and the line/event caps.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wk_ndjson.h"
#include "wk_sse.h"

//  Events are recorded as "event|data\x1e" into a buffer, to compare runs.
typedef struct {
    buf_t log;
    int count;
    int stop_at;                // return 7 at this event (1-based), 0 = never
} rec_t;

static void rec_init (rec_t *r)
{
    memset (r, 0, sizeof *r);
    buf_init (&r->log, 1 << 20);
}

static int rec_any (void *arg, const char *event, const char *data, size_t len)
{
    rec_t *r = arg;
    buf_puts (&r->log, event);
    buf_puts (&r->log, "|");
    buf_append (&r->log, data, len);
    buf_puts (&r->log, "\x1e");
    return ++r->count == r->stop_at ? 7 : 0;
}

static int rec_sse (void *arg, const char *event, const char *data, size_t len)
{
    assert_int_equal (data [len], 0);           // SSE data is NUL-terminated
    return rec_any (arg, event, data, len);
}

//  NDJSON lines are not NUL-terminated (they point into the fed bytes)
static int rec_line (void *arg, const char *line, size_t len)
{
    return rec_any (arg, "", line, len);
}

//  Feed text in two pieces split at i; returns the feed result.
static int s_sse_split (const char *text, size_t n, size_t i, size_t max_line, size_t max_event,
                        rec_t *r)
{
    wk_sse_t p;
    wk_sse_init (&p, max_line, max_event);
    int rc = wk_sse_feed (&p, text, i, rec_sse, r);
    if (rc == 0)
        rc = wk_sse_feed (&p, text + i, n - i, rec_sse, r);
    wk_sse_free (&p);
    return rc;
}

//  Every split point and a byte-at-a-time feed give the same events as one feed.
static void s_sse_every_split (const char *text, const char *want)
{
    size_t n = strlen (text);
    rec_t whole;
    rec_init (&whole);
    assert_int_equal (s_sse_split (text, n, n, 4096, 4096, &whole), 0);
    assert_string_equal (whole.log.data ? whole.log.data : "", want);
    for (size_t i = 0; i <= n; i++) {
        rec_t r;
        rec_init (&r);
        assert_int_equal (s_sse_split (text, n, i, 4096, 4096, &r), 0);
        if (strcmp (r.log.data ? r.log.data : "", want))
            fail_msg ("split at %zu: got '%s'", i, r.log.data);
        buf_free (&r.log);
    }
    wk_sse_t p;
    wk_sse_init (&p, 4096, 4096);
    rec_t r;
    rec_init (&r);
    for (size_t i = 0; i < n; i++)
        assert_int_equal (wk_sse_feed (&p, text + i, 1, rec_sse, &r), 0);
    assert_string_equal (r.log.data ? r.log.data : "", want);
    assert_false (wk_sse_pending (&p));
    wk_sse_free (&p);
    buf_free (&r.log);
    buf_free (&whole.log);
}

static void test_sse_fields_and_line_ends (void **state)
{
    s_sse_every_split (
        ": keep-alive\n\n"
        "data: a\n\n"
        "data:b\r\n\r\n"
        "event: x\ndata: 1\ndata:  2\n\n"
        "id: 5\nretry: 10\ndata: {\"k\":\"v: w\"}\n\n"
        "event: ignored-no-data\n\n"
        "data\n\n"
        "data: cr\r\r"
        "data: crlf\r\n\r\n"
        "data: [DONE]\n\n",
        "|a\x1e" "|b\x1e" "x|1\n 2\x1e" "|{\"k\":\"v: w\"}\x1e" "|\x1e" "|cr\x1e" "|crlf\x1e"
        "|[DONE]\x1e");
}

static void test_sse_bom_and_unfinished (void **state)
{
    s_sse_every_split ("\xEF\xBB\xBF" "data: x\n\n", "|x\x1e");
    //  An event without its blank line is not dispatched; it stays pending
    wk_sse_t p;
    wk_sse_init (&p, 64, 64);
    rec_t r;
    rec_init (&r);
    const char *cut = "data: one\n\ndata: tw";
    assert_int_equal (wk_sse_feed (&p, cut, strlen (cut), rec_sse, &r), 0);
    assert_int_equal (r.count, 1);
    assert_true (wk_sse_pending (&p));
    wk_sse_free (&p);
    buf_free (&r.log);
}

static void test_sse_garbled (void **state)
{
    const char *bad [] = {
        "<html>oops</html>\n",
        "{\"id\":\"chatcmpl\"}\n\n",
        "data: ok\n\nHTTP/1.1 200 OK\r\n",
        "datum: x\n",
        "event: 0123456789012345678901234567890123456789012345678901234567890123456789\n",
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad [0]; k++) {
        size_t n = strlen (bad [k]);
        for (size_t i = 0; i <= n; i++) {
            rec_t r;
            rec_init (&r);
            assert_int_equal (s_sse_split (bad [k], n, i, 4096, 4096, &r), WK_SSE_BAD);
            buf_free (&r.log);
        }
    }
    wk_sse_t p;
    wk_sse_init (&p, 64, 64);
    rec_t r;
    rec_init (&r);
    assert_int_equal (wk_sse_feed (&p, bad [0], strlen (bad [0]), rec_sse, &r), WK_SSE_BAD);
    assert_non_null (strstr (p.error, "malformed SSE line: '<html>oops</html>'"));
    wk_sse_free (&p);
    buf_free (&r.log);
}

static void test_sse_caps (void **state)
{
    char line [128];
    snprintf (line, sizeof line, "data: %s\n\n", "0123456789abcdefghij");   // 26-byte line
    size_t n = strlen (line);
    for (size_t i = 0; i <= n; i++) {
        rec_t r;
        rec_init (&r);
        assert_int_equal (s_sse_split (line, n, i, 16, 4096, &r), WK_SSE_BAD);
        assert_int_equal (r.count, 0);
        buf_free (&r.log);
    }
    //  An endless line is refused as soon as it passes the cap
    wk_sse_t p;
    wk_sse_init (&p, 16, 4096);
    rec_t r;
    rec_init (&r);
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++)
        rc = wk_sse_feed (&p, "xxxx", 4, rec_sse, &r);
    assert_int_equal (rc, WK_SSE_BAD);
    assert_string_equal (p.error, "SSE line longer than 16 bytes");
    wk_sse_free (&p);
    //  Many short data lines that add up past the event cap
    wk_sse_init (&p, 64, 20);
    const char *many = "data: 12345\ndata: 12345\ndata: 12345\ndata: 12345\n\n";
    assert_int_equal (wk_sse_feed (&p, many, strlen (many), rec_sse, &r), WK_SSE_BAD);
    assert_string_equal (p.error, "SSE event larger than 20 bytes");
    wk_sse_free (&p);
    buf_free (&r.log);
}

static void test_sse_handler_stops (void **state)
{
    const char *text = "data: 1\n\ndata: 2\n\ngarbage after the stop\n";
    rec_t r;
    rec_init (&r);
    r.stop_at = 2;
    assert_int_equal (s_sse_split (text, strlen (text), strlen (text), 64, 64, &r), 7);
    assert_string_equal (r.log.data, "|1\x1e|2\x1e");
    buf_free (&r.log);
}

//  ---- NDJSON

static int s_nd_split (const char *text, size_t n, size_t i, size_t max_line, rec_t *r)
{
    wk_ndjson_t p;
    wk_ndjson_init (&p, max_line);
    int rc = wk_ndjson_feed (&p, text, i, rec_line, r);
    if (rc == 0)
        rc = wk_ndjson_feed (&p, text + i, n - i, rec_line, r);
    if (rc == 0)
        rc = wk_ndjson_finish (&p, rec_line, r);
    wk_ndjson_free (&p);
    return rc;
}

static void test_ndjson_every_split (void **state)
{
    const char *text = "{\"a\":1}\n\n  \r\n{\"b\":\"x y\"}\r\n{\"c\":3}";
    const char *want = "|{\"a\":1}\x1e|{\"b\":\"x y\"}\x1e|{\"c\":3}\x1e";
    size_t n = strlen (text);
    for (size_t i = 0; i <= n; i++) {
        rec_t r;
        rec_init (&r);
        assert_int_equal (s_nd_split (text, n, i, 64, &r), 0);
        if (strcmp (r.log.data, want))
            fail_msg ("split at %zu: got '%s'", i, r.log.data);
        buf_free (&r.log);
    }
}

static void test_ndjson_caps (void **state)
{
    const char *text = "{\"a\":\"0123456789012345678901234567890\"}\n";
    size_t n = strlen (text);
    for (size_t i = 0; i <= n; i++) {
        rec_t r;
        rec_init (&r);
        assert_int_equal (s_nd_split (text, n, i, 16, &r), WK_NDJSON_BAD);
        assert_int_equal (r.count, 0);
        buf_free (&r.log);
    }
    wk_ndjson_t p;
    wk_ndjson_init (&p, 16);
    rec_t r;
    rec_init (&r);
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++)
        rc = wk_ndjson_feed (&p, "yyyy", 4, rec_line, &r);
    assert_int_equal (rc, WK_NDJSON_BAD);
    assert_string_equal (p.error, "NDJSON line longer than 16 bytes");
    wk_ndjson_free (&p);
    buf_free (&r.log);
}

int main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_sse_fields_and_line_ends),
        cmocka_unit_test (test_sse_bom_and_unfinished),
        cmocka_unit_test (test_sse_garbled),
        cmocka_unit_test (test_sse_caps),
        cmocka_unit_test (test_sse_handler_stops),
        cmocka_unit_test (test_ndjson_every_split),
        cmocka_unit_test (test_ndjson_caps),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
