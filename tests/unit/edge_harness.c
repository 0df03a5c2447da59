// Test harness for the edge's HTTP tests (see edge_harness.h).
#include "edge_harness.h"
#include "log.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_CONFIG_MAX 8192

static const char s_config[] =
    "broker\n"
    "    heartbeat_ms = 100\n"
    "    liveness = 5\n"
    "    metrics = \"inproc://edge-test-metrics\"\n"
    "edge\n"
    "    listen = \"127.0.0.1:0\"\n"
    "    broker = \"%s\"\n"
    "    threads = 2\n"
    "    max_body = 1024\n"
    "%s"
    "models\n"
    "    fast-sim\n"
    "        provider = sim\n"
    "    slow-sim\n"
    "        provider = sim\n"
    "groups\n"
    "    quick\n"
    "        targets = \"fast-sim, slow-sim\"\n";

void eh_sleep_ms (int ms)
{
    struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
    nanosleep (&ts, NULL);
}

//  edge_extra with @ROOT@ replaced by a new directory www in a new temp directory.
static int s_expand (eh_t *self, const char *extra, char *out, size_t cap)
{
    const char *at = strstr (extra, "@ROOT@");
    if (!at) {
        snprintf (out, cap, "%s", extra);
        return 0;
    }
    snprintf (self->tmp, sizeof self->tmp, "/tmp/aigw-edge-root-XXXXXX");
    if (!mkdtemp (self->tmp))
        return -1;
    snprintf (self->root, sizeof self->root, "%s/www", self->tmp);
    if (mkdir (self->root, 0700))
        return -1;
    snprintf (out, cap, "%.*s%s%s", (int) (at - extra), extra, self->root, at + 6);
    return 0;
}

eh_t *eh_start (const char *edge_extra)
{
    log_init ("edge-http-test", LOG_LVL_WARN);
    eh_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    char extra[2048], text[S_CONFIG_MAX], err[256];
    self->fb = fake_broker_new ("tcp://127.0.0.1:*", EH_MODELS, 1);
    if (!self->fb || s_expand (self, edge_extra ? edge_extra : "", extra, sizeof extra))
        goto failed;
    snprintf (text, sizeof text, s_config, fake_broker_endpoint (self->fb), extra);
    self->cfg = cfg_parse (text, "edge-test", err, sizeof err);
    if (!self->cfg) {
        fprintf (stderr, "config: %s\n", err);
        goto failed;
    }
    self->srv = edge_server_new (self->cfg);
    if (!self->srv)
        goto failed;
    self->port = edge_server_port (self->srv);
    snprintf (self->base, sizeof self->base, "http://127.0.0.1:%d", self->port);
    self->curl = curl_easy_init ();
    //  Start quiet: the /readyz polls' connections closed (their requests counted)
    if (!self->curl || self->port <= 0 || !EH_WAIT (eh_ready (self))
        || !EH_WAIT (eh_stats (self).connections == 0))
        goto failed;
    return self;
failed:
    eh_stop (&self);
    return NULL;
}

static void s_remove_tree (const char *dir)
{
    char cmd[512];
    if (dir[0] && strncmp (dir, "/tmp/aigw-edge-root-", 20) == 0) {
        snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system (cmd) != 0)
            fprintf (stderr, "cannot remove %s\n", dir);
    }
}

void eh_stop (eh_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    eh_t *self = *self_p;
    *self_p = NULL;
    if (self->curl)
        curl_easy_cleanup (self->curl);
    edge_server_destroy (&self->srv);
    fake_broker_destroy (&self->fb);
    cfg_destroy (&self->cfg);
    s_remove_tree (self->tmp);
    free (self);
}

int eh_setup (void **state)
{
    eh_t *self = eh_start (*state);
    *state = self;
    return self ? 0 : -1;
}

int eh_teardown (void **state)
{
    eh_t *self = *state;
    eh_stop (&self);
    return 0;
}

//  --------------------------------------------------------------- curl

static size_t s_discard (char *data, size_t size, size_t n, void *arg)
{
    return size * n;
}

bool eh_ready (eh_t *self)
{
    CURL *c = curl_easy_init ();
    if (!c)
        return false;
    char url[128];
    snprintf (url, sizeof url, "%s/readyz", self->base);
    curl_easy_setopt (c, CURLOPT_URL, url);
    curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, s_discard);
    curl_easy_setopt (c, CURLOPT_TIMEOUT_MS, (long) EH_WAIT_MS);
    long status = 0;
    if (curl_easy_perform (c) == CURLE_OK)
        curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup (c);
    return status == 200;
}

