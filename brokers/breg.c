// The worker registry (see breg.h): worker records by routing id, READY, HEARTBEAT,
// expiry, sends, and the graveyard of killed workers freed at the next reap.
#define _GNU_SOURCE
#include "breg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bstats.h"
#include "hmap.h"
#include "log.h"

#define s_container(ptr, type, member) ((type *) ((char *) (ptr) - offsetof (type, member)))

struct worker_t {
    hmap_node_t node;               // in workers table (by routing id)
    uint8_t rid[WIRE_ID_MAX];
    size_t rid_len;
    char name[BREG_NAME_MAX];
    int64_t expiry;                 // dead when now passes this
    dsp_worker_t *dw;               // NULL once dead
    bool dead;                      // killed; freed at the next reap
    char key[WIRE_USER_ID_MAX];     // CURVE public key that registered it ("" without CURVE)
    int fd;                         // connection its messages arrive on, -1 unknown
    uint32_t fd_gen;                // that fd's generation then (bconn.h)
    uint64_t completed, failed, cancelled;  // from the worker's last HEARTBEAT
    struct worker_t *prev, *next;   // live list, or graveyard (next only)
};

struct breg_t {
    void *backend;
    dsp_t *dsp;
    const cfg_t *prices;
    curve_server_t *curve;
    bpeer_t *peers;
    bmetrics_t *metrics;
    broker_counters_t *c;
    int64_t expiry_us;
    uint64_t instance;
    breg_hooks_t hooks;
    hmap_t workers;
    worker_t *worker_list, *graveyard;
    bmetrics_worker_t *views;       // breg_views' array
    size_t views_cap;
};

typedef struct {
    const uint8_t *id;
    size_t len;
} rid_key_t;

static bool s_worker_eq (const hmap_node_t *node, const void *key)
{
    const worker_t *w = s_container (node, worker_t, node);
    const rid_key_t *k = key;
    return w->rid_len == k->len && memcmp (w->rid, k->id, k->len) == 0;
}

static worker_t *s_worker_find (breg_t *self, const uint8_t *id, size_t len)
{
    rid_key_t k = { id, len };
    hmap_node_t *n = hmap_find (&self->workers, hmap_bytes (id, len), &k);
    return n ? s_container (n, worker_t, node) : NULL;
}

static void s_printable (char *dst, size_t dstlen, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < dstlen; i++)
        dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
    if (dstlen)
        dst[i] = 0;
}

static void s_view (const breg_t *self, const worker_t *w, bmetrics_worker_t *v)
{
    v->name = w->name;
    v->dw = w->dw;
    v->alive = !w->dead;
    v->last_seen = w->expiry - self->expiry_us;
    v->completed = w->completed;
    v->failed = w->failed;
    v->cancelled = w->cancelled;
}

static void s_event (breg_t *self, const worker_t *w, const char *event, const char *reason)
{
    bmetrics_worker_t v;
    s_view (self, w, &v);
    if (bmetrics_worker (self->metrics, &v, event, reason))
        self->c->events_published++;
}

//  ---------------------------------------------------------------------------
//  Construction

breg_t *breg_new (const breg_env_t *env)
{
    breg_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->backend = env->backend;
    self->dsp = env->dsp;
    self->prices = env->prices;
    self->curve = env->curve;
    self->peers = env->peers;
    self->metrics = env->metrics;
    self->c = env->c;
    self->expiry_us = env->expiry_us;
    self->instance = env->instance;
    if (hmap_init (&self->workers, s_worker_eq)) {
        free (self);
        return NULL;
    }
    return self;
}

void breg_destroy (breg_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    breg_t *self = *self_p;
    while (self->worker_list) {
        worker_t *w = self->worker_list;
        self->worker_list = w->next;
        free (w);
    }
    breg_reap (self);
    hmap_fini (&self->workers);
    free (self->views);
    free (self);
    *self_p = NULL;
}

void breg_set_hooks (breg_t *self, const breg_hooks_t *hooks)
{
    self->hooks = *hooks;
}

//  ---------------------------------------------------------------------------
//  Sending and killing

