// Unit tests for the edge's broker link (one loop's DEALER, driven by the test thread)
// against the fake broker, scripted or driven by the test, on tcp loopback: routing
// by job_id, CHUNKs, final answers, cancel, PING/PONG status, liveness, fail_all,
// malformed input. The routing table itself: test_edge_jobmap.c.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <zmq.h>

#include "link.h"
#include "fake_broker.h"
#include "wire.h"
#include "aclock.h"
#include "log.h"

#define S_MODELS "fast-sim,slow-sim,never,agent/deliberate"
#define S_WAIT_MS 10000                 // generous bound for any awaited event
#define S_GOT_MAX 4096

//  One call of the link's answer function.
typedef struct {
    void *req;
    uint8_t cmd;
    uint64_t job_id;
    int code;                           // ERROR's code
    char message[128];                  // ERROR's message
    char model[64];                     // RESULT's or CHUNK's model
    uint32_t seq;                       // CHUNK's seq
    size_t waiting;                     // edge_link_waiting during the call
} s_got_t;

//  The fake broker driven by the test: answers PING with PONG, notes SUBMITs.
typedef struct {
    fake_broker_t *fb;                  // driven, the client side
    uint8_t id[WIRE_ID_MAX];            // the link's routing id (from its first message)
    size_t id_len;
    uint64_t submitted[64];             // job ids in SUBMIT order
    size_t nsubmitted;
    bool silent;                        // read everything, answer nothing
    bool new_peer;                      // a message came from another routing id
    uint64_t instance;                  // BrokerStatus.instance in PONGs (0: not set)
    uint32_t workers;                   // BrokerStatus.workers in PONGs
} s_raw_t;

typedef struct {
    fake_broker_t *fb;
    s_raw_t *raw;                       // instead of fb (malformed-input tests)
    s_raw_t *raw2;                      // a second broker (edge/broker lists both)
    s_raw_t *to;                        // the raw broker s_raw_* answer from (NULL: raw)
    cfg_t *cfg;
    void *zctx;
    edge_status_box_t *box;
    edge_link_t *link;
    int64_t next_tick;
    s_got_t got[S_GOT_MAX];
    size_t ngot;
    uint64_t next_id;
    bool resubmit;                      // on the first ERROR, submit a new job from fn
    uint64_t resubmitted;               // its job id
} s_fix_t;

static int s_req[16];                   // distinct req pointers: &s_req[i]

//  --------------------------------------------------------------- plumbing

static void s_on_answer (void *req, edge_answer_t *a, void *arg)
{
    s_fix_t *f = arg;
    assert_true (f->ngot < S_GOT_MAX);
    s_got_t *g = &f->got[f->ngot++];
    memset (g, 0, sizeof *g);
    g->req = req;
    g->cmd = a->cmd;
    g->waiting = edge_link_waiting (f->link);
    if (a->result) {
        g->job_id = a->result->job_id;
        snprintf (g->model, sizeof g->model, "%s", a->result->model ? a->result->model : "");
    }
    if (a->error) {
        g->job_id = a->error->job_id;
        g->code = a->error->code;
        snprintf (g->message, sizeof g->message, "%s", a->error->message ? a->error->message : "");
    }
    if (a->chunk) {
        g->job_id = a->chunk->job_id;
        g->seq = a->chunk->seq;
        snprintf (g->model, sizeof g->model, "%s", a->chunk->model ? a->chunk->model : "");
    }
    edge_link_answer_reset (a);
    if (f->resubmit && g->cmd == WIRE_C_ERROR) {
        //  fn may use the link: submit from inside fail_all
        f->resubmit = false;
        Aigw__Job job = AIGW__JOB__INIT;
        char *targets[] = { "never" };
        job.job_id = f->resubmitted = ++f->next_id;
        job.n_targets = 1;
        job.targets = targets;
        assert_int_equal (edge_link_submit (f->link, &job, "{}", 2, &s_req[15]), 0);
    }
}

//  The raw broker answers PING and notes SUBMITs.
static void s_raw_handle (s_raw_t *raw, wire_msg_t *m)
{
    if (m->cmd == WIRE_C_PING) {
        Aigw__BrokerStatus st = AIGW__BROKER_STATUS__INIT;
        st.has_workers = true;
        st.workers = raw->workers;
        st.broker_id = "raw-broker";
        st.has_instance = raw->instance != 0;
        st.instance = raw->instance;
        fake_broker_send (raw->fb, WIRE_C_PONG, &st.base, NULL, 0);
    }
    else
    if (m->cmd == WIRE_C_SUBMIT) {
        Aigw__Job *job = (Aigw__Job *) wire_unpack (&aigw__job__descriptor, &m->body);
        if (job && raw->nsubmitted < 64)
            raw->submitted[raw->nsubmitted++] = job->job_id;
        if (job)
            aigw__job__free_unpacked (job, NULL);
    }
}

static void s_raw_service (s_raw_t *raw)
{
    wire_msg_t m;
    int rc;
    while ((rc = fake_broker_recv (raw->fb, 0, &m)) != -1) {
        if (rc == -2)
            continue;
        if (raw->id_len && (m.id_len != raw->id_len || memcmp (m.id, raw->id, m.id_len)))
            raw->new_peer = true;
        memcpy (raw->id, m.id, m.id_len);
        raw->id_len = m.id_len;
        if (!raw->silent)
            s_raw_handle (raw, &m);
        wire_msg_close (&m);
    }
}

