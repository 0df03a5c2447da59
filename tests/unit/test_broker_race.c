// Unit tests for the broker's race state machine (brokers/race.c), driven by an
// injected clock: race/hedge/fallback, failures, deadline, late replies, and a
// seeded property test that every job finishes exactly once.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <cmocka.h>

#include "race.h"

#define MS 1000

typedef struct {
    race_action_t a[RACE_ACTIONS_MAX * 2];
    size_t n;
} acts_t;

static acts_t s_drain (race_t *r)
{
    acts_t out = { .n = 0 };
    race_action_t a;
    while (race_next_action (r, &a))
        out.a[out.n++] = a;
    return out;
}

static void s_cfg (race_config_t *c, race_policy_t p, size_t n)
{
    memset (c, 0, sizeof *c);
    c->policy = p;
    c->ntargets = n;
    c->deadline_us = 1000 * MS;
    for (size_t i = 0; i < n && i < RACE_TARGETS_MAX; i++)
        c->hedge_delay_us[i] = 50 * MS;
}

static void s_expect (const race_action_t *a, int type, int attempt, int target)
{
    assert_int_equal (a->type, type);
    if (attempt >= 0)
        assert_int_equal (a->attempt, attempt);
    if (target >= 0)
        assert_int_equal (a->target, target);
}

static void test_race_win (void **state)
{
    race_config_t c;
    s_cfg (&c, RACE_POLICY_RACE, 2);
    race_t r;
    assert_int_equal (race_init (&r, &c), 0);
    race_start (&r, 1000);
    acts_t x = s_drain (&r);
    assert_int_equal (x.n, 2);
    s_expect (&x.a[0], RACE_DISPATCH, 0, 0);
    s_expect (&x.a[1], RACE_DISPATCH, 1, 1);
    assert_int_equal (race_attempt_result (&r, 1, 5000), RACE_EV_OK);
    x = s_drain (&r);
    assert_int_equal (x.n, 2);
    s_expect (&x.a[0], RACE_CANCEL, 0, 0);            // the loser, at the moment of the win
    s_expect (&x.a[1], RACE_FINISH_RESULT, 1, 1);
    assert_true (race_finished (&r));
    assert_int_equal (race_winner (&r), 1);
    assert_int_equal (race_attempt (&r, 0)->state, RACE_ATT_CANCELLED);
    assert_int_equal (race_attempt (&r, 0)->finished, 5000);
    assert_int_equal (race_attempt (&r, 1)->state, RACE_ATT_WON);
    assert_int_equal (race_attempt (&r, 1)->started, 1000);
    assert_int_equal (race_next_timer (&r), INT64_MAX);
    race_fini (&r);
}

static void test_all_fail (void **state)
{
    race_config_t c;
    s_cfg (&c, RACE_POLICY_RACE, 3);
    race_t r;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_error (&r, 0, AIGW__ERROR_CODE__ERR_UPSTREAM, "HTTP 500 from a", 10);
    assert_int_equal (s_drain (&r).n, 0);
    race_attempt_error (&r, 2, AIGW__ERROR_CODE__ERR_UPSTREAM, "connect refused", 20);
    assert_int_equal (s_drain (&r).n, 0);
    assert_false (race_finished (&r));
    race_attempt_error (&r, 1, AIGW__ERROR_CODE__ERR_UPSTREAM, NULL, 30);
    acts_t x = s_drain (&r);
    assert_int_equal (x.n, 1);
    assert_int_equal (x.a[0].type, RACE_FINISH_ERROR);
    assert_int_equal (x.a[0].code, AIGW__ERROR_CODE__ERR_UPSTREAM);
    const char *names[] = { "alpha", "beta", "gamma" };
    char msg[512];
    race_format_message (&r, names, msg, sizeof msg);
    assert_non_null (strstr (msg, "alpha: HTTP 500 from a"));
    assert_non_null (strstr (msg, "gamma: connect refused"));
    assert_non_null (strstr (msg, "beta: ERR_UPSTREAM"));
    race_fini (&r);
}

static void test_aggregate_codes (void **state)
{
    race_config_t c;
    s_cfg (&c, RACE_POLICY_RACE, 2);
    race_t r;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_error (&r, 0, AIGW__ERROR_CODE__ERR_UNAVAILABLE, "no worker", 1);
    race_attempt_error (&r, 1, AIGW__ERROR_CODE__ERR_UNAVAILABLE, "no worker", 1);
    acts_t x = s_drain (&r);
    assert_int_equal (x.a[x.n - 1].code, AIGW__ERROR_CODE__ERR_UNAVAILABLE);
    race_fini (&r);

    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_error (&r, 0, AIGW__ERROR_CODE__ERR_UNAVAILABLE, "no worker", 1);
    race_attempt_error (&r, 1, AIGW__ERROR_CODE__ERR_OVERLOADED, "queue full", 1);
    x = s_drain (&r);
    assert_int_equal (x.a[x.n - 1].type, RACE_FINISH_ERROR);
    assert_int_equal (x.a[x.n - 1].code, AIGW__ERROR_CODE__ERR_UPSTREAM);
    race_fini (&r);

    //  The documented order for attempts that failed differently (docs/errors.md)
    const struct { int a, b, want; } order[] = {
        { AIGW__ERROR_CODE__ERR_BAD_REQUEST, AIGW__ERROR_CODE__ERR_BAD_REQUEST,
          AIGW__ERROR_CODE__ERR_BAD_REQUEST },
        { AIGW__ERROR_CODE__ERR_BAD_REQUEST, AIGW__ERROR_CODE__ERR_UPSTREAM,
          AIGW__ERROR_CODE__ERR_UPSTREAM },
        { AIGW__ERROR_CODE__ERR_BAD_REQUEST, AIGW__ERROR_CODE__ERR_RATE_LIMITED,
          AIGW__ERROR_CODE__ERR_RATE_LIMITED },
        { AIGW__ERROR_CODE__ERR_UPSTREAM_AUTH, AIGW__ERROR_CODE__ERR_RATE_LIMITED,
          AIGW__ERROR_CODE__ERR_RATE_LIMITED },
        { AIGW__ERROR_CODE__ERR_UPSTREAM, AIGW__ERROR_CODE__ERR_UPSTREAM_AUTH,
          AIGW__ERROR_CODE__ERR_UPSTREAM_AUTH },
        { AIGW__ERROR_CODE__ERR_TIMEOUT, AIGW__ERROR_CODE__ERR_BAD_REQUEST,
          AIGW__ERROR_CODE__ERR_UPSTREAM },
    };
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        race_init (&r, &c);
        race_start (&r, 0);
        s_drain (&r);
        race_attempt_error (&r, 0, order[i].a, "first", 1);
        race_attempt_error (&r, 1, order[i].b, "second", 1);
        x = s_drain (&r);
        assert_int_equal (x.a[x.n - 1].type, RACE_FINISH_ERROR);
        assert_int_equal (x.a[x.n - 1].code, order[i].want);
        race_fini (&r);
    }
}

static void test_deadline (void **state)
{
    race_config_t c;
    s_cfg (&c, RACE_POLICY_RACE, 2);
    c.deadline_us = 100 * MS;
    race_t r;
    race_init (&r, &c);
    race_start (&r, 7);
    s_drain (&r);
    assert_int_equal (race_next_timer (&r), 7 + 100 * MS);
    race_tick (&r, 7 + 100 * MS - 1);
    assert_int_equal (s_drain (&r).n, 0);
    race_tick (&r, 7 + 100 * MS);
    acts_t x = s_drain (&r);
    assert_int_equal (x.n, 3);
    s_expect (&x.a[0], RACE_CANCEL, 0, 0);
    s_expect (&x.a[1], RACE_CANCEL, 1, 1);
    assert_int_equal (x.a[2].type, RACE_FINISH_ERROR);
    assert_int_equal (x.a[2].code, AIGW__ERROR_CODE__ERR_TIMEOUT);
    char msg[256];
    race_format_message (&r, NULL, msg, sizeof msg);
    assert_non_null (strstr (msg, "deadline of 100 ms exceeded"));
    //  Nothing more, ever
    race_tick (&r, 10 * 1000 * MS);
    assert_int_equal (s_drain (&r).n, 0);
    race_fini (&r);
}

