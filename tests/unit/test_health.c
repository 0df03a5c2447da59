// Unit tests for per-target health (brokers/health.c): the circuit breaker
// (consecutive failures, windowed error rate, growing cooldown, half-open probe)
// and the hedge budget token bucket. Pure logic over an injected clock.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <cmocka.h>

#include "health.h"

#define MS 1000LL               // microseconds per millisecond

//  A config that trips only on consecutive failures (the rate is off).
static health_cfg_t s_count_cfg (uint32_t failures, uint32_t cooldown_ms, uint32_t max_ms)
{
    health_cfg_t c;
    health_cfg_defaults (&c);
    c.failures = failures;
    c.error_rate = 0;
    c.cooldown_ms = cooldown_ms;
    c.cooldown_max_ms = max_ms;
    return c;
}

//  A config that trips only on the error rate (the count is off).
static health_cfg_t s_rate_cfg (double rate, uint32_t min_requests, uint32_t window_ms)
{
    health_cfg_t c;
    health_cfg_defaults (&c);
    c.failures = 0;
    c.error_rate = rate;
    c.min_requests = min_requests;
    c.window_ms = window_ms;
    c.cooldown_ms = 1000;
    c.cooldown_max_ms = 8000;
    return c;
}

static void s_fail_n (health_t *h, int n, int64_t now)
{
    for (int i = 0; i < n; i++)
        health_outcome (h, false, true, now);
}

//  Admit one start at now, expecting it through (and whether it is the probe).
static void s_admit_ok (health_t *h, int64_t now, bool want_probe)
{
    bool probe = !want_probe;
    assert_true (health_admit (h, now, &probe));
    assert_int_equal (probe, want_probe);
}

static void test_defaults (void **state)
{
    (void) state;
    health_cfg_t c;
    memset (&c, 0xab, sizeof c);
    health_cfg_defaults (&c);
    assert_int_equal (c.failures, 5);
    assert_true (c.error_rate > 0.499 && c.error_rate < 0.501);
    assert_int_equal (c.min_requests, 20);
    assert_int_equal (c.window_ms, 10000);
    assert_int_equal (c.cooldown_ms, 5000);
    assert_int_equal (c.cooldown_max_ms, 60000);
    assert_true (c.hedge_budget > 0.099 && c.hedge_budget < 0.101);

    //  NULL config: the defaults; a fresh target is healthy, admitted, full budget
    health_t h;
    health_init (&h, NULL);
    assert_int_equal (h.cfg.failures, 5);
    assert_int_equal (h.cfg.cooldown_ms, 5000);
    assert_int_equal (h.tokens, (int64_t) HEALTH_BURST * HEALTH_MILLI);
    assert_true (health_would_admit (&h, 0));
    assert_int_equal (health_state (&h, 0), HEALTH_STATE_HEALTHY);
    assert_int_equal (health_wait_us (&h, 0), 0);
    assert_true (health_error_rate (&h, 0) == 0.0);
    assert_int_equal (h.n_trips + h.n_skipped + h.n_no_budget + h.n_backups + h.n_probes, 0);
    s_admit_ok (&h, 0, false);

    //  Names
    assert_string_equal (health_state_name (HEALTH_STATE_HEALTHY), "healthy");
    assert_string_equal (health_state_name (HEALTH_STATE_DEGRADED), "degraded");
    assert_string_equal (health_state_name (HEALTH_STATE_COOLING), "cooling");

    //  A cap below the first cooldown is raised to it
    health_cfg_t bad = s_count_cfg (1, 2000, 500);
    health_init (&h, &bad);
    assert_int_equal (h.cfg.cooldown_max_ms, 2000);
    health_outcome (&h, false, true, 0);
    assert_int_equal (health_wait_us (&h, 0), 2000 * MS);
}

