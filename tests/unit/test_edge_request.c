// Unit tests for the edge's request parsing: validation, model/group/list resolution,
// "aigw" overrides, and every refusal's status, code and message.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "request.h"
#include "reply.h"
#include "utf8.h"

static const char *s_conf =
    "edge\n"
    "    max_body = 2048\n"
    "models\n"
    "    fast-sim\n"
    "        provider = sim\n"
    "    slow-sim\n"
    "        provider = sim\n"
    "    flaky-sim\n"
    "        provider = sim\n"
    "    sturdy-sim\n"
    "        provider = sim\n"
    "        retries = 3\n"
    "        retry_backoff_ms = 40\n"
    "groups\n"
    "    quick\n"
    "        policy = race\n"
    "        targets = \"fast-sim, slow-sim\"\n"
    "    steady\n"
    "        policy = hedge\n"
    "        targets = \"flaky-sim, fast-sim\"\n"
    "        hedge_delay_ms = auto\n"
    "    careful\n"
    "        policy = fallback\n"
    "        targets = \"flaky-sim, slow-sim\"\n"
    "        hedge_delay_ms = 150\n"
    "        deadline_ms = 5000\n"
    "        ttft_timeout_ms = 800\n"
    "    patient\n"
    "        targets = \"fast-sim, slow-sim\"\n"
    "        retries = 2\n"
    "        retry_backoff_ms = 25\n";

static bool s_live (void *arg, const char *name)
{
    (void) arg;
    return strcmp (name, "agent/deliberate") == 0;
}

static int s_setup (void **state)
{
    char err[256];
    cfg_t *cfg = cfg_parse (s_conf, "test", err, sizeof err);
    if (!cfg)
        fprintf (stderr, "config: %s\n", err);
    *state = cfg;
    return cfg ? 0 : -1;
}

static int s_teardown (void **state)
{
    cfg_t *cfg = *state;
    cfg_destroy (&cfg);
    return 0;
}

static int s_parse (void **state, const char *body, edge_job_t *job, edge_err_t *err)
{
    return edge_request_parse (*state, body, strlen (body), s_live, NULL, job, err);
}

static void test_good_request (void **state)
{
    const char *body = "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                       "\"stream\":false,\"temperature\":0.2}";
    edge_job_t job;
    edge_err_t err;
    assert_int_equal (s_parse (state, body, &job, &err), 0);
    assert_int_equal (job.ntargets, 1);
    assert_string_equal (job.targets[0], "fast-sim");
    assert_string_equal (job.model, "fast-sim");
    assert_int_equal (job.policy, CFG_POLICY_RACE);
    assert_false (job.hedge_set);
    assert_int_equal (job.deadline_ms, 0);
    assert_int_equal (job.ttft_timeout_ms, 0);
    assert_false (job.stream);
    //  Without an "aigw" object the payload is the body byte for byte
    assert_int_equal (job.payload_len, strlen (body));
    assert_string_equal (job.payload, body);
    edge_request_reset (&job);
    edge_request_reset (&job);  // safe twice
}

static void test_stream_request (void **state)
{
    edge_job_t job;
    edge_err_t err;
    const char *body = "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"stream\":true,"
                       "\"stream_options\":{\"include_usage\":true}}";
    assert_int_equal (s_parse (state, body, &job, &err), 0);
    assert_true (job.stream);
    assert_true (job.include_usage);
    //  The body goes upstream as sent (the worker sets its own stream_options)
    assert_string_equal (job.payload, body);
    Aigw__Job pb;
    edge_request_to_pb (&job, 5, &pb);
    assert_true (pb.has_stream && pb.stream);
    edge_request_reset (&job);
    //  Without include_usage, and with null stream / stream_options
    assert_int_equal (s_parse (state, "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],"
                                      "\"stream\":true}", &job, &err), 0);
    assert_true (job.stream);
    assert_false (job.include_usage);
    edge_request_reset (&job);
    assert_int_equal (s_parse (state, "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],"
                                      "\"stream\":null,\"stream_options\":null}", &job, &err), 0);
    assert_false (job.stream);
    edge_request_reset (&job);
    //  stream_options without streaming is accepted and has no effect
    assert_int_equal (s_parse (state, "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],"
                                      "\"stream_options\":{\"include_usage\":true}}", &job, &err), 0);
    assert_false (job.stream);
    assert_false (job.include_usage);
    edge_request_reset (&job);
}

