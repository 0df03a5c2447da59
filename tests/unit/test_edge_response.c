// Unit tests for the edge's reply bodies: success with the "aigw" object and winner
// header, OpenAI error bodies, status mapping, /v1/models and /readyz.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <cJSON.h>

#include "reply.h"

static const char *s_upstream =
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"model\":\"fast-sim\","
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"hi\"},"
    "\"finish_reason\":\"stop\"}]}";

static void s_attempt (Aigw__AttemptInfo *a, const char *target, Aigw__Outcome o, uint64_t start,
                       uint64_t end)
{
    aigw__attempt_info__init (a);
    a->attempt_id = 1;
    a->target = (char *) target;
    a->outcome = o;
    a->worker = "w1";
    a->has_started_us = true;
    a->started_us = start;
    a->has_finished_us = true;
    a->finished_us = end;
}

static cJSON *s_parse_reply (const edge_reply_t *r)
{
    cJSON *root = cJSON_ParseWithLength (r->body, r->len);
    assert_non_null (root);
    assert_int_equal (strlen (r->body), r->len);
    return root;
}

static double s_num (const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (o, key);
    assert_true (cJSON_IsNumber (v));
    return v->valuedouble;
}

static const char *s_str (const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (o, key);
    assert_true (cJSON_IsString (v));
    return v->valuestring;
}

static void test_status_mapping (void **state)
{
    (void) state;
    assert_int_equal (edge_reply_status (AIGW__ERROR_CODE__ERR_BAD_REQUEST), 400);
    assert_int_equal (edge_reply_status (AIGW__ERROR_CODE__ERR_UNKNOWN_MODEL), 404);
    assert_int_equal (edge_reply_status (AIGW__ERROR_CODE__ERR_OVERLOADED), 429);
    assert_int_equal (edge_reply_status (AIGW__ERROR_CODE__ERR_UPSTREAM), 502);
    assert_int_equal (edge_reply_status (AIGW__ERROR_CODE__ERR_WORKER_LOST), 502);
    assert_int_equal (edge_reply_status (AIGW__ERROR_CODE__ERR_TTFT), 502);
    assert_int_equal (edge_reply_status (AIGW__ERROR_CODE__ERR_UNAVAILABLE), 503);
    assert_int_equal (edge_reply_status (AIGW__ERROR_CODE__ERR_TIMEOUT), 504);
    assert_int_equal (edge_reply_status (AIGW__ERROR_CODE__ERR_INTERNAL), 500);
    assert_int_equal (edge_reply_status (AIGW__ERROR_CODE__ERR_CANCELLED), 499);
    assert_int_equal (edge_reply_status ((Aigw__ErrorCode) 99), 500);
    assert_string_equal (edge_reply_error_type (400), "invalid_request_error");
    assert_string_equal (edge_reply_error_type (404), "invalid_request_error");
    assert_string_equal (edge_reply_error_type (429), "rate_limit_error");
    assert_string_equal (edge_reply_error_type (502), "upstream_error");
    assert_string_equal (edge_reply_error_type (503), "service_unavailable");
    assert_string_equal (edge_reply_error_type (504), "timeout_error");
}