//  One round of the loop the server runs: read, tick, wait a little for input.
static void s_pump (s_fix_t *f)
{
    edge_link_recv (f->link);
    int64_t now = aclock_now_ms ();
    if (now >= f->next_tick)
        f->next_tick = edge_link_tick (f->link, now);
    zmq_pollitem_t items[2 * CFG_BROKERS_MAX + 1];
    size_t n = edge_link_poll_items (f->link, items, 2 * CFG_BROKERS_MAX);
    if (f->raw)
        items[n++] = (zmq_pollitem_t) { fake_broker_socket (f->raw->fb), 0, ZMQ_POLLIN, 0 };
    int64_t wait = f->next_tick - now;
    zmq_poll (items, (int) n, wait < 0 ? 0 : wait > 5 ? 5 : (long) wait);
    if (f->raw)
        s_raw_service (f->raw);
    if (f->raw2)
        s_raw_service (f->raw2);
    edge_link_recv (f->link);
    f->next_tick = edge_link_tick (f->link, aclock_now_ms ());
}

//  How many sockets the link asks the loop to poll.
static size_t s_nitems (s_fix_t *f)
{
    zmq_pollitem_t items[2 * CFG_BROKERS_MAX];
    return edge_link_poll_items (f->link, items, 2 * CFG_BROKERS_MAX);
}

//  Drive the link until cond holds or S_WAIT_MS passed (then the assert after fails).
#define S_PUMP_UNTIL(f, cond) do {                                      \
        int64_t s_end_ = aclock_now_ms () + S_WAIT_MS;                  \
        while (!(cond) && aclock_now_ms () < s_end_)                    \
            s_pump (f);                                                 \
    } while (0)

static edge_link_stats_t s_stats (s_fix_t *f)
{
    edge_link_stats_t st;
    edge_link_stats (f->link, &st);
    return st;
}

static fake_broker_stats_t s_fb_stats (s_fix_t *f)
{
    fake_broker_stats_t st;
    fake_broker_stats (f->fb, &st);
    return st;
}

static uint64_t s_submit_as (s_fix_t *f, const char *target, bool stream, const char *payload,
                             void *req, int *rc)
{
    Aigw__Job job = AIGW__JOB__INIT;
    char *targets[] = { (char *) target };
    job.job_id = ++f->next_id;
    job.n_targets = 1;
    job.targets = targets;
    job.has_stream = stream;
    job.stream = stream;
    *rc = edge_link_submit (f->link, &job, payload, strlen (payload), req);
    return job.job_id;
}

static uint64_t s_submit (s_fix_t *f, const char *target, bool stream, void *req)
{
    int rc;
    uint64_t id = s_submit_as (f, target, stream, "{}", req, &rc);
    assert_int_equal (rc, 0);
    return id;
}

//  The answer recorded for job_id (the n-th one, from 0), or NULL.
static const s_got_t *s_got (s_fix_t *f, uint64_t job_id, int nth)
{
    for (size_t i = 0; i < f->ngot; i++)
        if (f->got[i].job_id == job_id && nth-- == 0)
            return &f->got[i];
    return NULL;
}

static cfg_t *s_cfg (const char *broker)
{
    cfg_t *cfg = cfg_defaults ();
    snprintf (cfg->edge.broker, sizeof cfg->edge.broker, "%s", broker);
    cfg->broker.heartbeat_ms = 50;
    cfg->broker.liveness = 4;
    return cfg;
}

static s_raw_t *s_raw_new (void)
{
    s_raw_t *raw = calloc (1, sizeof *raw);
    assert_non_null (raw);
    raw->fb = fake_broker_new_driven ("tcp://127.0.0.1:*", WIRE_SIDE_CLIENT);
    assert_non_null (raw->fb);
    raw->workers = 1;
    return raw;
}

static void s_raw_destroy (s_raw_t **raw_p)
{
    if (!*raw_p)
        return;
    fake_broker_destroy (&(*raw_p)->fb);
    free (*raw_p);
    *raw_p = NULL;
}

//  A link in a fresh context to endpoint, or (endpoint NULL) to a driven fake broker.
static s_fix_t *s_fix_new (const char *endpoint)
{
    s_fix_t *f = calloc (1, sizeof *f);
    assert_non_null (f);
    f->zctx = zmq_ctx_new ();
    f->box = edge_status_box_new ();
    assert_non_null (f->zctx);
    assert_non_null (f->box);
    if (!endpoint) {
        f->raw = s_raw_new ();
        endpoint = fake_broker_endpoint (f->raw->fb);
    }
    f->cfg = s_cfg (endpoint);
    f->link = edge_link_new (f->cfg, f->zctx, f->box, s_on_answer, f);
    assert_non_null (f->link);
    return f;
}

static void s_fix_destroy (s_fix_t **f_p)
{
    s_fix_t *f = *f_p;
    edge_link_destroy (&f->link);
    edge_link_destroy (&f->link);
    assert_null (f->link);
    s_raw_destroy (&f->raw);
    s_raw_destroy (&f->raw2);
    zmq_ctx_term (f->zctx);
    edge_status_box_destroy (&f->box);
    fake_broker_destroy (&f->fb);
    cfg_destroy (&f->cfg);
    free (f);
    *f_p = NULL;
}

