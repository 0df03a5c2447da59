// Unit tests for config loading: good files, defaults, and each kind of bad input.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <stdbool.h>
#include <string.h>
#include <cmocka.h>

#include "cfg.h"

static const char *s_good =
    "# a comment\n"
    "broker\n"
    "    frontend = tcp://127.0.0.1:6555\n"
    "    heartbeat_ms = 250\n"
    "    start_hold_ms = 0\n"
    "edge\n"
    "    listen = 127.0.0.1:9090\n"
    "    max_body = 2048\n"
    "models\n"
    "    fast-sim\n"
    "        provider = sim\n"
    "        latency_ms = 10\n"
    "        jitter = 0.5\n"
    "        text = \"hello there, world\"\n"
    "    gpt-4o\n"
    "        provider = openai\n"
    "        base_url = https://api.openai.com/v1\n"
    "        api_key_env = OPENAI_API_KEY\n"
    "groups\n"
    "    quick\n"
    "        policy = hedge\n"
    "        targets = \"gpt-4o, fast-sim\"\n"
    "        hedge_delay_ms = auto\n";

static void test_good (void **state)
{
    char err[512];
    cfg_t *cfg = cfg_parse (s_good, "good", err, sizeof err);
    assert_non_null (cfg);
    assert_string_equal (cfg->broker.frontend, "tcp://127.0.0.1:6555");
    assert_string_equal (cfg->broker.backend, "tcp://127.0.0.1:5556");
    assert_int_equal (cfg->broker.heartbeat_ms, 250);
    assert_int_equal (cfg->broker.start_hold_ms, 0);
    assert_string_equal (cfg->edge.broker, "tcp://127.0.0.1:6555");
    assert_string_equal (cfg->worker.broker, "tcp://127.0.0.1:5556");
    assert_int_equal (cfg->edge.max_body, 2048);
    assert_int_equal (cfg->nmodels, 2);
    const cfg_model_t *m = cfg_model (cfg, "fast-sim");
    assert_non_null (m);
    assert_int_equal (m->provider, CFG_PROVIDER_SIM);
    assert_int_equal (m->latency_ms, 10);
    assert_true (m->jitter > 0.49 && m->jitter < 0.51);
    assert_string_equal (m->text, "hello there, world");
    m = cfg_model (cfg, "gpt-4o");
    assert_int_equal (m->provider, CFG_PROVIDER_OPENAI);
    assert_string_equal (m->upstream_model, "gpt-4o");
    assert_string_equal (m->api_key_env, "OPENAI_API_KEY");
    const cfg_group_t *g = cfg_group (cfg, "quick");
    assert_non_null (g);
    assert_int_equal (g->policy, CFG_POLICY_HEDGE);
    assert_true (g->hedge_auto);
    assert_int_equal (g->ntargets, 2);
    assert_string_equal (g->targets[0], "gpt-4o");
    assert_string_equal (g->targets[1], "fast-sim");
    assert_null (cfg_model (cfg, "nope"));
    cfg_destroy (&cfg);
    assert_null (cfg);
    cfg_destroy (&cfg);
}

static void test_defaults (void **state)
{
    cfg_t *cfg = cfg_defaults ();
    assert_non_null (cfg);
    assert_string_equal (cfg->broker.frontend, "tcp://127.0.0.1:5555");
    assert_string_equal (cfg->edge.listen, "127.0.0.1:8080");
    assert_int_equal (cfg->broker.start_hold_ms, CFG_HOLD_AUTO);
    assert_int_equal (cfg->edge.threads, 0);
    assert_int_equal (cfg->edge.max_connections, 16384);
    assert_int_equal (cfg->edge.max_per_ip, 1024);
    assert_int_equal (cfg->edge.max_jobs, 16384);
    assert_int_equal (cfg->edge.max_header_bytes, 4096);
    assert_int_equal (cfg->edge.header_timeout_ms, 10000);
    assert_string_equal (cfg->edge.cors_origins, "");
    assert_int_equal (cfg->nmodels, 0);
    cfg_destroy (&cfg);
}

