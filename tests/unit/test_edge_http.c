// End-to-end tests of the edge's HTTP layer in one process: the libmicrohttpd server
// (2 loops) + broker links + the fake broker on loopback, driven by libcurl and raw
// sockets: routes, status codes and bodies, keep-alive, job limits, drain, streams,
// client hang-ups. Framing, connection limits, CORS and static files: test_edge_limits.c.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "edge_harness.h"

#define MSGS "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"
#define CHAT(model) "{\"model\":\"" model "\"," MSGS "}"
#define STREAM(model) "{\"model\":\"" model "\"," MSGS ",\"stream\":true}"

static const char s_done[] = "data: [DONE]\n\n";

//  A raw HTTP/1.1 chat request for body.
static void s_raw_chat (char *out, size_t cap, const char *body)
{
    snprintf (out, cap, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
              "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
              strlen (body), body);
}

//  Open a raw connection and send a chat request on it; the caller reads and closes.
static int s_raw_submit (eh_t *h, const char *body)
{
    char req[2048];
    s_raw_chat (req, sizeof req, body);
    int fd = eh_connect (h, NULL, 0);
    assert_true (fd >= 0);
    assert_int_equal (eh_send (fd, req), 0);
    return fd;
}

static bool s_ends_with (const eh_resp_t *r, const char *tail)
{
    size_t n = strlen (tail);
    return r->len >= n && strcmp (r->body + r->len - n, tail) == 0;
}

//  --------------------------------------------------------------- simple routes

static void test_health_models (void **state)
{
    eh_t *h = *state;
    edge_server_stats_t before = eh_stats (h);          // the setup's /readyz polls
    eh_resp_t r = { 0 };
    assert_int_equal (eh_request (h, "GET", "/healthz", NULL, NULL, &r), CURLE_OK);
    assert_int_equal (r.status, 200);
    assert_string_equal (r.body, "{\"status\":\"ok\"}");
    eh_assert_header (&r, "Content-Type", "application/json");
    eh_request (h, "HEAD", "/healthz", NULL, NULL, &r);
    assert_int_equal (r.status, 200);
    assert_int_equal (r.len, 0);
    eh_request (h, "GET", "/readyz", NULL, NULL, &r);
    assert_int_equal (r.status, 200);
    assert_non_null (strstr (r.body, "\"status\":\"ready\""));
    assert_non_null (strstr (r.body, "\"workers\":1"));
    eh_request (h, "GET", "/v1/models", NULL, NULL, &r);
    assert_int_equal (r.status, 200);
    assert_non_null (strstr (r.body, "\"object\":\"list\""));
    assert_non_null (strstr (r.body, "\"id\":\"agent/deliberate\""));
    assert_non_null (strstr (r.body, "\"id\":\"quick\""));
    //  One model: a live model, a dynamic name, a group; unknown names 404
    eh_request (h, "GET", "/v1/models/fast-sim", NULL, NULL, &r);
    assert_int_equal (r.status, 200);
    assert_non_null (strstr (r.body, "\"id\":\"fast-sim\""));
    assert_non_null (strstr (r.body, "\"kind\":\"model\""));
    eh_request (h, "GET", "/v1/models/agent/deliberate", NULL, NULL, &r);
    assert_int_equal (r.status, 200);
    assert_non_null (strstr (r.body, "\"id\":\"agent/deliberate\""));
    eh_request (h, "GET", "/v1/models/quick", NULL, NULL, &r);
    assert_int_equal (r.status, 200);
    assert_non_null (strstr (r.body, "\"kind\":\"group\""));
    eh_request (h, "GET", "/v1/models/gpt-17", NULL, NULL, &r);
    assert_int_equal (r.status, 404);
    assert_non_null (strstr (r.body, "\"type\":\"invalid_request_error\""));
    assert_non_null (strstr (r.body, "\"code\":\"model_not_found\""));
    eh_assert_header (&r, "Content-Type", "application/json");
    eh_request (h, "POST", "/v1/models", "{}", NULL, &r);
    assert_int_equal (r.status, 405);
    eh_assert_header (&r, "Allow", "GET");
    //  Counted when each request completes (just after the client has its answer)
    assert_true (EH_WAIT (eh_stats (h).requests == before.requests + 9));
    edge_server_stats_t st = eh_stats (h);
    assert_int_equal (st.status_2xx, before.status_2xx + 7);
    assert_int_equal (st.status_4xx, before.status_4xx + 2);
    assert_int_equal (st.status_5xx, before.status_5xx);
}

