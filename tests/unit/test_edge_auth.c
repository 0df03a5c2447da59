// Unit tests for the edge's shield helpers (edge/auth.c) and the spend accounting
// (edge/spend.c): secret extraction, admin key comparison, rate-limit header text,
// OpenAI-style durations, protected mode, and charging answers and late SPENDs.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "auth.h"
#include "spend.h"
#include "price.h"

#define S_ADMIN "0123456789abcdef-admin"

static void test_secret_extraction (void **state)
{
    (void) state;
    size_t len = 0;
    const char *s = auth_secret ("Bearer sk-aigw-abc", NULL, &len);
    assert_non_null (s);
    assert_int_equal (len, 11);
    assert_memory_equal (s, "sk-aigw-abc", 11);
    s = auth_secret ("  bearer   tok  ", NULL, &len);
    assert_non_null (s);
    assert_int_equal (len, 3);
    assert_null (auth_secret ("Basic dXNlcjpwYXNz", NULL, &len));
    assert_null (auth_secret ("Bearer", NULL, &len));
    assert_null (auth_secret ("Bearer    ", NULL, &len));
    assert_null (auth_secret (NULL, NULL, &len));
    assert_null (auth_secret (NULL, "   ", &len));
    s = auth_secret (NULL, "sk-aigw-x", &len);
    assert_non_null (s);
    assert_int_equal (len, 9);
    //  Authorization wins over x-api-key; a non-Bearer Authorization falls back
    s = auth_secret ("Bearer one", "two", &len);
    assert_memory_equal (s, "one", 3);
    s = auth_secret ("Basic abc", "two", &len);
    assert_memory_equal (s, "two", 3);
}

