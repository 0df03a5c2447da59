// Unit tests for the virtual key store and limiter (edge/keys.c), clock-free: every call
// gets an explicit now_ms. File modes, verdicts, model patterns, rpm/tpm windows,
// parallel slots, day and month budgets, 200 racing threads, and a restart.
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

#include <cJSON.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "keys.h"
#include "keys_fixture.h"

//  2026-01-01T00:00:00Z and friends, in Unix seconds
#define S_2026 1767225600LL
#define S_DAY 86400LL
#define S_JAN31 (S_2026 + 30 * S_DAY)
#define S_FEB01 (S_2026 + 31 * S_DAY)
#define S_MS(s) ((int64_t) (s) * 1000)
#define S_T0 S_MS (S_2026 + 3600)       // 01:00:00.000, a second boundary


//  --------------------------------------------------------------- helpers

static void s_path (const s_fix_t *f, const char *suffix, char *out, size_t size)
{
    int n = snprintf (out, size, "%s%s", f->path, suffix);
    assert_true (n > 0 && (size_t) n < size);
}


//  Create a key through the admin API; its secret into secret. body: the JSON object.
static void s_create (keys_t *keys, const char *body, int64_t now_ms, char *secret,
                      size_t size)
{
    char *out = NULL;
    size_t out_len = 0;
    int status = admin_handle (keys, "POST", "/v1/aigw/keys", body, strlen (body), now_ms,
                               &out, &out_len);
    if (status != 201)
        fprintf (stderr, "POST %s -> %d %s\n", body, status, out ? out : "");
    assert_int_equal (status, 201);
    assert_non_null (out);
    cJSON *root = cJSON_ParseWithLength (out, out_len);
    assert_non_null (root);
    const cJSON *key = cJSON_GetObjectItemCaseSensitive (root, "key");
    assert_true (cJSON_IsString (key));
    assert_true (strlen (key->valuestring) < size);
    snprintf (secret, size, "%s", key->valuestring);
    cJSON_Delete (root);
    free (out);
}

static int s_admin (keys_t *keys, const char *method, const char *path, const char *body,
                    int64_t now_ms)
{
    char *out = NULL;
    size_t out_len = 0;
    int status = admin_handle (keys, method, path, body, body ? strlen (body) : 0, now_ms,
                               &out, &out_len);
    free (out);
    return status;
}

static keys_verdict_t s_admit (keys_t *keys, const char *secret, const char *model,
                               int64_t now_ms, keys_admit_t *out)
{
    const char *names[] = { model };
    keys_admit_t local;
    return (keys_verdict_t) keys_admit (keys, secret, strlen (secret), names, model ? 1 : 0,
                                        now_ms, out ? out : &local);
}

//  --------------------------------------------------------------- file

static void test_keys_file_modes (void **state)
{
    s_fix_t *f = *state;
    struct stat sb;
    assert_int_equal (stat (f->path, &sb), 0);
    assert_int_equal (sb.st_mode & 0777, 0600);
    //  The WAL side files (once written) are no more open than the database
    char secret[KEYS_SECRET_MAX];
    s_create (f->keys, "{\"name\":\"modes\"}", S_T0, secret, sizeof secret);
    char wal[160];
    s_path (f, "-wal", wal, sizeof wal);
    if (stat (wal, &sb) == 0)
        assert_int_equal (sb.st_mode & 077, 0);

    //  An existing database others may read is refused
    char loose[160];
    snprintf (loose, sizeof loose, "%s/loose.db", f->dir);
    int fd = open (loose, O_CREAT | O_WRONLY, 0644);
    assert_true (fd >= 0);
    assert_int_equal (fchmod (fd, 0644), 0);
    close (fd);
    char err[256] = "";
    keys_t *k = keys_open (loose, err, sizeof err);
    assert_null (k);
    assert_non_null (strstr (err, "chmod 600"));
    //  ... also when it is only group-readable
    assert_int_equal (chmod (loose, 0640), 0);
    err[0] = 0;
    assert_null (keys_open (loose, err, sizeof err));
    assert_non_null (strstr (err, "chmod 600"));
    //  ... and opened once fixed
    assert_int_equal (chmod (loose, 0600), 0);
    k = keys_open (loose, err, sizeof err);
    assert_non_null (k);
    keys_close (&k);
    assert_null (k);
    keys_close (&k);                    // safe twice
    unlink (loose);
    char side[200];
    snprintf (side, sizeof side, "%s-wal", loose);
    unlink (side);
    snprintf (side, sizeof side, "%s-shm", loose);
    unlink (side);
}