static void test_consecutive_trip (void **state)
{
    (void) state;
    health_cfg_t c = s_count_cfg (3, 1000, 60000);
    health_t h;
    health_init (&h, &c);
    int64_t now = 10 * MS;
    //  N-1 failures: still closed, but degraded
    s_fail_n (&h, 2, now);
    assert_int_equal (h.n_trips, 0);
    assert_true (health_would_admit (&h, now));
    assert_int_equal (health_state (&h, now), HEALTH_STATE_DEGRADED);
    //  A success resets the streak: two more failures do not trip
    health_outcome (&h, true, true, now);
    assert_int_equal (h.consecutive, 0);
    s_fail_n (&h, 2, now);
    assert_int_equal (h.n_trips, 0);
    assert_true (health_would_admit (&h, now));
    //  The N-th in a row trips
    health_outcome (&h, false, true, now);
    assert_int_equal (h.n_trips, 1);
    assert_false (health_would_admit (&h, now));
    assert_int_equal (health_state (&h, now), HEALTH_STATE_COOLING);
    assert_int_equal (health_wait_us (&h, now), 1000 * MS);

    //  failures = 0: never trips on the count
    health_cfg_t off = s_count_cfg (0, 1000, 60000);
    health_init (&h, &off);
    s_fail_n (&h, 1000, now);
    assert_int_equal (h.n_trips, 0);
    assert_true (health_would_admit (&h, now));
}

static void test_rate_trip (void **state)
{
    (void) state;
    health_cfg_t c = s_rate_cfg (0.5, 10, 10000);
    health_t h;
    health_init (&h, &c);
    int64_t now = 100 * MS;
    //  9 failures: a 100% rate, but fewer than min_requests outcomes
    s_fail_n (&h, 9, now);
    assert_int_equal (h.n_trips, 0);
    assert_true (health_error_rate (&h, now) > 0.99);
    assert_true (health_would_admit (&h, now));
    //  The 10th outcome makes the rate count
    health_outcome (&h, false, true, now);
    assert_int_equal (h.n_trips, 1);
    assert_false (health_would_admit (&h, now));
    //  The trip clears the window
    assert_true (health_error_rate (&h, now) == 0.0);

    //  Below the rate: 6 ok + 4 bad (0.4) does not trip; 6 ok + 6 bad (0.5) does
    health_init (&h, &c);
    for (int i = 0; i < 6; i++)
        health_outcome (&h, true, true, now);
    s_fail_n (&h, 4, now);
    assert_int_equal (h.n_trips, 0);
    assert_true (health_error_rate (&h, now) > 0.39 && health_error_rate (&h, now) < 0.41);
    health_outcome (&h, false, true, now);                  // 5 of 11
    assert_int_equal (h.n_trips, 0);
    health_outcome (&h, false, true, now);                  // 6 of 12 = 0.5
    assert_int_equal (h.n_trips, 1);

    //  A success never trips, whatever the window says
    health_init (&h, &c);
    s_fail_n (&h, 9, now);
    health_outcome (&h, true, true, now);                   // 9 of 10 bad, but ok
    assert_int_equal (h.n_trips, 0);
    health_outcome (&h, false, true, now);
    assert_int_equal (h.n_trips, 1);
}

static void test_window_expires (void **state)
{
    (void) state;
    health_cfg_t c = s_rate_cfg (0.5, 4, 1000);       // 1 s window, 100 ms slices
    health_t h;
    health_init (&h, &c);
    int64_t t0 = 5000 * MS;
    s_fail_n (&h, 3, t0);
    assert_int_equal (h.n_trips, 0);
    //  Within the window they still count
    assert_true (health_error_rate (&h, t0 + 500 * MS) > 0.99);
    //  More than the window later they do not: a 4th failure alone does not trip
    int64_t t1 = t0 + 1100 * MS;
    assert_true (health_error_rate (&h, t1) == 0.0);
    health_outcome (&h, false, true, t1);
    assert_int_equal (h.n_trips, 0);
    assert_true (health_error_rate (&h, t1) > 0.99);
    //  Spread over the window, the rest still counts: 3 more in the same window trip
    s_fail_n (&h, 2, t1 + 300 * MS);
    assert_int_equal (h.n_trips, 0);
    health_outcome (&h, false, true, t1 + 600 * MS);
    assert_int_equal (h.n_trips, 1);

    //  The same outcomes close together trip (the control of the case above)
    health_init (&h, &c);
    s_fail_n (&h, 3, t0);
    health_outcome (&h, false, true, t0 + 500 * MS);
    assert_int_equal (h.n_trips, 1);

    //  Old successes expire too: their dilution of the rate goes with them
    health_init (&h, &c);
    for (int i = 0; i < 20; i++)
        health_outcome (&h, true, true, t0);
    s_fail_n (&h, 3, t0 + 1500 * MS);
    assert_int_equal (h.n_trips, 0);                  // 3 outcomes < min_requests
    health_outcome (&h, false, true, t0 + 1600 * MS);
    assert_int_equal (h.n_trips, 1);
}

