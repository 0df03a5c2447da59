// Virtual keys: the store (SQLite, WAL, only SHA-256 hashes of secrets) and the limiter
// (rpm and tpm as 60 one-second buckets, parallel requests, a USD budget per day or
// month). Keys live in memory, found by hash (bsearch); the hot path never touches
// SQLite. A flusher thread writes counters and spend back every second (write-behind)
// and keys_close writes the rest, so they survive a restart. Admin changes write
// through at once. Every function is thread-safe (one mutex for memory, one for the
// database; never both waited on in the other order). With a shared limiter
// (keys_set_rlimit, limits/backend = redis) lookup, revocation, expiry and the model
// check stay here and the counters live in Redis (docs/limits.md); no lock is held
// while Redis is asked.
#ifndef AIGW_EDGE_KEYS_H
#define AIGW_EDGE_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEYS_NAME_MAX 64                // name: 1..63 of [A-Za-z0-9._-]
#define KEYS_MODELS_MAX 1024            // comma list of patterns
#define KEYS_META_MAX 4096              // metadata JSON object text
#define KEYS_SECRET_MAX 64              // "sk-aigw-" + 43 base62 characters + NUL
#define KEYS_PREFIX "sk-aigw-"
#define KEYS_WINDOW_S 60                // rpm / tpm window

typedef struct keys_s keys_t;

typedef enum { KEYS_OK = 0, KEYS_UNAUTHORIZED, KEYS_FORBIDDEN, KEYS_RATE_REQUESTS,
               KEYS_RATE_TOKENS, KEYS_PARALLEL, KEYS_QUOTA,
               KEYS_UNAVAILABLE } keys_verdict_t;  // shared limits down, on_failure = closed

typedef enum { KEYS_PERIOD_DAY = 0, KEYS_PERIOD_MONTH = 1 } keys_period_t;

//  The outcome of keys_admit.
typedef struct {
    keys_verdict_t verdict;
    uint64_t ticket;                    // for keys_release (valid on KEYS_OK)
    char name[KEYS_NAME_MAX];           // the key's name ("" if unknown)
    char message[256];                  // client-facing reason; never holds the secret
    int64_t rpm_limit, rpm_remaining, rpm_reset_ms;     // -1 = unlimited
    int64_t tpm_limit, tpm_remaining, tpm_reset_ms;     // -1 = unlimited
    uint32_t retry_after_s;             // for 429s (>= 1)
} keys_admit_t;

//  What an operator sets on a key.
typedef struct {
    char name[KEYS_NAME_MAX];
    char models[KEYS_MODELS_MAX];       // comma list of fnmatch patterns ("*" = any)
    int64_t rpm, tpm, max_parallel;     // 0 = unlimited
    double budget_usd;                  // per period; 0 = none
    keys_period_t budget_period;
    int64_t expires_at;                 // Unix seconds; 0 = never
    char metadata[KEYS_META_MAX];       // JSON object text; "" = none
} keys_spec_t;

//  A key as listed (no secret).
typedef struct {
    keys_spec_t spec;
    char hint[24];                      // "sk-aigw-…WXYZ"
    int64_t created_at;                 // Unix seconds
    int64_t revoked_at;                 // 0 = live
    bool expired;
    int64_t requests_last_minute, tokens_last_minute, in_flight;
    double spend_usd;                   // this period
    int64_t period_start;               // Unix seconds
    uint64_t total_requests, total_tokens;
    double total_spend_usd;
    bool shared;                        // the last-minute, in-flight and spend figures are
                                        // the shared limiter's (else this edge's)
} keys_view_t;

typedef struct _rlimit_t rlimit_t;

//  Open (create if absent) the database at path: created with mode 0600, refused (NULL
//  and a message saying chmod 600) when it exists with any group or other permission
//  bit. Loads every key and starts the flusher thread.
keys_t *keys_open (const char *path, char *err, size_t errlen);
//  Final flush, stop the thread, close. Nulls *self_p; accepts NULL.
void keys_close (keys_t **self_p);

//  Admit one chat request. names: the model names it asked for; each must match one of
//  the key's patterns. Checks, in order: unknown/expired/revoked -> UNAUTHORIZED, model
//  -> FORBIDDEN, budget -> QUOTA, parallel -> PARALLEL, rpm -> RATE_REQUESTS, tokens
//  already at tpm -> RATE_TOKENS. On KEYS_OK one request is counted and a parallel slot
//  taken (give it back with keys_release). now_ms: Unix wall time. Returns the verdict.
int keys_admit (keys_t *self, const char *secret, size_t secret_len,
                const char *const *names, size_t nnames, int64_t now_ms, keys_admit_t *out);
//  The same, for a job that ends within hold_ms (its deadline): with a shared limiter its
//  slot expires by itself hold_ms + RLIMIT_GRACE_MS after now, should this edge die
//  before keys_release. hold_ms <= 0: 10 minutes. With a shared limiter that fails,
//  limits/on_failure applies: local = the checks above on this edge's own counters,
//  open = admitted (no limits known), closed = KEYS_UNAVAILABLE.
int keys_admit_hold (keys_t *self, const char *secret, size_t secret_len,
                     const char *const *names, size_t nnames, int64_t now_ms, int64_t hold_ms,
                     keys_admit_t *out);
//  Is this a live key (known, not expired, not revoked)? Counts nothing.
keys_verdict_t keys_check (keys_t *self, const char *secret, size_t secret_len, int64_t now_ms);
void keys_release (keys_t *self, uint64_t ticket);
//  Charge real usage by key name: tokens into the tpm window, usd into the period's
//  spend and the totals (and into the shared limiter's). -1 for an unknown name
//  (nothing charged).
int keys_charge (keys_t *self, const char *name, uint64_t tokens, double usd, int64_t now_ms);
//  Share rpm, tpm, parallel and spend through rl (not owned; it outlives self), or stop
//  sharing with NULL; call it before requests flow (auth_new does). Counters stay kept here too: they are this edge's share, what
//  on_failure = local limits with, and the SQLite totals.
void keys_set_rlimit (keys_t *self, rlimit_t *rl);
//  Write dirty counters now. 0, or -1 on a database error.
int keys_flush (keys_t *self);

//  Admin. keys_create writes the new secret (NUL-terminated) into secret. Returns 0,
//  -1 on a database error (message in err), -2 when the name is taken (revoked keys
//  keep their name for the record).
int keys_create (keys_t *self, const keys_spec_t *spec, int64_t now_ms, char *secret,
                 size_t secret_size, char *err, size_t errlen);
//  Replace the spec of the key spec->name. 0, -1 database error, -2 no such key.
int keys_update (keys_t *self, const keys_spec_t *spec);
//  Revoke by name (takes effect on the next keys_admit). 0, -1, -2 no such key.
int keys_revoke (keys_t *self, const char *name, int64_t now_ms);
//  One key's view (the shared counters when the shared limiter answers). 0, or -2 when
//  there is no such key.
int keys_get (keys_t *self, const char *name, int64_t now_ms, keys_view_t *out);
//  Keys in creation order: count, and the view of the i-th (0, or -2 past the end).
size_t keys_count (keys_t *self);
int keys_get_at (keys_t *self, size_t i, int64_t now_ms, keys_view_t *out);

//  Name rules: 1..63 characters of [A-Za-z0-9._-].
bool keys_name_ok (const char *name);

#endif
