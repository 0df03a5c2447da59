// Shared per-key limits in Redis (see rlimit.h and docs/limits.md).
#include "rlimit.h"
#include "aclock.h"
#include "log.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define S_PASSWORD_MAX 512
#define S_KEY_MAX 256                   // a Redis key name
#define S_TICKET_MAX 40                 // "<16 hex>-<counter>"

//  --------------------------------------------------------------- scripts

//  KEYS: window hash, slot set, spend counter. ARGV: now_ms, rpm, tpm, max_parallel,
//  budget_nusd, ticket, slot expiry (ms, caller's clock). Returns {verdict,
//  requests, oldest request second, tokens, oldest token second, in flight, spend}.
static const char s_admit_lua[] =
    "local now = tonumber(ARGV[1])\n"
    "local sec = math.floor(now / 1000)\n"
    "local rpm, tpm = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local par, budget = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "local spent = tonumber(redis.call('GET', KEYS[3]) or '0') or 0\n"
    "local req, tok, oreq, otok = 0, 0, -1, -1\n"
    "local f = redis.call('HGETALL', KEYS[1])\n"
    "for i = 1, #f, 2 do\n"
    "  local s, v = tonumber(string.sub(f[i], 2)), tonumber(f[i + 1])\n"
    "  if not s or not v or s <= sec - 60 then\n"
    "    redis.call('HDEL', KEYS[1], f[i])\n"
    "  elseif string.byte(f[i], 1) == 114 then\n"
    "    req = req + v\n"
    "    if v > 0 and (oreq < 0 or s < oreq) then oreq = s end\n"
    "  else\n"
    "    tok = tok + v\n"
    "    if v > 0 and (otok < 0 or s < otok) then otok = s end\n"
    "  end\n"
    "end\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])\n"
    "local inflight = redis.call('ZCARD', KEYS[2])\n"
    "local verdict = 0\n"
    "if budget > 0 and spent >= budget then verdict = 1\n"
    "elseif par > 0 and inflight >= par then verdict = 2\n"
    "elseif rpm > 0 and req >= rpm then verdict = 3\n"
    "elseif tpm > 0 and tok >= tpm then verdict = 4\n"
    "else\n"
    "  redis.call('HINCRBY', KEYS[1], 'r' .. sec, 1)\n"
    "  redis.call('PEXPIRE', KEYS[1], 61000)\n"
    "  req = req + 1\n"
    "  if oreq < 0 or sec < oreq then oreq = sec end\n"
    "  redis.call('ZADD', KEYS[2], ARGV[7], ARGV[6])\n"
    "  inflight = inflight + 1\n"
    "  local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')\n"
    "  redis.call('PEXPIRE', KEYS[2], math.floor(tonumber(last[2]) - now) + 1000)\n"
    "end\n"
    "return {verdict, req, oreq, tok, otok, inflight, spent}\n";

//  KEYS: slot set. ARGV: ticket. Returns 1 if the slot was held, else 0.
static const char s_release_lua[] =
    "return redis.call('ZREM', KEYS[1], ARGV[1])\n";

//  KEYS: window hash, spend counter. ARGV: now_ms, tokens, nusd, spend TTL (s). Every
//  TTL is relative to the caller's clock (Redis's own may differ).
//  Returns the period's spend.
static const char s_charge_lua[] =
    "local sec = math.floor(tonumber(ARGV[1]) / 1000)\n"
    "if tonumber(ARGV[2]) > 0 then\n"
    "  redis.call('HINCRBY', KEYS[1], 't' .. sec, ARGV[2])\n"
    "  redis.call('PEXPIRE', KEYS[1], 61000)\n"
    "end\n"
    "if tonumber(ARGV[3]) > 0 then\n"
    "  local spent = redis.call('INCRBY', KEYS[2], ARGV[3])\n"
    "  redis.call('EXPIRE', KEYS[2], ARGV[4])\n"
    "  return spent\n"
    "end\n"
    "return tonumber(redis.call('GET', KEYS[2]) or '0') or 0\n";

