// Unit tests for common/curve.c: certificate loading and refusals, policy helpers,
// protected mode, and CURVE handshakes over tcp://127.0.0.1 through zauth.
#include <czmq.h>
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "cfg.h"
#include "curve.h"
#include "wire.h"

#define S_WAIT_MS 10000                 // fail-safe only: every wait ends on an event

typedef struct {
    char dir[64];
    char pub[5][CURVE_KEY_TXT];         // broker, edge, worker, rogue, agent
} fx_t;

enum { S_BROKER, S_EDGE, S_WORKER, S_ROGUE, S_AGENT };
static const char *const s_names[] = { "broker", "edge", "worker", "rogue", "agent" };

static void s_write_cert (fx_t *fx, int who, bool authorize)
{
    zcert_t *c = zcert_new ();
    assert_non_null (c);
    zcert_set_meta (c, "name", "%s", s_names[who]);
    char path[256];
    snprintf (path, sizeof path, "%s/%s.cert", fx->dir, s_names[who]);
    assert_int_equal (zcert_save (c, path), 0);
    snprintf (path, sizeof path, "%s/%s.cert_secret", fx->dir, s_names[who]);
    assert_int_equal (chmod (path, 0600), 0);
    if (authorize) {
        snprintf (path, sizeof path, "%s/authorized/%s.cert", fx->dir, s_names[who]);
        assert_int_equal (zcert_save_public (c, path), 0);
    }
    snprintf (fx->pub[who], sizeof fx->pub[who], "%s", zcert_public_txt (c));
    zcert_destroy (&c);
}

static int s_setup (void **state)
{
    fx_t *fx = calloc (1, sizeof *fx);
    snprintf (fx->dir, sizeof fx->dir, "/tmp/aigw-test-curve-XXXXXX");
    assert_non_null (mkdtemp (fx->dir));
    char auth[128];
    snprintf (auth, sizeof auth, "%s/authorized", fx->dir);
    assert_int_equal (mkdir (auth, 0700), 0);
    s_write_cert (fx, S_BROKER, false);
    s_write_cert (fx, S_EDGE, true);
    s_write_cert (fx, S_WORKER, true);
    s_write_cert (fx, S_ROGUE, false);      // a valid keypair the broker does not know
    *state = fx;
    return 0;
}

static int s_teardown (void **state)
{
    fx_t *fx = *state;
    char cmd[160];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    assert_int_equal (system (cmd), 0);
    free (fx);
    return 0;
}

static cfg_t *s_cfg (const fx_t *fx, const char *extra)
{
    char text[2048], err[1024];
    snprintf (text, sizeof text,
              "fabric\n"
              "    curve = on\n"
              "    cert_dir = \"%s\"\n"
              "%s", fx->dir, extra ? extra : "");
    cfg_t *cfg = cfg_parse (text, "test", err, sizeof err);
    if (!cfg)
        fail_msg ("%s", err);
    return cfg;
}

//  ---------------------------------------------------------------- loading

static void test_load_secret (void **state)
{
    fx_t *fx = *state;
    curve_cert_t c;
    char err[1024];
    assert_int_equal (curve_cert_load_secret (&c, fx->dir, "edge", "edge/cert", err,
                                              sizeof err), 0);
    assert_string_equal (c.name, "edge");
    assert_string_equal (c.public_txt, fx->pub[S_EDGE]);
    assert_int_equal (strlen (c.secret_txt), 40);
    char derived[CURVE_KEY_TXT];
    assert_int_equal (zmq_curve_public (derived, c.secret_txt), 0);
    assert_string_equal (derived, c.public_txt);
    curve_cert_wipe (&c);
    assert_int_equal (c.secret_txt[0], 0);

    char path[256];
    snprintf (path, sizeof path, "%s/edge.cert", fx->dir);
    assert_int_equal (curve_cert_load_public (&c, path, "x", err, sizeof err), 0);
    assert_string_equal (c.public_txt, fx->pub[S_EDGE]);
    assert_string_equal (c.secret_txt, "");
}

