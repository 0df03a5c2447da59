// Unit tests for the edge's job routing table (edge/jobmap.c, job_id -> request):
// put/get/take/drain, growth, and backward-shift deletion under random sequences
// checked against a plain reference, with keys picked to collide and wrap around.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "jobmap.h"

static void *s_ptr (uint64_t k)
{
    return (void *) (uintptr_t) (k * 16 + 8);
}

static void test_jobmap_basics (void **state)
{
    (void) state;
    edge_jobmap_t *m = edge_jobmap_new ();
    assert_non_null (m);
    assert_int_equal (edge_jobmap_size (m), 0);
    assert_int_equal (edge_jobmap_put (m, 0, s_ptr (0), 1), -1);
    assert_null (edge_jobmap_get (m, 0));
    assert_false (edge_jobmap_take (m, 0, NULL));
    assert_null (edge_jobmap_get (m, 7));
    assert_int_equal (edge_jobmap_put (m, 7, s_ptr (7), 70), 0);
    assert_int_equal (edge_jobmap_put (m, UINT64_MAX, s_ptr (9), 90), 0);
    assert_int_equal (edge_jobmap_size (m), 2);
    const edge_route_t *r = edge_jobmap_get (m, 7);
    assert_non_null (r);
    assert_int_equal (r->job_id, 7);
    assert_ptr_equal (r->req, s_ptr (7));
    assert_int_equal (r->since_ms, 70);
    //  Replacing keeps the size
    assert_int_equal (edge_jobmap_put (m, 7, s_ptr (8), 80), 0);
    assert_int_equal (edge_jobmap_size (m), 2);
    assert_ptr_equal (edge_jobmap_get (m, 7)->req, s_ptr (8));
    edge_route_t out;
    assert_true (edge_jobmap_take (m, 7, &out));
    assert_int_equal (out.job_id, 7);
    assert_ptr_equal (out.req, s_ptr (8));
    assert_int_equal (out.since_ms, 80);
    assert_false (edge_jobmap_take (m, 7, &out));
    assert_true (edge_jobmap_take (m, UINT64_MAX, NULL));
    assert_int_equal (edge_jobmap_size (m), 0);
    //  Growth: far past the initial capacity, every route kept
    enum { N = 20000 };
    for (uint64_t k = 1; k <= N; k++)
        assert_int_equal (edge_jobmap_put (m, k * 7919, s_ptr (k), (int64_t) k), 0);
    assert_int_equal (edge_jobmap_size (m), N);
    for (uint64_t k = 1; k <= N; k++) {
        r = edge_jobmap_get (m, k * 7919);
        assert_non_null (r);
        assert_ptr_equal (r->req, s_ptr (k));
        assert_int_equal (r->since_ms, (int64_t) k);
        assert_null (edge_jobmap_get (m, k * 7919 + 1));
    }
    for (uint64_t k = 1; k <= N; k += 2)
        assert_true (edge_jobmap_take (m, k * 7919, NULL));
    assert_int_equal (edge_jobmap_size (m), N / 2);
    for (uint64_t k = 1; k <= N; k++)
        assert_int_equal (edge_jobmap_get (m, k * 7919) != NULL, k % 2 == 0);
    edge_jobmap_drain (m, NULL, NULL);
    assert_int_equal (edge_jobmap_size (m), 0);
    assert_null (edge_jobmap_get (m, 2 * 7919));
    assert_int_equal (edge_jobmap_put (m, 5, s_ptr (5), 5), 0);
    assert_int_equal (edge_jobmap_size (m), 1);
    edge_jobmap_destroy (&m);
    assert_null (m);
    edge_jobmap_destroy (&m);
}

typedef struct {
    edge_jobmap_t *m;
    int seen[256];
    size_t calls;
} s_drain_t;

static void s_on_drain (const edge_route_t *r, void *arg)
{
    s_drain_t *d = arg;
    d->calls++;
    assert_true (r->job_id >= 1 && r->job_id < 256);
    d->seen[r->job_id]++;
    assert_ptr_equal (r->req, s_ptr (r->job_id));
    assert_int_equal (r->since_ms, (int64_t) r->job_id * 3);
    //  The table is already empty, and fn may use it
    assert_null (edge_jobmap_get (d->m, r->job_id));
    assert_int_equal (edge_jobmap_put (d->m, r->job_id + 1000, s_ptr (r->job_id), 0), 0);
    assert_false (edge_jobmap_take (d->m, (r->job_id % 200) + 1, NULL));
}