static void test_chat_success (void **state)
{
    eh_t *h = *state;
    eh_resp_t r = { 0 };
    assert_int_equal (eh_chat (h, CHAT ("quick"), &r), CURLE_OK);
    assert_int_equal (r.status, 200);
    eh_assert_header (&r, "x-aigw-winner", "fast-sim");
    eh_assert_header (&r, "Content-Type", "application/json");
    assert_non_null (strstr (r.body, "\"choices\""));
    assert_non_null (strstr (r.body, "\"aigw\":{\"winner\":\"fast-sim\",\"policy\":\"race\""));
    assert_non_null (strstr (r.body, "\"outcome\":\"cancelled\""));
    fake_broker_job_t last;
    fake_broker_last_job (h->fb, &last);
    assert_string_equal (last.targets, "fast-sim,slow-sim");
    assert_false (last.stream);
    assert_string_equal (last.payload, CHAT ("quick"));     // forwarded byte for byte
    //  "aigw" overrides reach the broker and are not forwarded upstream
    eh_chat (h, "{\"model\":\"agent/deliberate\"," MSGS ",\"aigw\":{\"policy\":\"fallback\","
             "\"targets\":[\"slow-sim\",\"fast-sim\"],\"deadline_ms\":900}}", &r);
    assert_int_equal (r.status, 200);
    eh_assert_header (&r, "x-aigw-winner", "slow-sim");
    fake_broker_last_job (h->fb, &last);
    assert_string_equal (last.targets, "slow-sim,fast-sim");
    assert_int_equal (last.policy, AIGW__POLICY__POLICY_FALLBACK);
    assert_int_equal (last.deadline_ms, 900);
    assert_null (strstr (last.payload, "aigw"));
    assert_int_equal (edge_server_in_flight (h->srv), 0);
}

//  Pipelined: a chat that waits for the broker, then a second request behind it on the
//  same connection; both are answered, in order.
static void s_pipelined (eh_t *h)
{
    char req[2048], buf[8192];
    s_raw_chat (req, sizeof req, CHAT ("slow-sim"));
    snprintf (req + strlen (req), sizeof req - strlen (req),
              "GET /v1/models/fast-sim HTTP/1.1\r\nHost: x\r\n\r\n");
    int fd = eh_connect (h, NULL, 0);
    assert_true (fd >= 0);
    assert_int_equal (eh_send (fd, req), 0);
    size_t len = 0;
    assert_true (eh_read_until (fd, buf, sizeof buf, &len, "\"id\":\"fast-sim\""));
    close (fd);
    const char *first = strstr (buf, "Hello from slow-sim.");
    assert_non_null (first);
    assert_true (first < strstr (buf, "\"id\":\"fast-sim\""));
    assert_int_equal (eh_count (buf, "HTTP/1.1 200 "), 2);
}

static void test_keep_alive (void **state)
{
    eh_t *h = *state;
    eh_resp_t r = { 0 };
    eh_request (h, "GET", "/healthz", NULL, NULL, &r);
    assert_int_equal (r.connects, 1);
    for (int i = 0; i < 3; i++) {
        eh_chat (h, CHAT ("fast-sim"), &r);
        assert_int_equal (r.status, 200);
        assert_int_equal (r.connects, 0);               // the same connection again
        eh_chat (h, CHAT ("nope"), &r);
        assert_int_equal (r.status, 404);
        assert_int_equal (r.connects, 0);
    }
    //  The client asks to close: the server says so, and the next request reconnects
    const char *close_hdr[] = { "Connection: close", NULL };
    eh_request (h, "GET", "/healthz", NULL, close_hdr, &r);
    assert_int_equal (r.status, 200);
    assert_int_equal (r.connects, 0);
    eh_assert_header (&r, "Connection", "close");
    eh_request (h, "GET", "/healthz", NULL, NULL, &r);
    assert_int_equal (r.connects, 1);
    s_pipelined (h);
}

