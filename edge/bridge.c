// Metrics bridge thread: broker PUB -> msgpack decoded once -> JSON SSE frames -> fan-out.
// The thread never waits for a browser: the fan-out drops clients that fall behind.
#include "bridge.h"
#include "mpack.h"
#include "aclock.h"
#include "curve.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define S_TOPIC_MAX 32
#define S_BATCH 256                     // messages handled per wakeup before the tick check
#define S_RCVHWM 10000

enum { S_T_METRICS = 0, S_T_JOB, S_T_WORKER, S_T_EDGE, S_TOPICS };
static const char *const s_topics[S_TOPICS] = { "metrics", "job", "worker", "edge" };

//  Cumulative chat counters at one tick (the `edge` event reports deltas).
typedef struct {
    int64_t at_ms;
    uint64_t requests, errors;
    uint64_t lat[HIST_BUCKETS];
    uint64_t ovh[HIST_BUCKETS];
} s_sample_t;

struct _bridge_t {
    void *ctx;
    pthread_t thread;
    bool started;
    char endpoint[CFG_STR_MAX];
    int64_t max_frame;
    curve_client_t curve;               // edge/cert keys when fabric/curve is on
    emetrics_t *em;
    edge_status_box_t *box;             // latest PONG; may be NULL
    bridge_up_fn *up;                   // broker link up? may be NULL
    void *up_arg;
    fanout_t *fanout;
    snap_box_t snaps;                    // the latest bsnap_t (common/snap.h)
    _Atomic bool stop;
    _Atomic uint64_t received, bad, relayed[S_TOPICS];
    //  Bridge thread only
    s_sample_t ring[BRIDGE_WINDOW + 1];
    size_t ring_next, ring_count;
    hist_t dlat, dovh;                  // window deltas
    buf_t json;
};

//  --------------------------------------------------------------- edge event

static int s_pcts (buf_t *out, const char *key, const hist_t *h)
{
    return buf_printf (out, ",\"%s\":{\"p50\":%.3f,\"p99\":%.3f}", key,
                        (double) hist_percentile (h, 50) / 1000.0,
                        (double) hist_percentile (h, 99) / 1000.0);
}

int bridge_edge_json (buf_t *out, const bridge_edge_t *e)
{
    double rps = e->window_s > 0 ? (double) e->window_requests / e->window_s : 0;
    double err = e->window_requests ? (double) e->window_errors / (double) e->window_requests : 0;
    if (buf_printf (out, "{\"ts_ms\":%lld,\"requests_total\":%llu,\"requests_in_flight\":%lld,"
                     "\"rps\":%.3f,\"errors_total\":%llu,\"error_rate\":%.4f",
                     (long long) e->ts_ms, (unsigned long long) e->requests_total,
                     (long long) (e->in_flight > 0 ? e->in_flight : 0), rps,
                     (unsigned long long) e->errors_total, err))
        return -1;
    if (s_pcts (out, "latency_ms", e->latency) || s_pcts (out, "overhead_ms", e->overhead))
        return -1;
    return buf_printf (out, ",\"broker_up\":%s,\"workers\":%u,\"cost_usd\":%.9g,"
                        "\"loser_cost_usd\":%.9g,\"cost_saved_usd\":%.9g}",
                        e->broker_up ? "true" : "false", e->workers, e->cost_usd,
                        e->loser_cost_usd, e->saved_usd);
}

static void s_sample (bridge_t *self, s_sample_t *s)
{
    emetrics_t *em = self->em;
    s->at_ms = aclock_now_ms ();
    s->requests = atomic_load (&em->chat_requests);
    s->errors = atomic_load (&em->chat_errors);
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        s->lat[i] = atomic_load_explicit (&em->duration[EM_ROUTE_CHAT].hist.counts[i],
                                          memory_order_relaxed);
        s->ovh[i] = atomic_load_explicit (&em->overhead.hist.counts[i], memory_order_relaxed);
    }
}