//  Each bad config must fail and the message must name the offending key.
static void s_expect_bad (const char *text, const char *needle)
{
    char err[512] = "";
    cfg_t *cfg = cfg_parse (text, "bad", err, sizeof err);
    if (cfg || !strstr (err, needle))
        fail_msg ("expected failure mentioning '%s', got cfg=%p err='%s'", needle, (void *) cfg, err);
}

//  Retries and health keys: broker defaults, model overrides merged, groups, bounds.
static void test_failure_handling (void **state)
{
    char err[512];
    cfg_t *cfg = cfg_parse ("broker\n"
                            "    retry_backoff_ms = 50\n"
                            "    cooldown_failures = 7\n"
                            "    hedge_budget = 0.2\n"
                            "models\n"
                            "    a\n"
                            "        provider = sim\n"
                            "        retries = 2\n"
                            "        cooldown_ms = 900\n"
                            "        cooldown_error_rate = 0\n"
                            "    b\n"
                            "        provider = sim\n"
                            "groups\n"
                            "    g\n"
                            "        targets = \"a, b\"\n"
                            "        retries = 0\n"
                            "        retry_backoff_ms = 5\n"
                            "    h\n"
                            "        targets = \"a, b\"\n", "fh", err, sizeof err);
    assert_non_null (cfg);
    assert_int_equal (cfg->broker.retry_backoff_ms, 50);
    assert_int_equal (cfg_model (cfg, "a")->retries, 2);
    assert_int_equal (cfg_model (cfg, "b")->retries, CFG_RETRIES_UNSET);
    assert_int_equal (cfg_group (cfg, "g")->retries, 0);
    assert_int_equal (cfg_group (cfg, "g")->retry_backoff_ms, 5);
    assert_int_equal (cfg_group (cfg, "h")->retries, CFG_RETRIES_UNSET);
    cfg_health_t h;
    cfg_model_health (cfg, "a", &h);
    assert_int_equal (h.cooldown_failures, 7);          // the broker's
    assert_int_equal (h.cooldown_ms, 900);              // its own
    assert_true (h.cooldown_error_rate == 0.0);         // its own, even 0
    assert_true (h.hedge_budget > 0.19 && h.hedge_budget < 0.21);
    assert_int_equal (h.cooldown_max_ms, 60000);        // built-in default
    cfg_model_health (cfg, "unknown", &h);
    assert_int_equal (h.cooldown_ms, 5000);
    assert_true (h.cooldown_error_rate == 0.5);
    cfg_destroy (&cfg);
    s_expect_bad ("models\n    a\n        provider = sim\n        retries = 6\n", "models/a/retries");
    s_expect_bad ("broker\n    hedge_budget = 1.5\n", "broker/hedge_budget");
    s_expect_bad ("broker\n    cooldown_ms = 0\n", "broker/cooldown_ms");
    s_expect_bad ("broker\n    cooldown_error_rate = x\n", "broker/cooldown_error_rate");
    s_expect_bad ("broker\n    cooldown_windows_ms = 10\n", "broker/cooldown_windows_ms");
    s_expect_bad ("models\n    a\n        provider = sim\ngroups\n    g\n        targets = a\n"
                  "        retries = many\n", "groups/g/retries");
}

