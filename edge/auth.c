// The edge's shield (see auth.h).
#include "auth.h"
#include "log.h"
#include "rlimit.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_ADMIN_MAX 512

struct _auth_t {
    const cfg_t *cfg;
    keys_t *keys;
    rlimit_t *rl;                       // shared limits (limits/backend = redis), or NULL
    spend_t *spend;
    char admin[S_ADMIN_MAX];            // the admin key; never logged
    size_t admin_len;
    _Atomic uint64_t admitted;
    _Atomic uint64_t refused[KEYS_QUOTA + 1];
    _Atomic uint64_t admin_refused;
    _Atomic uint64_t admin_calls;
    _Atomic uint64_t limits_refused;
};

auth_t *auth_new (const cfg_t *cfg, emetrics_t *em, char *err, size_t errlen)
{
    auth_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    self->cfg = cfg;
    const char *admin = getenv (cfg->edge.admin_key_env);
    if (admin && *admin) {
        size_t len = strlen (admin);
        if (len < AUTH_ADMIN_MIN || len >= S_ADMIN_MAX) {
            snprintf (err, errlen, "the admin key in $%s must be %d to %d characters "
                      "(e.g. openssl rand -hex 24)", cfg->edge.admin_key_env, AUTH_ADMIN_MIN,
                      S_ADMIN_MAX - 1);
            free (self);
            return NULL;
        }
        memcpy (self->admin, admin, len);
        self->admin_len = len;
    }
    if (cfg->edge.keys_db[0]) {
        self->keys = keys_open (cfg->edge.keys_db, err, errlen);
        if (!self->keys) {
            free (self);
            return NULL;
        }
    }
    if (self->keys && cfg->limits.kind != CFG_LIMITS_MEMORY) {
        self->rl = rlimit_new (&cfg->limits, err, errlen);
        if (!self->rl) {
            auth_destroy (&self);
            return NULL;
        }
        keys_set_rlimit (self->keys, self->rl);
    }
    self->spend = spend_new (cfg, self->keys, em);
    if (!self->spend) {
        snprintf (err, errlen, "out of memory");
        auth_destroy (&self);
        return NULL;
    }
    if (cfg->edge.auth && !self->admin_len)
        log_warn ("edge/auth is on but $%s is empty: /metrics, /v1/aigw/events and the "
                  "admin API refuse everyone", cfg->edge.admin_key_env);
    return self;
}

void auth_destroy (auth_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    auth_t *self = *self_p;
    *self_p = NULL;
    spend_destroy (&self->spend);
    keys_close (&self->keys);
    rlimit_destroy (&self->rl);
    memset (self->admin, 0, sizeof self->admin);
    free (self);
}

bool auth_required (const auth_t *self)
{
    return self->cfg->edge.auth;
}

keys_t *auth_keys (auth_t *self)
{
    return self->keys;
}

spend_t *auth_spend (auth_t *self)
{
    return self->spend;
}

bool auth_admin_set (const auth_t *self)
{
    return self->admin_len > 0;
}

static bool s_space (char c)
{
    return c == ' ' || c == '\t';
}

const char *auth_secret (const char *authorization, const char *x_api_key, size_t *len)
{
    const char *v = NULL;
    if (authorization) {
        const char *p = authorization;
        while (s_space (*p))
            p++;
        if (strncasecmp (p, "Bearer", 6) == 0 && s_space (p[6])) {
            v = p + 7;
            while (s_space (*v))
                v++;
        }
    }
    if ((!v || !*v) && x_api_key) {
        v = x_api_key;
        while (s_space (*v))
            v++;
    }
    if (!v || !*v)
        return NULL;
    size_t n = strlen (v);
    while (n && s_space (v[n - 1]))
        n--;
    *len = n;
    return n ? v : NULL;
}

bool auth_is_admin (auth_t *self, const char *secret, size_t len, bool count)
{
    if (!self->admin_len || !secret) {
        if (count)
            atomic_fetch_add (&self->admin_refused, 1);
        return false;
    }
    //  Every byte of the configured key is compared whatever the secret's length
    unsigned diff = len != self->admin_len;
    for (size_t i = 0; i < self->admin_len; i++)
        diff |= (unsigned) (self->admin[i] ^ (i < len ? secret[i] : 0));
    bool ok = diff == 0;
    if (count)
        atomic_fetch_add (ok ? &self->admin_calls : &self->admin_refused, 1);
    return ok;
}

