// Unit tests for the Redis-shared limiter (edge/rlimit.c) and its use by edge/keys.c,
// against a real redis-server this test starts on a unix socket in a temp dir (no TCP
// port). Clock-free: every call gets an explicit now_ms. Skipped when redis-server is
// not installed.
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "keys.h"
#include "keys_fixture.h"
#include "rlimit.h"

#define S_T0 (1767229200LL * 1000)      // 2026-01-01T01:00:00.000Z, a second boundary
#define S_PERIOD 1767225600LL           // that day's start
#define S_WAIT_POLLS 2000               // polls of 5 ms: 10 s at most for an event

//  The redis-server of the whole run.
static struct {
    bool installed;
    char dir[64];
    char sock[128];
    pid_t pid;
} s_redis;

//  --------------------------------------------------------------- redis-server

static bool s_in_path (const char *prog)
{
    const char *path = getenv ("PATH");
    char buf[4096];
    snprintf (buf, sizeof buf, "%s", path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r (buf, ":", &save); d; d = strtok_r (NULL, ":", &save)) {
        char full[4200];
        snprintf (full, sizeof full, "%s/%s", d, prog);
        if (access (full, X_OK) == 0)
            return true;
    }
    return false;
}

static void s_pause (void)
{
    struct timespec ts = { 0, 5 * 1000 * 1000 };
    nanosleep (&ts, NULL);
}

static redisContext *s_direct (void)
{
    struct timeval tv = { 1, 0 };
    redisContext *c = redisConnectUnixWithTimeout (s_redis.sock, tv);
    if (c && c->err) {
        redisFree (c);
        return NULL;
    }
    return c;
}

//  Does the server answer PING with PONG?
static bool s_pong (void)
{
    redisContext *c = s_direct ();
    if (!c)
        return false;
    redisReply *r = redisCommand (c, "PING");
    bool ok = r && r->type == REDIS_REPLY_STATUS && strcmp (r->str, "PONG") == 0;
    freeReplyObject (r);
    redisFree (c);
    return ok;
}

static void s_redis_start (void)
{
    s_redis.pid = fork ();
    assert_true (s_redis.pid >= 0);
    if (s_redis.pid == 0) {
        int null = open ("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2 (null, 1);
            dup2 (null, 2);
        }
        execlp ("redis-server", "redis-server", "--port", "0", "--unixsocket", s_redis.sock,
                "--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir",
                s_redis.dir, (char *) NULL);
        _exit (127);
    }
    for (int i = 0; i < S_WAIT_POLLS; i++) {
        if (s_pong ())
            return;
        int status;
        assert_int_equal (waitpid (s_redis.pid, &status, WNOHANG), 0);   // still running
        s_pause ();
    }
    fail_msg ("redis-server did not answer PING on %s", s_redis.sock);
}

static void s_redis_kill (void)
{
    if (s_redis.pid > 0) {
        kill (s_redis.pid, SIGKILL);
        waitpid (s_redis.pid, NULL, 0);
    }
    s_redis.pid = 0;
}

static void s_redis_cmd (const char *fmt, const char *arg)
{
    redisContext *c = s_direct ();
    assert_non_null (c);
    redisReply *r = arg ? redisCommand (c, fmt, arg) : redisCommand (c, fmt);
    assert_non_null (r);
    assert_int_not_equal (r->type, REDIS_REPLY_ERROR);
    freeReplyObject (r);
    redisFree (c);
}

static int s_group_setup (void **state)
{
    s_redis.installed = s_in_path ("redis-server");
    if (!s_redis.installed)
        return 0;
    snprintf (s_redis.dir, sizeof s_redis.dir, "/tmp/aigw-rlimit-XXXXXX");
    assert_non_null (mkdtemp (s_redis.dir));
    snprintf (s_redis.sock, sizeof s_redis.sock, "%s/redis.sock", s_redis.dir);
    s_redis_start ();
    return 0;
}