static void test_client_errors (void **state)
{
    eh_t *h = *state;
    eh_resp_t r = { 0 };
    eh_chat (h, "{not json", &r);
    assert_int_equal (r.status, 400);
    assert_non_null (strstr (r.body, "{\"error\":{\"message\":"));
    assert_non_null (strstr (r.body, "\"type\":\"invalid_request_error\""));
    assert_non_null (strstr (r.body, "\"code\":\"invalid_json\""));
    eh_assert_header (&r, "Content-Type", "application/json");
    eh_chat (h, "{\"model\":\"fast-sim\"," MSGS ",\"stream\":1}", &r);
    assert_int_equal (r.status, 400);
    assert_non_null (strstr (r.body, "stream: must be a boolean"));
    eh_chat (h, CHAT ("gpt-17"), &r);
    assert_int_equal (r.status, 404);
    assert_non_null (strstr (r.body, "\"code\":\"model_not_found\""));
    eh_request (h, "GET", "/v1/chat/completions", NULL, NULL, &r);
    assert_int_equal (r.status, 405);
    assert_non_null (strstr (r.body, "\"code\":\"method_not_allowed\""));
    eh_assert_header (&r, "Allow", "POST");
    eh_request (h, "DELETE", "/healthz", NULL, NULL, &r);
    assert_int_equal (r.status, 405);
    eh_assert_header (&r, "Allow", "GET");
    eh_request (h, "GET", "/v1/other", NULL, NULL, &r);
    assert_int_equal (r.status, 404);
    assert_non_null (strstr (r.body, "\"code\":\"not_found\""));
    eh_request (h, "GET", "/nowhere", NULL, NULL, &r);
    assert_int_equal (r.status, 404);
    assert_non_null (strstr (r.body, "\"code\":\"not_found\""));
    eh_request (h, "GET", "/healthz/more", NULL, NULL, &r);
    assert_int_equal (r.status, 404);
    //  Regression: 900 '[' is refused (depth) and the server keeps serving
    char deep[901];
    memset (deep, '[', 900);
    deep[900] = 0;
    eh_chat (h, deep, &r);
    assert_int_equal (r.status, 400);
    assert_non_null (strstr (r.body, "\"code\":\"json_too_deep\""));
    eh_chat (h, CHAT ("fast-sim"), &r);
    assert_int_equal (r.status, 200);
    assert_int_equal (eh_fb_stats (h).submits, 1);      // no refused request reached the broker
}

static void test_too_large (void **state)
{
    eh_t *h = *state;
    //  A Content-Length over max_body is refused before a byte of the body is sent
    int fd = eh_connect (h, NULL, 0);
    assert_true (fd >= 0);
    assert_int_equal (eh_send (fd, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                                   "Content-Type: application/json\r\n"
                                   "Content-Length: 100000\r\n\r\n"), 0);
    char buf[8192];
    assert_int_equal (eh_read_reply (fd, buf, sizeof buf), 413);
    assert_non_null (strstr (buf, "\"code\":\"request_too_large\""));
    assert_non_null (strstr (buf, "\r\nConnection: close\r\n"));
    bool eof;
    eh_read_all (fd, buf, sizeof buf, &eof);
    assert_true (eof);
    close (fd);
    //  The same with Expect: 100-continue: the refusal, never a 100
    fd = eh_connect (h, NULL, 0);
    assert_true (fd >= 0);
    assert_int_equal (eh_send (fd, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                                   "Content-Length: 100000\r\nExpect: 100-continue\r\n\r\n"), 0);
    assert_int_equal (eh_read_reply (fd, buf, sizeof buf), 413);
    assert_int_equal (strncmp (buf, "HTTP/1.1 413 ", 13), 0);
    close (fd);
    //  max_body = 1024 exactly is fine, one byte more is not (declared and chunked)
    char edge[1026];
    const char *chat = CHAT ("fast-sim");
    memset (edge, ' ', 1025);
    memcpy (edge, chat, strlen (chat));
    edge[1024] = 0;
    eh_resp_t r = { 0 };
    eh_chat (h, edge, &r);
    assert_int_equal (r.status, 200);
    const char *chunked[] = { "Transfer-Encoding: chunked", NULL };
    eh_request (h, "POST", "/v1/chat/completions", edge, chunked, &r);
    assert_int_equal (r.status, 200);
    edge[1024] = ' ';
    edge[1025] = 0;
    eh_chat (h, edge, &r);
    assert_int_equal (r.status, 413);
    eh_request (h, "POST", "/v1/chat/completions", edge, chunked, &r);
    assert_int_equal (r.status, 413);
    char big[4096];
    memset (big, ' ', sizeof big - 1);
    big[sizeof big - 1] = 0;
    eh_chat (h, big, &r);
    assert_int_equal (r.status, 413);
    assert_non_null (strstr (r.body, "\"type\":\"invalid_request_error\""));
    eh_assert_header (&r, "Connection", "close");
    //  Chunked (no Content-Length): refused once more than the limit arrived
    eh_request (h, "POST", "/v1/chat/completions", big, chunked, &r);
    assert_int_equal (r.status, 413);
    assert_non_null (strstr (r.body, "\"code\":\"request_too_large\""));
    //  Chunked and small: fine
    eh_request (h, "POST", "/v1/chat/completions", CHAT ("fast-sim"), chunked, &r);
    assert_int_equal (r.status, 200);
    assert_int_equal (eh_fb_stats (h).submits, 3);
    //  A route without a body: its body is read, dropped, and the size still counts
    eh_request (h, "POST", "/healthz", big, NULL, &r);
    assert_int_equal (r.status, 413);
}

