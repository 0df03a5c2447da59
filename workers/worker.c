// aigw-worker event loop: drains the broker DEALERs (one per broker, wk_link), drives the HTTP
// transfers (wk_http), fires attempt timers, heartbeats and reconnects, all on one thread;
// sleeps in curl_multi_poll.
#include "worker.h"
#include "wk_attempt.h"
#include "wk_http.h"
#include "wk_link.h"
#include "wk_provider.h"
#include "wk_table.h"
#include "wk_usage.h"
#include "aclock.h"
#include "curve.h"
#include "log.h"
#include "wire.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WK_DRAIN_MAX 1024       // messages per broker and wake-up before curl gets a turn
#define WK_POLL_MAX_MS 1000     // longest sleep in curl_multi_poll
#define WK_LINGER_MS 200        // time allowed to flush the final DISCONNECT
#define WK_REASON_MAX 512

#define s_container(ptr, type, member) ((type *) ((char *) (ptr) - offsetof (type, member)))

struct _worker_t {
    wk_loop_t loop;             // what the providers see: services (s_loop_ops), HTTP
    const cfg_t *cfg;
    char id [CFG_NAME_MAX + 80];
    wk_link_t links [CFG_BROKERS_MAX];  // one per entry of worker/broker
    uint32_t nlinks;
    uint32_t capacity;          // shared by all brokers
    wk_model_t *models;
    size_t nmodels;
    char **model_names;         // for READY (point into cfg)
    zhashx_t *by_name;          // name -> wk_model_t (borrowed)
    wk_table_t *table;
    void *ctx;
    curve_client_t curve;       // worker/cert keys (fabric/curve), applied to each DEALER
    uint32_t hb_ms;
    uint32_t liveness;
    atomic_bool stop;
    worker_stats_t stats;
};

static const wk_loop_ops_t s_loop_ops;
static void s_transfer_done (void *arg, wk_attempt_t *a, const wk_done_t *done);

//  ---- construction

static int s_add_model (worker_t *self, const cfg_model_t *c, char *err, size_t errlen)
{
    if (zhashx_lookup (self->by_name, c->name))
        return 0;               // listed twice
    wk_model_t *m = &self->models [self->nmodels];
    memset (m, 0, sizeof *m);
    m->cfg = c;
    m->prov = wk_provider_for (c->provider);
    if (!m->prov) {
        snprintf (err, errlen, "model %s: no adapter for provider type %d", c->name,
                  (int) c->provider);
        return -1;
    }
    if (m->prov->model_init && m->prov->model_init (m)) {
        snprintf (err, errlen, "model %s: cannot prepare provider %s", c->name, m->prov->name);
        return -1;
    }
    self->model_names [self->nmodels++] = (char *) c->name;
    zhashx_insert (self->by_name, c->name, m);
    return 0;
}

//  Pick the served models: every configured one, or the comma list given.
static int s_select_models (worker_t *self, const char *list, char *err, size_t errlen)
{
    const cfg_t *cfg = self->cfg;
    if (!list || !*list) {
        for (size_t i = 0; i < cfg->nmodels; i++)
            if (s_add_model (self, &cfg->models [i], err, errlen))
                return -1;
        return 0;
    }
    const char *p = list;
    while (*p) {
        p += strspn (p, ", \t");
        size_t len = strcspn (p, ", \t");
        if (!len)
            break;
        char name [CFG_NAME_MAX];
        snprintf (name, sizeof name, "%.*s", (int) (len < sizeof name ? len : sizeof name - 1), p);
        const cfg_model_t *c = len < sizeof name ? cfg_model (cfg, name) : NULL;
        if (!c) {
            snprintf (err, errlen, "unknown model '%.*s' in --models (not in the config)",
                      (int) (len > 100 ? 100 : len), p);
            return -1;
        }
        if (s_add_model (self, c, err, errlen))
            return -1;
        p += len;
    }
    return 0;
}

static void s_default_id (char *buf, size_t buflen)
{
    char host [256] = "worker";
    if (gethostname (host, sizeof host) == 0)
        host [sizeof host - 1] = 0;
    snprintf (buf, buflen, "%s-%d", host, (int) getpid ());
}

