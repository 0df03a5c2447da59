// A fake broker for tests: the scripted client side (answers PING, SUBMIT, CANCEL from
// its own thread) and the driven mode (either side, read and answered by the test).
#include "fake_broker.h"
#include "aclock.h"
#include "aigw.pb-c.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_HELD_MAX 1024
#define S_TICK_MS 5
#define S_FLOOD_TEXT 2048               // bytes of text in each flood* chunk
#define S_MAX_FRAME (8 << 20)
#define S_UNBIND_MS 5000                // how long a restart waits for the old listener

typedef struct {
    uint8_t id[WIRE_ID_MAX];
    size_t id_len;
    uint64_t job_id;
    int64_t due_ms;                     // 0 = until released
    uint32_t drip_ms;                   // streaming drip*: a chunk every drip_ms, no end
    uint32_t seq;                       // next chunk's seq
    char target[128];
    char targets[512];
} s_held_t;

struct _fake_broker_t {
    void *ctx;
    void *router;
    char endpoint[256];
    bool driven;                        // no thread: the test reads and answers
    wire_side_t side;                   // driven: what the ROUTER speaks
    uint8_t peer[WIRE_ID_MAX];          // driven: the routing id of the last sender
    size_t peer_len;
    unsigned restarts;                  // driven: names each restart's socket monitor
    pthread_t thread;                   // scripted mode from here on
    char models[1024];
    uint32_t workers;
    _Atomic bool stop;
    _Atomic bool silent;
    _Atomic bool release;
    _Atomic uint32_t slow_ms;
    pthread_mutex_t lock;               // guards stats and last
    fake_broker_stats_t stats;
    fake_broker_job_t last;
    s_held_t held[S_HELD_MAX];          // thread only
    size_t nheld;
};

static void s_pong (fake_broker_t *self, wire_msg_t *m)
{
    char buf[1024];
    snprintf (buf, sizeof buf, "%s", self->models);
    Aigw__ModelStatus ms[32];
    Aigw__ModelStatus *ptrs[32];
    size_t n = 0;
    for (char *p = buf; *p && n < 32;) {
        size_t len = strcspn (p, ",");
        bool last = p[len] == 0;
        p[len] = 0;
        aigw__model_status__init (&ms[n]);
        ms[n].name = p;
        ms[n].has_workers = true;
        ms[n].workers = self->workers;
        ptrs[n] = &ms[n];
        n++;
        if (last)
            break;
        p += len + 1;
    }
    Aigw__BrokerStatus st = AIGW__BROKER_STATUS__INIT;
    st.n_models = n;
    st.models = ptrs;
    st.has_workers = true;
    st.workers = n ? self->workers : 0;
    st.broker_id = "fake-broker";
    wire_send (self->router, m->id, m->id_len, WIRE_SIDE_CLIENT, WIRE_C_PONG, &st.base, NULL);
    pthread_mutex_lock (&self->lock);
    self->stats.pings++;
    pthread_mutex_unlock (&self->lock);
}

//  One attempt summary per target: the first gets `first`, the others `rest`.
static size_t s_attempts (const char *targets, Aigw__AttemptInfo *infos, Aigw__AttemptInfo **ptrs,
                          char names[][128], Aigw__Outcome first, Aigw__Outcome rest,
                          const char *reason)
{
    size_t n = 0;
    for (const char *p = targets; *p && n < 16;) {
        size_t len = strcspn (p, ",");
        snprintf (names[n], 128, "%.*s", (int) len, p);
        aigw__attempt_info__init (&infos[n]);
        infos[n].attempt_id = n + 1;
        infos[n].target = names[n];
        infos[n].outcome = n == 0 ? first : rest;
        infos[n].worker = "fake-worker-1";
        infos[n].has_started_us = true;
        infos[n].started_us = 100 + 50 * n;
        infos[n].has_finished_us = true;
        infos[n].finished_us = 1500 + 10 * n;
        if (reason && infos[n].outcome == AIGW__OUTCOME__OUTCOME_FAILED) {
            infos[n].has_error = true;
            infos[n].error = AIGW__ERROR_CODE__ERR_UPSTREAM;
            infos[n].reason = (char *) reason;
        }
        ptrs[n] = &infos[n];
        n++;
        p += len;
        if (*p == ',')
            p++;
    }
    return n;
}

