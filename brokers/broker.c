// aigw broker event loop: sockets, bind, poll, timers, drain, shutdown and the socket
// monitors (workers' connections closing, refused CURVE handshakes). It reads each
// message, checks its header and sender, and hands it to the jobs (bjobs.c) or the
// worker registry (breg.c); the metrics stream (bmetrics.c) gets what it shows from here.
#define _GNU_SOURCE
#include "broker.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <czmq.h>
#include <zmq.h>

#include "aclock.h"
#include "broker_int.h"
#include "bstats.h"
#include "hmap.h"
#include "log.h"
#include "wire.h"

static pthread_once_t s_seed_once = PTHREAD_ONCE_INIT;

static void s_seed (void)
{
    uint64_t seed = 0;
    int fd = open ("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read (fd, &seed, sizeof seed);
        (void) n;
        close (fd);
    }
    hmap_seed (seed ^ (uint64_t) aclock_now_us () ^ ((uint64_t) getpid () << 32));
}

//  A random non-zero instance id: getrandom (2), else /dev/urandom, else the clock.
static uint64_t s_instance (void)
{
    uint64_t id = 0;
    if (getrandom (&id, sizeof id, GRND_NONBLOCK) != (ssize_t) sizeof id) {
        int fd = open ("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read (fd, &id, sizeof id) != (ssize_t) sizeof id)
            id = (uint64_t) aclock_now_us () * 0x9e3779b97f4a7c15ULL ^ (uint64_t) getpid ();
        if (fd >= 0)
            close (fd);
    }
    return id ? id : 1;
}

//  ---------------------------------------------------------------------------
//  Socket monitors

#define S_HANDSHAKE_FAILED (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL \
                            | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)

//  A refused handshake (CURVE only): counted, and logged at the 1st, 2nd, 4th, 8th...
//  refusal so a scanning peer cannot flood the log.
static void s_refused (broker_t *self, size_t slot, uint16_t event)
{
    static const char *const sides[] = { "frontend", "backend", "metrics" };
    uint64_t n = ++self->c.denied_handshakes;
    if ((n & (n - 1)) == 0)
        log_warn ("%s: refused a connection at the CURVE handshake (%s); %" PRIu64
                  " refused so far", sides[slot],
                  event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? "certificate not authorized"
                  : "no CURVE or bad handshake", n);
}

//  Read up to max events of monitor slot. The backend's ACCEPTED and DISCONNECTED move
//  its connections' generations on; a closed one waits for s_conns_closed.
static void s_read_monitor (broker_t *self, size_t slot, int max)
{
    zmon_event_t ev;
    for (int i = 0; i < max && zmon_next (&self->mon[slot], &ev) == 0; i++) {
        bconn_t *conns = slot == BROKER_MON_BACKEND ? &self->conns
                       : slot == BROKER_MON_FRONTEND ? &self->fconns : NULL;
        if (conns && ev.event == ZMQ_EVENT_ACCEPTED)
            bconn_accepted (conns, (int) ev.value);
        else
        if (conns && ev.event == ZMQ_EVENT_DISCONNECTED) {
            if (bconn_disconnected (conns, (int) ev.value))
                log_debug ("%s: connection fd %u closed, not tracked (left to heartbeat "
                           "expiry or job deadlines)", conns == &self->conns ? "backend"
                           : "frontend", ev.value);
        }
        else
        if (ev.event & S_HANDSHAKE_FAILED)
            s_refused (self, slot, ev.event);
    }
}

//  The workers of backend connections that closed are lost now, as if their
//  heartbeat had expired.
static void s_conns_closed (broker_t *self)
{
    bconn_closed_t c;
    while (bconn_take (&self->conns, &c))
        breg_conn_closed (self->reg, (int) c.fd, c.gen);
}

//  The jobs of client connections that closed are cancelled now: nobody is left to
//  answer, and their upstream calls should stop.
static void s_clients_closed (broker_t *self, int64_t now)
{
    bconn_closed_t c;
    while (bconn_take (&self->fconns, &c)) {
        size_t n = bjobs_client_gone (self->jobs, (int) c.fd, c.gen, now);
        if (n)
            log_info ("frontend: a client connection closed with %zu job(s) in flight; "
                      "cancelled", n);
    }
}

