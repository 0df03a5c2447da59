// libFuzzer target for the edge's whole request path: the input is written as raw bytes
// on a TCP connection to a real edge server (libmicrohttpd loop, limits, routing, JSON
// parse and validation, submit to a scripted broker, reply or SSE). Invariants beyond
// "no crash, no hang": every answer starts with an HTTP/1.x status line with a 3-digit
// code, and every JSON body the edge sends is valid UTF-8 and parses, with an "error"
// object for >= 400.
#define _GNU_SOURCE                     // memmem, strcasestr
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "cfg.h"
#include "fake_broker.h"
#include "server.h"
#include "utf8.h"

#define S_REPLY_MAX (256u << 10)
#define S_QUIET_MS 20                   // no answer by then: treat the request as incomplete
#define S_HANG_MS 8000                  // longer than any scripted answer: a hang

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static fake_broker_t *s_broker;
static edge_server_t *s_server;
static cfg_t *s_cfg;
static int s_port;

static const char *s_models = "fast-sim,fail-sim,cut-sim,gap-sim,badchunk-sim,tools-sim,"
                              "nojson-sim,busy-sim,timeout-sim,slow-sim";

static void s_die (const char *what)
{
    fprintf (stderr, "fuzz_http: %s\n", what);
    abort ();
}

int LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    s_broker = fake_broker_new ("tcp://127.0.0.1:*", s_models, 1);
    if (!s_broker)
        s_die ("cannot start the fake broker");
    fake_broker_set_slow_ms (s_broker, 20);
    char conf[4096];
    int n = snprintf (conf, sizeof conf,
        "broker\n    heartbeat_ms = 200\n    deadline_ms = 3000\n    max_deadline_ms = 4000\n"
        "edge\n    listen = 127.0.0.1:0\n    broker = %s\n    threads = 1\n"
        "    max_body = 65536\n    header_timeout_ms = 1000\n    idle_timeout_ms = 2000\n"
        "    max_headers = 32\n    max_header_bytes = 4096\n    stream_buffer = 65536\n"
        "    cors_origins = \"https://app.example\"\n"
        "models\n", fake_broker_endpoint (s_broker));
    const char *p = s_models;
    while (*p && n > 0 && (size_t) n < sizeof conf - 128) {
        size_t len = strcspn (p, ",");
        n += snprintf (conf + n, sizeof conf - (size_t) n,
                       "    %.*s\n        provider = sim\n", (int) len, p);
        p += len + (p[len] == ',');
    }
    snprintf (conf + n, sizeof conf - (size_t) n,
              "groups\n    quick\n        targets = \"fast-sim, slow-sim\"\n");
    char err[256];
    s_cfg = cfg_parse (conf, "fuzz", err, sizeof err);
    if (!s_cfg)
        s_die (err);
    s_server = edge_server_new (s_cfg);
    if (!s_server)
        s_die ("cannot start the edge");
    s_port = edge_server_port (s_server);
    //  Wait for the link (PONG) so valid requests reach the broker
    for (int i = 0; i < 200; i++) {
        fake_broker_stats_t st;
        fake_broker_stats (s_broker, &st);
        if (st.pings >= 2)
            break;
        struct timespec t = { 0, 20 * 1000 * 1000 };
        nanosleep (&t, NULL);
    }
    return 0;
}

static int64_t s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  Is the answer in buf complete (headers, then Content-Length bytes or the end of
//  a chunked body)? Connection-close bodies end at EOF.
static bool s_complete (const char *buf, size_t len)
{
    if (len < 4)
        return false;
    const char *end = memmem (buf, len, "\r\n\r\n", 4);
    if (!end)
        return false;
    size_t head = (size_t) (end - buf) + 4;
    const char *cl = head > 16 ? memmem (buf, head, "Content-Length: ", 16) : NULL;
    if (cl) {
        size_t want = strtoul (cl + 16, NULL, 10);
        return len >= head + want;
    }
    if (head > 26 && memmem (buf, head, "Transfer-Encoding: chunked", 26))
        return len >= head + 5 && memcmp (buf + len - 5, "0\r\n\r\n", 5) == 0;
    return false;
}

static void s_check_reply (char *buf, size_t len)
{
    if (len == 0)
        return;                         // closed without an answer (allowed: body too big)
    buf[len] = 0;
    if (len < 12 || strncmp (buf, "HTTP/1.", 7) != 0)
        s_die ("answer does not start with an HTTP/1.x status line");
    //  "HTTP/1.x NNN ...": exactly three digits, a real status code
    char *code_end;
    errno = 0;
    long status = strtol (buf + 9, &code_end, 10);
    if (buf[8] != ' ' || code_end != buf + 12 || errno || status < 100 || status > 599)
        s_die ("answer has no three-digit status code after HTTP/1.x");
    char *end = strstr (buf, "\r\n\r\n");
    if (!end)
        return;                         // cut short by our own close
    *end = 0;
    bool json = strcasestr (buf, "\r\nContent-Type: application/json") != NULL;
    const char *cl = strcasestr (buf, "\r\nContent-Length: ");
    char *body = end + 4;
    size_t blen = len - (size_t) (body - buf);
    //  Only a whole body (a HEAD answer has the length and no body)
    if (!json || !cl || strtoul (cl + 18, NULL, 10) != blen || blen == 0)
        return;
    if (!utf8_valid (body, blen))
        s_die ("a JSON body is not valid UTF-8");
    cJSON *root = cJSON_ParseWithLength (body, blen);
    if (!root)
        s_die ("a JSON body does not parse");
    if (status >= 400 && !cJSON_IsObject (cJSON_GetObjectItemCaseSensitive (root, "error")))
        s_die ("an error answer has no error object");
    cJSON_Delete (root);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) s_port) };
    inet_pton (AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd < 0 || connect (fd, (struct sockaddr *) &sa, sizeof sa)) {
        edge_server_stats_t st;
        edge_server_stats (s_server, &st);
        fprintf (stderr, "fuzz_http: connect: %s; edge connections open %llu, refused %llu\n",
                 strerror (errno), (unsigned long long) st.connections,
                 (unsigned long long) st.conn_refused);
        s_die ("cannot connect to the edge (is it still serving?)");
    }
    size_t off = 0;
    while (off < size) {
        ssize_t n = send (fd, data + off, size - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;                      // the edge closed early (a limit): fine
        off += (size_t) n;
    }
    static char buf[S_REPLY_MAX + 1];
    size_t len = 0;
    bool half_closed = false;
    int64_t start = s_now_ms ();
    while (len < S_REPLY_MAX && !s_complete (buf, len)) {
        int64_t waited = s_now_ms () - start;
        if (waited > S_HANG_MS)
            s_die ("no answer and no close: the edge hangs on this input");
        if (!half_closed && waited > S_QUIET_MS) {
            shutdown (fd, SHUT_WR);     // incomplete request: let the edge see the end
            half_closed = true;
        }
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll (&p, 1, 50) <= 0)
            continue;
        ssize_t n = recv (fd, buf + len, S_REPLY_MAX - len, 0);
        if (n <= 0)
            break;
        len += (size_t) n;
    }
    close (fd);
    s_check_reply (buf, len);
    return 0;
}