static void test_jobmap_drain (void **state)
{
    (void) state;
    s_drain_t d = { .m = edge_jobmap_new () };
    assert_non_null (d.m);
    edge_jobmap_drain (d.m, s_on_drain, &d);
    assert_int_equal (d.calls, 0);
    for (uint64_t k = 1; k <= 200; k++)
        assert_int_equal (edge_jobmap_put (d.m, k, s_ptr (k), (int64_t) k * 3), 0);
    edge_jobmap_drain (d.m, s_on_drain, &d);
    assert_int_equal (d.calls, 200);
    for (uint64_t k = 1; k <= 200; k++) {
        assert_int_equal (d.seen[k], 1);
        assert_null (edge_jobmap_get (d.m, k));
        assert_non_null (edge_jobmap_get (d.m, k + 1000));
    }
    assert_int_equal (edge_jobmap_size (d.m), 200);
    edge_jobmap_destroy (&d.m);
}

//  The table's current hash (a copy): picks keys that collide, wrap around the end of
//  the table and form long runs. The test stays correct if the hash changes.
static size_t s_home (uint64_t k, size_t cap)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return (size_t) k & (cap - 1);
}

typedef struct {
    bool present;
    void *req;
    int64_t since;
} s_ref_t;

//  Random put/take against a plain array; every key is checked after each step.
static void s_random_run (const uint64_t *keys, size_t nkeys, int steps, uint64_t seed)
{
    edge_jobmap_t *m = edge_jobmap_new ();
    assert_non_null (m);
    s_ref_t *ref = calloc (nkeys, sizeof *ref);
    size_t size = 0;
    for (int step = 0; step < steps; step++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t i = (size_t) (seed >> 33) % nkeys;
        unsigned dice = (unsigned) (seed >> 20) & 7;     // keeps the table about half full
        bool put = size < nkeys / 2 ? dice < 6 : dice < 3;
        if (put) {
            void *req = s_ptr ((uint64_t) step);
            assert_int_equal (edge_jobmap_put (m, keys[i], req, step), 0);
            size += !ref[i].present;
            ref[i] = (s_ref_t) { true, req, step };
        }
        else {
            edge_route_t out;
            assert_int_equal (edge_jobmap_take (m, keys[i], &out), ref[i].present);
            if (ref[i].present) {
                assert_int_equal (out.job_id, keys[i]);
                assert_ptr_equal (out.req, ref[i].req);
                assert_int_equal (out.since_ms, ref[i].since);
                size--;
            }
            ref[i].present = false;
        }
        assert_int_equal (edge_jobmap_size (m), size);
        if (nkeys <= 64 || step % 997 == 0 || step == steps - 1)
            for (size_t k = 0; k < nkeys; k++) {
                const edge_route_t *r = edge_jobmap_get (m, keys[k]);
                if (!ref[k].present) {
                    assert_null (r);
                    continue;
                }
                assert_non_null (r);
                assert_int_equal (r->job_id, keys[k]);
                assert_ptr_equal (r->req, ref[k].req);
                assert_int_equal (r->since_ms, ref[k].since);
            }
    }
    free (ref);
    edge_jobmap_destroy (&m);
}

static void test_jobmap_random (void **state)
{
    (void) state;
    //  Keys whose home slots (in the first table of 64) crowd the last few slots, so
    //  runs wrap around the end; and keys sharing one home slot
    uint64_t crowd[30], same[24];
    size_t nc = 0, ns = 0;
    for (uint64_t k = 1; nc < 30 || ns < 24; k++) {
        size_t h = s_home (k, 64);
        if (nc < 30 && h >= 60)
            crowd[nc++] = k;
        else
        if (ns < 24 && h == 17)
            same[ns++] = k;
    }
    s_random_run (crowd, nc, 40000, 1);
    s_random_run (same, ns, 40000, 2);
    //  Mixed: both groups and plain keys together
    uint64_t mixed[64];
    memcpy (mixed, crowd, sizeof crowd);
    memcpy (mixed + 30, same, sizeof same);
    for (size_t i = 54; i < 64; i++)
        mixed[i] = 1000003 * i;
    s_random_run (mixed, 64, 60000, 3);
    //  Many keys: growth in the middle of deletes
    enum { N = 5000 };
    uint64_t *many = malloc (N * sizeof *many);
    for (size_t i = 0; i < N; i++)
        many[i] = 1 + i * 2654435761ULL;
    s_random_run (many, N, 200000, 4);
    free (many);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_jobmap_basics),
        cmocka_unit_test (test_jobmap_drain),
        cmocka_unit_test (test_jobmap_random),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
