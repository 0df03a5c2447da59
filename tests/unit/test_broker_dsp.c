// Unit tests for the broker's worker pools (brokers/dsp.c): credits, the
// most-free-credits choice, bounded queues, dequeue on credit return, unavailable
// models, worker removal, capacity updates and items sent back (resubmit).
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <cmocka.h>

#include "dsp.h"

static dsp_worker_t *s_add (dsp_t *d, const char *m1, const char *m2, uint32_t cap, void *user)
{
    const char *models[] = { m1, m2 };
    return dsp_worker_add (d, models, m2 ? 2 : 1, cap, user);
}

static void test_credits (void **state)
{
    dsp_t *d = dsp_new (10);
    assert_non_null (d);
    int tag;
    dsp_worker_t *w = s_add (d, "a", NULL, 2, &tag);
    assert_non_null (w);
    assert_ptr_equal (dsp_worker_user (w), &tag);
    dsp_item_t i1 = { 0 }, i2 = { 0 }, i3 = { 0 };
    assert_int_equal (dsp_submit (d, &i1, "a"), DSP_ASSIGNED);
    assert_ptr_equal (i1.worker, w);
    assert_int_equal (dsp_submit (d, &i2, "a"), DSP_ASSIGNED);
    assert_int_equal (dsp_worker_in_flight (w), 2);
    assert_int_equal (dsp_submit (d, &i3, "a"), DSP_QUEUED);
    dsp_model_t *m = dsp_model (d, "a");
    assert_int_equal (dsp_model_queued (m), 1);
    assert_int_equal (dsp_model_in_flight (m), 2);
    assert_int_equal (dsp_model_capacity (m), 2);
    assert_int_equal (dsp_model_workers (m), 1);
    //  Credit comes back: the queued item goes to the worker
    assert_ptr_equal (dsp_done (d, &i1), w);
    assert_null (i1.worker);
    assert_ptr_equal (dsp_pull (d, w), &i3);
    assert_ptr_equal (i3.worker, w);
    assert_null (dsp_pull (d, w));
    assert_int_equal (dsp_model_queued (m), 0);
    assert_int_equal (dsp_worker_in_flight (w), 2);
    dsp_done (d, &i2);
    dsp_done (d, &i3);
    assert_int_equal (dsp_worker_in_flight (w), 0);
    assert_null (dsp_done (d, &i3));             // twice is harmless
    dsp_destroy (&d);
    assert_null (d);
    dsp_destroy (&d);
}

static void test_most_free (void **state)
{
    dsp_t *d = dsp_new (10);
    dsp_worker_t *small = s_add (d, "a", NULL, 2, NULL);
    dsp_worker_t *big = s_add (d, "a", NULL, 5, NULL);
    dsp_item_t it[7];
    memset (it, 0, sizeof it);
    //  Free credits: small 2, big 5 -> big takes the first three, then they alternate
    for (int i = 0; i < 3; i++) {
        assert_int_equal (dsp_submit (d, &it[i], "a"), DSP_ASSIGNED);
        assert_ptr_equal (it[i].worker, big);
    }
    assert_int_equal (dsp_submit (d, &it[3], "a"), DSP_ASSIGNED);  // big 2 free, small 2: either
    assert_int_equal (dsp_submit (d, &it[4], "a"), DSP_ASSIGNED);
    assert_int_equal (dsp_submit (d, &it[5], "a"), DSP_ASSIGNED);
    assert_int_equal (dsp_submit (d, &it[6], "a"), DSP_ASSIGNED);
    assert_int_equal (dsp_worker_in_flight (small), 2);
    assert_int_equal (dsp_worker_in_flight (big), 5);
    //  Free one on small: the next goes there
    dsp_item_t *on_small = it[3].worker == small ? &it[3] : &it[4];
    dsp_done (d, on_small);
    dsp_item_t x = { 0 };
    assert_int_equal (dsp_submit (d, &x, "a"), DSP_ASSIGNED);
    assert_ptr_equal (x.worker, small);
    dsp_destroy (&d);
}

