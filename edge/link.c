// Broker link thread: DEALER to the broker, inproc ROUTER to handler threads, routing
// by job_id, PING/PONG liveness and the shared status snapshot.
#include "link.h"
#include "jobmap.h"
#include "wire.h"
#include "log.h"
#include "aclock.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_STAT_COUNT (sizeof (edge_link_stats_t) / sizeof (uint64_t))

//  Counter slots, same order as edge_link_stats_t
enum {
    S_SUBMITTED, S_SUBMIT_FAILED, S_RESULTS, S_ERRORS, S_CHUNKS, S_CANCELS, S_UNROUTED,
    S_LATE, S_HANDLER_GONE, S_BAD, S_PINGS, S_PONGS, S_RECONNECTS, S_FAILED_ON_DOWN
};

struct _edge_client_t {
    edge_link_t *link;
    void *sock;                         // DEALER connected to the link's ROUTER
    edge_client_t *prev, *next;         // in link->clients
};

struct _edge_link_t {
    void *ctx;                          // zmq context of the link and its clients
    pthread_t thread;
    bool started;
    void *ctl_main;                     // PAIR: destroy sends "$TERM" here
    void *ctl;                          // PAIR: the thread's end
    void *router;                       // inproc ROUTER, handler side
    void *dealer;                       // broker frontend DEALER
    char inproc[64];
    char broker_ep[CFG_STR_MAX];
    int64_t heartbeat_ms;
    int64_t dead_after_ms;              // heartbeat * liveness
    int64_t max_frame;
    _Atomic uint64_t next_job_id;
    _Atomic int64_t last_heard_ms;      // 0 = never
    _Atomic uint64_t stats[S_STAT_COUNT];
    pthread_mutex_t status_lock;
    edge_status_t *status;              // latest PONG
    pthread_mutex_t clients_lock;
    edge_client_t *clients;
    _Atomic uint32_t next_client;
    //  Owned by the link thread
    edge_jobmap_t *jobs;
    int64_t dealer_since_ms;            // when the current DEALER was created
    bool was_up;
    char fail_why[128];                 // message for edge_link_fail_all
};

static void s_count (edge_link_t *self, int slot)
{
    atomic_fetch_add_explicit (&self->stats[slot], 1, memory_order_relaxed);
}