//  --------------------------------------------------------------- verdicts

static void test_keys_unauthorized (void **state)
{
    s_fix_t *f = *state;
    char secret[KEYS_SECRET_MAX];
    s_create (f->keys, "{\"name\":\"alice\"}", S_T0, secret, sizeof secret);
    assert_int_equal (strncmp (secret, KEYS_PREFIX, strlen (KEYS_PREFIX)), 0);
    assert_int_equal (strlen (secret), strlen (KEYS_PREFIX) + 43);

    keys_admit_t a;
    assert_int_equal (s_admit (f->keys, secret, "gpt-4o", S_T0, &a), KEYS_OK);
    assert_int_equal (a.verdict, KEYS_OK);
    assert_string_equal (a.name, "alice");
    assert_true (a.ticket != 0);
    assert_int_equal (a.rpm_limit, -1);
    assert_int_equal (a.tpm_limit, -1);
    keys_release (f->keys, a.ticket);
    assert_int_equal (keys_check (f->keys, secret, strlen (secret), S_T0), KEYS_OK);

    //  Unknown, empty, a prefix of the real one, one character changed
    assert_int_equal (s_admit (f->keys, "sk-aigw-nope", "gpt-4o", S_T0, &a), KEYS_UNAUTHORIZED);
    assert_int_equal (a.verdict, KEYS_UNAUTHORIZED);
    assert_string_equal (a.name, "");
    assert_int_equal (s_admit (f->keys, "", "gpt-4o", S_T0, &a), KEYS_UNAUTHORIZED);
    assert_int_equal (keys_admit (f->keys, NULL, 0, NULL, 0, S_T0, &a), KEYS_UNAUTHORIZED);
    assert_int_equal (keys_admit (f->keys, secret, strlen (secret) - 1, NULL, 0, S_T0, &a),
                      KEYS_UNAUTHORIZED);
    char other[KEYS_SECRET_MAX];
    snprintf (other, sizeof other, "%s", secret);
    other[strlen (other) - 1] = other[strlen (other) - 1] == 'a' ? 'b' : 'a';
    assert_int_equal (s_admit (f->keys, other, "gpt-4o", S_T0, &a), KEYS_UNAUTHORIZED);
    assert_int_equal (keys_check (f->keys, other, strlen (other), S_T0), KEYS_UNAUTHORIZED);
    assert_int_equal (keys_check (f->keys, "", 0, S_T0), KEYS_UNAUTHORIZED);
    //  The message never holds the secret
    assert_null (strstr (a.message, secret));

    //  Revoked through DELETE
    assert_int_equal (s_admin (f->keys, "DELETE", "/v1/aigw/keys/alice", NULL, S_T0 + 1000), 200);
    assert_int_equal (s_admit (f->keys, secret, "gpt-4o", S_T0 + 2000, &a), KEYS_UNAUTHORIZED);
    assert_int_equal (keys_check (f->keys, secret, strlen (secret), S_T0 + 2000),
                      KEYS_UNAUTHORIZED);
    assert_null (strstr (a.message, secret));
}