static void test_queue_bound (void **state)
{
    dsp_t *d = dsp_new (2);
    dsp_worker_t *w = s_add (d, "a", NULL, 1, NULL);
    dsp_item_t run = { 0 }, q1 = { 0 }, q2 = { 0 }, q3 = { 0 };
    assert_int_equal (dsp_submit (d, &run, "a"), DSP_ASSIGNED);
    assert_int_equal (dsp_submit (d, &q1, "a"), DSP_QUEUED);
    assert_int_equal (dsp_submit (d, &q2, "a"), DSP_QUEUED);
    assert_int_equal (dsp_submit (d, &q3, "a"), DSP_OVERLOADED);
    //  A queued item leaving (e.g. its job ended) frees a queue slot, not a credit
    assert_null (dsp_done (d, &q1));
    assert_int_equal (dsp_submit (d, &q3, "a"), DSP_QUEUED);
    //  FIFO order: q2 before q3
    dsp_done (d, &run);
    assert_ptr_equal (dsp_pull (d, w), &q2);
    dsp_done (d, &q2);
    assert_ptr_equal (dsp_pull (d, w), &q3);
    dsp_destroy (&d);

    d = dsp_new (0);                                 // queue_limit 0: never queue
    s_add (d, "a", NULL, 1, NULL);
    assert_int_equal (dsp_submit (d, &run, "a"), DSP_ASSIGNED);
    assert_int_equal (dsp_submit (d, &q1, "a"), DSP_OVERLOADED);
    dsp_destroy (&d);
}

static void test_unavailable (void **state)
{
    dsp_t *d = dsp_new (10);
    dsp_item_t it = { 0 };
    assert_int_equal (dsp_submit (d, &it, "nobody"), DSP_UNAVAILABLE);
    dsp_worker_t *w = s_add (d, "a", NULL, 1, NULL);
    assert_int_equal (dsp_submit (d, &it, "b"), DSP_UNAVAILABLE);
    dsp_worker_remove (d, &w, NULL, NULL);
    assert_null (w);
    //  The model is remembered but has no worker now
    assert_non_null (dsp_model (d, "a"));
    assert_int_equal (dsp_submit (d, &it, "a"), DSP_UNAVAILABLE);
    dsp_destroy (&d);
}

static void test_multi_model_credits (void **state)
{
    dsp_t *d = dsp_new (10);
    dsp_worker_t *w = s_add (d, "a", "b", 2, NULL);
    dsp_item_t a1 = { 0 }, b1 = { 0 }, a2 = { 0 }, b2 = { 0 };
    assert_int_equal (dsp_submit (d, &a1, "a"), DSP_ASSIGNED);
    assert_int_equal (dsp_submit (d, &b1, "b"), DSP_ASSIGNED);
    //  One credit pool shared by both models
    assert_int_equal (dsp_submit (d, &b2, "b"), DSP_QUEUED);
    assert_int_equal (dsp_submit (d, &a2, "a"), DSP_QUEUED);
    //  Oldest queued item across the worker's models comes first
    dsp_done (d, &a1);
    assert_ptr_equal (dsp_pull (d, w), &b2);
    dsp_done (d, &b1);
    assert_ptr_equal (dsp_pull (d, w), &a2);
    assert_int_equal (dsp_model_count (d), 2);
    assert_string_equal (dsp_model_name (dsp_model_at (d, 0)), "a");
    dsp_destroy (&d);
}

