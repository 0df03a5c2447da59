// Unit tests for the metrics-stream fan-out: bounded per-client queues, the latest
// `metrics` on join, overflow drops only the slow client, the producer never blocks.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "fanout.h"

static fmsg_t *s_msg (const char *topic, int seq)
{
    char json[64];
    int n = snprintf (json, sizeof json, "{\"seq\":%d}", seq);
    fmsg_t *m = fanout_msg_new (topic, json, (size_t) n);
    assert_non_null (m);
    return m;
}

static int s_seq (const fmsg_t *m)
{
    const char *p = strstr (m->data, "\"seq\":");
    assert_non_null (p);
    return (int) strtol (p + 6, NULL, 10);
}

static void s_publish (fanout_t *f, const char *topic, int seq, bool latest)
{
    fmsg_t *m = s_msg (topic, seq);
    fanout_publish (f, m, latest);
    fanout_msg_release (&m);
}

static void test_frame (void **state)
{
    fmsg_t *m = fanout_msg_new ("job", "{\"a\":1}", 7);
    assert_string_equal (m->data, "event: job\ndata: {\"a\":1}\n\n");
    assert_int_equal (m->len, strlen (m->data));
    fmsg_t *r = fanout_msg_ref (m);
    fanout_msg_release (&m);
    assert_null (m);
    fanout_msg_release (&r);
    fanout_msg_release (&r);                    // NULL is fine
}

static void test_order_and_latest (void **state)
{
    fanout_t *f = fanout_new (4, 16, 1 << 20);
    s_publish (f, "metrics", 1, true);
    s_publish (f, "job", 2, false);             // before anyone joined: not kept
    s_publish (f, "metrics", 3, true);
    fanout_client_t *c = fanout_join (f);
    assert_non_null (c);
    s_publish (f, "job", 4, false);
    s_publish (f, "worker", 5, false);
    fmsg_t *got[8];
    int n = fanout_take (c, got, 8, 1000);
    assert_int_equal (n, 3);
    assert_int_equal (s_seq (got[0]), 3);       // the latest metrics first
    assert_non_null (strstr (got[0]->data, "event: metrics\n"));
    assert_int_equal (s_seq (got[1]), 4);
    assert_int_equal (s_seq (got[2]), 5);
    for (int i = 0; i < n; i++)
        fanout_msg_release (&got[i]);
    assert_int_equal (fanout_take (c, got, 8, 10), 0);      // timeout: nothing queued
    fanout_stats_t st;
    fanout_stats (f, &st);
    assert_int_equal (st.clients, 1);
    assert_int_equal (st.published, 5);
    fanout_leave (f, &c);
    assert_null (c);
    fanout_stats (f, &st);
    assert_int_equal (st.clients, 0);
    fanout_destroy (&f);
    assert_null (f);
}

static void test_overflow_drops_only_slow_client (void **state)
{
    fanout_t *f = fanout_new (4, 4, 1 << 20);
    fanout_client_t *slow = fanout_join (f);
    fanout_client_t *fast = fanout_join (f);
    fmsg_t *got[8];
    for (int i = 0; i < 4; i++)
        s_publish (f, "job", i, false);
    assert_int_equal (fanout_take (fast, got, 8, 0), 4);
    for (int i = 0; i < 4; i++)
        fanout_msg_release (&got[i]);
    //  The fifth message overflows the slow client's queue of 4
    fmsg_t *m = s_msg ("job", 4);
    fanout_publish (f, m, false);
    assert_int_equal (atomic_load (&m->base.refs), 2);          // only the fast queue holds it
    fanout_msg_release (&m);
    fanout_stats_t st;
    fanout_stats (f, &st);
    assert_int_equal (st.dropped, 1);
    assert_int_equal (fanout_take (slow, got, 8, 0), -1);  // its handler must close
    assert_int_equal (fanout_take (fast, got, 8, 0), 1);
    assert_int_equal (s_seq (got[0]), 4);
    fanout_msg_release (&got[0]);
    //  Publishing on goes on for the others; the dropped client is not counted twice
    s_publish (f, "job", 5, false);
    fanout_stats (f, &st);
    assert_int_equal (st.dropped, 1);
    fanout_leave (f, &slow);
    fanout_leave (f, &fast);
    fanout_destroy (&f);
}