//  The connection a client's SUBMIT came on, after every frontend event queued before
//  it: a connection's ACCEPTED is queued before its first message, so a new connection
//  on a reused fd gets its own generation, and the jobs of one that closed are
//  cancelled before this SUBMIT (which may resubmit one of them) is looked at.
static void s_client_conn (broker_t *self, wire_msg_t *msg, int *fd, uint32_t *gen)
{
    *fd = -1;
    *gen = 0;
    int src = zmq_msg_get (&msg->body, ZMQ_SRCFD);
    if (src < 0 || !bconn_track (&self->fconns, src))
        return;                         // inproc, or not tracked: nothing is cancelled
    s_read_monitor (self, BROKER_MON_FRONTEND, INT_MAX);
    s_clients_closed (self, aclock_now_us ());
    *fd = src;
    *gen = bconn_gen (&self->fconns, src);
}

//  Record the connection (fd, generation) w's message came on, so that its close names
//  w. A new or changed fd: read the backend monitor first, so that an earlier
//  connection's DISCONNECTED on the same fd is taken before, not mistaken for this one's.
static void s_track_conn (broker_t *self, worker_t *w, wire_msg_t *msg)
{
    int fd = zmq_msg_get (&msg->body, ZMQ_SRCFD);
    if (fd < 0)
        return;         // inproc, or no body frame to tell: keep what we know
    if (!bconn_track (&self->conns, fd)) {
        breg_worker_set_conn (w, -1, 0);        // not tracked: heartbeat backstop
        return;
    }
    if (breg_worker_fd (w) != fd)
        s_read_monitor (self, BROKER_MON_BACKEND, INT_MAX);
    else
    if (bconn_closing (&self->conns, fd))
        return;         // its last messages before the close: keep the closed generation
    breg_worker_set_conn (w, fd, bconn_gen (&self->conns, fd));
}

//  ---------------------------------------------------------------------------
//  Messages

static void s_on_ping (broker_t *self, wire_msg_t *msg)
{
    size_t n = dsp_model_count (self->dsp);
    Aigw__ModelStatus *ms = calloc (n ? n : 1, sizeof *ms);
    Aigw__ModelStatus **mp = calloc (n ? n : 1, sizeof *mp);
    Aigw__BrokerStatus st = AIGW__BROKER_STATUS__INIT;
    size_t live = 0;
    for (size_t i = 0; ms && mp && i < n; i++) {
        dsp_model_t *m = dsp_model_at (self->dsp, i);
        if (dsp_model_workers (m) == 0)
            continue;
        Aigw__ModelStatus *x = &ms[live];
        aigw__model_status__init (x);
        x->name = (char *) dsp_model_name (m);
        x->has_workers = x->has_capacity = x->has_in_flight = x->has_queued = true;
        x->workers = dsp_model_workers (m);
        x->capacity = dsp_model_capacity (m);
        x->in_flight = dsp_model_in_flight (m);
        x->queued = dsp_model_queued (m);
        mp[live++] = x;
    }
    st.n_models = live;
    st.models = mp;
    st.has_workers = st.has_jobs_in_flight = true;
    st.workers = (uint32_t) dsp_worker_count (self->dsp);
    st.jobs_in_flight = bjobs_count (self->jobs);
    st.broker_id = self->broker_id;
    st.has_instance = true;
    st.instance = self->instance;
    if (wire_send (self->frontend, msg->id, msg->id_len, WIRE_SIDE_CLIENT, WIRE_C_PONG, &st.base,
                   NULL))
        self->c.send_failures++;
    free (ms);
    free (mp);
}

//  CURVE: only certificates in fabric/clients may use the frontend; the rest are
//  counted and logged once per certificate.
static bool s_client_admitted (broker_t *self, const wire_msg_t *msg)
{
    const curve_peer_t *p = curve_server_peer (self->curve, msg->user_id);
    if (p && p->client)
        return true;
    self->c.denied_clients++;
    if (bpeer_denied_first (&self->peers, msg->user_id, 'C'))
        log_warn ("frontend: %s from certificate %s (%s) dropped: not in fabric/clients"
                  " (further ones from this certificate are only counted)",
                  wire_cmd_name (WIRE_SIDE_CLIENT, msg->cmd), p ? p->name : "unknown",
                  msg->user_id[0] ? msg->user_id : "no key");
    return false;
}