//  KEYS: window hash, slot set, spend counter. ARGV: now_ms. Returns {requests, tokens,
//  in flight, spend}. Changes nothing.
static const char s_view_lua[] =
    "local sec = math.floor(tonumber(ARGV[1]) / 1000)\n"
    "local req, tok = 0, 0\n"
    "local f = redis.call('HGETALL', KEYS[1])\n"
    "for i = 1, #f, 2 do\n"
    "  local s, v = tonumber(string.sub(f[i], 2)), tonumber(f[i + 1])\n"
    "  if s and v and s > sec - 60 then\n"
    "    if string.byte(f[i], 1) == 114 then req = req + v else tok = tok + v end\n"
    "  end\n"
    "end\n"
    "local inflight = redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[1], '+inf')\n"
    "local spent = tonumber(redis.call('GET', KEYS[3]) or '0') or 0\n"
    "return {req, tok, inflight, spent}\n";

typedef enum { S_ADMIT = 0, S_RELEASE, S_CHARGE, S_VIEW, S_SCRIPTS } s_script_t;

static const char *const s_lua[S_SCRIPTS] = { s_admit_lua, s_release_lua, s_charge_lua,
                                              s_view_lua };

//  --------------------------------------------------------------- object

//  One calling thread's connection.
typedef struct s_conn_s {
    redisContext *ctx;                  // NULL while not connected
    int64_t failed_ms;                  // monotonic time of the latest failure; no new
                                        // connect before failed_ms + retry_ms
    struct s_conn_s *next;
} s_conn_t;

struct _rlimit_t {
    cfg_limits_t cfg;
    char endpoint[CFG_STR_MAX + 16];    // for logs: redis://HOST:PORT or unix:PATH
    char password[S_PASSWORD_MAX];      // never logged
    size_t password_len;
    char sha[S_SCRIPTS][41];            // SHA-1 of each script, hex
    uint64_t instance;                  // random: this object's tickets are unique
    _Atomic uint32_t next_ticket;
    _Atomic int64_t retry_ms;
    pthread_key_t tls;                  // the calling thread's s_conn_t
    pthread_mutex_t lock;               // conns, nconns, down_since_ms
    s_conn_t *conns;
    size_t nconns;
    int64_t down_since_ms;              // monotonic start of the outage
    _Atomic bool up;
    _Atomic uint64_t errors;
};

static void s_sha1_hex (const char *text, char out[41])
{
    uint8_t d[20];
    gnutls_hash_fast (GNUTLS_DIG_SHA1, text, strlen (text), d);
    for (int i = 0; i < 20; i++)
        snprintf (out + 2 * i, 3, "%02x", d[i]);
}

static const char *s_mode (const rlimit_t *self)
{
    return cfg_limits_failure_name (self->cfg.on_failure);
}

//  A failure: counted; the first after a success starts an outage and is logged.
static void s_failed (rlimit_t *self, const char *what)
{
    atomic_fetch_add (&self->errors, 1);
    if (!atomic_exchange (&self->up, false))
        return;
    pthread_mutex_lock (&self->lock);
    self->down_since_ms = aclock_now_ms ();
    pthread_mutex_unlock (&self->lock);
    log_warn ("limits: Redis at %s failed (%.200s): applying limits/on_failure = %s until it "
              "answers again", self->endpoint, what, s_mode (self));
}

static void s_succeeded (rlimit_t *self)
{
    if (atomic_load (&self->up) || atomic_exchange (&self->up, true))
        return;
    pthread_mutex_lock (&self->lock);
    int64_t ms = aclock_now_ms () - self->down_since_ms;
    pthread_mutex_unlock (&self->lock);
    log_info ("limits: Redis at %s answers again after an outage of %lld ms: shared limits "
              "apply", self->endpoint, (long long) ms);
}