static void test_late_reply (void **state)
{
    race_config_t c;
    s_cfg (&c, RACE_POLICY_RACE, 2);
    race_t r;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_result (&r, 0, 10);
    s_drain (&r);
    assert_int_equal (race_attempt_result (&r, 1, 11), RACE_EV_LATE);
    assert_int_equal (race_attempt_error (&r, 1, AIGW__ERROR_CODE__ERR_CANCELLED, "ack", 12),
                      RACE_EV_LATE);
    assert_int_equal (race_attempt_chunk (&r, 1, 12), RACE_EV_LATE);
    assert_int_equal (race_client_cancel (&r, 13), RACE_EV_LATE);
    assert_int_equal (race_attempt_result (&r, 9, 13), RACE_EV_BAD);
    assert_int_equal (s_drain (&r).n, 0);
    assert_int_equal (race_late (&r), 4);
    assert_int_equal (race_attempt (&r, 1)->state, RACE_ATT_CANCELLED);
    race_fini (&r);
}

static void test_hedge_timing (void **state)
{
    race_config_t c;
    s_cfg (&c, RACE_POLICY_HEDGE, 3);
    c.hedge_delay_us[0] = 50 * MS;
    c.hedge_delay_us[1] = 30 * MS;
    race_t r;
    race_init (&r, &c);
    race_start (&r, 100);
    acts_t x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_DISPATCH, 0, 0);
    assert_int_equal (race_next_timer (&r), 100 + 50 * MS);
    race_tick (&r, 100 + 50 * MS - 1);                // not before
    assert_int_equal (s_drain (&r).n, 0);
    race_tick (&r, 100 + 50 * MS);                    // exactly at the delay
    x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_DISPATCH, 1, 1);
    assert_int_equal (race_attempt (&r, 1)->started, 100 + 50 * MS);
    //  The third waits for the second target's delay
    assert_int_equal (race_next_timer (&r), 100 + 80 * MS);
    //  t0 fails: t2 starts at once, not at the timer
    race_attempt_error (&r, 0, AIGW__ERROR_CODE__ERR_UPSTREAM, "500", 100 + 60 * MS);
    x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_DISPATCH, 2, 2);
    assert_int_equal (race_attempt (&r, 2)->started, 100 + 60 * MS);
    //  No target left: only the deadline remains
    assert_int_equal (race_next_timer (&r), 100 + 1000 * MS);
    race_attempt_result (&r, 2, 100 + 70 * MS);
    x = s_drain (&r);
    assert_int_equal (x.n, 2);
    s_expect (&x.a[0], RACE_CANCEL, 1, 1);
    s_expect (&x.a[1], RACE_FINISH_RESULT, 2, 2);
    race_fini (&r);
}

static void test_hedge_fail_first (void **state)
{
    race_config_t c;
    s_cfg (&c, RACE_POLICY_HEDGE, 2);
    race_t r;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_error (&r, 0, AIGW__ERROR_CODE__ERR_UPSTREAM, "boom", 5 * MS);
    acts_t x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_DISPATCH, 1, 1);
    assert_int_equal (race_attempt (&r, 1)->started, 5 * MS);
    race_fini (&r);
}

static void test_hedge_auto (void **state)
{
    assert_int_equal (race_hedge_auto_us (30 * MS, 100, 200), 30 * MS);
    assert_int_equal (race_hedge_auto_us (0, 0, 200), 200 * MS);
    assert_int_equal (race_hedge_auto_us (30 * MS, RACE_HEDGE_MIN_SAMPLES - 1, 200), 200 * MS);
    race_config_t c;
    s_cfg (&c, RACE_POLICY_HEDGE, 2);
    c.hedge_delay_us[0] = race_hedge_auto_us (30 * MS, 100, 200);
    race_t r;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_tick (&r, 30 * MS - 1);
    assert_int_equal (s_drain (&r).n, 0);
    race_tick (&r, 30 * MS);
    acts_t x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_DISPATCH, 1, 1);
    race_fini (&r);
}

static void test_fallback_order (void **state)
{
    race_config_t c;
    s_cfg (&c, RACE_POLICY_FALLBACK, 3);
    race_t r;
    race_init (&r, &c);
    race_start (&r, 0);
    acts_t x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_DISPATCH, 0, 0);
    race_tick (&r, 500 * MS);                         // no hedging in fallback
    assert_int_equal (s_drain (&r).n, 0);
    race_attempt_error (&r, 0, AIGW__ERROR_CODE__ERR_UPSTREAM, "a", 501 * MS);
    x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_DISPATCH, 1, 1);
    race_attempt_error (&r, 1, AIGW__ERROR_CODE__ERR_UPSTREAM, "b", 502 * MS);
    x = s_drain (&r);
    s_expect (&x.a[0], RACE_DISPATCH, 2, 2);
    race_attempt_result (&r, 2, 503 * MS);
    x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_FINISH_RESULT, 2, 2);
    assert_int_equal (race_targets_started (&r), 3);
    race_fini (&r);
}

static void test_redispatch_once (void **state)
{
    race_config_t c;
    s_cfg (&c, RACE_POLICY_RACE, 1);
    race_t r;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_error (&r, 0, AIGW__ERROR_CODE__ERR_WORKER_LOST, "worker w1 lost", 10);
    acts_t x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_DISPATCH, 1, 0);          // same target, new attempt
    race_attempt_error (&r, 1, AIGW__ERROR_CODE__ERR_WORKER_LOST, "worker w2 lost", 20);
    x = s_drain (&r);
    assert_int_equal (x.n, 1);
    assert_int_equal (x.a[0].type, RACE_FINISH_ERROR);
    assert_int_equal (x.a[0].code, AIGW__ERROR_CODE__ERR_WORKER_LOST);
    race_fini (&r);
}

static void test_stream_first_chunk_wins (void **state)
{
    race_config_t c;
    s_cfg (&c, RACE_POLICY_RACE, 2);
    c.stream = true;
    race_t r;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    assert_int_equal (race_attempt_chunk (&r, 1, 10), RACE_EV_OK);
    acts_t x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_CANCEL, 0, 0);
    assert_int_equal (race_winner (&r), 1);
    assert_false (race_finished (&r));
    assert_int_equal (race_attempt_chunk (&r, 0, 11), RACE_EV_LATE);
    assert_int_equal (race_attempt_chunk (&r, 1, 12), RACE_EV_OK);
    assert_int_equal (race_attempt (&r, 1)->first_token, 10);
    //  A lost worker after streaming cannot be replaced
    race_attempt_error (&r, 1, AIGW__ERROR_CODE__ERR_WORKER_LOST, "lost", 13);
    x = s_drain (&r);
    assert_int_equal (x.n, 1);
    assert_int_equal (x.a[0].type, RACE_FINISH_ERROR);
    assert_int_equal (x.a[0].code, AIGW__ERROR_CODE__ERR_WORKER_LOST);
    race_fini (&r);
}

static void test_ttft_fallback (void **state)
{
    race_config_t c;
    s_cfg (&c, RACE_POLICY_FALLBACK, 2);
    c.stream = true;
    c.ttft_us = 20 * MS;
    race_t r;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    assert_int_equal (race_next_timer (&r), 20 * MS);
    race_tick (&r, 20 * MS);
    acts_t x = s_drain (&r);
    assert_int_equal (x.n, 2);
    s_expect (&x.a[0], RACE_CANCEL, 0, 0);
    s_expect (&x.a[1], RACE_DISPATCH, 1, 1);
    assert_int_equal (race_attempt (&r, 0)->state, RACE_ATT_FAILED);
    assert_int_equal (race_attempt (&r, 0)->code, AIGW__ERROR_CODE__ERR_TTFT);
    race_attempt_chunk (&r, 1, 30 * MS);
    assert_int_equal (race_next_timer (&r), 1000 * MS);
    race_fini (&r);
}

static void test_stream_winner_fails (void **state)
{
    race_config_t c;
    s_cfg (&c, RACE_POLICY_HEDGE, 3);
    c.stream = true;
    race_t r;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_tick (&r, 50 * MS);                          // hedge: t1 starts
    s_drain (&r);
    assert_int_equal (race_attempt_chunk (&r, 1, 60 * MS), RACE_EV_OK);
    acts_t x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_CANCEL, 0, 0);
    assert_true (race_attempt (&r, 0)->lost);
    assert_int_equal (race_attempt (&r, 0)->chunks, 0);
    //  No more hedging once a token reached the client
    assert_int_equal (race_next_timer (&r), 1000 * MS);
    race_tick (&r, 200 * MS);
    assert_int_equal (s_drain (&r).n, 0);
    race_attempt_chunk (&r, 1, 61 * MS);
    assert_int_equal (race_attempt (&r, 1)->chunks, 2);
    //  The winner fails: no failover (t2 never starts, no re-dispatch), its code ends the job
    assert_int_equal (race_attempt_fail (&r, 1, AIGW__ERROR_CODE__ERR_UPSTREAM, "HTTP 500 mid-body",
                                         RACE_FAIL_REDISPATCH | RACE_FAIL_RETRYABLE, 0, 70 * MS), RACE_EV_OK);
    x = s_drain (&r);
    assert_int_equal (x.n, 1);
    assert_int_equal (x.a[0].type, RACE_FINISH_ERROR);
    assert_int_equal (x.a[0].code, AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_int_equal (race_targets_started (&r), 2);
    const char *names[] = { "a", "b", "c" };
    char msg[256];
    race_format_message (&r, names, msg, sizeof msg);
    assert_string_equal (msg, "stream failed after 2 chunks: HTTP 500 mid-body");
    race_fini (&r);
}

