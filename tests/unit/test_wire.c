// Unit tests for wire framing and protobuf round-trips over inproc DEALER<->ROUTER.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <errno.h>
#include <cmocka.h>
#include <czmq.h>

#include "wire.h"
#include "aigw.pb-c.h"

typedef struct {
    zsock_t *router;
    zsock_t *dealer;
} pair_t;

static int s_setup (void **state)
{
    static int n = 0;
    pair_t *p = calloc (1, sizeof *p);
    char ep[64];
    snprintf (ep, sizeof ep, "inproc://wire-test-%d", n++);
    p->router = zsock_new (ZMQ_ROUTER);
    assert_int_equal (wire_setup_socket (zsock_resolve (p->router), true, 65536), 0);
    assert_int_equal (zsock_bind (p->router, "%s", ep), 0);
    p->dealer = zsock_new (ZMQ_DEALER);
    zsock_set_identity (p->dealer, "peer-1");
    assert_int_equal (wire_setup_socket (zsock_resolve (p->dealer), false, 65536), 0);
    assert_int_equal (zsock_connect (p->dealer, "%s", ep), 0);
    *state = p;
    return 0;
}

static int s_teardown (void **state)
{
    pair_t *p = *state;
    zsock_destroy (&p->dealer);
    zsock_destroy (&p->router);
    free (p);
    return 0;
}

//  Wait until a message is readable, then wire_recv it.
static int s_recv (zsock_t *sock, bool router, wire_msg_t *m)
{
    zpoller_t *poller = zpoller_new (sock, NULL);
    void *which = zpoller_wait (poller, 1000);
    zpoller_destroy (&poller);
    if (!which)
        return -99;
    return wire_recv (zsock_resolve (sock), router, m);
}

static void test_job_roundtrip (void **state)
{
    pair_t *p = *state;
    Aigw__Job job = AIGW__JOB__INIT;
    char *targets[] = { "fast-sim", "slow-sim" };
    job.job_id = 42;
    job.n_targets = 2;
    job.targets = targets;
    job.has_policy = true;
    job.policy = AIGW__POLICY__POLICY_HEDGE;
    job.has_deadline_ms = true;
    job.deadline_ms = 1500;
    const char *payload = "{\"model\":\"x\",\"messages\":[]}";
    assert_int_equal (wire_send_bytes (zsock_resolve (p->dealer), NULL, 0, WIRE_SIDE_CLIENT,
                                       WIRE_C_SUBMIT, &job.base, payload, strlen (payload)), 0);
    wire_msg_t m;
    assert_int_equal (s_recv (p->router, true, &m), 0);
    assert_int_equal (m.id_len, 6);
    assert_memory_equal (m.id, "peer-1", 6);
    assert_int_equal (m.side, WIRE_SIDE_CLIENT);
    assert_int_equal (m.cmd, WIRE_C_SUBMIT);
    assert_true (m.has_payload);
    assert_int_equal (zmq_msg_size (&m.payload), strlen (payload));
    Aigw__Job *got = (Aigw__Job *) wire_unpack (&aigw__job__descriptor, &m.body);
    assert_non_null (got);
    assert_int_equal (got->job_id, 42);
    assert_int_equal (got->n_targets, 2);
    assert_string_equal (got->targets[1], "slow-sim");
    assert_int_equal (got->policy, AIGW__POLICY__POLICY_HEDGE);
    assert_true (got->has_deadline_ms);
    assert_int_equal (got->deadline_ms, 1500);
    assert_false (got->has_hedge_delay_ms);
    protobuf_c_message_free_unpacked (&got->base, NULL);

    //  Forward the payload by reference to the dealer (as the broker fans out a TASK)
    Aigw__Task task = AIGW__TASK__INIT;
    task.job_id = 42;
    task.attempt_id = 7;
    task.target = "fast-sim";
    for (int i = 0; i < 2; i++)
        assert_int_equal (wire_send (zsock_resolve (p->router), m.id, m.id_len, WIRE_SIDE_WORKER,
                                     WIRE_W_TASK, &task.base, &m.payload), 0);
    //  Our own reference is still intact after sharing it twice
    assert_memory_equal (zmq_msg_data (&m.payload), payload, strlen (payload));
    wire_msg_close (&m);
    wire_msg_close (&m);
    for (int i = 0; i < 2; i++) {
        wire_msg_t t;
        assert_int_equal (s_recv (p->dealer, false, &t), 0);
        assert_int_equal (t.side, WIRE_SIDE_WORKER);
        assert_int_equal (t.cmd, WIRE_W_TASK);
        assert_memory_equal (zmq_msg_data (&t.payload), payload, strlen (payload));
        Aigw__Task *tk = (Aigw__Task *) wire_unpack (&aigw__task__descriptor, &t.body);
        assert_non_null (tk);
        assert_int_equal (tk->attempt_id, 7);
        assert_string_equal (tk->target, "fast-sim");
        protobuf_c_message_free_unpacked (&tk->base, NULL);
        wire_msg_close (&t);
    }
}

static void test_empty_body (void **state)
{
    pair_t *p = *state;
    assert_int_equal (wire_send (zsock_resolve (p->dealer), NULL, 0, WIRE_SIDE_CLIENT,
                                 WIRE_C_PING, NULL, NULL), 0);
    wire_msg_t m;
    assert_int_equal (s_recv (p->router, true, &m), 0);
    assert_int_equal (m.cmd, WIRE_C_PING);
    assert_int_equal (zmq_msg_size (&m.body), 0);
    assert_false (m.has_payload);
    wire_msg_close (&m);
    assert_int_equal (wire_recv (zsock_resolve (p->router), true, &m), -1);
    assert_int_equal (errno, EAGAIN);
}