static void s_result (fake_broker_t *self, const uint8_t *id, size_t id_len, uint64_t job_id,
                      const char *target, const char *targets, bool json)
{
    char body[1024];
    if (json)
        snprintf (body, sizeof body,
                  "{\"id\":\"chatcmpl-fake-%llu\",\"object\":\"chat.completion\",\"created\":0,"
                  "\"model\":\"%s\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                  "\"content\":\"Hello from %s.\"},\"finish_reason\":\"stop\"}],"
                  "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}",
                  (unsigned long long) job_id, target, target);
    else
        snprintf (body, sizeof body, "not json");
    Aigw__AttemptInfo infos[16];
    Aigw__AttemptInfo *ptrs[16];
    char names[16][128];
    Aigw__Result r = AIGW__RESULT__INIT;
    r.job_id = job_id;
    r.model = (char *) target;
    r.has_response_json = true;
    r.response_json.data = (uint8_t *) body;
    r.response_json.len = strlen (body);
    r.n_attempts = s_attempts (targets, infos, ptrs, names, AIGW__OUTCOME__OUTCOME_WON,
                               AIGW__OUTCOME__OUTCOME_CANCELLED, NULL);
    r.attempts = ptrs;
    r.has_latency_us = true;
    r.latency_us = 2000;
    wire_send (self->router, id, id_len, WIRE_SIDE_CLIENT, WIRE_C_RESULT, &r.base, NULL);
}

//  One CHUNK carrying an OpenAI chat.completion.chunk with `text` (finish: a last
//  chunk with finish_reason "stop" and no content). raw: send these bytes instead.
static void s_chunk (fake_broker_t *self, const uint8_t *id, size_t id_len, uint64_t job_id,
                     uint32_t seq, const char *target, const char *text, bool finish,
                     const char *raw)
{
    char body[S_FLOOD_TEXT + 1024];
    if (raw)
        snprintf (body, sizeof body, "%s", raw);
    else
    if (finish)
        snprintf (body, sizeof body,
                  "{\"id\":\"chatcmpl-fake-%llu\",\"object\":\"chat.completion.chunk\","
                  "\"created\":1700000000,\"model\":\"upstream-%s\",\"choices\":[{\"index\":0,"
                  "\"delta\":{},\"finish_reason\":\"stop\"}]}", (unsigned long long) job_id, target);
    else
        snprintf (body, sizeof body,
                  "{\"id\":\"chatcmpl-fake-%llu\",\"object\":\"chat.completion.chunk\","
                  "\"created\":1700000000,\"model\":\"upstream-%s\",\"choices\":[{\"index\":0,"
                  "\"delta\":{\"content\":\"%s\"},\"finish_reason\":null}]}",
                  (unsigned long long) job_id, target, text);
    Aigw__Chunk c = AIGW__CHUNK__INIT;
    c.job_id = job_id;
    c.has_attempt_id = true;
    c.attempt_id = 1;
    c.has_seq = true;
    c.seq = seq;
    c.model = (char *) target;
    c.has_delta_json = true;
    c.delta_json.data = (uint8_t *) body;
    c.delta_json.len = strlen (body);
    wire_send (self->router, id, id_len, WIRE_SIDE_CLIENT, WIRE_C_CHUNK, &c.base, NULL);
}

static void s_error (fake_broker_t *self, const uint8_t *id, size_t id_len, uint64_t job_id,
                     Aigw__ErrorCode code, const char *targets)
{
    Aigw__AttemptInfo infos[16];
    Aigw__AttemptInfo *ptrs[16];
    char names[16][128];
    Aigw__Error e = AIGW__ERROR__INIT;
    e.job_id = job_id;
    e.code = code;
    bool failed = code == AIGW__ERROR_CODE__ERR_UPSTREAM;
    e.message = code == AIGW__ERROR_CODE__ERR_CANCELLED ? "cancelled by the client" : NULL;
    if (code != AIGW__ERROR_CODE__ERR_CANCELLED && targets) {
        e.n_attempts = s_attempts (targets, infos, ptrs, names,
                                   failed ? AIGW__OUTCOME__OUTCOME_FAILED : AIGW__OUTCOME__OUTCOME_CANCELLED,
                                   failed ? AIGW__OUTCOME__OUTCOME_FAILED : AIGW__OUTCOME__OUTCOME_CANCELLED,
                                   failed ? "upstream returned HTTP 500" : NULL);
        e.attempts = ptrs;
    }
    wire_send (self->router, id, id_len, WIRE_SIDE_CLIENT, WIRE_C_ERROR, &e.base, NULL);
}