static void test_upstream_errors (void **state)
{
    eh_t *h = *state;
    eh_resp_t r = { 0 };
    eh_chat (h, CHAT ("fail,fast-sim"), &r);
    assert_int_equal (r.status, 502);
    assert_non_null (strstr (r.body, "\"type\":\"upstream_error\""));
    assert_non_null (strstr (r.body, "\"outcome\":\"failed\""));
    assert_non_null (strstr (r.body, "fail: upstream returned HTTP 500"));
    eh_chat (h, CHAT ("busy"), &r);
    assert_int_equal (r.status, 429);
    assert_non_null (strstr (r.body, "\"type\":\"rate_limit_error\""));
    eh_chat (h, CHAT ("timeout"), &r);
    assert_int_equal (r.status, 504);
    assert_non_null (strstr (r.body, "\"type\":\"timeout_error\""));
    eh_chat (h, CHAT ("nojson"), &r);
    assert_int_equal (r.status, 502);
    assert_non_null (strstr (r.body, "\"code\":\"bad_upstream_response\""));
    assert_int_equal (r.connects, 0);
}

static void test_edge_deadline (void **state)
{
    eh_t *h = *state;
    //  The broker never answers: 504 after deadline + grace, and a CANCEL goes out
    eh_resp_t r = { 0 };
    int64_t start = aclock_now_ms ();
    eh_chat (h, "{\"model\":\"never\"," MSGS ",\"aigw\":{\"deadline_ms\":100}}", &r);
    assert_int_equal (r.status, 504);
    assert_true (aclock_now_ms () - start >= 2000);
    assert_non_null (strstr (r.body, "\"type\":\"timeout_error\""));
    assert_non_null (strstr (r.body, "\"code\":\"timeout\""));
    assert_true (EH_WAIT (eh_fb_stats (h).cancels == 1));
    assert_true (EH_WAIT (eh_stats (h).timeouts == 1));
    assert_int_equal (edge_server_in_flight (h->srv), 0);
    eh_chat (h, CHAT ("fast-sim"), &r);
    assert_int_equal (r.status, 200);
}

static void test_broker_down (void **state)
{
    eh_t *h = *state;
    fake_broker_set_silent (h->fb, true);
    //  Each loop's link goes down and recreates its socket
    edge_link_stats_t ls;
    assert_true (EH_WAIT ((edge_server_link_stats (h->srv, &ls), ls.reconnects >= 2)));
    assert_false (eh_ready (h));
    eh_resp_t r = { 0 };
    eh_chat (h, CHAT ("fast-sim"), &r);
    assert_int_equal (r.status, 503);
    assert_non_null (strstr (r.body, "\"code\":\"broker_unavailable\""));
    assert_non_null (strstr (r.body, "\"type\":\"service_unavailable\""));
    eh_assert_header (&r, "Retry-After", "1");
    //  A dynamic name is unknown while the broker is away: still 503, not 404
    eh_chat (h, CHAT ("agent/deliberate"), &r);
    assert_int_equal (r.status, 503);
    eh_request (h, "GET", "/readyz", NULL, NULL, &r);
    assert_int_equal (r.status, 503);
    assert_non_null (strstr (r.body, "\"reason\":\"the broker is not answering\""));
    eh_request (h, "GET", "/v1/models", NULL, NULL, &r);
    assert_string_equal (r.body, "{\"object\":\"list\",\"data\":[]}");
    eh_request (h, "GET", "/healthz", NULL, NULL, &r);
    assert_int_equal (r.status, 200);
    fake_broker_set_silent (h->fb, false);
    assert_true (EH_WAIT (eh_ready (h)));
    eh_chat (h, CHAT ("fast-sim"), &r);
    assert_int_equal (r.status, 200);
}

