// Unit tests for UTF-8 validation, safe truncation and sanitising (U+FFFD).
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "utf8.h"

#define FFFD "\xEF\xBF\xBD"

static bool s_valid (const char *s)
{
    return utf8_valid (s, strlen (s));
}

static void test_valid (void **state)
{
    assert_true (utf8_valid ("", 0));
    assert_true (s_valid ("plain ascii"));
    assert_true (s_valid ("caf\xC3\xA9"));                      // é
    assert_true (s_valid ("\xE2\x82\xAC"));                     // €
    assert_true (s_valid ("\xF0\x9F\x98\x80"));                 // 😀
    assert_true (s_valid ("\xC2\x80"));                         // U+0080, smallest 2-byte
    assert_true (s_valid ("\xE0\xA0\x80"));                     // U+0800
    assert_true (s_valid ("\xED\x9F\xBF"));                     // U+D7FF, below surrogates
    assert_true (s_valid ("\xEE\x80\x80"));                     // U+E000, above them
    assert_true (s_valid ("\xF0\x90\x80\x80"));                 // U+10000
    assert_true (s_valid ("\xF4\x8F\xBF\xBF"));                 // U+10FFFF
    assert_true (utf8_valid ("a\0b", 3));                       // NUL is U+0000
    assert_int_equal (utf8_seq_len ("\xF0\x9F\x98\x80", 4), 4);
    assert_int_equal (utf8_seq_len ("a", 1), 1);
    assert_int_equal (utf8_seq_len ("a", 0), 0);
}

static void test_invalid (void **state)
{
    assert_false (s_valid ("\xFF"));
    assert_false (s_valid ("\xFE"));
    assert_false (s_valid ("\xC3\x28"));                        // lead + non-continuation
    assert_false (s_valid ("\x80"));                            // lone continuation
    assert_false (s_valid ("\xC3"));                            // truncated 2-byte
    assert_false (s_valid ("\xE2\x82"));                        // truncated 3-byte
    assert_false (s_valid ("\xF0\x9F\x98"));                    // truncated 4-byte
    assert_false (s_valid ("\xC0\xAF"));                        // overlong '/'
    assert_false (s_valid ("\xC1\xBF"));                        // overlong
    assert_false (s_valid ("\xE0\x80\xAF"));                    // overlong 3-byte
    assert_false (s_valid ("\xF0\x80\x80\xAF"));                // overlong 4-byte
    assert_false (s_valid ("\xED\xA0\x80"));                    // U+D800 surrogate
    assert_false (s_valid ("\xED\xBF\xBF"));                    // U+DFFF surrogate
    assert_false (s_valid ("\xF4\x90\x80\x80"));                // U+110000
    assert_false (s_valid ("\xF5\x80\x80\x80"));
    assert_false (s_valid ("ok\xFFok"));
    //  len bounds the check: a sequence cut by len is invalid
    assert_false (utf8_valid ("\xC3\xA9", 1));
    assert_int_equal (utf8_seq_len ("\xC3\xA9", 1), 0);
}

static void test_cut (void **state)
{
    const char *s = "ab\xC3\xA9" "cd";                          // a b é c d
    assert_int_equal (utf8_cut (s, 6, 10), 6);
    assert_int_equal (utf8_cut (s, 6, 6), 6);
    assert_int_equal (utf8_cut (s, 6, 4), 4);                   // after é
    assert_int_equal (utf8_cut (s, 6, 3), 2);                   // inside é: back to before it
    assert_int_equal (utf8_cut (s, 6, 2), 2);
    assert_int_equal (utf8_cut (s, 6, 0), 0);
    const char *e = "\xF0\x9F\x98\x80";
    for (size_t max = 1; max < 4; max++)
        assert_int_equal (utf8_cut (e, 4, max), 0);
}

static void test_sanitize (void **state)
{
    char out[64];
    assert_int_equal (utf8_sanitize (out, sizeof out, "caf\xC3\xA9", 5), 5);
    assert_string_equal (out, "caf\xC3\xA9");
    //  Each invalid byte becomes one U+FFFD; valid neighbours are kept
    size_t n = utf8_sanitize (out, sizeof out, "a\xFF" "b", 3);
    assert_string_equal (out, "a" FFFD "b");
    assert_int_equal (n, 5);
    utf8_sanitize (out, sizeof out, "\xC3\x28", 2);
    assert_string_equal (out, FFFD "(");
    utf8_sanitize (out, sizeof out, "\xED\xA0\x80", 3);
    assert_string_equal (out, FFFD FFFD FFFD);
    utf8_sanitize (out, sizeof out, "x\xE2\x82", 3);            // truncated at the end
    assert_string_equal (out, "x" FFFD FFFD);
    assert_true (utf8_valid (out, strlen (out)));
    //  Empty input, zero-size output
    assert_int_equal (utf8_sanitize (out, sizeof out, "", 0), 0);
    assert_string_equal (out, "");
    out[0] = 'z';
    assert_int_equal (utf8_sanitize (out, 0, "abc", 3), 0);
    assert_int_equal (out[0], 'z');
}

static void test_sanitize_bounds (void **state)
{
    char out[6];
    //  Truncation never splits a sequence: "ab€" needs 5 + NUL
    assert_int_equal (utf8_sanitize (out, sizeof out, "ab\xE2\x82\xAC", 5), 5);
    assert_int_equal (utf8_sanitize (out, 5, "ab\xE2\x82\xAC", 5), 2);
    assert_string_equal (out, "ab");
    //  Nor a replacement character
    assert_int_equal (utf8_sanitize (out, 5, "abc\xFF", 4), 3);
    assert_string_equal (out, "abc");
    assert_int_equal (utf8_sanitize (out, 1, "abc", 3), 0);
    assert_string_equal (out, "");
    //  Output of every single byte value is valid UTF-8
    char big[16];
    for (int b = 0; b < 256; b++) {
        char c = (char) b;
        size_t len = utf8_sanitize (big, sizeof big, &c, 1);
        assert_true (utf8_valid (big, len));
        assert_int_equal (len, b < 0x80 ? 1 : 3);
    }
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_valid),
        cmocka_unit_test (test_invalid),
        cmocka_unit_test (test_cut),
        cmocka_unit_test (test_sanitize),
        cmocka_unit_test (test_sanitize_bounds),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
