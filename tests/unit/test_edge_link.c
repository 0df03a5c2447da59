// Unit tests for the edge's broker link against a fake broker on tcp loopback: routing
// by job_id, concurrent waiters, late answers, cancel, PING/PONG status, liveness.
// Also the job routing table (jobmap) on its own.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <cmocka.h>

#include "link.h"
#include "jobmap.h"
#include "fake_broker.h"
#include "wire.h"
#include "aclock.h"

#define S_MODELS "fast-sim,slow-sim,never,agent/deliberate"

typedef struct {
    fake_broker_t *fb;
    cfg_t *cfg;
    edge_link_t *link;
} s_fixture_t;

static void s_sleep_ms (int ms)
{
    struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
    nanosleep (&ts, NULL);
}

//  Wait up to ms for the link to be up (want=true) or down (want=false).
static bool s_wait_link (edge_link_t *link, bool want, int ms)
{
    for (int waited = 0; waited < ms; waited += 5) {
        if (edge_link_up (link) == want)
            return true;
        s_sleep_ms (5);
    }
    return edge_link_up (link) == want;
}

static cfg_t *s_cfg (const char *broker)
{
    cfg_t *cfg = cfg_defaults ();
    snprintf (cfg->edge.broker, sizeof cfg->edge.broker, "%s", broker);
    cfg->broker.heartbeat_ms = 50;
    cfg->broker.liveness = 3;
    return cfg;
}

static int s_setup (void **state)
{
    s_fixture_t *f = calloc (1, sizeof *f);
    f->fb = fake_broker_new ("tcp://127.0.0.1:*", S_MODELS, 2);
    if (!f->fb)
        return -1;
    f->cfg = s_cfg (fake_broker_endpoint (f->fb));
    f->link = edge_link_new (f->cfg);
    if (!f->link || !s_wait_link (f->link, true, 3000))
        return -1;
    *state = f;
    return 0;
}

static int s_teardown (void **state)
{
    s_fixture_t *f = *state;
    edge_link_destroy (&f->link);
    fake_broker_destroy (&f->fb);
    cfg_destroy (&f->cfg);
    free (f);
    return 0;
}

static uint64_t s_submit (edge_link_t *link, edge_client_t *c, const char *target,
                          const char *payload)
{
    Aigw__Job job = AIGW__JOB__INIT;
    char *targets[] = { (char *) target };
    job.job_id = edge_link_next_job_id (link);
    job.n_targets = 1;
    job.targets = targets;
    assert_int_equal (edge_client_submit (c, &job, payload, strlen (payload)), 0);
    return job.job_id;
}

static void test_submit_result (void **state)
{
    s_fixture_t *f = *state;
    edge_client_t *c = edge_client_new (f->link);
    assert_non_null (c);
    const char *payload = "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}]}";
    uint64_t id = s_submit (f->link, c, "fast-sim", payload);
    edge_answer_t a;
    assert_int_equal (edge_client_wait (c, id, 2000, &a), 0);
    assert_int_equal (a.cmd, WIRE_C_RESULT);
    assert_non_null (a.result);
    assert_int_equal (a.result->job_id, id);
    assert_string_equal (a.result->model, "fast-sim");
    assert_true (a.result->has_response_json);
    edge_answer_reset (&a);
    fake_broker_job_t last;
    fake_broker_last_job (f->fb, &last);
    assert_int_equal (last.job_id, id);
    assert_string_equal (last.targets, "fast-sim");
    assert_string_equal (last.payload, payload);
    edge_link_stats_t st;
    edge_link_stats (f->link, &st);
    assert_true (st.submitted >= 1);
    assert_true (st.results >= 1);
    edge_client_destroy (&c);
    edge_client_destroy (&c);
}

typedef struct {
    edge_link_t *link;
    const char *target;
    int rounds;
    int ok;
} s_waiter_t;

static void *s_waiter (void *arg)
{
    s_waiter_t *w = arg;
    edge_client_t *c = edge_client_new (w->link);
    for (int i = 0; c && i < w->rounds; i++) {
        Aigw__Job job = AIGW__JOB__INIT;
        char *targets[] = { (char *) w->target };
        job.job_id = edge_link_next_job_id (w->link);
        job.n_targets = 1;
        job.targets = targets;
        if (edge_client_submit (c, &job, "{}", 2))
            break;
        edge_answer_t a;
        if (edge_client_wait (c, job.job_id, 3000, &a))
            break;
        if (a.result && a.result->job_id == job.job_id && strcmp (a.result->model, w->target) == 0)
            w->ok++;
        edge_answer_reset (&a);
    }
    edge_client_destroy (&c);
    return NULL;
}