static void test_cooldown_doubles_and_caps (void **state)
{
    (void) state;
    health_cfg_t c = s_count_cfg (1, 100, 1000);
    health_t h;
    health_init (&h, &c);
    int64_t now = 0;
    const int64_t want_ms[] = { 100, 200, 400, 800, 1000, 1000, 1000 };
    health_outcome (&h, false, true, now);
    for (size_t i = 0; i < sizeof want_ms / sizeof want_ms[0]; i++) {
        assert_int_equal (h.n_trips, i + 1);
        assert_int_equal (health_wait_us (&h, now), want_ms[i] * MS);
        //  Cooling until the end, not a microsecond less
        assert_false (health_would_admit (&h, now + want_ms[i] * MS - 1));
        assert_int_equal (health_state (&h, now + want_ms[i] * MS - 1), HEALTH_STATE_COOLING);
        now += want_ms[i] * MS;
        assert_true (health_would_admit (&h, now));
        assert_int_equal (health_wait_us (&h, now), 0);
        //  The probe fails: open again for longer
        s_admit_ok (&h, now, true);
        health_outcome (&h, false, true, now);
    }
}

static void test_cooling_refuses (void **state)
{
    (void) state;
    health_cfg_t c = s_count_cfg (2, 500, 60000);
    health_t h;
    health_init (&h, &c);
    int64_t t = 1000 * MS;
    s_fail_n (&h, 2, t);
    assert_int_equal (h.n_trips, 1);
    for (int i = 0; i < 3; i++) {
        bool probe = true;
        assert_false (health_admit (&h, t + i * 100 * MS, &probe));
        assert_false (probe);
    }
    assert_int_equal (h.n_skipped, 3);
    assert_int_equal (health_wait_us (&h, t + 100 * MS), 400 * MS);
    //  would_admit has no side effects
    assert_false (health_would_admit (&h, t + 499 * MS));
    assert_int_equal (h.n_skipped, 3);
    //  Cooldown over: admitted again (as the probe); state no longer cooling
    assert_true (health_would_admit (&h, t + 500 * MS));
    assert_int_equal (health_state (&h, t + 500 * MS), HEALTH_STATE_DEGRADED);
    assert_int_equal (h.n_skipped, 3);
}

static void test_half_open_one_probe (void **state)
{
    (void) state;
    health_cfg_t c = s_count_cfg (1, 100, 60000);
    health_t h;
    health_init (&h, &c);
    health_outcome (&h, false, true, 0);
    int64_t t = 100 * MS;
    s_admit_ok (&h, t, true);
    assert_int_equal (h.n_probes, 1);
    //  While the probe is out nobody else goes
    assert_false (health_would_admit (&h, t));
    bool probe = true;
    assert_false (health_admit (&h, t + 1, &probe));
    assert_false (probe);
    assert_false (health_admit (&h, t + 50 * MS, &probe));
    assert_int_equal (h.n_skipped, 2);
    assert_int_equal (h.n_probes, 1);
    assert_int_equal (health_state (&h, t), HEALTH_STATE_DEGRADED);
    //  The wait while probing is the (current) cooldown
    assert_int_equal (health_wait_us (&h, t + 1), 100 * MS);
    //  The probe succeeds: closed, the trips forgotten
    health_outcome (&h, true, true, t + 60 * MS);
    assert_false (h.half_open);
    assert_int_equal (h.trips, 0);
    assert_int_equal (health_state (&h, t + 60 * MS), HEALTH_STATE_HEALTHY);
    s_admit_ok (&h, t + 61 * MS, false);
    s_admit_ok (&h, t + 61 * MS, false);
    assert_int_equal (health_wait_us (&h, t + 61 * MS), 0);
}