static void test_success_body (void **state)
{
    (void) state;
    Aigw__AttemptInfo a[2];
    Aigw__AttemptInfo *ptrs[] = { &a[0], &a[1] };
    s_attempt (&a[0], "fast-sim", AIGW__OUTCOME__OUTCOME_WON, 100, 2400);
    a[0].has_first_token_us = true;
    a[0].first_token_us = 1250;
    s_attempt (&a[1], "slow-sim", AIGW__OUTCOME__OUTCOME_CANCELLED, 50100, 2450);
    Aigw__Result res = AIGW__RESULT__INIT;
    res.job_id = 9;
    res.model = "fast-sim";
    res.has_response_json = true;
    res.response_json.data = (uint8_t *) s_upstream;
    res.response_json.len = strlen (s_upstream);
    res.n_attempts = 2;
    res.attempts = ptrs;
    res.has_latency_us = true;
    res.latency_us = 2500;
    edge_reply_t r;
    assert_int_equal (edge_reply_result (&r, &res, CFG_POLICY_HEDGE, NULL), 0);
    assert_int_equal (r.status, 200);
    assert_string_equal (r.winner, "fast-sim");
    //  The upstream bytes are kept as they were, "aigw" spliced in at the end
    assert_memory_equal (r.body, s_upstream, strlen (s_upstream) - 1);
    cJSON *root = s_parse_reply (&r);
    assert_string_equal (s_str (root, "id"), "chatcmpl-1");
    assert_non_null (cJSON_GetObjectItemCaseSensitive (root, "choices"));
    cJSON *aigw = cJSON_GetObjectItemCaseSensitive (root, "aigw");
    assert_string_equal (s_str (aigw, "winner"), "fast-sim");
    assert_string_equal (s_str (aigw, "policy"), "hedge");
    assert_true (s_num (aigw, "latency_ms") == 2.5);
    cJSON *atts = cJSON_GetObjectItemCaseSensitive (aigw, "attempts");
    assert_int_equal (cJSON_GetArraySize (atts), 2);
    cJSON *a0 = cJSON_GetArrayItem (atts, 0);
    assert_string_equal (s_str (a0, "model"), "fast-sim");
    assert_string_equal (s_str (a0, "outcome"), "won");
    assert_string_equal (s_str (a0, "worker"), "w1");
    assert_true (s_num (a0, "started_ms") == 0.1);
    assert_true (s_num (a0, "first_token_ms") == 1.25);
    assert_true (s_num (a0, "finished_ms") == 2.4);
    assert_true (cJSON_IsNull (cJSON_GetObjectItemCaseSensitive (a0, "error")));
    cJSON *a1 = cJSON_GetArrayItem (atts, 1);
    assert_string_equal (s_str (a1, "outcome"), "cancelled");
    assert_true (cJSON_IsNull (cJSON_GetObjectItemCaseSensitive (a1, "first_token_ms")));
    cJSON_Delete (root);
    edge_reply_reset (&r);
    edge_reply_reset (&r);
}

static void test_success_edge_cases (void **state)
{
    (void) state;
    Aigw__Result res = AIGW__RESULT__INIT;
    res.model = "bad name\r\nX-Injected: 1";
    res.has_response_json = true;
    const char *empty = "  { }\n";
    res.response_json.data = (uint8_t *) empty;
    res.response_json.len = strlen (empty);
    edge_reply_t r;
    assert_int_equal (edge_reply_result (&r, &res, CFG_POLICY_RACE, NULL), 0);
    assert_int_equal (r.status, 200);
    //  The header value keeps printable characters only
    assert_string_equal (r.winner, "badnameX-Injected:1");
    cJSON *root = s_parse_reply (&r);
    assert_non_null (cJSON_GetObjectItemCaseSensitive (root, "aigw"));
    assert_int_equal (cJSON_GetArraySize (root), 1);
    cJSON_Delete (root);
    edge_reply_reset (&r);

    //  Not a JSON object: 502, never a broken 200
    const char *bad = "[1,2]";
    res.response_json.data = (uint8_t *) bad;
    res.response_json.len = strlen (bad);
    assert_int_equal (edge_reply_result (&r, &res, CFG_POLICY_RACE, NULL), 0);
    assert_int_equal (r.status, 502);
    assert_string_equal (r.winner, "");
    root = s_parse_reply (&r);
    cJSON *e = cJSON_GetObjectItemCaseSensitive (root, "error");
    assert_string_equal (s_str (e, "code"), "bad_upstream_response");
    cJSON_Delete (root);
    edge_reply_reset (&r);

    res.has_response_json = false;
    assert_int_equal (edge_reply_result (&r, &res, CFG_POLICY_RACE, NULL), 0);
    assert_int_equal (r.status, 502);
    edge_reply_reset (&r);
}