//  A streaming winner cut after its chunks: ERROR with the first attempt failed.
static void s_stream_cut (fake_broker_t *self, const uint8_t *id, size_t id_len, uint64_t job_id,
                          const char *targets, uint32_t chunks)
{
    Aigw__AttemptInfo infos[16];
    Aigw__AttemptInfo *ptrs[16];
    char names[16][128];
    char message[128];
    snprintf (message, sizeof message, "stream failed after %u chunks: upstream stream cut", chunks);
    Aigw__Error e = AIGW__ERROR__INIT;
    e.job_id = job_id;
    e.code = AIGW__ERROR_CODE__ERR_UPSTREAM;
    e.message = message;
    e.n_attempts = s_attempts (targets, infos, ptrs, names, AIGW__OUTCOME__OUTCOME_FAILED,
                               AIGW__OUTCOME__OUTCOME_CANCELLED, "upstream stream cut");
    e.attempts = ptrs;
    wire_send (self->router, id, id_len, WIRE_SIDE_CLIENT, WIRE_C_ERROR, &e.base, NULL);
}

static void s_record (fake_broker_t *self, const Aigw__Job *job, wire_msg_t *m, char *targets,
                      size_t size)
{
    size_t o = 0;
    targets[0] = 0;
    for (size_t i = 0; i < job->n_targets && o + 1 < size; i++) {
        int n = snprintf (targets + o, size - o, "%s%s", i ? "," : "", job->targets[i]);
        o += n > 0 ? (size_t) n : 0;
    }
    pthread_mutex_lock (&self->lock);
    self->stats.submits++;
    fake_broker_job_t *l = &self->last;
    memset (l, 0, sizeof *l);
    l->job_id = job->job_id;
    snprintf (l->targets, sizeof l->targets, "%s", targets);
    l->policy = job->has_policy ? (int) job->policy : 0;
    l->has_hedge = job->has_hedge_delay_ms;
    l->hedge_delay_ms = job->hedge_delay_ms;
    l->deadline_ms = job->has_deadline_ms ? job->deadline_ms : 0;
    l->ttft_timeout_ms = job->has_ttft_timeout_ms ? job->ttft_timeout_ms : 0;
    l->stream = job->has_stream && job->stream;
    if (m->has_payload) {
        size_t n = zmq_msg_size (&m->payload);
        n = n < sizeof l->payload - 1 ? n : sizeof l->payload - 1;
        memcpy (l->payload, zmq_msg_data (&m->payload), n);
    }
    pthread_mutex_unlock (&self->lock);
}

static void s_hold (fake_broker_t *self, wire_msg_t *m, uint64_t job_id, const char *target,
                    const char *targets, int64_t due)
{
    if (self->nheld == S_HELD_MAX)
        return;
    s_held_t *h = &self->held[self->nheld++];
    memset (h, 0, sizeof *h);
    memcpy (h->id, m->id, m->id_len);
    h->id_len = m->id_len;
    h->job_id = job_id;
    h->due_ms = due;
    snprintf (h->target, sizeof h->target, "%s", target);
    snprintf (h->targets, sizeof h->targets, "%s", targets);
}

static bool s_prefix (const char *s, const char *p)
{
    return strncmp (s, p, strlen (p)) == 0;
}

static const char s_tool_chunk[] =
    "{\"id\":\"chatcmpl-tool\",\"object\":\"chat.completion.chunk\",\"created\":1700000001,"
    "\"model\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
    "\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
    "\"arguments\":\"{}\"}}]},\"finish_reason\":null}]}";