static void test_stream_worker_lost (void **state)
{
    race_config_t c;
    s_cfg (&c, RACE_POLICY_RACE, 2);
    c.stream = true;
    race_t r;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_chunk (&r, 0, 10);
    s_drain (&r);
    race_attempt_error (&r, 0, AIGW__ERROR_CODE__ERR_WORKER_LOST, "worker w1 lost: heartbeat expired", 20);
    acts_t x = s_drain (&r);
    assert_int_equal (x.n, 1);                        // no DISPATCH: nothing replaces it
    assert_int_equal (x.a[0].type, RACE_FINISH_ERROR);
    assert_int_equal (x.a[0].code, AIGW__ERROR_CODE__ERR_WORKER_LOST);
    char msg[256];
    race_format_message (&r, NULL, msg, sizeof msg);
    assert_non_null (strstr (msg, "stream failed after 1 chunks: worker lost mid-stream"));
    assert_non_null (strstr (msg, "heartbeat expired"));
    race_fini (&r);
}

static void test_lost_flags (void **state)
{
    race_config_t c;
    s_cfg (&c, RACE_POLICY_RACE, 3);
    race_t r;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_error (&r, 2, AIGW__ERROR_CODE__ERR_UPSTREAM, "x", 5);
    race_attempt_result (&r, 1, 10);
    s_drain (&r);
    assert_true (race_attempt (&r, 0)->lost);
    assert_false (race_attempt (&r, 1)->lost);
    assert_false (race_attempt (&r, 2)->lost);       // failed, not lost
    race_fini (&r);
    //  The deadline cancels, but nobody lost to a winner
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_tick (&r, 1000 * MS);
    s_drain (&r);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal (race_attempt (&r, i)->state, RACE_ATT_CANCELLED);
        assert_false (race_attempt (&r, i)->lost);
    }
    race_fini (&r);
}

static void test_ttft_nonstream_race (void **state)
{
    race_config_t c;
    s_cfg (&c, RACE_POLICY_RACE, 2);
    c.ttft_us = 20 * MS;
    race_t r;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    assert_int_equal (race_next_timer (&r), 20 * MS);
    //  t1 answers in time; t0 does not
    race_attempt_error (&r, 1, AIGW__ERROR_CODE__ERR_UPSTREAM, "500", 5 * MS);
    s_drain (&r);
    race_tick (&r, 20 * MS - 1);
    assert_int_equal (s_drain (&r).n, 0);
    race_tick (&r, 20 * MS);
    acts_t x = s_drain (&r);
    assert_int_equal (x.n, 2);
    s_expect (&x.a[0], RACE_CANCEL, 0, 0);            // stopped at its worker
    assert_int_equal (x.a[1].type, RACE_FINISH_ERROR);
    assert_int_equal (x.a[1].code, AIGW__ERROR_CODE__ERR_UPSTREAM);   // mixed codes
    assert_int_equal (race_attempt (&r, 0)->state, RACE_ATT_FAILED);
    assert_int_equal (race_attempt (&r, 0)->code, AIGW__ERROR_CODE__ERR_TTFT);
    assert_string_equal (race_attempt (&r, 0)->reason, "no first token within 20 ms");
    race_fini (&r);
    //  Race: one attempt times out, the job waits for the other, which wins
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_tick (&r, 20 * MS);
    x = s_drain (&r);
    assert_int_equal (x.n, 3);                        // both cancelled, both TTFT
    assert_true (race_finished (&r));
    assert_int_equal (x.a[2].type, RACE_FINISH_ERROR);
    assert_int_equal (x.a[2].code, AIGW__ERROR_CODE__ERR_TTFT);
    race_fini (&r);
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_result (&r, 0, 19 * MS);
    x = s_drain (&r);
    s_expect (&x.a[x.n - 1], RACE_FINISH_RESULT, 0, 0);
    race_fini (&r);
}

static void test_ttft_nonstream_hedge (void **state)
{
    race_config_t c;
    s_cfg (&c, RACE_POLICY_HEDGE, 2);
    c.hedge_delay_us[0] = 500 * MS;
    c.ttft_us = 30 * MS;
    race_t r;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    assert_int_equal (race_next_timer (&r), 30 * MS);
    race_tick (&r, 30 * MS);
    acts_t x = s_drain (&r);
    assert_int_equal (x.n, 2);
    s_expect (&x.a[0], RACE_CANCEL, 0, 0);
    s_expect (&x.a[1], RACE_DISPATCH, 1, 1);          // the next target at once
    assert_int_equal (race_attempt (&r, 1)->started, 30 * MS);
    assert_int_equal (race_next_timer (&r), 60 * MS); // its own TTFT
    race_attempt_result (&r, 1, 55 * MS);
    x = s_drain (&r);
    s_expect (&x.a[0], RACE_FINISH_RESULT, 1, 1);
    race_fini (&r);
}

static void test_ttft_nonstream_fallback (void **state)
{
    race_config_t c;
    s_cfg (&c, RACE_POLICY_FALLBACK, 2);
    c.ttft_us = 10 * MS;
    race_t r;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_tick (&r, 10 * MS);
    acts_t x = s_drain (&r);
    assert_int_equal (x.n, 2);
    s_expect (&x.a[1], RACE_DISPATCH, 1, 1);
    race_tick (&r, 20 * MS);
    x = s_drain (&r);
    assert_int_equal (x.n, 2);
    s_expect (&x.a[0], RACE_CANCEL, 1, 1);
    assert_int_equal (x.a[1].type, RACE_FINISH_ERROR);
    assert_int_equal (x.a[1].code, AIGW__ERROR_CODE__ERR_TTFT);
    race_fini (&r);
}

static void test_retry (void **state)
{
    race_config_t c;
    s_cfg (&c, RACE_POLICY_RACE, 1);
    race_t r;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    //  Overloaded with retry (a full pipe): the target starts again once
    race_attempt_fail (&r, 0, AIGW__ERROR_CODE__ERR_OVERLOADED, "pipe full", RACE_FAIL_REDISPATCH, 0, 1);
    acts_t x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_DISPATCH, 1, 0);
    assert_true (race_attempt (&r, 0)->replaced);
    race_attempt_fail (&r, 1, AIGW__ERROR_CODE__ERR_OVERLOADED, "pipe full", RACE_FAIL_REDISPATCH, 0, 2);
    x = s_drain (&r);
    assert_int_equal (x.n, 1);
    assert_int_equal (x.a[0].code, AIGW__ERROR_CODE__ERR_OVERLOADED);
    race_fini (&r);
    //  Without retry: a plain failure
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_fail (&r, 0, AIGW__ERROR_CODE__ERR_OVERLOADED, "queue full", 0, 0, 1);
    x = s_drain (&r);
    assert_int_equal (x.a[0].type, RACE_FINISH_ERROR);
    race_fini (&r);
    //  A non-stream attempt that sent chunks may still be re-dispatched (nothing
    //  reached the client)
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_chunk (&r, 0, 1);
    race_attempt_error (&r, 0, AIGW__ERROR_CODE__ERR_WORKER_LOST, "lost", 2);
    x = s_drain (&r);
    s_expect (&x.a[0], RACE_DISPATCH, 1, 0);
    race_fini (&r);
}

static void test_client_cancel (void **state)
{
    race_config_t c;
    s_cfg (&c, RACE_POLICY_RACE, 2);
    race_t r;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_error (&r, 0, AIGW__ERROR_CODE__ERR_UPSTREAM, "x", 1);
    assert_int_equal (race_client_cancel (&r, 2), RACE_EV_OK);
    acts_t x = s_drain (&r);
    assert_int_equal (x.n, 2);
    s_expect (&x.a[0], RACE_CANCEL, 1, 1);
    assert_int_equal (x.a[1].type, RACE_FINISH_ERROR);
    assert_int_equal (x.a[1].code, AIGW__ERROR_CODE__ERR_CANCELLED);
    race_fini (&r);
}

static void test_bad_config (void **state)
{
    race_config_t c;
    race_t r;
    s_cfg (&c, RACE_POLICY_RACE, 0);
    assert_int_equal (race_init (&r, &c), -1);
    s_cfg (&c, RACE_POLICY_RACE, RACE_TARGETS_MAX + 1);
    assert_int_equal (race_init (&r, &c), -1);
    s_cfg (&c, (race_policy_t) 7, 1);
    assert_int_equal (race_init (&r, &c), -1);
}

