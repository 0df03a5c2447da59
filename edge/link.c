// Broker links of one event loop: a DEALER per broker of edge/broker, routes by job_id
// (decoded with the generated protobuf code), PING/PONG liveness, socket-monitor
// disconnects, resubmission of jobs a lost broker held, and the shared status snapshot.
#include "link.h"
#include "curve.h"
#include "jobmap.h"
#include "wire.h"
#include "zmon.h"
#include "log.h"
#include "aclock.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_RETRY_PING_MS 20             // PING retry while a socket has no connection, and
                                       // the ping pace while jobs wait to be resubmitted
#define S_NONE UINT16_MAX              // route.broker of a job waiting to be resubmitted
#define S_STAT_COUNT (sizeof (edge_link_stats_t) / sizeof (uint64_t))
#define S_LOST_WHY "lost the connection to the broker"

//  Counter slots, same order as edge_link_stats_t
enum {
    S_SUBMITTED, S_SUBMIT_FAILED, S_RESULTS, S_ERRORS, S_CHUNKS, S_CANCELS, S_UNROUTED,
    S_BAD, S_PINGS, S_PONGS, S_RECONNECTS, S_FAILED_ON_DOWN, S_SPENDS, S_RESUBMITTED,
    S_BROKERS_LOST, S_RESTARTS
};

//  What a resubmission needs: the SUBMIT's frames, shared by reference with the send.
typedef struct s_held {
    zmq_msg_t job;                      // the packed Job
    zmq_msg_t payload;                  // the request JSON
    bool resubmitted;                   // once only
    struct s_held *next;                // free list
} s_held_t;

typedef struct {
    char ep[CFG_STR_MAX];
    void *dealer;                       // DEALER to the broker's frontend, or NULL
    zmon_t mon;                         // its CONNECTED / DISCONNECTED events
    int64_t since_ms;                   // when the DEALER was created
    int64_t next_ping_ms;
    uint64_t instance;                  // from its PONGs; 0 = none yet
    int64_t instance_ms;                // when this instance was first heard
    uint32_t workers;                   // as of its last PONG
    size_t routes;                      // jobs it holds for this loop
    bool was_up;
    _Atomic bool connected;             // CONNECTED seen and no DISCONNECTED since
    _Atomic int64_t last_heard_ms;      // 0 = never
} s_broker_t;

struct _edge_link_t {
    void *zctx;                         // not owned
    curve_client_t curve;               // edge/cert keys (fabric/curve), for every DEALER
    s_broker_t brokers[CFG_BROKERS_MAX];
    size_t nbrokers;
    size_t rr;                          // round-robin start among equally loaded brokers
    int64_t heartbeat_ms;
    int64_t dead_after_ms;              // heartbeat * liveness
    int64_t max_frame;
    uint32_t ping_ms, ping_timeout_ms;  // ZMTP pings (fabric/ping_*)
    edge_status_box_t *box;             // not owned; may be NULL
    edge_link_fn *fn;
    void *fn_arg;
    edge_spend_fn *spend_fn;            // SPEND (a loser's late usage); may be NULL
    void *spend_arg;
    edge_jobmap_t *jobs;
    size_t npending;                    // routes waiting to be resubmitted
    s_held_t *free_held;                // recycled s_held_t
    bool quiet;                         // no link up/down log lines (all but one loop)
    const char *fail_why;               // message while failing every job
    _Atomic uint64_t stats[S_STAT_COUNT];
};

static void s_count (edge_link_t *self, int slot)
{
    atomic_fetch_add_explicit (&self->stats[slot], 1, memory_order_relaxed);
}

//  --------------------------------------------------------------- held frames

static s_held_t *s_held_new (edge_link_t *self)
{
    s_held_t *h = self->free_held;
    if (h)
        self->free_held = h->next;
    else
    if (!(h = malloc (sizeof *h)))
        return NULL;
    zmq_msg_init (&h->job);
    zmq_msg_init (&h->payload);
    h->resubmitted = false;
    h->next = NULL;
    return h;
}

static void s_held_free (edge_link_t *self, s_held_t *h)
{
    if (!h)
        return;
    zmq_msg_close (&h->job);
    zmq_msg_close (&h->payload);
    h->next = self->free_held;
    self->free_held = h;
}

