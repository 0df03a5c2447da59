// UTF-8 checks for text that goes back to clients: validation (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF) and sanitising into a bounded buffer.
#ifndef AIGW_UTF8_H
#define AIGW_UTF8_H

#include <stdbool.h>
#include <stddef.h>

//  Length (1..4) of the well-formed sequence at s[0..len), or 0 when none starts there.
size_t utf8_seq_len (const char *s, size_t len);

//  True when s[0..len) is well-formed UTF-8 (NUL bytes count as U+0000).
bool utf8_valid (const char *s, size_t len);

//  The longest prefix of s[0..len) of at most max bytes that does not end inside a
//  multi-byte sequence (backs off over at most 3 continuation bytes).
size_t utf8_cut (const char *s, size_t len, size_t max);

//  Copy src[0..srclen) into dst, replacing every byte that does not belong to a
//  well-formed sequence with U+FFFD. Stops before a sequence that would not fit, so
//  dst is always valid UTF-8 and NUL-terminated (when dstlen > 0). Returns the bytes
//  written, not counting the NUL.
size_t utf8_sanitize (char *dst, size_t dstlen, const char *src, size_t srclen);

#endif