static void test_permission_refused (void **state)
{
    fx_t *fx = *state;
    char path[256], err[1024];
    snprintf (path, sizeof path, "%s/worker.cert_secret", fx->dir);
    curve_cert_t c;
    const mode_t modes[] = { 0640, 0604, 0660, 0700 | 0007 };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        assert_int_equal (chmod (path, modes[i]), 0);
        assert_int_equal (curve_cert_load_secret (&c, fx->dir, "worker", "worker/cert", err,
                                                  sizeof err), -1);
        char want[300];
        snprintf (want, sizeof want, "chmod 600 %s", path);
        assert_non_null (strstr (err, want));
    }
    assert_int_equal (chmod (path, 0400), 0);       // owner-only read is fine
    assert_int_equal (curve_cert_load_secret (&c, fx->dir, "worker", "worker/cert", err,
                                              sizeof err), 0);
    assert_int_equal (chmod (path, 0600), 0);
}

static void test_missing_file (void **state)
{
    fx_t *fx = *state;
    char err[1024];
    curve_cert_t c;
    assert_int_equal (curve_cert_load_secret (&c, fx->dir, "nobody", "edge/cert", err,
                                              sizeof err), -1);
    assert_non_null (strstr (err, "nobody.cert_secret"));
    assert_non_null (strstr (err, "aigw-certs init"));
    assert_non_null (strstr (err, "aigw-certs add nobody"));
    char path[256];
    snprintf (path, sizeof path, "%s/nobody.cert", fx->dir);
    assert_int_equal (curve_cert_load_public (&c, path, "broker/cert", err, sizeof err), -1);
    assert_non_null (strstr (err, "aigw-certs init"));
}

static void test_bad_files (void **state)
{
    fx_t *fx = *state;
    char path[256], err[1024];
    curve_cert_t c;
    //  A public certificate where a secret one is expected
    snprintf (path, sizeof path, "%s/pubonly.cert_secret", fx->dir);
    zcert_t *z = zcert_new ();
    assert_int_equal (zcert_save_public (z, path), 0);
    assert_int_equal (chmod (path, 0600), 0);
    assert_int_equal (curve_cert_load_secret (&c, fx->dir, "pubonly", "k", err, sizeof err), -1);
    assert_non_null (strstr (err, "secret-key"));
    //  A secret file whose public key belongs to another keypair
    zcert_t *other = zcert_new ();
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    fprintf (f, "curve\n    public-key = \"%s\"\n    secret-key = \"%s\"\n",
             zcert_public_txt (other), zcert_secret_txt (z));
    fclose (f);
    assert_int_equal (curve_cert_load_secret (&c, fx->dir, "pubonly", "k", err, sizeof err), -1);
    assert_non_null (strstr (err, "does not belong"));
    assert_null (strstr (err, zcert_secret_txt (z)));       // secrets never in messages
    //  Not ZPL / no keys
    f = fopen (path, "w");
    fprintf (f, "hello\n");
    fclose (f);
    assert_int_equal (curve_cert_load_secret (&c, fx->dir, "pubonly", "k", err, sizeof err), -1);
    unlink (path);
    zcert_destroy (&z);
    zcert_destroy (&other);
}

//  ---------------------------------------------------------------- config and policy

static void test_config_keys (void **state)
{
    fx_t *fx = *state;
    cfg_t *d = cfg_defaults ();
    assert_false (d->fabric.curve);
    assert_false (d->fabric.insecure);
    assert_string_equal (d->broker.cert, "broker");
    assert_string_equal (d->edge.cert, "edge");
    assert_string_equal (d->worker.cert, "worker");
    assert_true (curve_in_list (d->fabric.clients, "edge"));
    assert_true (curve_in_list (d->fabric.clients, "agent"));
    assert_false (curve_in_list (d->fabric.clients, "worker"));
    assert_true (curve_may_serve (&d->fabric, "worker", "fast-sim"));
    assert_true (curve_may_serve (&d->fabric, "agent", "agent/deliberate"));
    assert_false (curve_may_serve (&d->fabric, "agent", "fast-sim"));
    assert_false (curve_may_serve (&d->fabric, "edge", "fast-sim"));
    cfg_destroy (&d);

    cfg_t *cfg = s_cfg (fx, "    clients = \"edge\"\n"
                            "    workers\n"
                            "        worker = \"fast-*, slow-sim\"\n"
                            "broker\n    cert = broker\n"
                            "worker\n    cert = worker\n"
                            "edge\n    cert = edge\n");
    assert_true (cfg->fabric.curve);
    assert_int_equal (cfg->fabric.nworkers, 1);
    assert_true (curve_may_serve (&cfg->fabric, "worker", "fast-sim"));
    assert_true (curve_may_serve (&cfg->fabric, "worker", "slow-sim"));
    assert_false (curve_may_serve (&cfg->fabric, "worker", "flaky-sim"));
    assert_false (curve_may_serve (&cfg->fabric, "agent", "agent/x"));     // replaced defaults
    assert_false (curve_in_list (cfg->fabric.clients, "agent"));
    cfg_destroy (&cfg);

    char err[1024];
    const char *bad[] = {
        "fabric\n    curve = on\n",                                  // no cert_dir
        "fabric\n    curve = maybe\n",
        "fabric\n    clients = \"../etc\"\n",
        "fabric\n    workers\n        a/b = \"*\"\n",
        "fabric\n    workers\n        w = \"\"\n",
        "fabric\n    nope = 1\n",
        "edge\n    cert = \"../x\"\n",
        "worker\n    cert = \"\"\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cfg_t *c = cfg_parse (bad[i], "bad", err, sizeof err);
        if (c)
            fail_msg ("accepted: %s", bad[i]);
        assert_non_null (strstr (err, "fabric/") ? strstr (err, "fabric/") : strstr (err, "/cert"));
    }
}