static int s_group_teardown (void **state)
{
    if (!s_redis.installed)
        return 0;
    s_redis_kill ();
    unlink (s_redis.sock);
    char p[160];
    snprintf (p, sizeof p, "%s/dump.rdb", s_redis.dir);
    unlink (p);
    rmdir (s_redis.dir);
    return 0;
}

//  Per test: skip without redis-server; a running, empty server; a key store.
static int s_setup (void **state)
{
    if (!s_redis.installed)
        return 0;
    if (!s_redis.pid)
        s_redis_start ();
    s_redis_cmd ("FLUSHALL", NULL);
    return keys_fixture_setup (state);
}

static int s_teardown (void **state)
{
    if (!s_redis.installed)
        return 0;
    return keys_fixture_teardown (state);
}

#define S_NEED_REDIS() do { if (!s_redis.installed) skip (); } while (0)

//  --------------------------------------------------------------- helpers

static rlimit_t *s_limiter (cfg_limits_failure_t mode)
{
    cfg_limits_t cfg = { .kind = CFG_LIMITS_REDIS_UNIX, .redis_timeout_ms = 1000,
                         .on_failure = mode };
    snprintf (cfg.backend, sizeof cfg.backend, "unix:%s", s_redis.sock);
    snprintf (cfg.socket, sizeof cfg.socket, "%s", s_redis.sock);
    snprintf (cfg.prefix, sizeof cfg.prefix, "test:");
    char err[256] = "";
    rlimit_t *rl = rlimit_new (&cfg, err, sizeof err);
    if (!rl)
        fprintf (stderr, "rlimit_new: %s\n", err);
    assert_non_null (rl);
    return rl;
}

static rlimit_spec_t s_spec (int64_t rpm, int64_t tpm, int64_t par, int64_t budget_nusd)
{
    return (rlimit_spec_t) { .rpm = rpm, .tpm = tpm, .max_parallel = par,
                             .budget_nusd = budget_nusd, .period_start = S_PERIOD,
                             .period_end = S_PERIOD + 86400, .hold_ms = 60000 };
}

static rlimit_verdict_t s_admit (rlimit_t *rl, const char *name, const rlimit_spec_t *sp,
                                 int64_t now_ms, rlimit_result_t *out)
{
    rlimit_result_t tmp;
    rlimit_result_t *r = out ? out : &tmp;
    assert_int_equal (rlimit_admit (rl, name, sp, now_ms, r), 0);
    return r->verdict;
}

//  A key in f's store with these limits; its secret into secret.
static void s_key (s_fix_t *f, const char *name, int64_t rpm, int64_t par, char *secret)
{
    keys_spec_t spec = { .rpm = rpm, .max_parallel = par };
    snprintf (spec.name, sizeof spec.name, "%s", name);
    snprintf (spec.models, sizeof spec.models, "*");
    char err[128];
    assert_int_equal (keys_create (f->keys, &spec, S_T0, secret, KEYS_SECRET_MAX, err,
                                   sizeof err), 0);
}

static keys_verdict_t s_kadmit (keys_t *keys, const char *secret, int64_t now_ms,
                                keys_admit_t *out)
{
    const char *names[] = { "m" };
    return (keys_verdict_t) keys_admit (keys, secret, strlen (secret), names, 1, now_ms, out);
}

//  --------------------------------------------------------------- shared counters

