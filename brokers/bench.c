// aigw-broker-bench: rough throughput and latency of a running broker. One thread
// drives K fake workers (answer every TASK at once) and one pipelining client.
#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aclock.h"
#include "aigw.pb-c.h"
#include "cfg.h"
#include "curve.h"
#include "hist.h"
#include "wire.h"

#define BENCH_WORKERS_MAX 16

typedef struct {
    const char *frontend, *backend;
    long jobs, window, workers, targets, payload;
    const char *model;          // client-only mode: target served by real workers
    const char *config;         // fabric/curve keys (worker/cert, edge/cert) and endpoints
} opts_t;

static long s_num (const char *v, long lo, long hi, const char *what)
{
    char *end = NULL;
    long n = strtol (v, &end, 10);
    if (!v[0] || *end || n < lo || n > hi) {
        fprintf (stderr, "aigw-broker-bench: %s must be %ld..%ld\n", what, lo, hi);
        exit (2);
    }
    return n;
}

static void s_usage (void)
{
    printf ("usage: aigw-broker-bench [--frontend EP] [--backend EP] [--jobs N] [--window W]\n"
            "                         [--workers K] [--targets 1|2] [--payload BYTES] [--model NAME]\n"
            "                         [--config FILE]\n"
            "Drives a running aigw-broker with K fake workers that answer at once and one\n"
            "client keeping W jobs in flight; prints jobs/s and latency percentiles.\n"
            "--workers 0 --model NAME: no fake workers, jobs target NAME (real workers).\n"
            "--config FILE: the broker's endpoints and, with fabric/curve = on, the CURVE\n"
            "keys (fake workers use worker/cert, the client edge/cert).\n");
}

static void s_args (int argc, char **argv, opts_t *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (streq (a, "--help")) {
            s_usage ();
            exit (0);
        }
        if (!v) {
            s_usage ();
            exit (2);
        }
        i++;
        if (streq (a, "--frontend")) o->frontend = v;
        else if (streq (a, "--backend")) o->backend = v;
        else if (streq (a, "--jobs")) o->jobs = s_num (v, 1, 100000000, a);
        else if (streq (a, "--window")) o->window = s_num (v, 1, 100000, a);
        else if (streq (a, "--workers")) o->workers = s_num (v, 0, BENCH_WORKERS_MAX, a);
        else if (streq (a, "--model")) o->model = v;
        else if (streq (a, "--config")) o->config = v;
        else if (streq (a, "--targets")) o->targets = s_num (v, 1, 2, a);
        else if (streq (a, "--payload")) o->payload = s_num (v, 1, 1 << 20, a);
        else {
            s_usage ();
            exit (2);
        }
    }
}

static void s_ready (void *w, int i)
{
    char id[32];
    snprintf (id, sizeof id, "bench-%d", i);
    char *models[] = { "bench-a", "bench-b" };
    Aigw__WorkerHello h = AIGW__WORKER_HELLO__INIT;
    h.worker_id = id;
    h.n_models = 2;
    h.models = models;
    h.capacity = 100000;
    wire_send (w, NULL, 0, WIRE_SIDE_WORKER, WIRE_W_READY, &h.base, NULL);
}

//  Answer every TASK waiting on a fake worker.
static void s_serve (void *w)
{
    static const char json[] = "{\"id\":\"x\",\"object\":\"chat.completion\",\"choices\":[]}";
    wire_msg_t m;
    while (wire_recv (w, false, &m) == 0) {
        if (m.cmd == WIRE_W_TASK) {
            Aigw__Task *t = (Aigw__Task *) wire_unpack (&aigw__task__descriptor, &m.body);
            if (t) {
                Aigw__Result r = AIGW__RESULT__INIT;
                r.job_id = t->job_id;
                r.has_attempt_id = true;
                r.attempt_id = t->attempt_id;
                r.has_response_json = true;
                r.response_json.data = (uint8_t *) json;
                r.response_json.len = sizeof json - 1;
                wire_send (w, NULL, 0, WIRE_SIDE_WORKER, WIRE_W_RESULT, &r.base, NULL);
                protobuf_c_message_free_unpacked (&t->base, NULL);
            }
        }
        wire_msg_close (&m);
    }
}

static void s_submit (void *c, uint64_t id, const opts_t *o, const char *payload, int64_t *sent)
{
    char *targets[] = { "bench-a", "bench-b" };
    Aigw__Job j = AIGW__JOB__INIT;
    j.job_id = id;
    j.n_targets = o->model ? 1 : (size_t) o->targets;
    if (o->model)
        targets[0] = (char *) o->model;
    j.targets = targets;
    sent[id % (uint64_t) o->window] = aclock_now_us ();
    wire_send_bytes (c, NULL, 0, WIRE_SIDE_CLIENT, WIRE_C_SUBMIT, &j.base, payload,
                     (size_t) o->payload);
}

