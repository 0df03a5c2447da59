// End-to-end test of the edge's HTTP layer in one process: civetweb + broker link +
// fake broker on loopback, driven by libcurl (status codes, bodies, headers, keep-alive).
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <civetweb.h>
#include <curl/curl.h>

#include "http.h"
#include "link.h"
#include "fake_broker.h"
#include "aclock.h"
#include "log.h"

typedef struct {
    fake_broker_t *fb;
    cfg_t *cfg;
    edge_link_t *link;
    edge_http_t *http;
    CURL *curl;                         // one handle: connections are reused
    char base[64];
} s_fixture_t;

typedef struct {
    long status;
    char body[16384];
    size_t len;
    char winner[128];
    char connection[32];
    long new_connections;
} s_resp_t;

static s_fixture_t *s_f;

static void s_sleep_ms (int ms)
{
    struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
    nanosleep (&ts, NULL);
}

static size_t s_on_body (char *data, size_t size, size_t n, void *arg)
{
    s_resp_t *r = arg;
    size_t len = size * n;
    size_t room = sizeof r->body - 1 - r->len;
    size_t take = len < room ? len : room;
    memcpy (r->body + r->len, data, take);
    r->len += take;
    r->body[r->len] = 0;
    return len;
}

static void s_header_value (const char *line, size_t len, const char *name, char *out, size_t size)
{
    size_t nlen = strlen (name);
    if (len <= nlen || strncasecmp (line, name, nlen) != 0)
        return;
    const char *v = line + nlen;
    size_t vlen = len - nlen;
    while (vlen && (*v == ' '))
        v++, vlen--;
    while (vlen && (v[vlen - 1] == '\n' || v[vlen - 1] == '\r'))
        vlen--;
    snprintf (out, size, "%.*s", (int) vlen, v);
}

static size_t s_on_header (char *data, size_t size, size_t n, void *arg)
{
    s_resp_t *r = arg;
    size_t len = size * n;
    s_header_value (data, len, "x-aigw-winner:", r->winner, sizeof r->winner);
    s_header_value (data, len, "connection:", r->connection, sizeof r->connection);
    return len;
}