static void test_malformed (void **state)
{
    pair_t *p = *state;
    void *d = zsock_resolve (p->dealer);
    wire_msg_t m;
    //  Bad header
    zstr_sendm (p->dealer, "HTTP/1");
    zstr_send (p->dealer, "x");
    assert_int_equal (s_recv (p->router, true, &m), -2);
    assert_string_equal (m.error, "unknown header");
    assert_int_equal (m.id_len, 6);
    //  Wrong-length header
    zstr_send (p->dealer, "AIGW");
    assert_int_equal (s_recv (p->router, true, &m), -2);
    //  Header only
    zstr_send (p->dealer, WIRE_CLIENT);
    assert_int_equal (s_recv (p->router, true, &m), -2);
    //  Command frame of two bytes
    zstr_sendm (p->dealer, WIRE_CLIENT);
    zstr_send (p->dealer, "ab");
    assert_int_equal (s_recv (p->router, true, &m), -2);
    //  Too many frames
    zstr_sendx (p->dealer, WIRE_CLIENT, "\x01", "body", "payload", "extra", NULL);
    assert_int_equal (s_recv (p->router, true, &m), -2);
    assert_string_equal (m.error, "too many frames");
    //  Garbage body does not decode as a Job
    zstr_sendx (p->dealer, WIRE_CLIENT, "\x01", "\xff\xff\xff garbage", NULL);
    assert_int_equal (s_recv (p->router, true, &m), 0);
    assert_null (wire_unpack (&aigw__job__descriptor, &m.body));
    wire_msg_close (&m);
    //  Missing required field (job_id) does not decode
    Aigw__JobRef empty = AIGW__JOB_REF__INIT;
    (void) empty;
    zstr_sendx (p->dealer, WIRE_CLIENT, "\x02", "", NULL);
    assert_int_equal (s_recv (p->router, true, &m), 0);
    assert_null (wire_unpack (&aigw__job_ref__descriptor, &m.body));
    wire_msg_close (&m);
    //  A good message after all that still works
    assert_int_equal (wire_send (d, NULL, 0, WIRE_SIDE_CLIENT, WIRE_C_PING, NULL, NULL), 0);
    assert_int_equal (s_recv (p->router, true, &m), 0);
    assert_int_equal (m.cmd, WIRE_C_PING);
    wire_msg_close (&m);
}

static void test_oversize_frame_dropped (void **state)
{
    //  MAXMSGSIZE is enforced on tcp: the router never sees an oversized frame
    //  (libzmq drops the peer), and it keeps serving other peers.
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    assert_int_equal (wire_setup_socket (zsock_resolve (router), true, 65536), 0);
    int port = zsock_bind (router, "tcp://127.0.0.1:*");
    assert_true (port > 0);
    zsock_t *big = zsock_new_dealer (NULL);
    zsock_connect (big, "tcp://127.0.0.1:%d", port);
    size_t n = 200000;
    char *buf = malloc (n);
    memset (buf, 'x', n);
    assert_int_equal (wire_send_bytes (zsock_resolve (big), NULL, 0, WIRE_SIDE_CLIENT,
                                       WIRE_C_SUBMIT, NULL, buf, n), 0);
    free (buf);
    wire_msg_t m;
    assert_int_equal (s_recv (router, true, &m), -99);
    zsock_t *good = zsock_new_dealer (NULL);
    zsock_connect (good, "tcp://127.0.0.1:%d", port);
    assert_int_equal (wire_send (zsock_resolve (good), NULL, 0, WIRE_SIDE_CLIENT, WIRE_C_PING,
                                 NULL, NULL), 0);
    assert_int_equal (s_recv (router, true, &m), 0);
    assert_int_equal (m.cmd, WIRE_C_PING);
    wire_msg_close (&m);
    zsock_destroy (&good);
    zsock_destroy (&big);
    zsock_destroy (&router);
}

static void test_router_mandatory (void **state)
{
    pair_t *p = *state;
    uint8_t ghost[] = "nobody";
    int rc = wire_send (zsock_resolve (p->router), ghost, 6, WIRE_SIDE_CLIENT, WIRE_C_PONG,
                        NULL, NULL);
    assert_int_equal (rc, -1);
    assert_int_equal (errno, EHOSTUNREACH);
}

static void test_names (void **state)
{
    assert_string_equal (wire_cmd_name (WIRE_SIDE_CLIENT, WIRE_C_SUBMIT), "SUBMIT");
    assert_string_equal (wire_cmd_name (WIRE_SIDE_WORKER, WIRE_W_TASK), "TASK");
    assert_string_equal (wire_cmd_name (WIRE_SIDE_WORKER, 0x7f), "?");
    assert_true (wire_cmd_valid (WIRE_SIDE_CLIENT, WIRE_C_SUBMIT, true));
    assert_false (wire_cmd_valid (WIRE_SIDE_CLIENT, WIRE_C_RESULT, true));
    assert_true (wire_cmd_valid (WIRE_SIDE_WORKER, WIRE_W_READY, true));
    assert_false (wire_cmd_valid (WIRE_SIDE_WORKER, WIRE_W_TASK, true));
    assert_true (wire_cmd_valid (WIRE_SIDE_WORKER, WIRE_W_TASK, false));
    char hex[16];
    uint8_t id[] = { 0x00, 0xab, 0x10 };
    assert_string_equal (wire_id_hex (id, 3, hex, sizeof hex), "00ab10");
    assert_string_equal (wire_id_hex (id, 3, hex, 5), "00ab");
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_job_roundtrip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_empty_body, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_malformed, s_setup, s_teardown),
        cmocka_unit_test (test_oversize_frame_dropped),
        cmocka_unit_test_setup_teardown (test_router_mandatory, s_setup, s_teardown),
        cmocka_unit_test (test_names),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