//  --config: endpoints (unless given) and CURVE keys for both roles. Exits on error.
static void s_fabric (opts_t *o, bool ep_front, bool ep_back, curve_client_t *wk,
                      curve_client_t *cl)
{
    memset (wk, 0, sizeof *wk);
    memset (cl, 0, sizeof *cl);
    if (!o->config)
        return;
    static char front[CFG_STR_MAX], back[CFG_STR_MAX];
    char err[1024];
    cfg_t *cfg = cfg_load (o->config, err, sizeof err);
    if (!cfg) {
        fprintf (stderr, "aigw-broker-bench: %s\n", err);
        exit (2);
    }
    snprintf (front, sizeof front, "%s", ep_front ? o->frontend : cfg->edge.broker);
    snprintf (back, sizeof back, "%s", ep_back ? o->backend : cfg->worker.broker);
    o->frontend = front;
    o->backend = back;
    if (curve_client_load (wk, cfg, cfg->worker.cert, "worker/cert", o->backend, err, sizeof err)
        || curve_client_load (cl, cfg, cfg->edge.cert, "edge/cert", o->frontend, err,
                              sizeof err)) {
        fprintf (stderr, "aigw-broker-bench: %s\n", err);
        exit (2);
    }
    cfg_destroy (&cfg);
}

int main (int argc, char **argv)
{
    opts_t o = { NULL, NULL, 100000, 64, 2, 1, 200, NULL, NULL };
    s_args (argc, argv, &o);
    bool ep_front = o.frontend, ep_back = o.backend;
    if (!o.frontend)
        o.frontend = "tcp://127.0.0.1:5555";
    if (!o.backend)
        o.backend = "tcp://127.0.0.1:5556";
    curve_client_t wk, cl;
    s_fabric (&o, ep_front, ep_back, &wk, &cl);
    zsys_handler_set (NULL);
    void *ctx = zmq_ctx_new ();
    void *workers[BENCH_WORKERS_MAX];
    zmq_pollitem_t items[BENCH_WORKERS_MAX + 1];
    for (int i = 0; i < o.workers; i++) {
        workers[i] = zmq_socket (ctx, ZMQ_DEALER);
        wire_setup_socket (workers[i], false, 0);
        curve_client_apply (&wk, workers[i]);
        zmq_connect (workers[i], o.backend);
        s_ready (workers[i], i);
        items[i] = (zmq_pollitem_t) { workers[i], 0, ZMQ_POLLIN, 0 };
    }
    void *c = zmq_socket (ctx, ZMQ_DEALER);
    wire_setup_socket (c, false, 0);
    curve_client_apply (&cl, c);
    zmq_connect (c, o.frontend);
    items[o.workers] = (zmq_pollitem_t) { c, 0, ZMQ_POLLIN, 0 };
    zclock_sleep (300);     // let READY land before the first SUBMIT

    char *payload = malloc ((size_t) o.payload);
    int64_t *sent = calloc ((size_t) o.window, sizeof *sent);
    hist_t *lat = calloc (1, sizeof *lat);
    if (!payload || !sent || !lat)
        return 1;
    //  A small valid chat request, padded with spaces to the payload size
    static const char req[] = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    memset (payload, ' ', (size_t) o.payload);
    memcpy (payload, req, (size_t) o.payload < sizeof req - 1 ? (size_t) o.payload : sizeof req - 1);
    uint64_t next = 0, done = 0, errors = 0;
    int64_t t0 = aclock_now_us (), beat = t0;
    while (next < (uint64_t) o.window && next < (uint64_t) o.jobs)
        s_submit (c, next++, &o, payload, sent);
    while (done < (uint64_t) o.jobs) {
        if (zmq_poll (items, (int) o.workers + 1, 2000) <= 0) {
            fprintf (stderr, "aigw-broker-bench: stalled after %" PRIu64 " jobs\n", done);
            break;
        }
        for (int i = 0; i < o.workers; i++)
            s_serve (workers[i]);
        if (aclock_now_us () - beat > 300000) {     // keep the fake workers alive
            beat = aclock_now_us ();
            for (int i = 0; i < o.workers; i++)
                wire_send (workers[i], NULL, 0, WIRE_SIDE_WORKER, WIRE_W_HEARTBEAT, NULL, NULL);
        }
        wire_msg_t m;
        while (wire_recv (c, false, &m) == 0) {
            Aigw__JobRef *ref = (Aigw__JobRef *) wire_unpack (&aigw__job_ref__descriptor, &m.body);
            if (ref) {      // Result and Error both start with job_id = 1
                hist_record (lat, (uint64_t) (aclock_now_us ()
                                              - sent[ref->job_id % (uint64_t) o.window]));
                protobuf_c_message_free_unpacked (&ref->base, NULL);
            }
            errors += m.cmd != WIRE_C_RESULT;
            done++;
            if (next < (uint64_t) o.jobs)
                s_submit (c, next++, &o, payload, sent);
            wire_msg_close (&m);
        }
    }
    double secs = (double) (aclock_now_us () - t0) / 1e6;
    printf ("jobs=%" PRIu64 " errors=%" PRIu64 " targets=%ld window=%ld workers=%ld: %.0f jobs/s, "
            "latency us p50=%" PRIu64 " p90=%" PRIu64 " p99=%" PRIu64 " max=%" PRIu64 "\n",
            done, errors, o.targets, o.window, o.workers, (double) done / secs,
            hist_percentile (lat, 50), hist_percentile (lat, 90), hist_percentile (lat, 99),
            hist_max (lat));
    for (int i = 0; i < o.workers; i++) {
        wire_send (workers[i], NULL, 0, WIRE_SIDE_WORKER, WIRE_W_DISCONNECT, NULL, NULL);
        zmq_close (workers[i]);
    }
    zmq_close (c);
    zmq_ctx_term (ctx);
    free (payload);
    free (sent);
    free (lat);
    return 0;
}