static int s_setup (void **state)
{
    log_init ("edge-link-test", LOG_LVL_WARN);
    fake_broker_t *fb = fake_broker_new ("tcp://127.0.0.1:*", S_MODELS, 2);
    if (!fb)
        return -1;
    s_fix_t *f = s_fix_new (fake_broker_endpoint (fb));
    f->fb = fb;
    *state = f;
    S_PUMP_UNTIL (f, edge_link_up (f->link));
    return edge_link_up (f->link) ? 0 : -1;
}

static int s_setup_raw (void **state)
{
    log_init ("edge-link-test", LOG_LVL_WARN);
    s_fix_t *f = s_fix_new (NULL);
    *state = f;
    S_PUMP_UNTIL (f, edge_link_up (f->link) && f->raw->id_len > 0);
    return edge_link_up (f->link) ? 0 : -1;
}

//  Two driven brokers, both in edge/broker.
static int s_setup_two (void **state)
{
    log_init ("edge-link-test", LOG_LVL_ERROR);
    s_raw_t *a = s_raw_new (), *b = s_raw_new ();
    char list[600];
    snprintf (list, sizeof list, "%s, %s", fake_broker_endpoint (a->fb),
              fake_broker_endpoint (b->fb));
    s_fix_t *f = s_fix_new (list);
    f->raw = a;
    f->raw2 = b;
    *state = f;
    size_t live = 0;
    S_PUMP_UNTIL (f, edge_link_brokers (f->link, &live) == 2 && live == 2 && a->id_len
                     && b->id_len);
    return live == 2 ? 0 : -1;
}

static int s_teardown (void **state)
{
    s_fix_t *f = *state;
    s_fix_destroy (&f);
    return 0;
}

//  Send a message from the raw broker frame by frame (NULL data = empty frame).
static void s_raw_frames (s_fix_t *f, int n, const void *const *data, const size_t *len)
{
    assert_int_equal (fake_broker_send_frames (f->raw->fb, n, data, len), 0);
}

static void s_raw_send (s_fix_t *f, uint8_t cmd, const ProtobufCMessage *body)
{
    assert_int_equal (fake_broker_send ((f->to ? f->to : f->raw)->fb, cmd, body, NULL, 0), 0);
}

static void s_raw_result (s_fix_t *f, uint64_t job_id)
{
    Aigw__Result r = AIGW__RESULT__INIT;
    r.job_id = job_id;
    r.model = "raw-model";
    s_raw_send (f, WIRE_C_RESULT, &r.base);
}

static void s_raw_error (s_fix_t *f, uint64_t job_id, Aigw__ErrorCode code)
{
    Aigw__Error e = AIGW__ERROR__INIT;
    e.job_id = job_id;
    e.code = code;
    e.message = "raw error";
    s_raw_send (f, WIRE_C_ERROR, &e.base);
}

static void s_raw_chunk (s_fix_t *f, uint64_t job_id, uint32_t seq)
{
    Aigw__Chunk c = AIGW__CHUNK__INIT;
    c.job_id = job_id;
    c.has_seq = true;
    c.seq = seq;
    c.model = "raw-model";
    s_raw_send (f, WIRE_C_CHUNK, &c.base);
}

//  --------------------------------------------------------------- against the fake broker

static void test_submit_result (void **state)
{
    s_fix_t *f = *state;
    const char *payload = "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}]}";
    int rc;
    uint64_t id = s_submit_as (f, "fast-sim", false, payload, &s_req[0], &rc);
    assert_int_equal (rc, 0);
    assert_int_equal (edge_link_waiting (f->link), 1);
    S_PUMP_UNTIL (f, f->ngot == 1);
    assert_int_equal (f->ngot, 1);
    const s_got_t *g = &f->got[0];
    assert_ptr_equal (g->req, &s_req[0]);
    assert_int_equal (g->cmd, WIRE_C_RESULT);
    assert_int_equal (g->job_id, id);
    assert_string_equal (g->model, "fast-sim");
    assert_int_equal (g->waiting, 0);   // final: the route is gone before the call
    assert_int_equal (edge_link_waiting (f->link), 0);
    fake_broker_job_t last;
    fake_broker_last_job (f->fb, &last);
    assert_int_equal (last.job_id, id);
    assert_string_equal (last.targets, "fast-sim");
    assert_string_equal (last.payload, payload);
    edge_link_stats_t st = s_stats (f);
    assert_int_equal (st.submitted, 1);
    assert_int_equal (st.results, 1);
    assert_int_equal (st.unrouted, 0);
    assert_int_equal (st.submit_failed, 0);
}