//  ---- retries, the gate (cooldown, budget)

#define GATE_CALLS_MAX 64

//  A scripted gate: answers by (target, kind), GO unless set; records every call.
typedef struct {
    race_gate_t ans[RACE_TARGETS_MAX][4];
    size_t n;
    struct {
        size_t target;
        int kind;
        int payer;
        int64_t now;
    } call[GATE_CALLS_MAX];
} gate_t;

static race_gate_t s_gate (void *arg, size_t target, race_kind_t kind, int payer, int64_t now)
{
    gate_t *g = arg;
    assert_true (g->n < GATE_CALLS_MAX);
    g->call[g->n].target = target;
    g->call[g->n].kind = kind;
    g->call[g->n].payer = payer;
    g->call[g->n].now = now;
    g->n++;
    return g->ans[target][kind];
}

static void s_gate_init (gate_t *g, race_config_t *c)
{
    memset (g, 0, sizeof *g);
    c->gate = s_gate;
    c->gate_arg = g;
}

//  Refuse every kind of start on target with answer.
static void s_gate_refuse (gate_t *g, size_t target, race_gate_t answer)
{
    for (int k = 0; k < 4; k++)
        g->ans[target][k] = answer;
}

static void s_expect_call (const gate_t *g, size_t i, size_t target, int kind, int payer)
{
    assert_true (i < g->n);
    assert_int_equal (g->call[i].target, target);
    assert_int_equal (g->call[i].kind, kind);
    assert_int_equal (g->call[i].payer, payer);
}

static void s_expect_finish_error (race_t *r, int code)
{
    acts_t x = s_drain (r);
    assert_true (x.n >= 1);
    for (size_t i = 0; i + 1 < x.n; i++)
        assert_int_not_equal (x.a[i].type, RACE_DISPATCH);
    assert_int_equal (x.a[x.n - 1].type, RACE_FINISH_ERROR);
    assert_int_equal (x.a[x.n - 1].code, code);
    assert_true (race_finished (r));
    assert_int_equal (race_next_timer (r), INT64_MAX);
}

static void test_retry_retryable (void **state)
{
    race_config_t c;
    s_cfg (&c, RACE_POLICY_RACE, 1);
    c.retries = 1;
    c.retry_backoff_us = 100 * MS;
    c.seed = 7;
    gate_t g;
    s_gate_init (&g, &c);
    race_t r;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    s_expect_call (&g, 0, 0, RACE_KIND_FIRST, -1);
    int64_t now = 10 * MS;
    assert_int_equal (race_attempt_fail (&r, 0, AIGW__ERROR_CODE__ERR_UPSTREAM, "HTTP 503",
                                         RACE_FAIL_RETRYABLE, 0, now), RACE_EV_OK);
    //  Nothing at once: the retry waits for its backoff
    assert_int_equal (s_drain (&r).n, 0);
    assert_false (race_finished (&r));
    assert_int_equal (race_attempt (&r, 0)->state, RACE_ATT_FAILED);
    int64_t at = race_next_timer (&r);
    assert_true (at >= now && at <= now + 100 * MS);
    assert_int_equal (race_attempt (&r, 0)->retry_at, at);
    assert_int_equal (g.n, 1);                        // the gate is asked when it starts
    if (at > now) {
        race_tick (&r, at - 1);
        assert_int_equal (s_drain (&r).n, 0);
    }
    race_tick (&r, at);
    acts_t x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_DISPATCH, 1, 0);          // a new attempt, same target
    const race_attempt_t *a = race_attempt (&r, 1);
    assert_int_equal (a->kind, RACE_KIND_RETRY);
    assert_int_equal (a->retry_of, 0);
    assert_int_equal (a->started, at);
    assert_int_equal (race_attempt (&r, 0)->retry_at, -1);
    assert_int_equal (g.n, 2);
    s_expect_call (&g, 1, 0, RACE_KIND_RETRY, 0);     // a retry: the target pays
    assert_int_equal (race_next_timer (&r), 1000 * MS);
    //  The retry fails too: none left, the job ends with the failure's code
    race_attempt_fail (&r, 1, AIGW__ERROR_CODE__ERR_RATE_LIMITED, "HTTP 429", RACE_FAIL_RETRYABLE,
                       0, at + 5 * MS);
    s_expect_finish_error (&r, AIGW__ERROR_CODE__ERR_RATE_LIMITED);
    assert_int_equal (race_attempts (&r), 2);
    assert_false (race_retry_suppressed (&r));
    race_fini (&r);

    //  Same, one target of a race of 2 that both fail alike
    s_cfg (&c, RACE_POLICY_RACE, 2);
    c.retries = 1;
    c.retry_backoff_us = 100 * MS;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_fail (&r, 0, AIGW__ERROR_CODE__ERR_UPSTREAM, "500", RACE_FAIL_RETRYABLE, 0, 1);
    race_attempt_fail (&r, 1, AIGW__ERROR_CODE__ERR_UPSTREAM, "500", RACE_FAIL_RETRYABLE, 0, 2);
    assert_int_equal (s_drain (&r).n, 0);             // both wait for their retry
    for (int i = 0; i < 4 && !race_finished (&r); i++) {
        int64_t t = race_next_timer (&r);
        race_tick (&r, t);
        x = s_drain (&r);
        for (size_t k = 0; k < x.n; k++)
            if (x.a[k].type == RACE_DISPATCH)
                race_attempt_fail (&r, x.a[k].attempt, AIGW__ERROR_CODE__ERR_UPSTREAM, "500",
                                   RACE_FAIL_RETRYABLE, 0, t);
    }
    //  One retry per target: 4 attempts, then the end
    x = s_drain (&r);
    assert_true (race_finished (&r));
    assert_int_equal (race_attempts (&r), 4);
    assert_int_equal (race_attempt (&r, 2)->kind, RACE_KIND_RETRY);
    assert_int_equal (race_attempt (&r, 3)->kind, RACE_KIND_RETRY);
    assert_int_equal (race_attempt (&r, race_attempt (&r, 2)->retry_of)->target,
                      race_attempt (&r, 2)->target);
    race_fini (&r);
}

static void test_retry_not_retryable (void **state)
{
    race_config_t c;
    s_cfg (&c, RACE_POLICY_RACE, 1);
    c.retries = 3;
    c.retry_backoff_us = 10 * MS;
    race_t r;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_fail (&r, 0, AIGW__ERROR_CODE__ERR_BAD_REQUEST, "HTTP 400", 0, 0, 5);
    s_expect_finish_error (&r, AIGW__ERROR_CODE__ERR_BAD_REQUEST);
    assert_int_equal (race_attempts (&r), 1);
    assert_int_equal (race_attempt (&r, 0)->retry_at, -1);
    race_tick (&r, 500 * MS);
    assert_int_equal (s_drain (&r).n, 0);
    race_fini (&r);
    //  race_attempt_error (no flags) never retries either
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_error (&r, 0, AIGW__ERROR_CODE__ERR_UPSTREAM, "HTTP 504", 5);
    s_expect_finish_error (&r, AIGW__ERROR_CODE__ERR_UPSTREAM);
    race_fini (&r);
    //  retries = 0: a retryable failure is not retried
    c.retries = 0;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_fail (&r, 0, AIGW__ERROR_CODE__ERR_UPSTREAM, "503", RACE_FAIL_RETRYABLE, 0, 5);
    s_expect_finish_error (&r, AIGW__ERROR_CODE__ERR_UPSTREAM);
    race_fini (&r);
}