static void test_probe_success_resets_trips (void **state)
{
    (void) state;
    health_cfg_t c = s_count_cfg (1, 100, 10000);
    health_t h;
    health_init (&h, &c);
    int64_t now = 0;
    //  Three trips: 100, 200, 400 ms
    health_outcome (&h, false, true, now);
    now += 100 * MS;
    s_admit_ok (&h, now, true);
    health_outcome (&h, false, true, now);
    assert_int_equal (health_wait_us (&h, now), 200 * MS);
    now += 200 * MS;
    s_admit_ok (&h, now, true);
    health_outcome (&h, false, true, now);
    assert_int_equal (health_wait_us (&h, now), 400 * MS);
    now += 400 * MS;
    //  A good probe
    s_admit_ok (&h, now, true);
    health_outcome (&h, true, true, now + 5 * MS);
    assert_int_equal (h.trips, 0);
    assert_int_equal (h.n_trips, 3);
    //  The next trip uses the base cooldown again
    now += 1000 * MS;
    health_outcome (&h, false, true, now);
    assert_int_equal (h.n_trips, 4);
    assert_int_equal (health_wait_us (&h, now), 100 * MS);
}

static void test_probe_failure_reopens (void **state)
{
    (void) state;
    health_cfg_t c = s_count_cfg (3, 100, 10000);
    health_t h;
    health_init (&h, &c);
    s_fail_n (&h, 3, 0);
    int64_t t = 100 * MS;
    s_admit_ok (&h, t, true);
    //  One failure of the probe is enough (not `failures` of them)
    health_outcome (&h, false, true, t + 10 * MS);
    assert_int_equal (h.n_trips, 2);
    assert_int_equal (health_state (&h, t + 10 * MS), HEALTH_STATE_COOLING);
    assert_int_equal (health_wait_us (&h, t + 10 * MS), 200 * MS);
    assert_false (health_would_admit (&h, t + 209 * MS));
    assert_true (health_would_admit (&h, t + 210 * MS));
    s_admit_ok (&h, t + 210 * MS, true);
    assert_int_equal (h.n_probes, 2);
}

static void test_no_verdict_next_probes (void **state)
{
    (void) state;
    health_cfg_t c = s_count_cfg (1, 100, 10000);
    health_t h;
    health_init (&h, &c);
    health_outcome (&h, false, true, 0);
    int64_t t = 150 * MS;
    s_admit_ok (&h, t, true);
    assert_false (health_would_admit (&h, t));
    //  The probe lost a race: no verdict, the next start probes
    health_no_verdict (&h);
    assert_true (health_would_admit (&h, t + 1));
    assert_int_equal (health_wait_us (&h, t + 1), 0);
    assert_int_equal (health_state (&h, t + 1), HEALTH_STATE_DEGRADED);
    s_admit_ok (&h, t + 1, true);
    assert_int_equal (h.n_probes, 2);
    assert_false (health_would_admit (&h, t + 2));
    //  Still the first trip: a failed probe now cools for 200 ms
    health_outcome (&h, false, true, t + 3);
    assert_int_equal (health_wait_us (&h, t + 3), 200 * MS);
    //  No verdict outside half-open changes nothing
    health_init (&h, &c);
    health_no_verdict (&h);
    assert_true (health_would_admit (&h, 0));
    s_admit_ok (&h, 0, false);
    assert_int_equal (health_state (&h, 0), HEALTH_STATE_HEALTHY);
}

//  While half-open only the probe decides: an older attempt's verdict is no news.
static void test_half_open_only_probe_decides (void **state)
{
    (void) state;
    health_cfg_t c = s_count_cfg (1, 100, 10000);
    health_t h;
    health_init (&h, &c);
    health_outcome (&h, false, false, 0);               // trips (closed: probe flag ignored)
    int64_t t = 150 * MS;
    s_admit_ok (&h, t, true);
    health_outcome (&h, true, false, t + 1);            // started before the trip: ignored
    assert_false (health_would_admit (&h, t + 2));
    health_outcome (&h, false, false, t + 3);           // ignored too: no re-trip
    assert_int_equal (h.n_trips, 1);
    health_outcome (&h, true, true, t + 4);             // the probe: closes
    assert_true (health_would_admit (&h, t + 5));
    assert_int_equal (h.trips, 0);
}

//  A budget of 0 allows no backups, not even the burst.
static void test_budget_zero (void **state)
{
    (void) state;
    health_cfg_t c;
    health_cfg_defaults (&c);
    c.hedge_budget = 0;
    health_t h;
    health_init (&h, &c);
    for (int i = 0; i < 100; i++)
        health_earn (&h);
    assert_false (health_take_token (&h));
    assert_int_equal (h.n_no_budget, 1);
}

