// Unit tests for common/snap: reference counts (freed exactly once, on the last
// release) and the latest-snapshot box, also with readers and a writer on threads.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "snap.h"

typedef struct {
    snap_t base;
    int value;
} obj_t;

static atomic_int s_freed;

static void s_free (snap_t *base)
{
    obj_t *o = (obj_t *) base;
    o->value = -1;
    free (o);
    atomic_fetch_add (&s_freed, 1);
}

static obj_t *s_obj (int value)
{
    obj_t *o = malloc (sizeof *o);
    assert_non_null (o);
    snap_init (&o->base, s_free);
    o->value = value;
    return o;
}

static void test_refcount (void **state)
{
    (void) state;
    atomic_store (&s_freed, 0);
    obj_t *o = s_obj (7);
    snap_t *a = &o->base, *b = snap_ref (a), *c = snap_ref (b);
    assert_ptr_equal (b, a);
    snap_release (&a);
    assert_null (a);
    snap_release (&b);
    assert_int_equal (atomic_load (&s_freed), 0);
    assert_int_equal (((obj_t *) c)->value, 7);
    snap_release (&c);
    assert_int_equal (atomic_load (&s_freed), 1);
    snap_release (&c);                  // NULL: nothing
    snap_release (NULL);
    assert_null (snap_ref (NULL));
    assert_int_equal (atomic_load (&s_freed), 1);
}

static void test_box (void **state)
{
    (void) state;
    atomic_store (&s_freed, 0);
    snap_box_t box;
    snap_box_init (&box);
    assert_null (snap_box_get (&box));
    snap_t *one = &s_obj (1)->base;
    snap_box_set (&box, &one);
    assert_null (one);                  // the box took the reference
    snap_t *got = snap_box_get (&box);
    assert_int_equal (((obj_t *) got)->value, 1);
    snap_t *two = &s_obj (2)->base;
    snap_box_set (&box, &two);
    assert_int_equal (atomic_load (&s_freed), 0);   // a reader still holds one
    assert_int_equal (((obj_t *) got)->value, 1);
    snap_release (&got);
    assert_int_equal (atomic_load (&s_freed), 1);
    got = snap_box_get (&box);
    assert_int_equal (((obj_t *) got)->value, 2);
    snap_release (&got);
    snap_box_fini (&box);
    assert_int_equal (atomic_load (&s_freed), 2);
}

#define S_SETS 20000

static void *s_reader (void *arg)
{
    snap_box_t *box = arg;
    for (int i = 0; i < S_SETS; i++) {
        snap_t *s = snap_box_get (box);
        if (s && ((obj_t *) s)->value < 0)
            abort ();                   // read a freed object
        snap_release (&s);
    }
    return NULL;
}

//  One writer swapping, three readers reading: every object freed exactly once.
static void test_box_threads (void **state)
{
    (void) state;
    atomic_store (&s_freed, 0);
    snap_box_t box;
    snap_box_init (&box);
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal (pthread_create (&t[i], NULL, s_reader, &box), 0);
    for (int i = 0; i < S_SETS; i++) {
        snap_t *s = &s_obj (i)->base;
        snap_box_set (&box, &s);
    }
    for (int i = 0; i < 3; i++)
        pthread_join (t[i], NULL);
    snap_box_fini (&box);
    assert_int_equal (atomic_load (&s_freed), S_SETS);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_refcount),
        cmocka_unit_test (test_box),
        cmocka_unit_test (test_box_threads),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