static void test_worker_remove (void **state)
{
    dsp_t *d = dsp_new (10);
    dsp_worker_t *w1 = s_add (d, "a", NULL, 2, NULL);
    dsp_worker_t *w2 = s_add (d, "a", "b", 1, NULL);
    dsp_item_t it[5];
    memset (it, 0, sizeof it);
    assert_int_equal (dsp_submit (d, &it[0], "a"), DSP_ASSIGNED);   // w1 (2 free)
    assert_ptr_equal (it[0].worker, w1);
    assert_int_equal (dsp_submit (d, &it[1], "b"), DSP_ASSIGNED);   // w2
    assert_ptr_equal (it[1].worker, w2);
    assert_int_equal (dsp_submit (d, &it[2], "a"), DSP_ASSIGNED);   // w1
    assert_int_equal (dsp_submit (d, &it[3], "b"), DSP_QUEUED);
    assert_int_equal (dsp_submit (d, &it[4], "a"), DSP_QUEUED);
    assert_int_equal (dsp_worker_count (d), 2);
    //  w2 dies: its running item is lost; model b has no worker left, so b's
    //  queue is orphaned; a's queue stays (w1 still serves a)
    dsp_item_t *lost = NULL, *orphans = NULL;
    dsp_worker_remove (d, &w2, &lost, &orphans);
    assert_ptr_equal (lost, &it[1]);
    assert_null (lost->next);
    assert_null (it[1].worker);
    assert_ptr_equal (orphans, &it[3]);
    assert_null (orphans->next);
    assert_false (it[3].queued);
    assert_int_equal (dsp_model_queued (dsp_model (d, "a")), 1);
    assert_int_equal (dsp_model_queued (dsp_model (d, "b")), 0);
    assert_int_equal (dsp_model_in_flight (dsp_model (d, "b")), 0);
    assert_int_equal (dsp_model_capacity (dsp_model (d, "a")), 2);
    assert_int_equal (dsp_worker_count (d), 1);
    //  w1 dies with two running items and a's queue orphaned
    dsp_worker_remove (d, &w1, &lost, &orphans);
    int n = 0;
    for (dsp_item_t *i = lost; i; i = i->next)
        n++;
    assert_int_equal (n, 2);
    assert_ptr_equal (orphans, &it[4]);
    assert_int_equal (dsp_worker_count (d), 0);
    dsp_destroy (&d);
}

static void test_bad_hello (void **state)
{
    dsp_t *d = dsp_new (10);
    const char *none[] = { "" };
    assert_null (dsp_worker_add (d, none, 1, 4, NULL));
    const char *dup[] = { "a", "a", "a" };
    dsp_worker_t *w = dsp_worker_add (d, dup, 3, 0, NULL);  // capacity clamps to 1
    assert_non_null (w);
    assert_int_equal (dsp_worker_capacity (w), 1);
    assert_int_equal (dsp_model_workers (dsp_model (d, "a")), 1);
    assert_int_equal (dsp_worker_count (d), 1);
    dsp_destroy (&d);
}

static void test_capacity_update (void **state)
{
    dsp_t *d = dsp_new (10);
    dsp_worker_t *w = s_add (d, "a", "b", 2, NULL);
    dsp_model_t *ma = dsp_model (d, "a"), *mb = dsp_model (d, "b");
    dsp_item_t i1 = { 0 }, i2 = { 0 }, i3 = { 0 };
    assert_int_equal (dsp_submit (d, &i1, "a"), DSP_ASSIGNED);
    //  0: nothing more is sent; what runs keeps running
    dsp_worker_set_capacity (d, w, 0);
    assert_int_equal (dsp_worker_capacity (w), 0);
    assert_int_equal (dsp_model_capacity (ma), 0);
    assert_int_equal (dsp_model_capacity (mb), 0);
    assert_int_equal (dsp_submit (d, &i2, "b"), DSP_QUEUED);
    assert_ptr_equal (dsp_done (d, &i1), w);
    assert_null (dsp_pull (d, w));
    //  It grows: the queued item goes out
    dsp_worker_set_capacity (d, w, 1);
    assert_int_equal (dsp_model_capacity (ma), 1);
    assert_ptr_equal (dsp_pull (d, w), &i2);
    assert_ptr_equal (i2.worker, w);
    assert_int_equal (dsp_submit (d, &i3, "a"), DSP_QUEUED);
    assert_null (dsp_pull (d, w));
    //  Clamped to the most a worker may announce
    dsp_worker_set_capacity (d, w, 10u * DSP_CAPACITY_MAX);
    assert_int_equal (dsp_worker_capacity (w), DSP_CAPACITY_MAX);
    assert_int_equal (dsp_model_capacity (mb), DSP_CAPACITY_MAX);
    assert_ptr_equal (dsp_pull (d, w), &i3);
    dsp_destroy (&d);
}

