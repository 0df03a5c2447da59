// Unit tests of the worker's attempt table: the (broker, attempt id) index under random
// add/remove churn (checked against a plain array model), the same id from two brokers,
// and timer heap ordering with removals.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "wk_table.h"

static uint64_t s_rng = 12345;

static uint64_t s_rand (void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

static void test_add_find_remove_churn (void **state)
{
    enum { CAP = 64, OPS = 200000 };
    wk_table_t *t = wk_table_new (CAP);
    assert_non_null (t);
    uint64_t live [CAP];
    uint32_t live_b [CAP];
    size_t nlive = 0;
    for (int op = 0; op < OPS; op++) {
        bool add = nlive == 0 || (nlive < CAP && s_rand () % 2);
        if (add) {
            //  Small id space forces collisions and re-use of ids, across three brokers
            uint64_t id = s_rand () % 300;
            uint32_t b = (uint32_t) (s_rand () % 3);
            bool dup = false;
            for (size_t i = 0; i < nlive; i++)
                dup |= live [i] == id && live_b [i] == b;
            wk_attempt_t *a = wk_table_add (t, b, id);
            if (dup) {
                assert_null (a);
                continue;
            }
            assert_non_null (a);
            assert_int_equal (a->attempt_id, id);
            assert_int_equal (a->broker, b);
            live [nlive] = id;
            live_b [nlive++] = b;
        }
        else {
            size_t k = s_rand () % nlive;
            wk_attempt_t *a = wk_table_find (t, live_b [k], live [k]);
            assert_non_null (a);
            wk_table_remove (t, a);
            assert_null (wk_table_find (t, live_b [k], live [k]));
            live [k] = live [--nlive];
            live_b [k] = live_b [nlive];
        }
        assert_int_equal (wk_table_used (t), nlive);
        if (op % 1000 == 0)
            for (size_t i = 0; i < nlive; i++)
                assert_non_null (wk_table_find (t, live_b [i], live [i]));
    }
    wk_table_destroy (&t);
    wk_table_destroy (&t);
    assert_null (t);
}

static void test_full_table_refuses (void **state)
{
    wk_table_t *t = wk_table_new (3);
    assert_non_null (wk_table_add (t, 0, 1));
    assert_non_null (wk_table_add (t, 0, 2));
    wk_attempt_t *c = wk_table_add (t, 0, 3);
    assert_non_null (c);
    assert_null (wk_table_add (t, 0, 4));
    assert_null (wk_table_add (t, 1, 4));      // full for every broker
    wk_table_remove (t, c);
    assert_non_null (wk_table_add (t, 0, 4));
    assert_null (wk_table_new (0));
    wk_table_destroy (&t);
}

static void test_same_id_two_brokers (void **state)
{
    wk_table_t *t = wk_table_new (4);
    wk_attempt_t *a = wk_table_add (t, 0, 7);
    wk_attempt_t *b = wk_table_add (t, 1, 7);
    assert_non_null (a);
    assert_non_null (b);
    assert_ptr_not_equal (a, b);
    assert_null (wk_table_add (t, 1, 7));      // live for broker 1 already
    assert_ptr_equal (wk_table_find (t, 0, 7), a);
    assert_ptr_equal (wk_table_find (t, 1, 7), b);
    assert_null (wk_table_find (t, 2, 7));
    wk_table_remove (t, a);
    assert_null (wk_table_find (t, 0, 7));
    assert_ptr_equal (wk_table_find (t, 1, 7), b);
    wk_table_destroy (&t);
}

static void test_timer_heap_order (void **state)
{
    enum { CAP = 200 };
    wk_table_t *t = wk_table_new (CAP);
    for (uint64_t i = 0; i < CAP; i++) {
        wk_attempt_t *a = wk_table_add (t, 0, i);
        wk_table_timer_set (t, a, (int64_t) (s_rand () % 1000));
    }
    //  Move some, clear some
    for (uint64_t i = 0; i < CAP; i += 3)
        wk_table_timer_set (t, wk_table_find (t, 0, i), (int64_t) (s_rand () % 1000));
    for (uint64_t i = 1; i < CAP; i += 5)
        wk_table_timer_clear (t, wk_table_find (t, 0, i));
    int64_t last = -1;
    int popped = 0;
    wk_attempt_t *a;
    while ((a = wk_table_timer_first (t))) {
        assert_true (a->timer.when >= last);
        last = a->timer.when;
        wk_table_timer_clear (t, a);
        assert_int_equal (a->timer.idx, THEAP_NONE);
        popped++;
    }
    assert_int_equal (popped, CAP - CAP / 5);
    //  Removing an attempt drops its timer
    a = wk_table_find (t, 0, 7);
    wk_table_timer_set (t, a, 5);
    wk_table_remove (t, a);
    assert_null (wk_table_timer_first (t));
    wk_table_destroy (&t);
}

int main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_add_find_remove_churn),
        cmocka_unit_test (test_full_table_refuses),
        cmocka_unit_test (test_same_id_two_brokers),
        cmocka_unit_test (test_timer_heap_order),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
