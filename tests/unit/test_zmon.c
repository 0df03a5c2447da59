// Unit tests for the socket monitor helper (common/zmon) over TCP loopback: CONNECTED
// and ACCEPTED with the connection's fd, ZMQ_SRCFD of a received frame, DISCONNECTED.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdbool.h>
#include <string.h>
#include <cmocka.h>
#include <zmq.h>

#include "aclock.h"
#include "zmon.h"

#define WAIT_MS 5000

//  Wait (polling the monitor, at most WAIT_MS) for event; other events are skipped.
//  Returns 0 with *ev filled, or -1.
static int s_wait_event (zmon_t *mon, uint16_t event, zmon_event_t *ev)
{
    int64_t until = aclock_now_ms () + WAIT_MS;
    for (;;) {
        while (zmon_next (mon, ev) == 0)
            if (ev->event == event)
                return 0;
        int64_t left = until - aclock_now_ms ();
        if (left <= 0)
            return -1;
        zmq_pollitem_t item = { zmon_socket (mon), 0, ZMQ_POLLIN, 0 };
        zmq_poll (&item, 1, (long) left);
    }
}

static void test_events_and_srcfd (void **state)
{
    void *ctx = zmq_ctx_new ();
    void *router = zmq_socket (ctx, ZMQ_ROUTER);
    void *dealer = zmq_socket (ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt (router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt (dealer, ZMQ_LINGER, &zero, sizeof zero);
    zmon_t rmon, dmon;
    assert_int_equal (zmon_open (&rmon, ctx, router,
                                 ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED), 0);
    assert_int_equal (zmon_open (&dmon, ctx, dealer, ZMQ_EVENT_CONNECTED), 0);
    assert_non_null (zmon_socket (&rmon));
    assert_int_equal (zmq_bind (router, "tcp://127.0.0.1:*"), 0);
    char ep[128];
    size_t len = sizeof ep;
    assert_int_equal (zmq_getsockopt (router, ZMQ_LAST_ENDPOINT, ep, &len), 0);
    assert_int_equal (zmq_connect (dealer, ep), 0);

    zmon_event_t ev;
    assert_int_equal (s_wait_event (&dmon, ZMQ_EVENT_CONNECTED, &ev), 0);
    assert_string_equal (ev.addr, ep);
    assert_int_equal (s_wait_event (&rmon, ZMQ_EVENT_ACCEPTED, &ev), 0);
    int fd = (int) ev.value;
    assert_true (fd >= 0);

    //  Every frame the ROUTER reads from that connection carries its fd
    assert_int_equal (zmq_send (dealer, "hi", 2, 0), 2);
    zmq_msg_t id, body;
    zmq_msg_init (&id);
    zmq_msg_init (&body);
    assert_true (zmq_msg_recv (&id, router, 0) >= 0);
    assert_true (zmq_msg_more (&id));
    assert_int_equal (zmq_msg_recv (&body, router, 0), 2);
    assert_int_equal (zmq_msg_get (&id, ZMQ_SRCFD), fd);
    assert_int_equal (zmq_msg_get (&body, ZMQ_SRCFD), fd);
    zmq_msg_close (&id);
    zmq_msg_close (&body);

    //  The peer goes away: DISCONNECTED names the same fd
    zmon_close (&dmon);
    zmq_close (dealer);
    assert_int_equal (s_wait_event (&rmon, ZMQ_EVENT_DISCONNECTED, &ev), 0);
    assert_int_equal ((int) ev.value, fd);

    zmon_close (&rmon);
    zmon_close (&rmon);                     // twice is fine
    assert_null (zmon_socket (&rmon));
    assert_int_equal (zmon_next (&rmon, &ev), -1);
    zmq_close (router);
    zmq_ctx_term (ctx);
}

static void test_names (void **state)
{
    assert_string_equal (zmon_event_name (ZMQ_EVENT_ACCEPTED), "ACCEPTED");
    assert_string_equal (zmon_event_name (ZMQ_EVENT_CONNECTED), "CONNECTED");
    assert_string_equal (zmon_event_name (ZMQ_EVENT_DISCONNECTED), "DISCONNECTED");
    assert_string_equal (zmon_event_name (ZMQ_EVENT_HANDSHAKE_FAILED_AUTH),
                         "HANDSHAKE_FAILED_AUTH");
    assert_string_equal (zmon_event_name (0), "?");
    zmon_t zeroed;
    memset (&zeroed, 0, sizeof zeroed);
    zmon_close (&zeroed);                   // a zeroed zmon is a closed one
    zmon_event_t ev;
    assert_int_equal (zmon_next (&zeroed, &ev), -1);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_events_and_srcfd),
        cmocka_unit_test (test_names),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