static void test_glob (void **state)
{
    (void) state;
    assert_true (curve_glob ("*", "anything/at all"));
    assert_true (curve_glob ("agent/*", "agent/deliberate"));
    assert_false (curve_glob ("agent/*", "agentx/deliberate"));
    assert_true (curve_glob ("fast-sim", "fast-sim"));
    assert_false (curve_glob ("fast-sim", "fast-sim2"));
    assert_true (curve_glob ("*-sim", "slow-sim"));
    assert_true (curve_glob ("a*b*c", "aXXbYYc"));
    assert_false (curve_glob ("a*b*c", "aXXbYY"));
    assert_true (curve_glob ("", ""));
    assert_false (curve_glob ("", "x"));
}

static void test_protected_mode (void **state)
{
    fx_t *fx = *state;
    char err[1024];
    cfg_t *cfg = cfg_defaults ();
    assert_int_equal (curve_check_bind (cfg, "broker/frontend", "tcp://127.0.0.1:5555", err,
                                        sizeof err), 0);
    assert_int_equal (curve_check_bind (cfg, "broker/frontend", "ipc:///tmp/x", err,
                                        sizeof err), 0);
    assert_int_equal (curve_check_bind (cfg, "broker/backend", "tcp://0.0.0.0:5556", err,
                                        sizeof err), -1);
    assert_non_null (strstr (err, "broker/backend = tcp://0.0.0.0:5556"));
    assert_non_null (strstr (err, "aigw-certs init"));
    assert_non_null (strstr (err, "fabric/curve = on"));
    assert_non_null (strstr (err, "fabric/insecure = true"));
    assert_int_equal (curve_check_bind (cfg, "k", "tcp://*:5556", err, sizeof err), -1);
    //  A client of a remote broker with curve off is refused too
    curve_client_t cl;
    assert_int_equal (curve_client_load (&cl, cfg, "edge", "edge/cert", "tcp://10.0.0.5:5555",
                                         err, sizeof err), -1);
    assert_int_equal (curve_client_load (&cl, cfg, "edge", "edge/cert", "tcp://127.0.0.1:5555",
                                         err, sizeof err), 0);
    assert_false (cl.on);
    cfg->fabric.insecure = true;
    assert_int_equal (curve_check_bind (cfg, "k", "tcp://0.0.0.0:5556", err, sizeof err), 0);
    assert_int_equal (curve_client_load (&cl, cfg, "edge", "edge/cert", "tcp://10.0.0.5:5555",
                                         err, sizeof err), 0);
    cfg_destroy (&cfg);
    cfg = s_cfg (fx, NULL);
    assert_int_equal (curve_check_bind (cfg, "k", "tcp://0.0.0.0:5556", err, sizeof err), 0);
    cfg_destroy (&cfg);
}

//  ---------------------------------------------------------------- handshakes

//  Start monitoring sock's handshake outcomes; returns the PAIR that reads them.
static void *s_monitor (void *ctx, void *sock, const char *name)
{
    char ep[64];
    snprintf (ep, sizeof ep, "inproc://test-curve-%s", name);
    assert_int_equal (zmq_socket_monitor (sock, ep, ZMQ_EVENT_HANDSHAKE_SUCCEEDED
                                          | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
                                          | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
                                          | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH), 0);
    void *pair = zmq_socket (ctx, ZMQ_PAIR);
    assert_non_null (pair);
    assert_int_equal (zmq_connect (pair, ep), 0);
    int t = S_WAIT_MS;
    zmq_setsockopt (pair, ZMQ_RCVTIMEO, &t, sizeof t);
    return pair;
}