//  Streaming jobs (see fake_broker.h). Returns false if the name is not a streaming one.
static bool s_submit_stream (fake_broker_t *self, wire_msg_t *m, const Aigw__Job *job,
                             const char *t, const char *targets)
{
    const uint8_t *id = m->id;
    size_t n = m->id_len;
    uint64_t jid = job->job_id;
    if (s_prefix (t, "cut")) {
        s_chunk (self, id, n, jid, 0, t, "Hello", false, NULL);
        s_chunk (self, id, n, jid, 1, t, " there", false, NULL);
        s_stream_cut (self, id, n, jid, targets, 2);
    }
    else
    if (s_prefix (t, "gap")) {
        s_chunk (self, id, n, jid, 0, t, "Hello", false, NULL);
        s_chunk (self, id, n, jid, 2, t, " lost", false, NULL);
        s_result (self, id, n, jid, t, targets, true);
    }
    else
    if (s_prefix (t, "badchunk"))
        s_chunk (self, id, n, jid, 0, t, NULL, false, "not json");
    else
    if (s_prefix (t, "drip") || s_prefix (t, "flood")) {
        uint32_t every = s_prefix (t, "drip") ? 50 : 1;
        s_chunk (self, id, n, jid, 0, t, "drop", false, NULL);
        s_hold (self, m, jid, t, targets, 0);
        self->held[self->nheld - 1].drip_ms = every;
        self->held[self->nheld - 1].seq = 1;
        self->held[self->nheld - 1].due_ms = aclock_now_ms () + every;
    }
    else
    if (s_prefix (t, "tools")) {
        s_chunk (self, id, n, jid, 0, t, NULL, false, s_tool_chunk);
        s_chunk (self, id, n, jid, 1, t, NULL, true, NULL);
        s_result (self, id, n, jid, t, targets, true);
    }
    else
    if (!s_prefix (t, "never") && !s_prefix (t, "fail") && !s_prefix (t, "busy")
        && !s_prefix (t, "timeout")) {
        char word[160];
        snprintf (word, sizeof word, " %.128s", t);
        s_chunk (self, id, n, jid, 0, t, "Hello", false, NULL);
        s_chunk (self, id, n, jid, 1, t, " from", false, NULL);
        s_chunk (self, id, n, jid, 2, t, word, false, NULL);
        s_chunk (self, id, n, jid, 3, t, NULL, true, NULL);
        s_result (self, id, n, jid, t, targets, true);
    }
    else
        return false;
    return true;
}

static void s_submit (fake_broker_t *self, wire_msg_t *m)
{
    Aigw__Job *job = (Aigw__Job *) wire_unpack (&aigw__job__descriptor, &m->body);
    if (!job)
        return;
    char targets[512];
    s_record (self, job, m, targets, sizeof targets);
    const char *t = job->n_targets ? job->targets[0] : "";
    if (job->has_stream && job->stream && s_submit_stream (self, m, job, t, targets))
        ;
    else
    if (s_prefix (t, "never"))
        s_hold (self, m, job->job_id, t, targets, 0);
    else
    if (s_prefix (t, "slow"))
        s_hold (self, m, job->job_id, t, targets, aclock_now_ms () + atomic_load (&self->slow_ms));
    else
    if (s_prefix (t, "fail"))
        s_error (self, m->id, m->id_len, job->job_id, AIGW__ERROR_CODE__ERR_UPSTREAM, targets);
    else
    if (s_prefix (t, "busy"))
        s_error (self, m->id, m->id_len, job->job_id, AIGW__ERROR_CODE__ERR_OVERLOADED, targets);
    else
    if (s_prefix (t, "timeout"))
        s_error (self, m->id, m->id_len, job->job_id, AIGW__ERROR_CODE__ERR_TIMEOUT, targets);
    else
        s_result (self, m->id, m->id_len, job->job_id, t, targets, !s_prefix (t, "nojson"));
    aigw__job__free_unpacked (job, NULL);
}