static void test_max_jobs (void **state)
{
    eh_t *h = *state;
    int held = s_raw_submit (h, CHAT ("never"));
    assert_true (EH_WAIT (eh_fb_stats (h).held == 1));
    assert_int_equal (edge_server_in_flight (h->srv), 1);
    eh_resp_t r = { 0 };
    eh_chat (h, CHAT ("fast-sim"), &r);
    assert_int_equal (r.status, 429);
    assert_non_null (strstr (r.body, "\"code\":\"too_many_requests\""));
    assert_non_null (strstr (r.body, "\"type\":\"rate_limit_error\""));
    eh_assert_header (&r, "Retry-After", "1");
    assert_int_equal (eh_stats (h).jobs_refused, 1);
    assert_int_equal (eh_fb_stats (h).submits, 1);
    //  The held job ends: its slot is free again
    fake_broker_release (h->fb);
    char buf[8192];
    assert_int_equal (eh_read_reply (held, buf, sizeof buf), 200);
    close (held);
    assert_true (EH_WAIT (edge_server_in_flight (h->srv) == 0));
    eh_chat (h, CHAT ("fast-sim"), &r);
    assert_int_equal (r.status, 200);
    //  A stream holds its slot too, until its client leaves
    int stream = s_raw_submit (h, STREAM ("never"));
    assert_true (EH_WAIT (eh_fb_stats (h).held == 1));
    eh_chat (h, STREAM ("fast-sim"), &r);
    assert_int_equal (r.status, 429);
    eh_assert_header (&r, "Content-Type", "application/json");
    close (stream);
    assert_true (EH_WAIT (edge_server_in_flight (h->srv) == 0));
    eh_chat (h, STREAM ("fast-sim"), &r);
    assert_int_equal (r.status, 200);
    assert_int_equal (eh_stats (h).jobs_refused, 2);
}

static void test_drain (void **state)
{
    eh_t *h = *state;
    int held = s_raw_submit (h, CHAT ("never"));
    assert_true (EH_WAIT (eh_fb_stats (h).held == 1));
    edge_server_drain (h->srv);
    eh_resp_t r = { 0 };
    eh_chat (h, CHAT ("fast-sim"), &r);
    assert_int_equal (r.status, 503);
    assert_non_null (strstr (r.body, "\"code\":\"shutting_down\""));
    eh_assert_header (&r, "Connection", "close");
    eh_request (h, "GET", "/healthz", NULL, NULL, &r);
    assert_int_equal (r.status, 200);
    //  The job in flight goes on to its answer
    assert_int_equal (edge_server_in_flight (h->srv), 1);
    fake_broker_release (h->fb);
    char buf[8192];
    assert_int_equal (eh_read_reply (held, buf, sizeof buf), 200);
    assert_non_null (strstr (buf, "Hello from never."));
    close (held);
    assert_true (EH_WAIT (edge_server_in_flight (h->srv) == 0));
    assert_int_equal (eh_fb_stats (h).submits, 1);
}