static void s_delta (hist_t *out, const uint64_t *now, const uint64_t *then)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        uint64_t d = now[i] >= then[i] ? now[i] - then[i] : 0;
        atomic_store_explicit (&out->counts[i], d, memory_order_relaxed);
        total += d;
    }
    atomic_store (&out->total, total);
    atomic_store (&out->max, 0);
}

static int64_t s_wall_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  Sample the counters, compare with BRIDGE_WINDOW ticks ago, publish `edge`.
static void s_tick (bridge_t *self)
{
    s_sample_t *now = &self->ring[self->ring_next];
    size_t oldest = self->ring_count < BRIDGE_WINDOW + 1
                  ? 0 : (self->ring_next + 1) % (BRIDGE_WINDOW + 1);
    s_sample (self, now);
    const s_sample_t *then = &self->ring[oldest];
    self->ring_next = (self->ring_next + 1) % (BRIDGE_WINDOW + 1);
    if (self->ring_count < BRIDGE_WINDOW + 1)
        self->ring_count++;
    s_delta (&self->dlat, now->lat, then->lat);
    s_delta (&self->dovh, now->ovh, then->ovh);
    edge_status_t *st = self->box ? edge_status_box_get (self->box) : NULL;
    bridge_edge_t e = {
        .ts_ms = s_wall_ms (), .requests_total = now->requests, .errors_total = now->errors,
        .window_requests = now->requests - then->requests,
        .window_errors = now->errors - then->errors,
        .window_s = (double) (now->at_ms - then->at_ms) / 1000.0,
        .in_flight = atomic_load (&self->em->in_flight),
        .latency = &self->dlat, .overhead = &self->dovh,
        .broker_up = self->up && self->up (self->up_arg),
        .workers = st ? st->workers : 0 };
    em_spend_t sp;
    emetrics_spend (self->em, &sp);
    e.cost_usd = sp.cost_usd;
    e.loser_cost_usd = sp.loser_cost_usd;
    e.saved_usd = sp.saved_usd;
    edge_status_release (&st);
    buf_free (&self->json);
    if (bridge_edge_json (&self->json, &e) == 0) {
        fmsg_t *msg = fanout_msg_new ("edge", self->json.data, self->json.len);
        if (msg) {
            fanout_publish (self->fanout, msg, false);
            atomic_fetch_add (&self->relayed[S_T_EDGE], 1);
        }
        fanout_msg_release (&msg);
    }
}

//  --------------------------------------------------------------- broker stream

static void s_set_snap (bridge_t *self, bsnap_t **snap_p)
{
    snap_t *base = *snap_p ? &(*snap_p)->base : NULL;
    *snap_p = NULL;
    snap_box_set (&self->snaps, &base);
}

#ifdef AIGW_HAVE_MSGPACK
//  Decode one body once: JSON for browsers, plus the snapshot for a `metrics` message.
static int s_relay (bridge_t *self, int topic, const void *data, size_t len)
{
    if (!mpack_valid (data, len, MPACK_DEPTH_MAX))
        return -1;
    fanout_stats_t fs;
    fanout_stats (self->fanout, &fs);
    msgpack_unpacked up;
    msgpack_unpacked_init (&up);
    int rc = -1;
    if (msgpack_unpack_next (&up, data, len, NULL) != MSGPACK_UNPACK_SUCCESS
        || up.data.type != MSGPACK_OBJECT_MAP)
        goto done;
    rc = 0;
    if (topic == S_T_METRICS) {
        bsnap_t *snap = bsnap_from_object (&up.data, aclock_now_ms ());
        if (snap)
            s_set_snap (self, &snap);
    }
    else
    if (fs.clients == 0)
        goto done;                      // nobody listens; `metrics` is kept for joiners
    buf_free (&self->json);
    rc = mpack_to_json (&up.data, &self->json);
    fmsg_t *msg = rc ? NULL : fanout_msg_new (s_topics[topic], self->json.data, self->json.len);
    if (msg) {
        fanout_publish (self->fanout, msg, topic == S_T_METRICS);
        atomic_fetch_add (&self->relayed[topic], 1);
    }
    fanout_msg_release (&msg);
done:
    msgpack_unpacked_destroy (&up);
    return rc;
}
#else
static int s_relay (bridge_t *self, int topic, const void *data, size_t len)
{
    return -1;
}
#endif