static void s_cancel (fake_broker_t *self, wire_msg_t *m)
{
    Aigw__JobRef *ref = (Aigw__JobRef *) wire_unpack (&aigw__job_ref__descriptor, &m->body);
    if (!ref)
        return;
    for (size_t i = 0; i < self->nheld; i++)
        if (self->held[i].job_id == ref->job_id && !memcmp (self->held[i].id, m->id, m->id_len)) {
            self->held[i] = self->held[--self->nheld];
            break;
        }
    s_error (self, m->id, m->id_len, ref->job_id, AIGW__ERROR_CODE__ERR_CANCELLED, NULL);
    pthread_mutex_lock (&self->lock);
    self->stats.cancels++;
    pthread_mutex_unlock (&self->lock);
    aigw__job_ref__free_unpacked (ref, NULL);
}

//  Send what is due. Returns true while a flood* job is held (tick faster).
static bool s_due (fake_broker_t *self)
{
    bool release = atomic_exchange (&self->release, false);
    int64_t now = aclock_now_ms ();
    bool flooding = false;
    for (size_t i = 0; i < self->nheld;) {
        s_held_t *h = &self->held[i];
        flooding |= h->drip_ms == 1;
        if (h->drip_ms == 1 && h->due_ms <= now) {
            char flood[S_FLOOD_TEXT + 1];
            memset (flood, 'f', S_FLOOD_TEXT);
            flood[S_FLOOD_TEXT] = 0;
            s_chunk (self, h->id, h->id_len, h->job_id, h->seq++, h->target, flood, false, NULL);
            h->due_ms = now + 1;
            i++;
        }
        else
        if (h->drip_ms && h->due_ms <= now) {
            s_chunk (self, h->id, h->id_len, h->job_id, h->seq++, h->target, " drop", false, NULL);
            h->due_ms += h->drip_ms;
            i++;
        }
        else
        if ((h->due_ms && h->due_ms <= now) || (!h->due_ms && release)) {
            s_result (self, h->id, h->id_len, h->job_id, h->target, h->targets, true);
            *h = self->held[--self->nheld];
        }
        else
            i++;
    }
    pthread_mutex_lock (&self->lock);
    self->stats.held = self->nheld;
    pthread_mutex_unlock (&self->lock);
    return flooding;
}

static void *s_run (void *arg)
{
    fake_broker_t *self = arg;
    bool flooding = false;
    while (!atomic_load (&self->stop)) {
        wire_msg_t m;
        int rc;
        int wait_ms = flooding ? 1 : S_TICK_MS;
        while ((rc = fake_peer_recv (self->router, true, wait_ms, &m)) != -1) {
            wait_ms = 0;
            if (rc == -2)
                continue;
            if (!atomic_load (&self->silent)) {
                if (m.cmd == WIRE_C_PING)
                    s_pong (self, &m);
                else
                if (m.cmd == WIRE_C_SUBMIT)
                    s_submit (self, &m);
                else
                if (m.cmd == WIRE_C_CANCEL)
                    s_cancel (self, &m);
            }
            wire_msg_close (&m);
        }
        if (!atomic_load (&self->silent))
            flooding = s_due (self);
    }
    return NULL;
}

//  A new ROUTER bound on endpoint; self->endpoint gets the real port. 0 / -1.
static int s_bind (fake_broker_t *self, const char *endpoint)
{
    self->router = zmq_socket (self->ctx, ZMQ_ROUTER);
    if (self->router && !wire_setup_socket (self->router, true, S_MAX_FRAME)
        && !zmq_bind (self->router, endpoint)
        && !wire_bound_endpoint (self->router, self->endpoint, sizeof self->endpoint))
        return 0;
    if (self->router)
        zmq_close (self->router);
    self->router = NULL;
    return -1;
}

//  The part both modes share: a context and a ROUTER bound on endpoint.
static fake_broker_t *s_new (const char *endpoint)
{
    fake_broker_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    pthread_mutex_init (&self->lock, NULL);
    atomic_init (&self->slow_ms, 200);
    self->ctx = zmq_ctx_new ();
    if (self->ctx && s_bind (self, endpoint) == 0)
        return self;
    if (self->ctx)
        zmq_ctx_term (self->ctx);
    pthread_mutex_destroy (&self->lock);
    free (self);
    return NULL;
}