static void test_error_with_attempts (void **state)
{
    (void) state;
    Aigw__AttemptInfo a[2];
    Aigw__AttemptInfo *ptrs[] = { &a[0], &a[1] };
    s_attempt (&a[0], "fast-sim", AIGW__OUTCOME__OUTCOME_FAILED, 100, 900);
    a[0].reason = "upstream returned HTTP 500";
    s_attempt (&a[1], "slow-sim", AIGW__OUTCOME__OUTCOME_FAILED, 120, 1900);
    a[1].has_error = true;
    a[1].error = AIGW__ERROR_CODE__ERR_WORKER_LOST;
    Aigw__Error err = AIGW__ERROR__INIT;
    err.job_id = 3;
    err.code = AIGW__ERROR_CODE__ERR_UPSTREAM;
    err.n_attempts = 2;
    err.attempts = ptrs;
    err.has_upstream_status = true;
    err.upstream_status = 500;
    edge_reply_t r;
    assert_int_equal (edge_reply_error (&r, &err, CFG_POLICY_RACE, NULL), 0);
    assert_int_equal (r.status, 502);
    cJSON *root = s_parse_reply (&r);
    cJSON *e = cJSON_GetObjectItemCaseSensitive (root, "error");
    assert_string_equal (s_str (e, "type"), "upstream_error");
    assert_string_equal (s_str (e, "code"), "upstream_error");
    const char *msg = s_str (e, "message");
    assert_non_null (strstr (msg, "fast-sim: upstream returned HTTP 500"));
    assert_non_null (strstr (msg, "slow-sim: worker_lost"));
    assert_true (s_num (e, "upstream_status") == 500);
    cJSON *aigw = cJSON_GetObjectItemCaseSensitive (root, "aigw");
    assert_true (cJSON_IsNull (cJSON_GetObjectItemCaseSensitive (aigw, "winner")));
    cJSON *atts = cJSON_GetObjectItemCaseSensitive (aigw, "attempts");
    assert_int_equal (cJSON_GetArraySize (atts), 2);
    assert_string_equal (s_str (cJSON_GetArrayItem (atts, 0), "outcome"), "failed");
    assert_string_equal (s_str (cJSON_GetArrayItem (atts, 0), "error"), "upstream returned HTTP 500");
    assert_string_equal (s_str (cJSON_GetArrayItem (atts, 1), "error"), "worker_lost");
    cJSON_Delete (root);
    edge_reply_reset (&r);
}

//  Every target cooling: 503 cooldown with the broker's shortest wait as Retry-After,
//  skipped attempts with their code, a retry pointing at its attempt, flags.
static void test_cooldown_and_retries (void **state)
{
    (void) state;
    Aigw__AttemptInfo a[3];
    Aigw__AttemptInfo *ptrs[] = { &a[0], &a[1], &a[2] };
    s_attempt (&a[0], "fast-sim", AIGW__OUTCOME__OUTCOME_SKIPPED, 0, 0);
    a[0].attempt_id = 7;
    a[0].has_error = true;
    a[0].error = AIGW__ERROR_CODE__ERR_COOLDOWN;
    a[0].reason = "cooling down after failures";
    s_attempt (&a[1], "slow-sim", AIGW__OUTCOME__OUTCOME_SKIPPED, 0, 0);
    a[1].attempt_id = 8;
    a[1].has_error = true;
    a[1].error = AIGW__ERROR_CODE__ERR_COOLDOWN;
    Aigw__Error err = AIGW__ERROR__INIT;
    err.code = AIGW__ERROR_CODE__ERR_COOLDOWN;
    err.n_attempts = 2;
    err.attempts = ptrs;
    err.has_retry_after_ms = true;
    err.retry_after_ms = 2100;
    edge_reply_t r;
    assert_int_equal (edge_reply_error (&r, &err, CFG_POLICY_RACE, NULL), 0);
    assert_int_equal (r.status, 503);
    assert_int_equal (r.retry_after_s, 3);             // rounded up
    cJSON *root = s_parse_reply (&r);
    cJSON *e = cJSON_GetObjectItemCaseSensitive (root, "error");
    assert_string_equal (s_str (e, "code"), "cooldown");
    assert_string_equal (s_str (e, "type"), "service_unavailable");
    cJSON *atts = cJSON_GetObjectItemCaseSensitive (cJSON_GetObjectItemCaseSensitive (root, "aigw"),
                                                    "attempts");
    assert_string_equal (s_str (cJSON_GetArrayItem (atts, 0), "outcome"), "skipped");
    assert_string_equal (s_str (cJSON_GetArrayItem (atts, 0), "error_code"), "cooldown");
    assert_string_equal (s_str (cJSON_GetArrayItem (atts, 0), "error"), "cooling down after failures");
    assert_string_equal (s_str (cJSON_GetArrayItem (atts, 1), "error"), "cooldown");
    cJSON_Delete (root);
    edge_reply_reset (&r);

    //  A retry that won after a 503, a hedge, and the budget's flags
    s_attempt (&a[0], "fast-sim", AIGW__OUTCOME__OUTCOME_FAILED, 0, 10);
    a[0].attempt_id = 21;
    a[0].has_error = true;
    a[0].error = AIGW__ERROR_CODE__ERR_UPSTREAM;
    s_attempt (&a[1], "fast-sim", AIGW__OUTCOME__OUTCOME_WON, 50, 90);
    a[1].attempt_id = 22;
    a[1].has_retry_of = true;
    a[1].retry_of = 21;
    s_attempt (&a[2], "slow-sim", AIGW__OUTCOME__OUTCOME_CANCELLED, 60, 90);
    a[2].attempt_id = 23;
    a[2].has_hedge = a[2].hedge = true;
    Aigw__Result res = AIGW__RESULT__INIT;
    res.model = "fast-sim";
    res.has_response_json = true;
    res.response_json.data = (uint8_t *) s_upstream;
    res.response_json.len = strlen (s_upstream);
    res.n_attempts = 3;
    res.attempts = ptrs;
    res.has_retry_suppressed = res.retry_suppressed = true;
    assert_int_equal (edge_reply_result (&r, &res, CFG_POLICY_HEDGE, NULL), 0);
    root = s_parse_reply (&r);
    cJSON *aigw = cJSON_GetObjectItemCaseSensitive (root, "aigw");
    atts = cJSON_GetObjectItemCaseSensitive (aigw, "attempts");
    assert_string_equal (s_str (cJSON_GetArrayItem (atts, 0), "error_code"), "upstream_error");
    assert_null (cJSON_GetObjectItemCaseSensitive (cJSON_GetArrayItem (atts, 0), "retry_of"));
    assert_true (s_num (cJSON_GetArrayItem (atts, 1), "retry_of") == 0);
    assert_null (cJSON_GetObjectItemCaseSensitive (cJSON_GetArrayItem (atts, 1), "hedge"));
    assert_true (cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (cJSON_GetArrayItem (atts, 2),
                                                                 "hedge")));
    assert_true (cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (aigw, "retry_suppressed")));
    assert_null (cJSON_GetObjectItemCaseSensitive (aigw, "hedge_suppressed"));
    cJSON_Delete (root);
    edge_reply_reset (&r);
}