static void test_group_resolution (void **state)
{
    edge_job_t job;
    edge_err_t err;
    assert_int_equal (s_parse (state, "{\"model\":\"quick\",\"messages\":[{\"role\":\"user\"}]}",
                               &job, &err), 0);
    assert_int_equal (job.ntargets, 2);
    assert_string_equal (job.targets[0], "fast-sim");
    assert_string_equal (job.targets[1], "slow-sim");
    assert_int_equal (job.policy, CFG_POLICY_RACE);
    edge_request_reset (&job);

    assert_int_equal (s_parse (state, "{\"model\":\"steady\",\"messages\":[{\"role\":\"user\"}]}",
                               &job, &err), 0);
    assert_int_equal (job.policy, CFG_POLICY_HEDGE);
    assert_false (job.hedge_set);                  // auto: left to the broker
    edge_request_reset (&job);

    assert_int_equal (s_parse (state, "{\"model\":\"careful\",\"messages\":[{\"role\":\"user\"}]}",
                               &job, &err), 0);
    assert_int_equal (job.policy, CFG_POLICY_FALLBACK);
    assert_true (job.hedge_set);
    assert_int_equal (job.hedge_delay_ms, 150);
    assert_int_equal (job.deadline_ms, 5000);
    assert_int_equal (job.ttft_timeout_ms, 800);
    assert_string_equal (job.targets[0], "flaky-sim");
    assert_string_equal (job.targets[1], "slow-sim");
    edge_request_reset (&job);
}

//  Retries: from the model or the group, else left to the broker; aigw.* overrides.
static void test_retries (void **state)
{
    edge_job_t job;
    edge_err_t err;
    Aigw__Job pb;
    const char *cases[][2] = {
        { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}]}", "unset" },
        { "{\"model\":\"quick\",\"messages\":[{\"role\":\"user\"}]}", "unset" },
        { "{\"model\":\"sturdy-sim\",\"messages\":[{\"role\":\"user\"}]}", "3/40" },
        { "{\"model\":\"patient\",\"messages\":[{\"role\":\"user\"}]}", "2/25" },
        { "{\"model\":\"patient\",\"messages\":[{\"role\":\"user\"}],"
          "\"aigw\":{\"retries\":0}}", "0/25" },
        { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],"
          "\"aigw\":{\"retries\":5,\"retry_backoff_ms\":7}}", "5/7" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (s_parse (state, cases[i][0], &job, &err))
            fail_msg ("case %zu: %s", i, err.message);
        edge_request_to_pb (&job, 1, &pb);
        char got[32];
        if (pb.has_retries)
            snprintf (got, sizeof got, "%u/%u", pb.retries,
                      pb.has_retry_backoff_ms ? pb.retry_backoff_ms : 0);
        else
            snprintf (got, sizeof got, "unset");
        assert_string_equal (got, cases[i][1]);
        edge_request_reset (&job);
    }
    const char *bad[] = {
        "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"aigw\":{\"retries\":6}}",
        "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"aigw\":{\"retries\":-1}}",
        "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"aigw\":{\"retries\":1.5}}",
        ("{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],"
         "\"aigw\":{\"retry_backoff_ms\":60001}}"),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal (s_parse (state, bad[i], &job, &err), -1);
        assert_int_equal (err.status, 400);
        assert_non_null (strstr (err.message, "aigw.retr"));
        edge_request_reset (&job);
    }
}