static int s_topic_of (zmq_msg_t *frame)
{
    size_t n = zmq_msg_size (frame);
    for (int i = 0; i < S_T_EDGE; i++)
        if (n == strlen (s_topics[i]) && memcmp (zmq_msg_data (frame), s_topics[i], n) == 0)
            return i;
    return -1;
}

//  Discard the rest of a multipart message.
static void s_drain (void *sub)
{
    int more = 1;
    size_t size = sizeof more;
    while (zmq_getsockopt (sub, ZMQ_RCVMORE, &more, &size) == 0 && more) {
        zmq_msg_t extra;
        zmq_msg_init (&extra);
        int rc = zmq_msg_recv (&extra, sub, 0);
        zmq_msg_close (&extra);
        if (rc < 0)
            break;
    }
}

//  Receive one [topic, body] message (more frames are dropped). 0, 1 if none was
//  waiting, -1 on a fatal socket error.
static int s_recv (bridge_t *self, void *sub)
{
    zmq_msg_t topic, body;
    zmq_msg_init (&topic);
    zmq_msg_init (&body);
    int rc = 0;
    if (zmq_msg_recv (&topic, sub, ZMQ_DONTWAIT) < 0) {
        rc = errno == EAGAIN || errno == EINTR ? 1 : -1;
        goto done;
    }
    atomic_fetch_add (&self->received, 1);
    bool ok = zmq_msg_more (&topic) && zmq_msg_recv (&body, sub, 0) >= 0;
    if (ok && zmq_msg_more (&body)) {
        ok = false;
        s_drain (sub);
    }
    int t = ok ? s_topic_of (&topic) : -1;
    if (t < 0 || s_relay (self, t, zmq_msg_data (&body), zmq_msg_size (&body)))
        atomic_fetch_add (&self->bad, 1);
done:
    zmq_msg_close (&topic);
    zmq_msg_close (&body);
    return rc;
}