static void s_on_client (broker_t *self, wire_msg_t *msg, int64_t now)
{
    if (msg->side != WIRE_SIDE_CLIENT || !wire_cmd_valid (WIRE_SIDE_CLIENT, msg->cmd, true)) {
        bpeer_malformed (&self->peers, msg->id, msg->id_len, "client", "wrong header or command");
        return;
    }
    if (self->curve && !s_client_admitted (self, msg))
        return;
    if (msg->cmd == WIRE_C_SUBMIT) {
        int fd;
        uint32_t gen;
        s_client_conn (self, msg, &fd, &gen);
        bjobs_submit (self->jobs, msg, fd, gen, now);
    }
    else
    if (msg->cmd == WIRE_C_CANCEL)
        bjobs_cancel (self->jobs, msg, now);
    else
        s_on_ping (self, msg);
}

static void s_on_worker (broker_t *self, wire_msg_t *msg, int64_t now)
{
    if (msg->side != WIRE_SIDE_WORKER || !wire_cmd_valid (WIRE_SIDE_WORKER, msg->cmd, true)) {
        bpeer_malformed (&self->peers, msg->id, msg->id_len, "worker", "wrong header or command");
        return;
    }
    if (msg->cmd == WIRE_W_READY) {
        worker_t *w = breg_ready (self->reg, msg, now);
        if (w) {
            s_track_conn (self, w, msg);
            bjobs_pull (self->jobs, w, now);    // hand it queued work
        }
        return;
    }
    worker_t *w = breg_sender (self->reg, msg, now);
    if (!w)
        return;
    s_track_conn (self, w, msg);
    if (msg->cmd == WIRE_W_RESULT)
        bjobs_result (self->jobs, w, msg, now);
    else
    if (msg->cmd == WIRE_W_ERROR)
        bjobs_error (self->jobs, w, msg, now);
    else
    if (msg->cmd == WIRE_W_CHUNK)
        bjobs_chunk (self->jobs, w, msg, now);
    else
    if (msg->cmd == WIRE_W_DISCONNECT)
        breg_kill (self->reg, w, "sent DISCONNECT");
    else {
        //  HEARTBEAT: keep the worker's own counters and capacity; hand it queued work
        //  if it has credit (a TASK refused earlier because its pipe was full, or work
        //  queued while its capacity was used up, goes out this way)
        breg_heartbeat (self->reg, w, msg);
        bjobs_pull (self->jobs, w, now);
    }
}

void broker_log_summary (const broker_t *self)
{
    const broker_counters_t *c = &self->c;
    log_info ("summary: jobs accepted=%" PRIu64 " rejected=%" PRIu64 " won=%" PRIu64
              " failed=%" PRIu64 " timeout=%" PRIu64 " cancelled=%" PRIu64 " in_flight=%zu;"
              " attempts started=%" PRIu64 " won=%" PRIu64 " cancelled=%" PRIu64
              " failed=%" PRIu64 " redispatched=%" PRIu64 " bounced=%" PRIu64 " late=%" PRIu64
              " cancel_acks=%" PRIu64
              "; malformed=%" PRIu64 " unknown_worker=%" PRIu64 "; denied clients=%" PRIu64
              " models=%" PRIu64 " readys=%" PRIu64 " handshakes=%" PRIu64
              "; workers joined=%" PRIu64 " lost=%" PRIu64 " (disconnected %" PRIu64 ") live=%zu"
              "; send_failures=%" PRIu64 " (pipe full %" PRIu64 ")",
              c->jobs_accepted, c->jobs_rejected, c->jobs_won, c->jobs_failed, c->jobs_timeout,
              c->jobs_cancelled, bjobs_count (self->jobs), c->attempts_started, c->attempts_won,
              c->attempts_cancelled, c->attempts_failed, c->attempts_redispatched,
              c->attempts_bounced, c->late_replies, c->cancel_acks, c->malformed,
              c->unknown_worker, c->denied_clients, c->denied_models, c->denied_readys,
              c->denied_handshakes, c->workers_joined, c->workers_lost, c->workers_disconnected,
              dsp_worker_count (self->dsp), c->send_failures, c->send_full);
}

