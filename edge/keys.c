// Virtual keys: store and limiter (see keys.h).
#include "keys.h"
#include "log.h"
#include "rlimit.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <math.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_HASH 32
#define S_SECRET_CHARS 43               // 43 base62 characters: 256 bits
#define S_FLUSH_MS 1000
#define S_REMOTE ((uint64_t) 1 << 63)   // a ticket whose slot is in the shared limiter
#define S_HOLD_DEFAULT_MS 600000        // a slot's life when the caller gives no deadline

//  One second of the rpm/tpm window.
typedef struct {
    int64_t sec;                        // Unix second this bucket holds
    uint32_t requests;
    uint32_t tokens;
} s_bucket_t;

typedef struct {
    int64_t id;                         // SQLite rowid
    size_t index;                       // in keys->keys (stable: keys are never removed)
    uint8_t hash[S_HASH];
    keys_spec_t spec;
    char hint[24];
    int64_t created_at, revoked_at;
    //  State (under the memory lock)
    s_bucket_t window[KEYS_WINDOW_S];
    int64_t parallel;
    double spend;                       // this period
    int64_t period_start;
    uint64_t total_requests, total_tokens;
    double total_spend;
    bool dirty;
} s_key_t;

struct keys_s {
    pthread_mutex_t lock;               // keys and their state
    s_key_t **keys;                     // creation order; never shrinks (revoked stay)
    size_t nkeys, cap;
    s_key_t **by_hash;                  // sorted by hash
    s_key_t **by_name;                  // sorted by name
    pthread_mutex_t db_lock;            // the SQLite connection
    sqlite3 *db;
    pthread_t flusher;
    bool flusher_started;
    pthread_cond_t wake;
    bool stop;                          // under lock
    rlimit_t *rl;                       // shared limiter, or NULL (not owned)
};

//  --------------------------------------------------------------- helpers

static void s_hash (const char *secret, size_t len, uint8_t out[S_HASH])
{
    gnutls_hash_fast (GNUTLS_DIG_SHA256, secret, len, out);
}

static bool s_hash_equal (const uint8_t *a, const uint8_t *b)
{
    unsigned diff = 0;
    for (size_t i = 0; i < S_HASH; i++)
        diff |= (unsigned) (a[i] ^ b[i]);
    return diff == 0;
}

static int s_cmp_hash (const void *a, const void *b)
{
    return memcmp ((*(s_key_t *const *) a)->hash, (*(s_key_t *const *) b)->hash, S_HASH);
}

static int s_cmp_name (const void *a, const void *b)
{
    return strcmp ((*(s_key_t *const *) a)->spec.name, (*(s_key_t *const *) b)->spec.name);
}

static void s_sort (keys_t *self)
{
    if (self->nkeys < 2)
        return;                         // also: qsort must not get a NULL base
    qsort (self->by_hash, self->nkeys, sizeof *self->by_hash, s_cmp_hash);
    qsort (self->by_name, self->nkeys, sizeof *self->by_name, s_cmp_name);
}