static void test_retry_after (void **state)
{
    race_config_t c;
    s_cfg (&c, RACE_POLICY_RACE, 1);
    c.retries = 1;
    c.retry_backoff_us = 10 * MS;
    race_t r;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    //  Retry-After 200 ms beats a backoff of at most 10 ms
    race_attempt_fail (&r, 0, AIGW__ERROR_CODE__ERR_RATE_LIMITED, "429", RACE_FAIL_RETRYABLE,
                       200 * MS, 5 * MS);
    assert_int_equal (s_drain (&r).n, 0);
    assert_int_equal (race_next_timer (&r), 205 * MS);
    race_tick (&r, 205 * MS - 1);
    assert_int_equal (s_drain (&r).n, 0);
    race_tick (&r, 205 * MS);
    acts_t x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_DISPATCH, 1, 0);
    race_attempt_result (&r, 1, 300 * MS);
    x = s_drain (&r);
    s_expect (&x.a[x.n - 1], RACE_FINISH_RESULT, 1, 0);
    race_fini (&r);

    //  A Retry-After shorter than the backoff does not shorten it
    c.retry_backoff_us = 100 * MS;
    c.seed = 3;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_fail (&r, 0, AIGW__ERROR_CODE__ERR_RATE_LIMITED, "429", RACE_FAIL_RETRYABLE,
                       1, 0);
    int64_t at = race_next_timer (&r);
    assert_true (at >= 1 && at <= 100 * MS);
    race_fini (&r);

    //  A Retry-After that does not fit before the deadline: no retry, the job ends now
    s_cfg (&c, RACE_POLICY_RACE, 1);
    c.retries = 1;
    c.retry_backoff_us = 1 * MS;
    c.deadline_us = 100 * MS;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_fail (&r, 0, AIGW__ERROR_CODE__ERR_RATE_LIMITED, "429", RACE_FAIL_RETRYABLE,
                       200 * MS, 10 * MS);
    s_expect_finish_error (&r, AIGW__ERROR_CODE__ERR_RATE_LIMITED);
    assert_int_equal (race_attempt (&r, 0)->retry_at, -1);
    race_fini (&r);
    //  ... nor one that would start exactly at the deadline
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_fail (&r, 0, AIGW__ERROR_CODE__ERR_RATE_LIMITED, "429", RACE_FAIL_RETRYABLE,
                       90 * MS, 10 * MS);
    s_expect_finish_error (&r, AIGW__ERROR_CODE__ERR_RATE_LIMITED);
    race_fini (&r);
    //  ... but one a microsecond earlier is made
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_fail (&r, 0, AIGW__ERROR_CODE__ERR_RATE_LIMITED, "429", RACE_FAIL_RETRYABLE,
                       90 * MS - 1, 10 * MS);
    assert_int_equal (s_drain (&r).n, 0);
    assert_int_equal (race_next_timer (&r), 100 * MS - 1);
    race_fini (&r);
}

//  Delays of successive retries of a one-target job with this seed (until none is left).
static size_t s_retry_delays (uint64_t seed, int64_t base, int64_t *delays, size_t max)
{
    race_config_t c;
    s_cfg (&c, RACE_POLICY_RACE, 1);
    c.retries = 5;
    c.retry_backoff_us = base;
    c.deadline_us = 1000LL * 1000 * MS;
    c.seed = seed;
    race_t r;
    race_init (&r, &c);
    int64_t now = 1000;
    race_start (&r, now);
    acts_t x = s_drain (&r);
    size_t n = 0, attempt = 0;
    while (!race_finished (&r)) {
        assert_int_equal (x.n, 1);
        s_expect (&x.a[0], RACE_DISPATCH, (int) attempt, 0);
        now += 3 * MS;
        race_attempt_fail (&r, attempt, AIGW__ERROR_CODE__ERR_UPSTREAM, "502",
                           RACE_FAIL_RETRYABLE, 0, now);
        x = s_drain (&r);
        if (race_finished (&r))
            break;
        assert_int_equal (x.n, 0);
        int64_t at = race_next_timer (&r);
        assert_true (n < max);
        delays[n++] = at - now;
        now = at;
        race_tick (&r, now);
        x = s_drain (&r);
        attempt++;
        assert_int_equal (race_attempt (&r, attempt)->retry_of, (int) attempt - 1);
    }
    assert_int_equal (x.a[x.n - 1].type, RACE_FINISH_ERROR);
    race_fini (&r);
    return n;
}

static void test_retry_backoff_jitter (void **state)
{
    const int64_t base = 10 * MS;
    int64_t d[8], again[8];
    int64_t first_min = INT64_MAX, first_max = -1;
    bool differ[5] = { false };
    int64_t ref[5];
    for (uint64_t seed = 1; seed <= 200; seed++) {
        size_t n = s_retry_delays (seed, base, d, 8);
        assert_int_equal (n, 5);                      // retries = 5
        for (size_t i = 0; i < n; i++) {
            assert_true (d[i] >= 0);
            assert_true (d[i] <= base << i);          // [0, base x 2^n]
            if (seed == 1)
                ref[i] = d[i];
            else
            if (d[i] != ref[i])
                differ[i] = true;
        }
        if (d[0] < first_min)
            first_min = d[0];
        if (d[0] > first_max)
            first_max = d[0];
        //  Same seed, same delays
        assert_int_equal (s_retry_delays (seed, base, again, 8), n);
        assert_memory_equal (d, again, n * sizeof d[0]);
    }
    //  Jitter: the delays differ between seeds, over most of the range
    for (size_t i = 0; i < 5; i++)
        assert_true (differ[i]);
    assert_true (first_min < base / 4);
    assert_true (first_max > base * 3 / 4);
    //  The later retries can wait longer than the first could
    int64_t late_max = 0;
    for (uint64_t seed = 1; seed <= 50; seed++) {
        s_retry_delays (seed, base, d, 8);
        if (d[4] > late_max)
            late_max = d[4];
    }
    assert_true (late_max > base);
    //  No backoff: the retry is due at once
    assert_int_equal (s_retry_delays (9, 0, d, 8), 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal (d[i], 0);
}

static void test_retry_dropped_when_job_ends (void **state)
{
    race_config_t c;
    race_t r;
    //  Another attempt wins while a retry waits
    s_cfg (&c, RACE_POLICY_RACE, 2);
    c.retries = 1;
    c.retry_backoff_us = 100 * MS;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_fail (&r, 0, AIGW__ERROR_CODE__ERR_UPSTREAM, "503", RACE_FAIL_RETRYABLE, 0,
                       1 * MS);
    assert_int_equal (s_drain (&r).n, 0);
    int64_t at = race_next_timer (&r);
    assert_true (at <= 101 * MS);
    race_attempt_result (&r, 1, 1 * MS);
    acts_t x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_FINISH_RESULT, 1, 1);
    assert_int_equal (race_next_timer (&r), INT64_MAX);
    assert_int_equal (race_attempt (&r, 0)->retry_at, -1);
    race_tick (&r, at);
    race_tick (&r, at + 500 * MS);
    assert_int_equal (s_drain (&r).n, 0);
    assert_int_equal (race_attempts (&r), 2);
    race_fini (&r);

    //  A streaming winner (first chunk) drops the waiting retry too
    c.stream = true;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_fail (&r, 0, AIGW__ERROR_CODE__ERR_UPSTREAM, "503", RACE_FAIL_RETRYABLE, 0, 1);
    race_attempt_chunk (&r, 1, 2);
    assert_int_equal (s_drain (&r).n, 0);
    assert_int_equal (race_next_timer (&r), 1000 * MS);    // the deadline only
    race_tick (&r, 200 * MS);
    assert_int_equal (s_drain (&r).n, 0);
    race_fini (&r);
    c.stream = false;

    //  The client cancels while the retry waits
    s_cfg (&c, RACE_POLICY_RACE, 1);
    c.retries = 1;
    c.retry_backoff_us = 100 * MS;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_fail (&r, 0, AIGW__ERROR_CODE__ERR_UPSTREAM, "503", RACE_FAIL_RETRYABLE, 0, 1);
    at = race_next_timer (&r);
    assert_int_equal (race_client_cancel (&r, 2), RACE_EV_OK);
    x = s_drain (&r);
    assert_int_equal (x.n, 1);                        // nothing running to cancel
    assert_int_equal (x.a[0].type, RACE_FINISH_ERROR);
    assert_int_equal (x.a[0].code, AIGW__ERROR_CODE__ERR_CANCELLED);
    assert_int_equal (race_next_timer (&r), INT64_MAX);
    race_tick (&r, at);
    assert_int_equal (s_drain (&r).n, 0);
    race_fini (&r);

    //  The deadline passes (a late tick: retry and deadline both due): no retry
    s_cfg (&c, RACE_POLICY_RACE, 2);
    c.retries = 1;
    c.retry_backoff_us = 1 * MS;
    c.deadline_us = 100 * MS;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_fail (&r, 0, AIGW__ERROR_CODE__ERR_RATE_LIMITED, "429", RACE_FAIL_RETRYABLE,
                       50 * MS, 10 * MS);
    assert_int_equal (race_next_timer (&r), 60 * MS);
    race_tick (&r, 100 * MS);
    x = s_drain (&r);
    assert_int_equal (x.n, 2);
    s_expect (&x.a[0], RACE_CANCEL, 1, 1);
    assert_int_equal (x.a[1].type, RACE_FINISH_ERROR);
    assert_int_equal (x.a[1].code, AIGW__ERROR_CODE__ERR_TIMEOUT);
    assert_int_equal (race_next_timer (&r), INT64_MAX);
    assert_int_equal (race_attempts (&r), 2);
    race_fini (&r);

    //  race_abort (shutdown) drops it as well
    s_cfg (&c, RACE_POLICY_FALLBACK, 2);
    c.retries = 2;
    c.retry_backoff_us = 10 * MS;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_fail (&r, 0, AIGW__ERROR_CODE__ERR_UPSTREAM, "503", RACE_FAIL_RETRYABLE, 0, 1);
    assert_int_equal (race_abort (&r, AIGW__ERROR_CODE__ERR_UNAVAILABLE, 2), RACE_EV_OK);
    s_expect_finish_error (&r, AIGW__ERROR_CODE__ERR_UNAVAILABLE);
    race_tick (&r, 500 * MS);
    assert_int_equal (s_drain (&r).n, 0);
    assert_int_equal (race_targets_started (&r), 1);
    race_fini (&r);
}