static void s_disconnect_peer (breg_t *self, const uint8_t *id, size_t len)
{
    if (wire_send (self->backend, id, len, WIRE_SIDE_WORKER, WIRE_W_DISCONNECT, NULL, NULL))
        self->c->send_failures++;
}

int breg_send (breg_t *self, worker_t *w, uint8_t cmd, const ProtobufCMessage *body,
               zmq_msg_t *payload)
{
    if (w->dead) {
        errno = EHOSTUNREACH;
        return -1;
    }
    if (wire_send (self->backend, w->rid, w->rid_len, WIRE_SIDE_WORKER, cmd, body, payload) == 0)
        return 0;
    self->c->send_failures++;
    if (errno == EAGAIN) {
        self->c->send_full++;
        log_debug ("send %s to worker %s: pipe full", wire_cmd_name (WIRE_SIDE_WORKER, cmd),
                   w->name);
        errno = EAGAIN;
        return -1;
    }
    char why[96];
    snprintf (why, sizeof why, "send %s failed: %s", wire_cmd_name (WIRE_SIDE_WORKER, cmd),
              zmq_strerror (errno));
    breg_kill (self, w, why);
    errno = EHOSTUNREACH;
    return -1;
}

void breg_kill (breg_t *self, worker_t *w, const char *why)
{
    if (w->dead)
        return;
    self->c->workers_lost++;
    w->dead = true;
    s_event (self, w, "leave", why);
    dsp_item_t *lost = NULL, *orphans = NULL;
    dsp_worker_remove (self->dsp, &w->dw, &lost, &orphans);
    char reason[128];
    snprintf (reason, sizeof reason, "worker %s lost: %s", w->name, why);
    size_t nlost = 0;
    for (dsp_item_t *it = lost; it; it = it->next)
        nlost++;
    if (lost && self->hooks.lost)
        self->hooks.lost (self->hooks.arg, lost, reason);
    log_write (nlost || strcmp (why, "sent DISCONNECT") ? LOG_LVL_WARN : LOG_LVL_INFO,
               "worker %s left: %s (%zu attempt(s) in flight)", w->name, why, nlost);
    if (orphans && self->hooks.orphaned)
        self->hooks.orphaned (self->hooks.arg, orphans);
    hmap_remove (&self->workers, &w->node);
    if (w->prev)
        w->prev->next = w->next;
    else
        self->worker_list = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = NULL;
    w->next = self->graveyard;
    self->graveyard = w;
}

bool breg_has_dead (const breg_t *self)
{
    return self->graveyard != NULL;
}

void breg_reap (breg_t *self)
{
    while (self->graveyard) {
        worker_t *w = self->graveyard;
        self->graveyard = w->next;
        free (w);
    }
}

void breg_goodbye (breg_t *self)
{
    for (worker_t *w = self->worker_list; w; w = w->next)
        if (!w->dead)
            wire_send (self->backend, w->rid, w->rid_len, WIRE_SIDE_WORKER, WIRE_W_DISCONNECT,
                       NULL, NULL);
}

//  A HEARTBEAT to w, carrying this broker's instance.
static void s_beat (breg_t *self, worker_t *w)
{
    Aigw__BrokerBeat beat = AIGW__BROKER_BEAT__INIT;
    beat.has_instance = true;
    beat.instance = self->instance;
    breg_send (self, w, WIRE_W_HEARTBEAT, &beat.base, NULL);
}

//  ---------------------------------------------------------------------------
//  READY