static void test_fail_all (void **state)
{
    eh_t *h = *state;
    int plain = s_raw_submit (h, CHAT ("never"));
    int stream = s_raw_submit (h, STREAM ("never"));
    assert_true (EH_WAIT (eh_fb_stats (h).held == 2));
    edge_server_fail_all (h->srv);
    char buf[8192];
    assert_int_equal (eh_read_reply (plain, buf, sizeof buf), 503);
    assert_non_null (strstr (buf, "\"type\":\"service_unavailable\""));
    assert_non_null (strstr (buf, "the edge is shutting down"));
    size_t len = 0;
    assert_true (eh_read_until (stream, buf, sizeof buf, &len, "event: error\ndata: "));
    assert_true (eh_read_until (stream, buf, sizeof buf, &len, "\n\n"));
    assert_non_null (strstr (buf, "the edge is shutting down"));
    assert_null (strstr (buf, "[DONE]"));
    close (plain);
    close (stream);
    assert_true (EH_WAIT (eh_fb_stats (h).cancels == 2));
    assert_true (EH_WAIT (edge_server_in_flight (h->srv) == 0));
}

//  --------------------------------------------------------------- streams

static void test_stream_success (void **state)
{
    eh_t *h = *state;
    eh_resp_t r = { 0 };
    assert_int_equal (eh_chat (h, "{\"model\":\"quick\"," MSGS ",\"stream\":true,"
                               "\"stream_options\":{\"include_usage\":true}}", &r), CURLE_OK);
    assert_int_equal (r.status, 200);
    eh_assert_header (&r, "Content-Type", "text/event-stream; charset=utf-8");
    eh_assert_header (&r, "Transfer-Encoding", "chunked");
    char v[64];
    assert_null (eh_header (&r, "x-aigw-winner", v, sizeof v));     // unknown at the headers
    fake_broker_job_t last;
    fake_broker_last_job (h->fb, &last);
    assert_true (last.stream);
    //  4 chunks + summary + usage + [DONE]
    assert_int_equal (eh_count (r.body, "data: "), 7);
    assert_int_equal (eh_count (r.body, "\"aigw\":{\"winner\":\"fast-sim\"}"), 1);
    assert_int_equal (eh_count (r.body, "\"role\":\"assistant\""), 1);
    assert_int_equal (eh_count (r.body, "\"model\":\"fast-sim\""), 7);
    assert_null (strstr (r.body, "upstream-fast-sim"));
    assert_non_null (strstr (r.body, "\"choices\":[],\"aigw\":{\"winner\":\"fast-sim\","
                                     "\"policy\":\"race\""));
    assert_non_null (strstr (r.body, "\"choices\":[],\"usage\":{\"prompt_tokens\":3,"));
    assert_true (s_ends_with (&r, s_done));
    assert_null (strstr (r.body, "event: error"));
    //  The connection stays open for the next request
    eh_chat (h, CHAT ("fast-sim"), &r);
    assert_int_equal (r.status, 200);
    assert_int_equal (r.connects, 0);
    //  Tool calls pass through, and the first delta gets the role
    eh_chat (h, STREAM ("tools"), &r);
    assert_non_null (strstr (r.body, "\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\""));
    assert_non_null (strstr (r.body, "\"role\":\"assistant\"}"));
    assert_null (strstr (r.body, "\"choices\":[],\"usage\""));  // no usage chunk unasked
    assert_true (s_ends_with (&r, s_done));
    assert_int_equal (r.connects, 0);
    assert_true (EH_WAIT (eh_stats (h).streams == 2));
    assert_int_equal (eh_stats (h).stream_overflow, 0);
}

static void test_stream_http10 (void **state)
{
    eh_t *h = *state;
    eh_resp_t r = { .http10 = true };
    assert_int_equal (eh_chat (h, STREAM ("fast-sim"), &r), CURLE_OK);
    assert_int_equal (r.status, 200);
    char v[64];
    assert_null (eh_header (&r, "Transfer-Encoding", v, sizeof v));
    assert_true (s_ends_with (&r, s_done));
    assert_int_equal (eh_count (r.body, "data: "), 6);
    //  The end of the body was the end of the connection
    r.http10 = false;
    eh_request (h, "GET", "/healthz", NULL, NULL, &r);
    assert_int_equal (r.connects, 1);
    s_pipelined (h);
}