static void test_outcome_while_open_ignored (void **state)
{
    (void) state;
    health_cfg_t c = s_count_cfg (2, 1000, 60000);
    health_t h;
    health_init (&h, &c);
    s_fail_n (&h, 2, 0);
    assert_int_equal (h.n_trips, 1);
    //  Late answers of attempts started before the trip: no news either way
    s_fail_n (&h, 10, 10 * MS);
    assert_int_equal (h.n_trips, 1);
    assert_int_equal (h.consecutive, 0);
    assert_int_equal (health_wait_us (&h, 10 * MS), 990 * MS);
    health_outcome (&h, true, true, 20 * MS);
    assert_int_equal (health_state (&h, 20 * MS), HEALTH_STATE_COOLING);
    assert_false (health_would_admit (&h, 20 * MS));
    assert_int_equal (h.trips, 1);
    //  Even after the cooldown passed but before anyone was admitted
    health_outcome (&h, false, true, 1500 * MS);
    assert_int_equal (h.n_trips, 1);
    assert_true (health_would_admit (&h, 1500 * MS));
    assert_true (health_error_rate (&h, 1500 * MS) == 0.0);
}

static void test_states (void **state)
{
    (void) state;
    health_cfg_t c;
    health_cfg_defaults (&c);
    c.failures = 3;
    c.error_rate = 0.9;
    c.min_requests = 1000;                            // the rate never trips here
    c.window_ms = 1000;
    c.cooldown_ms = 200;
    health_t h;
    health_init (&h, &c);
    int64_t t = 10000 * MS;
    assert_int_equal (health_state (&h, t), HEALTH_STATE_HEALTHY);
    //  Successes only: healthy
    for (int i = 0; i < 30; i++)
        health_outcome (&h, true, true, t);
    assert_int_equal (health_state (&h, t), HEALTH_STATE_HEALTHY);
    //  A failure streak: degraded
    health_outcome (&h, false, true, t);
    assert_int_equal (health_state (&h, t), HEALTH_STATE_DEGRADED);
    //  Streak broken, but 1 bad of 32 (< a tenth): healthy
    health_outcome (&h, true, true, t);
    assert_int_equal (health_state (&h, t), HEALTH_STATE_HEALTHY);
    //  A tenth of the window failing: degraded without a streak
    health_init (&h, &c);
    for (int i = 0; i < 9; i++)
        health_outcome (&h, true, true, t);
    health_outcome (&h, false, true, t);
    health_outcome (&h, true, true, t);                     // 1 of 11: < a tenth
    assert_int_equal (health_state (&h, t), HEALTH_STATE_HEALTHY);
    health_outcome (&h, false, true, t);
    health_outcome (&h, true, true, t);                     // 2 of 13 >= a tenth
    assert_int_equal (h.consecutive, 0);
    assert_int_equal (health_state (&h, t), HEALTH_STATE_DEGRADED);
    //  ... until those outcomes leave the window
    assert_int_equal (health_state (&h, t + 1100 * MS), HEALTH_STATE_HEALTHY);
    //  Trip: cooling, with the time left
    s_fail_n (&h, 3, t);
    assert_int_equal (health_state (&h, t), HEALTH_STATE_COOLING);
    assert_int_equal (health_wait_us (&h, t + 50 * MS), 150 * MS);
    //  Cooldown over, nobody admitted yet: degraded, wait 0
    assert_int_equal (health_state (&h, t + 200 * MS), HEALTH_STATE_DEGRADED);
    assert_int_equal (health_wait_us (&h, t + 200 * MS), 0);
    //  Probing: degraded, wait = the cooldown
    s_admit_ok (&h, t + 200 * MS, true);
    assert_int_equal (health_state (&h, t + 201 * MS), HEALTH_STATE_DEGRADED);
    assert_int_equal (health_wait_us (&h, t + 201 * MS), 200 * MS);
    //  Probe ok: healthy, wait 0
    health_outcome (&h, true, true, t + 210 * MS);
    assert_int_equal (health_state (&h, t + 210 * MS), HEALTH_STATE_HEALTHY);
    assert_int_equal (health_wait_us (&h, t + 210 * MS), 0);
}