static void test_live_model (void **state)
{
    const char *body = "{\"model\":\"agent/deliberate\",\"messages\":[{\"role\":\"user\"}]}";
    edge_job_t job;
    edge_err_t err;
    assert_int_equal (s_parse (state, body, &job, &err), 0);
    assert_string_equal (job.targets[0], "agent/deliberate");
    edge_request_reset (&job);
    //  Without the broker's status only config names are known
    assert_int_equal (edge_request_parse (*state, body, strlen (body), NULL, NULL, &job, &err), -1);
    assert_int_equal (err.status, 404);
    assert_string_equal (err.code, "model_not_found");
}

static void test_comma_list (void **state)
{
    edge_job_t job;
    edge_err_t err;
    assert_int_equal (s_parse (state, "{\"model\":\" fast-sim , slow-sim,agent/deliberate \","
                                      "\"messages\":[{\"role\":\"user\"}]}", &job, &err), 0);
    assert_int_equal (job.ntargets, 3);
    assert_string_equal (job.targets[0], "fast-sim");
    assert_string_equal (job.targets[1], "slow-sim");
    assert_string_equal (job.targets[2], "agent/deliberate");
    assert_int_equal (job.policy, CFG_POLICY_RACE);
    edge_request_reset (&job);

    assert_int_equal (s_parse (state, "{\"model\":\"fast-sim,nope\",\"messages\":[{\"role\":\"user\"}]}",
                               &job, &err), -1);
    assert_int_equal (err.status, 404);
    assert_string_equal (err.code, "model_not_found");
    assert_non_null (strstr (err.message, "'nope'"));

    //  A list names models, not groups
    assert_int_equal (s_parse (state, "{\"model\":\"quick,fast-sim\",\"messages\":[{\"role\":\"user\"}]}",
                               &job, &err), -1);
    assert_int_equal (err.status, 404);
    assert_non_null (strstr (err.message, "'quick'"));

    assert_int_equal (s_parse (state, "{\"model\":\"fast-sim,,slow-sim\",\"messages\":[{\"role\":\"user\"}]}",
                               &job, &err), -1);
    assert_int_equal (err.status, 400);
    assert_non_null (strstr (err.message, "empty name"));
    assert_null (job.payload);
}

static void test_aigw_overrides (void **state)
{
    const char *body = "{\"model\":\"quick\",\"messages\":[{\"role\":\"user\"}],"
                       "\"aigw\":{\"policy\":\"hedge\",\"targets\":[\"slow-sim\",\"agent/deliberate\"],"
                       "\"hedge_delay_ms\":75,\"deadline_ms\":9000,\"ttft_timeout_ms\":500},"
                       "\"max_tokens\":10}";
    edge_job_t job;
    edge_err_t err;
    assert_int_equal (s_parse (state, body, &job, &err), 0);
    assert_int_equal (job.policy, CFG_POLICY_HEDGE);
    assert_int_equal (job.ntargets, 2);
    assert_string_equal (job.targets[0], "slow-sim");
    assert_string_equal (job.targets[1], "agent/deliberate");
    assert_true (job.hedge_set);
    assert_int_equal (job.hedge_delay_ms, 75);
    assert_int_equal (job.deadline_ms, 9000);
    assert_int_equal (job.ttft_timeout_ms, 500);
    //  "aigw" is removed from what goes upstream; the rest stays
    assert_null (strstr (job.payload, "aigw"));
    assert_non_null (strstr (job.payload, "\"model\":\"quick\""));
    assert_non_null (strstr (job.payload, "\"max_tokens\":10"));
    assert_non_null (strstr (job.payload, "\"messages\""));
    edge_request_reset (&job);

    //  "auto" overrides a group's fixed hedge delay; group timings stay otherwise
    assert_int_equal (s_parse (state, "{\"model\":\"careful\",\"messages\":[{\"role\":\"user\"}],"
                                      "\"aigw\":{\"hedge_delay_ms\":\"auto\"}}", &job, &err), 0);
    assert_false (job.hedge_set);
    assert_int_equal (job.deadline_ms, 5000);
    assert_int_equal (job.policy, CFG_POLICY_FALLBACK);
    edge_request_reset (&job);

    //  With aigw.targets, `model` need not name anything known
    assert_int_equal (s_parse (state, "{\"model\":\"anything\",\"messages\":[{\"role\":\"user\"}],"
                                      "\"aigw\":{\"targets\":[\"fast-sim\"]}}", &job, &err), 0);
    assert_int_equal (job.ntargets, 1);
    assert_int_equal (job.policy, CFG_POLICY_RACE);
    edge_request_reset (&job);
}