static void test_durations (void **state)
{
    (void) state;
    const struct { int64_t ms; const char *text; } cases[] = {
        { -5, "0ms" }, { 0, "0ms" }, { 20, "20ms" }, { 999, "999ms" }, { 1000, "1s" },
        { 1500, "1.5s" }, { 1250, "1.25s" }, { 59999, "59.999s" }, { 60000, "1m0s" },
        { 360000, "6m0s" }, { 61001, "1m2s" }, { 3600000, "1h0m0s" }, { 3723000, "1h2m3s" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        auth_duration (cases[i].ms, buf, sizeof buf);
        assert_string_equal (buf, cases[i].text);
    }
}

static void test_ratelimit_headers (void **state)
{
    (void) state;
    keys_admit_t a;
    memset (&a, 0, sizeof a);
    a.rpm_limit = 50;
    a.rpm_remaining = 0;
    a.rpm_reset_ms = 1200;
    a.tpm_limit = -1;
    a.retry_after_s = 2;
    char buf[640];
    auth_ratelimit_headers (&a, true, buf, sizeof buf);
    assert_string_equal (buf, "x-ratelimit-limit-requests: 50\n"
                              "x-ratelimit-remaining-requests: 0\n"
                              "x-ratelimit-reset-requests: 1.2s\n"
                              "Retry-After: 2\n");
    a.rpm_limit = -1;
    a.tpm_limit = 1000;
    a.tpm_remaining = -3;               // over: shown as 0
    a.tpm_reset_ms = 60000;
    auth_ratelimit_headers (&a, false, buf, sizeof buf);
    assert_string_equal (buf, "x-ratelimit-limit-tokens: 1000\n"
                              "x-ratelimit-remaining-tokens: 0\n"
                              "x-ratelimit-reset-tokens: 1m0s\n");
    //  No room: nothing rather than half a header
    char tiny[40];
    a.rpm_limit = 50;
    auth_ratelimit_headers (&a, true, tiny, sizeof tiny);
    assert_string_equal (tiny, "");
}

static void test_loopback_and_exposure (void **state)
{
    (void) state;
    assert_true (cfg_is_loopback ("127.0.0.1:8080"));
    assert_true (cfg_is_loopback ("127.1.2.3:0"));
    assert_true (cfg_is_loopback ("tcp://127.0.0.1:5555"));
    assert_true (cfg_is_loopback ("[::1]:8080"));
    assert_true (cfg_is_loopback ("localhost:80"));
    assert_true (cfg_is_loopback ("ipc:///tmp/x"));
    assert_false (cfg_is_loopback (":8080"));
    assert_false (cfg_is_loopback ("0.0.0.0:8080"));
    assert_false (cfg_is_loopback ("tcp://*:5555"));
    assert_false (cfg_is_loopback ("[::]:8080"));
    assert_false (cfg_is_loopback ("10.0.0.1:8080"));
    assert_false (cfg_is_loopback ("127.0.0.1.evil.com:80"));
    cfg_t *cfg = cfg_defaults ();
    assert_non_null (cfg);
    char err[512];
    assert_int_equal (auth_check_exposure (cfg, err, sizeof err), 0);
    snprintf (cfg->edge.listen, sizeof cfg->edge.listen, "0.0.0.0:8080");
    assert_int_equal (auth_check_exposure (cfg, err, sizeof err), -1);
    assert_non_null (strstr (err, "insecure"));
    cfg->edge.insecure = true;
    assert_int_equal (auth_check_exposure (cfg, err, sizeof err), 0);
    cfg->edge.insecure = false;
    cfg->edge.auth = true;
    assert_int_equal (auth_check_exposure (cfg, err, sizeof err), 0);
    cfg_destroy (&cfg);
}

static void test_admin_key (void **state)
{
    (void) state;
    cfg_t *cfg = cfg_defaults ();
    emetrics_t *em = emetrics_new ();
    char err[512] = "";
    setenv ("AIGW_TEST_ADMIN", "short", 1);
    snprintf (cfg->edge.admin_key_env, sizeof cfg->edge.admin_key_env, "AIGW_TEST_ADMIN");
    assert_null (auth_new (cfg, em, err, sizeof err));
    assert_non_null (strstr (err, "AIGW_TEST_ADMIN"));
    assert_null (strstr (err, "short"));         // the value is never echoed
    setenv ("AIGW_TEST_ADMIN", S_ADMIN, 1);
    auth_t *auth = auth_new (cfg, em, err, sizeof err);
    assert_non_null (auth);
    assert_true (auth_admin_set (auth));
    assert_true (auth_is_admin (auth, S_ADMIN, strlen (S_ADMIN), true));
    assert_false (auth_is_admin (auth, S_ADMIN, strlen (S_ADMIN) - 1, true));
    assert_false (auth_is_admin (auth, S_ADMIN "x", strlen (S_ADMIN) + 1, true));
    assert_false (auth_is_admin (auth, "1123456789abcdef-admin", strlen (S_ADMIN), true));
    assert_false (auth_is_admin (auth, NULL, 0, true));
    auth_stats_t st;
    auth_stats (auth, &st);
    assert_int_equal (st.admin_calls, 1);
    assert_int_equal (st.admin_refused, 4);
    auth_count (auth, KEYS_OK);
    auth_count (auth, KEYS_QUOTA);
    auth_count (auth, KEYS_QUOTA);
    auth_stats (auth, &st);
    assert_int_equal (st.admitted, 1);
    assert_int_equal (st.refused[KEYS_QUOTA], 2);
    assert_null (auth_keys (auth));             // no keys_db configured
    auth_destroy (&auth);
    assert_null (auth);
    unsetenv ("AIGW_TEST_ADMIN");
    auth = auth_new (cfg, em, err, sizeof err);
    assert_non_null (auth);
    assert_false (auth_admin_set (auth));
    assert_false (auth_is_admin (auth, "", 0, false));
    auth_destroy (&auth);
    emetrics_destroy (&em);
    cfg_destroy (&cfg);
}

static const char s_prices[] =
    "models\n"
    "    cheap\n        provider = sim\n        input_price = 1\n        output_price = 2\n"
    "    dear\n        provider = sim\n        input_price = 10\n        output_price = 20\n";

static Aigw__AttemptInfo s_attempt (const char *target, Aigw__Outcome outcome, Aigw__Usage *u)
{
    Aigw__AttemptInfo a = AIGW__ATTEMPT_INFO__INIT;
    a.target = (char *) target;
    a.outcome = outcome;
    a.usage = u;
    return a;
}

static void test_spend (void **state)
{
    (void) state;
    char err[256];
    cfg_t *cfg = cfg_parse (s_prices, "test", err, sizeof err);
    assert_non_null (cfg);
    emetrics_t *em = emetrics_new ();
    spend_t *sp = spend_new (cfg, NULL, em);
    assert_non_null (sp);
    //  A race: cheap won with 1M prompt + 1M completion tokens (given as the answer's
    //  usage only), dear was cancelled before reporting
    Aigw__Usage won = AIGW__USAGE__INIT;
    won.has_prompt_tokens = won.has_completion_tokens = true;
    won.prompt_tokens = 1000000;
    won.completion_tokens = 1000000;
    Aigw__AttemptInfo a0 = s_attempt ("cheap", AIGW__OUTCOME__OUTCOME_WON, NULL);
    Aigw__AttemptInfo a1 = s_attempt ("dear", AIGW__OUTCOME__OUTCOME_CANCELLED, NULL);
    Aigw__AttemptInfo *att[] = { &a0, &a1 };
    double usd = spend_answer (sp, "", att, 2, "cheap", &won, 0);
    assert_float_equal (usd, 3.0, 1e-9);
    em_spend_t t;
    emetrics_spend (em, &t);
    assert_float_equal (t.cost_usd, 3.0, 1e-9);
    assert_float_equal (t.loser_cost_usd, 0.0, 1e-9);
    assert_float_equal (t.saved_usd, 20.0, 1e-9);  // the winner's 1M tokens at dear's price
    assert_int_equal (t.charges, 1);
    //  dear's acknowledgement: 500k prompt + 250k completion tokens
    Aigw__Usage late = AIGW__USAGE__INIT;
    late.has_prompt_tokens = late.has_completion_tokens = true;
    late.prompt_tokens = 500000;
    late.completion_tokens = 250000;
    Aigw__Spend s = AIGW__SPEND__INIT;
    s.job_id = 1;
    s.attempt_id = 2;
    s.target = (char *) "dear";
    s.usage = &late;
    assert_float_equal (spend_late (sp, &s, 0), 10.0, 1e-9);
    emetrics_spend (em, &t);
    assert_float_equal (t.cost_usd, 13.0, 1e-9);
    assert_float_equal (t.loser_cost_usd, 10.0, 1e-9);
    assert_float_equal (t.saved_usd, 15.0, 1e-9);
    assert_int_equal (t.late_charges, 1);
    //  A SPEND without usage, or for an unpriced model, costs nothing
    Aigw__Spend empty = AIGW__SPEND__INIT;
    assert_float_equal (spend_late (sp, &empty, 0), 0.0, 1e-12);
    s.target = (char *) "unknown";
    assert_float_equal (spend_late (sp, &s, 0), 0.0, 1e-12);
    //  The attempt's own usage wins over the answer's
    Aigw__Usage own = AIGW__USAGE__INIT;
    own.has_completion_tokens = true;
    own.completion_tokens = 10;
    a0.usage = &own;
    assert_ptr_equal (edge_price_usage (&a0, "cheap", &won), &own);
    a0.usage = NULL;
    assert_ptr_equal (edge_price_usage (&a0, "cheap", &won), &won);
    assert_null (edge_price_usage (&a1, "cheap", &won));     // a loser never borrows it
    spend_destroy (&sp);
    emetrics_destroy (&em);
    cfg_destroy (&cfg);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_secret_extraction),
        cmocka_unit_test (test_durations),
        cmocka_unit_test (test_ratelimit_headers),
        cmocka_unit_test (test_loopback_and_exposure),
        cmocka_unit_test (test_admin_key),
        cmocka_unit_test (test_spend),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