static void test_retry_fallback (void **state)
{
    race_config_t c;
    s_cfg (&c, RACE_POLICY_FALLBACK, 2);
    c.retries = 1;
    c.retry_backoff_us = 100 * MS;
    gate_t g;
    s_gate_init (&g, &c);
    race_t r;
    race_init (&r, &c);
    race_start (&r, 0);
    acts_t x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_DISPATCH, 0, 0);
    race_attempt_fail (&r, 0, AIGW__ERROR_CODE__ERR_UPSTREAM, "502", RACE_FAIL_RETRYABLE, 0,
                       10 * MS);
    //  Fallback waits for the retry: target 1 not started yet
    assert_int_equal (s_drain (&r).n, 0);
    assert_int_equal (race_targets_started (&r), 1);
    int64_t at = race_next_timer (&r);
    assert_true (at >= 10 * MS && at <= 110 * MS);
    race_tick (&r, at);
    x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_DISPATCH, 1, 0);
    assert_int_equal (race_attempt (&r, 1)->kind, RACE_KIND_RETRY);
    assert_int_equal (race_attempt (&r, 1)->retry_of, 0);
    assert_int_equal (race_targets_started (&r), 1);
    //  The retry fails: target 0 has no retry left, target 1 starts
    race_attempt_fail (&r, 1, AIGW__ERROR_CODE__ERR_UPSTREAM, "502", RACE_FAIL_RETRYABLE, 0,
                       at + 10 * MS);
    x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_DISPATCH, 2, 1);
    assert_int_equal (race_attempt (&r, 2)->kind, RACE_KIND_FIRST);
    assert_int_equal (race_attempt (&r, 2)->retry_of, -1);
    assert_int_equal (race_attempt (&r, 2)->started, at + 10 * MS);
    s_expect_call (&g, g.n - 1, 1, RACE_KIND_FIRST, -1);
    //  Target 1 has its own retry
    race_attempt_fail (&r, 2, AIGW__ERROR_CODE__ERR_UPSTREAM, "503", RACE_FAIL_RETRYABLE, 0,
                       at + 20 * MS);
    assert_int_equal (s_drain (&r).n, 0);
    at = race_next_timer (&r);
    race_tick (&r, at);
    x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_DISPATCH, 3, 1);
    assert_int_equal (race_attempt (&r, 3)->retry_of, 2);
    race_attempt_result (&r, 3, at + 1);
    x = s_drain (&r);
    s_expect (&x.a[x.n - 1], RACE_FINISH_RESULT, 3, 1);
    race_fini (&r);
}

static void test_gate_cooldown (void **state)
{
    race_config_t c;
    gate_t g;
    race_t r;
    //  Race of 2, target 0 cooling: skipped, target 1 runs and wins
    s_cfg (&c, RACE_POLICY_RACE, 2);
    s_gate_init (&g, &c);
    s_gate_refuse (&g, 0, RACE_GATE_COOLDOWN);
    race_init (&r, &c);
    race_start (&r, 5 * MS);
    acts_t x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_DISPATCH, 1, 1);
    assert_int_equal (g.n, 2);
    s_expect_call (&g, 0, 0, RACE_KIND_FIRST, -1);
    s_expect_call (&g, 1, 1, RACE_KIND_FIRST, -1);
    assert_int_equal (race_attempts (&r), 2);
    const race_attempt_t *a = race_attempt (&r, 0);
    assert_int_equal (a->state, RACE_ATT_SKIPPED);
    assert_int_equal (a->code, AIGW__ERROR_CODE__ERR_COOLDOWN);
    assert_int_equal (a->target, 0);
    assert_int_equal (a->finished, 5 * MS);
    assert_non_null (a->reason);
    assert_false (race_finished (&r));
    assert_int_equal (r.live, 1);
    //  Events on the skipped attempt are late
    assert_int_equal (race_attempt_result (&r, 0, 6 * MS), RACE_EV_LATE);
    assert_int_equal (race_attempt_result (&r, 1, 7 * MS), RACE_EV_OK);
    x = s_drain (&r);
    assert_int_equal (x.n, 1);                        // nothing to cancel: 0 never ran
    s_expect (&x.a[0], RACE_FINISH_RESULT, 1, 1);
    race_fini (&r);

    //  ... and when target 1 fails, the job ends with its code (skips do not vote)
    race_init (&r, &c);
    g.n = 0;
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_fail (&r, 1, AIGW__ERROR_CODE__ERR_BAD_REQUEST, "HTTP 400", 0, 0, 1);
    s_expect_finish_error (&r, AIGW__ERROR_CODE__ERR_BAD_REQUEST);
    race_fini (&r);

    //  Every target cooling: the job ends in race_start with ERR_COOLDOWN
    const race_policy_t policies[] = { RACE_POLICY_RACE, RACE_POLICY_HEDGE, RACE_POLICY_FALLBACK };
    for (size_t p = 0; p < 3; p++) {
        s_cfg (&c, policies[p], 2);
        s_gate_init (&g, &c);
        s_gate_refuse (&g, 0, RACE_GATE_COOLDOWN);
        s_gate_refuse (&g, 1, RACE_GATE_COOLDOWN);
        race_init (&r, &c);
        race_start (&r, 0);
        x = s_drain (&r);
        assert_int_equal (x.n, 1);
        assert_int_equal (x.a[0].type, RACE_FINISH_ERROR);
        assert_int_equal (x.a[0].code, AIGW__ERROR_CODE__ERR_COOLDOWN);
        assert_true (race_finished (&r));
        assert_int_equal (race_next_timer (&r), INT64_MAX);
        assert_int_equal (g.n, 2);
        assert_int_equal (race_attempts (&r), 2);
        assert_int_equal (race_targets_started (&r), 2);
        for (size_t i = 0; i < 2; i++)
            assert_int_equal (race_attempt (&r, i)->state, RACE_ATT_SKIPPED);
        const char *names[] = { "alpha", "beta" };
        char msg[256];
        race_format_message (&r, names, msg, sizeof msg);
        assert_non_null (strstr (msg, "cooling down"));
        assert_non_null (strstr (msg, "alpha"));
        assert_non_null (strstr (msg, "beta"));
        //  Nothing more, ever
        race_tick (&r, 2000 * MS);
        assert_int_equal (s_drain (&r).n, 0);
        race_fini (&r);
    }

    //  Fallback with target 0 cooling: target 1 starts at once
    s_cfg (&c, RACE_POLICY_FALLBACK, 3);
    s_gate_init (&g, &c);
    s_gate_refuse (&g, 0, RACE_GATE_COOLDOWN);
    race_init (&r, &c);
    race_start (&r, 0);
    x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_DISPATCH, 1, 1);
    assert_int_equal (race_attempt (&r, 1)->kind, RACE_KIND_FIRST);
    assert_int_equal (race_targets_started (&r), 2);
    //  ... and when it fails, target 2
    race_attempt_fail (&r, 1, AIGW__ERROR_CODE__ERR_UPSTREAM, "500", 0, 0, 1 * MS);
    x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_DISPATCH, 2, 2);
    race_fini (&r);

    //  Hedge with target 0 cooling: target 1 is the primary, hedged by target 2
    s_cfg (&c, RACE_POLICY_HEDGE, 3);
    c.hedge_delay_us[1] = 20 * MS;
    s_gate_init (&g, &c);
    s_gate_refuse (&g, 0, RACE_GATE_COOLDOWN);
    race_init (&r, &c);
    race_start (&r, 0);
    x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_DISPATCH, 1, 1);
    assert_int_equal (race_next_timer (&r), 20 * MS);
    race_tick (&r, 20 * MS);
    x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_DISPATCH, 2, 2);
    assert_int_equal (race_attempt (&r, 2)->kind, RACE_KIND_HEDGE);
    s_expect_call (&g, g.n - 1, 2, RACE_KIND_HEDGE, 1);
    race_fini (&r);
}

