// Validating JSON scanner (no tree, no allocation) and string escaping for the worker.
#include "wk_json.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *p;
    const char *end;
} s_scan_t;

static int s_value (s_scan_t *sc, int depth);

static void s_ws (s_scan_t *sc)
{
    while (sc->p < sc->end && (*sc->p == ' ' || *sc->p == '\t' || *sc->p == '\n' || *sc->p == '\r'))
        sc->p++;
}

static bool s_hex (char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int s_escape (s_scan_t *sc)
{
    if (sc->p >= sc->end)
        return -1;
    char c = *sc->p++;
    if (strchr ("\"\\/bfnrt", c) && c)
        return 0;
    if (c != 'u' || sc->end - sc->p < 4)
        return -1;
    for (int i = 0; i < 4; i++)
        if (!s_hex (sc->p [i]))
            return -1;
    sc->p += 4;
    return 0;
}

//  At an opening quote: skip the string. Control characters are not allowed.
static int s_string (s_scan_t *sc)
{
    if (sc->p >= sc->end || *sc->p != '"')
        return -1;
    sc->p++;
    while (sc->p < sc->end) {
        unsigned char c = (unsigned char) *sc->p++;
        if (c == '"')
            return 0;
        if (c < 0x20)
            return -1;
        if (c == '\\' && s_escape (sc))
            return -1;
    }
    return -1;
}

static int s_digits (s_scan_t *sc)
{
    const char *start = sc->p;
    while (sc->p < sc->end && *sc->p >= '0' && *sc->p <= '9')
        sc->p++;
    return sc->p > start ? 0 : -1;
}

static int s_number (s_scan_t *sc)
{
    if (sc->p < sc->end && *sc->p == '-')
        sc->p++;
    if (s_digits (sc))
        return -1;
    if (sc->p < sc->end && *sc->p == '.') {
        sc->p++;
        if (s_digits (sc))
            return -1;
    }
    if (sc->p < sc->end && (*sc->p == 'e' || *sc->p == 'E')) {
        sc->p++;
        if (sc->p < sc->end && (*sc->p == '+' || *sc->p == '-'))
            sc->p++;
        if (s_digits (sc))
            return -1;
    }
    return 0;
}

static int s_literal (s_scan_t *sc, const char *word)
{
    size_t n = strlen (word);
    if ((size_t) (sc->end - sc->p) < n || memcmp (sc->p, word, n))
        return -1;
    sc->p += n;
    return 0;
}

static int s_array (s_scan_t *sc, int depth)
{
    sc->p++;
    s_ws (sc);
    if (sc->p < sc->end && *sc->p == ']') {
        sc->p++;
        return 0;
    }
    while (sc->p < sc->end) {
        if (s_value (sc, depth + 1))
            return -1;
        s_ws (sc);
        if (sc->p >= sc->end)
            return -1;
        char c = *sc->p++;
        if (c == ']')
            return 0;
        if (c != ',')
            return -1;
    }
    return -1;
}

//  One "key": value pair of an object; records spans if m is not NULL.
static int s_member (s_scan_t *sc, const char *base, int depth, wk_json_member_t *m)
{
    s_ws (sc);
    const char *key = sc->p;
    if (s_string (sc))
        return -1;
    if (m) {
        m->key_off = (size_t) (key - base);
        m->key_len = (size_t) (sc->p - key);
    }
    s_ws (sc);
    if (sc->p >= sc->end || *sc->p++ != ':')
        return -1;
    s_ws (sc);
    const char *val = sc->p;
    if (s_value (sc, depth + 1))
        return -1;
    if (m) {
        m->val_off = (size_t) (val - base);
        m->val_len = (size_t) (sc->p - val);
    }
    return 0;
}

//  At '{': skip an object. Top level (out != NULL) records up to max members.
static int s_object (s_scan_t *sc, const char *base, int depth,
                     wk_json_member_t *out, size_t max, size_t *count)
{
    sc->p++;
    s_ws (sc);
    if (sc->p < sc->end && *sc->p == '}') {
        sc->p++;
        return 0;
    }
    size_t n = 0;
    while (sc->p < sc->end) {
        if (out && n >= max)
            return -1;
        if (s_member (sc, base, depth, out ? &out [n] : NULL))
            return -1;
        n++;
        s_ws (sc);
        if (sc->p >= sc->end)
            return -1;
        char c = *sc->p++;
        if (c == '}') {
            if (count)
                *count = n;
            return 0;
        }
        if (c != ',')
            return -1;
    }
    return -1;
}

static int s_value (s_scan_t *sc, int depth)
{
    if (depth > WK_JSON_DEPTH || sc->p >= sc->end)
        return -1;
    switch (*sc->p) {
        case '{': return s_object (sc, NULL, depth, NULL, 0, NULL);
        case '[': return s_array (sc, depth);
        case '"': return s_string (sc);
        case 't': return s_literal (sc, "true");
        case 'f': return s_literal (sc, "false");
        case 'n': return s_literal (sc, "null");
        default:  return s_number (sc);
    }
}

int wk_json_members (const char *js, size_t len, wk_json_member_t *out, size_t max)
{
    if (!js)
        return -1;
    s_scan_t sc = { js, js + len };
    s_ws (&sc);
    if (sc.p >= sc.end || *sc.p != '{')
        return -1;
    size_t count = 0;
    if (s_object (&sc, js, 0, out, max, &count))
        return -1;
    s_ws (&sc);
    if (sc.p != sc.end)
        return -1;
    return (int) count;
}

bool wk_json_key_is (const char *js, const wk_json_member_t *m, const char *name)
{
    size_t n = strlen (name);
    return m->key_len == n + 2 && memcmp (js + m->key_off + 1, name, n) == 0;
}

