// Broker link of one event loop: DEALER to the broker, routes by job_id (decoded with
// the generated protobuf code), PING/PONG liveness and the shared status snapshot.
#include "link.h"
#include "curve.h"
#include "jobmap.h"
#include "wire.h"
#include "log.h"
#include "aclock.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_RETRY_PING_MS 20             // PING retry while the socket has no connection
#define S_STAT_COUNT (sizeof (edge_link_stats_t) / sizeof (uint64_t))

//  Counter slots, same order as edge_link_stats_t
enum {
    S_SUBMITTED, S_SUBMIT_FAILED, S_RESULTS, S_ERRORS, S_CHUNKS, S_CANCELS, S_UNROUTED,
    S_BAD, S_PINGS, S_PONGS, S_RECONNECTS, S_FAILED_ON_DOWN, S_SPENDS
};

struct _edge_link_t {
    void *zctx;                         // not owned
    void *dealer;                       // broker frontend DEALER
    curve_client_t curve;               // edge/cert keys (fabric/curve), for every DEALER
    char broker_ep[CFG_STR_MAX];
    int64_t heartbeat_ms;
    int64_t dead_after_ms;              // heartbeat * liveness
    int64_t max_frame;
    edge_status_box_t *box;             // not owned; may be NULL
    edge_link_fn *fn;
    void *fn_arg;
    edge_spend_fn *spend_fn;            // SPEND (a loser's late usage); may be NULL
    void *spend_arg;
    edge_jobmap_t *jobs;
    int64_t dealer_since_ms;            // when the current DEALER was created
    int64_t next_ping_ms;
    bool was_up;
    bool quiet;                         // no link up/down log lines (all but one loop)
    const char *fail_why;               // message while failing every job
    _Atomic int64_t last_heard_ms;      // 0 = never
    _Atomic uint64_t stats[S_STAT_COUNT];
};

static void s_count (edge_link_t *self, int slot)
{
    atomic_fetch_add_explicit (&self->stats[slot], 1, memory_order_relaxed);
}

static int s_new_dealer (edge_link_t *self)
{
    if (self->dealer)
        zmq_close (self->dealer);
    self->dealer = zmq_socket (self->zctx, ZMQ_DEALER);
    self->dealer_since_ms = aclock_now_ms ();
    if (!self->dealer)
        return -1;
    int one = 1;    // queue nothing while not connected: a send then fails at once
    if (wire_setup_socket (self->dealer, false, self->max_frame)
        || zmq_setsockopt (self->dealer, ZMQ_IMMEDIATE, &one, sizeof one)
        || curve_client_apply (&self->curve, self->dealer)
        || zmq_connect (self->dealer, self->broker_ep)) {
        log_error ("cannot connect to broker %s: %s", self->broker_ep, zmq_strerror (errno));
        zmq_close (self->dealer);
        self->dealer = NULL;
        return -1;
    }
    return 0;
}

