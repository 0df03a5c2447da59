// End-to-end tests of the edge's protective limits and browser-facing routes, on the
// in-process server + fake broker (edge_harness.h), mostly over raw sockets: request
// framing, header limits, connection limits (total, per IP), the header timeout, a
// stream client that does not read, CORS, static files.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "edge_harness.h"

#define MSGS "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"
#define CHAT(model) "{\"model\":\"" model "\"," MSGS "}"
#define STREAM(model) "{\"model\":\"" model "\"," MSGS ",\"stream\":true}"

//  Send text on a new connection and read everything until the server closes it.
static void s_exchange (eh_t *h, const char *text, char *buf, size_t cap)
{
    int fd = eh_connect (h, NULL, 0);
    assert_true (fd >= 0);
    assert_int_equal (eh_send (fd, text), 0);
    bool eof;
    eh_read_all (fd, buf, cap, &eof);
    close (fd);
    if (!eof)
        fail_msg ("the server did not close the connection; got:\n%s", buf);
}

//  The status of a raw response, and its body must be an OpenAI error with code.
static void s_assert_error (const char *buf, int status, const char *code)
{
    int got = -1;
    if (sscanf (buf, "HTTP/1.%*d %d", &got) != 1 || got != status)
        fail_msg ("expected %d %s, got:\n%s", status, code, buf);
    char want[128];
    snprintf (want, sizeof want, "\"code\":\"%s\"", code);
    const char *body = strstr (buf, "\r\n\r\n");
    assert_non_null (body);
    if (strncmp (body + 4, "{\"error\":{\"message\":", 20) || !strstr (body, want))
        fail_msg ("expected a JSON error with %s, got:\n%s", want, buf);
    assert_non_null (strstr (buf, "\r\nContent-Type: application/json\r\n"));
}

static void s_healthz_ok (eh_t *h)
{
    eh_resp_t r = { 0 };
    eh_request (h, "GET", "/healthz", NULL, NULL, &r);
    assert_int_equal (r.status, 200);
}

//  --------------------------------------------------------------- framing

static void test_duplicate_content_length (void **state)
{
    eh_t *h = *state;
    char buf[8192];
    s_exchange (h, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                   "Content-Length: 2\r\n\r\n{}", buf, sizeof buf);
    s_assert_error (buf, 400, "bad_framing");
    assert_non_null (strstr (buf, "more than one Content-Length"));
    assert_non_null (strstr (buf, "\r\nConnection: close\r\n"));
    //  Different values: the same
    s_exchange (h, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                   "Content-Length: 40\r\n\r\n{}", buf, sizeof buf);
    s_assert_error (buf, 400, "bad_framing");
    assert_true (EH_WAIT (eh_stats (h).bad_framing == 2));
    assert_int_equal (eh_fb_stats (h).submits, 0);
    s_healthz_ok (h);
}