static void test_error_codes (void **state)
{
    (void) state;
    struct { Aigw__ErrorCode code; int status; const char *type; const char *words; } cases[] = {
        { AIGW__ERROR_CODE__ERR_TIMEOUT, 504, "timeout_error", "deadline" },
        { AIGW__ERROR_CODE__ERR_OVERLOADED, 429, "rate_limit_error", "overloaded" },
        { AIGW__ERROR_CODE__ERR_UNAVAILABLE, 503, "service_unavailable", "no worker" },
        { AIGW__ERROR_CODE__ERR_BAD_REQUEST, 400, "invalid_request_error", "" },
        { AIGW__ERROR_CODE__ERR_UNKNOWN_MODEL, 404, "invalid_request_error", "" },
        { AIGW__ERROR_CODE__ERR_INTERNAL, 500, "server_error", "" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Aigw__Error err = AIGW__ERROR__INIT;
        err.code = cases[i].code;
        edge_reply_t r;
        assert_int_equal (edge_reply_error (&r, &err, CFG_POLICY_RACE, NULL), 0);
        assert_int_equal (r.status, cases[i].status);
        cJSON *root = s_parse_reply (&r);
        cJSON *e = cJSON_GetObjectItemCaseSensitive (root, "error");
        assert_string_equal (s_str (e, "type"), cases[i].type);
        assert_non_null (strstr (s_str (e, "message"), cases[i].words));
        assert_null (cJSON_GetObjectItemCaseSensitive (root, "aigw"));   // no attempts
        cJSON_Delete (root);
        edge_reply_reset (&r);
    }
    //  The broker's own message wins over the default
    Aigw__Error err = AIGW__ERROR__INIT;
    err.code = AIGW__ERROR_CODE__ERR_BAD_REQUEST;
    err.message = "job id already in use";
    edge_reply_t r;
    assert_int_equal (edge_reply_error (&r, &err, CFG_POLICY_RACE, NULL), 0);
    assert_non_null (strstr (r.body, "job id already in use"));
    edge_reply_reset (&r);
}

//  One name per model: "model" becomes the configured winner, the provider's string
//  moves to aigw.upstream_model; nested "model" keys and string contents stay.
static void test_one_model_name (void **state)
{
    (void) state;
    const char *json = "{\"id\":\"x\",\"choices\":[{\"message\":{\"content\":"
                       "\"{\\\"model\\\":\\\"fake\\\"}\"}}],\"nested\":{\"model\":\"deep\"},"
                       "\"model\" : \"gpt-4o-2024-08-06\\\"q\",\"n\":1}";
    Aigw__Result res = AIGW__RESULT__INIT;
    res.model = (char *) "fast";
    res.has_response_json = true;
    res.response_json.data = (uint8_t *) json;
    res.response_json.len = strlen (json);
    edge_reply_t r;
    assert_int_equal (edge_reply_result (&r, &res, CFG_POLICY_RACE, NULL), 0);
    cJSON *root = s_parse_reply (&r);
    assert_string_equal (s_str (root, "model"), "fast");
    assert_string_equal (s_str (cJSON_GetObjectItemCaseSensitive (root, "nested"), "model"),
                         "deep");
    assert_non_null (strstr (r.body, "{\\\"model\\\":\\\"fake\\\"}"));
    cJSON *aigw = cJSON_GetObjectItemCaseSensitive (root, "aigw");
    assert_string_equal (s_str (aigw, "upstream_model"), "gpt-4o-2024-08-06\"q");
    assert_true (s_num (root, "n") == 1);
    cJSON_Delete (root);
    edge_reply_reset (&r);
    //  No top-level "model" (or not a string): the body is left as it is
    const char *other[] = { "{\"a\":{\"model\":\"deep\"}}", "{\"model\":7}", "{\"model\":null}",
                            "{\"x\":\"model\",\"y\":\"z\"}" };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        res.response_json.data = (uint8_t *) other[i];
        res.response_json.len = strlen (other[i]);
        assert_int_equal (edge_reply_result (&r, &res, CFG_POLICY_RACE, NULL), 0);
        root = s_parse_reply (&r);
        assert_null (cJSON_GetObjectItemCaseSensitive (cJSON_GetObjectItemCaseSensitive (root, "aigw"),
                                                       "upstream_model"));
        assert_false (cJSON_IsString (cJSON_GetObjectItemCaseSensitive (root, "model")));
        cJSON_Delete (root);
        edge_reply_reset (&r);
    }
}