//  One request on the shared handle. body NULL = no body. extra: one header line or NULL.
static void s_request (const char *method, const char *path, const char *body, const char *extra,
                       s_resp_t *r)
{
    CURL *c = s_f->curl;
    memset (r, 0, sizeof *r);
    char url[256];
    snprintf (url, sizeof url, "%s%s", s_f->base, path);
    curl_easy_reset (c);
    curl_easy_setopt (c, CURLOPT_URL, url);
    curl_easy_setopt (c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt (c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt (c, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt (c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt (c, CURLOPT_TIMEOUT_MS, 10000L);
    struct curl_slist *headers = curl_slist_append (NULL, "Content-Type: application/json");
    if (extra)
        headers = curl_slist_append (headers, extra);
    curl_easy_setopt (c, CURLOPT_HTTPHEADER, headers);
    if (body) {
        curl_easy_setopt (c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt (c, CURLOPT_POSTFIELDSIZE, (long) strlen (body));
    }
    CURLcode rc = curl_easy_perform (c);
    curl_slist_free_all (headers);
    if (rc != CURLE_OK)
        fail_msg ("%s %s: %s", method, path, curl_easy_strerror (rc));
    curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo (c, CURLINFO_NUM_CONNECTS, &r->new_connections);
}

static void s_chat (const char *body, s_resp_t *r)
{
    s_request ("POST", "/v1/chat/completions", body, NULL, r);
}

static bool s_wait_link (bool want)
{
    for (int i = 0; i < 600; i++) {
        if (edge_link_up (s_f->link) == want)
            return true;
        s_sleep_ms (5);
    }
    return false;
}

static int s_setup (void **state)
{
    log_init ("edge-test", LOG_LVL_WARN);
    mg_init_library (0);
    curl_global_init (CURL_GLOBAL_DEFAULT);
    s_f = calloc (1, sizeof *s_f);
    s_f->fb = fake_broker_new ("tcp://127.0.0.1:*", "fast-sim,slow-sim,agent/deliberate,fail,busy,"
                               "timeout,nojson,never", 1);
    char err[256];
    s_f->cfg = cfg_parse ("broker\n    heartbeat_ms = 50\n    liveness = 3\n"
                          "edge\n    listen = 127.0.0.1:0\n    threads = 8\n    max_body = 1024\n"
                          "models\n    fast-sim\n        provider = sim\n"
                          "    slow-sim\n        provider = sim\n"
                          "groups\n    quick\n        targets = \"fast-sim, slow-sim\"\n",
                          "test", err, sizeof err);
    if (!s_f->fb || !s_f->cfg)
        return -1;
    snprintf (s_f->cfg->edge.broker, sizeof s_f->cfg->edge.broker, "%s",
              fake_broker_endpoint (s_f->fb));
    s_f->link = edge_link_new (s_f->cfg);
    s_f->http = s_f->link ? edge_http_new (s_f->cfg, s_f->link) : NULL;
    if (!s_f->http || edge_http_port (s_f->http) <= 0 || !s_wait_link (true))
        return -1;
    snprintf (s_f->base, sizeof s_f->base, "http://127.0.0.1:%d", edge_http_port (s_f->http));
    s_f->curl = curl_easy_init ();
    *state = s_f;
    return 0;
}

static int s_teardown (void **state)
{
    curl_easy_cleanup (s_f->curl);
    edge_http_destroy (&s_f->http);
    edge_link_destroy (&s_f->link);
    fake_broker_destroy (&s_f->fb);
    cfg_destroy (&s_f->cfg);
    free (s_f);
    curl_global_cleanup ();
    mg_exit_library ();
    return 0;
}

static void test_health (void **state)
{
    s_resp_t r;
    s_request ("GET", "/healthz", NULL, NULL, &r);
    assert_int_equal (r.status, 200);
    assert_string_equal (r.body, "{\"status\":\"ok\"}");
    s_request ("GET", "/readyz", NULL, NULL, &r);
    assert_int_equal (r.status, 200);
    assert_non_null (strstr (r.body, "\"ready\""));
    s_request ("GET", "/v1/models", NULL, NULL, &r);
    assert_int_equal (r.status, 200);
    assert_non_null (strstr (r.body, "\"object\":\"list\""));
    assert_non_null (strstr (r.body, "\"id\":\"agent/deliberate\""));
    assert_non_null (strstr (r.body, "\"id\":\"quick\""));
}

static void test_chat_success (void **state)
{
    s_resp_t r;
    s_chat ("{\"model\":\"quick\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r);
    assert_int_equal (r.status, 200);
    assert_string_equal (r.winner, "fast-sim");
    assert_non_null (strstr (r.body, "\"choices\""));
    assert_non_null (strstr (r.body, "\"aigw\":{\"winner\":\"fast-sim\",\"policy\":\"race\""));
    assert_non_null (strstr (r.body, "\"outcome\":\"cancelled\""));
    fake_broker_job_t last;
    fake_broker_last_job (s_f->fb, &last);
    assert_string_equal (last.targets, "fast-sim,slow-sim");
    //  "aigw" overrides reach the broker, and are not forwarded upstream
    s_chat ("{\"model\":\"agent/deliberate\",\"messages\":[{\"role\":\"user\"}],"
            "\"aigw\":{\"policy\":\"fallback\",\"targets\":[\"slow-sim\",\"fast-sim\"],\"deadline_ms\":900}}", &r);
    assert_int_equal (r.status, 200);
    assert_string_equal (r.winner, "slow-sim");
    fake_broker_last_job (s_f->fb, &last);
    assert_string_equal (last.targets, "slow-sim,fast-sim");
    assert_int_equal (last.policy, AIGW__POLICY__POLICY_FALLBACK);
    assert_int_equal (last.deadline_ms, 900);
    assert_null (strstr (last.payload, "aigw"));
}

static void test_keep_alive (void **state)
{
    s_resp_t r;
    s_request ("GET", "/healthz", NULL, NULL, &r);
    for (int i = 0; i < 5; i++) {
        s_chat ("{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}]}", &r);
        assert_int_equal (r.status, 200);
        assert_string_equal (r.connection, "keep-alive");
        assert_int_equal (r.new_connections, 0);        // the same connection again
        s_chat ("{\"model\":\"nope\",\"messages\":[{\"role\":\"user\"}]}", &r);
        assert_int_equal (r.status, 404);
        assert_int_equal (r.new_connections, 0);
    }
    //  The client asks to close: we say so
    s_request ("GET", "/healthz", NULL, "Connection: close", &r);
    assert_string_equal (r.connection, "close");
}

static void test_client_errors (void **state)
{
    s_resp_t r;
    s_chat ("{not json", &r);
    assert_int_equal (r.status, 400);
    assert_non_null (strstr (r.body, "\"type\":\"invalid_request_error\""));
    s_chat ("{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"stream\":true}", &r);
    assert_int_equal (r.status, 400);
    assert_non_null (strstr (r.body, "streaming is not supported yet"));
    s_chat ("{\"model\":\"gpt-17\",\"messages\":[{\"role\":\"user\"}]}", &r);
    assert_int_equal (r.status, 404);
    assert_non_null (strstr (r.body, "\"code\":\"model_not_found\""));
    s_request ("GET", "/v1/chat/completions", NULL, NULL, &r);
    assert_int_equal (r.status, 405);
    assert_non_null (strstr (r.body, "method_not_allowed"));
    s_request ("DELETE", "/healthz", NULL, NULL, &r);
    assert_int_equal (r.status, 405);
    s_request ("GET", "/nowhere", NULL, NULL, &r);
    assert_int_equal (r.status, 404);
    assert_non_null (strstr (r.body, "\"code\":\"not_found\""));
    s_request ("GET", "/v1/other", NULL, NULL, &r);
    assert_int_equal (r.status, 404);
    s_request ("GET", "/healthz/more", NULL, NULL, &r);
    assert_int_equal (r.status, 404);
}

static void test_too_large (void **state)
{
    char big[4096];
    memset (big, ' ', sizeof big - 1);
    big[sizeof big - 1] = 0;
    s_resp_t r;
    //  Declared Content-Length over the limit: refused unread, connection closed
    s_chat (big, &r);
    assert_int_equal (r.status, 413);
    assert_string_equal (r.connection, "close");
    assert_non_null (strstr (r.body, "request_too_large"));
    //  Chunked (no Content-Length): refused once more than the limit was read
    s_request ("POST", "/v1/chat/completions", big, "Transfer-Encoding: chunked", &r);
    assert_int_equal (r.status, 413);
    //  Chunked and small: fine
    s_request ("POST", "/v1/chat/completions",
               "{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}]}",
               "Transfer-Encoding: chunked", &r);
    assert_int_equal (r.status, 200);
}

static void test_upstream_errors (void **state)
{
    s_resp_t r;
    s_chat ("{\"model\":\"fail,fast-sim\",\"messages\":[{\"role\":\"user\"}]}", &r);
    assert_int_equal (r.status, 502);
    assert_non_null (strstr (r.body, "\"type\":\"upstream_error\""));
    assert_non_null (strstr (r.body, "\"outcome\":\"failed\""));
    assert_non_null (strstr (r.body, "fail: upstream returned HTTP 500"));
    s_chat ("{\"model\":\"busy\",\"messages\":[{\"role\":\"user\"}]}", &r);
    assert_int_equal (r.status, 429);
    s_chat ("{\"model\":\"timeout\",\"messages\":[{\"role\":\"user\"}]}", &r);
    assert_int_equal (r.status, 504);
    s_chat ("{\"model\":\"nojson\",\"messages\":[{\"role\":\"user\"}]}", &r);
    assert_int_equal (r.status, 502);
    assert_non_null (strstr (r.body, "bad_upstream_response"));
}

static void test_edge_deadline (void **state)
{
    //  The broker never answers: 504 after deadline + grace, and a CANCEL goes out
    fake_broker_stats_t before, after;
    fake_broker_stats (s_f->fb, &before);
    s_resp_t r;
    int64_t start = aclock_now_ms ();
    s_chat ("{\"model\":\"never\",\"messages\":[{\"role\":\"user\"}],\"aigw\":{\"deadline_ms\":100}}", &r);
    int64_t took = aclock_now_ms () - start;
    assert_int_equal (r.status, 504);
    assert_true (took >= 2000 && took < 5000);
    for (int i = 0; i < 200; i++) {
        fake_broker_stats (s_f->fb, &after);
        if (after.cancels > before.cancels)
            break;
        s_sleep_ms (5);
    }
    assert_int_equal (after.cancels, before.cancels + 1);
    edge_http_stats_t hs;
    edge_http_stats (s_f->http, &hs);
    assert_true (hs.timeouts >= 1);
}

static void test_broker_down (void **state)
{
    fake_broker_set_silent (s_f->fb, true);
    assert_true (s_wait_link (false));
    s_resp_t r;
    int64_t start = aclock_now_ms ();
    s_chat ("{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}]}", &r);
    assert_int_equal (r.status, 503);
    assert_true (aclock_now_ms () - start < 500);
    assert_non_null (strstr (r.body, "broker_unavailable"));
    //  A dynamic name is unknown while the broker is away: still 503, not 404
    s_chat ("{\"model\":\"agent/deliberate\",\"messages\":[{\"role\":\"user\"}]}", &r);
    assert_int_equal (r.status, 503);
    s_request ("GET", "/readyz", NULL, NULL, &r);
    assert_int_equal (r.status, 503);
    s_request ("GET", "/v1/models", NULL, NULL, &r);
    assert_string_equal (r.body, "{\"object\":\"list\",\"data\":[]}");
    s_request ("GET", "/healthz", NULL, NULL, &r);
    assert_int_equal (r.status, 200);
    fake_broker_set_silent (s_f->fb, false);
    assert_true (s_wait_link (true));
    s_chat ("{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}]}", &r);
    assert_int_equal (r.status, 200);
}

static void test_draining (void **state)
{
    edge_http_drain (s_f->http);
    s_resp_t r;
    s_chat ("{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}]}", &r);
    assert_int_equal (r.status, 503);
    assert_non_null (strstr (r.body, "shutting down"));
    assert_string_equal (r.connection, "close");
    assert_int_equal (edge_http_in_flight (s_f->http), 0);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_health),
        cmocka_unit_test (test_chat_success),
        cmocka_unit_test (test_keep_alive),
        cmocka_unit_test (test_client_errors),
        cmocka_unit_test (test_too_large),
        cmocka_unit_test (test_upstream_errors),
        cmocka_unit_test (test_edge_deadline),
        cmocka_unit_test (test_broker_down),
        cmocka_unit_test (test_draining),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