static void test_byte_limit (void **state)
{
    fanout_t *f = fanout_new (2, 1000, 100);    // about 3 messages of 30 bytes
    fanout_client_t *c = fanout_join (f);
    fmsg_t *big = fanout_msg_new ("job", "0123456789012345678901234567890123456789012345678901234567890123456789"
                                   "012345678901234567890123456789", 100);
    fanout_publish (f, big, false);             // larger than the limit, but the queue is empty
    fanout_msg_release (&big);
    fmsg_t *got[4];
    assert_int_equal (fanout_take (c, got, 4, 0), 1);
    fanout_msg_release (&got[0]);
    int i = 0;
    fanout_stats_t st;
    do {
        s_publish (f, "job", i++, false);
        fanout_stats (f, &st);
    } while (st.dropped == 0 && i < 100);
    assert_int_equal (st.dropped, 1);
    assert_true (i > 2 && i < 6);
    assert_int_equal (fanout_take (c, got, 4, 0), -1);
    fanout_leave (f, &c);
    fanout_destroy (&f);
}

static void test_client_limit_and_close (void **state)
{
    fanout_t *f = fanout_new (2, 8, 1 << 20);
    fanout_client_t *a = fanout_join (f);
    fanout_client_t *b = fanout_join (f);
    assert_non_null (a);
    assert_non_null (b);
    assert_null (fanout_join (f));
    fanout_stats_t st;
    fanout_stats (f, &st);
    assert_int_equal (st.refused, 1);
    fanout_leave (f, &a);
    a = fanout_join (f);                        // a slot is free again
    assert_non_null (a);
    fanout_close (f);
    fmsg_t *got[1];
    assert_int_equal (fanout_take (a, got, 1, 1000), -1);
    assert_int_equal (fanout_take (b, got, 1, 1000), -1);
    assert_null (fanout_join (f));              // closed: no new clients
    fanout_leave (f, &a);
    fanout_leave (f, &b);
    fanout_destroy (&f);
}

//  A client that never reads cannot slow the producer down: 100,000 messages go
//  through while it sits there, and it is dropped after its queue filled.
static void test_producer_never_blocks (void **state)
{
    fanout_t *f = fanout_new (2, 256, 1 << 20);
    fanout_client_t *stuck = fanout_join (f);
    for (int i = 0; i < 100000; i++)
        s_publish (f, "job", i, false);
    fanout_stats_t st;
    fanout_stats (f, &st);
    assert_int_equal (st.published, 100000);
    assert_int_equal (st.dropped, 1);
    fmsg_t *got[1];
    assert_int_equal (fanout_take (stuck, got, 1, 0), -1);
    fanout_leave (f, &stuck);
    fanout_destroy (&f);
}

typedef struct {
    fanout_client_t *client;
    int received;
    int last;
    bool in_order;
    bool dropped;
} s_reader_t;

static void *s_reader (void *arg)
{
    s_reader_t *r = arg;
    fmsg_t *got[64];
    while (true) {
        int n = fanout_take (r->client, got, 64, 2000);
        if (n <= 0) {
            r->dropped = n < 0;
            break;
        }
        for (int i = 0; i < n; i++) {
            int seq = s_seq (got[i]);
            if (seq <= r->last)
                r->in_order = false;
            r->last = seq;
            r->received++;
            fanout_msg_release (&got[i]);
        }
        if (r->last == 49999)
            break;
    }
    return NULL;
}

//  A reading client on another thread gets every message in order (or, if it ever
//  fell 256 behind, is dropped cleanly); the producer goes on either way.
static void test_concurrent_reader (void **state)
{
    fanout_t *f = fanout_new (2, 256, 1 << 20);
    s_reader_t r = { .client = fanout_join (f), .last = -1, .in_order = true };
    pthread_t thread;
    assert_int_equal (pthread_create (&thread, NULL, s_reader, &r), 0);
    for (int i = 0; i < 50000; i++)
        s_publish (f, "job", i, false);
    pthread_join (thread, NULL);
    assert_true (r.in_order);
    fanout_stats_t st;
    fanout_stats (f, &st);
    if (r.dropped)
        assert_int_equal (st.dropped, 1);
    else
        assert_int_equal (r.received, 50000);
    fanout_leave (f, &r.client);
    fanout_destroy (&f);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_frame),
        cmocka_unit_test (test_order_and_latest),
        cmocka_unit_test (test_overflow_drops_only_slow_client),
        cmocka_unit_test (test_byte_limit),
        cmocka_unit_test (test_client_limit_and_close),
        cmocka_unit_test (test_producer_never_blocks),
        cmocka_unit_test (test_concurrent_reader),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