static void test_admit_release_parallel (void **state)
{
    S_NEED_REDIS ();
    rlimit_t *rl = s_limiter (CFG_LIMITS_LOCAL);
    rlimit_spec_t sp = s_spec (0, 0, 2, 0);
    rlimit_result_t a, b, c;
    assert_int_equal (s_admit (rl, "k", &sp, S_T0, &a), RLIMIT_OK);
    assert_int_equal (a.in_flight, 1);
    assert_int_equal (s_admit (rl, "k", &sp, S_T0, &b), RLIMIT_OK);
    assert_int_equal (b.in_flight, 2);
    assert_int_not_equal (a.ticket, b.ticket);
    assert_int_equal (s_admit (rl, "k", &sp, S_T0, &c), RLIMIT_PARALLEL);
    assert_int_equal (c.ticket, 0);
    assert_int_equal (rlimit_release (rl, "k", a.ticket), 0);
    assert_int_equal (s_admit (rl, "k", &sp, S_T0 + 1, &c), RLIMIT_OK);
    //  Another key has its own slots
    assert_int_equal (s_admit (rl, "other", &sp, S_T0, NULL), RLIMIT_OK);
    assert_true (rlimit_up (rl));
    assert_int_equal (rlimit_errors (rl), 0);
    rlimit_destroy (&rl);
    assert_null (rl);
    rlimit_destroy (&rl);               // twice is fine
}

static void test_rpm_window (void **state)
{
    S_NEED_REDIS ();
    rlimit_t *rl = s_limiter (CFG_LIMITS_LOCAL);
    rlimit_spec_t sp = s_spec (5, 0, 0, 0);
    rlimit_result_t r;
    //  A burst of exactly rpm requests, spread over the minute, is admitted
    for (int i = 0; i < 5; i++) {
        assert_int_equal (s_admit (rl, "k", &sp, S_T0 + i * 10000, &r), RLIMIT_OK);
        assert_int_equal (r.requests, i + 1);
        assert_int_equal (r.oldest_request_s, S_T0 / 1000);
    }
    //  ... the next is refused until the oldest second leaves the window
    assert_int_equal (s_admit (rl, "k", &sp, S_T0 + 59999, &r), RLIMIT_RATE_REQUESTS);
    assert_int_equal (r.requests, 5);
    assert_int_equal (r.oldest_request_s, S_T0 / 1000);
    assert_int_equal (s_admit (rl, "k", &sp, S_T0 + 60000, &r), RLIMIT_OK);
    assert_int_equal (r.requests, 5);   // 4 left in the window + this one
    assert_int_equal (r.oldest_request_s, S_T0 / 1000 + 10);
    rlimit_destroy (&rl);
}

static void test_two_edges_share (void **state)
{
    S_NEED_REDIS ();
    rlimit_t *a = s_limiter (CFG_LIMITS_LOCAL), *b = s_limiter (CFG_LIMITS_LOCAL);
    rlimit_spec_t sp = s_spec (4, 0, 0, 0);
    assert_int_equal (s_admit (a, "k", &sp, S_T0, NULL), RLIMIT_OK);
    assert_int_equal (s_admit (b, "k", &sp, S_T0 + 1, NULL), RLIMIT_OK);
    assert_int_equal (s_admit (a, "k", &sp, S_T0 + 2, NULL), RLIMIT_OK);
    assert_int_equal (s_admit (b, "k", &sp, S_T0 + 3, NULL), RLIMIT_OK);
    assert_int_equal (s_admit (a, "k", &sp, S_T0 + 4, NULL), RLIMIT_RATE_REQUESTS);
    assert_int_equal (s_admit (b, "k", &sp, S_T0 + 5, NULL), RLIMIT_RATE_REQUESTS);
    //  Parallel slots too: tickets of different edges never collide
    rlimit_spec_t par = s_spec (0, 0, 2, 0);
    rlimit_result_t ra, rb;
    assert_int_equal (s_admit (a, "p", &par, S_T0, &ra), RLIMIT_OK);
    assert_int_equal (s_admit (b, "p", &par, S_T0, &rb), RLIMIT_OK);
    assert_int_equal (s_admit (a, "p", &par, S_T0, NULL), RLIMIT_PARALLEL);
    assert_int_equal (rlimit_release (b, "p", rb.ticket), 0);
    assert_int_equal (rlimit_release (b, "p", ra.ticket), 0);   // b's ticket space: no-op
    assert_int_equal (s_admit (a, "p", &par, S_T0, NULL), RLIMIT_OK);
    assert_int_equal (s_admit (b, "p", &par, S_T0, NULL), RLIMIT_PARALLEL);
    rlimit_destroy (&a);
    rlimit_destroy (&b);
}