//  ---------------------------------------------------------------------------
//  Construction

//  A ROUTER with the fabric's options (ZMTP pings, CURVE), watched by mon for events
//  (0: not watched) from before it binds ep. ep becomes the endpoint bound (a wildcard
//  port "*" becomes the port the kernel chose), so logs and tests see the real one.
static void *s_bind (broker_t *self, const cfg_t *cfg, char *ep, size_t eplen, zmon_t *mon,
                     int events)
{
    void *s = zmq_socket (self->ctx, ZMQ_ROUTER);
    if (!s) {
        log_error ("cannot create socket: %s", zmq_strerror (errno));
        return NULL;
    }
    int ping_ms = (int) cfg->fabric.ping_ms, ping_timeout_ms = (int) cfg->fabric.ping_timeout_ms;
    if (wire_setup_socket (s, true, cfg->broker.max_frame)
        || (ping_ms > 0 && wire_heartbeat (s, ping_ms, ping_timeout_ms))
        || (self->curve && curve_server_apply (self->curve, s))
        || (events && zmon_open (mon, self->ctx, s, events)) || zmq_bind (s, ep)) {
        log_error ("cannot bind %s: %s", ep, zmq_strerror (errno));
        zmon_close (mon);
        zmq_close (s);
        return NULL;
    }
    wire_bound_endpoint (s, ep, eplen);
    return s;
}

//  Protected mode: no endpoint beyond loopback without CURVE (unless fabric/insecure).
static int s_protected (const cfg_t *cfg)
{
    const char *keys[] = { "broker/frontend", "broker/backend", "broker/metrics" };
    const char *eps[] = { cfg->broker.frontend, cfg->broker.backend, cfg->broker.metrics };
    for (size_t i = 0; i < 3; i++) {
        char err[1024];
        if (curve_check_bind (cfg, keys[i], eps[i], err, sizeof err)) {
            log_error ("%s", err);
            return -1;
        }
    }
    if (!cfg->fabric.curve && cfg->fabric.insecure)
        for (size_t i = 0; i < 3; i++)
            if (!cfg_is_loopback (eps[i]))
                log_warn ("fabric/insecure = true: %s = %s accepts anyone, in clear text",
                          keys[i], eps[i]);
    return 0;
}

//  CURVE on: the zauth actor and our keys. Sockets are created in CZMQ's context,
//  where zauth answers ZAP (libzmq lets anyone in when no ZAP handler is there).
static int s_curve_start (broker_t *self, const cfg_t *cfg, void *zmq_ctx)
{
    if (zmq_ctx && zmq_ctx != zsys_init ()) {
        log_error ("fabric/curve = on needs the broker's sockets in CZMQ's context "
                   "(pass NULL or zsys_init ())");
        return -1;
    }
    char err[1024];
    self->curve = curve_server_new (cfg, err, sizeof err);
    if (!self->curve) {
        log_error ("%s", err);
        return -1;
    }
    log_info ("fabric: CURVE on, certificates in %s (clients: %s)", cfg->fabric.cert_dir,
              cfg->fabric.clients);
    return 0;
}

//  The registry and the jobs, once the sockets are bound. 0 / -1 (out of memory).
static int s_modules_new (broker_t *self, const cfg_t *cfg)
{
    self->env = (bjob_env_t) {
        .frontend = self->frontend, .dsp = self->dsp, .prices = self->prices,
        .metrics = self->metrics, .c = &self->c,
        .deadline_us = (int64_t) cfg->broker.deadline_ms * 1000,
        .max_deadline_us = (int64_t) cfg->broker.max_deadline_ms * 1000,
        .hedge_default_ms = cfg->broker.hedge_default_ms,
        .retry_backoff_ms = cfg->broker.retry_backoff_ms,
    };
    breg_env_t renv = {
        .backend = self->backend, .dsp = self->dsp, .prices = self->prices,
        .curve = self->curve, .peers = &self->peers, .metrics = self->metrics, .c = &self->c,
        .expiry_us = self->expiry_us, .instance = self->instance,
    };
    self->reg = breg_new (&renv);
    self->jobs = self->reg ? bjobs_new (&self->env, self->reg, &self->peers) : NULL;
    return self->jobs ? 0 : -1;
}