//  What the providers said decides the status (docs/errors.md).
static void test_provider_mapping (void **state)
{
    (void) state;
    Aigw__AttemptInfo a[2] = { AIGW__ATTEMPT_INFO__INIT, AIGW__ATTEMPT_INFO__INIT };
    Aigw__AttemptInfo *ptrs[2] = { &a[0], &a[1] };
    for (int i = 0; i < 2; i++) {
        a[i].target = (char *) (i ? "b" : "a");
        a[i].outcome = AIGW__OUTCOME__OUTCOME_FAILED;
        a[i].has_error = a[i].has_upstream_status = true;
    }
    a[0].error = AIGW__ERROR_CODE__ERR_RATE_LIMITED;
    a[0].upstream_status = 429;
    a[0].has_retry_after_ms = true;
    a[0].retry_after_ms = 7000;
    a[1].error = AIGW__ERROR_CODE__ERR_RATE_LIMITED;
    a[1].upstream_status = 429;
    a[1].has_retry_after_ms = true;
    a[1].retry_after_ms = 2001;                 // rounds up to 3 s
    Aigw__Error err = AIGW__ERROR__INIT;
    err.code = AIGW__ERROR_CODE__ERR_RATE_LIMITED;
    err.n_attempts = 2;
    err.attempts = ptrs;
    edge_reply_t r;
    assert_int_equal (edge_reply_error (&r, &err, CFG_POLICY_RACE, NULL), 0);
    assert_int_equal (r.status, 429);
    assert_int_equal (r.retry_after_s, 3);
    cJSON *root = s_parse_reply (&r);
    cJSON *e = cJSON_GetObjectItemCaseSensitive (root, "error");
    assert_string_equal (s_str (e, "code"), "rate_limit_exceeded");
    cJSON *atts = cJSON_GetObjectItemCaseSensitive (cJSON_GetObjectItemCaseSensitive (root, "aigw"),
                                                    "attempts");
    assert_true (s_num (cJSON_GetArrayItem (atts, 0), "upstream_status") == 429);
    assert_true (s_num (cJSON_GetArrayItem (atts, 0), "retry_after_ms") == 7000);
    cJSON_Delete (root);
    edge_reply_reset (&r);
    //  Every provider refused the request: 400 with the provider's own code
    for (int i = 0; i < 2; i++) {
        a[i].error = AIGW__ERROR_CODE__ERR_BAD_REQUEST;
        a[i].upstream_status = 400;
        a[i].has_retry_after_ms = false;
    }
    a[1].upstream_code = (char *) "context_length_exceeded";
    err.code = AIGW__ERROR_CODE__ERR_BAD_REQUEST;
    assert_int_equal (edge_reply_error (&r, &err, CFG_POLICY_RACE, NULL), 0);
    assert_int_equal (r.status, 400);
    assert_int_equal (r.retry_after_s, 0);
    root = s_parse_reply (&r);
    e = cJSON_GetObjectItemCaseSensitive (root, "error");
    assert_string_equal (s_str (e, "type"), "invalid_request_error");
    assert_string_equal (s_str (e, "code"), "context_length_exceeded");
    cJSON_Delete (root);
    edge_reply_reset (&r);
    //  The provider refused the gateway's key: 502, never 401 to the client
    err.code = AIGW__ERROR_CODE__ERR_UPSTREAM_AUTH;
    assert_int_equal (edge_reply_error (&r, &err, CFG_POLICY_RACE, NULL), 0);
    assert_int_equal (r.status, 502);
    root = s_parse_reply (&r);
    assert_string_equal (s_str (cJSON_GetObjectItemCaseSensitive (root, "error"), "code"),
                         "upstream_auth_failed");
    cJSON_Delete (root);
    edge_reply_reset (&r);
}