static void test_charge_tpm_budget (void **state)
{
    S_NEED_REDIS ();
    rlimit_t *rl = s_limiter (CFG_LIMITS_LOCAL);
    rlimit_spec_t sp = s_spec (0, 100, 0, 0);
    rlimit_result_t r;
    assert_int_equal (s_admit (rl, "k", &sp, S_T0, &r), RLIMIT_OK);
    assert_int_equal (rlimit_charge (rl, "k", 60, 0, S_PERIOD, S_PERIOD + 86400, S_T0 + 1000), 0);
    assert_int_equal (s_admit (rl, "k", &sp, S_T0 + 2000, &r), RLIMIT_OK);
    assert_int_equal (r.tokens, 60);
    assert_int_equal (r.oldest_token_s, S_T0 / 1000 + 1);
    assert_int_equal (rlimit_charge (rl, "k", 40, 0, S_PERIOD, S_PERIOD + 86400, S_T0 + 3000), 0);
    assert_int_equal (s_admit (rl, "k", &sp, S_T0 + 4000, &r), RLIMIT_RATE_TOKENS);
    assert_int_equal (r.tokens, 100);
    assert_int_equal (s_admit (rl, "k", &sp, S_T0 + 61000, &r), RLIMIT_OK);   // 60 left
    assert_int_equal (r.tokens, 40);

    rlimit_spec_t bud = s_spec (0, 0, 0, 1000);
    assert_int_equal (s_admit (rl, "b", &bud, S_T0, &r), RLIMIT_OK);
    assert_int_equal (rlimit_charge (rl, "b", 5, 999, S_PERIOD, S_PERIOD + 86400, S_T0), 0);
    assert_int_equal (s_admit (rl, "b", &bud, S_T0, &r), RLIMIT_OK);
    assert_int_equal (r.spend_nusd, 999);
    assert_int_equal (rlimit_charge (rl, "b", 0, 1, S_PERIOD, S_PERIOD + 86400, S_T0), 0);
    assert_int_equal (s_admit (rl, "b", &bud, S_T0, &r), RLIMIT_QUOTA);
    rlimit_result_t v;
    assert_int_equal (rlimit_view (rl, "b", S_PERIOD, S_T0 + 1000, &v), 0);
    assert_int_equal (v.spend_nusd, 1000);
    assert_int_equal (v.requests, 2);
    assert_int_equal (v.tokens, 5);
    assert_int_equal (v.in_flight, 2);
    //  The next period starts from 0
    rlimit_spec_t next = bud;
    next.period_start += 86400;
    next.period_end += 86400;
    assert_int_equal (s_admit (rl, "b", &next, S_T0 + 86400000, &r), RLIMIT_OK);
    assert_int_equal (r.spend_nusd, 0);
    rlimit_destroy (&rl);
}

static void test_slot_expiry (void **state)
{
    S_NEED_REDIS ();
    rlimit_t *rl = s_limiter (CFG_LIMITS_LOCAL);
    rlimit_spec_t sp = s_spec (0, 0, 1, 0);
    sp.hold_ms = 1000;
    //  An edge takes the slot and dies without releasing it
    assert_int_equal (s_admit (rl, "k", &sp, S_T0, NULL), RLIMIT_OK);
    assert_int_equal (s_admit (rl, "k", &sp, S_T0 + 999, NULL), RLIMIT_PARALLEL);
    rlimit_result_t v;
    assert_int_equal (rlimit_view (rl, "k", S_PERIOD, S_T0 + 999, &v), 0);
    assert_int_equal (v.in_flight, 1);
    assert_int_equal (rlimit_view (rl, "k", S_PERIOD, S_T0 + 1000, &v), 0);
    assert_int_equal (v.in_flight, 0);
    //  ... past its expiry the admit script trims it
    assert_int_equal (s_admit (rl, "k", &sp, S_T0 + 1000, &v), RLIMIT_OK);
    assert_int_equal (v.in_flight, 1);
    rlimit_destroy (&rl);
}