static void test_interleaved_routing (void **state)
{
    s_fix_t *f = *state;
    //  Held jobs wait while quick ones submitted after them are answered
    uint64_t held[3], quick[3];
    for (int i = 0; i < 3; i++) {
        held[i] = s_submit (f, "never", false, &s_req[i]);
        quick[i] = s_submit (f, i % 2 ? "fast-sim" : "agent/deliberate", false, &s_req[8 + i]);
    }
    S_PUMP_UNTIL (f, f->ngot == 3 && s_fb_stats (f).held == 3);
    assert_int_equal (f->ngot, 3);
    assert_int_equal (edge_link_waiting (f->link), 3);
    for (int i = 0; i < 3; i++) {
        const s_got_t *g = s_got (f, quick[i], 0);
        assert_non_null (g);
        assert_ptr_equal (g->req, &s_req[8 + i]);
        assert_int_equal (g->cmd, WIRE_C_RESULT);
        assert_string_equal (g->model, i % 2 ? "fast-sim" : "agent/deliberate");
        assert_null (s_got (f, held[i], 0));
    }
    //  Released: each held answer reaches its own request
    fake_broker_release (f->fb);
    S_PUMP_UNTIL (f, f->ngot == 6);
    assert_int_equal (f->ngot, 6);
    for (int i = 0; i < 3; i++) {
        const s_got_t *g = s_got (f, held[i], 0);
        assert_non_null (g);
        assert_ptr_equal (g->req, &s_req[i]);
        assert_int_equal (g->cmd, WIRE_C_RESULT);
    }
    assert_int_equal (edge_link_waiting (f->link), 0);
    //  Many jobs in flight at once, several per request pointer
    f->ngot = 0;
    enum { N = 600 };
    static uint64_t ids[N];
    for (int i = 0; i < N; i++)
        ids[i] = s_submit (f, i % 3 ? "fast-sim" : "slow-sim", false, &s_req[i % 8]);
    S_PUMP_UNTIL (f, f->ngot == N);
    assert_int_equal (f->ngot, N);
    for (int i = 0; i < N; i++) {
        const s_got_t *g = s_got (f, ids[i], 0);
        assert_non_null (g);
        assert_ptr_equal (g->req, &s_req[i % 8]);
        assert_string_equal (g->model, i % 3 ? "fast-sim" : "slow-sim");
        assert_null (s_got (f, ids[i], 1));
    }
    edge_link_stats_t st = s_stats (f);
    assert_int_equal (st.results, 6 + N);
    assert_int_equal (st.unrouted, 0);
}

static void test_chunks_keep_route (void **state)
{
    s_fix_t *f = *state;
    uint64_t other = s_submit (f, "never", false, &s_req[1]);
    uint64_t id = s_submit (f, "fast-sim", true, &s_req[0]);
    //  4 CHUNKs then the RESULT, all to the same request
    S_PUMP_UNTIL (f, f->ngot == 5);
    assert_int_equal (f->ngot, 5);
    for (int i = 0; i < 4; i++) {
        assert_int_equal (f->got[i].cmd, WIRE_C_CHUNK);
        assert_int_equal (f->got[i].job_id, id);
        assert_ptr_equal (f->got[i].req, &s_req[0]);
        assert_int_equal (f->got[i].seq, i);
        assert_int_equal (f->got[i].waiting, 2);        // a CHUNK keeps the route
    }
    assert_int_equal (f->got[4].cmd, WIRE_C_RESULT);
    assert_ptr_equal (f->got[4].req, &s_req[0]);
    assert_int_equal (f->got[4].waiting, 1);            // only the held job is left
    edge_link_stats_t st = s_stats (f);
    assert_int_equal (st.chunks, 4);
    assert_int_equal (st.results, 1);
    assert_null (s_got (f, other, 0));
}

static void test_cancel (void **state)
{
    s_fix_t *f = *state;
    uint64_t id = s_submit (f, "never", false, &s_req[0]);
    S_PUMP_UNTIL (f, s_fb_stats (f).held == 1);
    assert_int_equal (s_fb_stats (f).held, 1);
    edge_link_cancel (f->link, id);
    assert_int_equal (edge_link_waiting (f->link), 0);
    assert_int_equal (s_stats (f).cancels, 1);
    //  The broker sees the CANCEL and acknowledges with ERROR(ERR_CANCELLED): nobody
    //  waits for it any more, so it is counted and dropped
    S_PUMP_UNTIL (f, s_fb_stats (f).cancels == 1 && s_stats (f).unrouted == 1);
    assert_int_equal (s_fb_stats (f).cancels, 1);
    assert_int_equal (s_fb_stats (f).held, 0);
    assert_int_equal (s_stats (f).unrouted, 1);
    assert_int_equal (f->ngot, 0);
    //  Unknown ids are fine
    edge_link_cancel (f->link, 987654321);
    edge_link_cancel (f->link, id);
    S_PUMP_UNTIL (f, s_stats (f).unrouted == 3);
    assert_int_equal (s_stats (f).unrouted, 3);
    assert_int_equal (f->ngot, 0);
    //  The link still routes
    uint64_t next = s_submit (f, "fast-sim", false, &s_req[2]);
    S_PUMP_UNTIL (f, f->ngot == 1);
    assert_non_null (s_got (f, next, 0));
    assert_ptr_equal (f->got[0].req, &s_req[2]);
}

static void test_status_pong (void **state)
{
    s_fix_t *f = *state;
    assert_true (edge_link_up (f->link));
    edge_status_t *st = edge_status_box_get (f->box);
    assert_non_null (st);
    assert_int_equal (st->nmodels, 4);
    assert_int_equal (st->workers, 2);
    assert_string_equal (st->broker_id, "fake-broker");
    assert_true (edge_status_live (st, "agent/deliberate"));
    assert_false (edge_status_live (st, "gpt-17"));
    int64_t first = st->at_ms;
    edge_status_release (&st);
    //  PINGs keep flowing; each PONG replaces the snapshot
    edge_link_stats_t before = s_stats (f);
    assert_true (before.pings >= 1);
    assert_true (before.pongs >= 1);
    S_PUMP_UNTIL (f, s_stats (f).pongs >= before.pongs + 2);
    edge_link_stats_t after = s_stats (f);
    assert_true (after.pongs >= before.pongs + 2);
    assert_true (after.pings >= before.pings + 2);
    st = edge_status_box_get (f->box);
    assert_non_null (st);
    assert_true (st->at_ms > first);
    edge_status_release (&st);
    assert_true (edge_link_up (f->link));
    assert_int_equal (after.bad_messages, 0);
}