//  The route no longer needs its frames (an answer reached the client, or it ended).
static void s_route_release (edge_link_t *self, edge_route_t *r)
{
    s_held_free (self, r->held);
    r->held = NULL;
}

//  --------------------------------------------------------------- sockets

static void s_close_dealer (s_broker_t *b)
{
    zmon_close (&b->mon);
    if (b->dealer)
        zmq_close (b->dealer);
    b->dealer = NULL;
    atomic_store (&b->connected, false);
}

static int s_new_dealer (edge_link_t *self, s_broker_t *b)
{
    s_close_dealer (b);
    b->dealer = zmq_socket (self->zctx, ZMQ_DEALER);
    b->since_ms = aclock_now_ms ();
    b->next_ping_ms = b->since_ms;
    if (!b->dealer)
        return -1;
    int one = 1;    // queue nothing while not connected: a send then fails at once
    if (wire_setup_socket (b->dealer, false, self->max_frame)
        || zmq_setsockopt (b->dealer, ZMQ_IMMEDIATE, &one, sizeof one)
        || (self->ping_ms && wire_heartbeat (b->dealer, (int) self->ping_ms,
                                             (int) self->ping_timeout_ms))
        || curve_client_apply (&self->curve, b->dealer)
        || zmon_open (&b->mon, self->zctx, b->dealer,
                      ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED)
        || zmq_connect (b->dealer, b->ep)) {
        log_error ("cannot connect to broker %s: %s", b->ep, zmq_strerror (errno));
        s_close_dealer (b);
        return -1;
    }
    return 0;
}

//  Connected and heard within heartbeat * liveness. Any thread.
static bool s_heard (const edge_link_t *self, const s_broker_t *b, int64_t now)
{
    int64_t heard = atomic_load (&b->last_heard_ms);
    return atomic_load (&b->connected) && heard && now - heard <= self->dead_after_ms;
}

static bool s_live (const edge_link_t *self, const s_broker_t *b, int64_t now)
{
    return b->dealer && s_heard (self, b, now);
}

//  The live broker holding the fewest of this loop's jobs (ties: round robin), or
//  S_NONE. with_workers: only one whose last PONG counted a worker (a resubmission to
//  a broker that has just started waits until its workers are back).
static uint16_t s_pick (edge_link_t *self, int64_t now, bool with_workers)
{
    uint16_t best = S_NONE;
    for (size_t k = 0; k < self->nbrokers; k++) {
        size_t i = (self->rr + k) % self->nbrokers;
        const s_broker_t *b = &self->brokers[i];
        if (!s_live (self, b, now) || (with_workers && b->workers == 0))
            continue;
        if (best == S_NONE || b->routes < self->brokers[best].routes)
            best = (uint16_t) i;
    }
    self->rr++;
    return best;
}

//  --------------------------------------------------------------- failing

//  Hand a synthesized ERROR(ERR_UNAVAILABLE, why) to a route's request.
static void s_fail_route (edge_link_t *self, const edge_route_t *r, const char *why)
{
    edge_answer_t a = { .cmd = WIRE_C_ERROR };
    a.error = calloc (1, sizeof *a.error);
    char *msg = strdup (why);
    if (!a.error || !msg) {
        free (a.error);
        free (msg);
        a.error = NULL;
        log_error ("out of memory failing job %" PRIu64, r->job_id);
    }
    else {
        aigw__error__init (a.error);
        a.error->job_id = r->job_id;
        a.error->code = AIGW__ERROR_CODE__ERR_UNAVAILABLE;
        a.error->message = msg;
    }
    s_count (self, S_FAILED_ON_DOWN);
    self->fn (r->req, &a, self->fn_arg);
}

static void s_send_cancel (edge_link_t *self, const edge_route_t *r)
{
    Aigw__JobRef ref = AIGW__JOB_REF__INIT;
    ref.job_id = r->job_id;
    if (r->broker < self->nbrokers && self->brokers[r->broker].dealer)
        wire_send (self->brokers[r->broker].dealer, NULL, 0, WIRE_SIDE_CLIENT, WIRE_C_CANCEL,
                   &ref.base, NULL);
    s_count (self, S_CANCELS);
}