static void test_keys_expiry (void **state)
{
    s_fix_t *f = *state;
    char body[256], secret[KEYS_SECRET_MAX];
    //  Expires 10 s after T0 (Unix seconds)
    snprintf (body, sizeof body, "{\"name\":\"soon\",\"expires_at\":%lld}",
              (long long) (S_T0 / 1000 + 10));
    s_create (f->keys, body, S_T0, secret, sizeof secret);
    keys_admit_t a;
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0, &a), KEYS_OK);
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0 + 9999, &a), KEYS_OK);
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0 + 10000, &a), KEYS_UNAUTHORIZED);
    assert_int_equal (keys_check (f->keys, secret, strlen (secret), S_T0 + 10000),
                      KEYS_UNAUTHORIZED);
    keys_view_t v;
    assert_int_equal (keys_get (f->keys, "soon", S_T0 + 10000, &v), 0);
    assert_true (v.expired);
    assert_int_equal (keys_get (f->keys, "soon", S_T0, &v), 0);
    assert_false (v.expired);

    //  Already in the past when created (RFC 3339 form)
    s_create (f->keys, "{\"name\":\"past\",\"expires_at\":\"2026-01-01T00:00:00Z\"}", S_T0,
              secret, sizeof secret);
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0, &a), KEYS_UNAUTHORIZED);

    //  PATCH to never (null) brings it back; PATCH to the past takes it away again
    assert_int_equal (s_admin (f->keys, "PATCH", "/v1/aigw/keys/past", "{\"expires_at\":null}",
                               S_T0), 200);
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0, &a), KEYS_OK);
    snprintf (body, sizeof body, "{\"expires_at\":%lld}", (long long) (S_T0 / 1000 - 1));
    assert_int_equal (s_admin (f->keys, "PATCH", "/v1/aigw/keys/past", body, S_T0), 200);
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0, &a), KEYS_UNAUTHORIZED);
}

static void test_keys_models (void **state)
{
    s_fix_t *f = *state;
    char secret[KEYS_SECRET_MAX], any[KEYS_SECRET_MAX];
    s_create (f->keys, "{\"name\":\"pat\",\"models\":[\"gpt-*\",\"agent/*\",\"llama3\"]}",
              S_T0, secret, sizeof secret);
    s_create (f->keys, "{\"name\":\"any\"}", S_T0, any, sizeof any);
    keys_admit_t a;
    int64_t t = S_T0;
    assert_int_equal (s_admit (f->keys, secret, "gpt-4o", t, &a), KEYS_OK);
    assert_int_equal (s_admit (f->keys, secret, "gpt-", t, &a), KEYS_OK);
    assert_int_equal (s_admit (f->keys, secret, "agent/deliberate", t, &a), KEYS_OK);
    assert_int_equal (s_admit (f->keys, secret, "llama3", t, &a), KEYS_OK);
    assert_int_equal (s_admit (f->keys, secret, "llama3.1", t, &a), KEYS_FORBIDDEN);
    assert_int_equal (s_admit (f->keys, secret, "claude-3", t, &a), KEYS_FORBIDDEN);
    assert_int_equal (a.verdict, KEYS_FORBIDDEN);
    assert_string_equal (a.name, "pat");
    assert_non_null (strstr (a.message, "claude-3"));
    assert_int_equal (s_admit (f->keys, secret, "xgpt-4o", t, &a), KEYS_FORBIDDEN);
    assert_int_equal (s_admit (f->keys, secret, "agent", t, &a), KEYS_FORBIDDEN);
    assert_int_equal (s_admit (f->keys, secret, "GPT-4o", t, &a), KEYS_FORBIDDEN);

    //  Every name of a list must match
    const char *both_ok[] = { "gpt-4o", "agent/fast" };
    const char *one_bad[] = { "gpt-4o", "claude-3" };
    const char *bad_first[] = { "claude-3", "gpt-4o" };
    assert_int_equal (keys_admit (f->keys, secret, strlen (secret), both_ok, 2, t, &a), KEYS_OK);
    assert_int_equal (keys_admit (f->keys, secret, strlen (secret), one_bad, 2, t, &a),
                      KEYS_FORBIDDEN);
    assert_int_equal (keys_admit (f->keys, secret, strlen (secret), bad_first, 2, t, &a),
                      KEYS_FORBIDDEN);

    //  The default "*" allows anything
    assert_int_equal (s_admit (f->keys, any, "claude-3", t, &a), KEYS_OK);
    assert_int_equal (keys_admit (f->keys, any, strlen (any), one_bad, 2, t, &a), KEYS_OK);

    //  PATCH models takes effect at once
    assert_int_equal (s_admin (f->keys, "PATCH", "/v1/aigw/keys/pat",
                               "{\"models\":[\"claude-*\"]}", t), 200);
    assert_int_equal (s_admit (f->keys, secret, "claude-3", t, &a), KEYS_OK);
    assert_int_equal (s_admit (f->keys, secret, "gpt-4o", t, &a), KEYS_FORBIDDEN);
}