static void test_bad (void **state)
{
    s_expect_bad ("broker\n    heartbeat_ms = abc\n", "broker/heartbeat_ms");
    s_expect_bad ("broker\n    heartbeat_ms = 0\n", "broker/heartbeat_ms");
    s_expect_bad ("broker\n    start_hold_ms = -1\n", "broker/start_hold_ms");
    s_expect_bad ("broker\n    frontend = localhost:5\n", "broker/frontend");
    s_expect_bad ("broker\n    bogus = 1\n", "broker/bogus: unknown key");
    s_expect_bad ("nosuch\n    a = 1\n", "nosuch: unknown section");
    s_expect_bad ("models\n    m1\n        latency_ms = 5\n", "models/m1/provider");
    s_expect_bad ("models\n    m1\n        provider = magic\n", "models/m1/provider");
    s_expect_bad ("models\n    m1\n        provider = openai\n", "models/m1/base_url");
    s_expect_bad ("models\n    m1\n        provider = openai\n        base_url = ftp://x\n",
                  "models/m1/base_url");
    s_expect_bad ("models\n    m1\n        provider = sim\n        fail_rate = 1.5\n",
                  "models/m1/fail_rate");
    s_expect_bad ("models\n    m1\n        provider = sim\n        latency_ms = -3\n",
                  "models/m1/latency_ms");
    s_expect_bad ("models\n    m1\n        provider = sim\ngroups\n    g\n        targets = m1, m2\n",
                  "unknown model 'm2'");
    s_expect_bad ("models\n    m1\n        provider = sim\ngroups\n    g\n        policy = fastest\n"
                  "        targets = m1\n", "groups/g/policy");
    s_expect_bad ("models\n    m1\n        provider = sim\ngroups\n    g\n        policy = race\n",
                  "groups/g/targets");
    s_expect_bad ("models\n    m1\n        provider = sim\ngroups\n    m1\n        targets = m1\n",
                  "same name");
    s_expect_bad ("edge\n    threads = 257\n", "edge/threads");
    s_expect_bad ("edge\n    max_connections = 0\n", "edge/max_connections");
    s_expect_bad ("edge\n    max_header_bytes = 10\n", "edge/max_header_bytes");
    s_expect_bad ("edge\n    idle_timeout_ms = often\n", "edge/idle_timeout_ms");
    s_expect_bad ("edge\n    tls_cert = /x.pem\n", "edge/tls_key");
    s_expect_bad ("edge\n    no_such_key = 1\n", "edge/no_such_key");
    s_expect_bad ("broker\n  frontend = \"unterminated\n", "not valid ZPL");
}

//  The limits section: defaults, each backend form, and every refusal naming its key.
static void test_limits (void **state)
{
    char err[512];
    cfg_t *cfg = cfg_defaults ();
    assert_int_equal (cfg->limits.kind, CFG_LIMITS_MEMORY);
    assert_string_equal (cfg->limits.backend, "memory");
    assert_int_equal (cfg->limits.redis_timeout_ms, 50);
    assert_int_equal (cfg->limits.on_failure, CFG_LIMITS_LOCAL);
    assert_string_equal (cfg->limits.prefix, "aigw:");
    assert_string_equal (cfg->limits.redis_password_env, "");
    cfg_destroy (&cfg);

    cfg = cfg_parse ("limits\n    backend = \"redis://10.0.0.5:6380\"\n"
                     "    redis_password_env = REDIS_PW\n    redis_timeout_ms = 20\n"
                     "    on_failure = closed\n    prefix = \"gw1:\"\n", "limits", err, sizeof err);
    if (!cfg)
        fail_msg ("%s", err);
    assert_int_equal (cfg->limits.kind, CFG_LIMITS_REDIS_TCP);
    assert_string_equal (cfg->limits.host, "10.0.0.5");
    assert_int_equal (cfg->limits.port, 6380);
    assert_string_equal (cfg->limits.redis_password_env, "REDIS_PW");
    assert_int_equal (cfg->limits.redis_timeout_ms, 20);
    assert_int_equal (cfg->limits.on_failure, CFG_LIMITS_CLOSED);
    assert_string_equal (cfg->limits.prefix, "gw1:");
    cfg_destroy (&cfg);

    cfg = cfg_parse ("limits\n    backend = \"redis://[::1]\"\n    on_failure = open\n",
                     "limits", err, sizeof err);
    if (!cfg)
        fail_msg ("%s", err);
    assert_string_equal (cfg->limits.host, "::1");
    assert_int_equal (cfg->limits.port, 6379);
    assert_int_equal (cfg->limits.on_failure, CFG_LIMITS_OPEN);
    assert_string_equal (cfg_limits_failure_name (cfg->limits.on_failure), "open");
    cfg_destroy (&cfg);

    cfg = cfg_parse ("limits\n    backend = \"unix:/run/redis/redis.sock\"\n", "limits", err,
                     sizeof err);
    if (!cfg)
        fail_msg ("%s", err);
    assert_int_equal (cfg->limits.kind, CFG_LIMITS_REDIS_UNIX);
    assert_string_equal (cfg->limits.socket, "/run/redis/redis.sock");
    cfg_destroy (&cfg);

    s_expect_bad ("limits\n    backend = sqlite\n", "limits/backend");
    s_expect_bad ("limits\n    backend = \"redis://\"\n", "limits/backend");
    s_expect_bad ("limits\n    backend = \"redis://h:0\"\n", "limits/backend");
    s_expect_bad ("limits\n    backend = \"redis://h:65536\"\n", "limits/backend");
    s_expect_bad ("limits\n    backend = \"redis://h:12x\"\n", "limits/backend");
    s_expect_bad ("limits\n    backend = \"redis://h:1/0\"\n", "limits/backend");
    s_expect_bad ("limits\n    backend = \"redis://[::1\"\n", "limits/backend");
    s_expect_bad ("limits\n    backend = \"unix:\"\n", "limits/backend");
    s_expect_bad ("limits\n    on_failure = maybe\n", "limits/on_failure");
    s_expect_bad ("limits\n    redis_timeout_ms = 0\n", "limits/redis_timeout_ms");
    s_expect_bad ("limits\n    redis_timeout_ms = 60001\n", "limits/redis_timeout_ms");
    s_expect_bad ("limits\n    prefix = \"a b\"\n", "limits/prefix");
    s_expect_bad ("limits\n    prefix = \"\"\n", "limits/prefix");
    s_expect_bad ("limits\n    redis_password_env = \"\"\n", "limits/redis_password_env");
    s_expect_bad ("limits\n    redis_password = hunter2\n", "limits/redis_password");
}

