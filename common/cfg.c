// aigw configuration: ZPL parsing via zconfig, strict validation, clear messages.
#include "cfg.h"

#include <czmq.h>
#include <ctype.h>
#include <limits.h>
#include <stddef.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CFG_FILE_MAX (1024 * 1024)

typedef struct {
    const char *source;
    char *err;
    size_t errlen;
} s_ctx_t;

static int s_fail (s_ctx_t *ctx, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
static int s_fail (s_ctx_t *ctx, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (msg, sizeof msg, fmt, ap);
    va_end (ap);
    snprintf (ctx->err, ctx->errlen, "config %s: %s", ctx->source, msg);
    return -1;
}

static const char *s_val (zconfig_t *item)
{
    const char *v = zconfig_value (item);
    return v ? v : "";
}

static int s_str (s_ctx_t *ctx, const char *path, zconfig_t *item, char *dst, size_t dstlen)
{
    const char *v = s_val (item);
    if (strlen (v) >= dstlen)
        return s_fail (ctx, "%s: value too long (max %zu characters)", path, dstlen - 1);
    memcpy (dst, v, strlen (v) + 1);
    return 0;
}

static int s_u64 (s_ctx_t *ctx, const char *path, zconfig_t *item, uint64_t max, uint64_t *out)
{
    const char *v = s_val (item);
    char *end = NULL;
    errno = 0;
    if (!isdigit ((unsigned char) v[0]))
        return s_fail (ctx, "%s: expected a non-negative integer, got '%s'", path, v);
    unsigned long long n = strtoull (v, &end, 10);
    if (errno || *end || n > max)
        return s_fail (ctx, "%s: expected an integer from 0 to %llu, got '%s'", path,
                       (unsigned long long) max, v);
    *out = n;
    return 0;
}

static int s_u32 (s_ctx_t *ctx, const char *path, zconfig_t *item, uint32_t *out)
{
    uint64_t n = 0;
    if (s_u64 (ctx, path, item, UINT32_MAX, &n))
        return -1;
    *out = (uint32_t) n;
    return 0;
}

static int s_pos32 (s_ctx_t *ctx, const char *path, zconfig_t *item, uint32_t *out)
{
    if (s_u32 (ctx, path, item, out))
        return -1;
    if (*out == 0)
        return s_fail (ctx, "%s: must be greater than 0", path);
    return 0;
}

static int s_double (s_ctx_t *ctx, const char *path, zconfig_t *item, double lo, double hi,
                     double *out)
{
    const char *v = s_val (item);
    char *end = NULL;
    errno = 0;
    double d = strtod (v, &end);
    if (!*v || errno || *end || !(d >= lo && d <= hi))
        return s_fail (ctx, "%s: expected a number from %g to %g, got '%s'", path, lo, hi, v);
    *out = d;
    return 0;
}

static int s_bool (s_ctx_t *ctx, const char *path, zconfig_t *item, bool *out)
{
    const char *v = s_val (item);
    if (streq (v, "on") || streq (v, "true") || streq (v, "yes") || streq (v, "1"))
        *out = true;
    else
    if (streq (v, "off") || streq (v, "false") || streq (v, "no") || streq (v, "0"))
        *out = false;
    else
        return s_fail (ctx, "%s: expected on or off, got '%s'", path, v);
    return 0;
}

static bool s_endpoint_ok (const char *v)
{
    return strncmp (v, "tcp://", 6) == 0 || strncmp (v, "ipc://", 6) == 0
           || strncmp (v, "inproc://", 9) == 0;
}

static int s_endpoint (s_ctx_t *ctx, const char *path, zconfig_t *item, char *dst, size_t len)
{
    if (s_str (ctx, path, item, dst, len))
        return -1;
    if (!s_endpoint_ok (dst))
        return s_fail (ctx, "%s: expected a zmq endpoint like tcp://127.0.0.1:5555, got '%s'",
                       path, dst);
    return 0;
}

static int s_list (s_ctx_t *ctx, const char *path, zconfig_t *item, char *dst, size_t len,
                   bool (*ok) (const char *), const char *what);

//  A comma list of 1..CFG_BROKERS_MAX zmq endpoints (edge/broker, worker/broker).
static int s_endpoints (s_ctx_t *ctx, const char *path, zconfig_t *item, char *dst, size_t len)
{
    if (s_list (ctx, path, item, dst, len, s_endpoint_ok,
                "a zmq endpoint like tcp://127.0.0.1:5555"))
        return -1;
    char eps[CFG_BROKERS_MAX + 1][CFG_STR_MAX];
    if (cfg_endpoints (dst, eps, CFG_BROKERS_MAX + 1) > CFG_BROKERS_MAX)
        return s_fail (ctx, "%s: more than %d brokers", path, CFG_BROKERS_MAX);
    return 0;
}

static bool s_is (zconfig_t *item, const char *name)
{
    return streq (zconfig_name (item), name);
}

//  Certificate names become file names: [A-Za-z0-9][A-Za-z0-9._-]*, no '/'.
static bool s_cert_name_ok (const char *v)
{
    if (!isalnum ((unsigned char) v[0]) || strlen (v) >= CFG_CERT_NAME_MAX)
        return false;
    for (const char *p = v; *p; p++)
        if (!(isalnum ((unsigned char) *p) || strchr ("._-", *p)))
            return false;
    return true;
}

static int s_cert (s_ctx_t *ctx, const char *path, zconfig_t *item, char *dst, size_t len)
{
    if (!s_cert_name_ok (s_val (item)))
        return s_fail (ctx, "%s: expected a certificate name (letters, digits, '.', '_', '-';"
                       " at most %d characters), got '%s'", path, CFG_CERT_NAME_MAX - 1,
                       s_val (item));
    return s_str (ctx, path, item, dst, len);
}

//  A comma list whose items must each pass ok(); empty items are not allowed.
static int s_list (s_ctx_t *ctx, const char *path, zconfig_t *item, char *dst, size_t len,
                   bool (*ok) (const char *), const char *what)
{
    if (s_str (ctx, path, item, dst, len))
        return -1;
    const char *p = dst;
    size_t items = 0;
    while (*p) {
        p += strspn (p, ", \t");
        size_t n = strcspn (p, ", \t");
        if (n == 0)
            break;
        char one[CFG_STR_MAX];
        snprintf (one, sizeof one, "%.*s", (int) n, p);
        if (!ok (one))
            return s_fail (ctx, "%s: '%s' is not %s", path, one, what);
        items++;
        p += n;
    }
    if (items == 0)
        return s_fail (ctx, "%s: needs at least one %s", path, what);
    return 0;
}

//  A model pattern: printable, no space or comma; `*` matches any run of characters.
static bool s_pattern_ok (const char *v)
{
    for (const char *p = v; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return false;
    return *v && strlen (v) < CFG_NAME_MAX;
}

static int s_fabric_workers (s_ctx_t *ctx, zconfig_t *sec, cfg_t *cfg)
{
    if (*s_val (sec))
        return s_fail (ctx, "fabric/workers: expected one line per certificate below it"
                       " (NAME = \"model patterns\"), not a value");
    cfg->fabric.nworkers = 0;
    for (zconfig_t *k = zconfig_child (sec); k; k = zconfig_next (k)) {
        char path[256];
        snprintf (path, sizeof path, "fabric/workers/%s", zconfig_name (k));
        if (cfg->fabric.nworkers == CFG_FABRIC_WORKERS_MAX)
            return s_fail (ctx, "%s: more than %d entries", path, CFG_FABRIC_WORKERS_MAX);
        if (zconfig_child (k))
            return s_fail (ctx, "%s: expected NAME = \"model patterns\"", path);
        cfg_fabric_worker_t *w = &cfg->fabric.workers[cfg->fabric.nworkers];
        if (!s_cert_name_ok (zconfig_name (k)))
            return s_fail (ctx, "%s: not a certificate name (letters, digits, '.', '_', '-')",
                           path);
        for (size_t i = 0; i < cfg->fabric.nworkers; i++)
            if (streq (cfg->fabric.workers[i].name, zconfig_name (k)))
                return s_fail (ctx, "%s: listed twice", path);
        snprintf (w->name, sizeof w->name, "%s", zconfig_name (k));
        if (s_list (ctx, path, k, w->models, sizeof w->models, s_pattern_ok, "a model pattern"))
            return -1;
        cfg->fabric.nworkers++;
    }
    return 0;
}

static int s_fabric (s_ctx_t *ctx, zconfig_t *sec, cfg_t *cfg)
{
    for (zconfig_t *k = zconfig_child (sec); k; k = zconfig_next (k)) {
        char path[256];
        snprintf (path, sizeof path, "fabric/%s", zconfig_name (k));
        int rc;
        if (s_is (k, "curve"))
            rc = s_bool (ctx, path, k, &cfg->fabric.curve);
        else if (s_is (k, "cert_dir"))
            rc = s_str (ctx, path, k, cfg->fabric.cert_dir, sizeof cfg->fabric.cert_dir);
        else if (s_is (k, "insecure"))
            rc = s_bool (ctx, path, k, &cfg->fabric.insecure);
        else if (s_is (k, "clients"))
            rc = s_list (ctx, path, k, cfg->fabric.clients, sizeof cfg->fabric.clients,
                         s_cert_name_ok, "a certificate name");
        else if (s_is (k, "workers"))
            rc = s_fabric_workers (ctx, k, cfg);
        else if (s_is (k, "ping_ms"))
            rc = s_u32 (ctx, path, k, &cfg->fabric.ping_ms);
        else if (s_is (k, "ping_timeout_ms"))
            rc = s_u32 (ctx, path, k, &cfg->fabric.ping_timeout_ms);
        else
            rc = s_fail (ctx, "%s: unknown key", path);
        if (rc)
            return rc;
    }
    if (cfg->fabric.ping_ms && cfg->fabric.ping_timeout_ms <= cfg->fabric.ping_ms)
        return s_fail (ctx, "fabric/ping_timeout_ms: must be larger than fabric/ping_ms "
                       "(or ping_ms = 0 to turn pings off)");
    if (cfg->fabric.curve && !cfg->fabric.cert_dir[0])
        return s_fail (ctx, "fabric/cert_dir: required when fabric/curve = on");
    return 0;
}

//  A health key (broker/* or models/NAME/*). Returns 1 if k is not one, else 0 / -1.
static int s_health_key (s_ctx_t *ctx, const char *path, zconfig_t *k, cfg_health_t *h)
{
    const struct { const char *key; uint32_t *u; double *d; uint32_t min, max; } keys[] = {
        { "cooldown_failures", &h->cooldown_failures, NULL, 0, 1000000 },
        { "cooldown_error_rate", NULL, &h->cooldown_error_rate, 0, 1 },
        { "cooldown_min_requests", &h->cooldown_min_requests, NULL, 1, 1000000 },
        { "cooldown_window_ms", &h->cooldown_window_ms, NULL, 100, 3600000 },
        { "cooldown_ms", &h->cooldown_ms, NULL, 1, 3600000 },
        { "cooldown_max_ms", &h->cooldown_max_ms, NULL, 1, 86400000 },
        { "hedge_budget", NULL, &h->hedge_budget, 0, 1 },
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (!s_is (k, keys[i].key))
            continue;
        h->set |= 1u << i;
        if (keys[i].d)
            return s_double (ctx, path, k, keys[i].min, keys[i].max, keys[i].d);
        uint32_t v = 0;
        if (s_u32 (ctx, path, k, &v))
            return -1;
        if (v < keys[i].min || v > keys[i].max)
            return s_fail (ctx, "%s: must be from %u to %u", path, keys[i].min, keys[i].max);
        *keys[i].u = v;
        return 0;
    }
    return 1;
}

void cfg_model_health (const cfg_t *self, const char *model, cfg_health_t *out)
{
    *out = self->broker.health;
    out->set = 0;
    const cfg_model_t *m = model ? cfg_model (self, model) : NULL;
    if (!m)
        return;
    const cfg_health_t *h = &m->health;
    if (h->set & 1u) out->cooldown_failures = h->cooldown_failures;
    if (h->set & 2u) out->cooldown_error_rate = h->cooldown_error_rate;
    if (h->set & 4u) out->cooldown_min_requests = h->cooldown_min_requests;
    if (h->set & 8u) out->cooldown_window_ms = h->cooldown_window_ms;
    if (h->set & 16u) out->cooldown_ms = h->cooldown_ms;
    if (h->set & 32u) out->cooldown_max_ms = h->cooldown_max_ms;
    if (h->set & 64u) out->hedge_budget = h->hedge_budget;
}

//  retries = 0..CFG_RETRIES_MAX
static int s_retries (s_ctx_t *ctx, const char *path, zconfig_t *k, int32_t *out)
{
    uint32_t v = 0;
    if (s_u32 (ctx, path, k, &v))
        return -1;
    if (v > CFG_RETRIES_MAX)
        return s_fail (ctx, "%s: must be from 0 to %d", path, CFG_RETRIES_MAX);
    *out = (int32_t) v;
    return 0;
}

static int s_broker (s_ctx_t *ctx, zconfig_t *sec, cfg_t *cfg)
{
    for (zconfig_t *k = zconfig_child (sec); k; k = zconfig_next (k)) {
        char path[256];
        snprintf (path, sizeof path, "broker/%s", zconfig_name (k));
        int rc;
        if (s_is (k, "frontend"))
            rc = s_endpoint (ctx, path, k, cfg->broker.frontend, sizeof cfg->broker.frontend);
        else if (s_is (k, "backend"))
            rc = s_endpoint (ctx, path, k, cfg->broker.backend, sizeof cfg->broker.backend);
        else if (s_is (k, "metrics"))
            rc = s_endpoint (ctx, path, k, cfg->broker.metrics, sizeof cfg->broker.metrics);
        else if (s_is (k, "heartbeat_ms"))
            rc = s_pos32 (ctx, path, k, &cfg->broker.heartbeat_ms);
        else if (s_is (k, "liveness"))
            rc = s_pos32 (ctx, path, k, &cfg->broker.liveness);
        else if (s_is (k, "start_hold_ms"))
            rc = s_u32 (ctx, path, k, &cfg->broker.start_hold_ms);
        else if (s_is (k, "queue_limit"))
            rc = s_u32 (ctx, path, k, &cfg->broker.queue_limit);
        else if (s_is (k, "deadline_ms"))
            rc = s_pos32 (ctx, path, k, &cfg->broker.deadline_ms);
        else if (s_is (k, "max_deadline_ms"))
            rc = s_pos32 (ctx, path, k, &cfg->broker.max_deadline_ms);
        else if (s_is (k, "hedge_default_ms"))
            rc = s_u32 (ctx, path, k, &cfg->broker.hedge_default_ms);
        else if (s_is (k, "retry_backoff_ms"))
            rc = s_u32 (ctx, path, k, &cfg->broker.retry_backoff_ms);
        else if (s_is (k, "max_frame")) {
            uint64_t n = 0;
            rc = s_u64 (ctx, path, k, (uint64_t) 1 << 30, &n);
            if (!rc && n < 4096)
                rc = s_fail (ctx, "%s: must be at least 4096", path);
            cfg->broker.max_frame = (int64_t) n;
        }
        else if (s_is (k, "cert"))
            rc = s_cert (ctx, path, k, cfg->broker.cert, sizeof cfg->broker.cert);
        else
        if ((rc = s_health_key (ctx, path, k, &cfg->broker.health)) == 1)
            rc = s_fail (ctx, "%s: unknown key", path);
        if (rc)
            return rc;
    }
    return 0;
}

//  The edge's numeric limits: key, field, smallest and largest value.
static int s_edge_number (s_ctx_t *ctx, const char *path, zconfig_t *k, cfg_t *cfg)
{
    const struct { const char *key; uint32_t *field; uint32_t min, max; } keys[] = {
        { "threads", &cfg->edge.threads, 0, 256 },
        { "max_connections", &cfg->edge.max_connections, 1, 1000000 },
        { "max_per_ip", &cfg->edge.max_per_ip, 1, 1000000 },
        { "max_jobs", &cfg->edge.max_jobs, 1, 1000000 },
        { "max_header_bytes", &cfg->edge.max_header_bytes, 1024, 1 << 20 },
        { "max_headers", &cfg->edge.max_headers, 8, 10000 },
        { "idle_timeout_ms", &cfg->edge.idle_timeout_ms, 1000, 3600000 },
        { "header_timeout_ms", &cfg->edge.header_timeout_ms, 100, 3600000 },
        { "stream_buffer", &cfg->edge.stream_buffer, 4096, 1 << 30 },
        { "max_json_depth", &cfg->edge.max_json_depth, 1, 1000 },   // 1000: cJSON's own limit
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (!s_is (k, keys[i].key))
            continue;
        uint32_t v = 0;
        if (s_u32 (ctx, path, k, &v))
            return -1;
        if (v < keys[i].min || v > keys[i].max)
            return s_fail (ctx, "%s: %u is out of range (%u to %u)", path, v, keys[i].min,
                           keys[i].max);
        *keys[i].field = v;
        return 0;
    }
    return s_fail (ctx, "%s: unknown key", path);
}

static int s_edge (s_ctx_t *ctx, zconfig_t *sec, cfg_t *cfg)
{
    for (zconfig_t *k = zconfig_child (sec); k; k = zconfig_next (k)) {
        char path[256];
        snprintf (path, sizeof path, "edge/%s", zconfig_name (k));
        int rc;
        if (s_is (k, "listen"))
            rc = s_str (ctx, path, k, cfg->edge.listen, sizeof cfg->edge.listen);
        else if (s_is (k, "broker"))
            rc = s_endpoints (ctx, path, k, cfg->edge.broker, sizeof cfg->edge.broker);
        else if (s_is (k, "max_body"))
            rc = s_u64 (ctx, path, k, (uint64_t) 1 << 30, &cfg->edge.max_body);
        else if (s_is (k, "document_root"))
            rc = s_str (ctx, path, k, cfg->edge.document_root, sizeof cfg->edge.document_root);
        else if (s_is (k, "cors_origins"))
            rc = s_str (ctx, path, k, cfg->edge.cors_origins, sizeof cfg->edge.cors_origins);
        else if (s_is (k, "tls_cert"))
            rc = s_str (ctx, path, k, cfg->edge.tls_cert, sizeof cfg->edge.tls_cert);
        else if (s_is (k, "tls_key"))
            rc = s_str (ctx, path, k, cfg->edge.tls_key, sizeof cfg->edge.tls_key);
        else if (s_is (k, "auth"))
            rc = s_bool (ctx, path, k, &cfg->edge.auth);
        else if (s_is (k, "insecure"))
            rc = s_bool (ctx, path, k, &cfg->edge.insecure);
        else if (s_is (k, "keys_db"))
            rc = s_str (ctx, path, k, cfg->edge.keys_db, sizeof cfg->edge.keys_db);
        else if (s_is (k, "admin_key_env"))
            rc = s_str (ctx, path, k, cfg->edge.admin_key_env, sizeof cfg->edge.admin_key_env);
        else if (s_is (k, "cert"))
            rc = s_cert (ctx, path, k, cfg->edge.cert, sizeof cfg->edge.cert);
        else
            rc = s_edge_number (ctx, path, k, cfg);
        if (rc)
            return rc;
    }
    if (!cfg->edge.listen[0])
        return s_fail (ctx, "edge/listen: must not be empty");
    if (!cfg->edge.tls_cert[0] != !cfg->edge.tls_key[0])
        return s_fail (ctx, "edge/%s: TLS needs both tls_cert and tls_key",
                       cfg->edge.tls_cert[0] ? "tls_key" : "tls_cert");
    if (cfg->edge.auth && !cfg->edge.keys_db[0])
        return s_fail (ctx, "edge/keys_db: edge/auth = on needs a key database path");
    if (!cfg->edge.admin_key_env[0])
        return s_fail (ctx, "edge/admin_key_env: must not be empty");
    return 0;
}

//  limits/backend: memory, redis://HOST[:PORT] ([IPv6] in brackets) or unix:/path.
static int s_limits_backend (s_ctx_t *ctx, const char *path, zconfig_t *k, cfg_limits_t *l)
{
    if (s_str (ctx, path, k, l->backend, sizeof l->backend))
        return -1;
    const char *v = l->backend;
    if (streq (v, "memory")) {
        l->kind = CFG_LIMITS_MEMORY;
        return 0;
    }
    if (strncmp (v, "unix:", 5) == 0) {
        const char *sock = v + 5;
        if (strncmp (sock, "//", 2) == 0)
            sock += 2;                  // unix:///run/redis.sock
        if (!*sock)
            return s_fail (ctx, "%s: unix: needs a socket path, e.g. unix:/run/redis/redis.sock",
                           path);
        l->kind = CFG_LIMITS_REDIS_UNIX;
        snprintf (l->socket, sizeof l->socket, "%s", sock);
        return 0;
    }
    if (strncmp (v, "redis://", 8) != 0)
        return s_fail (ctx, "%s: expected memory, redis://HOST:PORT or unix:/path/to/redis.sock,"
                       " got '%s'", path, v);
    const char *h = v + 8, *end;
    size_t hlen;
    if (*h == '[') {
        end = strchr (h, ']');
        if (!end)
            return s_fail (ctx, "%s: missing ']' after the IPv6 address in '%s'", path, v);
        h++;
        hlen = (size_t) (end - h);
        end++;
    }
    else {
        hlen = strcspn (h, ":/");
        end = h + hlen;
    }
    if (hlen == 0 || hlen >= sizeof l->host)
        return s_fail (ctx, "%s: redis:// needs a host, e.g. redis://127.0.0.1:6379", path);
    if (*end && *end != ':')
        return s_fail (ctx, "%s: expected redis://HOST:PORT (no path, user or database), got "
                       "'%s'", path, v);
    uint64_t port = 6379;
    if (*end == ':') {
        char *stop = NULL;
        errno = 0;
        port = isdigit ((unsigned char) end[1]) ? strtoull (end + 1, &stop, 10) : 0;
        if (errno || !stop || *stop || port < 1 || port > 65535)
            return s_fail (ctx, "%s: bad port in '%s' (1 to 65535)", path, v);
    }
    memcpy (l->host, h, hlen);
    l->host[hlen] = 0;
    l->port = (uint16_t) port;
    l->kind = CFG_LIMITS_REDIS_TCP;
    return 0;
}

static int s_limits_failure (s_ctx_t *ctx, const char *path, zconfig_t *k, cfg_limits_t *l)
{
    const char *v = s_val (k);
    if (streq (v, "local"))
        l->on_failure = CFG_LIMITS_LOCAL;
    else if (streq (v, "open"))
        l->on_failure = CFG_LIMITS_OPEN;
    else if (streq (v, "closed"))
        l->on_failure = CFG_LIMITS_CLOSED;
    else
        return s_fail (ctx, "%s: expected local, open or closed, got '%s'", path, v);
    return 0;
}

static int s_limits_prefix (s_ctx_t *ctx, const char *path, zconfig_t *k, cfg_limits_t *l)
{
    const char *v = s_val (k);
    size_t n = strlen (v);
    if (n == 0 || n >= sizeof l->prefix
        || strspn (v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:._-") != n)
        return s_fail (ctx, "%s: 1 to %zu characters of letters, digits and :._- , got '%s'",
                       path, sizeof l->prefix - 1, v);
    memcpy (l->prefix, v, n + 1);
    return 0;
}

static int s_limits (s_ctx_t *ctx, zconfig_t *sec, cfg_t *cfg)
{
    cfg_limits_t *l = &cfg->limits;
    for (zconfig_t *k = zconfig_child (sec); k; k = zconfig_next (k)) {
        char path[256];
        snprintf (path, sizeof path, "limits/%s", zconfig_name (k));
        int rc;
        if (s_is (k, "backend"))
            rc = s_limits_backend (ctx, path, k, l);
        else if (s_is (k, "redis_password_env")) {
            rc = s_str (ctx, path, k, l->redis_password_env, sizeof l->redis_password_env);
            if (!rc && !l->redis_password_env[0])
                rc = s_fail (ctx, "%s: must not be empty (leave it out for no password)", path);
        }
        else if (s_is (k, "redis_timeout_ms")) {
            rc = s_pos32 (ctx, path, k, &l->redis_timeout_ms);
            if (!rc && l->redis_timeout_ms > 60000)
                rc = s_fail (ctx, "%s: %u is out of range (1 to 60000)", path,
                             l->redis_timeout_ms);
        }
        else if (s_is (k, "on_failure"))
            rc = s_limits_failure (ctx, path, k, l);
        else if (s_is (k, "prefix"))
            rc = s_limits_prefix (ctx, path, k, l);
        else
            rc = s_fail (ctx, "%s: unknown key (expected backend, redis_password_env, "
                         "redis_timeout_ms, on_failure, prefix)", path);
        if (rc)
            return rc;
    }
    return 0;
}

static int s_worker (s_ctx_t *ctx, zconfig_t *sec, cfg_t *cfg)
{
    for (zconfig_t *k = zconfig_child (sec); k; k = zconfig_next (k)) {
        char path[256];
        snprintf (path, sizeof path, "worker/%s", zconfig_name (k));
        int rc;
        if (s_is (k, "broker"))
            rc = s_endpoints (ctx, path, k, cfg->worker.broker, sizeof cfg->worker.broker);
        else if (s_is (k, "capacity"))
            rc = s_pos32 (ctx, path, k, &cfg->worker.capacity);
        else if (s_is (k, "cert"))
            rc = s_cert (ctx, path, k, cfg->worker.cert, sizeof cfg->worker.cert);
        else
            rc = s_fail (ctx, "%s: unknown key", path);
        if (rc)
            return rc;
    }
    return 0;
}

static int s_provider (s_ctx_t *ctx, const char *path, zconfig_t *k, cfg_provider_t *out)
{
    const char *v = s_val (k);
    if (streq (v, "sim"))
        *out = CFG_PROVIDER_SIM;
    else if (streq (v, "openai"))
        *out = CFG_PROVIDER_OPENAI;
    else if (streq (v, "anthropic"))
        *out = CFG_PROVIDER_ANTHROPIC;
    else if (streq (v, "ollama"))
        *out = CFG_PROVIDER_OLLAMA;
    else
        return s_fail (ctx, "%s: unknown provider '%s' (expected sim, openai, anthropic or ollama)",
                       path, v);
    return 0;
}

static int s_model_key (s_ctx_t *ctx, const char *path, zconfig_t *k, cfg_model_t *m)
{
    if (s_is (k, "provider"))
        return s_provider (ctx, path, k, &m->provider);
    if (s_is (k, "base_url"))
        return s_str (ctx, path, k, m->base_url, sizeof m->base_url);
    if (s_is (k, "api_key_env"))
        return s_str (ctx, path, k, m->api_key_env, sizeof m->api_key_env);
    if (s_is (k, "upstream_model"))
        return s_str (ctx, path, k, m->upstream_model, sizeof m->upstream_model);
    if (s_is (k, "timeout_ms"))
        return s_pos32 (ctx, path, k, &m->timeout_ms);
    if (s_is (k, "connect_timeout_ms"))
        return s_pos32 (ctx, path, k, &m->connect_timeout_ms);
    if (s_is (k, "max_response_bytes"))
        return s_u64 (ctx, path, k, (uint64_t) 1 << 30, &m->max_response_bytes);
    if (s_is (k, "max_tokens"))
        return s_pos32 (ctx, path, k, &m->max_tokens);
    if (s_is (k, "latency_ms"))
        return s_u32 (ctx, path, k, &m->latency_ms);
    if (s_is (k, "jitter"))
        return s_double (ctx, path, k, 0.0, 5.0, &m->jitter);
    if (s_is (k, "fail_rate"))
        return s_double (ctx, path, k, 0.0, 1.0, &m->fail_rate);
    if (s_is (k, "text"))
        return s_str (ctx, path, k, m->text, sizeof m->text);
    if (s_is (k, "seed"))
        return s_u64 (ctx, path, k, UINT64_MAX, &m->seed);
    if (s_is (k, "tokens_per_s"))
        return s_u32 (ctx, path, k, &m->tokens_per_s);
    if (s_is (k, "input_price"))
        return s_double (ctx, path, k, 0.0, 1e6, &m->input_price);
    if (s_is (k, "output_price"))
        return s_double (ctx, path, k, 0.0, 1e6, &m->output_price);
    if (s_is (k, "retries"))
        return s_retries (ctx, path, k, &m->retries);
    if (s_is (k, "retry_backoff_ms"))
        return s_u32 (ctx, path, k, &m->retry_backoff_ms);
    int rc = s_health_key (ctx, path, k, &m->health);
    if (rc != 1)
        return rc;
    return s_fail (ctx, "%s: unknown key", path);
}

static bool s_name_ok (const char *name)
{
    if (!*name || strlen (name) >= CFG_NAME_MAX)
        return false;
    for (const char *p = name; *p; p++)
        if (!(isalnum ((unsigned char) *p) || strchr ("-_.:@+", *p)))
            return false;
    return true;
}

static int s_model (s_ctx_t *ctx, zconfig_t *sec, cfg_model_t *m)
{
    const char *name = zconfig_name (sec);
    if (!s_name_ok (name))
        return s_fail (ctx, "models/%s: bad model name (letters, digits and -_.:@+ only)", name);
    snprintf (m->name, sizeof m->name, "%s", name);
    m->provider = (cfg_provider_t) -1;
    m->timeout_ms = 120000;
    m->connect_timeout_ms = 5000;
    m->max_response_bytes = 8 * 1024 * 1024;
    m->max_tokens = 1024;
    m->latency_ms = 40;
    m->seed = 1;
    m->retries = CFG_RETRIES_UNSET;
    for (zconfig_t *k = zconfig_child (sec); k; k = zconfig_next (k)) {
        char path[512];
        snprintf (path, sizeof path, "models/%s/%s", name, zconfig_name (k));
        if (s_model_key (ctx, path, k, m))
            return -1;
    }
    if ((int) m->provider == -1)
        return s_fail (ctx, "models/%s/provider: missing (sim, openai, anthropic or ollama)", name);
    if (m->provider != CFG_PROVIDER_SIM && !m->base_url[0])
        return s_fail (ctx, "models/%s/base_url: missing (required for provider %s)", name,
                       cfg_provider_name (m->provider));
    if (m->base_url[0] && strncmp (m->base_url, "http://", 7) && strncmp (m->base_url, "https://", 8))
        return s_fail (ctx, "models/%s/base_url: must start with http:// or https://, got '%s'",
                       name, m->base_url);
    if (!m->upstream_model[0])
        snprintf (m->upstream_model, sizeof m->upstream_model, "%s", name);
    if (!m->text[0])
        snprintf (m->text, sizeof m->text, "Hello from %s. This is a simulated answer.", name);
    return 0;
}

static int s_targets (s_ctx_t *ctx, const char *path, zconfig_t *k, cfg_group_t *g)
{
    char buf[CFG_TARGETS_MAX * CFG_NAME_MAX];
    if (s_str (ctx, path, k, buf, sizeof buf))
        return -1;
    g->ntargets = 0;
    const char *p = buf;
    while (*p) {
        p += strspn (p, ", \t");
        size_t len = strcspn (p, ", \t");
        if (len == 0)
            break;
        if (g->ntargets == CFG_TARGETS_MAX)
            return s_fail (ctx, "%s: more than %d targets", path, CFG_TARGETS_MAX);
        if (len >= CFG_NAME_MAX)
            return s_fail (ctx, "%s: target name too long", path);
        memcpy (g->targets[g->ntargets], p, len);
        g->targets[g->ntargets++][len] = 0;
        p += len;
    }
    if (g->ntargets == 0)
        return s_fail (ctx, "%s: needs at least one model", path);
    return 0;
}

static int s_group_key (s_ctx_t *ctx, const char *path, zconfig_t *k, cfg_group_t *g)
{
    if (s_is (k, "policy")) {
        if (cfg_policy_parse (s_val (k), &g->policy))
            return s_fail (ctx, "%s: unknown policy '%s' (expected race, hedge or fallback)",
                           path, s_val (k));
        return 0;
    }
    if (s_is (k, "targets"))
        return s_targets (ctx, path, k, g);
    if (s_is (k, "hedge_delay_ms")) {
        if (streq (s_val (k), "auto")) {
            g->hedge_auto = true;
            return 0;
        }
        return s_u32 (ctx, path, k, &g->hedge_delay_ms);
    }
    if (s_is (k, "deadline_ms"))
        return s_pos32 (ctx, path, k, &g->deadline_ms);
    if (s_is (k, "ttft_timeout_ms"))
        return s_pos32 (ctx, path, k, &g->ttft_timeout_ms);
    if (s_is (k, "retries"))
        return s_retries (ctx, path, k, &g->retries);
    if (s_is (k, "retry_backoff_ms"))
        return s_u32 (ctx, path, k, &g->retry_backoff_ms);
    return s_fail (ctx, "%s: unknown key", path);
}

static int s_group (s_ctx_t *ctx, zconfig_t *sec, cfg_group_t *g)
{
    const char *name = zconfig_name (sec);
    if (!s_name_ok (name))
        return s_fail (ctx, "groups/%s: bad group name (letters, digits and -_.:@+ only)", name);
    snprintf (g->name, sizeof g->name, "%s", name);
    g->retries = CFG_RETRIES_UNSET;
    for (zconfig_t *k = zconfig_child (sec); k; k = zconfig_next (k)) {
        char path[512];
        snprintf (path, sizeof path, "groups/%s/%s", name, zconfig_name (k));
        if (s_group_key (ctx, path, k, g))
            return -1;
    }
    if (g->ntargets == 0)
        return s_fail (ctx, "groups/%s/targets: missing", name);
    return 0;
}

static size_t s_count (zconfig_t *sec)
{
    size_t n = 0;
    for (zconfig_t *k = zconfig_child (sec); k; k = zconfig_next (k))
        n++;
    return n;
}

static int s_models (s_ctx_t *ctx, zconfig_t *sec, cfg_t *cfg)
{
    size_t n = s_count (sec);
    cfg->models = calloc (n ? n : 1, sizeof *cfg->models);
    if (!cfg->models)
        return s_fail (ctx, "out of memory");
    for (zconfig_t *k = zconfig_child (sec); k; k = zconfig_next (k)) {
        if (cfg_model (cfg, zconfig_name (k)))
            return s_fail (ctx, "models/%s: defined twice", zconfig_name (k));
        if (s_model (ctx, k, &cfg->models[cfg->nmodels]))
            return -1;
        cfg->nmodels++;
    }
    return 0;
}

static int s_groups (s_ctx_t *ctx, zconfig_t *sec, cfg_t *cfg)
{
    size_t n = s_count (sec);
    cfg->groups = calloc (n ? n : 1, sizeof *cfg->groups);
    if (!cfg->groups)
        return s_fail (ctx, "out of memory");
    for (zconfig_t *k = zconfig_child (sec); k; k = zconfig_next (k)) {
        if (cfg_group (cfg, zconfig_name (k)))
            return s_fail (ctx, "groups/%s: defined twice", zconfig_name (k));
        if (s_group (ctx, k, &cfg->groups[cfg->ngroups]))
            return -1;
        cfg->ngroups++;
    }
    return 0;
}

//  Groups may only name models from config; names may not collide.
static int s_cross_check (s_ctx_t *ctx, cfg_t *cfg)
{
    for (size_t i = 0; i < cfg->ngroups; i++) {
        cfg_group_t *g = &cfg->groups[i];
        if (cfg_model (cfg, g->name))
            return s_fail (ctx, "groups/%s: a model has the same name", g->name);
        for (size_t t = 0; t < g->ntargets; t++)
            if (!cfg_model (cfg, g->targets[t]))
                return s_fail (ctx, "groups/%s/targets: unknown model '%s'", g->name,
                               g->targets[t]);
    }
    if (cfg->broker.deadline_ms > cfg->broker.max_deadline_ms)
        return s_fail (ctx, "broker/deadline_ms: larger than broker/max_deadline_ms");
    return 0;
}

static void s_set_defaults (cfg_t *cfg)
{
    snprintf (cfg->broker.frontend, sizeof cfg->broker.frontend, "tcp://127.0.0.1:5555");
    snprintf (cfg->broker.backend, sizeof cfg->broker.backend, "tcp://127.0.0.1:5556");
    snprintf (cfg->broker.metrics, sizeof cfg->broker.metrics, "tcp://127.0.0.1:5557");
    cfg->broker.heartbeat_ms = 1000;
    cfg->broker.liveness = 3;
    cfg->broker.start_hold_ms = CFG_HOLD_AUTO;
    cfg->fabric.ping_ms = 250;
    cfg->fabric.ping_timeout_ms = 1000;
    cfg->broker.queue_limit = 1024;
    cfg->broker.deadline_ms = 120000;
    cfg->broker.max_deadline_ms = 600000;
    cfg->broker.hedge_default_ms = 200;
    cfg->broker.retry_backoff_ms = 100;
    cfg->broker.health = (cfg_health_t) {
        .cooldown_failures = 5, .cooldown_error_rate = 0.5, .cooldown_min_requests = 20,
        .cooldown_window_ms = 10000, .cooldown_ms = 5000, .cooldown_max_ms = 60000,
        .hedge_budget = 0.1,
    };
    cfg->broker.max_frame = 8 * 1024 * 1024;
    snprintf (cfg->edge.listen, sizeof cfg->edge.listen, "127.0.0.1:8080");
    cfg->edge.threads = 0;
    cfg->edge.max_body = 1024 * 1024;
    cfg->edge.max_json_depth = 64;
    cfg->edge.max_connections = 16384;
    cfg->edge.max_per_ip = 1024;
    cfg->edge.max_jobs = 16384;
    cfg->edge.max_header_bytes = 4096;
    cfg->edge.max_headers = 64;
    cfg->edge.idle_timeout_ms = 30000;
    cfg->edge.header_timeout_ms = 10000;
    cfg->edge.stream_buffer = 1024 * 1024;
    snprintf (cfg->edge.admin_key_env, sizeof cfg->edge.admin_key_env, "AIGW_ADMIN_KEY");
    cfg->worker.capacity = 64;
    snprintf (cfg->broker.cert, sizeof cfg->broker.cert, "broker");
    snprintf (cfg->edge.cert, sizeof cfg->edge.cert, "edge");
    snprintf (cfg->worker.cert, sizeof cfg->worker.cert, "worker");
    snprintf (cfg->fabric.clients, sizeof cfg->fabric.clients, "edge, agent");
    snprintf (cfg->fabric.workers[0].name, sizeof cfg->fabric.workers[0].name, "worker");
    snprintf (cfg->fabric.workers[0].models, sizeof cfg->fabric.workers[0].models, "*");
    snprintf (cfg->fabric.workers[1].name, sizeof cfg->fabric.workers[1].name, "agent");
    snprintf (cfg->fabric.workers[1].models, sizeof cfg->fabric.workers[1].models, "agent/*");
    cfg->fabric.nworkers = 2;
    cfg->limits.kind = CFG_LIMITS_MEMORY;
    snprintf (cfg->limits.backend, sizeof cfg->limits.backend, "memory");
    cfg->limits.redis_timeout_ms = 50;
    cfg->limits.on_failure = CFG_LIMITS_LOCAL;
    snprintf (cfg->limits.prefix, sizeof cfg->limits.prefix, "aigw:");
}

static void s_fill_links (cfg_t *cfg)
{
    if (!cfg->edge.broker[0])
        snprintf (cfg->edge.broker, sizeof cfg->edge.broker, "%s", cfg->broker.frontend);
    if (!cfg->worker.broker[0])
        snprintf (cfg->worker.broker, sizeof cfg->worker.broker, "%s", cfg->broker.backend);
}

cfg_t *cfg_defaults (void)
{
    cfg_t *cfg = calloc (1, sizeof *cfg);
    if (!cfg)
        return NULL;
    s_set_defaults (cfg);
    s_fill_links (cfg);
    return cfg;
}

static int s_section (s_ctx_t *ctx, zconfig_t *sec, cfg_t *cfg)
{
    if (s_is (sec, "fabric"))
        return s_fabric (ctx, sec, cfg);
    if (s_is (sec, "broker"))
        return s_broker (ctx, sec, cfg);
    if (s_is (sec, "edge"))
        return s_edge (ctx, sec, cfg);
    if (s_is (sec, "worker"))
        return s_worker (ctx, sec, cfg);
    if (s_is (sec, "limits"))
        return s_limits (ctx, sec, cfg);
    if (s_is (sec, "models"))
        return cfg->models ? s_fail (ctx, "models: section appears twice") : s_models (ctx, sec, cfg);
    if (s_is (sec, "groups"))
        return cfg->groups ? s_fail (ctx, "groups: section appears twice") : s_groups (ctx, sec, cfg);
    return s_fail (ctx, "%s: unknown section (expected fabric, broker, edge, worker, limits,"
                   " models, groups)", zconfig_name (sec));
}

cfg_t *cfg_parse (const char *text, const char *source, char *err, size_t errlen)
{
    s_ctx_t ctx = { source ? source : "(string)", err, errlen };
    if (err && errlen)
        err[0] = 0;
    zconfig_t *root = zconfig_str_load (text);
    if (!root) {
        s_fail (&ctx, "not valid ZPL (indent by 4 spaces, 'name = value', '#' comments)");
        return NULL;
    }
    cfg_t *cfg = calloc (1, sizeof *cfg);
    if (!cfg) {
        zconfig_destroy (&root);
        s_fail (&ctx, "out of memory");
        return NULL;
    }
    s_set_defaults (cfg);
    int rc = 0;
    for (zconfig_t *sec = zconfig_child (root); sec && !rc; sec = zconfig_next (sec))
        rc = s_section (&ctx, sec, cfg);
    zconfig_destroy (&root);
    if (!rc)
        rc = s_cross_check (&ctx, cfg);
    if (rc) {
        cfg_destroy (&cfg);
        return NULL;
    }
    s_fill_links (cfg);
    return cfg;
}

cfg_t *cfg_load (const char *path, char *err, size_t errlen)
{
    s_ctx_t ctx = { path, err, errlen };
    FILE *f = fopen (path, "rb");
    if (!f) {
        s_fail (&ctx, "cannot open: %s", strerror (errno));
        return NULL;
    }
    char *text = malloc (CFG_FILE_MAX + 1);
    size_t n = text ? fread (text, 1, CFG_FILE_MAX + 1, f) : 0;
    fclose (f);
    if (!text || n > CFG_FILE_MAX) {
        free (text);
        s_fail (&ctx, "file larger than %d bytes", CFG_FILE_MAX);
        return NULL;
    }
    text[n] = 0;
    if (memchr (text, 0, n)) {
        free (text);
        s_fail (&ctx, "file contains NUL bytes");
        return NULL;
    }
    cfg_t *cfg = cfg_parse (text, path, err, errlen);
    free (text);
    if (cfg && cfg_resolve_path (cfg->fabric.cert_dir, sizeof cfg->fabric.cert_dir, path)) {
        s_fail (&ctx, "fabric/cert_dir: path too long once made absolute");
        cfg_destroy (&cfg);
    }
    if (cfg && cfg_resolve_path (cfg->limits.socket, sizeof cfg->limits.socket, path)) {
        s_fail (&ctx, "limits/backend: socket path too long once made absolute");
        cfg_destroy (&cfg);
    }
    return cfg;
}

void cfg_destroy (cfg_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free ((*self_p)->models);
    free ((*self_p)->groups);
    free (*self_p);
    *self_p = NULL;
}

const cfg_model_t *cfg_model (const cfg_t *self, const char *name)
{
    for (size_t i = 0; self && i < self->nmodels; i++)
        if (streq (self->models[i].name, name))
            return &self->models[i];
    return NULL;
}

const cfg_group_t *cfg_group (const cfg_t *self, const char *name)
{
    for (size_t i = 0; self && i < self->ngroups; i++)
        if (streq (self->groups[i].name, name))
            return &self->groups[i];
    return NULL;
}

double cfg_cost (const cfg_t *self, const char *model, uint64_t prompt_tokens,
                 uint64_t completion_tokens)
{
    const cfg_model_t *m = self && model ? cfg_model (self, model) : NULL;
    if (!m)
        return 0.0;
    return ((double) prompt_tokens * m->input_price
            + (double) completion_tokens * m->output_price) / 1e6;
}

int cfg_resolve_path (char *path, size_t cap, const char *config_path)
{
    if (!path[0] || path[0] == '/')
        return 0;
    char dir[PATH_MAX] = ".";
    if (config_path && strrchr (config_path, '/')) {
        size_t len = (size_t) (strrchr (config_path, '/') - config_path);
        snprintf (dir, sizeof dir, "%.*s", (int) (len ? len : 1), config_path);
    }
    char absdir[PATH_MAX];
    if (!realpath (dir, absdir))
        snprintf (absdir, sizeof absdir, "%s", dir);
    char joined[PATH_MAX * 2], real[PATH_MAX];
    snprintf (joined, sizeof joined, "%s/%s", absdir, path);
    const char *result = realpath (joined, real) ? real : joined;
    if (strlen (result) >= cap)
        return -1;
    memmove (path, result, strlen (result) + 1);
    return 0;
}

size_t cfg_endpoints (const char *list, char (*out)[CFG_STR_MAX], size_t max)
{
    size_t n = 0;
    const char *p = list;
    while (*p) {
        p += strspn (p, ", \t");
        size_t len = strcspn (p, ", \t");
        if (len == 0)
            break;
        if (n < max)
            snprintf (out[n], CFG_STR_MAX, "%.*s", (int) len, p);
        n++;
        p += len;
    }
    return n;
}

bool cfg_is_loopback (const char *ep)
{
    if (strncmp (ep, "ipc://", 6) == 0 || strncmp (ep, "inproc://", 9) == 0)
        return true;
    if (strncmp (ep, "tcp://", 6) == 0)
        ep += 6;
    char host[CFG_STR_MAX];
    if (*ep == '[') {
        const char *end = strchr (ep, ']');
        if (!end)
            return false;
        snprintf (host, sizeof host, "%.*s", (int) (end - ep - 1), ep + 1);
    }
    else {
        const char *colon = strrchr (ep, ':');
        snprintf (host, sizeof host, "%.*s", (int) (colon ? colon - ep : (ptrdiff_t) strlen (ep)), ep);
    }
    if (streq (host, "localhost") || streq (host, "::1"))
        return true;
    return strncmp (host, "127.", 4) == 0 && strspn (host, "0123456789.") == strlen (host);
}

const char *cfg_provider_name (cfg_provider_t p)
{
    switch (p) {
        case CFG_PROVIDER_SIM: return "sim";
        case CFG_PROVIDER_OPENAI: return "openai";
        case CFG_PROVIDER_ANTHROPIC: return "anthropic";
        case CFG_PROVIDER_OLLAMA: return "ollama";
    }
    return "?";
}

const char *cfg_limits_failure_name (cfg_limits_failure_t f)
{
    switch (f) {
        case CFG_LIMITS_LOCAL: return "local";
        case CFG_LIMITS_OPEN: return "open";
        case CFG_LIMITS_CLOSED: return "closed";
    }
    return "?";
}

const char *cfg_policy_name (cfg_policy_t p)
{
    switch (p) {
        case CFG_POLICY_RACE: return "race";
        case CFG_POLICY_HEDGE: return "hedge";
        case CFG_POLICY_FALLBACK: return "fallback";
    }
    return "?";
}

int cfg_policy_parse (const char *s, cfg_policy_t *out)
{
    if (streq (s, "race"))
        *out = CFG_POLICY_RACE;
    else if (streq (s, "hedge"))
        *out = CFG_POLICY_HEDGE;
    else if (streq (s, "fallback"))
        *out = CFG_POLICY_FALLBACK;
    else
        return -1;
    return 0;
}