broker_t *broker_new (const cfg_t *cfg, void *zmq_ctx)
{
    pthread_once (&s_seed_once, s_seed);
    if (s_protected (cfg))
        return NULL;
    broker_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->wake[0] = self->wake[1] = -1;
    self->own_ctx = zmq_ctx == NULL && !cfg->fabric.curve;
    self->ctx = zmq_ctx ? zmq_ctx : cfg->fabric.curve ? zsys_init () : zmq_ctx_new ();
    snprintf (self->ep_front, sizeof self->ep_front, "%s", cfg->broker.frontend);
    snprintf (self->ep_back, sizeof self->ep_back, "%s", cfg->broker.backend);
    snprintf (self->ep_metrics, sizeof self->ep_metrics, "%s", cfg->broker.metrics);
    self->instance = s_instance ();
    bconn_init (&self->conns);
    bconn_init (&self->fconns);
    self->heartbeat_us = (int64_t) cfg->broker.heartbeat_ms * 1000;
    self->expiry_us = self->heartbeat_us * cfg->broker.liveness;
    self->hold_us = cfg->broker.start_hold_ms == CFG_HOLD_AUTO
                  ? self->expiry_us : (int64_t) cfg->broker.start_hold_ms * 1000;
    char host[64] = "";
    gethostname (host, sizeof host - 1);
    snprintf (self->broker_id, sizeof self->broker_id, "%s/%d", host, (int) getpid ());
    bpeer_init (&self->peers, &self->c);
    self->dsp = dsp_new (cfg->broker.queue_limit);
    self->prices = bstats_prices (cfg);
    self->metrics = bmetrics_new (&self->pub);
    if (!self->ctx || !self->dsp || !self->prices || !self->metrics
        || pipe2 (self->wake, O_NONBLOCK | O_CLOEXEC))
        goto fail;
    if (cfg->fabric.curve && s_curve_start (self, cfg, zmq_ctx))
        goto fail;
    int refused = self->curve ? S_HANDSHAKE_FAILED : 0;
    self->frontend = s_bind (self, cfg, self->ep_front, sizeof self->ep_front,
                             &self->mon[BROKER_MON_FRONTEND],
                             ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | refused);
    self->backend = s_bind (self, cfg, self->ep_back, sizeof self->ep_back,
                            &self->mon[BROKER_MON_BACKEND],
                            ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | refused);
    if (!self->frontend || !self->backend)
        goto fail;
    //  With CURVE the metrics PUB lives in a context whose ZAP handler lets in only
    //  fabric/clients certificates (the stream is for the edge and the agent)
    void *mctx = self->curve ? curve_server_clients_ctx (self->curve) : self->ctx;
    if (bpub_open (&self->pub, mctx, self->ep_metrics, self->curve)) {
        log_error ("cannot bind %s: %s", self->ep_metrics, zmq_strerror (errno));
        goto fail;
    }
    wire_bound_endpoint (self->pub.sock, self->ep_metrics, sizeof self->ep_metrics);
    if (self->curve && zmon_open (&self->mon[BROKER_MON_METRICS], mctx, self->pub.sock,
                                  refused)) {
        log_error ("cannot monitor %s: %s", self->ep_metrics, zmq_strerror (errno));
        goto fail;
    }
    if (s_modules_new (self, cfg))
        goto fail;
    return self;
fail:
    broker_destroy (&self);
    return NULL;
}