static void test_max_json_depth (void **state)
{
    char err[512];
    cfg_t *cfg = cfg_defaults ();
    assert_int_equal (cfg->edge.max_json_depth, 64);
    cfg_destroy (&cfg);
    const char *ok[] = { "1", "64", "1000" };
    for (size_t i = 0; i < 3; i++) {
        char text[64];
        snprintf (text, sizeof text, "edge\n    max_json_depth = %s\n", ok[i]);
        cfg = cfg_parse (text, "depth", err, sizeof err);
        if (!cfg)
            fail_msg ("%s", err);
        assert_int_equal (cfg->edge.max_json_depth, strtoul (ok[i], NULL, 10));
        cfg_destroy (&cfg);
    }
    s_expect_bad ("edge\n    max_json_depth = 0\n", "edge/max_json_depth");
    s_expect_bad ("edge\n    max_json_depth = 1001\n", "edge/max_json_depth");
    s_expect_bad ("edge\n    max_json_depth = -1\n", "edge/max_json_depth");
    s_expect_bad ("edge\n    max_json_depth = deep\n", "edge/max_json_depth");
}

static void test_load_file (void **state)
{
    char err[512];
    assert_null (cfg_load ("/nonexistent/aigw.conf", err, sizeof err));
    assert_non_null (strstr (err, "cannot open"));
    char path[] = "/tmp/aigw-test-config-XXXXXX";
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    FILE *f = fdopen (fd, "w");
    fputs (s_good, f);
    fclose (f);
    cfg_t *cfg = cfg_load (path, err, sizeof err);
    assert_non_null (cfg);
    assert_int_equal (cfg->ngroups, 1);
    cfg_destroy (&cfg);
    unlink (path);
}

static void test_shipped_config (void **state)
{
    char err[512];
    cfg_t *cfg = cfg_load (AIGW_SOURCE_DIR "/config/aigw.conf", err, sizeof err);
    if (!cfg)
        fail_msg ("%s", err);
    assert_string_equal (cfg->broker.frontend, "tcp://127.0.0.1:5555");
    size_t sims = 0;
    for (size_t i = 0; i < cfg->nmodels; i++)
        sims += cfg->models[i].provider == CFG_PROVIDER_SIM;
    assert_true (sims >= 2);
    bool race = false;
    for (size_t i = 0; i < cfg->ngroups; i++)
        race |= cfg->groups[i].policy == CFG_POLICY_RACE && cfg->groups[i].ntargets >= 2;
    assert_true (race);
    cfg_destroy (&cfg);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_good),
        cmocka_unit_test (test_defaults),
        cmocka_unit_test (test_bad),
        cmocka_unit_test (test_failure_handling),
        cmocka_unit_test (test_max_json_depth),
        cmocka_unit_test (test_limits),
        cmocka_unit_test (test_load_file),
        cmocka_unit_test (test_shipped_config),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