static void test_length_and_chunked (void **state)
{
    eh_t *h = *state;
    char buf[8192];
    s_exchange (h, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", buf, sizeof buf);
    s_assert_error (buf, 400, "bad_framing");
    assert_non_null (strstr (buf, "both Content-Length and Transfer-Encoding"));
    //  The other order, and on a route without a body
    s_exchange (h, "GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                   "Content-Length: 5\r\n\r\n0\r\n\r\n", buf, sizeof buf);
    s_assert_error (buf, 400, "bad_framing");
    //  A transfer coding other than chunked
    s_exchange (h, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                   "Transfer-Encoding: gzip\r\n\r\n", buf, sizeof buf);
    s_assert_error (buf, 400, "bad_framing");
    assert_true (EH_WAIT (eh_stats (h).bad_framing == 3));
    assert_int_equal (eh_fb_stats (h).submits, 0);
    s_healthz_ok (h);
}

//  A request with n >= 3 header fields in all: Host, n - 3 small ones, X-Big with
//  value_len bytes, Connection: close. Caller frees.
static char *s_headers_request (int n, size_t value_len)
{
    size_t cap = 256 + (size_t) n * 32 + value_len;
    char *req = malloc (cap);
    assert_non_null (req);
    size_t o = (size_t) snprintf (req, cap, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for (int i = 1; i <= n - 3; i++)
        o += (size_t) snprintf (req + o, cap - o, "X-Field-%d: %d\r\n", i, i);
    o += (size_t) snprintf (req + o, cap - o, "X-Big: ");
    memset (req + o, 'v', value_len);
    o += value_len;
    snprintf (req + o, cap - o, "\r\nConnection: close\r\n\r\n");
    return req;
}

static void test_header_limits (void **state)
{
    eh_t *h = *state;
    char buf[8192];
    //  max_headers = 16: 16 fields pass, 17 do not
    char *req = s_headers_request (16, 1);
    s_exchange (h, req, buf, sizeof buf);
    free (req);
    assert_non_null (strstr (buf, "HTTP/1.1 200 "));
    req = s_headers_request (17, 1);
    s_exchange (h, req, buf, sizeof buf);
    free (req);
    s_assert_error (buf, 431, "headers_too_large");
    //  max_header_bytes = 2048: a 1500-byte value passes, 2500 do not
    req = s_headers_request (4, 1500);
    s_exchange (h, req, buf, sizeof buf);
    free (req);
    assert_non_null (strstr (buf, "HTTP/1.1 200 "));
    req = s_headers_request (4, 2500);
    s_exchange (h, req, buf, sizeof buf);
    free (req);
    s_assert_error (buf, 431, "headers_too_large");
    //  The request line counts too: a long query string
    req = malloc (4096);
    assert_non_null (req);
    int n = snprintf (req, 4096, "GET /healthz?q=");
    memset (req + n, 'q', 2500);
    snprintf (req + n + 2500, 4096 - (size_t) n - 2500, " HTTP/1.1\r\nHost: x\r\n"
              "Connection: close\r\n\r\n");
    s_exchange (h, req, buf, sizeof buf);
    free (req);
    s_assert_error (buf, 431, "headers_too_large");
    //  Far past the limit, more than the connection's memory pool (2 * max_header_bytes
    //  + 16 KiB): libmicrohttpd refuses it itself (431 with its own HTML body) and closes
    req = s_headers_request (4, 64 * 1024);
    s_exchange (h, req, buf, sizeof buf);
    free (req);
    assert_int_equal (strncmp (buf, "HTTP/1.1 431 ", 13), 0);
    s_healthz_ok (h);
}

//  --------------------------------------------------------------- connections

static void test_max_connections (void **state)
{
    eh_t *h = *state;
    int a = eh_connect (h, NULL, 0), b = eh_connect (h, NULL, 0);
    assert_true (a >= 0 && b >= 0);
    assert_true (EH_WAIT (eh_stats (h).connections == 2));
    //  The third is over max_connections = 2: a 503 with Retry-After, then closed
    char buf[8192];
    s_exchange (h, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof buf);
    s_assert_error (buf, 503, "too_many_connections");
    assert_non_null (strstr (buf, "\r\nRetry-After: 1\r\n"));
    assert_non_null (strstr (buf, "\r\nConnection: close\r\n"));
    assert_int_equal (eh_stats (h).conn_over_limit, 1);
    //  The first two still work
    assert_int_equal (eh_send (a, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_int_equal (eh_read_reply (a, buf, sizeof buf), 200);
    //  Past max_connections + 1/8 + 16 (18 here) a connection is closed at accept
    int more[16];
    for (int i = 0; i < 16; i++) {
        more[i] = eh_connect (h, NULL, 0);
        assert_true (more[i] >= 0);
    }
    assert_true (EH_WAIT (eh_stats (h).connections == 18));
    int refused = eh_connect (h, NULL, 0);
    assert_true (refused >= 0);
    bool eof;
    assert_int_equal (eh_read_all (refused, buf, sizeof buf, &eof), 0);
    assert_true (eof);
    close (refused);
    assert_true (EH_WAIT (eh_stats (h).conn_refused == 1));
    assert_int_equal (eh_stats (h).per_ip_refused, 0);
    for (int i = 0; i < 16; i++)
        close (more[i]);
    //  Room again once they leave
    close (b);
    assert_true (EH_WAIT (eh_stats (h).connections == 1));
    s_healthz_ok (h);
    close (a);
}

static void test_max_per_ip (void **state)
{
    eh_t *h = *state;
    int a = eh_connect (h, NULL, 0), b = eh_connect (h, NULL, 0);
    assert_true (a >= 0 && b >= 0);
    assert_true (EH_WAIT (eh_stats (h).connections == 2));
    //  A third from 127.0.0.1 is closed at once, before it sends anything
    int c = eh_connect (h, NULL, 0);
    assert_true (c >= 0);
    char buf[8192];
    bool eof;
    assert_int_equal (eh_read_all (c, buf, sizeof buf, &eof), 0);
    assert_true (eof);
    close (c);
    assert_true (EH_WAIT (eh_stats (h).per_ip_refused == 1));
    assert_int_equal (eh_stats (h).conn_refused, 1);
    //  Another address is served meanwhile
    int d = eh_connect (h, "127.0.0.2", 0);
    assert_true (d >= 0);
    assert_int_equal (eh_send (d, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_int_equal (eh_read_reply (d, buf, sizeof buf), 200);
    assert_int_equal (eh_stats (h).connections, 3);
    close (d);
    //  When one from 127.0.0.1 leaves, 127.0.0.1 may connect again
    close (a);
    assert_true (EH_WAIT (eh_stats (h).connections == 1));
    int e = eh_connect (h, NULL, 0);
    assert_true (e >= 0);
    assert_int_equal (eh_send (e, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_int_equal (eh_read_reply (e, buf, sizeof buf), 200);
    close (e);
    close (b);
}

static void test_header_timeout (void **state)
{
    eh_t *h = *state;
    //  Headers begun and never finished: 408 with a JSON body, then the end
    int slow = eh_connect (h, NULL, 0);
    assert_true (slow >= 0);
    assert_int_equal (eh_send (slow, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"), 0);
    //  Another client is served meanwhile
    s_healthz_ok (h);
    char buf[8192];
    bool eof;
    eh_read_all (slow, buf, sizeof buf, &eof);
    close (slow);
    assert_true (eof);
    assert_int_equal (strncmp (buf, "HTTP/1.1 408 ", 13), 0);
    s_assert_error (buf, 408, "request_timeout");
    assert_true (EH_WAIT (eh_stats (h).header_timeouts == 1));
    //  A connection that never sends a byte gets the same (the time runs from connect)
    int idle = eh_connect (h, NULL, 0);
    assert_true (idle >= 0);
    eh_read_all (idle, buf, sizeof buf, &eof);
    close (idle);
    assert_true (eof);
    s_assert_error (buf, 408, "request_timeout");
    assert_true (EH_WAIT (eh_stats (h).header_timeouts == 2));
    assert_int_equal (eh_fb_stats (h).submits, 0);
}

//  Between keep-alive requests a connection may idle for idle_timeout_ms and is then
//  closed without a word; the next request's headers get header_timeout_ms.
//  Between keep-alive requests the header timeout does not apply (idle_timeout_ms is
//  a minute here, so no wall-clock margin decides the outcome)
static void test_keepalive_idle (void **state)
{
    eh_t *h = *state;
    const char *get = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    int fd = eh_connect (h, NULL, 0);
    assert_true (fd >= 0);
    char buf[8192];
    assert_int_equal (eh_send (fd, get), 0);
    assert_int_equal (eh_read_reply (fd, buf, sizeof buf), 200);
    //  Idle for twice header_timeout_ms (300): the connection must stay open
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll (&p, 1, 600) != 0) {
        bool eof;
        eh_read_all (fd, buf, sizeof buf, &eof);
        fail_msg ("an idle keep-alive connection was closed before idle_timeout_ms "
                  "(eof %d, got '%s')", eof, buf);
    }
    assert_int_equal (eh_send (fd, get), 0);
    assert_int_equal (eh_read_reply (fd, buf, sizeof buf), 200);
    close (fd);
    assert_int_equal (eh_stats (h).header_timeouts, 0);
}

//  At idle_timeout_ms an idle keep-alive connection is closed without a word; a
//  request whose headers then stall gets the 408
static void test_keepalive_idle_close (void **state)
{
    eh_t *h = *state;
    const char *get = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    int fd = eh_connect (h, NULL, 0);
    assert_true (fd >= 0);
    char buf[8192];
    assert_int_equal (eh_send (fd, get), 0);
    assert_int_equal (eh_read_reply (fd, buf, sizeof buf), 200);
    bool eof;
    assert_int_equal (eh_read_all (fd, buf, sizeof buf, &eof), 0);
    assert_true (eof);
    close (fd);
    assert_int_equal (eh_stats (h).header_timeouts, 0);
    fd = eh_connect (h, NULL, 0);
    assert_true (fd >= 0);
    assert_int_equal (eh_send (fd, get), 0);
    assert_int_equal (eh_read_reply (fd, buf, sizeof buf), 200);
    assert_int_equal (eh_send (fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n"), 0);
    eh_read_all (fd, buf, sizeof buf, &eof);
    close (fd);
    assert_true (eof);
    s_assert_error (buf, 408, "request_timeout");
    assert_true (EH_WAIT (eh_stats (h).header_timeouts == 1));
}

//  A port something already listens on is refused, not shared.
static void test_port_in_use (void **state)
{
    eh_t *h = *state;
    char text[1024], err[256];
    snprintf (text, sizeof text, "broker\n    metrics = \"inproc://edge-test-metrics-2\"\n"
              "edge\n    listen = \"127.0.0.1:%d\"\n    broker = \"%s\"\n    threads = 2\n",
              h->port, fake_broker_endpoint (h->fb));
    cfg_t *cfg = cfg_parse (text, "second-edge", err, sizeof err);
    assert_non_null (cfg);
    edge_server_t *second = edge_server_new (cfg);     // logs why it cannot listen
    bool shared = second != NULL;
    edge_server_destroy (&second);
    cfg_destroy (&cfg);
    if (shared)
        fail_msg ("a second edge started on port %d, already in use by the first", h->port);
    s_healthz_ok (h);
}

static void test_slow_stream_reader (void **state)
{
    eh_t *h = *state;
    //  A stream client with a small receive buffer that never reads
    int fd = eh_connect (h, NULL, 4096);
    assert_true (fd >= 0);
    char req[512];
    snprintf (req, sizeof req, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
              "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
              strlen (STREAM ("flood")), STREAM ("flood"));
    assert_int_equal (eh_send (fd, req), 0);
    //  Dropped at stream_buffer: counted, and the job cancelled at the broker
    assert_true (EH_WAIT (eh_stats (h).stream_overflow == 1));
    assert_true (EH_WAIT (eh_fb_stats (h).cancels == 1));
    assert_true (EH_WAIT (eh_fb_stats (h).held == 0));
    assert_true (EH_WAIT (edge_server_in_flight (h->srv) == 0));
    s_healthz_ok (h);
    //  The connection is closed (EOF, or a reset that may discard what the kernel held
    //  for the client), and whatever it still reads never ends with [DONE]
    static char all[1 << 22];
    bool eof;
    size_t n = eh_read_all (fd, all, sizeof all, &eof);
    close (fd);
    assert_true (eof);
    if (n)
        assert_int_equal (strncmp (all, "HTTP/1.1 200 ", 13), 0);
    assert_null (strstr (all, "[DONE]"));
    assert_true (EH_WAIT (eh_stats (h).client_gone == 1));
}

static void s_write (const char *dir, const char *name, const char *text)
{
    char path[600];
    snprintf (path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    fputs (text, f);
    fclose (f);
}

//  --------------------------------------------------------------- CORS

static void test_cors (void **state)
{
    eh_t *h = *state;
    eh_resp_t r = { 0 };
    const char *preflight[] = { "Origin: https://app.example",
                                "Access-Control-Request-Method: POST",
                                "Access-Control-Request-Headers: content-type, authorization",
                                NULL };
    eh_request (h, "OPTIONS", "/v1/chat/completions", NULL, preflight, &r);
    assert_int_equal (r.status, 204);
    eh_assert_header (&r, "Access-Control-Allow-Origin", "https://app.example");
    eh_assert_header (&r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    eh_assert_header (&r, "Access-Control-Allow-Headers", "content-type, authorization");
    eh_assert_header (&r, "Vary", "Origin");
    eh_assert_header (&r, "Access-Control-Max-Age", "600");
    //  Requested header names that are not plain tokens: the fixed list
    const char *odd[] = { "Origin: https://app.example", "Access-Control-Request-Method: POST",
                          "Access-Control-Request-Headers: x-a\"b", NULL };
    eh_request (h, "OPTIONS", "/v1/chat/completions", NULL, odd, &r);
    assert_int_equal (r.status, 204);
    eh_assert_header (&r, "Access-Control-Allow-Headers",
                     "authorization, content-type, x-api-key, anthropic-version");
    //  A real POST from the allowed origin carries the header too (success and error)
    const char *origin[] = { "Origin: https://app.example", NULL };
    eh_request (h, "POST", "/v1/chat/completions", CHAT ("fast-sim"), origin, &r);
    assert_int_equal (r.status, 200);
    eh_assert_header (&r, "Access-Control-Allow-Origin", "https://app.example");
    char v[256];
    assert_non_null (eh_header (&r, "Access-Control-Expose-Headers", v, sizeof v));
    assert_non_null (strstr (v, "x-aigw-winner"));
    eh_request (h, "POST", "/v1/chat/completions", CHAT ("gpt-17"), origin, &r);
    assert_int_equal (r.status, 404);
    eh_assert_header (&r, "Access-Control-Allow-Origin", "https://app.example");
    eh_request (h, "POST", "/v1/chat/completions", STREAM ("fast-sim"), origin, &r);
    assert_int_equal (r.status, 200);
    eh_assert_header (&r, "Access-Control-Allow-Origin", "https://app.example");
    eh_request (h, "GET", "/v1/models", NULL, origin, &r);
    eh_assert_header (&r, "Access-Control-Allow-Origin", "https://app.example");
    s_write (h->root, "app.js", "1;\n");
    eh_request (h, "GET", "/app.js", NULL, origin, &r);
    assert_int_equal (r.status, 200);
    eh_assert_header (&r, "Access-Control-Allow-Origin", "https://app.example");
    //  Another origin: its preflight is refused, its requests carry no CORS headers
    const char *evil_preflight[] = { "Origin: https://evil.example",
                                     "Access-Control-Request-Method: POST", NULL };
    eh_request (h, "OPTIONS", "/v1/chat/completions", NULL, evil_preflight, &r);
    assert_int_equal (r.status, 403);
    assert_non_null (strstr (r.body, "\"code\":\"cors_origin_not_allowed\""));
    eh_assert_header (&r, "Content-Type", "application/json");
    eh_assert_no_header (&r, "Access-Control-Allow-Origin");
    const char *evil[] = { "Origin: https://evil.example", NULL };
    eh_request (h, "POST", "/v1/chat/completions", CHAT ("fast-sim"), evil, &r);
    assert_int_equal (r.status, 200);
    eh_assert_no_header (&r, "Access-Control-Allow-Origin");
    //  OPTIONS that is not a preflight
    eh_request (h, "OPTIONS", "/v1/chat/completions", NULL, NULL, &r);
    assert_int_equal (r.status, 204);
    eh_assert_header (&r, "Allow", "GET, POST, OPTIONS");
    eh_assert_no_header (&r, "Access-Control-Allow-Origin");
}

//  --------------------------------------------------------------- static files

static void test_cors_any (void **state)
{
    eh_t *h = *state;
    eh_resp_t r = { 0 };
    const char *preflight[] = { "Origin: http://localhost:5173",
                                "Access-Control-Request-Method: POST", NULL };
    eh_request (h, "OPTIONS", "/v1/chat/completions", NULL, preflight, &r);
    assert_int_equal (r.status, 204);
    eh_assert_header (&r, "Access-Control-Allow-Origin", "*");
    eh_assert_no_header (&r, "Vary");
    const char *origin[] = { "Origin: https://anywhere.example", NULL };
    eh_request (h, "POST", "/v1/chat/completions", CHAT ("fast-sim"), origin, &r);
    assert_int_equal (r.status, 200);
    eh_assert_header (&r, "Access-Control-Allow-Origin", "*");
    //  No Origin: no CORS headers
    eh_request (h, "POST", "/v1/chat/completions", CHAT ("fast-sim"), NULL, &r);
    eh_assert_no_header (&r, "Access-Control-Allow-Origin");
}

//  Without edge/cors_origins no CORS header is ever sent, and a preflight is refused.
static void test_cors_off (void **state)
{
    eh_t *h = *state;
    eh_resp_t r = { 0 };
    const char *preflight[] = { "Origin: https://app.example",
                                "Access-Control-Request-Method: POST", NULL };
    eh_request (h, "OPTIONS", "/v1/chat/completions", NULL, preflight, &r);
    assert_int_equal (r.status, 403);
    eh_assert_no_header (&r, "Access-Control-Allow-Origin");
    const char *origin[] = { "Origin: https://app.example", NULL };
    eh_request (h, "POST", "/v1/chat/completions", CHAT ("fast-sim"), origin, &r);
    assert_int_equal (r.status, 200);
    eh_assert_no_header (&r, "Access-Control-Allow-Origin");
    eh_assert_no_header (&r, "Access-Control-Expose-Headers");
}

static void test_static_files (void **state)
{
    eh_t *h = *state;
    s_write (h->root, "index.html", "<!doctype html><title>aigw test</title>");
    s_write (h->root, "app.js", "console.log('aigw');\n");
    s_write (h->tmp, "secret.txt", "outside the root");
    char path[600], target[600];
    snprintf (path, sizeof path, "%s/sub", h->root);
    assert_int_equal (mkdir (path, 0700), 0);
    snprintf (path, sizeof path, "%s/link.txt", h->root);
    snprintf (target, sizeof target, "%s/secret.txt", h->tmp);
    assert_int_equal (symlink (target, path), 0);
    eh_resp_t r = { 0 };
    eh_request (h, "GET", "/", NULL, NULL, &r);
    assert_int_equal (r.status, 200);
    assert_string_equal (r.body, "<!doctype html><title>aigw test</title>");
    eh_assert_header (&r, "Content-Type", "text/html; charset=utf-8");
    eh_request (h, "GET", "/app.js", NULL, NULL, &r);
    assert_int_equal (r.status, 200);
    assert_string_equal (r.body, "console.log('aigw');\n");
    eh_assert_header (&r, "Content-Type", "text/javascript; charset=utf-8");
    eh_assert_header (&r, "X-Content-Type-Options", "nosniff");
    //  Nothing outside the root, nothing that is not a file
    const char *refused[] = { "/../secret.txt", "/%2e%2e/secret.txt", "/sub/../../secret.txt",
                              "/../../../../../../etc/passwd", "/link.txt", "/sub",
                              "/missing.js" };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        eh_request (h, "GET", refused[i], NULL, NULL, &r);
        if (r.status != 404 || !strstr (r.body, "\"code\":\"not_found\""))
            fail_msg ("GET %s: %ld %s", refused[i], r.status, r.body);
        assert_null (strstr (r.body, "outside the root"));
        assert_null (strstr (r.body, "root:"));
    }
    eh_request (h, "POST", "/app.js", "{}", NULL, &r);
    assert_int_equal (r.status, 405);
    eh_assert_header (&r, "Allow", "GET");
    //  Without index.html: the "not built" page
    snprintf (path, sizeof path, "%s/index.html", h->root);
    assert_int_equal (unlink (path), 0);
    eh_request (h, "GET", "/", NULL, NULL, &r);
    assert_int_equal (r.status, 404);
    eh_assert_header (&r, "Content-Type", "text/html; charset=utf-8");
    assert_non_null (strstr (r.body, "dashboard is not built"));
    //  The API is unaffected by the root
    eh_request (h, "GET", "/v1/nothing", NULL, NULL, &r);
    assert_int_equal (r.status, 404);
    assert_non_null (strstr (r.body, "\"code\":\"not_found\""));
}

#define T(fn, extra) cmocka_unit_test_prestate_setup_teardown (fn, eh_setup, eh_teardown, \
                                                               (void *) (extra))

int main (void)
{
    curl_global_init (CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        T (test_duplicate_content_length, NULL),
        T (test_length_and_chunked, NULL),
        T (test_header_limits, "    max_headers = 16\n    max_header_bytes = 2048\n"),
        T (test_max_connections, "    max_connections = 2\n"),
        T (test_max_per_ip, "    max_per_ip = 2\n"),
        T (test_header_timeout, "    header_timeout_ms = 300\n"),
        T (test_keepalive_idle, "    header_timeout_ms = 300\n    idle_timeout_ms = 60000\n"),
        T (test_keepalive_idle_close, "    header_timeout_ms = 300\n    idle_timeout_ms = 1000\n"),
        T (test_port_in_use, NULL),
        T (test_slow_stream_reader, "    stream_buffer = 4096\n"),
        T (test_cors, "    cors_origins = \"https://app.example\"\n"
                      "    document_root = \"@ROOT@\"\n"),
        T (test_cors_any, "    cors_origins = \"*\"\n"),
        T (test_cors_off, NULL),
        T (test_static_files, "    document_root = \"@ROOT@\"\n"),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    curl_global_cleanup ();
    return rc;
}