//  --------------------------------------------------------------- limits

static void test_keys_rpm (void **state)
{
    s_fix_t *f = *state;
    char secret[KEYS_SECRET_MAX];
    s_create (f->keys, "{\"name\":\"rpm\",\"rpm\":5}", S_T0, secret, sizeof secret);
    keys_admit_t a;
    for (int i = 0; i < 5; i++) {
        assert_int_equal (s_admit (f->keys, secret, "m", S_T0 + i * 100, &a), KEYS_OK);
        assert_int_equal (a.rpm_limit, 5);
        assert_int_equal (a.rpm_remaining, 4 - i);
        keys_release (f->keys, a.ticket);
    }
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0 + 999, &a), KEYS_RATE_REQUESTS);
    assert_int_equal (a.verdict, KEYS_RATE_REQUESTS);
    assert_int_equal (a.rpm_remaining, 0);
    assert_int_equal (a.rpm_limit, 5);
    //  All five sit in the bucket of second S_T0; it leaves the window 60 s after it
    //  starts, 59.001 s after S_T0 + 999 ms (explicit times: no clock in this test)
    assert_int_equal (a.retry_after_s, 60);
    assert_int_equal (a.rpm_reset_ms, 59001);
    //  Still refused late in the window; refusals count nothing
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0 + 59999, &a), KEYS_RATE_REQUESTS);
    assert_true (a.retry_after_s >= 1);
    //  The window has passed
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0 + 60000, &a), KEYS_OK);
    assert_int_equal (a.rpm_remaining, 4);
    keys_release (f->keys, a.ticket);

    keys_view_t v;
    assert_int_equal (keys_get (f->keys, "rpm", S_T0 + 60000, &v), 0);
    assert_int_equal (v.requests_last_minute, 1);
    assert_int_equal (v.total_requests, 6);
    assert_int_equal (v.in_flight, 0);
}

static void test_keys_rpm_sliding (void **state)
{
    s_fix_t *f = *state;
    char secret[KEYS_SECRET_MAX];
    s_create (f->keys, "{\"name\":\"slide\",\"rpm\":2}", S_T0, secret, sizeof secret);
    keys_admit_t a;
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0, &a), KEYS_OK);
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0 + 30000, &a), KEYS_OK);
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0 + 30500, &a), KEYS_RATE_REQUESTS);
    //  The first leaves the window at T0 + 60 s: about 29.5 s to wait
    assert_true (a.retry_after_s >= 29 && a.retry_after_s <= 30);
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0 + 60000, &a), KEYS_OK);
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0 + 60001, &a), KEYS_RATE_REQUESTS);
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0 + 90000, &a), KEYS_OK);
}

typedef struct {
    keys_t *keys;
    const char *secret;
    int64_t now_ms;
    pthread_barrier_t *barrier;
    keys_verdict_t verdict;
} s_racer_t;

static void *s_racer (void *arg)
{
    s_racer_t *r = arg;
    pthread_barrier_wait (r->barrier);
    r->verdict = s_admit (r->keys, r->secret, "gpt-4o", r->now_ms, NULL);
    return NULL;
}

static void test_keys_rpm_race (void **state)
{
    s_fix_t *f = *state;
    enum { N = 200, RPM = 50 };
    char secret[KEYS_SECRET_MAX];
    s_create (f->keys, "{\"name\":\"race\",\"rpm\":50}", S_T0, secret, sizeof secret);
    static s_racer_t racers[N];
    static pthread_t threads[N];
    pthread_barrier_t barrier;
    assert_int_equal (pthread_barrier_init (&barrier, NULL, N), 0);
    for (int i = 0; i < N; i++) {
        racers[i] = (s_racer_t) { f->keys, secret, S_T0 + 250, &barrier, -1 };
        assert_int_equal (pthread_create (&threads[i], NULL, s_racer, &racers[i]), 0);
    }
    int ok = 0, limited = 0;
    for (int i = 0; i < N; i++) {
        pthread_join (threads[i], NULL);
        ok += racers[i].verdict == KEYS_OK;
        limited += racers[i].verdict == KEYS_RATE_REQUESTS;
    }
    pthread_barrier_destroy (&barrier);
    assert_int_equal (ok, RPM);
    assert_int_equal (limited, N - RPM);
    keys_view_t v;
    assert_int_equal (keys_get (f->keys, "race", S_T0 + 250, &v), 0);
    assert_int_equal (v.requests_last_minute, RPM);
    assert_int_equal (v.total_requests, RPM);
    assert_int_equal (v.in_flight, RPM);
}

