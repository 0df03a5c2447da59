// Observability glue: request metrics hooks, /metrics, the SSE bridge endpoint and the
// dashboard's index page. Handlers here never touch the chat path.
#include "observe.h"
#include "bridge.h"
#include "prom.h"
#include "aclock.h"
#include "log.h"

#include <civetweb.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_HEAD_MAX 512
#define S_TAKE_MAX 64                   // events written per mg_write
#define S_PING_MS 15000                 // SSE comment when nothing else was sent

struct _observe_t {
    const cfg_t *cfg;
    edge_link_t *link;                  // may be NULL
    emetrics_t *em;
    bridge_t *bridge;
};

//  The request this civetweb thread is handling.
static _Thread_local struct {
    bool active;
    em_route_t route;
    int64_t start_us;
} s_req;

static const char s_not_built[] =
    "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>aigw</title></head>\n"
    "<body style=\"font-family: sans-serif; max-width: 40em; margin: 3em auto\">\n"
    "<h1>aigw dashboard is not built</h1>\n"
    "<p>The edge serves the dashboard from <code>edge/document_root</code>, but there is no "
    "<code>index.html</code> there yet. Build it with</p>\n"
    "<pre>cd ui &amp;&amp; npm ci &amp;&amp; npm run build</pre>\n"
    "<p>and reload this page. The API is under <code>/v1/</code>; metrics are at "
    "<a href=\"/metrics\">/metrics</a>.</p>\n</body></html>\n";

//  --------------------------------------------------------------- helpers

static bool s_has_token (const char *header, const char *token)
{
    size_t tlen = strlen (token);
    for (const char *p = header; *p;) {
        p += strspn (p, " \t,");
        size_t len = strcspn (p, ",");
        size_t trimmed = len;
        while (trimmed && (p[trimmed - 1] == ' ' || p[trimmed - 1] == '\t'))
            trimmed--;
        if (trimmed == tlen && strncasecmp (p, token, tlen) == 0)
            return true;
        p += len;
    }
    return false;
}

//  civetweb's keep-alive rule for a request without an unread body.
static bool s_keep_alive (struct mg_connection *conn)
{
    const struct mg_request_info *ri = mg_get_request_info (conn);
    if (ri->content_length > 0)
        return false;
    const char *h = mg_get_header (conn, "Connection");
    if (h)
        return s_has_token (h, "keep-alive");
    return ri->http_version && strcmp (ri->http_version, "1.1") == 0;
}

//  Whole response in one mg_write. Returns status.
static int s_send (struct mg_connection *conn, int status, const char *type, const char *body,
                   size_t len, bool keep_alive, const char *extra)
{
    char head[S_HEAD_MAX];
    int n = snprintf (head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Cache-Control: no-store\r\nConnection: %s\r\n%s\r\n",
                      status, mg_get_response_code_text (conn, status), type, len,
                      keep_alive ? "keep-alive" : "close", extra ? extra : "");
    if (n < 0 || (size_t) n >= sizeof head)
        return 500;
    if (!keep_alive)
        mg_disable_connection_keep_alive (conn);
    char *out = malloc ((size_t) n + len);
    if (!out)
        return 500;
    memcpy (out, head, (size_t) n);
    memcpy (out + n, body, len);
    mg_write (conn, out, (size_t) n + len);
    free (out);
    return status;
}

static int s_send_error (struct mg_connection *conn, int status, const char *code,
                         const char *message, bool keep_alive, const char *extra)
{
    char body[384];
    const char *type = status == 503 ? "service_unavailable"
                     : status >= 500 ? "server_error" : "invalid_request_error";
    int n = snprintf (body, sizeof body,
                      "{\"error\":{\"message\":\"%s\",\"type\":\"%s\",\"code\":\"%s\"}}",
                      message, type, code);
    if (n < 0 || (size_t) n >= sizeof body)
        return 500;
    return s_send (conn, status, "application/json", body, (size_t) n, keep_alive, extra);
}

//  Only GET passes; else 405 is sent. Returns 0 or the status.
static int s_method (struct mg_connection *conn)
{
    if (strcmp (mg_get_request_info (conn)->request_method, "GET") == 0)
        return 0;
    return s_send_error (conn, 405, "method_not_allowed", "use GET", s_keep_alive (conn),
                         "Allow: GET\r\n");
}

//  --------------------------------------------------------------- /metrics

