// UTF-8 validation and sanitising (see utf8.h).
#include "utf8.h"

#include <string.h>

#define S_REPLACEMENT "\xEF\xBF\xBD"       // U+FFFD
#define S_REPLACEMENT_LEN 3

//  Sequence length announced by lead byte c (0 = not a lead byte) and the allowed
//  range of the second byte, which excludes overlongs, surrogates and > U+10FFFF.
static size_t s_lead (unsigned char c, unsigned char *lo, unsigned char *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0)
        return 2;
    if (c < 0xF0) {
        *lo = c == 0xE0 ? 0xA0 : 0x80;
        *hi = c == 0xED ? 0x9F : 0xBF;
        return 3;
    }
    if (c < 0xF5) {
        *lo = c == 0xF0 ? 0x90 : 0x80;
        *hi = c == 0xF4 ? 0x8F : 0xBF;
        return 4;
    }
    return 0;
}

size_t utf8_seq_len (const char *s, size_t len)
{
    if (len == 0)
        return 0;
    const unsigned char *u = (const unsigned char *) s;
    unsigned char lo, hi;
    size_t n = s_lead (u[0], &lo, &hi);
    if (n == 0 || n > len)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if (u[i] < lo || u[i] > hi)
            return 0;
        lo = 0x80;
        hi = 0xBF;
    }
    return n;
}

bool utf8_valid (const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_seq_len (s + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

size_t utf8_cut (const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    while (n > 0 && max - n < 3 && ((unsigned char) s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

size_t utf8_sanitize (char *dst, size_t dstlen, const char *src, size_t srclen)
{
    if (dstlen == 0)
        return 0;
    size_t o = 0;
    size_t i = 0;
    while (i < srclen) {
        size_t n = utf8_seq_len (src + i, srclen - i);
        const char *piece = n ? src + i : S_REPLACEMENT;
        size_t piece_len = n ? n : S_REPLACEMENT_LEN;
        if (piece_len >= dstlen - o)
            break;
        memcpy (dst + o, piece, piece_len);
        o += piece_len;
        i += n ? n : 1;
    }
    dst[o] = 0;
    return o;
}