static void test_noscript_fallback (void **state)
{
    S_NEED_REDIS ();
    rlimit_t *rl = s_limiter (CFG_LIMITS_LOCAL);
    rlimit_spec_t sp = s_spec (3, 0, 0, 0);
    assert_int_equal (s_admit (rl, "k", &sp, S_T0, NULL), RLIMIT_OK);
    s_redis_cmd ("SCRIPT FLUSH", NULL);
    assert_int_equal (s_admit (rl, "k", &sp, S_T0, NULL), RLIMIT_OK);
    assert_int_equal (rlimit_errors (rl), 0);
    rlimit_destroy (&rl);
}

//  --------------------------------------------------------------- bad replies

static redisReply *s_int (long long v)
{
    redisReply *r = calloc (1, sizeof *r);
    r->type = REDIS_REPLY_INTEGER;
    r->integer = v;
    return r;
}

static redisReply *s_array (size_t n, const long long *v)
{
    redisReply *r = calloc (1, sizeof *r);
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc (n ? n : 1, sizeof *r->element);
    for (size_t i = 0; i < n; i++)
        r->element[i] = s_int (v[i]);
    return r;
}

static void s_free (redisReply *r)
{
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        if (r->element[i])
            s_free (r->element[i]);
    if (r->type == REDIS_REPLY_ARRAY)
        free (r->element);
    free (r->str);
    free (r);
}

static void test_malformed_replies (void **state)
{
    rlimit_result_t out;
    const long long good[] = { 0, 1, 100, 0, -1, 1, 0 };
    redisReply *r = s_array (7, good);
    assert_int_equal (rlimit_parse_admit (r, &out), 0);
    assert_int_equal (out.requests, 1);
    assert_int_equal (out.oldest_request_s, 100);
    assert_int_equal (out.oldest_token_s, -1);
    //  Each element of the wrong type, out of range, or missing
    for (size_t i = 0; i < 7; i++) {
        r->element[i]->type = REDIS_REPLY_STRING;
        r->element[i]->str = strdup ("1");
        r->element[i]->len = 1;
        assert_int_equal (rlimit_parse_admit (r, &out), -1);
        r->element[i]->type = REDIS_REPLY_INTEGER;
        free (r->element[i]->str);
        r->element[i]->str = NULL;
        long long keep = r->element[i]->integer;
        r->element[i]->integer = -2;
        assert_int_equal (rlimit_parse_admit (r, &out), -1);
        r->element[i]->integer = keep;
        redisReply *e = r->element[i];
        r->element[i] = NULL;
        assert_int_equal (rlimit_parse_admit (r, &out), -1);
        r->element[i] = e;
    }
    r->element[0]->integer = 5;         // no such verdict
    assert_int_equal (rlimit_parse_admit (r, &out), -1);
    r->element[0]->integer = 0;
    r->elements = 6;
    assert_int_equal (rlimit_parse_admit (r, &out), -1);
    r->elements = 7;
    r->type = REDIS_REPLY_STATUS;
    assert_int_equal (rlimit_parse_admit (r, &out), -1);
    r->type = REDIS_REPLY_ARRAY;
    s_free (r);
    assert_int_equal (rlimit_parse_admit (NULL, &out), -1);
    redisReply *nil = calloc (1, sizeof *nil);
    nil->type = REDIS_REPLY_NIL;
    assert_int_equal (rlimit_parse_admit (nil, &out), -1);
    assert_int_equal (rlimit_parse_view (nil, &out), -1);
    free (nil);
    const long long view[] = { 1, 2, 3, 4 };
    r = s_array (4, view);
    assert_int_equal (rlimit_parse_view (r, &out), 0);
    assert_int_equal (out.spend_nusd, 4);
    assert_int_equal (rlimit_parse_admit (r, &out), -1);
    r->element[3]->integer = -1;
    assert_int_equal (rlimit_parse_view (r, &out), -1);
    s_free (r);
}