static void s_fill_edge (observe_t *self, prom_edge_t *e, const bsnap_t *broker, int64_t age)
{
    prom_edge_from (e, self->em);
    if (self->link) {
        edge_link_stats_t ls;
        edge_link_stats (self->link, &ls);
        e->link_up = edge_link_up (self->link);
        e->link_submitted = ls.submitted;
        e->link_reconnects = ls.reconnects;
        e->link_unrouted = ls.unrouted;
        e->link_late = ls.late_discarded;
        e->link_bad = ls.bad_messages;
    }
    fanout_stats_t fs;
    fanout_stats (bridge_fanout (self->bridge), &fs);
    bridge_stats_t bs;
    bridge_stats (self->bridge, &bs);
    e->bridge_clients = fs.clients;
    e->bridge_refused = fs.refused;
    e->bridge_dropped = fs.dropped;
    e->bridge_bad = bs.bad;
    for (int i = 0; i < PROM_BRIDGE_TOPICS; i++)
        e->bridge_messages[i] = bs.relayed[i];
    e->broker_age_s = age >= 0 ? (double) age / 1000.0 : NAN;
}

static int s_metrics (struct mg_connection *conn, void *cbdata)
{
    observe_t *self = cbdata;
    int rc = s_method (conn);
    if (rc)
        return rc;
    prom_edge_t *e = calloc (1, sizeof *e);
    if (!e)
        return s_send_error (conn, 500, "internal_error", "out of memory", false, NULL);
    int64_t age;
    bsnap_t *broker = bridge_broker (self->bridge, OBSERVE_STALE_MS, &age);
    s_fill_edge (self, e, broker, age);
    ebuf_t out;
    ebuf_init (&out, OBSERVE_METRICS_MAX);
    if (prom_render (&out, e, broker) == 0)
        rc = s_send (conn, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len,
                     s_keep_alive (conn), NULL);
    else
        rc = s_send_error (conn, 500, "internal_error", "metrics too large", false, NULL);
    ebuf_free (&out);
    bsnap_release (&broker);
    free (e);
    return rc;
}

//  --------------------------------------------------------------- /v1/aigw/events

//  Write a batch of frames with one mg_write. 0 / -1 (the browser went away).
static int s_write_batch (struct mg_connection *conn, fmsg_t **msgs, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += msgs[i]->len;
    char *buf = malloc (total);
    int rc = -1;
    if (buf) {
        size_t off = 0;
        for (int i = 0; i < n; i++) {
            memcpy (buf + off, msgs[i]->data, msgs[i]->len);
            off += msgs[i]->len;
        }
        rc = mg_write (conn, buf, total) == (int) total ? 0 : -1;
        free (buf);
    }
    for (int i = 0; i < n; i++)
        fmsg_release (&msgs[i]);
    return rc;
}

//  Relay events until the browser goes away, falls behind (dropped) or we shut down.
static void s_stream (struct mg_connection *conn, fanout_client_t *client)
{
    fmsg_t *msgs[S_TAKE_MAX];
    while (true) {
        int n = fanout_take (client, msgs, S_TAKE_MAX, S_PING_MS);
        if (n < 0)
            break;
        if (n == 0 ? mg_write (conn, ": ping\n\n", 8) != 8 : s_write_batch (conn, msgs, n) != 0)
            break;
    }
}

static int s_events (struct mg_connection *conn, void *cbdata)
{
    observe_t *self = cbdata;
    int rc = s_method (conn);
    if (rc)
        return rc;
    fanout_t *fanout = bridge_fanout (self->bridge);
    fanout_client_t *client = fanout_join (fanout);
    if (!client)
        return s_send_error (conn, 503, "unavailable", "too many event stream clients", false,
                             "Retry-After: 5\r\n");
    static const char head[] =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
        "Cache-Control: no-store\r\nConnection: close\r\nX-Accel-Buffering: no\r\n\r\n"
        "retry: 2000\n\n";
    mg_disable_connection_keep_alive (conn);
    if (mg_write (conn, head, sizeof head - 1) == (int) (sizeof head - 1))
        s_stream (conn, client);
    fanout_leave (fanout, &client);
    return 200;
}

//  --------------------------------------------------------------- dashboard