//  A route has left the table: its broker holds one job less, its frames go back.
static void s_route_gone (edge_link_t *self, edge_route_t *r)
{
    if (r->broker == S_NONE)
        self->npending--;
    else
    if (r->broker < self->nbrokers && self->brokers[r->broker].routes)
        self->brokers[r->broker].routes--;
    s_route_release (self, r);
}

static void s_drained (const edge_route_t *r, void *arg)
{
    edge_link_t *self = arg;
    edge_route_t copy = *r;
    s_route_gone (self, &copy);
    s_send_cancel (self, &copy);
    s_fail_route (self, &copy, self->fail_why);
}

//  --------------------------------------------------------------- resubmission

typedef struct {
    uint64_t *ids;
    size_t n, cap;
    uint16_t broker;                    // collect the routes of this broker
    bool failed;                        // out of memory
} s_collect_t;

static void s_collect (edge_route_t *r, void *arg)
{
    s_collect_t *c = arg;
    if (r->broker != c->broker)
        return;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        uint64_t *ids = realloc (c->ids, cap * sizeof *ids);
        if (!ids) {
            c->failed = true;
            return;
        }
        c->ids = ids;
        c->cap = cap;
    }
    c->ids[c->n++] = r->job_id;
}

//  Job ids of broker's routes (S_NONE: those waiting to be resubmitted). Caller frees.
static uint64_t *s_routes_of (edge_link_t *self, uint16_t broker, size_t *n)
{
    s_collect_t c = { .broker = broker };
    edge_jobmap_each (self->jobs, s_collect, &c);
    if (c.failed)
        log_error ("out of memory listing the jobs of a lost broker; %zu of them handled",
                   c.n);
    *n = c.n;
    return c.ids;
}

//  End a route with ERROR(why): it is gone from the table before fn runs.
static void s_fail_id (edge_link_t *self, uint64_t job_id, const char *why)
{
    edge_route_t r;
    if (!edge_jobmap_take (self->jobs, job_id, &r))
        return;
    s_route_gone (self, &r);
    s_fail_route (self, &r, why);
}

//  Send the jobs waiting for a broker to the best live one; fail those that waited
//  longer than heartbeat * liveness for any.
static void s_resubmit_pending (edge_link_t *self, int64_t now)
{
    if (self->npending == 0)
        return;
    size_t n;
    uint64_t *ids = s_routes_of (self, S_NONE, &n);
    for (size_t i = 0; i < n; i++) {
        edge_route_t *r = edge_jobmap_get (self->jobs, ids[i]);
        if (!r || r->broker != S_NONE)
            continue;
        uint16_t to = s_pick (self, now, true);
        s_held_t *h = r->held;
        if (to != S_NONE && h
            && wire_send_msgs (self->brokers[to].dealer, NULL, 0, WIRE_SIDE_CLIENT,
                               WIRE_C_SUBMIT, &h->job, &h->payload) == 0) {
            h->resubmitted = true;
            r->broker = to;
            self->brokers[to].routes++;
            self->npending--;
            s_count (self, S_RESUBMITTED);
            log_info ("job %" PRIu64 " resubmitted to broker %s", r->job_id,
                      self->brokers[to].ep);
        }
        else
        if (now - r->lost_ms > self->dead_after_ms)
            s_fail_id (self, ids[i], S_LOST_WHY);
    }
    free (ids);
}

static void s_recv_broker (edge_link_t *self, uint16_t bi);

//  Broker bi is gone (its connection dropped, it went silent, or it restarted): every
//  job it held is settled now. One that has sent nothing to the client yet waits to be
//  resubmitted, once, to a live broker; the others fail.
static void s_broker_lost (edge_link_t *self, uint16_t bi, const char *why, int64_t now)
{
    s_broker_t *b = &self->brokers[bi];
    s_recv_broker (self, bi);           // what it sent before it went comes first
    s_count (self, S_BROKERS_LOST);
    size_t n;
    uint64_t *ids = s_routes_of (self, bi, &n);
    size_t moved = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        edge_route_t *r = edge_jobmap_get (self->jobs, ids[i]);
        if (!r)
            continue;
        if (r->held && !((s_held_t *) r->held)->resubmitted) {
            r->broker = S_NONE;
            r->lost_ms = now;
            self->npending++;
            moved++;
        }
        else {
            s_fail_id (self, ids[i], S_LOST_WHY);
            failed++;
        }
    }
    free (ids);
    b->routes = 0;
    b->instance = 0;
    b->workers = 0;
    if (!self->quiet || n)
        log_warn ("broker %s lost (%s): %zu jobs to resubmit, %zu failed", b->ep, why, moved,
                  failed);
    s_resubmit_pending (self, now);
}

