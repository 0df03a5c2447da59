// Unit tests for common/buf: the bounded buffer (limit, sticky refusal, take, reset,
// printf past the small stack buffer) and the JSON string escaper.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <cJSON.h>

#include "buf.h"

static void test_limit_is_hard_and_sticky (void **state)
{
    (void) state;
    buf_t b;
    buf_init (&b, 8);
    assert_null (b.data);
    assert_int_equal (buf_puts (&b, "abcde"), 0);
    assert_int_equal (buf_append (&b, "fgh", 3), 0);
    assert_int_equal (b.len, 8);
    assert_string_equal (b.data, "abcdefgh");
    //  Past the limit: refused, unchanged, and every later append refused too
    assert_int_equal (buf_putc (&b, 'x'), -1);
    assert_true (b.toobig);
    assert_string_equal (b.data, "abcdefgh");
    buf_reset (&b);
    assert_false (b.toobig);
    assert_int_equal (b.len, 0);
    assert_string_equal (b.data, "");
    assert_int_equal (buf_puts (&b, "abcdefghi"), -1);     // one too many
    assert_int_equal (b.len, 0);
    assert_int_equal (buf_puts (&b, "a"), -1);             // sticky
    buf_free (&b);
    assert_null (b.data);
    assert_int_equal (b.max, 8);
    buf_free (&b);                                          // twice is fine
}

static void test_take_and_empty_appends (void **state)
{
    (void) state;
    buf_t b;
    buf_init (&b, 1024);
    size_t len = 99;
    assert_null (buf_take (&b, &len));                      // nothing appended
    assert_int_equal (len, 0);
    assert_int_equal (buf_append (&b, "", 0), 0);           // allocates, stays a string
    assert_non_null (b.data);
    assert_string_equal (b.data, "");
    assert_int_equal (buf_append (&b, "x\0y", 3), 0);       // bytes, NUL included
    char *data = buf_take (&b, &len);
    assert_int_equal (len, 3);
    assert_memory_equal (data, "x\0y", 4);                  // and a NUL after them
    free (data);
    assert_null (b.data);
    assert_int_equal (b.max, 1024);
}

static void test_printf_long (void **state)
{
    (void) state;
    buf_t b;
    buf_init (&b, 4096);
    char big[1000];
    memset (big, 'z', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal (buf_printf (&b, "<%s|%d>", big, 42), 0);     // over the 256-byte fast path
    assert_int_equal (b.len, 999 + 5);
    assert_int_equal (b.data[0], '<');
    assert_string_equal (b.data + 1000, "|42>");
    assert_int_equal (buf_printf (&b, "%s%s%s%s", big, big, big, big), -1);
    assert_true (b.toobig);
    assert_int_equal (b.len, 999 + 5);
    buf_free (&b);
}

//  Escape s, check the exact text, and that cJSON reads back the same bytes.
static void s_expect_json (const char *s, size_t n, const char *want)
{
    buf_t b;
    buf_init (&b, 1 << 16);
    assert_int_equal (buf_put_json_string (&b, s, n), 0);
    assert_string_equal (b.data, want);
    cJSON *j = cJSON_ParseWithLength (b.data, b.len);
    assert_true (cJSON_IsString (j));
    if (!memchr (s, 0, n))                                  // cJSON stops at a NUL
        assert_memory_equal (j->valuestring, s, n + 1);
    cJSON_Delete (j);
    buf_free (&b);
}

static void test_json_string (void **state)
{
    (void) state;
    s_expect_json ("", 0, "\"\"");
    s_expect_json ("plain text", 10, "\"plain text\"");
    s_expect_json ("q\"b\\s/", 6, "\"q\\\"b\\\\s/\"");
    s_expect_json ("a\nb\rc\td", 7, "\"a\\nb\\rc\\td\"");
    s_expect_json ("\x01\x1f\x7f", 3, "\"\\u0001\\u001f\x7f\"");
    s_expect_json ("n\0ul", 4, "\"n\\u0000ul\"");
    s_expect_json ("caf\xc3\xa9", 5, "\"caf\xc3\xa9\"");      // UTF-8 passes through
    buf_t b;
    buf_init (&b, 64);
    assert_int_equal (buf_put_json_str (&b, "x"), 0);
    assert_string_equal (b.data, "\"x\"");
    //  Every byte value: the output always parses as one string
    char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char) (i ? i : 'N');
    buf_reset (&b);
    b.max = 4096;
    assert_int_equal (buf_put_json_string (&b, all, sizeof all), 0);
    cJSON *j = cJSON_ParseWithLength (b.data, b.len);
    assert_true (cJSON_IsString (j));
    assert_int_equal (strlen (j->valuestring), 256);
    cJSON_Delete (j);
    //  At the limit: refused, never half a string that looks whole
    buf_t small;
    buf_init (&small, 5);
    assert_int_equal (buf_put_json_str (&small, "a\nb"), -1);
    assert_true (small.toobig);
    buf_free (&small);
    buf_free (&b);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_limit_is_hard_and_sticky),
        cmocka_unit_test (test_take_and_empty_appends),
        cmocka_unit_test (test_printf_long),
        cmocka_unit_test (test_json_string),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