//  CURVE: the models of a READY that fabric/workers lets its certificate serve, as
//  pointers into h. Counts the others and logs them once per certificate.
static size_t s_ready_allowed (breg_t *self, const wire_msg_t *msg,
                               const Aigw__WorkerHello *h, const char **allowed)
{
    const curve_peer_t *p = self->curve ? curve_server_peer (self->curve, msg->user_id) : NULL;
    char refused[256] = "";
    size_t n = 0, off = 0;
    for (size_t i = 0; i < h->n_models; i++) {
        if (!self->curve || curve_server_may_serve (self->curve, p, h->models[i])) {
            allowed[n++] = h->models[i];
            continue;
        }
        self->c->denied_models++;
        int k = off + 1 < sizeof refused
              ? snprintf (refused + off, sizeof refused - off, "%s%s", off ? "," : "", h->models[i])
              : 0;
        off = k < 0 || off + (size_t) k >= sizeof refused ? sizeof refused - 1 : off + (size_t) k;
    }
    if (n == 0)
        self->c->denied_readys++;
    if (n < h->n_models && bpeer_denied_first (self->peers, msg->user_id, 'W')) {
        char shown[sizeof refused], id[BREG_NAME_MAX];
        s_printable (shown, sizeof shown, refused);
        s_printable (id, sizeof id, h->worker_id);
        log_warn ("READY from %s, certificate %s (%s): fabric/workers does not let it serve %s;"
                  " %s (further refusals for this certificate are only counted)", id,
                  p ? p->name : "unknown", msg->user_id[0] ? msg->user_id : "no key", shown,
                  n ? "registered without them" : "refused");
    }
    return n;
}

worker_t *breg_ready (breg_t *self, wire_msg_t *msg, int64_t now)
{
    worker_t *w = NULL;
    Aigw__WorkerHello *h = (Aigw__WorkerHello *) wire_unpack (&aigw__worker_hello__descriptor,
                                                              &msg->body);
    const char *why = !h ? "READY body does not decode"
                    : h->n_models == 0 ? "READY without models"
                    : h->n_models > DSP_WORKER_MODELS_MAX ? "READY with too many models"
                    : h->capacity == 0 ? "READY with capacity 0" : NULL;
    for (size_t i = 0; !why && i < h->n_models; i++) {
        size_t n = strnlen (h->models[i], CFG_NAME_MAX);
        if (n == 0 || n >= CFG_NAME_MAX)
            why = "READY with an empty or too long model name";
    }
    if (why) {
        bpeer_malformed (self->peers, msg->id, msg->id_len, "worker", why);
        goto cleanup;
    }
    const char *allowed[DSP_WORKER_MODELS_MAX];
    size_t nallowed = s_ready_allowed (self, msg, h, allowed);
    if (nallowed == 0) {
        s_disconnect_peer (self, msg->id, msg->id_len);    // it backs off before retrying
        goto cleanup;
    }
    worker_t *old = s_worker_find (self, msg->id, msg->id_len);
    if (old)
        breg_kill (self, old, "registered again");
    w = calloc (1, sizeof *w);
    if (!w)
        goto cleanup;
    memcpy (w->rid, msg->id, msg->id_len);
    w->rid_len = msg->id_len;
    memcpy (w->key, msg->user_id, sizeof w->key);
    w->fd = -1;
    s_printable (w->name, sizeof w->name, h->worker_id);
    w->expiry = now + self->expiry_us;
    w->dw = dsp_worker_add (self->dsp, allowed, nallowed, h->capacity, w);
    if (!w->dw) {
        free (w);
        w = NULL;
        log_error ("cannot register worker %s (out of memory or model limit)", h->worker_id);
        goto cleanup;
    }
    for (size_t i = 0; i < nallowed; i++) {
        dsp_model_t *m = dsp_model (self->dsp, allowed[i]);
        if (m && !dsp_model_user (m))
            dsp_model_set_user (m, bstats_new (self->prices, allowed[i]));
    }
    hmap_insert (&self->workers, &w->node, hmap_bytes (w->rid, w->rid_len));
    w->next = self->worker_list;
    if (self->worker_list)
        self->worker_list->prev = w;
    self->worker_list = w;
    self->c->workers_joined++;
    char models[256] = "";
    for (size_t i = 0, off = 0; i < nallowed && off + 1 < sizeof models; i++) {
        int n = snprintf (models + off, sizeof models - off, "%s%s", i ? "," : "", allowed[i]);
        off = n < 0 ? sizeof models : off + (size_t) n;
    }
    char shown[sizeof models];
    s_printable (shown, sizeof shown, models);
    log_info ("worker %s joined: models %s, capacity %u", w->name, shown,
              dsp_worker_capacity (w->dw));
    s_event (self, w, "join", NULL);
    //  A HEARTBEAT at once: the worker learns this instance, and that its READY was
    //  taken (a connection that drops after it is not a refusal to back off from)
    s_beat (self, w);
cleanup:
    if (h)
        protobuf_c_message_free_unpacked (&h->base, NULL);
    return w;
}