static void test_budget_burst (void **state)
{
    (void) state;
    health_t h;
    health_init (&h, NULL);                           // hedge_budget 0.1
    for (int i = 0; i < HEALTH_BURST; i++)
        assert_true (health_take_token (&h));
    assert_int_equal (h.n_backups, HEALTH_BURST);
    assert_int_equal (h.n_no_budget, 0);
    assert_false (health_take_token (&h));
    assert_false (health_take_token (&h));
    assert_int_equal (h.n_no_budget, 2);
    assert_int_equal (h.n_backups, HEALTH_BURST);
    //  9 earns at 0.1: still less than a token
    for (int i = 0; i < 9; i++)
        health_earn (&h);
    assert_false (health_take_token (&h));
    assert_int_equal (h.n_no_budget, 3);
    //  The 10th makes one
    health_earn (&h);
    assert_true (health_take_token (&h));
    assert_false (health_take_token (&h));
    assert_int_equal (h.n_backups, HEALTH_BURST + 1);
    assert_int_equal (h.n_no_budget, 4);
}

static void test_budget_cap (void **state)
{
    (void) state;
    health_cfg_t c;
    health_cfg_defaults (&c);
    c.hedge_budget = 1.0;
    health_t h;
    health_init (&h, &c);
    //  Full already: earning adds nothing beyond HEALTH_BURST
    for (int i = 0; i < 100; i++)
        health_earn (&h);
    assert_int_equal (h.tokens, (int64_t) HEALTH_BURST * HEALTH_MILLI);
    int took = 0;
    while (health_take_token (&h))
        took++;
    assert_int_equal (took, HEALTH_BURST);
    //  Refill at 1 per start, capped
    for (int i = 0; i < 3; i++)
        health_earn (&h);
    took = 0;
    while (health_take_token (&h))
        took++;
    assert_int_equal (took, 3);
    for (int i = 0; i < 50; i++)
        health_earn (&h);
    took = 0;
    while (health_take_token (&h))
        took++;
    assert_int_equal (took, HEALTH_BURST);
    //  The budget is independent of the breaker
    health_cfg_t k = s_count_cfg (1, 1000, 1000);
    health_init (&h, &k);
    health_outcome (&h, false, true, 0);
    assert_false (health_would_admit (&h, 0));
    assert_true (health_take_token (&h));
}

static void test_budget_property (void **state)
{
    (void) state;
    const double budgets[] = { 0.1, 0.05, 0.25, 0.5 };
    for (size_t b = 0; b < sizeof budgets / sizeof budgets[0]; b++) {
        health_cfg_t c;
        health_cfg_defaults (&c);
        c.hedge_budget = budgets[b];
        health_t h;
        health_init (&h, &c);
        const int starts = 1000;
        int taken = 0, refused = 0;
        for (int i = 0; i < starts; i++) {
            health_earn (&h);
            if (health_take_token (&h))
                taken++;
            else
                refused++;
        }
        assert_true ((double) taken <= budgets[b] * starts + HEALTH_BURST + 1e-9);
        //  ... and the bound is reached (the bucket does not leak)
        assert_true ((double) taken >= budgets[b] * starts + HEALTH_BURST - 1.0);
        assert_int_equal (h.n_backups, (uint64_t) taken);
        assert_int_equal (h.n_no_budget, (uint64_t) refused);
    }
    //  Several takes per start, in bursts: the bound holds whatever the pattern
    health_t h;
    health_init (&h, NULL);
    uint64_t x = 0x2545F4914F6CDD1DULL;
    int taken = 0;
    for (int i = 0; i < 1000; i++) {
        health_earn (&h);
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        for (int k = (int) (x % 4); k > 0; k--)
            taken += health_take_token (&h);
    }
    assert_true (taken <= 0.1 * 1000 + HEALTH_BURST);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_defaults),
        cmocka_unit_test (test_consecutive_trip),
        cmocka_unit_test (test_rate_trip),
        cmocka_unit_test (test_window_expires),
        cmocka_unit_test (test_cooldown_doubles_and_caps),
        cmocka_unit_test (test_cooling_refuses),
        cmocka_unit_test (test_half_open_one_probe),
        cmocka_unit_test (test_probe_success_resets_trips),
        cmocka_unit_test (test_probe_failure_reopens),
        cmocka_unit_test (test_no_verdict_next_probes),
        cmocka_unit_test (test_outcome_while_open_ignored),
        cmocka_unit_test (test_half_open_only_probe_decides),
        cmocka_unit_test (test_budget_zero),
        cmocka_unit_test (test_states),
        cmocka_unit_test (test_budget_burst),
        cmocka_unit_test (test_budget_cap),
        cmocka_unit_test (test_budget_property),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
