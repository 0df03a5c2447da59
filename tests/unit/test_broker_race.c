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
        cmocka_unit_test (test_property_one_finish),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