//  Close a broken connection; no new attempt before the retry delay.
static void s_drop (rlimit_t *self, s_conn_t *c, const char *what)
{
    s_failed (self, what);
    if (c->ctx)
        redisFree (c->ctx);
    c->ctx = NULL;
    c->failed_ms = aclock_now_ms ();
}

static struct timeval s_tv (uint32_t ms)
{
    return (struct timeval) { .tv_sec = ms / 1000, .tv_usec = (suseconds_t) (ms % 1000) * 1000 };
}

//  AUTH on a new connection. 0, or -1 (the context is dropped by the caller).
static int s_auth (rlimit_t *self, redisContext *ctx, char *why, size_t whylen)
{
    if (!self->password_len)
        return 0;
    const char *argv[] = { "AUTH", self->password };
    size_t lens[] = { 4, self->password_len };
    redisReply *r = redisCommandArgv (ctx, 2, argv, lens);
    int rc = r && r->type == REDIS_REPLY_STATUS ? 0 : -1;
    if (rc)                             // never the password; Redis's own words are safe
        snprintf (why, whylen, "AUTH refused: %.100s",
                  !r ? ctx->errstr : r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
    freeReplyObject (r);
    return rc;
}

//  The calling thread's connection, connected; NULL while Redis is down (within the
//  retry delay nothing is tried and nothing counted).
static s_conn_t *s_conn (rlimit_t *self)
{
    s_conn_t *c = pthread_getspecific (self->tls);
    if (!c) {
        pthread_mutex_lock (&self->lock);
        if (self->nconns < RLIMIT_CONNS_MAX && (c = calloc (1, sizeof *c))) {
            c->next = self->conns;
            self->conns = c;
            self->nconns++;
        }
        pthread_mutex_unlock (&self->lock);
        if (!c || pthread_setspecific (self->tls, c)) {
            s_failed (self, "too many threads (or no memory) for a connection");
            return NULL;
        }
    }
    if (c->ctx)
        return c;
    if (c->failed_ms && aclock_now_ms () - c->failed_ms < atomic_load (&self->retry_ms))
        return NULL;
    struct timeval tv = s_tv (self->cfg.redis_timeout_ms);
    c->ctx = self->cfg.kind == CFG_LIMITS_REDIS_UNIX
           ? redisConnectUnixWithTimeout (self->cfg.socket, tv)
           : redisConnectWithTimeout (self->cfg.host, self->cfg.port, tv);
    char why[160];
    if (!c->ctx || c->ctx->err) {
        snprintf (why, sizeof why, "connect: %s", c->ctx ? c->ctx->errstr : "out of memory");
        s_drop (self, c, why);
        return NULL;
    }
    if (redisSetTimeout (c->ctx, tv) != REDIS_OK || s_auth (self, c->ctx, why, sizeof why)) {
        if (c->ctx->err)
            snprintf (why, sizeof why, "connect: %s", c->ctx->errstr);
        s_drop (self, c, why);
        return NULL;
    }
    return c;
}

//  Run a script: EVALSHA, and EVAL when Redis does not know it (restarted, flushed).
//  Returns the reply (caller frees it; never an error reply), or NULL on a failure
//  (counted; the connection is dropped when it broke).
static redisReply *s_eval (rlimit_t *self, s_script_t which, const char **keys, int nkeys,
                           const char **args, int nargs)
{
    s_conn_t *c = s_conn (self);
    if (!c)
        return NULL;
    const char *argv[16];
    size_t lens[16];
    char numkeys[8];
    snprintf (numkeys, sizeof numkeys, "%d", nkeys);
    int argc = 0;
    argv[argc++] = "EVALSHA";
    argv[argc++] = self->sha[which];
    argv[argc++] = numkeys;
    for (int i = 0; i < nkeys; i++)
        argv[argc++] = keys[i];
    for (int i = 0; i < nargs; i++)
        argv[argc++] = args[i];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen (argv[i]);
    redisReply *r = redisCommandArgv (c->ctx, argc, argv, lens);
    if (r && r->type == REDIS_REPLY_ERROR && strncmp (r->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject (r);
        argv[0] = "EVAL";
        argv[1] = s_lua[which];
        lens[0] = 4;
        lens[1] = strlen (s_lua[which]);
        r = redisCommandArgv (c->ctx, argc, argv, lens);
    }
    if (!r) {
        char why[160];
        snprintf (why, sizeof why, "%s", c->ctx->errstr[0] ? c->ctx->errstr : "no reply");
        s_drop (self, c, why);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        s_failed (self, r->str ? r->str : "error reply");
        freeReplyObject (r);
        return NULL;
    }
    return r;
}

//  Key names: PREFIX{NAME}:w (window), :p (slots), :s:PERIOD (spend). The braces keep one
//  key's counters in one Redis Cluster slot.
static int s_keyname (const rlimit_t *self, char *out, const char *name, const char *what,
                      int64_t period)
{
    int n = period >= 0
          ? snprintf (out, S_KEY_MAX, "%s{%s}:%s:%" PRId64, self->cfg.prefix, name, what, period)
          : snprintf (out, S_KEY_MAX, "%s{%s}:%s", self->cfg.prefix, name, what);
    return n > 0 && n < S_KEY_MAX ? 0 : -1;
}

static void s_ticket (const rlimit_t *self, uint32_t ticket, char out[S_TICKET_MAX])
{
    snprintf (out, S_TICKET_MAX, "%016" PRIx64 "-%" PRIu32, self->instance, ticket);
}

//  --------------------------------------------------------------- replies

static bool s_int (const redisReply *r, long long lo, long long hi, int64_t *out)
{
    if (!r || r->type != REDIS_REPLY_INTEGER || r->integer < lo || r->integer > hi)
        return false;
    *out = (int64_t) r->integer;
    return true;
}

int rlimit_parse_admit (const redisReply *r, rlimit_result_t *out)
{
    memset (out, 0, sizeof *out);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 7 || !r->element)
        return -1;
    int64_t v;
    if (!s_int (r->element[0], RLIMIT_OK, RLIMIT_RATE_TOKENS, &v))
        return -1;
    out->verdict = (rlimit_verdict_t) v;
    return s_int (r->element[1], 0, LLONG_MAX, &out->requests)
        && s_int (r->element[2], -1, LLONG_MAX, &out->oldest_request_s)
        && s_int (r->element[3], 0, LLONG_MAX, &out->tokens)
        && s_int (r->element[4], -1, LLONG_MAX, &out->oldest_token_s)
        && s_int (r->element[5], 0, LLONG_MAX, &out->in_flight)
        && s_int (r->element[6], 0, LLONG_MAX, &out->spend_nusd) ? 0 : -1;
}

int rlimit_parse_view (const redisReply *r, rlimit_result_t *out)
{
    memset (out, 0, sizeof *out);
    out->oldest_request_s = out->oldest_token_s = -1;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 4 || !r->element)
        return -1;
    return s_int (r->element[0], 0, LLONG_MAX, &out->requests)
        && s_int (r->element[1], 0, LLONG_MAX, &out->tokens)
        && s_int (r->element[2], 0, LLONG_MAX, &out->in_flight)
        && s_int (r->element[3], 0, LLONG_MAX, &out->spend_nusd) ? 0 : -1;
}

