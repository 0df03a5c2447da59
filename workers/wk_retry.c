// Retry-After capture: delta-seconds, HTTP-dates (curl_getdate) and OpenAI's
// retry-after-ms, each bounded and capped; anything else is ignored.
#include "wk_retry.h"

#include <ctype.h>
#include <curl/curl.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static void s_trim (const char **v, size_t *len)
{
    while (*len && (**v == ' ' || **v == '\t')) {
        (*v)++;
        (*len)--;
    }
    while (*len && ((*v) [*len - 1] == ' ' || (*v) [*len - 1] == '\t'
                 || (*v) [*len - 1] == '\r' || (*v) [*len - 1] == '\n'))
        (*len)--;
}

//  digits [ "." digits ] times scale (1000 for seconds, 1 for milliseconds),
//  saturating at WK_RETRY_MAX_MS. false unless the whole text matches.
static bool s_decimal (const char *v, size_t len, uint64_t scale, uint32_t *ms)
{
    size_t i = 0;
    uint64_t whole = 0;
    while (i < len && isdigit ((unsigned char) v [i])) {
        if (whole <= WK_RETRY_MAX_MS)
            whole = whole * 10 + (uint64_t) (v [i] - '0');
        i++;
    }
    if (i == 0)
        return false;
    uint64_t total = whole > WK_RETRY_MAX_MS ? (uint64_t) WK_RETRY_MAX_MS * scale : whole * scale;
    if (i < len && v [i] == '.') {
        size_t start = ++i;
        uint64_t unit = scale;
        while (i < len && isdigit ((unsigned char) v [i])) {
            unit /= 10;
            total += unit * (uint64_t) (v [i] - '0');
            i++;
        }
        if (i == start)
            return false;
    }
    if (i != len)
        return false;
    *ms = total > WK_RETRY_MAX_MS ? WK_RETRY_MAX_MS : (uint32_t) total;
    return true;
}

static bool s_date (const char *v, size_t len, int64_t now_s, uint32_t *ms)
{
    if (len == 0 || len >= WK_RETRY_DATE_MAX || !isalpha ((unsigned char) v [0]))
        return false;
    char text [WK_RETRY_DATE_MAX];
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) v [i];
        if (c < 0x20 || c > 0x7e)
            return false;
        text [i] = (char) c;
    }
    text [len] = 0;
    time_t when = curl_getdate (text, NULL);
    if (when == (time_t) -1)
        return false;
    int64_t delta = (int64_t) when - now_s;
    if (delta <= 0)
        *ms = 0;
    else
        *ms = delta >= WK_RETRY_MAX_MS / 1000 ? WK_RETRY_MAX_MS : (uint32_t) delta * 1000;
    return true;
}

bool wk_retry_after_value (const char *v, size_t len, int64_t now_s, uint32_t *ms)
{
    s_trim (&v, &len);
    if (len && isdigit ((unsigned char) v [0]))
        return s_decimal (v, len, 1000, ms);
    return s_date (v, len, now_s, ms);
}

bool wk_retry_ms_value (const char *v, size_t len, uint32_t *ms)
{
    s_trim (&v, &len);
    return s_decimal (v, len, 1, ms);
}

//  If line is "name: value" (name in any case), point at the value.
static bool s_field (const char *line, size_t len, const char *name, const char **v, size_t *vlen)
{
    size_t n = strlen (name);
    if (len <= n || strncasecmp (line, name, n) != 0 || line [n] != ':')
        return false;
    *v = line + n + 1;
    *vlen = len - n - 1;
    return true;
}

void wk_retry_header (wk_retry_t *r, const char *line, size_t len, int64_t now_s)
{
    const char *v;
    size_t vlen;
    uint32_t ms;
    if (len >= 5 && memcmp (line, "HTTP/", 5) == 0)
        memset (r, 0, sizeof *r);
    else
    if (s_field (line, len, "retry-after-ms", &v, &vlen)) {
        if (wk_retry_ms_value (v, vlen, &ms))
            *r = (wk_retry_t) { .has = true, .from_ms = true, .ms = ms };
    }
    else
    if (s_field (line, len, "retry-after", &v, &vlen)) {
        if (!r->from_ms && wk_retry_after_value (v, vlen, now_s, &ms))
            *r = (wk_retry_t) { .has = true, .ms = ms };
    }
}