typedef struct {
    const char *body;
    int status;
    const char *code;
    const char *message;                // substring expected in the message
} s_bad_t;

static const s_bad_t s_bad[] = {
    { "", 400, "invalid_json", "not valid JSON" },
    { "not json", 400, "invalid_json", "not valid JSON" },
    { "{\"model\":", 400, "invalid_json", "not valid JSON" },
    { "[1,2]", 400, "invalid_json", "must be a JSON object" },
    { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}]} x", 400, "invalid_json", "not valid JSON" },
    { "{\"messages\":[{\"role\":\"user\"}]}", 400, "invalid_request", "model: required" },
    { "{\"model\":42,\"messages\":[{\"role\":\"user\"}]}", 400, "invalid_request", "model: must be a non-empty string" },
    { "{\"model\":\"\",\"messages\":[{\"role\":\"user\"}]}", 400, "invalid_request", "model: must be a non-empty string" },
    { "{\"model\":\"fast-sim\"}", 400, "invalid_request", "messages: required" },
    { "{\"model\":\"fast-sim\",\"messages\":{}}", 400, "invalid_request", "messages: must be a non-empty array" },
    { "{\"model\":\"fast-sim\",\"messages\":[]}", 400, "invalid_request", "messages: must be a non-empty array" },
    { "{\"model\":\"fast-sim\",\"messages\":[1]}", 400, "invalid_request", "messages[0]: must be an object" },
    { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"},{\"content\":\"x\"}]}", 400, "invalid_request", "messages[1].role: must be a string" },
    { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":7}]}", 400, "invalid_request", "messages[0].role: must be a string" },
    { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"stream\":\"yes\"}", 400, "invalid_request", "stream: must be a boolean" },
    { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"stream\":true,\"stream_options\":true}", 400, "invalid_request", "stream_options: must be an object" },
    { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"stream\":true,\"stream_options\":{\"include_usage\":1}}", 400, "invalid_request", "stream_options.include_usage: must be a boolean" },
    { "{\"model\":\"nope\",\"messages\":[{\"role\":\"user\"}]}", 404, "model_not_found", "'nope'" },
    { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"aigw\":5}", 400, "invalid_request", "aigw: must be an object" },
    { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"aigw\":{\"policy\":\"fastest\"}}", 400, "invalid_request", "aigw.policy" },
    { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"aigw\":{\"policy\":1}}", 400, "invalid_request", "aigw.policy" },
    { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"aigw\":{\"targets\":\"fast-sim\"}}", 400, "invalid_request", "aigw.targets: must be a non-empty array" },
    { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"aigw\":{\"targets\":[]}}", 400, "invalid_request", "aigw.targets: must be a non-empty array" },
    { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"aigw\":{\"targets\":[1]}}", 400, "invalid_request", "aigw.targets[0]" },
    { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"aigw\":{\"targets\":[\"nope\"]}}", 404, "model_not_found", "'nope'" },
    { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"aigw\":{\"hedge_delay_ms\":-1}}", 400, "invalid_request", "aigw.hedge_delay_ms" },
    { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"aigw\":{\"hedge_delay_ms\":1.5}}", 400, "invalid_request", "aigw.hedge_delay_ms" },
    { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"aigw\":{\"hedge_delay_ms\":\"soon\"}}", 400, "invalid_request", "aigw.hedge_delay_ms" },
    { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"aigw\":{\"deadline_ms\":0}}", 400, "invalid_request", "aigw.deadline_ms" },
    { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"aigw\":{\"deadline_ms\":700000}}", 400, "invalid_request", "aigw.deadline_ms" },
    { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"aigw\":{\"deadline_ms\":1e20}}", 400, "invalid_request", "aigw.deadline_ms" },
    { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"aigw\":{\"ttft_timeout_ms\":\"x\"}}", 400, "invalid_request", "aigw.ttft_timeout_ms" },
    { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"aigw\":{\"colour\":1}}", 400, "invalid_request", "aigw.colour: unknown field" },
    //  Fields the edge reads may appear once (cJSON reads the first, upstreams the last)
    { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"model\":\"gpt-4\"}", 400, "invalid_request", "model: given more than once" },
    { "{\"model\":\"fast-sim\",\"mod\\u0065l\":\"gpt-4\",\"messages\":[{\"role\":\"user\"}]}", 400, "invalid_request", "model: given more than once" },
    { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"messages\":7}", 400, "invalid_request", "messages: given more than once" },
    { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"stream\":false,\"stream\":true}", 400, "invalid_request", "stream: given more than once" },
    { "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"aigw\":{},\"aigw\":{\"targets\":[\"x\"]}}", 400, "invalid_request", "aigw: given more than once" },
};