//  One link per endpoint of the comma list; the CURVE keys checked against each.
static int s_init_links (worker_t *self, const char *list, char *err, size_t errlen)
{
    char eps [CFG_BROKERS_MAX + 1][CFG_STR_MAX];
    size_t n = cfg_endpoints (list, eps, CFG_BROKERS_MAX + 1);
    if (n == 0 || n > CFG_BROKERS_MAX) {
        snprintf (err, errlen, n ? "more than %d broker endpoints" : "no broker endpoint",
                  CFG_BROKERS_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < i; j++)
            if (streq (eps [i], eps [j])) {
                snprintf (err, errlen, "broker %.200s is listed twice", eps [i]);
                return -1;
            }
        wk_link_t *l = &self->links [i];
        snprintf (l->endpoint, sizeof l->endpoint, "%.*s", (int) sizeof l->endpoint - 1,
                  eps [i]);
        l->index = (uint32_t) i;
        l->sock_fd = l->mon_fd = -1;
        l->backoff_ms = WORKER_BACKOFF_MIN_MS;
        curve_client_wipe (&self->curve);
        if (curve_client_load (&self->curve, self->cfg, self->cfg->worker.cert, "worker/cert",
                               l->endpoint, err, errlen))
            return -1;
    }
    self->nlinks = (uint32_t) n;
    return 0;
}

static int s_init (worker_t *self, const worker_opts_t *opts, char *err, size_t errlen)
{
    const cfg_t *cfg = self->cfg;
    self->capacity = opts->capacity ? opts->capacity : cfg->worker.capacity;
    if (self->capacity == 0 || self->capacity > WORKER_CAPACITY_MAX) {
        snprintf (err, errlen, "capacity must be 1..%d", WORKER_CAPACITY_MAX);
        return -1;
    }
    if (opts->id && *opts->id)
        snprintf (self->id, sizeof self->id, "%s", opts->id);
    else
        s_default_id (self->id, sizeof self->id);
    if (s_init_links (self, opts->broker && *opts->broker ? opts->broker : cfg->worker.broker,
                      err, errlen))
        return -1;
    self->hb_ms = cfg->broker.heartbeat_ms ? cfg->broker.heartbeat_ms : 1000;
    self->liveness = cfg->broker.liveness ? cfg->broker.liveness : 3;
    self->models = calloc (cfg->nmodels ? cfg->nmodels : 1, sizeof *self->models);
    self->model_names = calloc (cfg->nmodels ? cfg->nmodels : 1, sizeof *self->model_names);
    self->by_name = zhashx_new ();
    self->table = wk_table_new (self->capacity);
    self->loop.ops = &s_loop_ops;
    self->loop.http = wk_http_new (self->capacity, s_transfer_done, self);
    self->ctx = zmq_ctx_new ();
    if (!self->models || !self->model_names || !self->by_name || !self->table
    ||  !self->loop.http || !self->ctx) {
        snprintf (err, errlen, "out of memory");
        return -1;
    }
    if (s_select_models (self, opts->models, err, errlen))
        return -1;
    if (self->nmodels == 0) {
        snprintf (err, errlen, "no models to serve (the config has no models section)");
        return -1;
    }
    return 0;
}