//  --------------------------------------------------------------- input

static void s_pong (edge_link_t *self, uint16_t bi, wire_msg_t *m)
{
    s_broker_t *b = &self->brokers[bi];
    Aigw__BrokerStatus *pb = (Aigw__BrokerStatus *) wire_unpack (&aigw__broker_status__descriptor,
                                                                 &m->body);
    if (!pb) {
        s_count (self, S_BAD);
        return;
    }
    s_count (self, S_PONGS);
    uint64_t instance = pb->has_instance ? pb->instance : 0;
    uint32_t workers = pb->has_workers ? pb->workers : 0;
    //  The status all requests check names come from. A broker without workers does not
    //  replace the view of another live broker that has some, nor the view before it
    //  restarted while its workers come back (heartbeat * liveness)
    int64_t now = aclock_now_ms ();
    bool other = false;
    for (size_t i = 0; i < self->nbrokers; i++)
        other |= i != bi && self->brokers[i].workers > 0 && s_live (self, &self->brokers[i], now);
    bool warming = instance && (instance != b->instance || now - b->instance_ms
                                                            < self->dead_after_ms);
    if (self->box && (workers > 0 || (!other && !warming))) {
        edge_status_t *st = edge_status_new (pb, aclock_now_ms ());
        if (st)
            edge_status_box_set (self->box, &st);
        edge_status_release (&st);
    }
    protobuf_c_message_free_unpacked (&pb->base, NULL);
    //  Another instance behind the same endpoint, with no disconnect seen: it restarted,
    //  and the jobs the old one held are gone
    if (b->instance && instance && instance != b->instance) {
        s_count (self, S_RESTARTS);
        s_broker_lost (self, bi, "it restarted", aclock_now_ms ());
    }
    if (instance != b->instance)
        b->instance_ms = now;
    b->instance = instance;
    b->workers = workers;
    s_resubmit_pending (self, aclock_now_ms ());
}

//  Decode an answer body into a; returns its job_id, or 0 when malformed.
static uint64_t s_decode (wire_msg_t *m, edge_answer_t *a)
{
    memset (a, 0, sizeof *a);
    a->cmd = m->cmd;
    if (m->cmd == WIRE_C_RESULT) {
        a->result = (Aigw__Result *) wire_unpack (&aigw__result__descriptor, &m->body);
        return a->result ? a->result->job_id : 0;
    }
    if (m->cmd == WIRE_C_ERROR) {
        a->error = (Aigw__Error *) wire_unpack (&aigw__error__descriptor, &m->body);
        return a->error ? a->error->job_id : 0;
    }
    if (m->cmd == WIRE_C_CHUNK) {
        a->chunk = (Aigw__Chunk *) wire_unpack (&aigw__chunk__descriptor, &m->body);
        return a->chunk ? a->chunk->job_id : 0;
    }
    return 0;
}

//  RESULT and ERROR end the job's route; CHUNK keeps it (and ends its chance of a
//  resubmission: the client has seen output). Only the broker holding the job is heard.
static void s_answer (edge_link_t *self, uint16_t bi, wire_msg_t *m)
{
    edge_answer_t a;
    uint64_t job_id = s_decode (m, &a);
    if (!job_id) {
        edge_link_answer_reset (&a);
        s_count (self, S_BAD);
        return;
    }
    edge_route_t *r = edge_jobmap_get (self->jobs, job_id);
    if (!r || r->broker != bi) {
        edge_link_answer_reset (&a);
        s_count (self, S_UNROUTED);
        return;
    }
    edge_route_t route;
    if (m->cmd == WIRE_C_CHUNK)
        s_route_release (self, r);
    else {
        edge_jobmap_take (self->jobs, job_id, &route);
        s_route_gone (self, &route);
        r = &route;
    }
    s_count (self, m->cmd == WIRE_C_RESULT ? S_RESULTS : m->cmd == WIRE_C_ERROR ? S_ERRORS
                                                                               : S_CHUNKS);
    self->fn (r->req, &a, self->fn_arg);
}