static void test_bad_inputs (void **state)
{
    for (size_t i = 0; i < sizeof s_bad / sizeof s_bad[0]; i++) {
        edge_job_t job;
        edge_err_t err;
        int rc = s_parse (state, s_bad[i].body, &job, &err);
        if (rc != -1 || err.status != s_bad[i].status || strcmp (err.code, s_bad[i].code)
            || !strstr (err.message, s_bad[i].message))
            fail_msg ("case %zu (%s): rc=%d status=%d code=%s message=%s", i, s_bad[i].body, rc,
                      err.status, err.code ? err.code : "-", err.message);
        assert_null (job.payload);
    }
}

static void test_too_many_targets (void **state)
{
    char body[2048];
    size_t o = (size_t) snprintf (body, sizeof body, "{\"model\":\"");
    for (int i = 0; i < CFG_TARGETS_MAX + 1; i++)
        o += (size_t) snprintf (body + o, sizeof body - o, "%sfast-sim", i ? "," : "");
    snprintf (body + o, sizeof body - o, "\",\"messages\":[{\"role\":\"user\"}]}");
    edge_job_t job;
    edge_err_t err;
    assert_int_equal (s_parse (state, body, &job, &err), -1);
    assert_int_equal (err.status, 400);
    assert_non_null (strstr (err.message, "too many targets"));
}

static void test_oversize (void **state)
{
    const cfg_t *cfg = *state;
    size_t len = cfg->edge.max_body + 1;
    char *body = malloc (len);
    memset (body, ' ', len);
    edge_job_t job;
    edge_err_t err;
    assert_int_equal (edge_request_parse (cfg, body, len, NULL, NULL, &job, &err), -1);
    assert_int_equal (err.status, 413);
    assert_string_equal (err.code, "request_too_large");
    assert_non_null (strstr (err.message, "2048"));
    free (body);
}

static void test_job_to_pb (void **state)
{
    edge_job_t job;
    edge_err_t err;
    assert_int_equal (s_parse (state, "{\"model\":\"careful\",\"messages\":[{\"role\":\"user\"}]}",
                               &job, &err), 0);
    Aigw__Job pb;
    edge_request_to_pb (&job, 77, &pb);
    assert_int_equal (pb.job_id, 77);
    assert_int_equal (pb.n_targets, 2);
    assert_string_equal (pb.targets[1], "slow-sim");
    assert_int_equal (pb.policy, AIGW__POLICY__POLICY_FALLBACK);
    assert_true (pb.has_hedge_delay_ms);
    assert_int_equal (pb.hedge_delay_ms, 150);
    assert_true (pb.has_deadline_ms);
    assert_int_equal (pb.deadline_ms, 5000);
    assert_true (pb.has_ttft_timeout_ms);
    assert_false (pb.stream);
    //  Round-trip through the wire encoding
    uint8_t buf[512];
    size_t n = aigw__job__pack (&pb, buf);
    Aigw__Job *back = aigw__job__unpack (NULL, n, buf);
    assert_non_null (back);
    assert_int_equal (back->n_targets, 2);
    assert_string_equal (back->targets[0], "flaky-sim");
    aigw__job__free_unpacked (back, NULL);
    edge_request_reset (&job);

    //  Steady (hedge auto) leaves hedge_delay_ms unset so the broker uses its p95
    assert_int_equal (s_parse (state, "{\"model\":\"steady\",\"messages\":[{\"role\":\"user\"}]}",
                               &job, &err), 0);
    edge_request_to_pb (&job, 78, &pb);
    assert_int_equal (pb.policy, AIGW__POLICY__POLICY_HEDGE);
    assert_false (pb.has_hedge_delay_ms);
    assert_false (pb.has_deadline_ms);
    edge_request_reset (&job);
}