static void test_stream_failures (void **state)
{
    eh_t *h = *state;
    eh_resp_t r = { 0 };
    //  Before the first chunk: an error event with the attempts, no [DONE]
    assert_int_equal (eh_chat (h, STREAM ("fail,fast-sim"), &r), CURLE_OK);
    assert_int_equal (r.status, 200);
    assert_null (strstr (r.body, "[DONE]"));
    assert_null (strstr (r.body, "data: {\"id\""));
    assert_non_null (strstr (r.body, "event: error\ndata: {\"error\":{\"message\":"));
    assert_non_null (strstr (r.body, "\"code\":\"upstream_error\""));
    assert_non_null (strstr (r.body, "\"winner\":null"));
    assert_non_null (strstr (r.body, "upstream returned HTTP 500"));
    //  After chunks: the error event names the winner; the connection is kept
    assert_int_equal (eh_chat (h, STREAM ("cut"), &r), CURLE_OK);
    assert_int_equal (eh_count (r.body, "data: {\"id\""), 2);
    assert_non_null (strstr (r.body, "event: error\ndata: "));
    assert_non_null (strstr (r.body, "stream failed after 2 chunks"));
    assert_non_null (strstr (r.body, "\"winner\":\"cut\""));
    assert_null (strstr (r.body, "[DONE]"));
    assert_int_equal (r.connects, 0);
    //  A lost chunk is never passed off as a complete answer; the job is cancelled
    assert_int_equal (eh_chat (h, STREAM ("gap"), &r), CURLE_OK);
    assert_non_null (strstr (r.body, "event: error\ndata: "));
    assert_non_null (strstr (r.body, "\"code\":\"stream_interrupted\""));
    assert_null (strstr (r.body, "[DONE]"));
    assert_true (EH_WAIT (eh_fb_stats (h).cancels == 1));
    //  A chunk that is not JSON
    assert_int_equal (eh_chat (h, STREAM ("badchunk"), &r), CURLE_OK);
    assert_non_null (strstr (r.body, "event: error\ndata: "));
    assert_non_null (strstr (r.body, "\"code\":\"bad_upstream_response\""));
    assert_null (strstr (r.body, "[DONE]"));
    assert_true (EH_WAIT (eh_fb_stats (h).cancels == 2));
    //  Refused before the stream starts: a plain JSON error
    assert_int_equal (eh_chat (h, STREAM ("nope"), &r), CURLE_OK);
    assert_int_equal (r.status, 404);
    eh_assert_header (&r, "Content-Type", "application/json");
    assert_true (EH_WAIT (edge_server_in_flight (h->srv) == 0));
}

//  Nothing comes: ": keep-alive" comments flow; the client then hangs up while the
//  stream still waits for its first token, and the job is cancelled.
static void test_stream_keepalive_hangup (void **state)
{
    eh_t *h = *state;
    eh_resp_t r = { .abort_at = ": keep-alive\n\n" };
    assert_int_equal (eh_chat (h, STREAM ("never"), &r), CURLE_WRITE_ERROR);
    assert_int_equal (r.status, 200);
    assert_null (strstr (r.body, "data: "));
    assert_true (EH_WAIT (eh_fb_stats (h).cancels == 1));
    assert_true (EH_WAIT (eh_stats (h).client_gone == 1));
    assert_true (EH_WAIT (edge_server_in_flight (h->srv) == 0));
}

static void test_stream_hangup_mid (void **state)
{
    eh_t *h = *state;
    eh_resp_t r = { .abort_at = "\" drop\"" };
    assert_int_equal (eh_chat (h, STREAM ("drip"), &r), CURLE_WRITE_ERROR);
    assert_non_null (strstr (r.body, "\"content\":\"drop\""));
    assert_true (EH_WAIT (eh_fb_stats (h).cancels == 1));
    assert_true (EH_WAIT (eh_stats (h).client_gone == 1));
    assert_true (EH_WAIT (eh_fb_stats (h).held == 0));
    assert_true (EH_WAIT (edge_server_in_flight (h->srv) == 0));
    assert_int_equal (eh_stats (h).stream_overflow, 0);    // it read: never dropped
}