//  An error reply inside the script (a key of the wrong type) is a failure like a
//  timeout: counted, on_failure applies, and the connection stays usable.
static void test_error_reply (void **state)
{
    S_NEED_REDIS ();
    s_fix_t *f = *state;
    char secret[KEYS_SECRET_MAX];
    s_key (f, "team", 1, 0, secret);
    rlimit_t *rl = s_limiter (CFG_LIMITS_LOCAL);
    keys_set_rlimit (f->keys, rl);
    s_redis_cmd ("SET test:{team}:w %s", "not-a-hash");
    keys_admit_t a;
    assert_int_equal (s_kadmit (f->keys, secret, S_T0, &a), KEYS_OK);     // local limiter
    assert_int_equal (rlimit_errors (rl), 1);
    assert_false (rlimit_up (rl));
    assert_int_equal (s_kadmit (f->keys, secret, S_T0, &a), KEYS_RATE_REQUESTS);  // local rpm 1
    s_redis_cmd ("DEL test:{team}:w", NULL);
    assert_int_equal (s_kadmit (f->keys, secret, S_T0, &a), KEYS_OK);     // shared again
    assert_true (rlimit_up (rl));
    assert_int_equal (rlimit_errors (rl), 2);
    keys_set_rlimit (f->keys, NULL);
    rlimit_destroy (&rl);
}

//  --------------------------------------------------------------- through keys.c

static void test_keys_shared (void **state)
{
    S_NEED_REDIS ();
    s_fix_t *f = *state;
    char secret[KEYS_SECRET_MAX];
    s_key (f, "team", 3, 2, secret);
    rlimit_t *rl = s_limiter (CFG_LIMITS_CLOSED);
    keys_set_rlimit (f->keys, rl);
    keys_admit_t a, b, c;
    assert_int_equal (s_kadmit (f->keys, secret, S_T0, &a), KEYS_OK);
    assert_int_equal (a.rpm_limit, 3);
    assert_int_equal (a.rpm_remaining, 2);
    assert_int_equal (a.rpm_reset_ms, 60000);
    assert_int_equal (s_kadmit (f->keys, secret, S_T0 + 500, &b), KEYS_OK);
    assert_int_equal (s_kadmit (f->keys, secret, S_T0 + 600, &c), KEYS_PARALLEL);
    keys_release (f->keys, a.ticket);
    assert_int_equal (s_kadmit (f->keys, secret, S_T0 + 700, &c), KEYS_OK);
    assert_int_equal (c.rpm_remaining, 0);
    keys_release (f->keys, b.ticket);
    keys_release (f->keys, c.ticket);
    assert_int_equal (s_kadmit (f->keys, secret, S_T0 + 20000, &c), KEYS_RATE_REQUESTS);
    assert_int_equal (c.rpm_remaining, 0);
    assert_int_equal (c.rpm_reset_ms, 40000);
    assert_int_equal (c.retry_after_s, 40);
    //  The admin view shows the shared counters
    keys_view_t v;
    assert_int_equal (keys_get (f->keys, "team", S_T0 + 20000, &v), 0);
    assert_true (v.shared);
    assert_int_equal (v.requests_last_minute, 3);
    assert_int_equal (v.in_flight, 0);
    assert_int_equal (keys_charge (f->keys, "team", 10, 0.5, S_T0 + 20000), 0);
    assert_int_equal (keys_get (f->keys, "team", S_T0 + 20000, &v), 0);
    assert_int_equal (v.tokens_last_minute, 10);
    assert_true (v.spend_usd > 0.499 && v.spend_usd < 0.501);
    //  Revocation stays local and immediate
    assert_int_equal (keys_revoke (f->keys, "team", S_T0), 0);
    assert_int_equal (s_kadmit (f->keys, secret, S_T0 + 70000, &c), KEYS_UNAUTHORIZED);
    assert_int_equal (rlimit_errors (rl), 0);
    keys_set_rlimit (f->keys, NULL);
    rlimit_destroy (&rl);
}

