// Unit tests for the lock-free log-linear histogram.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <pthread.h>
#include <cmocka.h>

#include "hist.h"

static hist_t s_h;

static void test_empty (void **state)
{
    hist_reset (&s_h);
    assert_int_equal (hist_count (&s_h), 0);
    assert_int_equal (hist_percentile (&s_h, 50), 0);
}

static void test_bucket_bounds (void **state)
{
    //  Every value falls in a bucket whose upper bound is >= value and within 1/16.
    for (uint64_t v = 0; v < 2000000; v = v * 1.01 + 1) {
        unsigned b = hist_bucket_of (v);
        assert_true (b < HIST_BUCKETS);
        uint64_t up = hist_bucket_upper (b);
        assert_true (up >= v);
        assert_true (up - v <= v / 16 + 1);
        if (b > 0)
            assert_true (hist_bucket_upper (b - 1) < v);
    }
    assert_true (hist_bucket_of (UINT64_MAX) < HIST_BUCKETS);
    assert_int_equal (hist_bucket_upper (hist_bucket_of (UINT64_MAX)), UINT64_MAX);
}

static void test_percentiles (void **state)
{
    hist_reset (&s_h);
    for (uint64_t v = 1; v <= 10000; v++)
        hist_record (&s_h, v);
    assert_int_equal (hist_count (&s_h), 10000);
    assert_int_equal (hist_sum (&s_h), 10000ull * 10001 / 2);
    assert_int_equal (hist_max (&s_h), 10000);
    uint64_t p50 = hist_percentile (&s_h, 50);
    uint64_t p99 = hist_percentile (&s_h, 99);
    assert_true (p50 >= 5000 && p50 <= 5000 + 5000 / 16 + 1);
    assert_true (p99 >= 9900 && p99 <= 10000);
    assert_int_equal (hist_percentile (&s_h, 100), 10000);
    assert_true (hist_percentile (&s_h, 0) <= 1);
}

static void test_merge_and_le (void **state)
{
    hist_t *a = calloc (1, sizeof *a);
    hist_t *b = calloc (1, sizeof *b);
    for (int i = 0; i < 100; i++)
        hist_record (a, 10);
    for (int i = 0; i < 100; i++)
        hist_record (b, 1000);
    hist_merge (a, b);
    assert_int_equal (hist_count (a), 200);
    assert_int_equal (hist_count_le (a, 15), 100);
    assert_int_equal (hist_count_le (a, 5000), 200);
    assert_int_equal (hist_max (a), 1000);
    uint64_t p75 = hist_percentile (a, 75);
    assert_true (p75 >= 1000 && p75 <= 1000 + 1000 / 16);
    free (a);
    free (b);
}

static void *s_writer (void *arg)
{
    for (int i = 0; i < 100000; i++)
        hist_record (&s_h, (uint64_t) (i % 1000));
    return NULL;
}

static void test_concurrent (void **state)
{
    hist_reset (&s_h);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create (&t[i], NULL, s_writer, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join (t[i], NULL);
    assert_int_equal (hist_count (&s_h), 400000);
    assert_int_equal (hist_count_le (&s_h, UINT64_MAX - 1) + 0, 400000);
    assert_int_equal (hist_max (&s_h), 999);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_empty),
        cmocka_unit_test (test_bucket_bounds),
        cmocka_unit_test (test_percentiles),
        cmocka_unit_test (test_merge_and_le),
        cmocka_unit_test (test_concurrent),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