//  A reply that parsed wrongly: an error like any other (Redis answered, though).
static int s_malformed (rlimit_t *self, const char *script)
{
    char why[96];
    snprintf (why, sizeof why, "malformed reply to the %s script", script);
    s_failed (self, why);
    return -1;
}

//  --------------------------------------------------------------- API

rlimit_t *rlimit_new (const cfg_limits_t *cfg, char *err, size_t errlen)
{
    if (cfg->kind == CFG_LIMITS_MEMORY) {
        snprintf (err, errlen, "limits/backend is memory: no Redis limiter");
        return NULL;
    }
    rlimit_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    self->cfg = *cfg;
    if (cfg->kind == CFG_LIMITS_REDIS_UNIX)
        snprintf (self->endpoint, sizeof self->endpoint, "unix:%s", cfg->socket);
    else
        snprintf (self->endpoint, sizeof self->endpoint, strchr (cfg->host, ':')
                  ? "redis://[%s]:%u" : "redis://%s:%u", cfg->host, (unsigned) cfg->port);
    if (cfg->redis_password_env[0]) {
        const char *pw = getenv (cfg->redis_password_env);
        size_t len = pw ? strlen (pw) : 0;
        if (!len || len >= S_PASSWORD_MAX) {
            snprintf (err, errlen, "limits/redis_password_env: $%s is %s", cfg->redis_password_env,
                      len ? "too long (511 characters at most)" : "empty or not set");
            free (self);
            return NULL;
        }
        memcpy (self->password, pw, len);
        self->password_len = len;
    }
    for (int i = 0; i < S_SCRIPTS; i++)
        s_sha1_hex (s_lua[i], self->sha[i]);
    if (gnutls_rnd (GNUTLS_RND_NONCE, &self->instance, sizeof self->instance) != 0)
        self->instance = (uint64_t) aclock_wall_ms () ^ ((uint64_t) aclock_now_us () << 20);
    atomic_init (&self->retry_ms, RLIMIT_RETRY_MS);
    atomic_init (&self->up, true);
    pthread_mutex_init (&self->lock, NULL);
    if (pthread_key_create (&self->tls, NULL)) {
        snprintf (err, errlen, "no thread-local key left");
        pthread_mutex_destroy (&self->lock);
        free (self);
        return NULL;
    }
    s_conn_t *c = s_conn (self);
    redisReply *r = c ? redisCommand (c->ctx, "PING") : NULL;
    if (c && (!r || r->type == REDIS_REPLY_ERROR))
        s_drop (self, c, r ? r->str : c->ctx->errstr);
    else
    if (c)
        log_info ("limits: shared through Redis at %s (on_failure = %s)", self->endpoint,
                  s_mode (self));
    freeReplyObject (r);
    return self;
}