static void s_spend (edge_link_t *self, wire_msg_t *m)
{
    Aigw__Spend *sp = (Aigw__Spend *) wire_unpack (&aigw__spend__descriptor, &m->body);
    if (!sp) {
        s_count (self, S_BAD);
        return;
    }
    s_count (self, S_SPENDS);
    if (self->spend_fn)
        self->spend_fn (sp, self->spend_arg);
    protobuf_c_message_free_unpacked (&sp->base, NULL);
}

static void s_broker_message (edge_link_t *self, uint16_t bi, wire_msg_t *m)
{
    atomic_store (&self->brokers[bi].last_heard_ms, aclock_now_ms ());
    if (m->side != WIRE_SIDE_CLIENT || !wire_cmd_valid (WIRE_SIDE_CLIENT, m->cmd, false))
        s_count (self, S_BAD);
    else
    if (m->cmd == WIRE_C_PONG)
        s_pong (self, bi, m);
    else
    if (m->cmd == WIRE_C_SPEND)
        s_spend (self, m);
    else
        s_answer (self, bi, m);
}

static void s_recv_broker (edge_link_t *self, uint16_t bi)
{
    while (self->brokers[bi].dealer) {
        wire_msg_t m;
        int rc = wire_recv (self->brokers[bi].dealer, false, &m);
        if (rc == -1)
            break;
        if (rc == -2) {
            s_count (self, S_BAD);
            continue;
        }
        s_broker_message (self, bi, &m);
        wire_msg_close (&m);
    }
}

//  CONNECTED: ping at once, so a (re)started broker is in use within a round trip.
//  DISCONNECTED: the broker died or its host is cut off (ZMTP ping timeout).
static void s_recv_monitor (edge_link_t *self, uint16_t bi)
{
    s_broker_t *b = &self->brokers[bi];
    zmon_event_t ev;
    while (zmon_next (&b->mon, &ev) == 0) {
        if (ev.event == ZMQ_EVENT_CONNECTED) {
            atomic_store (&b->connected, true);
            b->next_ping_ms = 0;
        }
        else
        if (ev.event == ZMQ_EVENT_DISCONNECTED && atomic_load (&b->connected)) {
            atomic_store (&b->connected, false);
            atomic_store (&b->last_heard_ms, 0);
            s_broker_lost (self, bi, "disconnected", aclock_now_ms ());
        }
    }
}

void edge_link_recv (edge_link_t *self)
{
    for (uint16_t i = 0; i < self->nbrokers; i++) {
        s_recv_monitor (self, i);
        s_recv_broker (self, i);
    }
}

//  --------------------------------------------------------------- ticks

//  A broker silent for heartbeat * liveness is lost; a socket that never came up in
//  that time is made again.
static void s_check_liveness (edge_link_t *self, uint16_t bi, int64_t now)
{
    s_broker_t *b = &self->brokers[bi];
    int64_t heard = atomic_load (&b->last_heard_ms);
    bool up = s_live (self, b, now);
    if (up && !b->was_up && !self->quiet)
        log_info ("broker link up (%s)", b->ep);
    if (!up && b->was_up && !self->quiet) {
        if (heard)
            log_warn ("broker link down: %s silent for %lld ms; %zu waiting jobs", b->ep,
                      (long long) (now - heard), b->routes);
        else
            log_warn ("broker link down: %s disconnected", b->ep);
    }
    bool went_down = b->was_up && !up;
    b->was_up = up;
    if (went_down && b->routes)
        s_broker_lost (self, bi, "silent", now);
    if (up || now - b->since_ms < self->dead_after_ms)
        return;
    s_count (self, S_RECONNECTS);
    s_new_dealer (self, b);
}