static void test_broker_silence (void **state)
{
    s_fix_t *f = *state;
    uint64_t a = s_submit (f, "never", false, &s_req[0]);
    uint64_t b = s_submit (f, "never", true, &s_req[1]);
    S_PUMP_UNTIL (f, s_fb_stats (f).held == 2);
    assert_int_equal (s_fb_stats (f).held, 2);
    fake_broker_set_silent (f->fb, true);
    //  Silent for heartbeat * liveness: down, and both waiting jobs fail
    S_PUMP_UNTIL (f, f->ngot == 2);
    assert_int_equal (f->ngot, 2);
    const s_got_t *ga = s_got (f, a, 0), *gb = s_got (f, b, 0);
    assert_non_null (ga);
    assert_non_null (gb);
    assert_ptr_equal (ga->req, &s_req[0]);
    assert_ptr_equal (gb->req, &s_req[1]);
    for (int i = 0; i < 2; i++) {
        assert_int_equal (f->got[i].cmd, WIRE_C_ERROR);
        assert_int_equal (f->got[i].code, AIGW__ERROR_CODE__ERR_UNAVAILABLE);
        assert_string_equal (f->got[i].message, "lost the connection to the broker");
    }
    assert_false (edge_link_up (f->link));
    assert_int_equal (edge_link_waiting (f->link), 0);
    edge_link_stats_t st = s_stats (f);
    assert_int_equal (st.failed_on_down, 2);
    assert_true (st.reconnects >= 1);
    //  While down the socket is recreated again and again
    S_PUMP_UNTIL (f, s_stats (f).reconnects >= st.reconnects + 2);
    assert_true (s_stats (f).reconnects >= st.reconnects + 2);
    assert_false (edge_link_up (f->link));
    //  It heals when the broker answers again
    fake_broker_set_silent (f->fb, false);
    S_PUMP_UNTIL (f, edge_link_up (f->link));
    assert_true (edge_link_up (f->link));
    uint64_t c = s_submit (f, "fast-sim", false, &s_req[2]);
    S_PUMP_UNTIL (f, s_got (f, c, 0) != NULL);
    const s_got_t *gc = s_got (f, c, 0);
    assert_non_null (gc);
    assert_int_equal (gc->cmd, WIRE_C_RESULT);
    assert_ptr_equal (gc->req, &s_req[2]);
    assert_int_equal (s_stats (f).failed_on_down, 2);
}

static void test_fail_all (void **state)
{
    s_fix_t *f = *state;
    uint64_t ids[3];
    for (int i = 0; i < 3; i++)
        ids[i] = s_submit (f, "never", i == 1, &s_req[i]);
    S_PUMP_UNTIL (f, s_fb_stats (f).held == 3);
    assert_int_equal (s_fb_stats (f).held, 3);
    //  Every waiting job is answered inside the call; fn may submit a new job meanwhile
    f->resubmit = true;
    edge_link_fail_all (f->link, "shutting down");
    assert_int_equal (f->ngot, 3);
    for (int i = 0; i < 3; i++) {
        const s_got_t *g = s_got (f, ids[i], 0);
        assert_non_null (g);
        assert_ptr_equal (g->req, &s_req[i]);
        assert_int_equal (g->cmd, WIRE_C_ERROR);
        assert_int_equal (g->code, AIGW__ERROR_CODE__ERR_UNAVAILABLE);
        assert_string_equal (g->message, "shutting down");
    }
    assert_int_equal (edge_link_waiting (f->link), 1);  // the job fn submitted
    assert_int_equal (s_stats (f).cancels, 3);
    S_PUMP_UNTIL (f, s_fb_stats (f).cancels == 3 && s_fb_stats (f).held == 1);
    assert_int_equal (s_fb_stats (f).cancels, 3);
    assert_int_equal (s_fb_stats (f).held, 1);
    //  The broker's acknowledgements find no route
    S_PUMP_UNTIL (f, s_stats (f).unrouted == 3);
    assert_int_equal (s_stats (f).unrouted, 3);
    //  The default message; the job submitted from fn is failed too
    edge_link_fail_all (f->link, NULL);
    const s_got_t *g = s_got (f, f->resubmitted, 0);
    assert_non_null (g);
    assert_ptr_equal (g->req, &s_req[15]);
    assert_string_equal (g->message, "job abandoned");
    assert_int_equal (edge_link_waiting (f->link), 0);
    //  Nothing waits: a no-op
    size_t n = f->ngot;
    edge_link_fail_all (f->link, "again");
    assert_int_equal (f->ngot, n);
}

static void test_not_connected (void **state)
{
    (void) state;
    log_init ("edge-link-test", LOG_LVL_ERROR);
    //  Nothing listens on this endpoint (a free port, bound and released)
    fake_broker_t *gone = fake_broker_new ("tcp://127.0.0.1:*", "", 0);
    assert_non_null (gone);
    char endpoint[256];
    snprintf (endpoint, sizeof endpoint, "%s", fake_broker_endpoint (gone));
    fake_broker_destroy (&gone);
    s_fix_t *f = s_fix_new (endpoint);
    assert_false (edge_link_up (f->link));
    assert_int_equal (s_nitems (f), 2);     // the DEALER and its monitor
    s_pump (f);
    //  ZMQ_IMMEDIATE: a SUBMIT fails at once and registers nothing
    int rc;
    s_submit_as (f, "fast-sim", false, "{}", &s_req[0], &rc);
    assert_int_equal (rc, -1);
    assert_int_equal (edge_link_waiting (f->link), 0);
    edge_link_stats_t st = s_stats (f);
    assert_int_equal (st.submit_failed, 1);
    assert_int_equal (st.submitted, 0);
    assert_int_equal (st.pings, 0);     // nothing could be sent
    //  Never up: no status, and the socket is recreated after heartbeat * liveness
    S_PUMP_UNTIL (f, s_stats (f).reconnects >= 1);
    assert_true (s_stats (f).reconnects >= 1);
    assert_int_equal (s_nitems (f), 2);     // the DEALER and its monitor
    assert_false (edge_link_up (f->link));
    assert_null (edge_status_box_get (f->box));
    assert_int_equal (f->ngot, 0);
    s_fix_destroy (&f);
    log_init ("edge-link-test", LOG_LVL_WARN);
}