worker_t *worker_new (const cfg_t *cfg, const worker_opts_t *opts, char *err, size_t errlen)
{
    static const worker_opts_t none = { 0 };
    if (curl_global_init (CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf (err, errlen, "curl_global_init failed");
        return NULL;
    }
    worker_t *self = calloc (1, sizeof *self);
    if (!self) {
        curl_global_cleanup ();
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    self->cfg = cfg;
    atomic_init (&self->stop, false);
    if (s_init (self, opts ? opts : &none, err, errlen)) {
        worker_destroy (&self);
        return NULL;
    }
    return self;
}

//  ---- attempts and the brokers' shares of the capacity

//  Take a slot for attempt_id of the broker on link l; NULL when every slot is taken.
static wk_attempt_t *s_take (worker_t *self, wk_link_t *l, uint64_t attempt_id)
{
    wk_attempt_t *a = wk_table_add (self->table, l->index, attempt_id);
    if (a)
        l->in_flight++;
    return a;
}

//  Free the attempt's slot.
static void s_release (worker_t *self, wk_attempt_t *a)
{
    self->links [a->broker].in_flight--;
    wk_table_remove (self->table, a);
}

//  Abort every live attempt of broker (all of them: UINT32_MAX) without replying, its
//  transfer removed so the upstream connection closes. Returns how many there were.
static uint32_t s_abort (worker_t *self, uint32_t broker)
{
    uint32_t n = 0;
    for (uint32_t i = 0; self->table && i < wk_table_capacity (self->table); i++) {
        wk_attempt_t *a = wk_table_slot (self->table, i);
        if (!a->live || (broker != UINT32_MAX && a->broker != broker))
            continue;
        a->model->prov->cancel (a);
        s_release (self, a);
        n++;
    }
    return n;
}

//  The capacity broker l may use: its own attempts plus every free slot. With one
//  broker that is the whole capacity.
static uint32_t s_share (worker_t *self, const wk_link_t *l)
{
    if (self->nlinks < 2)
        return self->capacity;
    return l->in_flight + self->capacity - wk_table_used (self->table);
}

void worker_destroy (worker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    worker_t *self = *self_p;
    s_abort (self, UINT32_MAX);
    for (size_t i = 0; i < self->nmodels; i++)
        if (self->models [i].prov->model_fini)
            self->models [i].prov->model_fini (&self->models [i]);
    wk_table_destroy (&self->table);
    wk_http_destroy (&self->loop.http);
    for (uint32_t i = 0; i < self->nlinks; i++)
        wk_link_close (&self->links [i], 0);
    if (self->ctx)
        zmq_ctx_term (self->ctx);
    zhashx_destroy (&self->by_name);
    free (self->models);
    free (self->model_names);
    curve_client_wipe (&self->curve);
    free (self);
    curl_global_cleanup ();
    *self_p = NULL;
}

//  ---- sending

//  Send to the broker on link l. Until READY went out on its socket only READY may
//  (anything queued before it would reach a broker that does not know us yet).
static int s_send (worker_t *self, wk_link_t *l, uint8_t cmd, const ProtobufCMessage *body)
{
    if (!l->sock || (!l->up && cmd != WIRE_W_READY))
        return -1;
    if (wk_link_send (l, cmd, body) == 0)
        return 0;
    uint64_t n = ++self->stats.send_errors;
    if ((n & (n - 1)) == 0)
        log_warn ("cannot send %s to broker %s: %s (%" PRIu64 " send errors so far)",
                  wire_cmd_name (WIRE_SIDE_WORKER, cmd), l->endpoint, zmq_strerror (errno), n);
    return -1;
}

//  usage: what the attempt consumed (a refused TASK passes a zero one); a: the
//  attempt whose provider code and Retry-After go with it, or NULL.
static int s_send_error (worker_t *self, wk_link_t *l, uint64_t job_id, uint64_t attempt_id,
                         Aigw__ErrorCode code, uint32_t status, const char *reason,
                         const Aigw__Usage *usage, const wk_attempt_t *a)
{
    Aigw__Error e = AIGW__ERROR__INIT;
    e.job_id = job_id;
    e.has_attempt_id = true;
    e.attempt_id = attempt_id;
    e.code = code;
    e.message = (char *) reason;
    e.has_upstream_status = status != 0;
    e.upstream_status = status;
    e.usage = (Aigw__Usage *) usage;
    if (a && a->upstream_code [0])
        e.upstream_code = (char *) a->upstream_code;
    e.has_retry_after_ms = a && a->retry.has && (status == 429 || status == 503);
    e.retry_after_ms = e.has_retry_after_ms ? a->retry.ms : 0;
    return s_send (self, l, WIRE_W_ERROR, &e.base);
}

//  READY with the broker's share of the capacity (at least 1, which READY needs; a
//  capacity-update HEARTBEAT follows at once if the share is 0). Marks the link up.
static void s_send_ready (worker_t *self, wk_link_t *l)
{
    uint32_t share = s_share (self, l);
    Aigw__WorkerHello h = AIGW__WORKER_HELLO__INIT;
    h.worker_id = self->id;
    h.n_models = self->nmodels;
    h.models = self->model_names;
    h.capacity = share ? share : 1;
    h.has_pid = true;
    h.pid = (uint32_t) getpid ();
    h.version = (char *) "aigw-worker/" WORKER_VERSION;
    l->up = true;
    if (s_send (self, l, WIRE_W_READY, &h.base) == 0) {
        l->advertised = h.capacity;
        self->stats.readies++;
    }
}

//  HEARTBEAT with the worker's stats and capacity as the broker's share (the broker
//  takes it as the worker's capacity from now on). 0 / -1.
static int s_send_heartbeat (worker_t *self, wk_link_t *l, uint32_t capacity)
{
    Aigw__WorkerStats s = AIGW__WORKER_STATS__INIT;
    s.has_in_flight = s.has_capacity = s.has_completed = s.has_failed = s.has_cancelled = true;
    s.in_flight = l->in_flight;
    s.capacity = capacity;
    s.completed = self->stats.completed;
    s.failed = self->stats.failed;
    s.cancelled = self->stats.cancelled;
    if (s_send (self, l, WIRE_W_HEARTBEAT, &s.base))
        return -1;
    l->advertised = capacity;
    self->stats.heartbeats++;
    return 0;
}

//  With several brokers: tell every broker whose share changed since it was last told
//  (a slot was taken or freed). Nothing goes out with one broker.
static void s_advertise (worker_t *self)
{
    for (uint32_t i = 0; self->nlinks > 1 && i < self->nlinks; i++) {
        wk_link_t *l = &self->links [i];
        uint32_t share = s_share (self, l);
        if (l->up && share != l->advertised && s_send_heartbeat (self, l, share) == 0)
            self->stats.capacity_updates++;
    }
}

//  ---- services for providers (s_loop_ops, reached through wk_attempt_*)

static worker_t *s_worker (const wk_attempt_t *a)
{
    return s_container (a->loop, worker_t, loop);
}

static int s_reply_result (wk_attempt_t *a, const char *json, size_t len,
                           const Aigw__Usage *usage)
{
    worker_t *w = s_worker (a);
    Aigw__Result r = AIGW__RESULT__INIT;
    r.job_id = a->job_id;
    r.has_attempt_id = true;
    r.attempt_id = a->attempt_id;
    r.model = (char *) a->model->cfg->name;
    r.has_response_json = true;
    r.response_json.len = len;
    r.response_json.data = (uint8_t *) json;
    if (usage) {
        a->used.has = usage->has_prompt_tokens || usage->has_completion_tokens;
        a->used.prompt_tokens = usage->has_prompt_tokens ? usage->prompt_tokens : 0;
        a->used.completion_tokens = usage->has_completion_tokens ? usage->completion_tokens : 0;
    }
    Aigw__Usage u;
    wk_usage_fill (a, json ? json : "", len, &u);
    r.usage = &u;
    a->replied = true;
    w->stats.completed++;
    log_debug ("attempt %" PRIu64 " (%s) done in %" PRId64 " us", a->attempt_id,
               a->model->cfg->name, aclock_now_us () - a->started_us);
    return s_send (w, &w->links [a->broker], WIRE_W_RESULT, &r.base);
}

static int s_reply_chunk (wk_attempt_t *a, const char *json, size_t len)
{
    worker_t *w = s_worker (a);
    Aigw__Chunk c = AIGW__CHUNK__INIT;
    c.job_id = a->job_id;
    c.has_attempt_id = true;
    c.attempt_id = a->attempt_id;
    c.has_seq = true;
    c.seq = a->chunk_seq;
    c.has_delta_json = true;
    c.delta_json.len = len;
    c.delta_json.data = (uint8_t *) json;
    if (s_send (w, &w->links [a->broker], WIRE_W_CHUNK, &c.base))
        return -1;
    if (a->chunk_seq++ == 0)
        log_debug ("attempt %" PRIu64 " (%s) first chunk after %" PRId64 " us", a->attempt_id,
                   a->model->cfg->name, aclock_now_us () - a->started_us);
    w->stats.chunks++;
    return 0;
}

static int s_reply_error (wk_attempt_t *a, Aigw__ErrorCode code, uint32_t upstream_status,
                          const char *reason)
{
    worker_t *w = s_worker (a);
    a->replied = true;
    if (code == AIGW__ERROR_CODE__ERR_CANCELLED)
        w->stats.cancelled++;
    else
        w->stats.failed++;
    Aigw__Usage u;
    wk_usage_fill (a, NULL, 0, &u);
    log_debug ("attempt %" PRIu64 " (%s) error %d: %s (usage %" PRIu32 "+%" PRIu32 "%s)",
               a->attempt_id, a->model->cfg->name, (int) code, reason, u.prompt_tokens,
               u.completion_tokens, u.estimated ? ", estimated" : "");
    return s_send_error (w, &w->links [a->broker], a->job_id, a->attempt_id, code,
                         upstream_status, reason, &u, a);
}

static int s_timer_arm (wk_attempt_t *a, int64_t due_ms)
{
    wk_table_timer_set (s_worker (a)->table, a, due_ms);
    return 0;
}

static void s_timer_disarm (wk_attempt_t *a)
{
    wk_table_timer_clear (s_worker (a)->table, a);
}

static const wk_loop_ops_t s_loop_ops = {
    .reply_result = s_reply_result,
    .reply_chunk = s_reply_chunk,
    .reply_error = s_reply_error,
    .timer_arm = s_timer_arm,
    .timer_disarm = s_timer_disarm,
};

//  End an attempt: make sure a reply went out (ERR_INTERNAL if the provider
//  gave none), release provider resources and free the slot.
static void s_attempt_end (worker_t *self, wk_attempt_t *a)
{
    if (!a->live)
        return;
    if (!a->replied)
        wk_attempt_reply_error (a, AIGW__ERROR_CODE__ERR_INTERNAL, 0, "provider %s gave no reply",
                                a->model->prov->name);
    a->model->prov->cancel (a);
    s_release (self, a);
}

//  A transfer finished (wk_http_perform): the provider replies, the attempt ends.
static void s_transfer_done (void *arg, wk_attempt_t *a, const wk_done_t *done)
{
    worker_t *self = arg;
    a->model->prov->on_done (a, done);
    s_attempt_end (self, a);
}

//  ---- broker links

static void s_link_up (worker_t *self, wk_link_t *l, int64_t now, const char *how)
{
    l->expiry_ms = now + (int64_t) self->hb_ms * self->liveness;
    l->next_hb_ms = now + self->hb_ms;
    s_send_ready (self, l);
    log_info ("broker %s: %s, READY sent (capacity %" PRIu32 ")", l->endpoint, how,
              l->advertised);
}

//  Open link l's socket. READY goes out when it connects (at once if it has no monitor).
static int s_connect (worker_t *self, wk_link_t *l, int64_t now)
{
    if (wk_link_open (l, self->ctx, self->cfg, &self->curve)) {
        log_error ("cannot connect to broker %s: %s", l->endpoint, zmq_strerror (errno));
        return -1;
    }
    self->stats.connects++;
    if (!l->watched)
        s_link_up (self, l, now, "socket opened (no monitor)");
    return 0;
}

//  The broker on link l is gone: orphan its attempts, close the socket and schedule
//  a new one, at once or after the back-off.
static void s_broker_lost (worker_t *self, wk_link_t *l, int64_t now, const char *why,
                           bool at_once)
{
    uint32_t orphaned = s_abort (self, l->index);
    self->stats.orphaned += orphaned;
    wk_link_close (l, 0);
    uint32_t delay = at_once ? 0 : l->backoff_ms;
    if (!at_once && l->backoff_ms < WORKER_BACKOFF_MAX_MS)
        l->backoff_ms = l->backoff_ms * 2 > WORKER_BACKOFF_MAX_MS
                      ? WORKER_BACKOFF_MAX_MS : l->backoff_ms * 2;
    l->reconnect_at_ms = now + delay;
    log_warn ("broker %s: %s; %" PRIu32 " attempts orphaned; reconnecting in %" PRIu32 " ms",
              l->endpoint, why, orphaned, delay);
}

static void s_malformed (worker_t *self, wk_link_t *l, const char *why)
{
    self->stats.malformed++;
    if (!l->malformed_logged)
        log_warn ("dropped malformed message from broker %s: %s (logged once per connection)",
                  l->endpoint, why);
    l->malformed_logged = true;
}

//  A monitor event of link l's socket. A connection that goes down is settled at
//  once; one that comes up gets READY at once. A socket that never heard its broker
//  (a refused handshake, say) backs off before the next one.
static void s_on_event (worker_t *self, wk_link_t *l, const zmon_event_t *ev, int64_t now)
{
    if (ev->event == ZMQ_EVENT_CONNECTED && !l->up)
        s_link_up (self, l, now, "connected");
    else
    if (ev->event == ZMQ_EVENT_DISCONNECTED) {
        self->stats.lost_disconnected++;
        s_broker_lost (self, l, now, "connection lost (DISCONNECTED)", l->heard);
    }
}

//  ---- broker commands

static void s_reject (worker_t *self, wk_link_t *l, const Aigw__Task *t, Aigw__ErrorCode code,
                      const char *fmt, ...) __attribute__ ((format (printf, 5, 6)));
static void s_reject (worker_t *self, wk_link_t *l, const Aigw__Task *t, Aigw__ErrorCode code,
                      const char *fmt, ...)
{
    char reason [WK_REASON_MAX];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (reason, sizeof reason, fmt, ap);
    va_end (ap);
    self->stats.rejected++;
    log_debug ("TASK attempt %" PRIu64 " from %s refused: %s", t->attempt_id, l->endpoint,
               reason);
    Aigw__Usage none = AIGW__USAGE__INIT;      // nothing was consumed
    none.has_prompt_tokens = none.has_completion_tokens = true;
    s_send_error (self, l, t->job_id, t->attempt_id, code, 0, reason, &none, NULL);
}

static void s_start_task (worker_t *self, wk_link_t *l, const Aigw__Task *t, zmq_msg_t *payload,
                          bool has_payload)
{
    if (!has_payload) {
        s_reject (self, l, t, AIGW__ERROR_CODE__ERR_BAD_REQUEST, "TASK carries no request payload");
        return;
    }
    wk_model_t *m = t->target ? zhashx_lookup (self->by_name, t->target) : NULL;
    if (!m) {
        s_reject (self, l, t, AIGW__ERROR_CODE__ERR_UNKNOWN_MODEL,
                  "model %.128s is not served by worker %s", t->target ? t->target : "", self->id);
        return;
    }
    if (t->has_deadline_ms && t->deadline_ms == 0) {
        s_reject (self, l, t, AIGW__ERROR_CODE__ERR_TIMEOUT, "deadline already passed");
        return;
    }
    if (wk_table_find (self->table, l->index, t->attempt_id)) {
        s_malformed (self, l, "TASK for an attempt id that is already running");
        return;
    }
    wk_attempt_t *a = s_take (self, l, t->attempt_id);
    if (!a) {
        //  Two brokers took the last slot at once: this one re-dispatches
        self->stats.full++;
        s_reject (self, l, t, AIGW__ERROR_CODE__ERR_OVERLOADED, "worker full");
        return;
    }
    a->job_id = t->job_id;
    a->model = m;
    a->loop = &self->loop;
    a->deadline_ms = t->has_deadline_ms ? t->deadline_ms : 0;
    a->started_us = aclock_now_us ();
    a->created = (int64_t) time (NULL);
    a->stream = t->has_stream && t->stream;
    self->stats.tasks++;
    self->stats.streams += a->stream;
    m->started++;
    if (m->prov->start (a, zmq_msg_data (payload), zmq_msg_size (payload)))
        s_attempt_end (self, a);
}

static void s_on_task (worker_t *self, wk_link_t *l, wire_msg_t *msg)
{
    Aigw__Task *t = (Aigw__Task *) wire_unpack (&aigw__task__descriptor, &msg->body);
    if (!t) {
        s_malformed (self, l, "TASK body does not decode");
        return;
    }
    s_start_task (self, l, t, &msg->payload, msg->has_payload);
    protobuf_c_message_free_unpacked (&t->base, NULL);
}

static void s_on_cancel (worker_t *self, wk_link_t *l, wire_msg_t *msg)
{
    Aigw__AttemptRef *ref = (Aigw__AttemptRef *)
        wire_unpack (&aigw__attempt_ref__descriptor, &msg->body);
    if (!ref) {
        s_malformed (self, l, "CANCEL body does not decode");
        return;
    }
    wk_attempt_t *a = wk_table_find (self->table, l->index, ref->attempt_id);
    if (a) {
        a->model->prov->cancel (a);             // abort the upstream call first
        wk_attempt_reply_error (a, AIGW__ERROR_CODE__ERR_CANCELLED, 0, "cancelled by broker");
        s_attempt_end (self, a);
    }
    else {
        self->stats.unknown_cancels++;
        log_debug ("CANCEL from %s for unknown attempt %" PRIu64, l->endpoint, ref->attempt_id);
    }
    protobuf_c_message_free_unpacked (&ref->base, NULL);
}

//  The broker's HEARTBEAT: empty from an older broker, else BrokerBeat. An instance
//  other than the one this socket saw means the broker restarted behind the same
//  connection: its attempts here are gone, and it needs READY.
static void s_on_beat (worker_t *self, wk_link_t *l, wire_msg_t *msg)
{
    Aigw__BrokerBeat *beat = (Aigw__BrokerBeat *)
        wire_unpack (&aigw__broker_beat__descriptor, &msg->body);
    if (!beat) {
        s_malformed (self, l, "HEARTBEAT body does not decode");
        return;
    }
    uint64_t instance = beat->has_instance ? beat->instance : 0;
    protobuf_c_message_free_unpacked (&beat->base, NULL);
    if (instance == 0 || instance == l->instance)
        return;
    uint64_t before = l->instance;
    l->instance = instance;
    if (before == 0)
        return;
    self->stats.lost_restarted++;
    uint32_t orphaned = s_abort (self, l->index);
    self->stats.orphaned += orphaned;
    s_send_ready (self, l);
    log_warn ("broker %s: restarted (instance %016" PRIx64 " -> %016" PRIx64 "); %" PRIu32
              " attempts orphaned; READY sent", l->endpoint, before, instance, orphaned);
}

static void s_handle (worker_t *self, wk_link_t *l, wire_msg_t *msg, int64_t now)
{
    if (msg->side != WIRE_SIDE_WORKER || !wire_cmd_valid (WIRE_SIDE_WORKER, msg->cmd, false)) {
        s_malformed (self, l, "unexpected header or command");
        return;
    }
    //  Any message proves the broker is alive; only a non-DISCONNECT one resets back-off
    bool heard_before = l->heard;
    l->expiry_ms = now + (int64_t) self->hb_ms * self->liveness;
    if (msg->cmd != WIRE_W_DISCONNECT) {
        l->heard = true;
        l->backoff_ms = WORKER_BACKOFF_MIN_MS;
    }
    if (msg->cmd == WIRE_W_TASK)
        s_on_task (self, l, msg);
    else
    if (msg->cmd == WIRE_W_CANCEL)
        s_on_cancel (self, l, msg);
    else
    if (msg->cmd == WIRE_W_HEARTBEAT)
        s_on_beat (self, l, msg);
    else
    if (msg->cmd == WIRE_W_DISCONNECT) {
        self->stats.lost_disconnect++;
        s_broker_lost (self, l, now, "DISCONNECT from broker", heard_before);
    }
}

//  Read link l's socket events, then every waiting message (bounded per wake-up).
static void s_drain_link (worker_t *self, wk_link_t *l, int64_t now)
{
    zmon_event_t ev;
    while (l->sock && wk_link_event (l, &ev) == 0)
        s_on_event (self, l, &ev, now);
    for (int i = 0; i < WK_DRAIN_MAX && l->sock; i++) {
        wire_msg_t msg;
        int rc = wk_link_recv (l, &msg);
        if (rc == -1) {
            if (errno != EAGAIN && errno != EINTR)
                log_error ("broker %s: socket receive failed: %s", l->endpoint,
                           zmq_strerror (errno));
            return;
        }
        if (rc == -2) {
            s_malformed (self, l, msg.error ? msg.error : "bad framing");
            continue;
        }
        s_handle (self, l, &msg, now);
        wire_msg_close (&msg);
    }
}

static void s_drain (worker_t *self)
{
    int64_t now = aclock_now_ms ();
    for (uint32_t i = 0; i < self->nlinks; i++)
        s_drain_link (self, &self->links [i], now);
}

//  ---- timers

static void s_fire_timers (worker_t *self, int64_t now)
{
    wk_attempt_t *a;
    while ((a = wk_table_timer_first (self->table)) && a->timer.when <= now) {
        wk_table_timer_clear (self->table, a);
        wk_done_t done = { .timer = true, .curl_code = CURLE_OK };
        a->model->prov->on_done (a, &done);
        //  A provider may re-arm (streaming); otherwise the attempt is over
        if (a->replied || (a->timer.idx == THEAP_NONE && !a->easy))
            s_attempt_end (self, a);
    }
}

//  Link l's chores: reconnect after the back-off, notice silence, heartbeat. A socket
//  waiting to connect needs none: zmq retries the connect by itself.
static void s_tick_link (worker_t *self, wk_link_t *l, int64_t now)
{
    if (!l->sock) {
        if (now < l->reconnect_at_ms)
            return;
        if (s_connect (self, l, now)) {
            l->reconnect_at_ms = now + l->backoff_ms;
            if (l->backoff_ms < WORKER_BACKOFF_MAX_MS)
                l->backoff_ms *= 2;
        }
        return;
    }
    if (!l->up)
        return;
    if (now >= l->expiry_ms) {
        char why [96];
        snprintf (why, sizeof why, "silent for %" PRIu64 " ms",
                  (uint64_t) self->hb_ms * self->liveness);
        self->stats.lost_silent++;
        s_broker_lost (self, l, now, why, false);
        return;
    }
    if (now >= l->next_hb_ms) {
        s_send_heartbeat (self, l, s_share (self, l));
        l->next_hb_ms = now + self->hb_ms;
    }
}

static void s_tick (worker_t *self, int64_t now)
{
    for (uint32_t i = 0; i < self->nlinks; i++)
        s_tick_link (self, &self->links [i], now);
}

//  Milliseconds until the next thing the loop must do by itself.
static int s_next_wait (worker_t *self, int64_t now)
{
    int64_t due = now + WK_POLL_MAX_MS;
    for (uint32_t i = 0; i < self->nlinks; i++) {
        const wk_link_t *l = &self->links [i];
        if (!l->sock && l->reconnect_at_ms < due)
            due = l->reconnect_at_ms;
        if (l->sock && l->up) {
            int64_t next = l->next_hb_ms < l->expiry_ms ? l->next_hb_ms : l->expiry_ms;
            due = next < due ? next : due;
        }
    }
    wk_attempt_t *a = wk_table_timer_first (self->table);
    if (a && a->timer.when < due)
        due = a->timer.when;
    int64_t wait = due - now;
    return wait < 0 ? 0 : wait > WK_POLL_MAX_MS ? WK_POLL_MAX_MS : (int) wait;
}

//  ZMQ_FD is edge-triggered: it only signals new activity. Reading ZMQ_EVENTS
//  (after every send and receive) tells whether messages or events are already queued.
static bool s_zmq_readable (worker_t *self)
{
    for (uint32_t i = 0; i < self->nlinks; i++)
        if (wk_link_pending (&self->links [i]))
            return true;
    return false;
}

static void s_wait (worker_t *self, int64_t now)
{
    int fds [CFG_BROKERS_MAX * WK_LINK_FDS];
    size_t n = 0;
    for (uint32_t i = 0; i < self->nlinks; i++)
        n += wk_link_fds (&self->links [i], fds + n);
    wk_http_poll (self->loop.http, fds, n, s_next_wait (self, now));
    self->stats.loops++;
}

static void s_shutdown (worker_t *self)
{
    uint32_t n = s_abort (self, UINT32_MAX);
    for (uint32_t i = 0; i < self->nlinks; i++) {
        wk_link_t *l = &self->links [i];
        bool bye = l->up && s_send (self, l, WIRE_W_DISCONNECT, NULL) == 0;
        wk_link_close (l, bye ? WK_LINGER_MS : 0);
    }
    log_info ("worker %s stopped (DISCONNECT sent, %" PRIu32 " attempts aborted)", self->id, n);
}

int worker_run (worker_t *self)
{
    int64_t now = aclock_now_ms ();
    for (uint32_t i = 0; i < self->nlinks; i++)
        if (s_connect (self, &self->links [i], now)) {
            for (uint32_t j = 0; j < i; j++)
                wk_link_close (&self->links [j], 0);
            return -1;
        }
    log_info ("worker %s: %zu models, capacity %" PRIu32 ", %" PRIu32 " broker%s, first %s",
              self->id, self->nmodels, self->capacity, self->nlinks, self->nlinks > 1 ? "s" : "",
              self->links [0].endpoint);
    //  Shares are advertised after each step that takes or frees slots, so that a
    //  periodic heartbeat never carries a change first
    while (!atomic_load (&self->stop)) {
        s_drain (self);
        s_advertise (self);
        wk_http_perform (self->loop.http);
        now = aclock_now_ms ();
        s_fire_timers (self, now);
        s_advertise (self);
        s_tick (self, now);
        s_advertise (self);
        if (atomic_load (&self->stop))
            break;
        if (s_zmq_readable (self))
            continue;           // more queued than one drain took, or sends consumed the edge
        s_wait (self, now);
    }
    s_shutdown (self);
    return 0;
}

void worker_stop (worker_t *self)
{
    if (!self)
        return;
    atomic_store (&self->stop, true);
    if (self->loop.http)
        wk_http_wakeup (self->loop.http);
}

void worker_stats (worker_t *self, worker_stats_t *out)
{
    *out = self->stats;
}

const char *worker_id (worker_t *self)
{
    return self->id;
}