void rlimit_destroy (rlimit_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rlimit_t *self = *self_p;
    *self_p = NULL;
    for (s_conn_t *c = self->conns, *next; c; c = next) {
        next = c->next;
        if (c->ctx)
            redisFree (c->ctx);
        free (c);
    }
    pthread_key_delete (self->tls);
    pthread_mutex_destroy (&self->lock);
    gnutls_memset (self->password, 0, sizeof self->password);
    free (self);
}

int rlimit_admit (rlimit_t *self, const char *name, const rlimit_spec_t *spec, int64_t now_ms,
                  rlimit_result_t *out)
{
    char kw[S_KEY_MAX], kp[S_KEY_MAX], ks[S_KEY_MAX];
    if (s_keyname (self, kw, name, "w", -1) || s_keyname (self, kp, name, "p", -1)
        || s_keyname (self, ks, name, "s", spec->period_start))
        return -1;
    uint32_t ticket = atomic_fetch_add (&self->next_ticket, 1) + 1;
    char a[7][32], tk[S_TICKET_MAX];
    s_ticket (self, ticket, tk);
    int64_t vals[] = { now_ms, spec->rpm, spec->tpm, spec->max_parallel, spec->budget_nusd };
    for (int i = 0; i < 5; i++)
        snprintf (a[i], sizeof a[i], "%" PRId64, vals[i]);
    snprintf (a[6], sizeof a[6], "%" PRId64, now_ms + (spec->hold_ms > 0 ? spec->hold_ms : 1));
    const char *keys[] = { kw, kp, ks };
    const char *args[] = { a[0], a[1], a[2], a[3], a[4], tk, a[6] };
    redisReply *r = s_eval (self, S_ADMIT, keys, 3, args, 7);
    if (!r)
        return -1;
    int rc = rlimit_parse_admit (r, out);
    freeReplyObject (r);
    if (rc)
        return s_malformed (self, "admit");
    out->ticket = out->verdict == RLIMIT_OK ? ticket : 0;
    s_succeeded (self);
    return 0;
}

