// Unit tests for the non-recursive JSON nesting check: depth counting, strings and
// escapes, buffer bounds, and inputs far deeper than any recursive parser survives.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "jdepth.h"

static int s_check (const char *s, unsigned max)
{
    return jdepth_check (s, strlen (s), max);
}

//  n opening brackets of kind c (caller frees)
static char *s_repeat (char c, size_t n)
{
    char *buf = malloc (n + 1);
    assert_non_null (buf);
    memset (buf, c, n);
    buf[n] = 0;
    return buf;
}

static void test_flat (void **state)
{
    assert_int_equal (s_check ("", 1), 0);
    assert_int_equal (s_check ("42", 1), 0);
    assert_int_equal (s_check ("\"just a string\"", 1), 0);
    assert_int_equal (s_check ("{\"a\":1,\"b\":2,\"c\":\"x\"}", 1), 0);
    assert_int_equal (s_check ("[1,2,3]", 1), 0);
    //  Siblings do not add up: [] [] [] is depth 2, not 4
    assert_int_equal (s_check ("[[],[],[],{}]", 2), 0);
    assert_int_equal (s_check ("{\"a\":[],\"b\":{},\"c\":[]}", 2), 0);
    //  max_depth 0 allows no array or object at all
    assert_int_equal (s_check ("1", 0), 0);
    assert_int_equal (s_check ("[]", 0), -1);
}

static void test_exact_and_over (void **state)
{
    assert_int_equal (s_check ("[[[]]]", 3), 0);
    assert_int_equal (s_check ("[[[]]]", 2), -1);
    assert_int_equal (s_check ("{\"a\":{\"b\":[1]}}", 3), 0);
    assert_int_equal (s_check ("{\"a\":{\"b\":[1]}}", 2), -1);
    //  Mixed objects and arrays count alike
    assert_int_equal (s_check ("[{\"a\":[{}]}]", 4), 0);
    assert_int_equal (s_check ("[{\"a\":[{}]}]", 3), -1);
    //  Depth returns after closing: two deep branches, each exactly max
    assert_int_equal (s_check ("[[[1]],[[2]]]", 3), 0);
    //  64 and 65 levels against a limit of 64
    char buf[200];
    for (unsigned depth = 63; depth <= 65; depth++) {
        memset (buf, '[', depth);
        memset (buf + depth, ']', depth);
        assert_int_equal (jdepth_check (buf, 2 * depth, 64), depth <= 64 ? 0 : -1);
    }
}

static void test_strings (void **state)
{
    //  Brackets inside strings do not count, in values and in keys
    assert_int_equal (s_check ("[\"[[[[{{{{\"]", 1), 0);
    assert_int_equal (s_check ("{\"[[[[\":\"]]]]\"}", 1), 0);
    //  Closers inside a string do not close anything
    assert_int_equal (s_check ("[\"]]]]\",[[1]]]", 3), 0);
    assert_int_equal (s_check ("[\"]]]]\",[[1]]]", 2), -1);
}

static void test_escapes (void **state)
{
    //  \" does not end the string: the brackets after it are still inside
    assert_int_equal (s_check ("[\"a\\\"[[[[\"]", 1), 0);
    //  \\ ends with the backslash escaped: the quote after it closes the string
    assert_int_equal (s_check ("[\"a\\\\\",[[1]]]", 3), 0);
    assert_int_equal (s_check ("[\"a\\\\\",[[1]]]", 2), -1);
    //  \\\" is an escaped backslash then an escaped quote: still inside
    assert_int_equal (s_check ("[\"a\\\\\\\"[[[\"]", 1), 0);
    //  Other escapes
    assert_int_equal (s_check ("[\"\\u005b\\n\\t[\"]", 1), 0);
}

static void test_backslash_at_end (void **state)
{
    //  The escape would skip the byte after the buffer: it must not be read (the
    //  allocation is exactly len bytes, so a sanitizer build catches a read past it)
    char *buf = malloc (3);
    assert_non_null (buf);
    memcpy (buf, "[\"\\", 3);
    assert_int_equal (jdepth_check (buf, 3, 1), 0);
    free (buf);
    //  len cuts just after the backslash; the bracket behind it is not scanned
    assert_int_equal (jdepth_check ("[\"\\[[[", 3, 1), 0);
}

static void test_unterminated_string (void **state)
{
    //  Everything after an unclosed quote is string: no brackets counted
    assert_int_equal (s_check ("[\"never closed [[[[[[[[", 1), 0);
    assert_int_equal (s_check ("\"", 0), 0);
}

static void test_900_brackets (void **state)
{
    char *buf = s_repeat ('[', 900);
    assert_int_equal (jdepth_check (buf, 900, 64), -1);
    assert_int_equal (jdepth_check (buf, 900, 1000), 0);
    assert_int_equal (jdepth_check (buf, 900, 899), -1);
    assert_int_equal (jdepth_check (buf, 900, 900), 0);
    free (buf);
}

static void test_megabyte (void **state)
{
    size_t n = 1024 * 1024;
    char *buf = s_repeat ('[', n);
    assert_int_equal (jdepth_check (buf, n, 64), -1);
    assert_int_equal (jdepth_check (buf, n, UINT32_MAX), 0);
    free (buf);
    buf = s_repeat ('{', n);
    assert_int_equal (jdepth_check (buf, n, 1000), -1);
    free (buf);
    //  A megabyte inside one string: depth 1
    buf = s_repeat ('[', n);
    buf[1] = '"';
    assert_int_equal (jdepth_check (buf, n, 1), 0);
    free (buf);
}

static void test_nul_bytes (void **state)
{
    //  NUL is an ordinary byte: scanning goes on past it, in and out of strings
    const char a[] = "[\0[[\0]]]";
    assert_int_equal (jdepth_check (a, sizeof a - 1, 3), 0);
    assert_int_equal (jdepth_check (a, sizeof a - 1, 2), -1);
    const char b[] = "[\"\0[[\"\0,[[1]]]";
    assert_int_equal (jdepth_check (b, sizeof b - 1, 3), 0);
    assert_int_equal (jdepth_check (b, sizeof b - 1, 2), -1);
}

static void test_len_shorter (void **state)
{
    //  Only len bytes are looked at, whatever the NUL-terminated string holds
    const char *s = "[[[[[[]]]]]]";
    assert_int_equal (jdepth_check (s, 2, 2), 0);
    assert_int_equal (jdepth_check (s, 3, 2), -1);
    assert_int_equal (jdepth_check (s, 0, 0), 0);
    assert_int_equal (jdepth_check (NULL, 0, 0), 0);
    //  A quote just past len does not start a string
    assert_int_equal (jdepth_check ("[[\"[[", 2, 2), 0);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_flat),
        cmocka_unit_test (test_exact_and_over),
        cmocka_unit_test (test_strings),
        cmocka_unit_test (test_escapes),
        cmocka_unit_test (test_backslash_at_end),
        cmocka_unit_test (test_unterminated_string),
        cmocka_unit_test (test_900_brackets),
        cmocka_unit_test (test_megabyte),
        cmocka_unit_test (test_nul_bytes),
        cmocka_unit_test (test_len_shorter),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