static void test_keys_tpm (void **state)
{
    s_fix_t *f = *state;
    char secret[KEYS_SECRET_MAX];
    s_create (f->keys, "{\"name\":\"tpm\",\"tpm\":1000}", S_T0, secret, sizeof secret);
    keys_admit_t a;
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0, &a), KEYS_OK);
    assert_int_equal (a.tpm_limit, 1000);
    assert_int_equal (a.tpm_remaining, 1000);
    keys_release (f->keys, a.ticket);
    assert_int_equal (keys_charge (f->keys, "tpm", 600, 0, S_T0 + 100), 0);
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0 + 200, &a), KEYS_OK);
    assert_int_equal (a.tpm_remaining, 400);
    keys_release (f->keys, a.ticket);
    assert_int_equal (keys_charge (f->keys, "tpm", 400, 0, S_T0 + 2000), 0);
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0 + 3000, &a), KEYS_RATE_TOKENS);
    assert_int_equal (a.verdict, KEYS_RATE_TOKENS);
    assert_int_equal (a.tpm_remaining, 0);
    assert_true (a.retry_after_s >= 1 && a.retry_after_s <= 60);
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0 + 59999, &a), KEYS_RATE_TOKENS);
    //  The first 600 tokens leave at T0 + 60 s; the last 400 at T0 + 62 s
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0 + 60000, &a), KEYS_OK);
    assert_int_equal (a.tpm_remaining, 600);
    keys_release (f->keys, a.ticket);
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0 + 62000, &a), KEYS_OK);
    assert_int_equal (a.tpm_remaining, 1000);
    keys_release (f->keys, a.ticket);

    keys_view_t v;
    assert_int_equal (keys_get (f->keys, "tpm", S_T0 + 62000, &v), 0);
    assert_int_equal (v.total_tokens, 1000);
    assert_int_equal (v.tokens_last_minute, 0);
    //  Unknown names are not charged
    assert_int_equal (keys_charge (f->keys, "nobody", 10, 1.0, S_T0), -1);
    assert_int_equal (keys_charge (f->keys, "", 10, 1.0, S_T0), -1);
}

static void test_keys_parallel (void **state)
{
    s_fix_t *f = *state;
    char secret[KEYS_SECRET_MAX];
    s_create (f->keys, "{\"name\":\"par\",\"max_parallel\":2}", S_T0, secret, sizeof secret);
    keys_admit_t a1, a2, a3;
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0, &a1), KEYS_OK);
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0, &a2), KEYS_OK);
    assert_true (a1.ticket != 0 && a2.ticket != 0);
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0, &a3), KEYS_PARALLEL);
    assert_int_equal (a3.verdict, KEYS_PARALLEL);
    assert_true (a3.retry_after_s >= 1);
    keys_view_t v;
    assert_int_equal (keys_get (f->keys, "par", S_T0, &v), 0);
    assert_int_equal (v.in_flight, 2);
    //  A bogus ticket frees nothing
    keys_release (f->keys, 0);
    keys_release (f->keys, UINT64_MAX);
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0, &a3), KEYS_PARALLEL);
    keys_release (f->keys, a1.ticket);
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0 + 1, &a3), KEYS_OK);
    assert_int_equal (s_admit (f->keys, secret, "m", S_T0 + 2, NULL), KEYS_PARALLEL);
    keys_release (f->keys, a2.ticket);
    keys_release (f->keys, a3.ticket);
    assert_int_equal (keys_get (f->keys, "par", S_T0 + 3, &v), 0);
    assert_int_equal (v.in_flight, 0);
    //  Releasing again does not go below zero or free another key's slots
    keys_release (f->keys, a3.ticket);
    assert_int_equal (keys_get (f->keys, "par", S_T0 + 3, &v), 0);
    assert_int_equal (v.in_flight, 0);
}