void broker_destroy (broker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    broker_t *self = *self_p;
    bjobs_destroy (&self->jobs);
    breg_destroy (&self->reg);
    bstats_free_all (self->dsp);
    dsp_destroy (&self->dsp);
    cfg_destroy (&self->prices);
    for (size_t i = 0; i < BROKER_MONS; i++)
        zmon_close (&self->mon[i]);         // before the sockets they watch
    bconn_fini (&self->conns);
    bconn_fini (&self->fconns);
    if (self->frontend)
        zmq_close (self->frontend);
    if (self->backend)
        zmq_close (self->backend);
    bpub_close (&self->pub);
    curve_server_destroy (&self->curve);
    bmetrics_destroy (&self->metrics);
    if (self->own_ctx && self->ctx)
        zmq_ctx_term (self->ctx);
    for (int i = 0; i < 2; i++)
        if (self->wake[i] >= 0)
            close (self->wake[i]);
    free (self);
    *self_p = NULL;
}

//  ---------------------------------------------------------------------------
//  Loop

static void s_wake (broker_t *self, char c)
{
    if (self && self->wake[1] >= 0) {
        ssize_t n = write (self->wake[1], &c, 1);
        (void) n;
    }
}

void broker_stop (broker_t *self)
{
    s_wake (self, 'q');
}

void broker_request_summary (broker_t *self)
{
    s_wake (self, 'u');
}