//  depth levels of nesting in total: the body object, messages, one message, and
//  depth - 3 arrays as its content (which the edge forwards without looking at).
static char *s_nested_body (size_t depth)
{
    const char *head = "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\",\"content\":";
    size_t inner = depth - 3;
    size_t cap = strlen (head) + 2 * inner + 16;
    char *body = malloc (cap);
    assert_non_null (body);
    size_t o = (size_t) snprintf (body, cap, "%s", head);
    memset (body + o, '[', inner);
    o += inner;
    body[o++] = '1';
    memset (body + o, ']', inner);
    o += inner;
    snprintf (body + o, cap - o, "}]}");
    return body;
}

static void s_expect_too_deep (const cfg_t *cfg, const char *body, size_t len, const char *limit)
{
    edge_job_t job;
    edge_err_t err;
    assert_int_equal (edge_request_parse (cfg, body, len, NULL, NULL, &job, &err), -1);
    assert_int_equal (err.status, 400);
    assert_string_equal (err.code, "json_too_deep");
    if (!strstr (err.message, limit))
        fail_msg ("message does not name the limit %s: %s", limit, err.message);
    assert_null (job.payload);
}

typedef struct {
    const cfg_t *cfg;
    const char *body;
    size_t len;
    int rc;
    edge_err_t err;
} s_small_t;

static void *s_small_run (void *arg)
{
    s_small_t *t = arg;
    edge_job_t job;
    t->rc = edge_request_parse (t->cfg, t->body, t->len, NULL, NULL, &job, &t->err);
    edge_request_reset (&job);
    return NULL;
}

//  Parse on a thread with a 64 KiB stack, smaller than any HTTP server's handler
//  threads: deep nesting that reached cJSON's recursion would overflow it.
static int s_parse_small_stack (const cfg_t *cfg, const char *body, size_t len, edge_err_t *err)
{
    s_small_t t = { cfg, body, len, 0, { 0 } };
    pthread_attr_t attr;
    pthread_t thread;
    assert_int_equal (pthread_attr_init (&attr), 0);
    assert_int_equal (pthread_attr_setstacksize (&attr, 64 * 1024), 0);
    assert_int_equal (pthread_create (&thread, &attr, s_small_run, &t), 0);
    assert_int_equal (pthread_join (thread, NULL), 0);
    pthread_attr_destroy (&attr);
    *err = t.err;
    return t.rc;
}

static void test_deep_brackets (void **state)
{
    //  The crash from the issue: 900 '[' (1.8 KB with the closers) on a small stack
    char body[1801];
    memset (body, '[', 900);
    memset (body + 900, ']', 900);
    body[1800] = 0;
    s_expect_too_deep (*state, body, 900, "64");
    s_expect_too_deep (*state, body, 1800, "64");
    //  The same nesting inside an otherwise valid request
    char *deep = s_nested_body (900);
    s_expect_too_deep (*state, deep, strlen (deep), "64");
    //  On a small thread stack: refused, not a crash
    edge_err_t err;
    assert_int_equal (s_parse_small_stack (*state, deep, strlen (deep), &err), -1);
    assert_int_equal (err.status, 400);
    assert_string_equal (err.code, "json_too_deep");
    assert_int_equal (s_parse_small_stack (*state, body, 1800, &err), -1);
    assert_string_equal (err.code, "json_too_deep");
    free (deep);
}