int rlimit_release (rlimit_t *self, const char *name, uint32_t ticket)
{
    char kp[S_KEY_MAX], tk[S_TICKET_MAX];
    if (s_keyname (self, kp, name, "p", -1))
        return -1;
    s_ticket (self, ticket, tk);
    const char *keys[] = { kp };
    const char *args[] = { tk };
    redisReply *r = s_eval (self, S_RELEASE, keys, 1, args, 1);
    if (!r)
        return -1;
    int64_t held;
    bool ok = s_int (r, 0, 1, &held);
    freeReplyObject (r);
    if (!ok)
        return s_malformed (self, "release");
    s_succeeded (self);
    return 0;
}

int rlimit_charge (rlimit_t *self, const char *name, uint64_t tokens, int64_t nusd,
                   int64_t period_start, int64_t period_end, int64_t now_ms)
{
    char kw[S_KEY_MAX], ks[S_KEY_MAX];
    if (s_keyname (self, kw, name, "w", -1) || s_keyname (self, ks, name, "s", period_start))
        return -1;
    char a[4][32];
    snprintf (a[0], sizeof a[0], "%" PRId64, now_ms);
    snprintf (a[1], sizeof a[1], "%" PRIu64, tokens > INT64_MAX ? (uint64_t) INT64_MAX : tokens);
    snprintf (a[2], sizeof a[2], "%" PRId64, nusd > 0 ? nusd : 0);
    int64_t ttl = period_end + 86400 - now_ms / 1000;     // kept a day past the period
    snprintf (a[3], sizeof a[3], "%" PRId64, ttl > 1 ? ttl : 1);
    const char *keys[] = { kw, ks };
    const char *args[] = { a[0], a[1], a[2], a[3] };
    redisReply *r = s_eval (self, S_CHARGE, keys, 2, args, 4);
    if (!r)
        return -1;
    int64_t spent;
    bool ok = s_int (r, 0, LLONG_MAX, &spent);
    freeReplyObject (r);
    if (!ok)
        return s_malformed (self, "charge");
    s_succeeded (self);
    return 0;
}

int rlimit_view (rlimit_t *self, const char *name, int64_t period_start, int64_t now_ms,
                 rlimit_result_t *out)
{
    char kw[S_KEY_MAX], kp[S_KEY_MAX], ks[S_KEY_MAX];
    if (s_keyname (self, kw, name, "w", -1) || s_keyname (self, kp, name, "p", -1)
        || s_keyname (self, ks, name, "s", period_start))
        return -1;
    char now[32];
    snprintf (now, sizeof now, "%" PRId64, now_ms);
    const char *keys[] = { kw, kp, ks };
    const char *args[] = { now };
    redisReply *r = s_eval (self, S_VIEW, keys, 3, args, 1);
    if (!r)
        return -1;
    int rc = rlimit_parse_view (r, out);
    freeReplyObject (r);
    if (rc)
        return s_malformed (self, "view");
    s_succeeded (self);
    return 0;
}

cfg_limits_failure_t rlimit_on_failure (const rlimit_t *self)
{
    return self->cfg.on_failure;
}

bool rlimit_up (const rlimit_t *self)
{
    return atomic_load (&((rlimit_t *) self)->up);
}

uint64_t rlimit_errors (const rlimit_t *self)
{
    return atomic_load (&((rlimit_t *) self)->errors);
}

void rlimit_set_retry_ms (rlimit_t *self, int64_t ms)
{
    atomic_store (&self->retry_ms, ms > 0 ? ms : 1);
}