static void test_gate_budget_hedge (void **state)
{
    race_config_t c;
    s_cfg (&c, RACE_POLICY_HEDGE, 2);
    c.hedge_delay_us[0] = 10 * MS;
    gate_t g;
    s_gate_init (&g, &c);
    g.ans[1][RACE_KIND_HEDGE] = RACE_GATE_BUDGET;
    race_t r;
    race_init (&r, &c);
    race_start (&r, 0);
    acts_t x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_DISPATCH, 0, 0);
    assert_int_equal (race_next_timer (&r), 10 * MS);
    race_tick (&r, 10 * MS);
    //  No budget: nothing starts, the hedge is off
    assert_int_equal (s_drain (&r).n, 0);
    assert_true (race_hedge_suppressed (&r));
    assert_false (race_retry_suppressed (&r));
    assert_int_equal (g.n, 2);
    s_expect_call (&g, 1, 1, RACE_KIND_HEDGE, 0);     // the hedged target pays
    assert_int_equal (race_attempts (&r), 1);
    assert_int_equal (race_targets_started (&r), 1);
    assert_int_equal (race_next_timer (&r), 1000 * MS);
    race_tick (&r, 500 * MS);
    assert_int_equal (s_drain (&r).n, 0);
    assert_int_equal (g.n, 2);                        // not asked again
    //  The primary fails: target 1 still starts, as a failover
    race_attempt_fail (&r, 0, AIGW__ERROR_CODE__ERR_UPSTREAM, "HTTP 504", 0, 0, 600 * MS);
    x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_DISPATCH, 1, 1);
    assert_int_equal (race_attempt (&r, 1)->kind, RACE_KIND_FIRST);
    assert_int_equal (g.n, 3);
    s_expect_call (&g, 2, 1, RACE_KIND_FIRST, -1);
    race_attempt_result (&r, 1, 700 * MS);
    x = s_drain (&r);
    s_expect (&x.a[x.n - 1], RACE_FINISH_RESULT, 1, 1);
    assert_true (race_hedge_suppressed (&r));
    race_fini (&r);

    //  A refused hedge is re-armed by a failover: the new target hedges on its budget
    s_cfg (&c, RACE_POLICY_HEDGE, 3);
    c.hedge_delay_us[0] = 10 * MS;
    c.hedge_delay_us[1] = 20 * MS;
    s_gate_init (&g, &c);
    g.ans[1][RACE_KIND_HEDGE] = RACE_GATE_BUDGET;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_tick (&r, 10 * MS);
    assert_int_equal (s_drain (&r).n, 0);
    race_attempt_fail (&r, 0, AIGW__ERROR_CODE__ERR_UPSTREAM, "HTTP 504", 0, 0, 30 * MS);
    x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_DISPATCH, 1, 1);
    assert_int_equal (race_next_timer (&r), 50 * MS);
    race_tick (&r, 50 * MS);
    x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_DISPATCH, 2, 2);
    assert_int_equal (race_attempt (&r, 2)->kind, RACE_KIND_HEDGE);
    s_expect_call (&g, g.n - 1, 2, RACE_KIND_HEDGE, 1);
    assert_true (race_hedge_suppressed (&r));           // it was refused once
    race_fini (&r);

    //  With budget: payer is the target being hedged, hop by hop
    s_cfg (&c, RACE_POLICY_HEDGE, 3);
    c.hedge_delay_us[0] = 10 * MS;
    c.hedge_delay_us[1] = 10 * MS;
    s_gate_init (&g, &c);
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_tick (&r, 10 * MS);
    race_tick (&r, 20 * MS);
    x = s_drain (&r);
    assert_int_equal (x.n, 2);
    s_expect (&x.a[0], RACE_DISPATCH, 1, 1);
    s_expect (&x.a[1], RACE_DISPATCH, 2, 2);
    assert_int_equal (g.n, 3);
    s_expect_call (&g, 0, 0, RACE_KIND_FIRST, -1);
    s_expect_call (&g, 1, 1, RACE_KIND_HEDGE, 0);
    s_expect_call (&g, 2, 2, RACE_KIND_HEDGE, 1);
    assert_false (race_hedge_suppressed (&r));
    race_fini (&r);

    //  A hedge refused, then the next hop would have been asked: it is not (hedge off)
    s_cfg (&c, RACE_POLICY_HEDGE, 3);
    c.hedge_delay_us[0] = 10 * MS;
    s_gate_init (&g, &c);
    g.ans[1][RACE_KIND_HEDGE] = RACE_GATE_BUDGET;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_tick (&r, 10 * MS);
    race_tick (&r, 100 * MS);
    assert_int_equal (s_drain (&r).n, 0);
    assert_int_equal (g.n, 2);
    race_fini (&r);
}

static void test_gate_budget_retry (void **state)
{
    race_config_t c;
    gate_t g;
    race_t r;
    //  One target: the retry is refused, the job ends with the failure's code
    s_cfg (&c, RACE_POLICY_RACE, 1);
    c.retries = 2;
    c.retry_backoff_us = 10 * MS;
    s_gate_init (&g, &c);
    g.ans[0][RACE_KIND_RETRY] = RACE_GATE_BUDGET;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_fail (&r, 0, AIGW__ERROR_CODE__ERR_UPSTREAM, "503", RACE_FAIL_RETRYABLE, 0, 1);
    assert_int_equal (s_drain (&r).n, 0);
    assert_false (race_retry_suppressed (&r));       // not yet: asked when it would start
    int64_t at = race_next_timer (&r);
    race_tick (&r, at);
    s_expect_finish_error (&r, AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_true (race_retry_suppressed (&r));
    assert_false (race_hedge_suppressed (&r));
    s_expect_call (&g, g.n - 1, 0, RACE_KIND_RETRY, 0);
    assert_int_equal (race_attempts (&r), 1);        // no attempt recorded for it
    race_fini (&r);

    //  Fallback: the retry is refused, the policy fails over
    s_cfg (&c, RACE_POLICY_FALLBACK, 2);
    c.retries = 1;
    c.retry_backoff_us = 10 * MS;
    s_gate_init (&g, &c);
    g.ans[0][RACE_KIND_RETRY] = RACE_GATE_BUDGET;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_fail (&r, 0, AIGW__ERROR_CODE__ERR_UPSTREAM, "503", RACE_FAIL_RETRYABLE, 0, 1);
    assert_int_equal (s_drain (&r).n, 0);
    at = race_next_timer (&r);
    race_tick (&r, at);
    acts_t x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_DISPATCH, 1, 1);
    assert_int_equal (race_attempt (&r, 1)->kind, RACE_KIND_FIRST);
    assert_true (race_retry_suppressed (&r));
    race_fini (&r);

    //  Race of 2: a refused retry leaves the other running; the job goes on
    s_cfg (&c, RACE_POLICY_RACE, 2);
    c.retries = 1;
    c.retry_backoff_us = 10 * MS;
    s_gate_init (&g, &c);
    g.ans[0][RACE_KIND_RETRY] = RACE_GATE_BUDGET;
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_fail (&r, 0, AIGW__ERROR_CODE__ERR_UPSTREAM, "503", RACE_FAIL_RETRYABLE, 0, 1);
    race_tick (&r, race_next_timer (&r));
    assert_int_equal (s_drain (&r).n, 0);
    assert_true (race_retry_suppressed (&r));
    assert_false (race_finished (&r));
    race_attempt_result (&r, 1, 50 * MS);
    x = s_drain (&r);
    s_expect (&x.a[x.n - 1], RACE_FINISH_RESULT, 1, 1);
    race_fini (&r);
}