static void test_resubmit (void **state)
{
    dsp_t *d = dsp_new (10);
    int tx, ty;
    dsp_worker_t *x = s_add (d, "a", NULL, 1, &tx);
    dsp_worker_t *y = s_add (d, "a", NULL, 1, &ty);
    dsp_item_t i1 = { 0 }, i2 = { 0 }, i3 = { 0 };
    assert_int_equal (dsp_submit (d, &i1, "a"), DSP_ASSIGNED);
    dsp_worker_t *first = i1.worker, *other = first == x ? y : x;
    //  Sent back: it goes to the other worker, never the one that sent it back
    assert_ptr_equal (dsp_done (d, &i1), first);
    assert_int_equal (dsp_resubmit (d, &i1, "a", first), DSP_ASSIGNED);
    assert_ptr_equal (i1.worker, other);
    assert_int_equal (dsp_submit (d, &i2, "a"), DSP_ASSIGNED);
    assert_ptr_equal (i2.worker, first);
    assert_int_equal (dsp_submit (d, &i3, "a"), DSP_QUEUED);
    //  No credit elsewhere: it waits at the head of the queue, before i3
    assert_ptr_equal (dsp_done (d, &i1), other);
    assert_int_equal (dsp_resubmit (d, &i1, "a", other), DSP_QUEUED);
    assert_int_equal (dsp_model_queued (dsp_model (d, "a")), 2);
    assert_ptr_equal (dsp_pull (d, other), &i1);
    assert_ptr_equal (dsp_done (d, &i2), first);
    assert_ptr_equal (dsp_pull (d, first), &i3);
    //  A model nobody serves
    assert_ptr_equal (dsp_done (d, &i3), first);
    assert_int_equal (dsp_resubmit (d, &i3, "ghost", first), DSP_UNAVAILABLE);
    dsp_destroy (&d);
}

//  The start-up hold: items for models no worker serves wait (also when the last
//  worker leaves), a worker that comes serves them, and the end of the hold hands back
//  what is still unserved and forgets the names only held for.
static void test_hold (void **state)
{
    dsp_t *d = dsp_new (2);
    dsp_set_hold (d, true, NULL);
    assert_true (dsp_holding (d));
    dsp_item_t i1 = { 0 }, i2 = { 0 }, i3 = { 0 }, i4 = { 0 }, i5 = { 0 };
    assert_int_equal (dsp_submit (d, &i1, "a"), DSP_QUEUED);
    assert_int_equal (dsp_submit (d, &i2, "ghost"), DSP_QUEUED);
    assert_int_equal (dsp_submit (d, &i3, "ghost"), DSP_QUEUED);
    assert_int_equal (dsp_submit (d, &i4, "ghost"), DSP_UNAVAILABLE);   // queue full
    assert_int_equal (dsp_model_count (d), 2);
    dsp_worker_t *w = s_add (d, "a", "b", 4, NULL);
    assert_ptr_equal (dsp_pull (d, w), &i1);
    //  b's last worker leaves while holding: an item queued for b stays queued
    assert_int_equal (dsp_submit (d, &i5, "b"), DSP_ASSIGNED);
    dsp_done (d, &i5);
    dsp_done (d, &i1);
    dsp_worker_remove (d, &w, NULL, NULL);
    assert_int_equal (dsp_submit (d, &i5, "b"), DSP_QUEUED);
    dsp_item_t *orphans = NULL;
    dsp_set_hold (d, false, &orphans);
    assert_false (dsp_holding (d));
    size_t n = 0;
    for (dsp_item_t *it = orphans; it; it = it->next) {
        assert_true (it == &i2 || it == &i3 || it == &i5);
        assert_false (it->queued);
        n++;
    }
    assert_int_equal (n, 3);
    //  "ghost" is forgotten; "a" and "b" had a worker and stay known
    assert_null (dsp_model (d, "ghost"));
    assert_non_null (dsp_model (d, "a"));
    assert_int_equal (dsp_model_count (d), 2);
    assert_int_equal (dsp_submit (d, &i4, "ghost"), DSP_UNAVAILABLE);
    assert_int_equal (dsp_submit (d, &i4, "a"), DSP_UNAVAILABLE);
    dsp_destroy (&d);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_credits),
        cmocka_unit_test (test_most_free),
        cmocka_unit_test (test_queue_bound),
        cmocka_unit_test (test_unavailable),
        cmocka_unit_test (test_multi_model_credits),
        cmocka_unit_test (test_worker_remove),
        cmocka_unit_test (test_bad_hello),
        cmocka_unit_test (test_capacity_update),
        cmocka_unit_test (test_resubmit),
        cmocka_unit_test (test_hold),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