static void test_depth_limit (void **state)
{
    edge_job_t job;
    edge_err_t err;
    //  64 levels: accepted, and the deep content goes upstream byte for byte
    char *body = s_nested_body (64);
    assert_int_equal (s_parse (state, body, &job, &err), 0);
    assert_string_equal (job.payload, body);
    edge_request_reset (&job);
    free (body);
    //  With an "aigw" object the payload is reprinted by cJSON: still 64 levels
    body = s_nested_body (64);
    size_t len = strlen (body);
    char *with_aigw = malloc (len + 32);
    assert_non_null (with_aigw);
    snprintf (with_aigw, len + 32, "%.*s,\"aigw\":{\"policy\":\"race\"}}", (int) len - 1, body);
    assert_int_equal (s_parse (state, with_aigw, &job, &err), 0);
    assert_null (strstr (job.payload, "aigw"));
    assert_non_null (strstr (job.payload, "[[[[1]]]]"));
    edge_request_reset (&job);
    free (with_aigw);
    free (body);
    //  65 levels: refused, brackets in strings do not count
    body = s_nested_body (65);
    s_expect_too_deep (*state, body, strlen (body), "64");
    free (body);
    const char *in_string = "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\","
                            "\"content\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}]}";
    assert_int_equal (s_parse (state, in_string, &job, &err), 0);
    edge_request_reset (&job);
}

static cfg_t *s_depth_cfg (const char *depth)
{
    char text[256];
    snprintf (text, sizeof text, "edge\n    max_body = 8192\n    max_json_depth = %s\n"
              "models\n    fast-sim\n        provider = sim\n", depth);
    char err[256];
    cfg_t *cfg = cfg_parse (text, "depth", err, sizeof err);
    if (!cfg)
        fail_msg ("%s", err);
    return cfg;
}

static void test_depth_from_config (void **state)
{
    edge_job_t job;
    edge_err_t err;
    cfg_t *cfg = s_depth_cfg ("5");
    char *body = s_nested_body (5);
    assert_int_equal (edge_request_parse (cfg, body, strlen (body), NULL, NULL, &job, &err), 0);
    edge_request_reset (&job);
    free (body);
    body = s_nested_body (6);
    s_expect_too_deep (cfg, body, strlen (body), "5");
    free (body);
    //  The request's own shape needs 3 levels: a limit of 2 refuses every chat request
    cfg_destroy (&cfg);
    cfg = s_depth_cfg ("2");
    const char *plain = "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}]}";
    s_expect_too_deep (cfg, plain, strlen (plain), "2");
    cfg_destroy (&cfg);
    //  Up to cJSON's own limit (1000) when configured so: 900 levels parse
    cfg = s_depth_cfg ("1000");
    body = s_nested_body (900);
    assert_int_equal (edge_request_parse (cfg, body, strlen (body), NULL, NULL, &job, &err), 0);
    assert_int_equal (job.payload_len, strlen (body));
    edge_request_reset (&job);
    free (body);
    cfg_destroy (&cfg);
}

//  Refuse body, then check that the message and the HTTP error body built from it
//  are valid UTF-8 and that the body is JSON quoting the message.
static void s_expect_utf8_error (void **state, const char *body, int status, const char *needle)
{
    edge_job_t job;
    edge_err_t err;
    assert_int_equal (s_parse (state, body, &job, &err), -1);
    assert_int_equal (err.status, status);
    if (!utf8_valid (err.message, strlen (err.message)))
        fail_msg ("message is not valid UTF-8: %s", err.message);
    if (needle && !strstr (err.message, needle))
        fail_msg ("message lacks '%s': %s", needle, err.message);
    edge_reply_t reply;
    assert_int_equal (edge_reply_simple (&reply, err.status, err.code, err.message), 0);
    assert_true (utf8_valid (reply.body, reply.len));
    cJSON *root = cJSON_ParseWithLength (reply.body, reply.len);
    assert_non_null (root);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive (root, "error");
    assert_string_equal (cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (e, "message")),
                         err.message);
    cJSON_Delete (root);
    edge_reply_reset (&reply);
}