//  Block until the monitor reports a handshake outcome; returns the event.
static uint16_t s_next_event (void *pair)
{
    zmq_msg_t ev;
    zmq_msg_init (&ev);
    if (zmq_msg_recv (&ev, pair, 0) < 6)
        fail_msg ("no handshake event: %s", zmq_strerror (errno));
    uint16_t event;
    memcpy (&event, zmq_msg_data (&ev), sizeof event);
    bool more = zmq_msg_more (&ev);
    zmq_msg_close (&ev);
    if (more) {
        zmq_msg_init (&ev);
        zmq_msg_recv (&ev, pair, 0);
        zmq_msg_close (&ev);
    }
    return event;
}

static void *s_client (void *ctx, const curve_client_t *keys, const char *ep)
{
    void *s = zmq_socket (ctx, ZMQ_DEALER);
    assert_non_null (s);
    assert_int_equal (wire_setup_socket (s, false, 65536), 0);
    if (keys)
        assert_int_equal (curve_client_apply (keys, s), 0);
    assert_int_equal (zmq_connect (s, ep), 0);
    return s;
}

static curve_client_t s_keys (const fx_t *fx, const cfg_t *cfg, const char *name)
{
    curve_client_t k;
    char err[1024];
    if (curve_client_load (&k, cfg, name, "test/cert", "tcp://127.0.0.1:1", err, sizeof err))
        fail_msg ("%s", err);
    assert_true (k.on);
    assert_string_equal (k.server_txt, fx->pub[S_BROKER]);
    return k;
}