static size_t s_on_body (char *data, size_t size, size_t n, void *arg)
{
    eh_resp_t *r = arg;
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

static size_t s_on_header (char *data, size_t size, size_t n, void *arg)
{
    eh_resp_t *r = arg;
    size_t len = size * n;
    size_t have = strlen (r->headers);
    if (strncmp (data, "HTTP/", 5) == 0)
        have = 0;                       // a new response (after 100 Continue): start over
    snprintf (r->headers + have, sizeof r->headers - have, "%.*s", (int) len, data);
    return len;
}

CURLcode eh_request (eh_t *self, const char *method, const char *path, const char *body,
                     const char *const *headers, eh_resp_t *r)
{
    CURL *c = self->curl;
    const char *abort_at = r->abort_at;
    bool http10 = r->http10;
    long timeout_ms = r->timeout_ms ? r->timeout_ms : EH_WAIT_MS;
    memset (r, 0, sizeof *r);
    r->abort_at = abort_at;
    r->http10 = http10;
    r->timeout_ms = timeout_ms;
    char url[512];
    snprintf (url, sizeof url, "%s%s", self->base, path);
    curl_easy_reset (c);
    curl_easy_setopt (c, CURLOPT_URL, url);
    curl_easy_setopt (c, CURLOPT_PATH_AS_IS, 1L);
    if (strcmp (method, "HEAD") == 0)
        curl_easy_setopt (c, CURLOPT_NOBODY, 1L);
    else
        curl_easy_setopt (c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt (c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt (c, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt (c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt (c, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (http10)
        curl_easy_setopt (c, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_0);
    struct curl_slist *list = curl_slist_append (NULL, "Expect:");
    if (body)
        list = curl_slist_append (list, "Content-Type: application/json");
    for (size_t i = 0; headers && headers[i]; i++)
        list = curl_slist_append (list, headers[i]);
    curl_easy_setopt (c, CURLOPT_HTTPHEADER, list);
    if (body) {
        curl_easy_setopt (c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt (c, CURLOPT_POSTFIELDSIZE, (long) strlen (body));
    }
    r->rc = curl_easy_perform (c);
    curl_slist_free_all (list);
    curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo (c, CURLINFO_NUM_CONNECTS, &r->connects);
    return r->rc;
}

CURLcode eh_chat (eh_t *self, const char *body, eh_resp_t *r)
{
    return eh_request (self, "POST", "/v1/chat/completions", body, NULL, r);
}

const char *eh_header (const eh_resp_t *r, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen (name);
    for (const char *line = r->headers; *line;) {
        size_t len = strcspn (line, "\n");
        if (len > nlen && strncasecmp (line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            v += strspn (v, " \t");
            size_t vlen = (size_t) (line + len - v);
            while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == ' '))
                vlen--;
            snprintf (out, cap, "%.*s", (int) vlen, v);
            return out;
        }
        line += len + (line[len] ? 1 : 0);
    }
    return NULL;
}

void eh_assert_header (const eh_resp_t *r, const char *name, const char *want)
{
    char v[512];
    if (!eh_header (r, name, v, sizeof v))
        fail_msg ("no %s header in:\n%s", name, r->headers);
    assert_string_equal (v, want);
}

void eh_assert_no_header (const eh_resp_t *r, const char *name)
{
    char v[512];
    if (eh_header (r, name, v, sizeof v))
        fail_msg ("unexpected %s: %s", name, v);
}

int eh_count (const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr (hay, needle); p; p = strstr (p + 1, needle))
        n++;
    return n;
}

fake_broker_stats_t eh_fb_stats (eh_t *self)
{
    fake_broker_stats_t st;
    fake_broker_stats (self->fb, &st);
    return st;
}

edge_server_stats_t eh_stats (eh_t *self)
{
    edge_server_stats_t st;
    edge_server_stats (self->srv, &st);
    return st;
}

//  --------------------------------------------------------------- raw sockets

int eh_connect (eh_t *self, const char *src_ip, int rcvbuf)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = { EH_WAIT_MS / 1000, 0 };
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (rcvbuf)
        setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in sa = { .sin_family = AF_INET };
    if (src_ip) {
        inet_pton (AF_INET, src_ip, &sa.sin_addr);
        if (bind (fd, (struct sockaddr *) &sa, sizeof sa)) {
            close (fd);
            return -1;
        }
    }
    sa.sin_port = htons ((uint16_t) self->port);
    inet_pton (AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect (fd, (struct sockaddr *) &sa, sizeof sa)) {
        close (fd);
        return -1;
    }
    return fd;
}

int eh_send (int fd, const char *text)
{
    size_t len = strlen (text), off = 0;
    while (off < len) {
        ssize_t n = send (fd, text + off, len - off, MSG_NOSIGNAL);
        if (n <= 0)
            return -1;
        off += (size_t) n;
    }
    return 0;
}

bool eh_read_until (int fd, char *buf, size_t cap, size_t *len, const char *needle)
{
    buf[*len] = 0;
    while (!strstr (buf, needle)) {
        if (*len + 1 >= cap)
            return false;
        ssize_t n = recv (fd, buf + *len, cap - 1 - *len, 0);
        if (n <= 0)
            return false;
        *len += (size_t) n;
        buf[*len] = 0;
    }
    return true;
}

size_t eh_read_all (int fd, char *buf, size_t cap, bool *eof)
{
    size_t len = 0;
    *eof = false;
    while (len + 1 < cap) {
        ssize_t n = recv (fd, buf + len, cap - 1 - len, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            *eof = true;
            break;
        }
        if (n < 0)
            break;
        len += (size_t) n;
    }
    buf[len] = 0;
    return len;
}

int eh_read_reply (int fd, char *buf, size_t cap)
{
    size_t len = 0;
    if (!eh_read_until (fd, buf, cap, &len, "\r\n\r\n"))
        return -1;
    int status = -1;
    if (sscanf (buf, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    size_t head = (size_t) (strstr (buf, "\r\n\r\n") - buf) + 4;
    size_t body = 0;
    for (const char *p = buf; p < buf + head; p = strchr (p, '\n') + 1)
        if (strncasecmp (p, "Content-Length:", 15) == 0)
            body = strtoul (p + 15, NULL, 10);
    while (len < head + body && len + 1 < cap) {
        ssize_t n = recv (fd, buf + len, cap - 1 - len, 0);
        if (n <= 0)
            return -1;
        len += (size_t) n;
    }
    buf[len] = 0;
    return status;
}