static void *s_new_sub (bridge_t *self)
{
    void *sub = zmq_socket (self->ctx, ZMQ_SUB);
    if (!sub)
        return NULL;
    int linger = 0, hwm = S_RCVHWM;
    zmq_setsockopt (sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (sub, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (self->max_frame > 0)
        zmq_setsockopt (sub, ZMQ_MAXMSGSIZE, &self->max_frame, sizeof self->max_frame);
    //  `job` (one message per finished job) only while a browser listens: see s_run
    zmq_setsockopt (sub, ZMQ_SUBSCRIBE, "metrics", 7);
    zmq_setsockopt (sub, ZMQ_SUBSCRIBE, "worker", 6);
    if (curve_client_apply (&self->curve, sub) || zmq_connect (sub, self->endpoint)) {
        log_error ("metrics bridge: cannot connect to %s: %s", self->endpoint,
                   zmq_strerror (errno));
        zmq_close (sub);
        return NULL;
    }
    return sub;
}

static void *s_run (void *arg)
{
    bridge_t *self = arg;
    void *sub = s_new_sub (self);
    s_sample (self, &self->ring[0]);
    self->ring_next = 1;
    self->ring_count = 1;
    int64_t next_tick = aclock_now_ms () + BRIDGE_TICK_MS;
    bool jobs = false;                  // subscribed to `job`
    while (!atomic_load (&self->stop)) {
        //  The broker's XPUB filters at the source: with no browser, no job events
        //  cross the wire at all (they cost a message per request otherwise)
        bool want = fanout_clients (self->fanout) > 0;
        if (sub && want != jobs && zmq_setsockopt (sub, want ? ZMQ_SUBSCRIBE : ZMQ_UNSUBSCRIBE,
                                                   "job", 3) == 0)
            jobs = want;
        int64_t wait = next_tick - aclock_now_ms ();
        zmq_pollitem_t item = { sub, 0, ZMQ_POLLIN, 0 };
        int rc = zmq_poll (&item, sub ? 1 : 0, wait > 0 ? (long) wait : 0);
        if (rc < 0 && errno != EINTR)
            break;                      // context shut down
        for (int i = 0; rc > 0 && i < S_BATCH; i++)
            if (s_recv (self, sub))
                break;
        int64_t now = aclock_now_ms ();
        if (now >= next_tick) {
            s_tick (self);
            next_tick += BRIDGE_TICK_MS;
            if (next_tick <= now)
                next_tick = now + BRIDGE_TICK_MS;
        }
    }
    if (sub)
        zmq_close (sub);
    return NULL;
}

//  --------------------------------------------------------------- object

bridge_t *bridge_new (const char *endpoint, int64_t max_frame, emetrics_t *em,
                      edge_status_box_t *box, bridge_up_fn *up, void *up_arg,
                      size_t max_clients, const cfg_t *cfg)
{
    bridge_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    char err[1024];
    if (cfg && curve_client_load (&self->curve, cfg, cfg->edge.cert, "edge/cert", endpoint, err,
                                  sizeof err)) {
        log_error ("metrics bridge: %s", err);
        free (self);
        return NULL;
    }
    snprintf (self->endpoint, sizeof self->endpoint, "%s", endpoint);
    self->max_frame = max_frame;
    self->em = em;
    self->box = box;
    self->up = up;
    self->up_arg = up_arg;
    snap_box_init (&self->snaps);
    buf_init (&self->json, BRIDGE_MSG_MAX);
    hist_reset (&self->dlat);
    hist_reset (&self->dovh);
    self->fanout = fanout_new (max_clients, BRIDGE_CLIENT_MSGS, BRIDGE_CLIENT_BYTES);
    self->ctx = zmq_ctx_new ();
    if (!self->fanout || !self->ctx)
        goto fail;
    if (pthread_create (&self->thread, NULL, s_run, self))
        goto fail;
    self->started = true;
    return self;
fail:
    bridge_destroy (&self);
    return NULL;
}

void bridge_destroy (bridge_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bridge_t *self = *self_p;
    *self_p = NULL;
    atomic_store (&self->stop, true);
    if (self->ctx)
        zmq_ctx_shutdown (self->ctx);   // wakes the thread's zmq_poll
    if (self->started)
        pthread_join (self->thread, NULL);
    if (self->ctx)
        zmq_ctx_term (self->ctx);
    fanout_destroy (&self->fanout);
    snap_box_fini (&self->snaps);
    buf_free (&self->json);
    curve_client_wipe (&self->curve);
    free (self);
}

void bridge_close (bridge_t *self)
{
    fanout_close (self->fanout);
}

fanout_t *bridge_fanout (bridge_t *self)
{
    return self->fanout;
}

bsnap_t *bridge_broker (bridge_t *self, int64_t max_age_ms, int64_t *age_ms)
{
    bsnap_t *snap = (bsnap_t *) snap_box_get (&self->snaps);   // base is the first member
    int64_t age = snap ? aclock_now_ms () - snap->at_ms : -1;
    if (age_ms)
        *age_ms = age;
    if (snap && age > max_age_ms)
        bsnap_release (&snap);
    return snap;
}

void bridge_stats (bridge_t *self, bridge_stats_t *out)
{
    out->received = atomic_load (&self->received);
    out->bad = atomic_load (&self->bad);
    for (int i = 0; i < S_TOPICS; i++)
        out->relayed[i] = atomic_load (&self->relayed[i]);
}