static int64_t s_ping (edge_link_t *self, s_broker_t *b, int64_t now)
{
    if (now >= b->next_ping_ms) {
        //  A PING refused (no connection yet: ZMQ_IMMEDIATE) is retried soon, so a
        //  new link comes up within a few ms of the broker, not a heartbeat later
        bool sent = b->dealer
            && wire_send (b->dealer, NULL, 0, WIRE_SIDE_CLIENT, WIRE_C_PING, NULL, NULL) == 0;
        if (sent)
            s_count (self, S_PINGS);
        int64_t fast = self->heartbeat_ms < S_RETRY_PING_MS ? self->heartbeat_ms
                                                              : S_RETRY_PING_MS;
        b->next_ping_ms = now + (sent && !self->npending ? self->heartbeat_ms : fast);
    }
    return b->next_ping_ms;
}

int64_t edge_link_tick (edge_link_t *self, int64_t now)
{
    int64_t next = now + self->heartbeat_ms;
    for (uint16_t i = 0; i < self->nbrokers; i++) {
        int64_t at = s_ping (self, &self->brokers[i], now);
        if (at < next)
            next = at;
        s_check_liveness (self, i, now);
    }
    s_resubmit_pending (self, now);
    return next;
}

//  --------------------------------------------------------------- life cycle

edge_link_t *edge_link_new (const cfg_t *cfg, void *zctx, edge_status_box_t *box,
                            edge_link_fn *fn, void *arg)
{
    edge_link_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->zctx = zctx;
    self->box = box;
    self->fn = fn;
    self->fn_arg = arg;
    char eps[CFG_BROKERS_MAX][CFG_STR_MAX];
    size_t n = cfg_endpoints (cfg->edge.broker[0] ? cfg->edge.broker : cfg->broker.frontend,
                              eps, CFG_BROKERS_MAX);
    self->nbrokers = n < CFG_BROKERS_MAX ? n : CFG_BROKERS_MAX;
    self->heartbeat_ms = cfg->broker.heartbeat_ms ? cfg->broker.heartbeat_ms : 1000;
    self->dead_after_ms = self->heartbeat_ms * (cfg->broker.liveness ? cfg->broker.liveness : 3);
    self->max_frame = cfg->broker.max_frame;
    self->ping_ms = cfg->fabric.ping_ms;
    self->ping_timeout_ms = cfg->fabric.ping_timeout_ms;
    if (self->nbrokers == 0) {
        log_error ("edge/broker: no broker endpoint");
        free (self);
        return NULL;
    }
    char err[1024];
    //  Every endpoint passes protected mode; the keys (loaded again each time) are the
    //  same for every broker
    for (size_t i = 0; i < self->nbrokers; i++) {
        curve_client_wipe (&self->curve);
        if (curve_client_load (&self->curve, cfg, cfg->edge.cert, "edge/cert", eps[i], err,
                               sizeof err)) {
            log_error ("%s", err);
            free (self);
            return NULL;
        }
    }
    self->jobs = edge_jobmap_new ();
    if (!self->jobs) {
        edge_link_destroy (&self);
        return NULL;
    }
    for (size_t i = 0; i < self->nbrokers; i++) {
        snprintf (self->brokers[i].ep, sizeof self->brokers[i].ep, "%.*s",
                  (int) sizeof self->brokers[i].ep - 1, eps[i]);
        if (s_new_dealer (self, &self->brokers[i])) {
            edge_link_destroy (&self);
            return NULL;
        }
    }
    return self;
}

static void s_drop (const edge_route_t *r, void *arg)
{
    edge_route_t copy = *r;
    s_route_release (arg, &copy);
}

void edge_link_destroy (edge_link_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    edge_link_t *self = *self_p;
    *self_p = NULL;
    for (size_t i = 0; i < self->nbrokers; i++)
        s_close_dealer (&self->brokers[i]);
    if (self->jobs)
        edge_jobmap_drain (self->jobs, s_drop, self);
    edge_jobmap_destroy (&self->jobs);
    while (self->free_held) {
        s_held_t *h = self->free_held;
        self->free_held = h->next;
        free (h);
    }
    curve_client_wipe (&self->curve);
    free (self);
}

void edge_link_on_spend (edge_link_t *self, edge_spend_fn *fn, void *arg)
{
    self->spend_fn = fn;
    self->spend_arg = arg;
}