static void test_keys_budget_day (void **state)
{
    s_fix_t *f = *state;
    char secret[KEYS_SECRET_MAX];
    int64_t late = S_MS (S_2026 + S_DAY - 60);     // 2026-01-01T23:59:00Z
    s_create (f->keys, "{\"name\":\"daily\",\"budget_usd\":1.0,\"budget_period\":\"day\"}",
              late, secret, sizeof secret);
    keys_admit_t a;
    assert_int_equal (s_admit (f->keys, secret, "m", late, &a), KEYS_OK);
    keys_release (f->keys, a.ticket);
    assert_int_equal (keys_charge (f->keys, "daily", 10, 0.6, late + 1000), 0);
    assert_int_equal (s_admit (f->keys, secret, "m", late + 2000, &a), KEYS_OK);
    keys_release (f->keys, a.ticket);
    assert_int_equal (keys_charge (f->keys, "daily", 10, 0.4, late + 3000), 0);
    assert_int_equal (s_admit (f->keys, secret, "m", late + 4000, &a), KEYS_QUOTA);
    assert_int_equal (a.verdict, KEYS_QUOTA);
    //  Retry at midnight: 56 s later
    assert_true (a.retry_after_s >= 55 && a.retry_after_s <= 57);
    keys_view_t v;
    assert_int_equal (keys_get (f->keys, "daily", late + 4000, &v), 0);
    assert_true (v.spend_usd > 0.999 && v.spend_usd < 1.001);
    assert_int_equal (v.period_start, S_2026);
    assert_int_equal (s_admit (f->keys, secret, "m", S_MS (S_2026 + S_DAY) - 1, &a),
                      KEYS_QUOTA);
    //  A new UTC day
    assert_int_equal (s_admit (f->keys, secret, "m", S_MS (S_2026 + S_DAY), &a), KEYS_OK);
    keys_release (f->keys, a.ticket);
    assert_int_equal (keys_get (f->keys, "daily", S_MS (S_2026 + S_DAY), &v), 0);
    assert_true (v.spend_usd == 0);
    assert_int_equal (v.period_start, S_2026 + S_DAY);
    assert_true (v.total_spend_usd > 0.999 && v.total_spend_usd < 1.001);
    //  Over budget in one charge, then refused
    assert_int_equal (keys_charge (f->keys, "daily", 10, 5.0, S_MS (S_2026 + S_DAY) + 10), 0);
    assert_int_equal (s_admit (f->keys, secret, "m", S_MS (S_2026 + S_DAY) + 20, &a),
                      KEYS_QUOTA);
    //  Raising the budget by PATCH lets it through in the same day
    assert_int_equal (s_admin (f->keys, "PATCH", "/v1/aigw/keys/daily", "{\"budget_usd\":10}",
                               S_MS (S_2026 + S_DAY) + 30), 200);
    assert_int_equal (s_admit (f->keys, secret, "m", S_MS (S_2026 + S_DAY) + 40, &a), KEYS_OK);
    keys_release (f->keys, a.ticket);
}