static int s_index (struct mg_connection *conn, void *cbdata)
{
    observe_t *self = cbdata;
    int rc = s_method (conn);
    if (rc)
        return rc;
    char path[PATH_MAX];
    struct stat st;
    int n = snprintf (path, sizeof path, "%s/index.html", self->cfg->edge.document_root);
    if (n > 0 && (size_t) n < sizeof path && stat (path, &st) == 0 && S_ISREG (st.st_mode)) {
        mg_send_mime_file2 (conn, path, "text/html; charset=utf-8", "Cache-Control: no-cache\r\n");
        return 200;
    }
    return s_send (conn, 404, "text/html; charset=utf-8", s_not_built, sizeof s_not_built - 1,
                   s_keep_alive (conn), NULL);
}

//  --------------------------------------------------------------- hooks

void observe_begin (observe_t *self, const struct mg_connection *conn)
{
    const struct mg_request_info *ri = mg_get_request_info (conn);
    s_req.route = emetrics_route (ri ? ri->local_uri : NULL);
    s_req.start_us = aclock_now_us ();
    s_req.active = true;
    emetrics_take_upstream ();          // forget a previous request's note
    emetrics_request_begin (self->em, s_req.route);
}

void observe_end (observe_t *self, const struct mg_connection *conn, int status)
{
    if (!s_req.active)
        return;
    s_req.active = false;
    int64_t latency = aclock_now_us () - s_req.start_us;
    if (latency < 0)
        latency = 0;
    int64_t upstream = emetrics_take_upstream ();
    int64_t overhead = -1;
    if (s_req.route == EM_ROUTE_CHAT && upstream >= 0 && status >= 200 && status < 300)
        overhead = latency > upstream ? latency - upstream : 0;
    emetrics_request_done (self->em, s_req.route, status, (uint64_t) latency, overhead);
}

//  --------------------------------------------------------------- object

observe_t *observe_new (const cfg_t *cfg, edge_link_t *link)
{
    observe_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->cfg = cfg;
    self->link = link;
    self->em = emetrics_new ();
    size_t threads = cfg->edge.threads ? cfg->edge.threads : 64;
    size_t clients = threads / 2 < OBSERVE_CLIENTS_MAX ? threads / 2 : OBSERVE_CLIENTS_MAX;
    if (self->em)
        self->bridge = bridge_new (cfg->broker.metrics, cfg->broker.max_frame, self->em, link,
                                   clients ? clients : 1);
    if (!self->bridge) {
        observe_destroy (&self);
        return NULL;
    }
    const char *root = cfg->edge.document_root;
    char index[PATH_MAX];
    int n = snprintf (index, sizeof index, "%s/index.html", root);
    if (root[0] && n > 0 && (size_t) n < sizeof index && access (index, R_OK) != 0)
        log_warn ("no dashboard in %s (build it: cd ui && npm ci && npm run build)", root);
    return self;
}

void observe_attach (observe_t *self, struct mg_context *mg)
{
    mg_set_request_handler (mg, "/metrics", s_metrics, self);
    mg_set_request_handler (mg, "/v1/aigw/events", s_events, self);
    if (self->cfg->edge.document_root[0])
        mg_set_request_handler (mg, "/$", s_index, self);   // "/" alone
}

void observe_close (observe_t *self)
{
    if (self && self->bridge)
        bridge_close (self->bridge);
}

void observe_destroy (observe_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    observe_t *self = *self_p;
    *self_p = NULL;
    bridge_destroy (&self->bridge);
    emetrics_destroy (&self->em);
    free (self);
}

emetrics_t *observe_metrics (observe_t *self)
{
    return self->em;
}

int observe_resolve_root (char *root, size_t cap, const char *config_path)
{
    if (!root[0] || root[0] == '/')
        return 0;
    char dir[PATH_MAX] = ".";
    if (config_path && strrchr (config_path, '/')) {
        size_t len = (size_t) (strrchr (config_path, '/') - config_path);
        snprintf (dir, sizeof dir, "%.*s", (int) (len ? len : 1), config_path);
    }
    char absdir[PATH_MAX];
    if (!realpath (dir, absdir))
        snprintf (absdir, sizeof absdir, "%s", dir);
    char joined[PATH_MAX * 2], real[PATH_MAX];
    snprintf (joined, sizeof joined, "%s/%s", absdir, root);
    const char *result = realpath (joined, real) ? real : joined;
    if (strlen (result) >= cap)
        return -1;
    memmove (root, result, strlen (result) + 1);
    return 0;
}
