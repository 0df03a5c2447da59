// Upstream error bodies and outcomes, shared by every dialect and the upstream driver
// (so neither includes the other): status -> code, an error body's readable detail and
// the provider's code, the oversize outcome. Pure logic.
#ifndef AIGW_WK_ERRBODY_H
#define AIGW_WK_ERRBODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aigw.pb-c.h"

#define WK_ERRBODY_DETAIL_MAX 200    // upstream error text kept in a reason
#define WK_ERRBODY_CODE_MAX 64       // upstream error code kept, incl. NUL

//  Outcome of an upstream call, as the worker will report it.
typedef struct {
    Aigw__ErrorCode code;       // ERR_NONE: body is a good chat.completion
    uint32_t status;            // upstream HTTP status, 0 if none
    char message [320];         // readable reason when code != ERR_NONE
    char upstream_code [WK_ERRBODY_CODE_MAX]; // the provider's error code, "" if none
    bool has_usage;
    uint32_t prompt_tokens;
    uint32_t completion_tokens;
} wk_errbody_reply_t;

//  The ErrorCode for an upstream's non-2xx HTTP status: 400, 404, 413, 422 ->
//  ERR_BAD_REQUEST; 401, 403 -> ERR_UPSTREAM_AUTH; 429 -> ERR_RATE_LIMITED;
//  anything else (5xx, odd codes) -> ERR_UPSTREAM.
Aigw__ErrorCode wk_errbody_status_code (long status);

//  Fill out for a non-2xx reply: the status's code, the body's detail and code.
//  Returns -1 (the reply failed).
int wk_errbody_parse (long status, const char *body, size_t len, wk_errbody_reply_t *out);
//  Set out->code = ERR_UPSTREAM and out->message from fmt (a %ld for status, then a %s
//  for detail).
void wk_errbody_fail (wk_errbody_reply_t *out, long status, const char *fmt, const char *detail);
//  The most readable part of an error body (error.message, error as a string,
//  message, or the raw text), as a snippet.
void wk_errbody_detail (const char *body, size_t len, char *dst, size_t dstlen);

//  wk_errbody_detail, plus the provider's error code into code (codelen):
//  error.code (a string or an integer), else error.type (OpenAI; Anthropic's
//  {"type":"error","error":{"type",...}}), else "". Printable ASCII only (others
//  become '_'), at most codelen - 1 characters.
void wk_errbody_info (const char *body, size_t len, char *dst, size_t dstlen,
                       char *code, size_t codelen);

//  Fill out for a reply that passed its size cap.
void wk_errbody_too_big (uint64_t max, long status, wk_errbody_reply_t *out);

//  Copy at most max bytes of s into dst (dstlen), cut at a UTF-8 boundary, with
//  control characters turned into spaces; appends "..." when cut.
void wk_errbody_snippet (char *dst, size_t dstlen, const char *s, size_t len, size_t max);

#endif