static s_key_t *s_find_hash (keys_t *self, const uint8_t *hash)
{
    size_t lo = 0, hi = self->nkeys;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = memcmp (self->by_hash[mid]->hash, hash, S_HASH);
        if (c == 0)
            return s_hash_equal (self->by_hash[mid]->hash, hash) ? self->by_hash[mid] : NULL;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static s_key_t *s_find_name (keys_t *self, const char *name)
{
    size_t lo = 0, hi = self->nkeys;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp (self->by_name[mid]->spec.name, name);
        if (c == 0)
            return self->by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

bool keys_name_ok (const char *name)
{
    size_t n = strlen (name);
    if (n == 0 || n >= KEYS_NAME_MAX)
        return false;
    return strspn (name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

//  Start of the budget period holding now_s (UTC).
static int64_t s_period_start (keys_period_t period, int64_t now_s)
{
    if (period == KEYS_PERIOD_DAY)
        return now_s - (now_s % 86400 + 86400) % 86400;
    time_t t = (time_t) now_s;
    struct tm tm;
    gmtime_r (&t, &tm);
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    return (int64_t) timegm (&tm);
}

//  Roll the period if it changed: spend starts again from 0.
static void s_roll_period (s_key_t *k, int64_t now_s)
{
    int64_t start = s_period_start (k->spec.budget_period, now_s);
    if (k->period_start != start) {
        k->period_start = start;
        k->spend = 0;
        k->dirty = true;
    }
}

//  Sums over the window; *oldest = the oldest second with something counted (or -1).
static void s_window (const s_key_t *k, int64_t now_s, uint64_t *requests, uint64_t *tokens,
                      int64_t *oldest_req, int64_t *oldest_tok)
{
    *requests = *tokens = 0;
    *oldest_req = *oldest_tok = -1;
    for (int i = 0; i < KEYS_WINDOW_S; i++) {
        const s_bucket_t *b = &k->window[i];
        if (b->sec > now_s || now_s - b->sec >= KEYS_WINDOW_S)
            continue;
        *requests += b->requests;
        *tokens += b->tokens;
        if (b->requests && (*oldest_req < 0 || b->sec < *oldest_req))
            *oldest_req = b->sec;
        if (b->tokens && (*oldest_tok < 0 || b->sec < *oldest_tok))
            *oldest_tok = b->sec;
    }
}

static s_bucket_t *s_bucket (s_key_t *k, int64_t now_s)
{
    s_bucket_t *b = &k->window[(now_s % KEYS_WINDOW_S + KEYS_WINDOW_S) % KEYS_WINDOW_S];
    if (b->sec != now_s) {
        b->sec = now_s;
        b->requests = b->tokens = 0;
    }
    return b;
}

//  Milliseconds until the second `oldest` leaves the window.
static int64_t s_reset_ms (int64_t oldest, int64_t now_ms)
{
    if (oldest < 0)
        return 0;
    int64_t ms = (oldest + KEYS_WINDOW_S) * 1000 - now_ms;
    return ms > 0 ? ms : 0;
}

static uint32_t s_retry_s (int64_t ms)
{
    int64_t s = (ms + 999) / 1000;
    return s < 1 ? 1 : (uint32_t) s;
}

static int64_t s_nusd (double usd)
{
    return (int64_t) llround (usd * 1e9);
}

static bool s_models_allow (const char *patterns, const char *name)
{
    for (const char *p = patterns; *p;) {
        p += strspn (p, " ,");
        size_t len = strcspn (p, ",");
        size_t t = len;
        while (t && p[t - 1] == ' ')
            t--;
        if (t && t < 256) {
            char pat[256];
            memcpy (pat, p, t);
            pat[t] = 0;
            if (fnmatch (pat, name, 0) == 0)
                return true;
        }
        p += len;
    }
    return false;
}

//  --------------------------------------------------------------- secrets

static void s_new_secret (char *out, size_t size)
{
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    size_t o = strlen (KEYS_PREFIX);
    memcpy (out, KEYS_PREFIX, o);
    uint8_t pool[64];
    size_t used = sizeof pool;
    while (o < strlen (KEYS_PREFIX) + S_SECRET_CHARS && o + 1 < size) {
        if (used == sizeof pool) {
            if (gnutls_rnd (GNUTLS_RND_KEY, pool, sizeof pool) != 0)
                abort ();               // no randomness: never hand out a guessable key
            used = 0;
        }
        uint8_t b = pool[used++];
        if (b < 248)                    // 248 = 4 * 62: no modulo bias
            out[o++] = alphabet[b % 62];
    }
    out[o] = 0;
}

static void s_hint (const char *secret, char *hint, size_t size)
{
    size_t n = strlen (secret);
    snprintf (hint, size, "%s…%s", KEYS_PREFIX, n >= 4 ? secret + n - 4 : "");
}

//  --------------------------------------------------------------- database

static const char s_schema[] =
    "CREATE TABLE IF NOT EXISTS keys ("
    " id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, hash BLOB UNIQUE NOT NULL,"
    " hint TEXT NOT NULL, models TEXT NOT NULL, rpm INTEGER NOT NULL, tpm INTEGER NOT NULL,"
    " max_parallel INTEGER NOT NULL, budget_usd REAL NOT NULL, budget_period INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL, metadata TEXT NOT NULL, created_at INTEGER NOT NULL,"
    " revoked_at INTEGER NOT NULL DEFAULT 0, spend_usd REAL NOT NULL DEFAULT 0,"
    " period_start INTEGER NOT NULL DEFAULT 0, total_requests INTEGER NOT NULL DEFAULT 0,"
    " total_tokens INTEGER NOT NULL DEFAULT 0, total_spend_usd REAL NOT NULL DEFAULT 0,"
    " window BLOB);";

static int s_db_fail (keys_t *self, char *err, size_t errlen, const char *what)
{
    if (err && errlen)
        snprintf (err, errlen, "key database: %s: %s", what, sqlite3_errmsg (self->db));
    return -1;
}

static int s_exec (keys_t *self, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec (self->db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    if (err && errlen)
        snprintf (err, errlen, "key database: %s", msg ? msg : "error");
    sqlite3_free (msg);
    return -1;
}

static const char *s_col_text (sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text (st, col);
    return t ? (const char *) t : "";
}

//  Append k to the three arrays; the sorted ones are sorted only when sort is true
//  (s_load sorts once at the end).
static int s_append (keys_t *self, s_key_t *k, bool sort)
{
    if (self->nkeys == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 16;
        s_key_t **a = realloc (self->keys, cap * sizeof *a);
        if (!a)
            return -1;
        self->keys = a;
        s_key_t **h = realloc (self->by_hash, cap * sizeof *h);
        if (!h)
            return -1;
        self->by_hash = h;
        s_key_t **n = realloc (self->by_name, cap * sizeof *n);
        if (!n)
            return -1;
        self->by_name = n;
        self->cap = cap;
    }
    k->index = self->nkeys;
    self->keys[self->nkeys] = k;
    self->by_hash[self->nkeys] = k;
    self->by_name[self->nkeys] = k;
    self->nkeys++;
    if (sort)
        s_sort (self);
    return 0;
}

static int s_load (keys_t *self, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2 (self->db, "SELECT id, name, hash, hint, models, rpm, tpm,"
                            " max_parallel, budget_usd, budget_period, expires_at, metadata,"
                            " created_at, revoked_at, spend_usd, period_start, total_requests,"
                            " total_tokens, total_spend_usd, window FROM keys ORDER BY id",
                            -1, &st, NULL) != SQLITE_OK)
        return s_db_fail (self, err, errlen, "reading keys");
    int rc;
    while ((rc = sqlite3_step (st)) == SQLITE_ROW) {
        s_key_t *k = calloc (1, sizeof *k);
        if (!k || sqlite3_column_bytes (st, 2) != S_HASH) {
            free (k);
            continue;
        }
        k->id = sqlite3_column_int64 (st, 0);
        snprintf (k->spec.name, sizeof k->spec.name, "%s", s_col_text (st, 1));
        memcpy (k->hash, sqlite3_column_blob (st, 2), S_HASH);
        snprintf (k->hint, sizeof k->hint, "%s", s_col_text (st, 3));
        snprintf (k->spec.models, sizeof k->spec.models, "%s", s_col_text (st, 4));
        k->spec.rpm = sqlite3_column_int64 (st, 5);
        k->spec.tpm = sqlite3_column_int64 (st, 6);
        k->spec.max_parallel = sqlite3_column_int64 (st, 7);
        k->spec.budget_usd = sqlite3_column_double (st, 8);
        k->spec.budget_period = sqlite3_column_int (st, 9) == KEYS_PERIOD_MONTH
                              ? KEYS_PERIOD_MONTH : KEYS_PERIOD_DAY;
        k->spec.expires_at = sqlite3_column_int64 (st, 10);
        snprintf (k->spec.metadata, sizeof k->spec.metadata, "%s", s_col_text (st, 11));
        k->created_at = sqlite3_column_int64 (st, 12);
        k->revoked_at = sqlite3_column_int64 (st, 13);
        k->spend = sqlite3_column_double (st, 14);
        k->period_start = sqlite3_column_int64 (st, 15);
        k->total_requests = (uint64_t) sqlite3_column_int64 (st, 16);
        k->total_tokens = (uint64_t) sqlite3_column_int64 (st, 17);
        k->total_spend = sqlite3_column_double (st, 18);
        if (sqlite3_column_bytes (st, 19) == (int) sizeof k->window)
            memcpy (k->window, sqlite3_column_blob (st, 19), sizeof k->window);
        if (s_append (self, k, false)) {
            free (k);
            break;
        }
    }
    sqlite3_finalize (st);
    s_sort (self);
    return rc == SQLITE_DONE ? 0 : s_db_fail (self, err, errlen, "reading keys");
}

//  Copy of one key's counters for the flusher (written outside the memory lock).
typedef struct {
    int64_t id;
    double spend, total_spend;
    int64_t period_start;
    uint64_t total_requests, total_tokens;
    s_bucket_t window[KEYS_WINDOW_S];
} s_snap_t;

//  Mark the keys of a failed flush dirty again. Keys are never removed, and id is
//  unique, so a linear match by id is enough (only on the error path).
static void s_redirty (keys_t *self, const s_snap_t *snaps, size_t n)
{
    pthread_mutex_lock (&self->lock);
    for (size_t i = 0, j = 0; i < self->nkeys && j < n; i++)
        if (self->keys[i]->id == snaps[j].id) {
            self->keys[i]->dirty = true;
            j++;
        }
    pthread_mutex_unlock (&self->lock);
}

int keys_flush (keys_t *self)
{
    pthread_mutex_lock (&self->lock);
    size_t n = 0;
    for (size_t i = 0; i < self->nkeys; i++)
        n += self->keys[i]->dirty;
    s_snap_t *snaps = n ? calloc (n, sizeof *snaps) : NULL;
    if (n && !snaps) {
        pthread_mutex_unlock (&self->lock);
        return -1;
    }
    size_t j = 0;
    for (size_t i = 0; i < self->nkeys && j < n; i++) {
        s_key_t *k = self->keys[i];
        if (!k->dirty)
            continue;
        s_snap_t *s = &snaps[j++];
        s->id = k->id;
        s->spend = k->spend;
        s->total_spend = k->total_spend;
        s->period_start = k->period_start;
        s->total_requests = k->total_requests;
        s->total_tokens = k->total_tokens;
        memcpy (s->window, k->window, sizeof s->window);
        k->dirty = false;
    }
    pthread_mutex_unlock (&self->lock);
    if (!n)
        return 0;
    pthread_mutex_lock (&self->db_lock);
    int rc = s_exec (self, "BEGIN", NULL, 0);
    sqlite3_stmt *st = NULL;
    if (!rc && sqlite3_prepare_v2 (self->db, "UPDATE keys SET spend_usd = ?, period_start = ?,"
                                   " total_requests = ?, total_tokens = ?, total_spend_usd = ?,"
                                   " window = ? WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
        rc = -1;
    for (size_t i = 0; !rc && i < n; i++) {
        s_snap_t *s = &snaps[i];
        sqlite3_bind_double (st, 1, s->spend);
        sqlite3_bind_int64 (st, 2, s->period_start);
        sqlite3_bind_int64 (st, 3, (sqlite3_int64) s->total_requests);
        sqlite3_bind_int64 (st, 4, (sqlite3_int64) s->total_tokens);
        sqlite3_bind_double (st, 5, s->total_spend);
        sqlite3_bind_blob (st, 6, s->window, (int) sizeof s->window, SQLITE_STATIC);
        sqlite3_bind_int64 (st, 7, s->id);
        if (sqlite3_step (st) != SQLITE_DONE)
            rc = -1;
        sqlite3_reset (st);
    }
    sqlite3_finalize (st);
    if (rc) {
        log_warn ("key database: writing counters failed: %s", sqlite3_errmsg (self->db));
        s_exec (self, "ROLLBACK", NULL, 0);
    }
    else
    if (s_exec (self, "COMMIT", NULL, 0)) {
        log_warn ("key database: writing counters failed: %s", sqlite3_errmsg (self->db));
        s_exec (self, "ROLLBACK", NULL, 0);
        rc = -1;
    }
    pthread_mutex_unlock (&self->db_lock);
    if (rc)
        s_redirty (self, snaps, n);     // written next time instead of lost
    free (snaps);
    return rc;
}

static void *s_flusher (void *arg)
{
    keys_t *self = arg;
    pthread_mutex_lock (&self->lock);
    while (!self->stop) {
        struct timespec ts;
        clock_gettime (CLOCK_REALTIME, &ts);
        ts.tv_sec += S_FLUSH_MS / 1000;
        pthread_cond_timedwait (&self->wake, &self->lock, &ts);
        if (self->stop)
            break;
        pthread_mutex_unlock (&self->lock);
        keys_flush (self);
        pthread_mutex_lock (&self->lock);
    }
    pthread_mutex_unlock (&self->lock);
    return NULL;
}

//  Create the file 0600 if absent; refuse one others may read.
static int s_check_file (const char *path, char *err, size_t errlen)
{
    struct stat sb;
    if (stat (path, &sb) == 0) {
        if (!S_ISREG (sb.st_mode)) {
            snprintf (err, errlen, "key database %s is not a regular file", path);
            return -1;
        }
        if (sb.st_mode & 077) {
            snprintf (err, errlen, "key database %s is readable or writable by others (mode "
                      "%03o): run chmod 600 %s", path, (unsigned) (sb.st_mode & 0777), path);
            return -1;
        }
        return 0;
    }
    int fd = open (path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf (err, errlen, "cannot create key database %s: %s", path, strerror (errno));
        return -1;
    }
    close (fd);
    return 0;
}

keys_t *keys_open (const char *path, char *err, size_t errlen)
{
    if (s_check_file (path, err, errlen))
        return NULL;
    keys_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init (&self->lock, NULL);
    pthread_mutex_init (&self->db_lock, NULL);
    pthread_cond_init (&self->wake, NULL);
    if (sqlite3_open_v2 (path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL)
        != SQLITE_OK) {
        s_db_fail (self, err, errlen, path);
        keys_close (&self);
        return NULL;
    }
    sqlite3_busy_timeout (self->db, 5000);
    if (s_exec (self, "PRAGMA journal_mode = WAL", err, errlen)
        || s_exec (self, "PRAGMA synchronous = NORMAL", err, errlen)
        || s_exec (self, s_schema, err, errlen) || s_load (self, err, errlen)) {
        keys_close (&self);
        return NULL;
    }
    if (pthread_create (&self->flusher, NULL, s_flusher, self) == 0)
        self->flusher_started = true;
    else {
        snprintf (err, errlen, "cannot start the key flusher thread");
        keys_close (&self);
        return NULL;
    }
    return self;
}

void keys_close (keys_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    keys_t *self = *self_p;
    *self_p = NULL;
    if (self->flusher_started) {
        pthread_mutex_lock (&self->lock);
        self->stop = true;
        pthread_cond_signal (&self->wake);
        pthread_mutex_unlock (&self->lock);
        pthread_join (self->flusher, NULL);
    }
    if (self->db) {
        keys_flush (self);
        sqlite3_close (self->db);
    }
    for (size_t i = 0; i < self->nkeys; i++)
        free (self->keys[i]);
    free (self->keys);
    free (self->by_hash);
    free (self->by_name);
    pthread_cond_destroy (&self->wake);
    pthread_mutex_destroy (&self->db_lock);
    pthread_mutex_destroy (&self->lock);
    free (self);
}

//  --------------------------------------------------------------- hot path

static bool s_live (const s_key_t *k, int64_t now_s)
{
    return k && !k->revoked_at && !(k->spec.expires_at && now_s >= k->spec.expires_at);
}

keys_verdict_t keys_check (keys_t *self, const char *secret, size_t secret_len, int64_t now_ms)
{
    if (!self || !secret || !secret_len)
        return KEYS_UNAUTHORIZED;
    uint8_t hash[S_HASH];
    s_hash (secret, secret_len, hash);
    pthread_mutex_lock (&self->lock);
    bool live = s_live (s_find_hash (self, hash), now_ms / 1000);
    pthread_mutex_unlock (&self->lock);
    return live ? KEYS_OK : KEYS_UNAUTHORIZED;
}

static int s_refuse (keys_admit_t *out, keys_verdict_t v, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
static int s_refuse (keys_admit_t *out, keys_verdict_t v, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (out->message, sizeof out->message, fmt, ap);
    va_end (ap);
    out->verdict = v;
    return (int) v;
}

//  Fill the limit fields of out from counts in the window (after counting).
static void s_limits_of (const keys_spec_t *sp, uint64_t req, uint64_t tok, int64_t oreq,
                         int64_t otok, int64_t now_ms, keys_admit_t *out)
{
    out->rpm_limit = sp->rpm ? sp->rpm : -1;
    out->rpm_remaining = sp->rpm ? sp->rpm - (int64_t) req : -1;
    out->rpm_reset_ms = s_reset_ms (oreq, now_ms);
    out->tpm_limit = sp->tpm ? sp->tpm : -1;
    out->tpm_remaining = sp->tpm ? sp->tpm - (int64_t) tok : -1;
    out->tpm_reset_ms = s_reset_ms (otok, now_ms);
}

//  Fill the limit fields of out from k's window (after counting).
static void s_limits (const s_key_t *k, int64_t now_ms, keys_admit_t *out)
{
    uint64_t req, tok;
    int64_t oreq, otok;
    s_window (k, now_ms / 1000, &req, &tok, &oreq, &otok);
    s_limits_of (&k->spec, req, tok, oreq, otok, now_ms, out);
}

//  Unix second where the period after the one starting at period_start begins.
static int64_t s_period_end (keys_period_t period, int64_t period_start)
{
    return s_period_start (period, period_start + (period == KEYS_PERIOD_DAY ? 86400 : 32 * 86400));
}

static int s_refuse_quota (keys_admit_t *out, const keys_spec_t *sp, int64_t period_start,
                           int64_t now_s)
{
    out->retry_after_s = s_retry_s ((s_period_end (sp->budget_period, period_start) - now_s) * 1000);
    return s_refuse (out, KEYS_QUOTA, "You exceeded your current quota: this key's budget "
                     "of $%.2f per %s is spent.", sp->budget_usd,
                     sp->budget_period == KEYS_PERIOD_DAY ? "day" : "month");
}

static int s_refuse_parallel (keys_admit_t *out, const keys_spec_t *sp)
{
    out->retry_after_s = 1;
    return s_refuse (out, KEYS_PARALLEL, "too many requests in flight for this key "
                     "(max_parallel %lld)", (long long) sp->max_parallel);
}

static int s_refuse_rpm (keys_admit_t *out, const keys_spec_t *sp)
{
    out->rpm_remaining = 0;
    out->retry_after_s = s_retry_s (out->rpm_reset_ms);
    return s_refuse (out, KEYS_RATE_REQUESTS, "Rate limit reached on requests per minute "
                     "(RPM): limit %lld. Retry after %u s.", (long long) sp->rpm,
                     out->retry_after_s);
}

static int s_refuse_tpm (keys_admit_t *out, const keys_spec_t *sp)
{
    out->tpm_remaining = 0;
    out->retry_after_s = s_retry_s (out->tpm_reset_ms);
    return s_refuse (out, KEYS_RATE_TOKENS, "Rate limit reached on tokens per minute "
                     "(TPM): limit %lld. Retry after %u s.", (long long) sp->tpm,
                     out->retry_after_s);
}

//  What stays local whatever the backend: the key is known, live, and may use the models.
static int s_check_locked (s_key_t *k, const char *const *names, size_t nnames,
                           int64_t now_ms, keys_admit_t *out)
{
    int64_t now_s = now_ms / 1000;
    if (!k)
        return s_refuse (out, KEYS_UNAUTHORIZED, "the API key is not valid");
    snprintf (out->name, sizeof out->name, "%s", k->spec.name);
    if (k->revoked_at)
        return s_refuse (out, KEYS_UNAUTHORIZED, "the API key was revoked");
    if (k->spec.expires_at && now_s >= k->spec.expires_at)
        return s_refuse (out, KEYS_UNAUTHORIZED, "the API key expired");
    for (size_t i = 0; i < nnames; i++)
        if (!s_models_allow (k->spec.models, names[i]))
            return s_refuse (out, KEYS_FORBIDDEN, "this key may not use the model '%.64s'",
                             names[i]);
    return KEYS_OK;
}

//  Count an admitted request in k's own state (the embedded limiter's, which is also
//  this edge's share when the limits are shared).
static void s_count_locked (s_key_t *k, int64_t now_ms)
{
    s_bucket (k, now_ms / 1000)->requests++;
    k->parallel++;
    k->total_requests++;
    k->dirty = true;
}

//  The embedded limiter: budget, parallel, rpm, tpm, then count.
static int s_limit_locked (s_key_t *k, int64_t now_ms, keys_admit_t *out)
{
    int64_t now_s = now_ms / 1000;
    s_roll_period (k, now_s);
    s_limits (k, now_ms, out);
    if (k->spec.budget_usd > 0 && k->spend >= k->spec.budget_usd)
        return s_refuse_quota (out, &k->spec, k->period_start, now_s);
    if (k->spec.max_parallel && k->parallel >= k->spec.max_parallel)
        return s_refuse_parallel (out, &k->spec);
    if (k->spec.rpm && out->rpm_remaining <= 0)
        return s_refuse_rpm (out, &k->spec);
    if (k->spec.tpm && out->tpm_remaining <= 0)
        return s_refuse_tpm (out, &k->spec);
    s_count_locked (k, now_ms);
    s_limits (k, now_ms, out);
    out->verdict = KEYS_OK;
    return KEYS_OK;
}

static uint64_t s_local_ticket (const s_key_t *k)
{
    return ((uint64_t) (k->index + 1) << 32) | (uint32_t) k->id;
}

//  What keys_admit needs of a key to ask the shared limiter (copied under the lock).
typedef struct {
    size_t index;
    keys_spec_t spec;
    int64_t period_start;
} s_remote_t;

//  The shared limiter's verdict into out. Returns the verdict.
static int s_remote_verdict (const s_remote_t *rk, const rlimit_result_t *rr, int64_t now_ms,
                             keys_admit_t *out)
{
    const keys_spec_t *sp = &rk->spec;
    s_limits_of (sp, (uint64_t) rr->requests, (uint64_t) rr->tokens, rr->oldest_request_s,
                 rr->oldest_token_s, now_ms, out);
    switch (rr->verdict) {
        case RLIMIT_QUOTA: return s_refuse_quota (out, sp, rk->period_start, now_ms / 1000);
        case RLIMIT_PARALLEL: return s_refuse_parallel (out, sp);
        case RLIMIT_RATE_REQUESTS: return s_refuse_rpm (out, sp);
        case RLIMIT_RATE_TOKENS: return s_refuse_tpm (out, sp);
        case RLIMIT_OK: break;
    }
    out->verdict = KEYS_OK;
    out->ticket = S_REMOTE | ((uint64_t) (rk->index + 1) << 32) | rr->ticket;
    return KEYS_OK;
}

//  The shared limiter did not answer: limits/on_failure says what now.
static int s_on_failure (keys_t *self, const s_remote_t *rk, int64_t now_ms, keys_admit_t *out)
{
    cfg_limits_failure_t mode = rlimit_on_failure (self->rl);
    if (mode == CFG_LIMITS_CLOSED) {
        out->retry_after_s = 1;
        return s_refuse (out, KEYS_UNAVAILABLE, "the shared rate limits are unavailable; "
                         "try again shortly");
    }
    pthread_mutex_lock (&self->lock);
    s_key_t *k = self->keys[rk->index];
    int v;
    if (mode == CFG_LIMITS_OPEN) {
        s_count_locked (k, now_ms);     // admitted unchecked; limits unknown: no headers
        v = out->verdict = KEYS_OK;
    }
    else
        v = s_limit_locked (k, now_ms, out);
    if (v == KEYS_OK)
        out->ticket = s_local_ticket (k);
    pthread_mutex_unlock (&self->lock);
    return v;
}

//  With a shared limiter: the key checks here, the counters there (no lock held).
static int s_admit_remote (keys_t *self, const s_remote_t *rk, int64_t hold_ms, int64_t now_ms,
                           keys_admit_t *out)
{
    const keys_spec_t *sp = &rk->spec;
    rlimit_spec_t rs = {
        .rpm = sp->rpm, .tpm = sp->tpm, .max_parallel = sp->max_parallel,
        .budget_nusd = sp->budget_usd > 0 ? s_nusd (sp->budget_usd) : 0,
        .period_start = rk->period_start,
        .period_end = s_period_end (sp->budget_period, rk->period_start),
        .hold_ms = (hold_ms > 0 ? hold_ms : S_HOLD_DEFAULT_MS) + RLIMIT_GRACE_MS,
    };
    rlimit_result_t rr;
    if (rlimit_admit (self->rl, sp->name, &rs, now_ms, &rr))
        return s_on_failure (self, rk, now_ms, out);
    int v = s_remote_verdict (rk, &rr, now_ms, out);
    if (v == KEYS_OK) {
        pthread_mutex_lock (&self->lock);
        s_count_locked (self->keys[rk->index], now_ms);
        pthread_mutex_unlock (&self->lock);
    }
    return v;
}

int keys_admit_hold (keys_t *self, const char *secret, size_t secret_len,
                     const char *const *names, size_t nnames, int64_t now_ms, int64_t hold_ms,
                     keys_admit_t *out)
{
    memset (out, 0, sizeof *out);
    out->rpm_limit = out->tpm_limit = out->rpm_remaining = out->tpm_remaining = -1;
    if (!self || !secret || !secret_len)
        return s_refuse (out, KEYS_UNAUTHORIZED, "no API key");
    uint8_t hash[S_HASH];
    s_hash (secret, secret_len, hash);
    pthread_mutex_lock (&self->lock);
    s_key_t *k = s_find_hash (self, hash);
    int v = s_check_locked (k, names, nnames, now_ms, out);
    s_remote_t rk;
    bool shared = self->rl != NULL;
    if (v == KEYS_OK && shared) {
        s_roll_period (k, now_ms / 1000);
        rk = (s_remote_t) { .index = k->index, .spec = k->spec, .period_start = k->period_start };
    }
    else
    if (v == KEYS_OK) {
        v = s_limit_locked (k, now_ms, out);
        if (v == KEYS_OK)
            out->ticket = s_local_ticket (k);
    }
    pthread_mutex_unlock (&self->lock);
    if (v == KEYS_OK && shared)
        v = s_admit_remote (self, &rk, hold_ms, now_ms, out);
    return v;
}

int keys_admit (keys_t *self, const char *secret, size_t secret_len,
                const char *const *names, size_t nnames, int64_t now_ms, keys_admit_t *out)
{
    return keys_admit_hold (self, secret, secret_len, names, nnames, now_ms, 0, out);
}

void keys_release (keys_t *self, uint64_t ticket)
{
    if (!self || !ticket)
        return;
    bool remote = ticket & S_REMOTE;
    size_t index = (size_t) ((ticket & ~S_REMOTE) >> 32) - 1;
    char name[KEYS_NAME_MAX] = "";
    pthread_mutex_lock (&self->lock);
    rlimit_t *rl = self->rl;
    if (index < self->nkeys && (remote || (uint32_t) self->keys[index]->id == (uint32_t) ticket)) {
        if (self->keys[index]->parallel > 0)
            self->keys[index]->parallel--;
        snprintf (name, sizeof name, "%s", self->keys[index]->spec.name);
    }
    pthread_mutex_unlock (&self->lock);
    if (remote && name[0] && rl)
        rlimit_release (rl, name, (uint32_t) ticket);  // on failure the slot expires
}

int keys_charge (keys_t *self, const char *name, uint64_t tokens, double usd, int64_t now_ms)
{
    if (!self || !name)
        return -1;
    int64_t period_start = 0;
    keys_period_t period = KEYS_PERIOD_DAY;
    pthread_mutex_lock (&self->lock);
    s_key_t *k = s_find_name (self, name);
    if (k) {
        int64_t now_s = now_ms / 1000;
        s_roll_period (k, now_s);
        s_bucket_t *b = s_bucket (k, now_s);
        b->tokens = tokens > UINT32_MAX - b->tokens ? UINT32_MAX : b->tokens + (uint32_t) tokens;
        k->total_tokens += tokens;
        if (usd > 0) {
            k->spend += usd;
            k->total_spend += usd;
        }
        k->dirty = true;
        period_start = k->period_start;
        period = k->spec.budget_period;
    }
    pthread_mutex_unlock (&self->lock);
    if (k && self->rl && (tokens || usd > 0))
        rlimit_charge (self->rl, name, tokens, usd > 0 ? s_nusd (usd) : 0, period_start,
                       s_period_end (period, period_start), now_ms);
    return k ? 0 : -1;
}

void keys_set_rlimit (keys_t *self, rlimit_t *rl)
{
    pthread_mutex_lock (&self->lock);
    self->rl = rl;
    pthread_mutex_unlock (&self->lock);
}

//  --------------------------------------------------------------- admin

static void s_bind_spec (sqlite3_stmt *st, int first, const keys_spec_t *sp)
{
    sqlite3_bind_text (st, first, sp->models, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (st, first + 1, sp->rpm);
    sqlite3_bind_int64 (st, first + 2, sp->tpm);
    sqlite3_bind_int64 (st, first + 3, sp->max_parallel);
    sqlite3_bind_double (st, first + 4, sp->budget_usd);
    sqlite3_bind_int (st, first + 5, (int) sp->budget_period);
    sqlite3_bind_int64 (st, first + 6, sp->expires_at);
    sqlite3_bind_text (st, first + 7, sp->metadata, -1, SQLITE_STATIC);
}

int keys_create (keys_t *self, const keys_spec_t *spec, int64_t now_ms, char *secret,
                 size_t secret_size, char *err, size_t errlen)
{
    if (secret_size < KEYS_SECRET_MAX) {
        snprintf (err, errlen, "the secret buffer is smaller than KEYS_SECRET_MAX");
        return -1;
    }
    if (!keys_name_ok (spec->name)) {
        snprintf (err, errlen, "bad key name");
        return -1;
    }
    s_key_t *k = calloc (1, sizeof *k);
    if (!k) {
        snprintf (err, errlen, "out of memory");
        return -1;
    }
    s_new_secret (secret, secret_size);
    s_hash (secret, strlen (secret), k->hash);
    s_hint (secret, k->hint, sizeof k->hint);
    k->spec = *spec;
    k->created_at = now_ms / 1000;
    k->period_start = s_period_start (spec->budget_period, now_ms / 1000);
    pthread_mutex_lock (&self->db_lock);
    pthread_mutex_lock (&self->lock);
    bool taken = s_find_name (self, spec->name) != NULL;
    pthread_mutex_unlock (&self->lock);
    int rc = taken ? -2 : 0;
    sqlite3_stmt *st = NULL;
    if (!rc && sqlite3_prepare_v2 (self->db, "INSERT INTO keys (name, hash, hint, created_at,"
                                   " period_start, models, rpm, tpm, max_parallel, budget_usd,"
                                   " budget_period, expires_at, metadata) VALUES (?, ?, ?, ?, ?,"
                                   " ?, ?, ?, ?, ?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
        rc = s_db_fail (self, err, errlen, "creating a key");
    if (!rc) {
        sqlite3_bind_text (st, 1, k->spec.name, -1, SQLITE_STATIC);
        sqlite3_bind_blob (st, 2, k->hash, S_HASH, SQLITE_STATIC);
        sqlite3_bind_text (st, 3, k->hint, -1, SQLITE_STATIC);
        sqlite3_bind_int64 (st, 4, k->created_at);
        sqlite3_bind_int64 (st, 5, k->period_start);
        s_bind_spec (st, 6, &k->spec);
        int step = sqlite3_step (st);
        if (step == SQLITE_CONSTRAINT)
            rc = -2;
        else
        if (step != SQLITE_DONE)
            rc = s_db_fail (self, err, errlen, "creating a key");
        else
            k->id = sqlite3_last_insert_rowid (self->db);
    }
    sqlite3_finalize (st);
    if (!rc) {
        pthread_mutex_lock (&self->lock);
        if (s_append (self, k, true)) {
            snprintf (err, errlen, "out of memory");
            rc = -1;
        }
        pthread_mutex_unlock (&self->lock);
    }
    pthread_mutex_unlock (&self->db_lock);
    if (rc) {
        memset (secret, 0, secret_size);
        free (k);
    }
    return rc;
}

int keys_update (keys_t *self, const keys_spec_t *spec)
{
    pthread_mutex_lock (&self->db_lock);
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2 (self->db, "UPDATE keys SET models = ?, rpm = ?, tpm = ?,"
                            " max_parallel = ?, budget_usd = ?, budget_period = ?,"
                            " expires_at = ?, metadata = ? WHERE name = ?", -1, &st, NULL)
        != SQLITE_OK)
        rc = -1;
    if (!rc) {
        s_bind_spec (st, 1, spec);
        sqlite3_bind_text (st, 9, spec->name, -1, SQLITE_STATIC);
        rc = sqlite3_step (st) == SQLITE_DONE ? (sqlite3_changes (self->db) ? 0 : -2) : -1;
    }
    sqlite3_finalize (st);
    if (!rc) {
        pthread_mutex_lock (&self->lock);
        s_key_t *k = s_find_name (self, spec->name);
        if (k) {
            bool period_changed = k->spec.budget_period != spec->budget_period;
            k->spec = *spec;
            if (period_changed)
                k->period_start = -1;   // rolls (and restarts the spend) on next use
        }
        pthread_mutex_unlock (&self->lock);
    }
    if (rc == -1)
        log_warn ("key database: updating a key failed: %s", sqlite3_errmsg (self->db));
    pthread_mutex_unlock (&self->db_lock);
    return rc;
}

int keys_revoke (keys_t *self, const char *name, int64_t now_ms)
{
    int64_t at = now_ms / 1000 > 0 ? now_ms / 1000 : 1;
    pthread_mutex_lock (&self->db_lock);
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2 (self->db, "UPDATE keys SET revoked_at = ? WHERE name = ? AND"
                            " revoked_at = 0", -1, &st, NULL) != SQLITE_OK)
        rc = -1;
    if (!rc) {
        sqlite3_bind_int64 (st, 1, at);
        sqlite3_bind_text (st, 2, name, -1, SQLITE_STATIC);
        rc = sqlite3_step (st) == SQLITE_DONE ? 0 : -1;
    }
    sqlite3_finalize (st);
    pthread_mutex_lock (&self->lock);
    s_key_t *k = s_find_name (self, name);
    if (!k)
        rc = -2;
    else
    if (!rc && !k->revoked_at)
        k->revoked_at = at;
    pthread_mutex_unlock (&self->lock);
    pthread_mutex_unlock (&self->db_lock);
    return rc;
}

static void s_view (s_key_t *k, int64_t now_ms, keys_view_t *out)
{
    int64_t now_s = now_ms / 1000;
    memset (out, 0, sizeof *out);
    s_roll_period (k, now_s);
    out->spec = k->spec;
    snprintf (out->hint, sizeof out->hint, "%s", k->hint);
    out->created_at = k->created_at;
    out->revoked_at = k->revoked_at;
    out->expired = k->spec.expires_at && now_s >= k->spec.expires_at;
    uint64_t req, tok;
    int64_t oreq, otok;
    s_window (k, now_s, &req, &tok, &oreq, &otok);
    out->requests_last_minute = (int64_t) req;
    out->tokens_last_minute = (int64_t) tok;
    out->in_flight = k->parallel;
    out->spend_usd = k->spend;
    out->period_start = k->period_start;
    out->total_requests = k->total_requests;
    out->total_tokens = k->total_tokens;
    out->total_spend_usd = k->total_spend;
}

//  With a shared limiter, its counters replace this edge's when Redis answers.
static void s_view_shared (keys_t *self, int64_t now_ms, keys_view_t *out)
{
    rlimit_result_t rr;
    if (!self->rl || rlimit_view (self->rl, out->spec.name, out->period_start, now_ms, &rr))
        return;
    out->requests_last_minute = rr.requests;
    out->tokens_last_minute = rr.tokens;
    out->in_flight = rr.in_flight;
    out->spend_usd = (double) rr.spend_nusd / 1e9;
    out->shared = true;
}

int keys_get (keys_t *self, const char *name, int64_t now_ms, keys_view_t *out)
{
    pthread_mutex_lock (&self->lock);
    s_key_t *k = s_find_name (self, name);
    if (k)
        s_view (k, now_ms, out);
    pthread_mutex_unlock (&self->lock);
    if (k)
        s_view_shared (self, now_ms, out);
    return k ? 0 : -2;
}

size_t keys_count (keys_t *self)
{
    pthread_mutex_lock (&self->lock);
    size_t n = self->nkeys;
    pthread_mutex_unlock (&self->lock);
    return n;
}

int keys_get_at (keys_t *self, size_t i, int64_t now_ms, keys_view_t *out)
{
    pthread_mutex_lock (&self->lock);
    int rc = i < self->nkeys ? 0 : -2;
    if (!rc)
        s_view (self->keys[i], now_ms, out);
    pthread_mutex_unlock (&self->lock);
    if (!rc)
        s_view_shared (self, now_ms, out);
    return rc;
}