static void test_gate_cooldown_retry (void **state)
{
    race_config_t c;
    gate_t g;
    race_t r;
    s_cfg (&c, RACE_POLICY_RACE, 1);
    c.retries = 1;
    c.retry_backoff_us = 10 * MS;
    s_gate_init (&g, &c);
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_fail (&r, 0, AIGW__ERROR_CODE__ERR_UPSTREAM, "503", RACE_FAIL_RETRYABLE, 0, 1);
    //  The target trips while the retry waits
    s_gate_refuse (&g, 0, RACE_GATE_COOLDOWN);
    int64_t at = race_next_timer (&r);
    race_tick (&r, at);
    s_expect_finish_error (&r, AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_int_equal (race_attempts (&r), 2);
    const race_attempt_t *a = race_attempt (&r, 1);
    assert_int_equal (a->state, RACE_ATT_SKIPPED);
    assert_int_equal (a->code, AIGW__ERROR_CODE__ERR_COOLDOWN);
    assert_int_equal (a->kind, RACE_KIND_RETRY);
    assert_int_equal (a->retry_of, 0);
    assert_int_equal (a->target, 0);
    assert_int_equal (a->finished, at);
    assert_false (race_retry_suppressed (&r));        // cooling is not the budget
    race_fini (&r);

    //  Fallback: the skipped retry moves on to target 1
    s_cfg (&c, RACE_POLICY_FALLBACK, 2);
    c.retries = 1;
    c.retry_backoff_us = 10 * MS;
    s_gate_init (&g, &c);
    race_init (&r, &c);
    race_start (&r, 0);
    s_drain (&r);
    race_attempt_fail (&r, 0, AIGW__ERROR_CODE__ERR_UPSTREAM, "503", RACE_FAIL_RETRYABLE, 0, 1);
    g.ans[0][RACE_KIND_RETRY] = RACE_GATE_COOLDOWN;
    race_tick (&r, race_next_timer (&r));
    acts_t x = s_drain (&r);
    assert_int_equal (x.n, 1);
    s_expect (&x.a[0], RACE_DISPATCH, 2, 1);
    assert_int_equal (race_attempt (&r, 1)->state, RACE_ATT_SKIPPED);
    assert_int_equal (race_attempt (&r, 1)->retry_of, 0);
    race_fini (&r);
}

//  ---- property test: random event sequences, exactly one FINISH per job

static uint64_t s_rng = 0x2545F4914F6CDD1DULL;
static uint32_t s_rand (uint32_t n)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (uint32_t) (s_rng % n);
}

typedef struct {
    int finishes;
    int kind;       // race_act_type_t of the finish
    bool dispatched[RACE_ATTEMPTS_MAX];
    bool cancelled[RACE_ATTEMPTS_MAX];
    int64_t now;
} prop_t;

//  Execute actions like a broker would; some dispatches fail at once.
static void s_prop_apply (race_t *r, prop_t *p)
{
    race_action_t a;
    while (race_next_action (r, &a)) {
        if (a.type == RACE_DISPATCH) {
            assert_false (p->dispatched[a.attempt]);
            assert_int_equal (p->finishes, 0);
            p->dispatched[a.attempt] = true;
            if (s_rand (5) == 0)
                race_attempt_error (r, a.attempt, AIGW__ERROR_CODE__ERR_UNAVAILABLE, "none",
                                    p->now);
        }
        else
        if (a.type == RACE_CANCEL) {
            assert_true (p->dispatched[a.attempt]);
            assert_false (p->cancelled[a.attempt]);
            p->cancelled[a.attempt] = true;
        }
        else {
            p->finishes++;
            p->kind = a.type;
        }
    }
    assert_true (p->finishes <= 1);
    //  Invariant: live count equals running attempts
    size_t running = 0;
    for (size_t i = 0; i < race_attempts (r); i++) {
        const race_attempt_t *at = race_attempt (r, i);
        running += at->state == RACE_ATT_RUNNING;
        //  Only losers of a won race are "lost"
        if (at->lost)
            assert_true (at->state == RACE_ATT_CANCELLED && race_winner (r) >= 0);
    }
    assert_int_equal (running, r->live);
    if (race_finished (r)) {
        assert_int_equal (running, 0);
        assert_int_equal (r->waiting, 0);
    }
}

//  A gate that mostly says go, sometimes cooldown or no budget.
static race_gate_t s_prop_gate (void *arg, size_t target, race_kind_t kind, int payer,
                                int64_t now)
{
    (void) arg, (void) target, (void) payer, (void) now;
    uint32_t x = s_rand (10);
    if (x == 0)
        return RACE_GATE_COOLDOWN;
    if (x == 1 && (kind == RACE_KIND_HEDGE || kind == RACE_KIND_RETRY))
        return RACE_GATE_BUDGET;
    return RACE_GATE_GO;
}

static void s_prop_event (race_t *r, prop_t *p)
{
    size_t n = race_attempts (r) + 1;      // sometimes an index that does not exist
    size_t at = s_rand ((uint32_t) n);
    static const int codes[] = { AIGW__ERROR_CODE__ERR_UPSTREAM, AIGW__ERROR_CODE__ERR_WORKER_LOST,
                                 AIGW__ERROR_CODE__ERR_OVERLOADED, AIGW__ERROR_CODE__ERR_CANCELLED };
    p->now += s_rand (40 * MS);
    switch (s_rand (10)) {
        case 0: race_attempt_result (r, at, p->now); break;
        case 1: case 2: case 3:
            race_attempt_fail (r, at, codes[s_rand (4)], "e",
                               (s_rand (3) == 0 ? RACE_FAIL_REDISPATCH : 0)
                               | (s_rand (2) ? RACE_FAIL_RETRYABLE : 0),
                               s_rand (3) ? 0 : (int64_t) s_rand (100) * MS, p->now);
            break;
        case 4: case 5: race_attempt_chunk (r, at, p->now); break;
        case 6: if (s_rand (8) == 0) race_client_cancel (r, p->now); break;
        default: race_tick (r, p->now); break;
    }
}

static void test_property_one_finish (void **state)
{
    int early_result = 0, early_error = 0;
    for (int job = 0; job < 5000; job++) {
        race_config_t c;
        s_cfg (&c, (race_policy_t) s_rand (3), 1 + s_rand (5));
        c.deadline_us = (1 + s_rand (500)) * MS;
        c.stream = s_rand (2);
        c.ttft_us = s_rand (3) ? 0 : (1 + s_rand (100)) * MS;
        for (size_t i = 0; i < c.ntargets; i++)
            c.hedge_delay_us[i] = s_rand (100) * MS;
        c.retries = (uint8_t) s_rand (4);
        c.retry_backoff_us = (int64_t) s_rand (50) * MS;
        c.seed = (uint64_t) job + 1;
        if (s_rand (2))
            c.gate = s_prop_gate;
        race_t r;
        assert_int_equal (race_init (&r, &c), 0);
        prop_t p;
        memset (&p, 0, sizeof p);
        p.now = s_rand (1000);
        race_start (&r, p.now);
        s_prop_apply (&r, &p);
        int events = s_rand (30);
        for (int e = 0; e < events; e++) {
            s_prop_event (&r, &p);
            s_prop_apply (&r, &p);
            int64_t t = race_next_timer (&r);
            assert_true (race_finished (&r) ? t == INT64_MAX : t <= r.deadline_at);
        }
        if (p.finishes)
            p.kind == RACE_FINISH_RESULT ? early_result++ : early_error++;
        //  The deadline always ends a job that is still open
        race_tick (&r, p.now + c.deadline_us + 1);
        s_prop_apply (&r, &p);
        assert_int_equal (p.finishes, 1);
        assert_true (race_finished (&r));
        for (size_t i = 0; i < race_attempts (&r); i++)
            assert_int_not_equal (race_attempt (&r, i)->state, RACE_ATT_RUNNING);
        race_fini (&r);
    }
    //  The sequences reach every ending, not only the deadline
    assert_true (early_result > 500);
    assert_true (early_error > 500);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_race_win),
        cmocka_unit_test (test_all_fail),
        cmocka_unit_test (test_aggregate_codes),
        cmocka_unit_test (test_deadline),
        cmocka_unit_test (test_late_reply),
        cmocka_unit_test (test_hedge_timing),
        cmocka_unit_test (test_hedge_fail_first),
        cmocka_unit_test (test_hedge_auto),
        cmocka_unit_test (test_fallback_order),
        cmocka_unit_test (test_redispatch_once),
        cmocka_unit_test (test_stream_first_chunk_wins),
        cmocka_unit_test (test_ttft_fallback),
        cmocka_unit_test (test_stream_winner_fails),
        cmocka_unit_test (test_stream_worker_lost),
        cmocka_unit_test (test_lost_flags),
        cmocka_unit_test (test_ttft_nonstream_race),
        cmocka_unit_test (test_ttft_nonstream_hedge),
        cmocka_unit_test (test_ttft_nonstream_fallback),
        cmocka_unit_test (test_retry),
        cmocka_unit_test (test_client_cancel),
        cmocka_unit_test (test_bad_config),
        cmocka_unit_test (test_retry_retryable),
        cmocka_unit_test (test_retry_not_retryable),
        cmocka_unit_test (test_retry_after),
        cmocka_unit_test (test_retry_backoff_jitter),
        cmocka_unit_test (test_retry_dropped_when_job_ends),
        cmocka_unit_test (test_retry_fallback),
        cmocka_unit_test (test_gate_cooldown),
        cmocka_unit_test (test_gate_budget_hedge),
        cmocka_unit_test (test_gate_budget_retry),
        cmocka_unit_test (test_gate_cooldown_retry),
        cmocka_unit_test (test_property_one_finish),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
