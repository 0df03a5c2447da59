// Unit tests for the broker's containers: the intrusive hash (common/hmap), the
// indexed timer heap (theap), including random insert/move/remove sequences, and the
// backend's connection generations (bconn).
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <cmocka.h>

#include "bconn.h"
#include "hmap.h"
#include "theap.h"

typedef struct {
    hmap_node_t node;
    uint64_t key;
} item_t;

static bool s_eq (const hmap_node_t *n, const void *key)
{
    return ((const item_t *) n)->key == *(const uint64_t *) key;
}

static void test_hmap (void **state)
{
    hmap_t h;
    assert_int_equal (hmap_init (&h, s_eq), 0);
    enum { N = 5000 };
    item_t *items = calloc (N, sizeof *items);
    for (uint64_t i = 0; i < N; i++) {
        items[i].key = i * 7919;
        hmap_insert (&h, &items[i].node, hmap_u64 (items[i].key));
    }
    assert_int_equal (h.size, N);
    for (uint64_t i = 0; i < N; i++) {
        uint64_t k = i * 7919;
        assert_ptr_equal (hmap_find (&h, hmap_u64 (k), &k), &items[i].node);
    }
    uint64_t missing = 3;
    assert_null (hmap_find (&h, hmap_u64 (missing), &missing));
    for (uint64_t i = 0; i < N; i += 2)
        hmap_remove (&h, &items[i].node);
    assert_int_equal (h.size, N / 2);
    for (uint64_t i = 0; i < N; i++) {
        uint64_t k = i * 7919;
        hmap_node_t *n = hmap_find (&h, hmap_u64 (k), &k);
        if (i % 2)
            assert_ptr_equal (n, &items[i].node);
        else
            assert_null (n);
    }
    size_t drained = 0;
    hmap_node_t *n = hmap_any (&h);
    assert_non_null (n);
    hmap_remove (&h, n);
    drained++;
    size_t cursor = 0;
    while ((n = hmap_pop (&h, &cursor)))
        drained++;
    assert_int_equal (drained, N / 2);
    assert_int_equal (h.size, 0);
    assert_null (hmap_any (&h));
    assert_int_equal (hmap_bytes ("abc", 3), hmap_bytes ("abc", 3));
    assert_int_not_equal (hmap_bytes ("abc", 3), hmap_bytes ("abd", 3));
    hmap_fini (&h);
    free (items);
}

static uint64_t s_rng = 88172645463325252ULL;
static uint32_t s_rand (uint32_t n)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (uint32_t) (s_rng % n);
}

static void test_theap (void **state)
{
    theap_t h;
    theap_init (&h);
    enum { N = 300 };
    theap_node_t nodes[N];
    for (int i = 0; i < N; i++)
        theap_node_init (&nodes[i]);
    //  Random sets, moves and removes; the top is always the minimum
    for (int step = 0; step < 20000; step++) {
        theap_node_t *x = &nodes[s_rand (N)];
        uint32_t op = s_rand (4);
        if (op == 0)
            theap_remove (&h, x);
        else
        if (op == 1)
            theap_set (&h, x, INT64_MAX);
        else
            assert_int_equal (theap_set (&h, x, s_rand (100000)), 0);
        int64_t min = INT64_MAX;
        size_t queued = 0;
        for (int i = 0; i < N; i++)
            if (nodes[i].idx != THEAP_NONE) {
                queued++;
                if (nodes[i].when < min)
                    min = nodes[i].when;
            }
        assert_int_equal (queued, h.n);
        if (queued)
            assert_int_equal (theap_top (&h)->when, min);
        else
            assert_null (theap_top (&h));
    }
    //  Pop everything in order
    int64_t last = -1;
    theap_node_t *t;
    while ((t = theap_top (&h))) {
        assert_true (t->when >= last);
        last = t->when;
        theap_remove (&h, t);
        assert_int_equal (t->idx, THEAP_NONE);
    }
    theap_fini (&h);
}

//  fd reuse: a closed connection keeps the generation its workers were recorded with,
//  and a new connection on the same fd has another one.
static void test_bconn (void **state)
{
    bconn_t c;
    bconn_init (&c);
    assert_false (bconn_track (&c, -1));
    assert_false (bconn_track (&c, BCONN_FD_MAX));
    assert_int_equal (bconn_gen (&c, -1), 0);
    assert_int_equal (bconn_disconnected (&c, -1), -1);
    bconn_accepted (&c, 7);
    assert_true (bconn_track (&c, 7));
    uint32_t g7 = bconn_gen (&c, 7);
    assert_int_equal (g7, 1);
    assert_false (bconn_closing (&c, 7));
    //  7 closes, and a new connection gets fd 7 again before the close is taken
    assert_int_equal (bconn_disconnected (&c, 7), 0);
    assert_true (bconn_closing (&c, 7));
    assert_int_not_equal (bconn_gen (&c, 7), g7);
    bconn_accepted (&c, 7);
    uint32_t g7b = bconn_gen (&c, 7);
    assert_int_not_equal (g7b, g7);
    //  A far fd grows the table; the others keep theirs
    bconn_accepted (&c, 5000);
    assert_int_equal (bconn_gen (&c, 5000), 1);
    assert_int_equal (bconn_gen (&c, 7), g7b);
    assert_int_equal (bconn_disconnected (&c, 5000), 0);
    bconn_closed_t out;
    assert_true (bconn_take (&c, &out));
    assert_int_equal (out.fd, 7);
    assert_int_equal (out.gen, g7);
    assert_false (bconn_closing (&c, 7));
    assert_true (bconn_take (&c, &out));
    assert_int_equal (out.fd, 5000);
    assert_int_equal (out.gen, 1);
    assert_false (bconn_take (&c, &out));
    //  Too many closes waiting: the rest are not kept, but still move the fd on
    for (int i = 0; i < BCONN_PENDING_MAX; i++)
        assert_int_equal (bconn_disconnected (&c, 9), 0);
    uint32_t g9 = bconn_gen (&c, 9);
    assert_int_equal (bconn_disconnected (&c, 9), -1);
    assert_int_equal (bconn_gen (&c, 9), g9 + 1);
    bconn_fini (&c);
    bconn_fini (&c);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_hmap),
        cmocka_unit_test (test_theap),
        cmocka_unit_test (test_bconn),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