static void test_keys_budget_month (void **state)
{
    s_fix_t *f = *state;
    char secret[KEYS_SECRET_MAX];
    int64_t jan15 = S_MS (S_2026 + 14 * S_DAY + 7200);
    s_create (f->keys, "{\"name\":\"monthly\",\"budget_usd\":2.5,\"budget_period\":\"month\"}",
              jan15, secret, sizeof secret);
    keys_admit_t a;
    assert_int_equal (keys_charge (f->keys, "monthly", 0, 2.5, jan15), 0);
    assert_int_equal (s_admit (f->keys, secret, "m", jan15 + 1000, &a), KEYS_QUOTA);
    //  Other days of January: still spent
    assert_int_equal (s_admit (f->keys, secret, "m", jan15 + S_MS (S_DAY), &a), KEYS_QUOTA);
    assert_int_equal (s_admit (f->keys, secret, "m", S_MS (S_FEB01) - 1, &a), KEYS_QUOTA);
    assert_true (a.retry_after_s >= 1 && a.retry_after_s <= 2);
    assert_int_equal (s_admit (f->keys, secret, "m", S_MS (S_JAN31 + 3600), &a), KEYS_QUOTA);
    assert_true (a.retry_after_s >= 23 * 3600 - 1 && a.retry_after_s <= 23 * 3600 + 1);
    //  February
    assert_int_equal (s_admit (f->keys, secret, "m", S_MS (S_FEB01), &a), KEYS_OK);
    keys_release (f->keys, a.ticket);
    keys_view_t v;
    assert_int_equal (keys_get (f->keys, "monthly", S_MS (S_FEB01), &v), 0);
    assert_true (v.spend_usd == 0);
    assert_int_equal (v.period_start, S_FEB01);
    assert_true (v.total_spend_usd > 2.499 && v.total_spend_usd < 2.501);
}

//  --------------------------------------------------------------- persistence

static void test_keys_persistence (void **state)
{
    s_fix_t *f = *state;
    char secret[KEYS_SECRET_MAX], gone[KEYS_SECRET_MAX];
    s_create (f->keys, "{\"name\":\"keep\",\"rpm\":3,\"budget_usd\":1,\"models\":[\"gpt-*\"]}",
              S_T0, secret, sizeof secret);
    s_create (f->keys, "{\"name\":\"gone\"}", S_T0, gone, sizeof gone);
    assert_int_equal (s_admin (f->keys, "DELETE", "/v1/aigw/keys/gone", NULL, S_T0), 200);
    keys_admit_t a;
    assert_int_equal (s_admit (f->keys, secret, "gpt-4o", S_T0, &a), KEYS_OK);
    keys_release (f->keys, a.ticket);
    assert_int_equal (s_admit (f->keys, secret, "gpt-4o", S_T0 + 500, &a), KEYS_OK);
    keys_release (f->keys, a.ticket);
    assert_int_equal (keys_charge (f->keys, "keep", 120, 0.25, S_T0 + 600), 0);

    keys_close (&f->keys);
    assert_null (f->keys);
    char err[256] = "";
    f->keys = keys_open (f->path, err, sizeof err);
    assert_non_null (f->keys);

    assert_int_equal (keys_count (f->keys), 2);
    keys_view_t v;
    assert_int_equal (keys_get (f->keys, "keep", S_T0 + 1000, &v), 0);
    assert_int_equal (v.total_requests, 2);
    assert_int_equal (v.total_tokens, 120);
    assert_true (v.spend_usd > 0.2499 && v.spend_usd < 0.2501);
    assert_true (v.total_spend_usd > 0.2499 && v.total_spend_usd < 0.2501);
    assert_int_equal (v.requests_last_minute, 2);
    assert_int_equal (v.tokens_last_minute, 120);
    assert_int_equal (v.spec.rpm, 3);
    assert_string_equal (v.spec.models, "gpt-*");
    assert_int_equal (v.created_at, S_T0 / 1000);
    //  The rpm window survived: one more this minute, then refused
    assert_int_equal (s_admit (f->keys, secret, "gpt-4o", S_T0 + 1000, &a), KEYS_OK);
    keys_release (f->keys, a.ticket);
    assert_int_equal (s_admit (f->keys, secret, "gpt-4o", S_T0 + 2000, &a), KEYS_RATE_REQUESTS);
    assert_int_equal (s_admit (f->keys, secret, "claude", S_T0 + 2000, &a), KEYS_FORBIDDEN);
    //  The revoked key stays revoked, and keeps its name
    assert_int_equal (s_admit (f->keys, gone, "gpt-4o", S_T0 + 2000, &a), KEYS_UNAUTHORIZED);
    assert_int_equal (keys_get (f->keys, "gone", S_T0 + 2000, &v), 0);
    assert_true (v.revoked_at != 0);
    assert_int_equal (s_admin (f->keys, "POST", "/v1/aigw/keys", "{\"name\":\"gone\"}",
                               S_T0 + 2000), 409);
    //  And the next minute is free again
    assert_int_equal (s_admit (f->keys, secret, "gpt-4o", S_T0 + 61000, &a), KEYS_OK);
    keys_release (f->keys, a.ticket);

    //  An explicit flush, then a second restart keeps the newest numbers
    assert_int_equal (keys_flush (f->keys), 0);
    keys_close (&f->keys);
    f->keys = keys_open (f->path, err, sizeof err);
    assert_non_null (f->keys);
    assert_int_equal (keys_get (f->keys, "keep", S_T0 + 61000, &v), 0);
    assert_int_equal (v.total_requests, 4);
}