//  --------------------------------------------------------------- Redis down

//  Kill Redis and check one mode: errors counted once per attempt, no reconnect within
//  the retry delay, then Redis back and the shared limits apply again.
static void s_down_mode (s_fix_t *f, cfg_limits_failure_t mode, const char *name)
{
    char secret[KEYS_SECRET_MAX];
    s_key (f, name, 2, 0, secret);
    rlimit_t *rl = s_limiter (mode);
    rlimit_set_retry_ms (rl, 3600 * 1000);      // no reconnect during this part
    keys_set_rlimit (f->keys, rl);
    keys_admit_t a;
    assert_int_equal (s_kadmit (f->keys, secret, S_T0, &a), KEYS_OK);     // shared
    s_redis_kill ();
    keys_verdict_t expect = mode == CFG_LIMITS_CLOSED ? KEYS_UNAVAILABLE : KEYS_OK;
    assert_int_equal (s_kadmit (f->keys, secret, S_T0 + 1, &a), expect);
    assert_false (rlimit_up (rl));
    assert_int_equal (rlimit_errors (rl), 1);
    if (mode == CFG_LIMITS_CLOSED) {
        assert_int_equal (a.retry_after_s, 1);
        assert_null (strstr (a.message, secret));
    }
    if (mode == CFG_LIMITS_OPEN)
        assert_int_equal (a.rpm_limit, -1);    // nothing known: no rate-limit headers
    //  This edge's own counters: 2 requests, so the local rpm of 2 is reached
    keys_verdict_t third = mode == CFG_LIMITS_LOCAL ? KEYS_RATE_REQUESTS : expect;
    assert_int_equal (s_kadmit (f->keys, secret, S_T0 + 2, &a), third);
    assert_int_equal (s_kadmit (f->keys, secret, S_T0 + 3, &a), third);
    assert_int_equal (rlimit_errors (rl), 1);   // no new connection tried: nothing counted
    keys_release (f->keys, a.ticket);           // while down: harmless
    //  Redis back (empty: a restart without persistence)
    s_redis_start ();
    rlimit_set_retry_ms (rl, 1);
    int polls = 0;
    keys_verdict_t v;
    do {
        s_pause ();
        v = s_kadmit (f->keys, secret, S_T0 + 4, &a);
        if (v == KEYS_OK)
            keys_release (f->keys, a.ticket);
    } while (!rlimit_up (rl) && ++polls < S_WAIT_POLLS);
    assert_true (rlimit_up (rl));
    assert_int_equal (v, KEYS_OK);
    assert_int_equal (a.rpm_remaining, 1);      // the shared window: 1 of 2 used
    assert_int_equal (s_kadmit (f->keys, secret, S_T0 + 5, &a), KEYS_OK);
    assert_int_equal (s_kadmit (f->keys, secret, S_T0 + 6, &a), KEYS_RATE_REQUESTS);
    keys_set_rlimit (f->keys, NULL);
    rlimit_destroy (&rl);
}

static void test_down_local (void **state)
{
    S_NEED_REDIS ();
    s_down_mode (*state, CFG_LIMITS_LOCAL, "local");
}

static void test_down_open (void **state)
{
    S_NEED_REDIS ();
    s_down_mode (*state, CFG_LIMITS_OPEN, "open");
}

static void test_down_closed (void **state)
{
    S_NEED_REDIS ();
    s_down_mode (*state, CFG_LIMITS_CLOSED, "closed");
}