static void test_nonstream_hangup (void **state)
{
    eh_t *h = *state;
    //  A non-streaming client that gives up: the edge notices the hang-up and cancels
    int fd = s_raw_submit (h, CHAT ("never"));
    assert_true (EH_WAIT (eh_fb_stats (h).held == 1));
    close (fd);
    assert_true (EH_WAIT (eh_fb_stats (h).cancels == 1));
    assert_true (EH_WAIT (eh_stats (h).client_gone == 1));
    assert_true (EH_WAIT (edge_server_in_flight (h->srv) == 0));
    //  Curl giving up on its own timeout is the same hang-up
    eh_resp_t r = { .timeout_ms = 300 };
    assert_int_equal (eh_chat (h, CHAT ("never"), &r), CURLE_OPERATION_TIMEDOUT);
    assert_true (EH_WAIT (eh_fb_stats (h).cancels == 2));
    assert_true (EH_WAIT (eh_stats (h).client_gone == 2));
    //  A whole request and the hang-up at once: never submitted, or submitted and
    //  cancelled; no job is left behind either way
    char req[1024];
    s_raw_chat (req, sizeof req, CHAT ("never"));
    for (int i = 0; i < 20; i++) {
        int c = eh_connect (h, NULL, 0);
        assert_true (c >= 0);
        assert_int_equal (eh_send (c, req), 0);
        if (i % 2)
            shutdown (c, SHUT_WR);
        close (c);
    }
    assert_true (EH_WAIT (eh_stats (h).connections == 0));
    assert_true (EH_WAIT (eh_fb_stats (h).cancels == eh_fb_stats (h).submits));
    assert_true (EH_WAIT (eh_fb_stats (h).held == 0));
    assert_int_equal (edge_server_in_flight (h->srv), 0);
}

//  Destroying the server with requests open closes them and cancels their jobs.
static void test_destroy_busy (void **state)
{
    eh_t *h = *state;
    int plain = s_raw_submit (h, CHAT ("never"));
    int stream = s_raw_submit (h, STREAM ("never"));
    int idle = eh_connect (h, NULL, 0);
    assert_true (idle >= 0);
    assert_true (EH_WAIT (eh_fb_stats (h).held == 2 && eh_stats (h).connections == 3));
    edge_server_destroy (&h->srv);
    assert_null (h->srv);
    int fds[] = { plain, stream, idle };
    for (int i = 0; i < 3; i++) {
        char buf[8192];
        bool eof;
        eh_read_all (fds[i], buf, sizeof buf, &eof);
        assert_true (eof);
        assert_null (strstr (buf, "[DONE]"));
        close (fds[i]);
    }
    assert_true (EH_WAIT (eh_fb_stats (h).cancels == 2));
    assert_true (EH_WAIT (eh_fb_stats (h).held == 0));
}

static void test_stream_deadline (void **state)
{
    eh_t *h = *state;
    eh_resp_t r = { 0 };
    int64_t start = aclock_now_ms ();
    assert_int_equal (eh_chat (h, "{\"model\":\"never\"," MSGS ",\"stream\":true,"
                               "\"aigw\":{\"deadline_ms\":100}}", &r), CURLE_OK);
    assert_true (aclock_now_ms () - start >= 2000);
    assert_int_equal (r.status, 200);
    assert_true (eh_count (r.body, ": keep-alive\n\n") >= 1);
    assert_non_null (strstr (r.body, "event: error\ndata: {\"error\":{\"message\":"
                                     "\"no answer before the deadline\""));
    assert_null (strstr (r.body, "[DONE]"));
    assert_true (EH_WAIT (eh_fb_stats (h).cancels == 1));
    assert_true (EH_WAIT (eh_stats (h).timeouts == 1));
}

#define T(fn, extra) cmocka_unit_test_prestate_setup_teardown (fn, eh_setup, eh_teardown, \
                                                               (void *) (extra))

int main (void)
{
    curl_global_init (CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        T (test_health_models, NULL),
        T (test_chat_success, NULL),
        T (test_keep_alive, NULL),
        T (test_client_errors, NULL),
        T (test_too_large, NULL),
        T (test_upstream_errors, NULL),
        T (test_edge_deadline, NULL),
        T (test_broker_down, NULL),
        T (test_max_jobs, "    max_jobs = 1\n"),
        T (test_drain, NULL),
        T (test_fail_all, NULL),
        T (test_stream_success, NULL),
        T (test_stream_http10, NULL),
        T (test_stream_failures, NULL),
        T (test_stream_keepalive_hangup, NULL),
        T (test_stream_hangup_mid, NULL),
        T (test_nonstream_hangup, NULL),
        T (test_stream_deadline, NULL),
        T (test_destroy_busy, NULL),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    curl_global_cleanup ();
    return rc;
}
