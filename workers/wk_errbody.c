// Upstream error bodies and outcomes, for every dialect: the status -> code mapping,
// the readable detail and provider code of an error body, and the oversize outcome.
// Pure logic (unit-tested in test_worker_openai.c).
#include "wk_errbody.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

Aigw__ErrorCode wk_errbody_status_code (long status)
{
    if (status == 400 || status == 404 || status == 413 || status == 422)
        return AIGW__ERROR_CODE__ERR_BAD_REQUEST;
    if (status == 401 || status == 403)
        return AIGW__ERROR_CODE__ERR_UPSTREAM_AUTH;
    if (status == 429)
        return AIGW__ERROR_CODE__ERR_RATE_LIMITED;
    return AIGW__ERROR_CODE__ERR_UPSTREAM;
}

void wk_errbody_snippet (char *dst, size_t dstlen, const char *s, size_t len, size_t max)
{
    if (dstlen < 4) {
        if (dstlen)
            dst [0] = 0;
        return;
    }
    size_t limit = max < dstlen - 4 ? max : dstlen - 4;
    bool cut = len > limit;
    size_t n = cut ? limit : len;
    //  Never split a UTF-8 sequence: back off over continuation bytes
    while (cut && n > 0 && ((unsigned char) s [n] & 0xC0) == 0x80)
        n--;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s [i];
        dst [i] = c < 0x20 || c == 0x7f ? ' ' : (char) c;
    }
    if (cut) {
        memcpy (dst + n, "...", 3);
        n += 3;
    }
    dst [n] = 0;
}

void wk_errbody_fail (wk_errbody_reply_t *out, long status, const char *fmt, const char *detail)
{
    out->code = AIGW__ERROR_CODE__ERR_UPSTREAM;
    out->status = status > 0 && status < 1000 ? (uint32_t) status : 0;
    snprintf (out->message, sizeof out->message, fmt, status, detail);
}

//  Copy a provider's error code, printable ASCII only, cut to fit.
static void s_code (char *dst, size_t dstlen, const char *src)
{
    size_t n = 0;
    for (; src && src [n] && n + 1 < dstlen; n++) {
        unsigned char c = (unsigned char) src [n];
        dst [n] = c < 0x20 || c > 0x7e ? '_' : (char) c;
    }
    if (dstlen)
        dst [n] = 0;
}

static void s_error_code (const cJSON *err, char *code, size_t codelen)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive (err, "code");
    char num [24];
    const char *text = cJSON_GetStringValue (c);
    if (!text && cJSON_IsNumber (c) && c->valuedouble > -1e15 && c->valuedouble < 1e15) {
        snprintf (num, sizeof num, "%lld", (long long) c->valuedouble);
        text = num;
    }
    if (!text || !*text)
        text = cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (err, "type"));
    s_code (code, codelen, text ? text : "");
}

void wk_errbody_info (const char *body, size_t len, char *dst, size_t dstlen,
                           char *code, size_t codelen)
{
    cJSON *root = cJSON_ParseWithLength (body, len);
    const cJSON *err = cJSON_GetObjectItemCaseSensitive (root, "error");
    const char *text = cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (err, "message"));
    if (!text)
        text = cJSON_GetStringValue (err);
    if (!text)
        text = cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (root, "message"));
    if (text)
        wk_errbody_snippet (dst, dstlen, text, strlen (text), WK_ERRBODY_DETAIL_MAX);
    else
    if (len)
        wk_errbody_snippet (dst, dstlen, body, len, WK_ERRBODY_DETAIL_MAX);
    else
        snprintf (dst, dstlen, "(empty body)");
    if (code)
        s_error_code (cJSON_IsObject (err) ? err : NULL, code, codelen);
    cJSON_Delete (root);
}

//  The most readable part of an error body: error.message, error (a string),
//  message, or the raw text.
void wk_errbody_detail (const char *body, size_t len, char *dst, size_t dstlen)
{
    wk_errbody_info (body, len, dst, dstlen, NULL, 0);
}

int wk_errbody_parse (long status, const char *body, size_t len, wk_errbody_reply_t *out)
{
    memset (out, 0, sizeof *out);
    out->status = status > 0 && status < 1000 ? (uint32_t) status : 0;
    char detail [WK_ERRBODY_DETAIL_MAX + 8];
    wk_errbody_info (body, len, detail, sizeof detail, out->upstream_code,
                     sizeof out->upstream_code);
    wk_errbody_fail (out, status, "upstream HTTP %ld: %s", detail);
    out->code = wk_errbody_status_code (status);
    return -1;
}

void wk_errbody_too_big (uint64_t max, long status, wk_errbody_reply_t *out)
{
    memset (out, 0, sizeof *out);
    out->code = wk_errbody_status_code (status);   // ERR_UPSTREAM for a 2xx
    out->status = status > 0 && status < 1000 ? (uint32_t) status : 0;
    snprintf (out->message, sizeof out->message, "upstream response larger than %" PRIu64 " bytes",
              max);
}