void auth_count (auth_t *self, keys_verdict_t verdict)
{
    if (verdict == KEYS_UNAVAILABLE)
        atomic_fetch_add (&self->limits_refused, 1);
    else
    if (verdict == KEYS_OK)
        atomic_fetch_add (&self->admitted, 1);
    else
    if (verdict > KEYS_OK && verdict <= KEYS_QUOTA)
        atomic_fetch_add (&self->refused[verdict], 1);
}

void auth_stats (auth_t *self, auth_stats_t *out)
{
    memset (out, 0, sizeof *out);
    out->admitted = atomic_load (&self->admitted);
    for (int i = 0; i <= KEYS_QUOTA; i++)
        out->refused[i] = atomic_load (&self->refused[i]);
    out->admin_refused = atomic_load (&self->admin_refused);
    out->admin_calls = atomic_load (&self->admin_calls);
    out->limits_refused = atomic_load (&self->limits_refused);
    out->limits_shared = self->rl != NULL;
    out->limits_up = self->rl && rlimit_up (self->rl);
    out->limits_errors = self->rl ? rlimit_errors (self->rl) : 0;
}

void auth_duration (int64_t ms, char *buf, size_t size)
{
    if (ms < 0)
        ms = 0;
    if (ms < 1000)
        snprintf (buf, size, "%lldms", (long long) ms);
    else
    if (ms < 60000) {
        long long s = ms / 1000, frac = ms % 1000;
        if (frac == 0)
            snprintf (buf, size, "%llds", s);
        else {
            char f[8];
            snprintf (f, sizeof f, "%03lld", frac);
            size_t n = strlen (f);
            while (n && f[n - 1] == '0')
                f[--n] = 0;
            snprintf (buf, size, "%lld.%ss", s, f);
        }
    }
    else {
        long long s = (ms + 999) / 1000;
        if (s < 3600)
            snprintf (buf, size, "%lldm%llds", s / 60, s % 60);
        else
            snprintf (buf, size, "%lldh%lldm%llds", s / 3600, s / 60 % 60, s % 60);
    }
}

static size_t s_line (char *buf, size_t size, size_t o, const char *name, const char *value)
{
    if (o >= size)
        return o;
    int n = snprintf (buf + o, size - o, "%s: %s\n", name, value);
    return n < 0 || (size_t) n >= size - o ? size : o + (size_t) n;
}

static size_t s_limit (char *buf, size_t size, size_t o, const char *what, int64_t limit,
                       int64_t remaining, int64_t reset_ms)
{
    if (limit < 0)
        return o;
    char name[64], value[32];
    snprintf (name, sizeof name, "x-ratelimit-limit-%s", what);
    snprintf (value, sizeof value, "%lld", (long long) limit);
    o = s_line (buf, size, o, name, value);
    snprintf (name, sizeof name, "x-ratelimit-remaining-%s", what);
    snprintf (value, sizeof value, "%lld", (long long) (remaining > 0 ? remaining : 0));
    o = s_line (buf, size, o, name, value);
    snprintf (name, sizeof name, "x-ratelimit-reset-%s", what);
    auth_duration (reset_ms, value, sizeof value);
    return s_line (buf, size, o, name, value);
}

void auth_ratelimit_headers (const keys_admit_t *a, bool retry, char *buf, size_t size)
{
    if (!size)
        return;
    buf[0] = 0;
    size_t o = s_limit (buf, size, 0, "requests", a->rpm_limit, a->rpm_remaining,
                        a->rpm_reset_ms);
    o = s_limit (buf, size, o, "tokens", a->tpm_limit, a->tpm_remaining, a->tpm_reset_ms);
    if (retry) {
        char value[16];
        snprintf (value, sizeof value, "%u", a->retry_after_s ? a->retry_after_s : 1);
        o = s_line (buf, size, o, "Retry-After", value);
    }
    if (o >= size)
        buf[0] = 0;                     // never half a header
}

int auth_check_exposure (const cfg_t *cfg, char *err, size_t errlen)
{
    if (cfg->edge.auth || cfg->edge.insecure || cfg_is_loopback (cfg->edge.listen))
        return 0;
    snprintf (err, errlen, "edge/listen = %s is reachable beyond this machine and edge/auth is "
              "off: anyone could spend the gateway's upstream keys. Turn keys on "
              "(edge/auth = on, edge/keys_db = FILE, export %s; see docs/security.md), listen "
              "on 127.0.0.1, or set edge/insecure = true to accept the risk",
              cfg->edge.listen, cfg->edge.admin_key_env);
    return -1;
}