//  Hand a synthesized ERROR(ERR_UNAVAILABLE) to the request of a route.
static void s_fail_route (const edge_route_t *r, void *arg)
{
    edge_link_t *self = arg;
    edge_answer_t a = { .cmd = WIRE_C_ERROR };
    a.error = calloc (1, sizeof *a.error);
    char *msg = strdup (self->fail_why);
    if (!a.error || !msg) {
        free (a.error);
        free (msg);
        a.error = NULL;
        log_error ("out of memory failing job %llu", (unsigned long long) r->job_id);
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

static void s_send_cancel (edge_link_t *self, uint64_t job_id)
{
    Aigw__JobRef ref = AIGW__JOB_REF__INIT;
    ref.job_id = job_id;
    if (self->dealer)
        wire_send (self->dealer, NULL, 0, WIRE_SIDE_CLIENT, WIRE_C_CANCEL, &ref.base, NULL);
    s_count (self, S_CANCELS);
}

static void s_abandon_route (const edge_route_t *r, void *arg)
{
    s_send_cancel (arg, r->job_id);
    s_fail_route (r, arg);
}

static void s_pong (edge_link_t *self, wire_msg_t *m)
{
    Aigw__BrokerStatus *pb = (Aigw__BrokerStatus *) wire_unpack (&aigw__broker_status__descriptor,
                                                                 &m->body);
    if (!pb) {
        s_count (self, S_BAD);
        return;
    }
    s_count (self, S_PONGS);
    edge_status_t *st = edge_status_new (pb, aclock_now_ms ());
    protobuf_c_message_free_unpacked (&pb->base, NULL);
    if (st && self->box)
        edge_status_box_set (self->box, &st);
    edge_status_release (&st);
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

//  RESULT and ERROR end the job's route; CHUNK keeps it.
static void s_answer (edge_link_t *self, wire_msg_t *m)
{
    edge_answer_t a;
    uint64_t job_id = s_decode (m, &a);
    if (!job_id) {
        edge_link_answer_reset (&a);
        s_count (self, S_BAD);
        return;
    }
    edge_route_t route;
    const edge_route_t *r = NULL;
    if (m->cmd != WIRE_C_CHUNK) {
        if (edge_jobmap_take (self->jobs, job_id, &route))
            r = &route;
    }
    else
        r = edge_jobmap_get (self->jobs, job_id);
    if (!r) {
        edge_link_answer_reset (&a);
        s_count (self, S_UNROUTED);
        return;
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

static void s_broker_message (edge_link_t *self, wire_msg_t *m)
{
    atomic_store (&self->last_heard_ms, aclock_now_ms ());
    if (m->side != WIRE_SIDE_CLIENT || !wire_cmd_valid (WIRE_SIDE_CLIENT, m->cmd, false))
        s_count (self, S_BAD);
    else
    if (m->cmd == WIRE_C_PONG)
        s_pong (self, m);
    else
    if (m->cmd == WIRE_C_SPEND)
        s_spend (self, m);
    else
        s_answer (self, m);
}

void edge_link_on_spend (edge_link_t *self, edge_spend_fn *fn, void *arg)
{
    self->spend_fn = fn;
    self->spend_arg = arg;
}

void edge_link_recv (edge_link_t *self)
{
    while (self->dealer) {
        wire_msg_t m;
        int rc = wire_recv (self->dealer, false, &m);
        if (rc == -1)
            break;
        if (rc == -2) {
            s_count (self, S_BAD);
            continue;
        }
        s_broker_message (self, &m);
        wire_msg_close (&m);
    }
}

//  Broker silent for heartbeat * liveness: fail waiting jobs, start a fresh socket.
static void s_check_liveness (edge_link_t *self, int64_t now)
{
    int64_t heard = atomic_load (&self->last_heard_ms);
    bool up = heard && now - heard <= self->dead_after_ms;
    if (up && !self->was_up && !self->quiet)
        log_info ("broker link up (%s)", self->broker_ep);
    if (!up && self->was_up && !self->quiet)
        log_warn ("broker link down: %s silent for %lld ms; failing %zu waiting jobs",
                  self->broker_ep, (long long) (now - heard), edge_jobmap_size (self->jobs));
    self->was_up = up;
    if (up || now - self->dealer_since_ms < self->dead_after_ms)
        return;
    self->fail_why = "lost the connection to the broker";
    edge_jobmap_drain (self->jobs, s_fail_route, self);
    s_count (self, S_RECONNECTS);
    s_new_dealer (self);
}

int64_t edge_link_tick (edge_link_t *self, int64_t now)
{
    if (now >= self->next_ping_ms) {
        //  A PING refused (no connection yet: ZMQ_IMMEDIATE) is retried soon, so a
        //  new link comes up within a few ms of the broker, not a heartbeat later
        bool sent = self->dealer
            && wire_send (self->dealer, NULL, 0, WIRE_SIDE_CLIENT, WIRE_C_PING, NULL, NULL) == 0;
        if (sent)
            s_count (self, S_PINGS);
        int64_t retry = self->heartbeat_ms < S_RETRY_PING_MS ? self->heartbeat_ms : S_RETRY_PING_MS;
        self->next_ping_ms = now + (sent ? self->heartbeat_ms : retry);
    }
    s_check_liveness (self, now);
    return self->next_ping_ms;
}

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
    snprintf (self->broker_ep, sizeof self->broker_ep, "%s",
              cfg->edge.broker[0] ? cfg->edge.broker : cfg->broker.frontend);
    self->heartbeat_ms = cfg->broker.heartbeat_ms ? cfg->broker.heartbeat_ms : 1000;
    self->dead_after_ms = self->heartbeat_ms * (cfg->broker.liveness ? cfg->broker.liveness : 3);
    self->max_frame = cfg->broker.max_frame;
    char err[1024];
    if (curve_client_load (&self->curve, cfg, cfg->edge.cert, "edge/cert", self->broker_ep, err,
                           sizeof err)) {
        log_error ("%s", err);
        edge_link_destroy (&self);
        return NULL;
    }
    self->jobs = edge_jobmap_new ();
    if (!self->jobs || s_new_dealer (self)) {
        edge_link_destroy (&self);
        return NULL;
    }
    self->next_ping_ms = aclock_now_ms ();
    return self;
}

void edge_link_destroy (edge_link_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    edge_link_t *self = *self_p;
    *self_p = NULL;
    if (self->dealer)
        zmq_close (self->dealer);
    edge_jobmap_destroy (&self->jobs);
    curve_client_wipe (&self->curve);
    free (self);
}

void edge_link_set_quiet (edge_link_t *self, bool quiet)
{
    self->quiet = quiet;
}

void *edge_link_socket (edge_link_t *self)
{
    return self->dealer;
}

int edge_link_submit (edge_link_t *self, const Aigw__Job *job, const void *payload,
                      size_t len, void *req)
{
    if (!self->dealer || edge_jobmap_put (self->jobs, job->job_id, req, aclock_now_ms ()))
        return -1;
    if (wire_send_bytes (self->dealer, NULL, 0, WIRE_SIDE_CLIENT, WIRE_C_SUBMIT, &job->base,
                         payload, len)) {
        edge_jobmap_take (self->jobs, job->job_id, NULL);
        s_count (self, S_SUBMIT_FAILED);
        return -1;
    }
    s_count (self, S_SUBMITTED);
    return 0;
}

void edge_link_cancel (edge_link_t *self, uint64_t job_id)
{
    edge_jobmap_take (self->jobs, job_id, NULL);
    s_send_cancel (self, job_id);
}

void edge_link_fail_all (edge_link_t *self, const char *why)
{
    self->fail_why = why ? why : "job abandoned";
    edge_jobmap_drain (self->jobs, s_abandon_route, self);
}

bool edge_link_up (edge_link_t *self)
{
    int64_t heard = atomic_load (&self->last_heard_ms);
    return heard && aclock_now_ms () - heard <= self->dead_after_ms;
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