fake_broker_t *fake_broker_new (const char *endpoint, const char *models, uint32_t workers)
{
    fake_broker_t *self = s_new (endpoint);
    if (!self)
        return NULL;
    snprintf (self->models, sizeof self->models, "%s", models ? models : "");
    self->workers = workers;
    self->side = WIRE_SIDE_CLIENT;
    if (pthread_create (&self->thread, NULL, s_run, self)) {
        self->driven = true;            // no thread to join
        fake_broker_destroy (&self);
    }
    return self;
}

fake_broker_t *fake_broker_new_driven (const char *endpoint, wire_side_t side)
{
    fake_broker_t *self = s_new (endpoint);
    if (self) {
        self->driven = true;
        self->side = side;
    }
    return self;
}

void fake_broker_destroy (fake_broker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fake_broker_t *self = *self_p;
    *self_p = NULL;
    if (!self->driven) {
        atomic_store (&self->stop, true);
        pthread_join (self->thread, NULL);
    }
    if (self->router)
        zmq_close (self->router);
    zmq_ctx_term (self->ctx);
    pthread_mutex_destroy (&self->lock);
    free (self);
}

const char *fake_broker_endpoint (fake_broker_t *self)
{
    return self->endpoint;
}

void fake_broker_set_silent (fake_broker_t *self, bool silent)
{
    atomic_store (&self->silent, silent);
}

void fake_broker_set_slow_ms (fake_broker_t *self, uint32_t ms)
{
    atomic_store (&self->slow_ms, ms);
}

void fake_broker_release (fake_broker_t *self)
{
    atomic_store (&self->release, true);
}

void fake_broker_stats (fake_broker_t *self, fake_broker_stats_t *out)
{
    pthread_mutex_lock (&self->lock);
    *out = self->stats;
    pthread_mutex_unlock (&self->lock);
}

void fake_broker_last_job (fake_broker_t *self, fake_broker_job_t *out)
{
    pthread_mutex_lock (&self->lock);
    *out = self->last;
    pthread_mutex_unlock (&self->lock);
}

//  ---------------------------------------------------------------- driven mode

void *fake_broker_socket (fake_broker_t *self)
{
    return self->router;
}

int fake_broker_recv (fake_broker_t *self, int timeout_ms, wire_msg_t *m)
{
    assert (self->driven);
    int rc = fake_peer_recv (self->router, true, timeout_ms, m);
    if (rc == 0) {
        memcpy (self->peer, m->id, m->id_len);
        self->peer_len = m->id_len;
    }
    return rc;
}

int fake_broker_next (fake_broker_t *self, int timeout_ms, wire_msg_t *m)
{
    int64_t until = aclock_now_ms () + timeout_ms;
    for (;;) {
        int64_t left = until - aclock_now_ms ();
        int rc = fake_broker_recv (self, left > 0 ? (int) left : 0, m);
        if (rc || self->side != WIRE_SIDE_WORKER || m->cmd != WIRE_W_HEARTBEAT)
            return rc;
        wire_msg_close (m);
    }
}

void *fake_broker_expect (fake_broker_t *self, uint8_t cmd, const ProtobufCMessageDescriptor *desc,
                          int timeout_ms)
{
    wire_msg_t m;
    int rc = fake_broker_next (self, timeout_ms, &m);
    if (rc == -1)
        return fake_peer_fail ("no %s within %d ms", wire_cmd_name (self->side, cmd), timeout_ms);
    if (rc == -2)
        return fake_peer_fail ("a malformed message instead of %s: %s",
                               wire_cmd_name (self->side, cmd), m.error ? m.error : "?");
    void *body = fake_peer_decode (&m, self->side, cmd, desc);
    wire_msg_close (&m);
    return body;
}

const uint8_t *fake_broker_peer (fake_broker_t *self, size_t *len)
{
    *len = self->peer_len;
    return self->peer;
}

int fake_broker_send (fake_broker_t *self, uint8_t cmd, const ProtobufCMessage *body,
                      const void *payload, size_t payload_len)
{
    if (payload)
        return wire_send_bytes (self->router, self->peer, self->peer_len, self->side, cmd, body,
                                payload, payload_len);
    return wire_send (self->router, self->peer, self->peer_len, self->side, cmd, body, NULL);
}