static void test_handshake (void **state)
{
    fx_t *fx = *state;
    zsys_handler_set (NULL);
    void *ctx = zsys_init ();
    cfg_t *cfg = s_cfg (fx, NULL);
    char err[1024];
    curve_server_t *srv = curve_server_new (cfg, err, sizeof err);
    if (!srv)
        fail_msg ("%s", err);
    void *router = zmq_socket (ctx, ZMQ_ROUTER);
    assert_int_equal (wire_setup_socket (router, true, 65536), 0);
    assert_int_equal (curve_server_apply (srv, router), 0);
    assert_int_equal (zmq_bind (router, "tcp://127.0.0.1:*"), 0);
    char ep[128];
    size_t len = sizeof ep;
    assert_int_equal (zmq_getsockopt (router, ZMQ_LAST_ENDPOINT, ep, &len), 0);
    void *smon = s_monitor (ctx, router, "server");

    //  Authorized: the message arrives with the client's public key as User-Id
    curve_client_t edge = s_keys (fx, cfg, "edge");
    void *good = s_client (ctx, &edge, ep);
    assert_int_equal (wire_send (good, NULL, 0, WIRE_SIDE_CLIENT, WIRE_C_PING, NULL, NULL), 0);
    assert_int_equal (s_next_event (smon), ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    zmq_pollitem_t item = { router, 0, ZMQ_POLLIN, 0 };
    assert_int_equal (zmq_poll (&item, 1, S_WAIT_MS), 1);
    wire_msg_t m;
    assert_int_equal (wire_recv (router, true, &m), 0);
    assert_int_equal (m.cmd, WIRE_C_PING);
    assert_string_equal (m.user_id, fx->pub[S_EDGE]);
    const curve_peer_t *p = curve_server_peer (srv, m.user_id);
    assert_non_null (p);
    assert_string_equal (p->name, "edge");
    assert_true (p->client);
    wire_msg_close (&m);
    p = curve_server_peer (srv, fx->pub[S_WORKER]);
    assert_non_null (p);
    assert_false (p->client);
    assert_true (curve_server_may_serve (srv, p, "fast-sim"));
    assert_null (curve_server_peer (srv, fx->pub[S_ROGUE]));
    assert_null (curve_server_peer (srv, ""));

    //  A valid keypair the broker does not know: refused at the handshake
    curve_client_t rogue = s_keys (fx, cfg, "rogue");
    void *bad = s_client (ctx, &rogue, ep);
    void *bmon = s_monitor (ctx, bad, "rogue");
    wire_send (bad, NULL, 0, WIRE_SIDE_CLIENT, WIRE_C_PING, NULL, NULL);
    assert_int_equal (s_next_event (smon), ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    assert_int_equal (s_next_event (bmon), ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);

    //  No CURVE at all: the mechanisms do not match
    void *plain = s_client (ctx, NULL, ep);
    void *pmon = s_monitor (ctx, plain, "plain");
    wire_send (plain, NULL, 0, WIRE_SIDE_CLIENT, WIRE_C_PING, NULL, NULL);
    assert_int_equal (s_next_event (smon), ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL);
    assert_int_equal (s_next_event (pmon), ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL);

    //  Both handshakes are over and failed: nothing of theirs can be queued
    assert_int_equal (zmq_poll (&item, 1, 0), 0);

    //  The authorized peer still talks after the refusals
    assert_int_equal (wire_send (good, NULL, 0, WIRE_SIDE_CLIENT, WIRE_C_PING, NULL, NULL), 0);
    assert_int_equal (zmq_poll (&item, 1, S_WAIT_MS), 1);
    assert_int_equal (wire_recv (router, true, &m), 0);
    assert_string_equal (m.user_id, fx->pub[S_EDGE]);
    wire_msg_close (&m);

    //  The clients-only context (metrics PUB): edge (in fabric/clients) gets in, the
    //  authorized worker certificate does not
    void *mctx = curve_server_clients_ctx (srv);
    assert_non_null (mctx);
    void *pub = zmq_socket (mctx, ZMQ_XPUB);
    assert_int_equal (curve_server_apply (srv, pub), 0);
    assert_int_equal (zmq_bind (pub, "tcp://127.0.0.1:*"), 0);
    char mep[128];
    len = sizeof mep;
    assert_int_equal (zmq_getsockopt (pub, ZMQ_LAST_ENDPOINT, mep, &len), 0);
    void *sub_edge = zmq_socket (ctx, ZMQ_SUB);
    curve_client_apply (&edge, sub_edge);
    void *emon = s_monitor (ctx, sub_edge, "sub-edge");
    assert_int_equal (zmq_connect (sub_edge, mep), 0);
    curve_client_t worker = s_keys (fx, cfg, "worker");
    void *sub_worker = zmq_socket (ctx, ZMQ_SUB);
    curve_client_apply (&worker, sub_worker);
    void *wmon = s_monitor (ctx, sub_worker, "sub-worker");
    assert_int_equal (zmq_connect (sub_worker, mep), 0);
    assert_int_equal (s_next_event (emon), ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    assert_int_equal (s_next_event (wmon), ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    zmq_socket_monitor (sub_edge, NULL, 0);
    zmq_socket_monitor (sub_worker, NULL, 0);
    void *msocks[] = { sub_edge, sub_worker, emon, wmon, pub };
    for (size_t i = 0; i < sizeof msocks / sizeof msocks[0]; i++)
        zmq_close (msocks[i]);
    curve_client_wipe (&worker);

    zmq_socket_monitor (bad, NULL, 0);
    zmq_socket_monitor (plain, NULL, 0);
    zmq_socket_monitor (router, NULL, 0);
    void *socks[] = { good, bad, plain, bmon, pmon, smon, router };
    for (size_t i = 0; i < sizeof socks / sizeof socks[0]; i++)
        zmq_close (socks[i]);
    curve_client_wipe (&edge);
    curve_client_wipe (&rogue);
    curve_server_destroy (&srv);
    assert_null (srv);
    cfg_destroy (&cfg);
}

static void test_server_refusals (void **state)
{
    fx_t *fx = *state;
    char err[1024];
    cfg_t *cfg = s_cfg (fx, "broker\n    cert = nobody\n");
    assert_null (curve_server_new (cfg, err, sizeof err));
    assert_non_null (strstr (err, "aigw-certs"));
    cfg_destroy (&cfg);
    //  authorized/ writable by others
    char auth[128];
    snprintf (auth, sizeof auth, "%s/authorized", fx->dir);
    assert_int_equal (chmod (auth, 0777), 0);
    cfg = s_cfg (fx, NULL);
    assert_null (curve_server_new (cfg, err, sizeof err));
    assert_non_null (strstr (err, "chmod go-w"));
    assert_int_equal (chmod (auth, 0700), 0);
    cfg_destroy (&cfg);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_load_secret, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_permission_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_missing_file, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_bad_files, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_config_keys, s_setup, s_teardown),
        cmocka_unit_test (test_glob),
        cmocka_unit_test_setup_teardown (test_protected_mode, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_handshake, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_server_refusals, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