#define S_FFFD "\xEF\xBF\xBD"

static void test_invalid_utf8_model (void **state)
{
    s_expect_utf8_error (state, "{\"model\":\"\xff\",\"messages\":[{\"role\":\"user\"}]}",
                         404, "'" S_FFFD "'");
    s_expect_utf8_error (state, "{\"model\":\"bad\xc3\x28name\",\"messages\":[{\"role\":\"user\"}]}",
                         404, "'bad" S_FFFD "(name'");
    s_expect_utf8_error (state, "{\"model\":\"\xed\xa0\x80\",\"messages\":[{\"role\":\"user\"}]}",
                         404, S_FFFD S_FFFD S_FFFD);
    s_expect_utf8_error (state, "{\"model\":\"fast-sim,\xfe\xff\",\"messages\":[{\"role\":\"user\"}]}",
                         404, S_FFFD S_FFFD);
    s_expect_utf8_error (state, "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],"
                                "\"aigw\":{\"targets\":[\"\xc0\xaf\"]}}", 404, S_FFFD S_FFFD);
    s_expect_utf8_error (state, "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],"
                                "\"aigw\":{\"k\xff\":1}}", 400, "aigw.k" S_FFFD ": unknown field");
    s_expect_utf8_error (state, "{\"model\":\"fast-sim,,\xff\",\"messages\":[{\"role\":\"user\"}]}",
                         400, "empty name");
    //  Valid UTF-8 is quoted as it is
    s_expect_utf8_error (state, "{\"model\":\"caf\xc3\xa9\",\"messages\":[{\"role\":\"user\"}]}",
                         404, "'caf\xc3\xa9'");
}

static void test_utf8_truncation (void **state)
{
    //  An over-long name is quoted by its first 32 bytes: never half a character
    char body[1024];
    char name[200];
    memset (name, 'a', 31);
    size_t o = 31;
    while (o + 2 < 150) {
        memcpy (name + o, "\xc3\xa9", 2);       // é straddles byte 32
        o += 2;
    }
    name[o] = 0;
    snprintf (body, sizeof body, "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\"}]}", name);
    s_expect_utf8_error (state, body, 404, "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'");
    //  Same for an unknown "aigw" key, quoted by its first 64 bytes
    char key[80];
    memset (key, 'k', 63);
    memcpy (key + 63, "\xc3\xa9\xc3\xa9", 5);
    snprintf (body, sizeof body, "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],"
              "\"aigw\":{\"%s\":1}}", key);
    char expect[96];
    snprintf (expect, sizeof expect, "aigw.%.63s: unknown field", key);
    s_expect_utf8_error (state, body, 400, expect);
    //  A message cut at its buffer's size ends on a character boundary
    o = (size_t) snprintf (body, sizeof body, "{\"model\":\"fast-sim,,");
    for (int i = 0; i < 300; i++)
        o += (size_t) snprintf (body + o, sizeof body - o, "\xe2\x82\xac");
    snprintf (body + o, sizeof body - o, "\",\"messages\":[{\"role\":\"user\"}]}");
    s_expect_utf8_error (state, body, 400, "empty name");
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_good_request),
        cmocka_unit_test (test_stream_request),
        cmocka_unit_test (test_group_resolution),
        cmocka_unit_test (test_retries),
        cmocka_unit_test (test_live_model),
        cmocka_unit_test (test_comma_list),
        cmocka_unit_test (test_aigw_overrides),
        cmocka_unit_test (test_bad_inputs),
        cmocka_unit_test (test_too_many_targets),
        cmocka_unit_test (test_oversize),
        cmocka_unit_test (test_job_to_pb),
        cmocka_unit_test (test_deep_brackets),
        cmocka_unit_test (test_depth_limit),
        cmocka_unit_test (test_depth_from_config),
        cmocka_unit_test (test_invalid_utf8_model),
        cmocka_unit_test (test_utf8_truncation),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
