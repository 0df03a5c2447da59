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
    char ctype[64];
    char te[32];
    long new_connections;
    const char *abort_at;               // streams: stop reading once the body has this
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
    if (r->abort_at && strstr (r->body, r->abort_at))
        return 0;                       // curl aborts and closes the connection
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
    s_header_value (data, len, "content-type:", r->ctype, sizeof r->ctype);
    s_header_value (data, len, "transfer-encoding:", r->te, sizeof r->te);
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
                               "timeout,nojson,never,cut,gap,badchunk,drip,tools", 1);
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
    s_chat ("{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],\"stream\":1}", &r);
    assert_int_equal (r.status, 400);
    assert_non_null (strstr (r.body, "stream: must be a boolean"));
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

//  --------------------------------------------------------------- streaming

//  A streaming request on the shared handle; tolerates the aborts streams need.
//  abort_at: stop reading (curl closes the connection) once the body contains it.
static CURLcode s_stream (const char *body, const char *abort_at, bool http10, long timeout_ms,
                          s_resp_t *r)
{
    CURL *c = s_f->curl;
    memset (r, 0, sizeof *r);
    r->abort_at = abort_at;
    char url[256];
    snprintf (url, sizeof url, "%s/v1/chat/completions", s_f->base);
    curl_easy_reset (c);
    curl_easy_setopt (c, CURLOPT_URL, url);
    curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt (c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt (c, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt (c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt (c, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (http10)
        curl_easy_setopt (c, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_0);
    struct curl_slist *headers = curl_slist_append (NULL, "Content-Type: application/json");
    curl_easy_setopt (c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt (c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt (c, CURLOPT_POSTFIELDSIZE, (long) strlen (body));
    CURLcode rc = curl_easy_perform (c);
    curl_slist_free_all (headers);
    curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo (c, CURLINFO_NUM_CONNECTS, &r->new_connections);
    return rc;
}

static int s_count (const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr (hay, needle); p; p = strstr (p + 1, needle))
        n++;
    return n;
}

//  Wait until the fake broker has seen more than `before` CANCELs; returns the ms waited.
static int64_t s_wait_cancel (uint64_t before)
{
    int64_t t0 = aclock_now_ms ();
    fake_broker_stats_t st;
    for (int i = 0; i < 1000; i++) {
        fake_broker_stats (s_f->fb, &st);
        if (st.cancels > before)
            return aclock_now_ms () - t0;
        s_sleep_ms (1);
    }
    fail_msg ("no CANCEL reached the broker");
    return -1;
}

static uint64_t s_cancels (void)
{
    fake_broker_stats_t st;
    fake_broker_stats (s_f->fb, &st);
    return st.cancels;
}

static void test_stream_success (void **state)
{
    s_resp_t r;
    assert_int_equal (s_stream ("{\"model\":\"quick\",\"messages\":[{\"role\":\"user\"}],"
                                "\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
                                NULL, false, 5000, &r), CURLE_OK);
    assert_int_equal (r.status, 200);
    assert_string_equal (r.ctype, "text/event-stream; charset=utf-8");
    assert_string_equal (r.te, "chunked");
    assert_string_equal (r.connection, "keep-alive");
    assert_string_equal (r.winner, "");                 // not known when headers go out
    fake_broker_job_t last;
    fake_broker_last_job (s_f->fb, &last);
    assert_true (last.stream);
    //  4 chunks + summary + usage + [DONE]
    assert_int_equal (s_count (r.body, "data: "), 7);
    assert_int_equal (s_count (r.body, "\"aigw\":{\"winner\":\"fast-sim\"}"), 1);
    assert_int_equal (s_count (r.body, "\"role\":\"assistant\""), 1);
    //  6 chunks name the model, and the summary's attempt list once more
    assert_int_equal (s_count (r.body, "\"model\":\"fast-sim\""), 7);
    assert_null (strstr (r.body, "upstream-fast-sim"));
    assert_non_null (strstr (r.body, "\"choices\":[],\"aigw\":{\"winner\":\"fast-sim\",\"policy\":\"race\""));
    assert_non_null (strstr (r.body, "\"choices\":[],\"usage\":{\"prompt_tokens\":3,"));
    const char *done = "data: [DONE]\n\n";
    assert_string_equal (r.body + r.len - strlen (done), done);
    assert_null (strstr (r.body, "event: error"));
    //  The connection stays open for the next request
    s_chat ("{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}]}", &r);
    assert_int_equal (r.status, 200);
    assert_int_equal (r.new_connections, 0);
    //  Tool calls pass through, and the first delta gets the role
    assert_int_equal (s_stream ("{\"model\":\"tools\",\"messages\":[{\"role\":\"user\"}],"
                                "\"stream\":true}", NULL, false, 5000, &r), CURLE_OK);
    assert_non_null (strstr (r.body, "\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\""));
    assert_non_null (strstr (r.body, "\"role\":\"assistant\"}"));
    assert_null (strstr (r.body, "\"usage\""));
    assert_int_equal (r.new_connections, 0);
    edge_http_stats_t hs;
    edge_http_stats (s_f->http, &hs);
    assert_true (hs.streams >= 2);
}

static void test_stream_http10 (void **state)
{
    s_resp_t r;
    assert_int_equal (s_stream ("{\"model\":\"fast-sim\",\"messages\":[{\"role\":\"user\"}],"
                                "\"stream\":true}", NULL, true, 5000, &r), CURLE_OK);
    assert_int_equal (r.status, 200);
    assert_string_equal (r.te, "");
    assert_string_equal (r.connection, "close");
    const char *done = "data: [DONE]\n\n";
    assert_string_equal (r.body + r.len - strlen (done), done);
}

static void test_stream_failures (void **state)
{
    s_resp_t r;
    //  Before the first chunk: an error event with the attempts, no [DONE]
    assert_int_equal (s_stream ("{\"model\":\"fail,fast-sim\",\"messages\":[{\"role\":\"user\"}],"
                                "\"stream\":true}", NULL, false, 5000, &r), CURLE_OK);
    assert_int_equal (r.status, 200);
    assert_null (strstr (r.body, "[DONE]"));
    assert_null (strstr (r.body, "data: {\"id\""));
    assert_non_null (strstr (r.body, "event: error\ndata: {\"error\":{\"message\":"));
    assert_non_null (strstr (r.body, "\"code\":\"upstream_error\""));
    assert_non_null (strstr (r.body, "\"winner\":null"));
    assert_non_null (strstr (r.body, "upstream returned HTTP 500"));
    //  After chunks: the error event names the winner
    assert_int_equal (s_stream ("{\"model\":\"cut\",\"messages\":[{\"role\":\"user\"}],"
                                "\"stream\":true}", NULL, false, 5000, &r), CURLE_OK);
    assert_int_equal (s_count (r.body, "data: {\"id\""), 2);
    assert_non_null (strstr (r.body, "event: error\ndata: "));
    assert_non_null (strstr (r.body, "stream failed after 2 chunks"));
    assert_non_null (strstr (r.body, "\"winner\":\"cut\""));
    assert_null (strstr (r.body, "[DONE]"));
    assert_int_equal (r.new_connections, 0);            // ended cleanly: kept alive
    //  A lost chunk: never passed off as a complete answer; the job is cancelled
    uint64_t before = s_cancels ();
    assert_int_equal (s_stream ("{\"model\":\"gap\",\"messages\":[{\"role\":\"user\"}],"
                                "\"stream\":true}", NULL, false, 5000, &r), CURLE_OK);
    assert_non_null (strstr (r.body, "\"code\":\"stream_interrupted\""));
    assert_null (strstr (r.body, "[DONE]"));
    s_wait_cancel (before);
    //  A chunk that is not JSON
    assert_int_equal (s_stream ("{\"model\":\"badchunk\",\"messages\":[{\"role\":\"user\"}],"
                                "\"stream\":true}", NULL, false, 5000, &r), CURLE_OK);
    assert_non_null (strstr (r.body, "\"code\":\"bad_upstream_response\""));
    assert_null (strstr (r.body, "[DONE]"));
    //  Refused before the stream starts: a plain JSON error
    assert_int_equal (s_stream ("{\"model\":\"nope\",\"messages\":[{\"role\":\"user\"}],"
                                "\"stream\":true}", NULL, false, 5000, &r), CURLE_OK);
    assert_int_equal (r.status, 404);
    assert_string_equal (r.ctype, "application/json");
}

static void test_stream_keepalive_then_disconnect (void **state)
{
    //  Nothing comes: ": keep-alive" after ~1 s; the client then hangs up and the job
    //  is cancelled at once
    uint64_t before = s_cancels ();
    s_resp_t r;
    int64_t t0 = aclock_now_ms ();
    CURLcode rc = s_stream ("{\"model\":\"never\",\"messages\":[{\"role\":\"user\"}],"
                            "\"stream\":true}", ": keep-alive\n\n", false, 5000, &r);
    int64_t took = aclock_now_ms () - t0;
    assert_int_equal (rc, CURLE_WRITE_ERROR);
    assert_int_equal (r.status, 200);
    assert_true (took >= 900 && took < 2000);
    int64_t waited = s_wait_cancel (before);
    assert_true (waited < 100);
}

static void test_stream_disconnect_mid (void **state)
{
    uint64_t before = s_cancels ();
    edge_http_stats_t hs0, hs1;
    edge_http_stats (s_f->http, &hs0);
    s_resp_t r;
    CURLcode rc = s_stream ("{\"model\":\"drip\",\"messages\":[{\"role\":\"user\"}],"
                            "\"stream\":true}", "\" drop\"", false, 5000, &r);
    assert_int_equal (rc, CURLE_WRITE_ERROR);
    int64_t waited = s_wait_cancel (before);
    assert_true (waited < 100);
    for (int i = 0; i < 100; i++) {
        edge_http_stats (s_f->http, &hs1);
        if (hs1.client_gone > hs0.client_gone)
            break;
        s_sleep_ms (5);
    }
    assert_int_equal (hs1.client_gone, hs0.client_gone + 1);
}

static void test_nonstream_disconnect (void **state)
{
    //  A non-streaming client that gives up: the edge notices the hang-up and cancels
    uint64_t before = s_cancels ();
    s_resp_t r;
    CURLcode rc = s_stream ("{\"model\":\"never\",\"messages\":[{\"role\":\"user\"}]}",
                            NULL, false, 200, &r);
    assert_int_equal (rc, CURLE_OPERATION_TIMEDOUT);
    int64_t waited = s_wait_cancel (before);
    assert_true (waited < 100);
}

static void test_stream_deadline (void **state)
{
    s_resp_t r;
    int64_t t0 = aclock_now_ms ();
    assert_int_equal (s_stream ("{\"model\":\"never\",\"messages\":[{\"role\":\"user\"}],"
                                "\"stream\":true,\"aigw\":{\"deadline_ms\":100}}",
                                NULL, false, 6000, &r), CURLE_OK);
    int64_t took = aclock_now_ms () - t0;
    if (took < 2000 || took >= 3500)
        fail_msg ("took %lld ms: %s", (long long) took, r.body);
    assert_int_equal (s_count (r.body, ": keep-alive\n\n"), 2);
    assert_non_null (strstr (r.body, "event: error\ndata: {\"error\":{\"message\":\"no answer before the deadline\""));
    assert_null (strstr (r.body, "[DONE]"));
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
        cmocka_unit_test (test_stream_success),
        cmocka_unit_test (test_stream_http10),
        cmocka_unit_test (test_stream_failures),
        cmocka_unit_test (test_stream_keepalive_then_disconnect),
        cmocka_unit_test (test_stream_disconnect_mid),
        cmocka_unit_test (test_nonstream_disconnect),
        cmocka_unit_test (test_stream_deadline),
        cmocka_unit_test (test_broker_down),
        cmocka_unit_test (test_draining),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