static void s_read_wake (broker_t *self)
{
    char buf[64];
    ssize_t n;
    while ((n = read (self->wake[0], buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == 'q') {
                self->stopping = true;
                bjobs_set_stopping (self->jobs, true);
            }
            else
            if (buf[i] == 'u')
                broker_log_summary (self);
        }
}

//  Fail the attempts of dead workers, then free the dead workers' records. Called
//  where no job is being processed.
static void s_reap (broker_t *self, int64_t now)
{
    if (!bjobs_has_pending (self->jobs) && !breg_has_dead (self->reg))
        return;
    bjobs_reap (self->jobs, now);
    breg_reap (self->reg);
}

//  Read up to BROKER_DRAIN_MAX messages from one socket. Returns -1 on a fatal error.
//  Read up to BROKER_DRAIN_MAX messages from one socket. Returns -1 on a fatal error.
static int s_drain (broker_t *self, void *sock, bool client)
{
    for (int i = 0; i < BROKER_DRAIN_MAX; i++) {
        wire_msg_t msg;
        int rc = wire_recv (sock, true, &msg);
        if (rc == -1) {
            if (errno == EAGAIN || errno == EINTR)
                return 0;
            log_error ("receive failed: %s", zmq_strerror (errno));
            return errno == ETERM ? -1 : 0;
        }
        int64_t now = aclock_now_us ();
        if (rc == -2)
            bpeer_malformed (&self->peers, msg.id, msg.id_len, client ? "client" : "worker",
                             msg.error);
        else
        if (client)
            s_on_client (self, &msg, now);
        else
            s_on_worker (self, &msg, now);
        wire_msg_close (&msg);
        s_reap (self, now);
    }
    return 0;
}

//  Publish the once-a-second `metrics` message, if anyone listens.
static void s_publish (broker_t *self, int64_t now)
{
    if (!bmetrics_wants (self->metrics, "metrics"))
        return;
    bmetrics_tick_t tick = {
        .broker_id = self->broker_id, .instance = self->instance, .started = self->env.started,
        .jobs_in_flight = bjobs_count (self->jobs), .counters = &self->c, .dsp = self->dsp,
    };
    tick.workers = breg_views (self->reg, &tick.nworkers);
    bmetrics_tick (self->metrics, &tick, now);
}

static void s_run_timers (broker_t *self, int64_t now)
{
    bjobs_tick (self->jobs, now);
    if (dsp_holding (self->dsp) && now >= self->env.started + self->hold_us)
        bjobs_end_hold (self->jobs);
    if (now >= self->next_heartbeat) {
        breg_tick (self->reg, now);
        self->next_heartbeat = now + self->heartbeat_us;
    }
    s_reap (self, now);
    if (now >= self->next_metrics) {
        bstats_refresh_p95 (self->dsp);
        s_publish (self, now);
        self->next_metrics = now + BROKER_METRICS_US;
    }
}

static long s_poll_timeout_ms (broker_t *self, int64_t now)
{
    int64_t due = self->next_heartbeat < self->next_metrics ? self->next_heartbeat
                                                            : self->next_metrics;
    int64_t timer = bjobs_next_timer (self->jobs);
    if (timer < due)
        due = timer;
    if (due <= now)
        return 0;
    return (long) ((due - now + 999) / 1000);
}

//  On stop: answer every open job and tell workers we are going.
static void s_shutdown (broker_t *self, int64_t now)
{
    bjobs_shutdown (self->jobs, now);
    breg_goodbye (self->reg);
    s_reap (self, now);
}

//  Poll items: frontend, backend, wake pipe, metrics XPUB, then the open monitors
//  (slots[i] names item 4 + i's monitor). Returns how many.
static int s_poll_items (broker_t *self, zmq_pollitem_t *items, size_t *slots)
{
    items[0] = (zmq_pollitem_t) { self->frontend, 0, ZMQ_POLLIN, 0 };
    items[1] = (zmq_pollitem_t) { self->backend, 0, ZMQ_POLLIN, 0 };
    items[2] = (zmq_pollitem_t) { NULL, self->wake[0], ZMQ_POLLIN, 0 };
    items[3] = (zmq_pollitem_t) { self->pub.sock, 0, ZMQ_POLLIN, 0 };
    int n = 4;
    for (size_t i = 0; i < BROKER_MONS; i++)
        if (zmon_socket (&self->mon[i])) {
            slots[n - 4] = i;
            items[n++] = (zmq_pollitem_t) { zmon_socket (&self->mon[i]), 0, ZMQ_POLLIN, 0 };
        }
    return n;
}

int broker_run (broker_t *self)
{
    log_info ("instance %016" PRIx64 ": frontend %s, backend %s, metrics %s", self->instance,
              self->ep_front, self->ep_back, self->ep_metrics);
    int64_t now = aclock_now_us ();
    self->env.started = now;
    //  For the hold after start (by default heartbeat * liveness, the time every worker
    //  of a previous instance has to come back), jobs for a model with no worker wait
    dsp_set_hold (self->dsp, self->hold_us > 0, NULL);
    self->next_heartbeat = now + self->heartbeat_us;
    self->next_metrics = now + BROKER_METRICS_US;
    self->stopping = false;
    bjobs_set_stopping (self->jobs, false);
    int rc = 0;
    while (!self->stopping) {
        zmq_pollitem_t items[4 + BROKER_MONS];
        size_t slots[BROKER_MONS];
        int nitems = s_poll_items (self, items, slots);
        if (zmq_poll (items, nitems, s_poll_timeout_ms (self, aclock_now_us ())) < 0) {
            if (errno == EINTR)
                continue;
            log_error ("poll failed: %s", zmq_strerror (errno));
            rc = -1;
            break;
        }
        if (items[2].revents & ZMQ_POLLIN)
            s_read_wake (self);
        if (items[3].revents & ZMQ_POLLIN)
            bpub_read (&self->pub);
        //  Connection events before messages (s_track_conn reads again where it matters)
        for (int i = 4; i < nitems; i++)
            if ((items[i].revents & ZMQ_POLLIN) || slots[i - 4] != BROKER_MON_METRICS)
                s_read_monitor (self, slots[i - 4], BROKER_DRAIN_MAX);
        if ((items[1].revents & ZMQ_POLLIN) && s_drain (self, self->backend, false)) {
            rc = -1;
            break;
        }
        //  After the backend, so a closed connection's last messages are read first
        s_conns_closed (self);
        s_reap (self, aclock_now_us ());
        if ((items[0].revents & ZMQ_POLLIN) && s_drain (self, self->frontend, true)) {
            rc = -1;
            break;
        }
        s_clients_closed (self, aclock_now_us ());
        s_run_timers (self, aclock_now_us ());
    }
    s_shutdown (self, aclock_now_us ());
    broker_log_summary (self);
    return rc;
}

const broker_counters_t *broker_counters (const broker_t *self)
{
    return &self->c;
}

uint64_t broker_jobs_in_flight (const broker_t *self)
{
    return bjobs_count (self->jobs);
}

uint64_t broker_workers (const broker_t *self)
{
    return dsp_worker_count (self->dsp);
}