void edge_link_set_quiet (edge_link_t *self, bool quiet)
{
    self->quiet = quiet;
}

size_t edge_link_poll_items (edge_link_t *self, zmq_pollitem_t *items, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < self->nbrokers; i++) {
        s_broker_t *b = &self->brokers[i];
        void *socks[2] = { b->dealer, zmon_socket (&b->mon) };
        for (size_t k = 0; k < 2; k++)
            if (socks[k] && n < cap)
                items[n++] = (zmq_pollitem_t) { socks[k], 0, ZMQ_POLLIN, 0 };
    }
    return n;
}

//  --------------------------------------------------------------- jobs

int edge_link_submit (edge_link_t *self, const Aigw__Job *job, const void *payload,
                      size_t len, void *req)
{
    int64_t now = aclock_now_ms ();
    uint16_t bi = s_pick (self, now, true);
    if (bi == S_NONE)
        bi = s_pick (self, now, false);
    if (bi == S_NONE) {
        s_count (self, S_SUBMIT_FAILED);
        return -1;
    }
    s_held_t *h = s_held_new (self);
    if (!h || wire_pack (&job->base, &h->job) || zmq_msg_init_size (&h->payload, len)) {
        s_held_free (self, h);
        s_count (self, S_SUBMIT_FAILED);
        return -1;
    }
    if (len)
        memcpy (zmq_msg_data (&h->payload), payload, len);
    if (edge_jobmap_put (self->jobs, job->job_id, req, now)) {
        s_held_free (self, h);
        return -1;
    }
    if (wire_send_msgs (self->brokers[bi].dealer, NULL, 0, WIRE_SIDE_CLIENT, WIRE_C_SUBMIT,
                        &h->job, &h->payload)) {
        edge_jobmap_take (self->jobs, job->job_id, NULL);
        s_held_free (self, h);
        s_count (self, S_SUBMIT_FAILED);
        return -1;
    }
    edge_route_t *r = edge_jobmap_get (self->jobs, job->job_id);
    r->held = h;
    r->broker = bi;
    self->brokers[bi].routes++;
    s_count (self, S_SUBMITTED);
    return 0;
}

void edge_link_cancel (edge_link_t *self, uint64_t job_id)
{
    edge_route_t r;
    if (!edge_jobmap_take (self->jobs, job_id, &r)) {
        r = (edge_route_t) { .job_id = job_id, .broker = S_NONE };
        //  Unknown here (already answered): a CANCEL to every broker is harmless
        for (uint16_t i = 0; i < self->nbrokers; i++) {
            r.broker = i;
            s_send_cancel (self, &r);
        }
        return;
    }
    s_route_gone (self, &r);
    s_send_cancel (self, &r);
}

void edge_link_fail_all (edge_link_t *self, const char *why)
{
    self->fail_why = why ? why : "job abandoned";
    edge_jobmap_drain (self->jobs, s_drained, self);
}

//  --------------------------------------------------------------- any thread

bool edge_link_up (edge_link_t *self)
{
    size_t live;
    edge_link_brokers (self, &live);
    return live > 0;
}

size_t edge_link_brokers (edge_link_t *self, size_t *live)
{
    if (live) {
        int64_t now = aclock_now_ms ();
        *live = 0;
        for (size_t i = 0; i < self->nbrokers; i++)
            if (s_heard (self, &self->brokers[i], now))
                (*live)++;
    }
    return self->nbrokers;
}

size_t edge_link_waiting (edge_link_t *self)
{
    return edge_jobmap_size (self->jobs);
}

void edge_link_stats (edge_link_t *self, edge_link_stats_t *out)
{
    uint64_t *dst = (uint64_t *) out;
    for (size_t i = 0; i < S_STAT_COUNT; i++)
        dst[i] = atomic_load_explicit (&self->stats[i], memory_order_relaxed);
}

void edge_link_answer_reset (edge_answer_t *a)
{
    if (!a)
        return;
    if (a->result)
        aigw__result__free_unpacked (a->result, NULL);
    if (a->error)
        aigw__error__free_unpacked (a->error, NULL);
    if (a->chunk)
        aigw__chunk__free_unpacked (a->chunk, NULL);
    memset (a, 0, sizeof *a);
}