static void test_keys_views (void **state)
{
    s_fix_t *f = *state;
    char secret[KEYS_SECRET_MAX];
    assert_int_equal (keys_count (f->keys), 0);
    keys_view_t v;
    assert_int_equal (keys_get (f->keys, "none", S_T0, &v), -2);
    assert_int_equal (keys_get_at (f->keys, 0, S_T0, &v), -2);
    s_create (f->keys, "{\"name\":\"b-second\"}", S_T0, secret, sizeof secret);
    s_create (f->keys, "{\"name\":\"a-first\"}", S_T0 + 1000, secret, sizeof secret);
    assert_int_equal (keys_count (f->keys), 2);
    //  Creation order, not name order
    assert_int_equal (keys_get_at (f->keys, 0, S_T0, &v), 0);
    assert_string_equal (v.spec.name, "b-second");
    assert_int_equal (keys_get_at (f->keys, 1, S_T0, &v), 0);
    assert_string_equal (v.spec.name, "a-first");
    assert_int_equal (keys_get_at (f->keys, 2, S_T0, &v), -2);
    //  The hint is not the secret
    assert_null (strstr (v.hint, secret));
    assert_int_equal (strncmp (v.hint, KEYS_PREFIX, strlen (KEYS_PREFIX)), 0);
    assert_non_null (strstr (v.hint, secret + strlen (secret) - 4));
    //  Name rules
    assert_true (keys_name_ok ("a"));
    assert_true (keys_name_ok ("team.ml_prod-1"));
    assert_false (keys_name_ok (""));
    assert_false (keys_name_ok ("has space"));
    assert_false (keys_name_ok ("slash/name"));
    assert_false (keys_name_ok ("caf\xc3\xa9"));
    char longname[80];
    memset (longname, 'x', 63);
    longname[63] = 0;
    assert_true (keys_name_ok (longname));
    longname[63] = 'x';
    longname[64] = 0;
    assert_false (keys_name_ok (longname));
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_keys_file_modes, keys_fixture_setup, keys_fixture_teardown),
        cmocka_unit_test_setup_teardown (test_keys_unauthorized, keys_fixture_setup, keys_fixture_teardown),
        cmocka_unit_test_setup_teardown (test_keys_expiry, keys_fixture_setup, keys_fixture_teardown),
        cmocka_unit_test_setup_teardown (test_keys_models, keys_fixture_setup, keys_fixture_teardown),
        cmocka_unit_test_setup_teardown (test_keys_rpm, keys_fixture_setup, keys_fixture_teardown),
        cmocka_unit_test_setup_teardown (test_keys_rpm_sliding, keys_fixture_setup, keys_fixture_teardown),
        cmocka_unit_test_setup_teardown (test_keys_rpm_race, keys_fixture_setup, keys_fixture_teardown),
        cmocka_unit_test_setup_teardown (test_keys_tpm, keys_fixture_setup, keys_fixture_teardown),
        cmocka_unit_test_setup_teardown (test_keys_parallel, keys_fixture_setup, keys_fixture_teardown),
        cmocka_unit_test_setup_teardown (test_keys_budget_day, keys_fixture_setup, keys_fixture_teardown),
        cmocka_unit_test_setup_teardown (test_keys_budget_month, keys_fixture_setup, keys_fixture_teardown),
        cmocka_unit_test_setup_teardown (test_keys_persistence, keys_fixture_setup, keys_fixture_teardown),
        cmocka_unit_test_setup_teardown (test_keys_views, keys_fixture_setup, keys_fixture_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