static void test_simple_error (void **state)
{
    (void) state;
    edge_reply_t r;
    assert_int_equal (edge_reply_simple (&r, 404, "model_not_found", "The model 'x' \"quoted\""), 0);
    assert_int_equal (r.status, 404);
    cJSON *root = s_parse_reply (&r);
    cJSON *e = cJSON_GetObjectItemCaseSensitive (root, "error");
    assert_string_equal (s_str (e, "message"), "The model 'x' \"quoted\"");
    assert_string_equal (s_str (e, "type"), "invalid_request_error");
    assert_string_equal (s_str (e, "code"), "model_not_found");
    cJSON_Delete (root);
    edge_reply_reset (&r);
}

static edge_status_t *s_status (void)
{
    Aigw__ModelStatus m[3];
    Aigw__ModelStatus *ptrs[] = { &m[0], &m[1], &m[2] };
    const char *names[] = { "slow-sim", "fast-sim", "agent/deliberate" };
    uint32_t workers[] = { 0, 2, 1 };
    for (int i = 0; i < 3; i++) {
        aigw__model_status__init (&m[i]);
        m[i].name = (char *) names[i];
        m[i].has_workers = true;
        m[i].workers = workers[i];
    }
    Aigw__BrokerStatus st = AIGW__BROKER_STATUS__INIT;
    st.n_models = 3;
    st.models = ptrs;
    st.has_workers = true;
    st.workers = 3;
    return edge_status_new (&st, 1);
}

