// Retry-After capture for HTTP providers: a bounded parser of the upstream's
// Retry-After / retry-after-ms response headers (outside input: junk is ignored).
#ifndef AIGW_WK_RETRY_H
#define AIGW_WK_RETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WK_RETRY_MAX_MS (24u * 3600u * 1000u)  // values above this are capped
#define WK_RETRY_DATE_MAX 64                    // longer HTTP-dates are junk

//  What one response said about retrying.
typedef struct {
    bool has;                   // a usable value was seen
    bool from_ms;               // it came from retry-after-ms (takes precedence)
    uint32_t ms;                // milliseconds to wait, capped at WK_RETRY_MAX_MS
} wk_retry_t;

//  Parse a Retry-After value: delta-seconds ("2", "1.5") or an HTTP-date
//  (relative to now_s, unix seconds; a past date is 0). true with *ms, or false
//  for junk. Surrounding blanks are allowed.
bool wk_retry_after_value (const char *v, size_t len, int64_t now_s, uint32_t *ms);

//  Parse a retry-after-ms value (non-negative decimal milliseconds, e.g. "250"
//  or "12.5"). true with *ms, or false for junk.
bool wk_retry_ms_value (const char *v, size_t len, uint32_t *ms);

//  Feed one raw response header line (as libcurl hands it, CRLF included, not
//  NUL-terminated). A status line ("HTTP/...") starts a new response and clears
//  r; Retry-After and retry-after-ms (any case) set it. Everything else is ignored.
void wk_retry_header (wk_retry_t *r, const char *line, size_t len, int64_t now_s);

#endif