//  --------------------------------------------------------------- driven fake broker

static void test_final_answers (void **state)
{
    s_fix_t *f = *state;
    uint64_t a = s_submit (f, "any", true, &s_req[0]);
    uint64_t b = s_submit (f, "any", false, &s_req[1]);
    S_PUMP_UNTIL (f, f->raw->nsubmitted == 2);
    assert_int_equal (f->raw->nsubmitted, 2);
    assert_int_equal (f->raw->submitted[0], a);
    //  a: CHUNK, CHUNK, RESULT routed; what follows the RESULT is unrouted
    s_raw_chunk (f, a, 0);
    s_raw_chunk (f, a, 1);
    s_raw_result (f, a);
    s_raw_chunk (f, a, 2);
    s_raw_result (f, a);
    s_raw_error (f, a, AIGW__ERROR_CODE__ERR_UPSTREAM);
    //  b: ERROR is final too
    s_raw_error (f, b, AIGW__ERROR_CODE__ERR_UPSTREAM);
    s_raw_result (f, b);
    s_raw_chunk (f, b, 0);
    //  a job nobody submitted
    s_raw_result (f, 424242);
    S_PUMP_UNTIL (f, s_stats (f).unrouted == 6);
    edge_link_stats_t st = s_stats (f);
    assert_int_equal (st.unrouted, 6);
    assert_int_equal (st.chunks, 2);
    assert_int_equal (st.results, 1);
    assert_int_equal (st.errors, 1);
    assert_int_equal (f->ngot, 4);
    assert_int_equal (f->got[0].cmd, WIRE_C_CHUNK);
    assert_int_equal (f->got[1].cmd, WIRE_C_CHUNK);
    assert_int_equal (f->got[1].seq, 1);
    assert_int_equal (f->got[2].cmd, WIRE_C_RESULT);
    assert_string_equal (f->got[2].model, "raw-model");
    for (int i = 0; i < 3; i++)
        assert_ptr_equal (f->got[i].req, &s_req[0]);
    assert_int_equal (f->got[3].cmd, WIRE_C_ERROR);
    assert_int_equal (f->got[3].code, AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_string_equal (f->got[3].message, "raw error");
    assert_ptr_equal (f->got[3].req, &s_req[1]);
    assert_int_equal (edge_link_waiting (f->link), 0);
    assert_int_equal (st.bad_messages, 0);
}

//  After silence the link talks to the broker on a new socket (a new connection, so a
//  new routing id at the ROUTER), and the old one is gone.
static void test_reconnect_new_socket (void **state)
{
    s_fix_t *f = *state;
    uint64_t id = s_submit (f, "any", false, &s_req[0]);
    S_PUMP_UNTIL (f, f->raw->nsubmitted == 1);
    f->raw->silent = true;
    S_PUMP_UNTIL (f, f->ngot == 1);
    assert_int_equal (f->ngot, 1);
    assert_int_equal (f->got[0].job_id, id);
    assert_int_equal (f->got[0].code, AIGW__ERROR_CODE__ERR_UNAVAILABLE);
    assert_false (edge_link_up (f->link));
    S_PUMP_UNTIL (f, f->raw->new_peer);
    assert_true (f->raw->new_peer);
    assert_true (s_stats (f).reconnects >= 1);
    //  Answering again: up, and a job goes through the new socket
    f->raw->silent = false;
    S_PUMP_UNTIL (f, edge_link_up (f->link));
    assert_true (edge_link_up (f->link));
    f->raw->new_peer = false;
    uint64_t next = s_submit (f, "any", false, &s_req[1]);
    S_PUMP_UNTIL (f, f->raw->nsubmitted == 2);
    assert_int_equal (f->raw->submitted[1], next);
    s_raw_result (f, next);
    S_PUMP_UNTIL (f, f->ngot == 2);
    assert_int_equal (f->ngot, 2);
    assert_ptr_equal (f->got[1].req, &s_req[1]);
    assert_false (f->raw->new_peer);    // the same socket since it came back
}

static void test_malformed (void **state)
{
    s_fix_t *f = *state;
    uint64_t id = s_submit (f, "any", false, &s_req[0]);
    S_PUMP_UNTIL (f, f->raw->nsubmitted == 1);
    assert_int_equal (f->raw->nsubmitted, 1);
    uint8_t result = WIRE_C_RESULT, submit = WIRE_C_SUBMIT, junk_cmd = 0x7f;
    static const uint8_t garbage[] = { 0xff, 0xff, 0xff, 0xff, 0x0f };
    //  Framing the wire layer refuses
    s_raw_frames (f, 1, (const void *[]) { "XXXXXX" }, (size_t[]) { 6 });
    s_raw_frames (f, 1, (const void *[]) { "AIGWC" }, (size_t[]) { 5 });
    s_raw_frames (f, 1, (const void *[]) { WIRE_CLIENT }, (size_t[]) { 6 });
    s_raw_frames (f, 2, (const void *[]) { WIRE_CLIENT, "\x12\x12" }, (size_t[]) { 6, 2 });
    s_raw_frames (f, 5, (const void *[]) { WIRE_CLIENT, &result, NULL, NULL, NULL },
                  (size_t[]) { 6, 1, 0, 0, 0 });
    //  Valid framing, wrong side or command
    s_raw_frames (f, 3, (const void *[]) { WIRE_WORKER, &result, NULL }, (size_t[]) { 6, 1, 0 });
    s_raw_frames (f, 3, (const void *[]) { WIRE_CLIENT, &submit, NULL }, (size_t[]) { 6, 1, 0 });
    s_raw_frames (f, 3, (const void *[]) { WIRE_CLIENT, &junk_cmd, NULL }, (size_t[]) { 6, 1, 0 });
    //  Bodies that do not decode, or name job 0
    uint8_t cmds[] = { WIRE_C_RESULT, WIRE_C_ERROR, WIRE_C_CHUNK, WIRE_C_PONG };
    for (size_t i = 0; i < sizeof cmds; i++)
        s_raw_frames (f, 3, (const void *[]) { WIRE_CLIENT, &cmds[i], garbage },
                      (size_t[]) { 6, 1, sizeof garbage });
    s_raw_frames (f, 3, (const void *[]) { WIRE_CLIENT, &result, NULL }, (size_t[]) { 6, 1, 0 });
    s_raw_result (f, 0);
    s_raw_chunk (f, 0, 0);
    enum { N_BAD = 15 };
    S_PUMP_UNTIL (f, s_stats (f).bad_messages == N_BAD);
    edge_link_stats_t st = s_stats (f);
    assert_int_equal (st.bad_messages, N_BAD);
    assert_int_equal (st.unrouted, 0);
    assert_int_equal (f->ngot, 0);
    assert_int_equal (edge_link_waiting (f->link), 1);
    //  The link goes on: a good answer still reaches its request, the link is up
    s_raw_result (f, id);
    S_PUMP_UNTIL (f, f->ngot == 1);
    assert_int_equal (f->ngot, 1);
    assert_ptr_equal (f->got[0].req, &s_req[0]);
    assert_int_equal (f->got[0].job_id, id);
    assert_true (edge_link_up (f->link));
    assert_int_equal (s_stats (f).bad_messages, N_BAD);
}

//  Protected mode holds for every broker of the list, not just the first.
static void test_protected_mode_every_broker (void **state)
{
    (void) state;
    log_init ("edge-link-test", LOG_LVL_ERROR);
    void *zctx = zmq_ctx_new ();
    edge_status_box_t *box = edge_status_box_new ();
    cfg_t *cfg = s_cfg ("tcp://127.0.0.1:5555, tcp://10.0.0.2:5555");
    s_fix_t dummy = { 0 };
    assert_null (edge_link_new (cfg, zctx, box, s_on_answer, &dummy));
    cfg->fabric.insecure = true;
    edge_link_t *link = edge_link_new (cfg, zctx, box, s_on_answer, &dummy);
    assert_non_null (link);
    assert_int_equal (edge_link_brokers (link, NULL), 2);
    edge_link_destroy (&link);
    cfg_destroy (&cfg);
    edge_status_box_destroy (&box);
    zmq_ctx_term (zctx);
    log_init ("edge-link-test", LOG_LVL_WARN);
}

//  --------------------------------------------------------------- lost brokers

//  A broker restart drops the connection: the job that sent nothing yet is resubmitted
//  (same id) to the broker once it is back with workers; the stream that already sent a
//  CHUNK fails at once. The client gets exactly one final answer for each.
static void test_restart_resubmits (void **state)
{
    s_fix_t *f = *state;
    log_init ("edge-link-test", LOG_LVL_ERROR);
    uint64_t a = s_submit (f, "any", false, &s_req[0]);
    uint64_t b = s_submit (f, "any", true, &s_req[1]);
    S_PUMP_UNTIL (f, f->raw->nsubmitted == 2);
    assert_int_equal (f->raw->nsubmitted, 2);
    s_raw_chunk (f, b, 0);
    S_PUMP_UNTIL (f, f->ngot == 1);
    assert_int_equal (f->got[0].cmd, WIRE_C_CHUNK);
    //  Back without workers first: a waits for them
    f->raw->workers = 0;
    assert_int_equal (fake_broker_restart (f->raw->fb), 0);
    S_PUMP_UNTIL (f, s_got (f, b, 1) != NULL);
    const s_got_t *gb = s_got (f, b, 1);
    assert_non_null (gb);
    assert_int_equal (gb->cmd, WIRE_C_ERROR);
    assert_int_equal (gb->code, AIGW__ERROR_CODE__ERR_UNAVAILABLE);
    assert_string_equal (gb->message, "lost the connection to the broker");
    assert_null (s_got (f, a, 0));
    assert_int_equal (edge_link_waiting (f->link), 1);
    S_PUMP_UNTIL (f, s_stats (f).pongs >= 2 && edge_link_up (f->link));
    assert_int_equal (f->raw->nsubmitted, 2);       // no workers: not yet
    f->raw->workers = 1;
    S_PUMP_UNTIL (f, f->raw->nsubmitted == 3);
    assert_int_equal (f->raw->nsubmitted, 3);
    assert_int_equal (f->raw->submitted[2], a);
    s_raw_result (f, a);
    s_raw_result (f, a);                            // a second answer finds no route
    S_PUMP_UNTIL (f, s_stats (f).unrouted == 1);
    const s_got_t *ga = s_got (f, a, 0);
    assert_non_null (ga);
    assert_int_equal (ga->cmd, WIRE_C_RESULT);
    assert_ptr_equal (ga->req, &s_req[0]);
    assert_null (s_got (f, a, 1));
    edge_link_stats_t st = s_stats (f);
    assert_int_equal (st.resubmitted, 1);
    assert_true (st.brokers_lost >= 1);
    assert_int_equal (st.failed_on_down, 1);
    assert_int_equal (edge_link_waiting (f->link), 0);
    log_init ("edge-link-test", LOG_LVL_WARN);
}

//  A PONG from another instance (no disconnect seen) means the broker restarted: its
//  jobs are resubmitted. A resubmitted job lost again is not resubmitted twice.
static void test_instance_change (void **state)
{
    s_fix_t *f = *state;
    log_init ("edge-link-test", LOG_LVL_ERROR);
    f->raw->instance = 11;
    S_PUMP_UNTIL (f, s_stats (f).pongs >= 3);
    uint64_t a = s_submit (f, "any", false, &s_req[0]);
    S_PUMP_UNTIL (f, f->raw->nsubmitted == 1);
    f->raw->instance = 12;
    S_PUMP_UNTIL (f, f->raw->nsubmitted == 2);
    assert_int_equal (f->raw->submitted[1], a);
    edge_link_stats_t st = s_stats (f);
    assert_int_equal (st.restarts, 1);
    assert_int_equal (st.resubmitted, 1);
    assert_int_equal (f->ngot, 0);
    //  Once only: the next restart fails it
    f->raw->instance = 13;
    S_PUMP_UNTIL (f, f->ngot == 1);
    assert_int_equal (f->got[0].job_id, a);
    assert_int_equal (f->got[0].code, AIGW__ERROR_CODE__ERR_UNAVAILABLE);
    assert_int_equal (s_stats (f).restarts, 2);
    assert_int_equal (s_stats (f).resubmitted, 1);
    assert_int_equal (f->raw->nsubmitted, 2);
    log_init ("edge-link-test", LOG_LVL_WARN);
}

//  Two brokers: jobs spread by outstanding count; an answer from the broker that does
//  not hold the job is dropped; when one broker goes, its jobs move to the other.
static void test_two_brokers (void **state)
{
    s_fix_t *f = *state;
    uint64_t ids[4];
    for (int i = 0; i < 4; i++)
        ids[i] = s_submit (f, "any", false, &s_req[i]);
    S_PUMP_UNTIL (f, f->raw->nsubmitted == 2 && f->raw2->nsubmitted == 2);
    assert_int_equal (f->raw->nsubmitted, 2);
    assert_int_equal (f->raw2->nsubmitted, 2);
    //  The second broker answers a job the first one holds: dropped
    f->to = f->raw2;
    s_raw_result (f, f->raw->submitted[0]);
    S_PUMP_UNTIL (f, s_stats (f).unrouted == 1);
    assert_int_equal (s_stats (f).unrouted, 1);
    assert_int_equal (f->ngot, 0);
    //  The second broker dies: its two jobs go to the first at once
    s_raw_destroy (&f->raw2);
    f->to = NULL;
    S_PUMP_UNTIL (f, f->raw->nsubmitted == 4);
    assert_int_equal (f->raw->nsubmitted, 4);
    size_t live = 0;
    assert_int_equal (edge_link_brokers (f->link, &live), 2);
    assert_int_equal (live, 1);
    for (int i = 0; i < 4; i++)
        s_raw_result (f, f->raw->submitted[i]);
    S_PUMP_UNTIL (f, f->ngot == 4);
    assert_int_equal (f->ngot, 4);
    for (int i = 0; i < 4; i++) {
        const s_got_t *g = s_got (f, ids[i], 0);
        assert_non_null (g);
        assert_int_equal (g->cmd, WIRE_C_RESULT);
        assert_ptr_equal (g->req, &s_req[i]);
    }
    edge_link_stats_t st = s_stats (f);
    assert_int_equal (st.resubmitted, 2);
    assert_int_equal (st.failed_on_down, 0);
    assert_int_equal (edge_link_waiting (f->link), 0);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_submit_result, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_interleaved_routing, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_chunks_keep_route, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_cancel, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_status_pong, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_broker_silence, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_fail_all, s_setup, s_teardown),
        cmocka_unit_test (test_not_connected),
        cmocka_unit_test_setup_teardown (test_final_answers, s_setup_raw, s_teardown),
        cmocka_unit_test_setup_teardown (test_reconnect_new_socket, s_setup_raw, s_teardown),
        cmocka_unit_test_setup_teardown (test_malformed, s_setup_raw, s_teardown),
        cmocka_unit_test_setup_teardown (test_restart_resubmits, s_setup_raw, s_teardown),
        cmocka_unit_test_setup_teardown (test_instance_change, s_setup_raw, s_teardown),
        cmocka_unit_test_setup_teardown (test_two_brokers, s_setup_two, s_teardown),
        cmocka_unit_test (test_protected_mode_every_broker),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