static void test_models_list (void **state)
{
    (void) state;
    char err[256];
    cfg_t *cfg = cfg_parse ("models\n    fast-sim\n        provider = sim\n"
                            "    slow-sim\n        provider = sim\n"
                            "groups\n    quick\n        targets = \"fast-sim, slow-sim\"\n"
                            "    dead\n        targets = slow-sim\n", "t", err, sizeof err);
    assert_non_null (cfg);
    edge_status_t *st = s_status ();
    assert_true (edge_status_live (st, "fast-sim"));
    assert_false (edge_status_live (st, "slow-sim"));
    assert_non_null (edge_status_model (st, "slow-sim"));
    assert_null (edge_status_model (st, "nope"));
    edge_reply_t r;
    assert_int_equal (edge_reply_models (&r, cfg, st), 0);
    assert_int_equal (r.status, 200);
    cJSON *root = s_parse_reply (&r);
    assert_string_equal (s_str (root, "object"), "list");
    cJSON *data = cJSON_GetObjectItemCaseSensitive (root, "data");
    //  agent/deliberate and fast-sim (live), quick (a live target); not slow-sim or dead
    assert_int_equal (cJSON_GetArraySize (data), 3);
    assert_null (strstr (r.body, "\"slow-sim\""));
    assert_null (strstr (r.body, "\"dead\""));
    cJSON *first = cJSON_GetArrayItem (data, 0);
    assert_string_equal (s_str (first, "id"), "agent/deliberate");
    assert_string_equal (s_str (first, "object"), "model");
    assert_string_equal (s_str (first, "owned_by"), "aigw");
    assert_true (s_num (first, "created") == 0);
    cJSON *group = cJSON_GetArrayItem (data, 2);
    assert_string_equal (s_str (group, "id"), "quick");
    cJSON *ga = cJSON_GetObjectItemCaseSensitive (group, "aigw");
    assert_string_equal (s_str (ga, "kind"), "group");
    assert_true (s_num (ga, "workers") == 2);
    cJSON_Delete (root);
    edge_reply_reset (&r);

    //  Nothing live: an empty list
    assert_int_equal (edge_reply_models (&r, cfg, NULL), 0);
    assert_string_equal (r.body, "{\"object\":\"list\",\"data\":[]}");
    edge_reply_reset (&r);

    //  Readiness
    assert_int_equal (edge_reply_ready (&r, false, st, "tcp://x:1"), 0);
    assert_int_equal (r.status, 503);
    assert_non_null (strstr (r.body, "not answering"));
    edge_reply_reset (&r);
    assert_int_equal (edge_reply_ready (&r, true, st, "tcp://x:1"), 0);
    assert_int_equal (r.status, 200);
    assert_non_null (strstr (r.body, "\"ready\""));
    edge_reply_reset (&r);
    edge_status_t *none = edge_status_new (NULL, 1);
    assert_int_equal (edge_reply_ready (&r, true, none, "tcp://x:1"), 0);
    assert_int_equal (r.status, 503);
    assert_non_null (strstr (r.body, "no worker"));
    edge_reply_reset (&r);
    edge_status_release (&none);

    //  Reference counting
    edge_status_t *again = edge_status_ref (st);
    edge_status_release (&st);
    assert_null (st);
    assert_true (edge_status_live (again, "fast-sim"));
    edge_status_release (&again);
    cfg_destroy (&cfg);
}

//  Times are milliseconds with up to three decimals, printed without floating point.
static void test_ms_format (void **state)
{
    const struct { uint64_t us; const char *text; } cases[] = {
        { 0, "0" }, { 5, "0.005" }, { 50, "0.05" }, { 100, "0.1" }, { 58668, "58.668" },
        { 120000, "120" }, { 1000001, "1000.001" },
        { 18446744073709551615ULL, "18446744073709551.615" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *a = edge_reply_aigw_json ("m", CFG_POLICY_RACE, true, cases[i].us, NULL, 0, NULL, NULL);
        assert_non_null (a);
        char *text = cJSON_PrintUnformatted (a);
        char want[96];
        snprintf (want, sizeof want, "\"latency_ms\":%s,", cases[i].text);
        if (!strstr (text, want))
            fail_msg ("%llu us printed as %s, want %s", (unsigned long long) cases[i].us, text, want);
        cJSON *back = cJSON_Parse (text);
        assert_non_null (back);                 // still valid JSON
        cJSON_Delete (back);
        free (text);
        cJSON_Delete (a);
    }
    cJSON *a = edge_reply_aigw_json ("m", CFG_POLICY_RACE, false, 0, NULL, 0, NULL, NULL);
    char *text = cJSON_PrintUnformatted (a);
    assert_non_null (strstr (text, "\"latency_ms\":null"));
    free (text);
    cJSON_Delete (a);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_status_mapping),
        cmocka_unit_test (test_success_body),
        cmocka_unit_test (test_success_edge_cases),
        cmocka_unit_test (test_error_with_attempts),
        cmocka_unit_test (test_error_codes),
        cmocka_unit_test (test_cooldown_and_retries),
        cmocka_unit_test (test_one_model_name),
        cmocka_unit_test (test_provider_mapping),
        cmocka_unit_test (test_simple_error),
        cmocka_unit_test (test_models_list),
        cmocka_unit_test (test_ms_format),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
