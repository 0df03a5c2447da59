// The edge's shield: who may call what. Holds the key store (edge/keys_db), the admin
// key (from the environment variable edge/admin_key_env, read once at start), the
// shared limiter (limits/backend = redis; edge/rlimit.h), the spend accounting, and the
// counters of every refusal. No HTTP here: http.c asks.
#ifndef AIGW_EDGE_AUTH_H
#define AIGW_EDGE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "emetrics.h"
#include "keys.h"
#include "spend.h"

typedef struct _auth_t auth_t;

#define AUTH_ADMIN_MIN 16               // shortest admin key accepted

typedef struct {
    uint64_t admitted;                  // chat requests a key let through
    uint64_t refused[KEYS_QUOTA + 1];   // by keys_verdict_t (KEYS_OK slot unused)
    uint64_t admin_refused;             // admin-only routes without the admin key
    uint64_t admin_calls;               // admin API calls made with the admin key
    uint64_t limits_refused;            // 503 limits_unavailable (on_failure = closed)
    bool limits_shared;                 // limits/backend is Redis
    bool limits_up;                     // ... and the latest call reached it
    uint64_t limits_errors;             // Redis errors and timeouts
} auth_stats_t;

//  Open the key database (when edge/keys_db is set) and read the admin key. NULL with
//  a message in err (key database refused, admin key too short, auth on without it...).
//  cfg and em outlive the object.
auth_t *auth_new (const cfg_t *cfg, emetrics_t *em, char *err, size_t errlen);
void auth_destroy (auth_t **self_p);

//  Is edge/auth on (chat and models need a key; metrics, events, admin the admin key)?
bool auth_required (const auth_t *self);
//  The key store, or NULL when edge/keys_db is not set.
keys_t *auth_keys (auth_t *self);
spend_t *auth_spend (auth_t *self);
//  Is an admin key configured?
bool auth_admin_set (const auth_t *self);

//  The secret a client presented: "Authorization: Bearer X" (case-insensitive scheme)
//  or "x-api-key: X". Returns a pointer into the header value and its length, or NULL.
const char *auth_secret (const char *authorization, const char *x_api_key, size_t *len);

//  Is secret the admin key? Constant time in the secret's bytes; false when no admin
//  key is set. Counts admin_calls / admin_refused when count is true.
bool auth_is_admin (auth_t *self, const char *secret, size_t len, bool count);

void auth_count (auth_t *self, keys_verdict_t verdict);
void auth_stats (auth_t *self, auth_stats_t *out);

//  "x-ratelimit-*" header lines ("Name: value\n") for an admission, plus Retry-After
//  when retry is true. Limits that are unlimited (-1) are left out.
void auth_ratelimit_headers (const keys_admit_t *a, bool retry, char *buf, size_t size);

//  A duration the way OpenAI writes x-ratelimit-reset-*: "20ms", "1.5s", "6m0s".
void auth_duration (int64_t ms, char *buf, size_t size);

//  Protected mode: refuse a non-loopback edge/listen with auth off unless
//  edge/insecure = true. Returns 0, or -1 with the reason in err.
int auth_check_exposure (const cfg_t *cfg, char *err, size_t errlen);

#endif