//  ---------------------------------------------------------------------------
//  Messages of registered workers

worker_t *breg_sender (breg_t *self, const wire_msg_t *msg, int64_t now)
{
    worker_t *w = s_worker_find (self, msg->id, msg->id_len);
    if (w && self->curve && strcmp (w->key, msg->user_id) != 0) {
        breg_kill (self, w, "its routing id came back with another certificate");
        w = NULL;
    }
    if (!w) {
        self->c->unknown_worker++;
        if (msg->cmd != WIRE_W_DISCONNECT)
            s_disconnect_peer (self, msg->id, msg->id_len);
        return NULL;
    }
    w->expiry = now + self->expiry_us;
    return w;
}

void breg_heartbeat (breg_t *self, worker_t *w, wire_msg_t *msg)
{
    if (zmq_msg_size (&msg->body) == 0)
        return;
    Aigw__WorkerStats *st = (Aigw__WorkerStats *) wire_unpack (&aigw__worker_stats__descriptor,
                                                               &msg->body);
    if (!st) {
        bpeer_malformed (self->peers, msg->id, msg->id_len, "worker",
                         "HEARTBEAT body does not decode");
        return;
    }
    w->completed = st->has_completed ? st->completed : w->completed;
    w->failed = st->has_failed ? st->failed : w->failed;
    w->cancelled = st->has_cancelled ? st->cancelled : w->cancelled;
    if (st->has_capacity && w->dw && st->capacity != dsp_worker_capacity (w->dw)) {
        log_debug ("worker %s: capacity %u -> %u", w->name, dsp_worker_capacity (w->dw),
                   st->capacity);
        dsp_worker_set_capacity (self->dsp, w->dw, st->capacity);
    }
    protobuf_c_message_free_unpacked (&st->base, NULL);
}

void breg_tick (breg_t *self, int64_t now)
{
    worker_t *w = self->worker_list;
    while (w) {
        worker_t *next = w->next;
        if (now >= w->expiry)
            breg_kill (self, w, "heartbeat expired");
        else
            s_beat (self, w);
        w = next;
    }
}

void breg_worker_set_conn (worker_t *w, int fd, uint32_t gen)
{
    w->fd = fd;
    w->fd_gen = gen;
}

int breg_worker_fd (const worker_t *w)
{
    return w->fd;
}

size_t breg_conn_closed (breg_t *self, int fd, uint32_t gen)
{
    size_t n = 0;
    worker_t *w = self->worker_list;
    while (w) {
        worker_t *next = w->next;
        if (fd >= 0 && w->fd == fd && w->fd_gen == gen) {
            self->c->workers_disconnected++;
            breg_kill (self, w, "its connection closed");
            n++;
        }
        w = next;
    }
    return n;
}

//  ---------------------------------------------------------------------------
//  Views

const bmetrics_worker_t *breg_views (breg_t *self, size_t *count)
{
    size_t n = 0;
    for (const worker_t *w = self->worker_list; w; w = w->next)
        n++;
    if (n > self->views_cap) {
        bmetrics_worker_t *v = realloc (self->views, n * sizeof *v);
        if (!v) {
            *count = 0;
            return NULL;
        }
        self->views = v;
        self->views_cap = n;
    }
    n = 0;
    for (const worker_t *w = self->worker_list; w; w = w->next)
        s_view (self, w, &self->views[n++]);
    *count = n;
    return self->views;
}

const char *breg_worker_name (const worker_t *w)
{
    return w->name;
}

dsp_worker_t *breg_worker_dsp (const worker_t *w)
{
    return w->dw;
}

bool breg_worker_dead (const worker_t *w)
{
    return w->dead;
}