//  job_id is field 1 (varint) of Job, JobRef, Result, Error and Chunk. Scan the
//  top-level fields for it without decoding the rest (bodies may be large).
static int s_varint (const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t) (b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

static int s_job_id (zmq_msg_t *body, uint64_t *out)
{
    const uint8_t *p = zmq_msg_data (body);
    const uint8_t *end = p + zmq_msg_size (body);
    while (p < end) {
        uint64_t key, v;
        if (s_varint (&p, end, &key))
            return -1;
        unsigned wt = (unsigned) (key & 7);
        if (wt == 0) {
            if (s_varint (&p, end, &v))
                return -1;
            if ((key >> 3) == 1) {
                *out = v;
                return v ? 0 : -1;
            }
        }
        else
        if (wt == 2) {
            if (s_varint (&p, end, &v) || v > (uint64_t) (end - p))
                return -1;
            p += v;
        }
        else
        if (wt == 1 || wt == 5) {
            size_t n = wt == 1 ? 8 : 4;
            if ((size_t) (end - p) < n)
                return -1;
            p += n;
        }
        else
            return -1;
    }
    return -1;
}

static void *s_socket (edge_link_t *self, int type, bool router)
{
    void *sock = zmq_socket (self->ctx, type);
    if (sock && wire_setup_socket (sock, router, self->max_frame)) {
        zmq_close (sock);
        return NULL;
    }
    return sock;
}

static int s_new_dealer (edge_link_t *self)
{
    if (self->dealer)
        zmq_close (self->dealer);
    self->dealer = s_socket (self, ZMQ_DEALER, false);
    self->dealer_since_ms = aclock_now_ms ();
    if (!self->dealer)
        return -1;
    int one = 1;    // queue nothing while not connected: a send then fails at once
    zmq_setsockopt (self->dealer, ZMQ_IMMEDIATE, &one, sizeof one);
    if (zmq_connect (self->dealer, self->broker_ep)) {
        log_error ("cannot connect to broker %s: %s", self->broker_ep, zmq_strerror (errno));
        return -1;
    }
    return 0;
}

//  Send [AIGWC1][cmd][body][payload?] to the broker, moving the frames.
static int s_forward_to_broker (edge_link_t *self, uint8_t cmd, wire_msg_t *m)
{
    if (!self->dealer)
        return -1;
    if (zmq_send (self->dealer, WIRE_CLIENT, WIRE_HEADER_LEN, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -1;
    zmq_send (self->dealer, &cmd, 1, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_msg_send (&m->body, self->dealer, (m->has_payload ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT);
    if (m->has_payload)
        zmq_msg_send (&m->payload, self->dealer, ZMQ_DONTWAIT);
    return 0;
}

//  Send an answer [hid][AIGWC1][cmd][body] to a handler, moving the body frame.
static int s_forward_to_handler (edge_link_t *self, const edge_route_t *r, uint8_t cmd,
                                 zmq_msg_t *body)
{
    if (zmq_send (self->router, r->hid, r->hid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -1;
    zmq_send (self->router, WIRE_CLIENT, WIRE_HEADER_LEN, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send (self->router, &cmd, 1, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    return zmq_msg_send (body, self->router, ZMQ_DONTWAIT) < 0 ? -1 : 0;
}

//  Answer a job ourselves with ERROR(ERR_UNAVAILABLE).
static void s_fail_job (edge_link_t *self, const uint8_t *hid, size_t hid_len, uint64_t job_id,
                        const char *why)
{
    Aigw__Error e = AIGW__ERROR__INIT;
    e.job_id = job_id;
    e.code = AIGW__ERROR_CODE__ERR_UNAVAILABLE;
    e.message = (char *) why;
    if (wire_send (self->router, hid, hid_len, WIRE_SIDE_CLIENT, WIRE_C_ERROR, &e.base, NULL))
        s_count (self, S_HANDLER_GONE);
}

static void s_handler_submit (edge_link_t *self, wire_msg_t *m, uint64_t job_id)
{
    if (edge_jobmap_put (self->jobs, job_id, m->id, m->id_len, aclock_now_ms ())) {
        s_fail_job (self, m->id, m->id_len, job_id, "edge out of memory");
        return;
    }
    s_count (self, S_SUBMITTED);
    if (s_forward_to_broker (self, WIRE_C_SUBMIT, m)) {
        edge_jobmap_take (self->jobs, job_id, NULL);
        s_count (self, S_SUBMIT_FAILED);
        s_fail_job (self, m->id, m->id_len, job_id, "the broker is not connected");
    }
}

static void s_handler_message (edge_link_t *self, wire_msg_t *m)
{
    uint64_t job_id = 0;
    if (m->side != WIRE_SIDE_CLIENT || s_job_id (&m->body, &job_id)) {
        s_count (self, S_BAD);
        return;
    }
    if (m->cmd == WIRE_C_SUBMIT)
        s_handler_submit (self, m, job_id);
    else
    if (m->cmd == WIRE_C_CANCEL) {
        edge_jobmap_take (self->jobs, job_id, NULL);
        s_count (self, S_CANCELS);
        s_forward_to_broker (self, WIRE_C_CANCEL, m);
    }
    else
        s_count (self, S_BAD);
}

static void s_drain_router (edge_link_t *self)
{
    while (true) {
        wire_msg_t m;
        int rc = wire_recv (self->router, true, &m);
        if (rc == -1)
            break;
        if (rc == -2) {
            s_count (self, S_BAD);
            continue;
        }
        s_handler_message (self, &m);
        wire_msg_close (&m);
    }
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
    if (!st)
        return;
    pthread_mutex_lock (&self->status_lock);
    edge_status_t *old = self->status;
    self->status = st;
    pthread_mutex_unlock (&self->status_lock);
    edge_status_release (&old);
}

//  RESULT and ERROR end the job's route; CHUNK keeps it.
static void s_answer (edge_link_t *self, wire_msg_t *m)
{
    uint64_t job_id = 0;
    if (s_job_id (&m->body, &job_id)) {
        s_count (self, S_BAD);
        return;
    }
    edge_route_t route;
    bool final = m->cmd != WIRE_C_CHUNK;
    const edge_route_t *r = NULL;
    if (final && edge_jobmap_take (self->jobs, job_id, &route))
        r = &route;
    else
    if (!final)
        r = edge_jobmap_get (self->jobs, job_id);
    if (!r) {
        s_count (self, S_UNROUTED);
        return;
    }
    //  Counted before the send so a waiter that has its answer sees the count
    s_count (self, m->cmd == WIRE_C_RESULT ? S_RESULTS : m->cmd == WIRE_C_ERROR ? S_ERRORS
                                                                               : S_CHUNKS);
    if (s_forward_to_handler (self, r, m->cmd, &m->body))
        s_count (self, S_HANDLER_GONE);
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
        s_answer (self, m);
}

static void s_drain_dealer (edge_link_t *self)
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

static void s_fail_route (const edge_route_t *r, void *arg)
{
    edge_link_t *self = arg;
    s_count (self, S_FAILED_ON_DOWN);
    s_fail_job (self, r->hid, r->hid_len, r->job_id, "lost the connection to the broker");
}

//  Shutdown: fail the waiting job and tell the broker to stop working on it.
static void s_abandon_route (const edge_route_t *r, void *arg)
{
    edge_link_t *self = arg;
    Aigw__JobRef ref = AIGW__JOB_REF__INIT;
    ref.job_id = r->job_id;
    if (self->dealer)
        wire_send (self->dealer, NULL, 0, WIRE_SIDE_CLIENT, WIRE_C_CANCEL, &ref.base, NULL);
    s_count (self, S_CANCELS);
    s_fail_job (self, r->hid, r->hid_len, r->job_id, self->fail_why);
}

//  A command from the creating thread: "$TERM" (returns true) or "FAIL".
static bool s_control (edge_link_t *self)
{
    char cmd[16] = "";
    int n = zmq_recv (self->ctl, cmd, sizeof cmd - 1, ZMQ_DONTWAIT);
    if (n < 0)
        return false;
    if (n == 4 && memcmp (cmd, "FAIL", 4) == 0) {
        edge_jobmap_drain (self->jobs, s_abandon_route, self);
        return false;
    }
    return true;
}

//  Broker silent for heartbeat * liveness: fail waiting jobs, start a fresh socket.
static void s_check_liveness (edge_link_t *self, int64_t now)
{
    int64_t heard = atomic_load (&self->last_heard_ms);
    bool up = heard && now - heard <= self->dead_after_ms;
    if (up && !self->was_up)
        log_info ("broker link up (%s)", self->broker_ep);
    if (!up && self->was_up)
        log_warn ("broker link down: %s silent for %lld ms; failing %zu waiting jobs",
                  self->broker_ep, (long long) (now - heard), edge_jobmap_size (self->jobs));
    self->was_up = up;
    if (up || now - self->dealer_since_ms < self->dead_after_ms)
        return;
    edge_jobmap_drain (self->jobs, s_fail_route, self);
    s_count (self, S_RECONNECTS);
    s_new_dealer (self);
}

static void s_ping (edge_link_t *self)
{
    if (self->dealer
        && wire_send (self->dealer, NULL, 0, WIRE_SIDE_CLIENT, WIRE_C_PING, NULL, NULL) == 0)
        s_count (self, S_PINGS);
}

static void *s_run (void *arg)
{
    edge_link_t *self = arg;
    int64_t next_ping = aclock_now_ms ();
    while (true) {
        int64_t now = aclock_now_ms ();
        if (now >= next_ping) {
            s_ping (self);
            next_ping = now + self->heartbeat_ms;
        }
        zmq_pollitem_t items[] = {
            { self->ctl, 0, ZMQ_POLLIN, 0 },
            { self->router, 0, ZMQ_POLLIN, 0 },
            { self->dealer, 0, ZMQ_POLLIN, 0 },
        };
        int n = self->dealer ? 3 : 2;
        if (zmq_poll (items, n, next_ping - now) < 0 && errno != EINTR)
            break;
        if ((items[0].revents & ZMQ_POLLIN) && s_control (self))
            break;
        if (items[1].revents & ZMQ_POLLIN)
            s_drain_router (self);
        if (n == 3 && (items[2].revents & ZMQ_POLLIN))
            s_drain_dealer (self);
        s_check_liveness (self, aclock_now_ms ());
    }
    edge_jobmap_drain (self->jobs, s_fail_route, self);
    return NULL;
}

static int s_bind_sockets (edge_link_t *self)
{
    char ep[96];
    snprintf (self->inproc, sizeof self->inproc, "inproc://aigw-edge-link-%p", (void *) self);
    snprintf (ep, sizeof ep, "%s-ctl", self->inproc);
    self->router = s_socket (self, ZMQ_ROUTER, true);
    self->ctl_main = zmq_socket (self->ctx, ZMQ_PAIR);
    self->ctl = zmq_socket (self->ctx, ZMQ_PAIR);
    if (!self->router || !self->ctl_main || !self->ctl)
        return -1;
    if (zmq_bind (self->router, self->inproc) || zmq_bind (self->ctl_main, ep)
        || zmq_connect (self->ctl, ep))
        return -1;
    return 0;
}

edge_link_t *edge_link_new (const cfg_t *cfg)
{
    edge_link_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    pthread_mutex_init (&self->status_lock, NULL);
    pthread_mutex_init (&self->clients_lock, NULL);
    snprintf (self->broker_ep, sizeof self->broker_ep, "%s",
              cfg->edge.broker[0] ? cfg->edge.broker : cfg->broker.frontend);
    self->heartbeat_ms = cfg->broker.heartbeat_ms ? cfg->broker.heartbeat_ms : 1000;
    self->dead_after_ms = self->heartbeat_ms * (cfg->broker.liveness ? cfg->broker.liveness : 3);
    self->max_frame = cfg->broker.max_frame;
    atomic_init (&self->next_job_id, 1);
    self->ctx = zmq_ctx_new ();
    self->jobs = edge_jobmap_new ();
    if (!self->ctx || !self->jobs || s_bind_sockets (self) || s_new_dealer (self))
        goto failed;
    if (pthread_create (&self->thread, NULL, s_run, self))
        goto failed;
    self->started = true;
    return self;
failed:
    edge_link_destroy (&self);
    return NULL;
}

static void s_close (void **sock)
{
    if (*sock)
        zmq_close (*sock);
    *sock = NULL;
}

void edge_link_destroy (edge_link_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    edge_link_t *self = *self_p;
    *self_p = NULL;
    if (self->started) {
        zmq_send (self->ctl_main, "$TERM", 5, 0);
        pthread_join (self->thread, NULL);
    }
    size_t leftover = 0;
    while (self->clients) {
        edge_client_t *c = self->clients;
        self->clients = c->next;
        s_close (&c->sock);
        free (c);
        leftover++;
    }
    if (leftover)
        log_debug ("closed %zu handler sockets at shutdown", leftover);
    s_close (&self->ctl_main);
    s_close (&self->ctl);
    s_close (&self->router);
    s_close (&self->dealer);
    if (self->ctx)
        zmq_ctx_term (self->ctx);
    edge_jobmap_destroy (&self->jobs);
    edge_status_release (&self->status);
    pthread_mutex_destroy (&self->status_lock);
    pthread_mutex_destroy (&self->clients_lock);
    free (self);
}

void edge_link_fail_all (edge_link_t *self, const char *why)
{
    //  fail_why is written before the command is sent; the thread reads it after
    snprintf (self->fail_why, sizeof self->fail_why, "%s", why ? why : "job abandoned");
    zmq_send (self->ctl_main, "FAIL", 4, 0);
}

uint64_t edge_link_next_job_id (edge_link_t *self)
{
    return atomic_fetch_add (&self->next_job_id, 1);
}

bool edge_link_up (edge_link_t *self)
{
    int64_t heard = atomic_load (&self->last_heard_ms);
    return heard && aclock_now_ms () - heard <= self->dead_after_ms;
}

edge_status_t *edge_link_status (edge_link_t *self)
{
    pthread_mutex_lock (&self->status_lock);
    edge_status_t *st = edge_status_ref (self->status);
    pthread_mutex_unlock (&self->status_lock);
    return st;
}

void edge_link_stats (edge_link_t *self, edge_link_stats_t *out)
{
    uint64_t *dst = (uint64_t *) out;
    for (size_t i = 0; i < S_STAT_COUNT; i++)
        dst[i] = atomic_load_explicit (&self->stats[i], memory_order_relaxed);
}

//  ------------------------------------------------------------------ clients

edge_client_t *edge_client_new (edge_link_t *link)
{
    edge_client_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->link = link;
    self->sock = s_socket (link, ZMQ_DEALER, false);
    char id[16];
    int n = snprintf (id, sizeof id, "h%08x", atomic_fetch_add (&link->next_client, 1));
    if (!self->sock || zmq_setsockopt (self->sock, ZMQ_ROUTING_ID, id, (size_t) n)
        || zmq_connect (self->sock, link->inproc)) {
        s_close (&self->sock);
        free (self);
        return NULL;
    }
    pthread_mutex_lock (&link->clients_lock);
    self->next = link->clients;
    if (link->clients)
        link->clients->prev = self;
    link->clients = self;
    pthread_mutex_unlock (&link->clients_lock);
    return self;
}

void edge_client_destroy (edge_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    edge_client_t *self = *self_p;
    *self_p = NULL;
    edge_link_t *link = self->link;
    pthread_mutex_lock (&link->clients_lock);
    if (self->prev)
        self->prev->next = self->next;
    else
        link->clients = self->next;
    if (self->next)
        self->next->prev = self->prev;
    pthread_mutex_unlock (&link->clients_lock);
    s_close (&self->sock);
    free (self);
}

int edge_client_submit (edge_client_t *self, const Aigw__Job *job, const void *payload,
                        size_t len)
{
    return wire_send_bytes (self->sock, NULL, 0, WIRE_SIDE_CLIENT, WIRE_C_SUBMIT, &job->base,
                            payload, len);
}

int edge_client_cancel (edge_client_t *self, uint64_t job_id)
{
    Aigw__JobRef ref = AIGW__JOB_REF__INIT;
    ref.job_id = job_id;
    return wire_send (self->sock, NULL, 0, WIRE_SIDE_CLIENT, WIRE_C_CANCEL, &ref.base, NULL);
}

void edge_answer_reset (edge_answer_t *a)
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

//  Decode an answer if it belongs to job_id. Returns true and fills out if so.
static bool s_take_answer (edge_client_t *self, wire_msg_t *m, uint64_t job_id,
                           edge_answer_t *out)
{
    uint64_t id = 0;
    if (s_job_id (&m->body, &id) || id != job_id) {
        s_count (self->link, S_LATE);
        return false;
    }
    memset (out, 0, sizeof *out);
    out->cmd = m->cmd;
    if (m->cmd == WIRE_C_RESULT)
        out->result = (Aigw__Result *) wire_unpack (&aigw__result__descriptor, &m->body);
    else
    if (m->cmd == WIRE_C_ERROR)
        out->error = (Aigw__Error *) wire_unpack (&aigw__error__descriptor, &m->body);
    else
    if (m->cmd == WIRE_C_CHUNK)
        out->chunk = (Aigw__Chunk *) wire_unpack (&aigw__chunk__descriptor, &m->body);
    if (!out->result && !out->error && !out->chunk) {
        s_count (self->link, S_BAD);
        return false;
    }
    return true;
}

int edge_client_wait (edge_client_t *self, uint64_t job_id, int timeout_ms, edge_answer_t *out)
{
    return edge_client_wait_fd (self, job_id, timeout_ms, -1, out) == 0 ? 0 : -1;
}

int edge_client_wait_fd (edge_client_t *self, uint64_t job_id, int timeout_ms, int fd,
                         edge_answer_t *out)
{
    int64_t deadline = aclock_now_ms () + timeout_ms;
    while (true) {
        wire_msg_t m;
        int rc;
        while ((rc = wire_recv (self->sock, false, &m)) != -1) {
            if (rc == -2)
                continue;
            bool mine = s_take_answer (self, &m, job_id, out);
            wire_msg_close (&m);
            if (mine)
                return 0;
        }
        int64_t left = deadline - aclock_now_ms ();
        if (left <= 0)
            return -1;
        zmq_pollitem_t items[2] = {
            { self->sock, 0, ZMQ_POLLIN, 0 },
            { NULL, fd, ZMQ_POLLIN, 0 },
        };
        if (zmq_poll (items, fd >= 0 ? 2 : 1, left) < 0 && errno != EINTR)
            return -1;
        if (fd >= 0 && items[1].revents && !(items[0].revents & ZMQ_POLLIN))
            return 1;
    }
}