//  Redis unreachable from the start: rlimit_new still succeeds (an outage, not an error).
static void test_down_at_start (void **state)
{
    S_NEED_REDIS ();
    s_redis_kill ();
    rlimit_t *rl = s_limiter (CFG_LIMITS_CLOSED);
    rlimit_set_retry_ms (rl, 3600 * 1000);
    assert_false (rlimit_up (rl));
    assert_int_equal (rlimit_errors (rl), 1);
    rlimit_spec_t sp = s_spec (1, 0, 0, 0);
    rlimit_result_t r;
    assert_int_equal (rlimit_admit (rl, "k", &sp, S_T0, &r), -1);
    assert_int_equal (rlimit_errors (rl), 1);   // within the retry delay: not tried
    rlimit_destroy (&rl);
}

static void test_bad_password_env (void **state)
{
    cfg_limits_t cfg = { .kind = CFG_LIMITS_REDIS_TCP, .port = 6379, .redis_timeout_ms = 50 };
    snprintf (cfg.host, sizeof cfg.host, "127.0.0.1");
    snprintf (cfg.redis_password_env, sizeof cfg.redis_password_env, "AIGW_TEST_NO_SUCH_VAR");
    unsetenv ("AIGW_TEST_NO_SUCH_VAR");
    char err[256] = "";
    assert_null (rlimit_new (&cfg, err, sizeof err));
    assert_non_null (strstr (err, "AIGW_TEST_NO_SUCH_VAR"));
    cfg.kind = CFG_LIMITS_MEMORY;
    assert_null (rlimit_new (&cfg, err, sizeof err));
}

//  --------------------------------------------------------------- cost

static double s_secs (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

//  µs per keys_admit + keys_release of a key with rpm, parallel and a budget.
static double s_admit_cost (keys_t *keys, const char *secret, int n)
{
    keys_admit_t a;
    double t0 = s_secs ();
    for (int i = 0; i < n; i++) {
        assert_int_equal (s_kadmit (keys, secret, S_T0 + i, &a), KEYS_OK);
        keys_release (keys, a.ticket);
    }
    return (s_secs () - t0) * 1e6 / n;
}

//  Not a check: with AIGW_RLIMIT_BENCH=N, prints the cost of an admission (and its
//  release) with the embedded limiter and with Redis on a unix socket (docs/limits.md).
static void test_bench (void **state)
{
    const char *env = getenv ("AIGW_RLIMIT_BENCH");
    if (!env || !s_redis.installed)
        skip ();
    int n = (int) strtol (env, NULL, 10);
    if (n < 1)
        n = 10000;
    s_fix_t *f = *state;
    char secret[KEYS_SECRET_MAX];
    s_key (f, "bench", 1000000000, 1000, secret);
    double mem = s_admit_cost (f->keys, secret, n);
    rlimit_t *rl = s_limiter (CFG_LIMITS_CLOSED);
    keys_set_rlimit (f->keys, rl);
    double red = s_admit_cost (f->keys, secret, n);
    keys_set_rlimit (f->keys, NULL);
    rlimit_destroy (&rl);
    printf ("admit+release, %d rounds, one thread: memory %.2f us, redis (unix socket) "
            "%.2f us\n", n, mem, red);
}

int main (void)
{
    signal (SIGPIPE, SIG_IGN);          // as aigw-edge: a dead Redis must not kill us
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_admit_release_parallel, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_rpm_window, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_two_edges_share, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_charge_tpm_budget, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_slot_expiry, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_noscript_fallback, s_setup, s_teardown),
        cmocka_unit_test (test_malformed_replies),
        cmocka_unit_test_setup_teardown (test_error_reply, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_keys_shared, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_down_local, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_down_open, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_down_closed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_down_at_start, s_setup, s_teardown),
        cmocka_unit_test (test_bad_password_env),
        cmocka_unit_test_setup_teardown (test_bench, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