static void test_concurrent_waiters (void **state)
{
    s_fixture_t *f = *state;
    fake_broker_set_slow_ms (f->fb, 100);
    //  A slow job and a fast one at once: each answer reaches its own waiter
    s_waiter_t w[2] = { { f->link, "slow-sim", 1, 0 }, { f->link, "fast-sim", 1, 0 } };
    pthread_t t[2];
    int64_t start = aclock_now_ms ();
    for (int i = 0; i < 2; i++)
        pthread_create (&t[i], NULL, s_waiter, &w[i]);
    pthread_join (t[1], NULL);
    int64_t fast_done = aclock_now_ms () - start;
    pthread_join (t[0], NULL);
    assert_int_equal (w[0].ok, 1);
    assert_int_equal (w[1].ok, 1);
    assert_true (fast_done < 100);      // the fast one did not wait for the slow one

    //  Many threads, many rounds
    s_waiter_t many[8];
    pthread_t mt[8];
    for (int i = 0; i < 8; i++) {
        many[i] = (s_waiter_t) { f->link, i % 2 ? "fast-sim" : "agent/deliberate", 200, 0 };
        pthread_create (&mt[i], NULL, s_waiter, &many[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join (mt[i], NULL);
        assert_int_equal (many[i].ok, 200);
    }
}

static void test_late_answer_discarded (void **state)
{
    s_fixture_t *f = *state;
    edge_client_t *c = edge_client_new (f->link);
    //  Job A is held by the broker; the waiter gives up without cancelling
    uint64_t a_id = s_submit (f->link, c, "never", "{}");
    edge_answer_t a;
    assert_int_equal (edge_client_wait (c, a_id, 50, &a), -1);
    edge_link_stats_t before;
    edge_link_stats (f->link, &before);
    //  A's answer now arrives on the socket; the next job must not take it
    fake_broker_release (f->fb);
    edge_link_stats_t routed = before;
    for (int i = 0; i < 400 && routed.results == before.results; i++) {
        s_sleep_ms (5);
        edge_link_stats (f->link, &routed);
    }
    assert_int_equal (routed.results, before.results + 1);
    uint64_t b_id = s_submit (f->link, c, "fast-sim", "{}");
    assert_int_equal (edge_client_wait (c, b_id, 2000, &a), 0);
    assert_non_null (a.result);
    assert_int_equal (a.result->job_id, b_id);
    assert_string_equal (a.result->model, "fast-sim");
    edge_answer_reset (&a);
    edge_link_stats_t after;
    edge_link_stats (f->link, &after);
    assert_int_equal (after.late_discarded, before.late_discarded + 1);
    edge_client_destroy (&c);
}

static void test_cancel_drops_answer (void **state)
{
    s_fixture_t *f = *state;
    edge_client_t *c = edge_client_new (f->link);
    edge_link_stats_t before;
    edge_link_stats (f->link, &before);
    uint64_t id = s_submit (f->link, c, "never", "{}");
    edge_answer_t a;
    assert_int_equal (edge_client_wait (c, id, 30, &a), -1);
    assert_int_equal (edge_client_cancel (c, id), 0);
    //  The broker acknowledges with ERROR(ERR_CANCELLED): the link drops it
    edge_link_stats_t after = before;
    for (int i = 0; i < 200 && after.unrouted == before.unrouted; i++) {
        s_sleep_ms (5);
        edge_link_stats (f->link, &after);
    }
    assert_int_equal (after.unrouted, before.unrouted + 1);
    assert_int_equal (after.cancels, before.cancels + 1);
    fake_broker_stats_t fs;
    fake_broker_stats (f->fb, &fs);
    assert_true (fs.cancels >= 1);
    assert_int_equal (edge_client_wait (c, id, 30, &a), -1);
    edge_client_destroy (&c);
}

static void test_status_snapshot (void **state)
{
    s_fixture_t *f = *state;
    edge_status_t *st = edge_link_status (f->link);
    assert_non_null (st);
    assert_int_equal (st->nmodels, 4);
    assert_int_equal (st->workers, 2);
    assert_string_equal (st->broker_id, "fake-broker");
    assert_true (edge_status_live (st, "agent/deliberate"));
    assert_false (edge_status_live (st, "gpt-17"));
    int64_t first = st->at_ms;
    edge_status_release (&st);
    //  PINGs keep flowing, each PONG replaces the snapshot
    s_sleep_ms (150);
    st = edge_link_status (f->link);
    assert_true (st->at_ms > first);
    edge_status_release (&st);
    edge_link_stats_t ls;
    edge_link_stats (f->link, &ls);
    assert_true (ls.pings >= 2);
    assert_true (ls.pongs >= 2);
}

static void test_broker_silence (void **state)
{
    s_fixture_t *f = *state;
    edge_client_t *c = edge_client_new (f->link);
    uint64_t id = s_submit (f->link, c, "never", "{}");
    s_sleep_ms (20);
    fake_broker_set_silent (f->fb, true);
    //  Silent for heartbeat * liveness (150 ms): down, and the waiting job fails fast
    edge_answer_t a;
    int64_t start = aclock_now_ms ();
    assert_int_equal (edge_client_wait (c, id, 2000, &a), 0);
    assert_true (aclock_now_ms () - start < 1000);
    assert_non_null (a.error);
    assert_int_equal (a.error->job_id, id);
    assert_int_equal (a.error->code, AIGW__ERROR_CODE__ERR_UNAVAILABLE);
    edge_answer_reset (&a);
    assert_false (edge_link_up (f->link));
    //  It heals when the broker answers again
    fake_broker_set_silent (f->fb, false);
    assert_true (s_wait_link (f->link, true, 3000));
    uint64_t id2 = s_submit (f->link, c, "fast-sim", "{}");
    assert_int_equal (edge_client_wait (c, id2, 2000, &a), 0);
    assert_non_null (a.result);
    edge_answer_reset (&a);
    edge_link_stats_t ls;
    edge_link_stats (f->link, &ls);
    assert_true (ls.failed_on_down >= 1);
    assert_true (ls.reconnects >= 1);
    edge_client_destroy (&c);
}

static void test_fail_all (void **state)
{
    s_fixture_t *f = *state;
    edge_client_t *c = edge_client_new (f->link);
    uint64_t id = s_submit (f->link, c, "never", "{}");
    s_sleep_ms (20);
    edge_link_fail_all (f->link, "shutting down");
    edge_answer_t a;
    assert_int_equal (edge_client_wait (c, id, 1000, &a), 0);
    assert_non_null (a.error);
    assert_int_equal (a.error->code, AIGW__ERROR_CODE__ERR_UNAVAILABLE);
    assert_string_equal (a.error->message, "shutting down");
    edge_answer_reset (&a);
    edge_client_destroy (&c);
    //  A client left open is closed by edge_link_destroy (teardown)
    assert_non_null (edge_client_new (f->link));
}

static void test_no_broker (void **state)
{
    (void) state;
    //  Nothing listens on this endpoint (a free port, bound and released): never up,
    //  a SUBMIT fails at once
    fake_broker_t *gone = fake_broker_new ("tcp://127.0.0.1:*", "", 0);
    assert_non_null (gone);
    char endpoint[256];
    snprintf (endpoint, sizeof endpoint, "%s", fake_broker_endpoint (gone));
    fake_broker_destroy (&gone);
    cfg_t *cfg = s_cfg (endpoint);
    edge_link_t *link = edge_link_new (cfg);
    assert_non_null (link);
    assert_false (edge_link_up (link));
    edge_status_t *st = edge_link_status (link);
    assert_null (st);
    edge_client_t *c = edge_client_new (link);
    uint64_t id = s_submit (link, c, "fast-sim", "{}");
    edge_answer_t a;
    assert_int_equal (edge_client_wait (c, id, 1000, &a), 0);
    assert_non_null (a.error);
    assert_int_equal (a.error->code, AIGW__ERROR_CODE__ERR_UNAVAILABLE);
    edge_answer_reset (&a);
    edge_client_destroy (&c);
    edge_link_destroy (&link);
    edge_link_destroy (&link);
    cfg_destroy (&cfg);
}

static void test_jobmap (void **state)
{
    (void) state;
    edge_jobmap_t *m = edge_jobmap_new ();
    assert_non_null (m);
    assert_int_equal (edge_jobmap_put (m, 0, (const uint8_t *) "x", 1, 0), -1);
    enum { N = 5000 };
    static bool present[N + 1];
    memset (present, 0, sizeof present);
    uint64_t seed = 42;
    for (int step = 0; step < 50000; step++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        uint64_t k = 1 + (seed >> 33) % N;
        if ((seed >> 20) & 1) {
            char hid[16];
            int n = snprintf (hid, sizeof hid, "h%llu", (unsigned long long) k);
            assert_int_equal (edge_jobmap_put (m, k, (const uint8_t *) hid, (size_t) n, step), 0);
            present[k] = true;
        }
        else {
            edge_route_t r;
            assert_int_equal (edge_jobmap_take (m, k, &r), present[k]);
            if (present[k])
                assert_int_equal (r.job_id, k);
            present[k] = false;
        }
    }
    size_t count = 0;
    for (uint64_t k = 1; k <= N; k++) {
        const edge_route_t *r = edge_jobmap_get (m, k);
        assert_int_equal (r != NULL, present[k]);
        if (r) {
            char hid[16];
            int n = snprintf (hid, sizeof hid, "h%llu", (unsigned long long) k);
            assert_int_equal (r->hid_len, n);
            assert_memory_equal (r->hid, hid, (size_t) n);
            count++;
        }
    }
    assert_int_equal (edge_jobmap_size (m), count);
    edge_jobmap_drain (m, NULL, NULL);
    assert_int_equal (edge_jobmap_size (m), 0);
    assert_null (edge_jobmap_get (m, 1));
    edge_jobmap_destroy (&m);
    edge_jobmap_destroy (&m);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_submit_result, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_concurrent_waiters, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_late_answer_discarded, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_cancel_drops_answer, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_status_snapshot, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_broker_silence, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_fail_all, s_setup, s_teardown),
        cmocka_unit_test (test_no_broker),
        cmocka_unit_test (test_jobmap),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