int fake_broker_send_frames (fake_broker_t *self, int n, const void *const *data,
                             const size_t *len)
{
    if (zmq_send (self->router, self->peer, self->peer_len, n ? ZMQ_SNDMORE : 0)
        != (int) self->peer_len)
        return -1;
    for (int i = 0; i < n; i++)
        if (zmq_send (self->router, data[i] ? data[i] : "", len[i], i + 1 < n ? ZMQ_SNDMORE : 0)
            != (int) len[i])
            return -1;
    return 0;
}

int fake_broker_task (fake_broker_t *self, uint64_t job_id, uint64_t attempt_id, const char *target,
                      const char *payload, uint32_t deadline_ms, bool stream)
{
    Aigw__Task t = AIGW__TASK__INIT;
    t.job_id = job_id;
    t.attempt_id = attempt_id;
    t.target = (char *) target;
    t.has_deadline_ms = deadline_ms > 0;
    t.deadline_ms = deadline_ms;
    t.has_stream = stream;
    t.stream = stream;
    return fake_broker_send (self, WIRE_W_TASK, &t.base, payload, payload ? strlen (payload) : 0);
}

int fake_broker_cancel (fake_broker_t *self, uint64_t attempt_id)
{
    Aigw__AttemptRef r = AIGW__ATTEMPT_REF__INIT;
    r.attempt_id = attempt_id;
    return fake_broker_send (self, WIRE_W_CANCEL, &r.base, NULL, 0);
}

int fake_broker_beat (fake_broker_t *self, uint64_t instance)
{
    Aigw__BrokerBeat b = AIGW__BROKER_BEAT__INIT;
    b.has_instance = true;
    b.instance = instance;
    return fake_broker_send (self, WIRE_W_HEARTBEAT, instance ? &b.base : NULL, NULL, 0);
}

//  Wait on a socket monitor for event within timeout_ms. 0 / -1.
static int s_wait_event (void *mon, uint16_t event, int timeout_ms)
{
    int64_t until = aclock_now_ms () + timeout_ms;
    for (;;) {
        int64_t left = until - aclock_now_ms ();
        zmq_pollitem_t item = { mon, 0, ZMQ_POLLIN, 0 };
        if (left <= 0 || zmq_poll (&item, 1, (long) left) <= 0)
            return -1;
        zmq_msg_t frame;
        zmq_msg_init (&frame);
        if (zmq_msg_recv (&frame, mon, 0) < 6) {
            zmq_msg_close (&frame);
            return -1;
        }
        uint16_t got;
        memcpy (&got, zmq_msg_data (&frame), sizeof got);
        bool more = zmq_msg_more (&frame);
        zmq_msg_close (&frame);
        if (more) {                     // the endpoint frame
            zmq_msg_init (&frame);
            zmq_msg_recv (&frame, mon, 0);
            zmq_msg_close (&frame);
        }
        if (got == event)
            return 0;
    }
}

int fake_broker_restart (fake_broker_t *self)
{
    assert (self->driven);
    char monitor[64];
    snprintf (monitor, sizeof monitor, "inproc://fake-broker-monitor-%u", self->restarts++);
    if (zmq_socket_monitor (self->router, monitor, ZMQ_EVENT_CLOSED))
        return -1;
    int rc = -1;
    void *mon = zmq_socket (self->ctx, ZMQ_PAIR);
    if (!mon || zmq_connect (mon, monitor))
        goto done;
    //  The listener's CLOSED event: its port is free again
    if (zmq_unbind (self->router, self->endpoint) || s_wait_event (mon, ZMQ_EVENT_CLOSED,
                                                                   S_UNBIND_MS))
        goto done;
    zmq_close (self->router);
    self->router = NULL;
    self->peer_len = 0;
    char endpoint[sizeof self->endpoint];
    snprintf (endpoint, sizeof endpoint, "%s", self->endpoint);
    rc = s_bind (self, endpoint);
done:
    if (self->router)
        zmq_socket_monitor (self->router, NULL, 0);
    if (mon)
        zmq_close (mon);
    return rc;
}
