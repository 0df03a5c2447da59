// Observability routes: /metrics, the SSE bridge endpoint, the dashboard and static
// files. Handlers here never touch the chat path.
#include "observe.h"
#include "bridge.h"
#include "prom.h"
#include "req.h"
#include "respond.h"
#include "aclock.h"
#include "log.h"

#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_TAKE_MAX 64                   // events taken from the fan-out per read
#define S_FILE_MAX ((off_t) 256 << 20)  // largest static file served

struct _observe_t {
    edge_shared_t *sh;
    const cfg_t *cfg;
    emetrics_t *em;
    bridge_t *bridge;
    char root[PATH_MAX];                // edge/document_root, resolved ("" = none)
};

static const char s_not_built[] =
    "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>aigw</title></head>\n"
    "<body style=\"font-family: sans-serif; max-width: 40em; margin: 3em auto\">\n"
    "<h1>aigw dashboard is not built</h1>\n"
    "<p>The edge serves the dashboard from <code>edge/document_root</code>, but there is no "
    "<code>index.html</code> there yet. Build it with</p>\n"
    "<pre>cd ui &amp;&amp; npm ci &amp;&amp; npm run build</pre>\n"
    "<p>and reload this page. The API is under <code>/v1/</code>; metrics are at "
    "<a href=\"/metrics\">/metrics</a>.</p>\n</body></html>\n";

//  --------------------------------------------------------------- /metrics

static void s_fill_edge (observe_t *self, prom_edge_t *e, int64_t age)
{
    edge_shared_t *sh = self->sh;
    prom_edge_from (e, self->em);
    edge_link_stats_t ls;
    edge_shared_link_stats (sh, &ls);
    e->link_up = edge_shared_link_up (sh);
    e->link_submitted = ls.submitted;
    e->link_reconnects = ls.reconnects;
    e->link_unrouted = ls.unrouted;
    e->link_bad = ls.bad_messages;
    e->link_resubmitted = ls.resubmitted;
    e->link_brokers_lost = ls.brokers_lost;
    e->link_restarts = ls.restarts;
    e->link_failed_on_down = ls.failed_on_down;
    size_t live = 0;
    e->brokers = (uint32_t) edge_shared_brokers (sh, &live);
    e->brokers_up = (uint32_t) live;
    int64_t conns = edge_shared_connections (sh);
    int64_t jobs = edge_shared_jobs (sh);
    e->connections = conns > 0 ? (uint64_t) conns : 0;
    e->conn_refused = edge_shared_stat (sh, EDGE_STAT_CONN_REFUSED);
    e->conn_over_limit = edge_shared_stat (sh, EDGE_STAT_CONN_OVER);
    e->header_timeouts = edge_shared_stat (sh, EDGE_STAT_HEADER_TIMEOUTS);
    e->jobs_in_flight = jobs > 0 ? (uint64_t) jobs : 0;
    e->jobs_refused = edge_shared_stat (sh, EDGE_STAT_JOBS_REFUSED);
    e->bad_framing = edge_shared_stat (sh, EDGE_STAT_BAD_FRAMING);
    e->stream_overflow = edge_shared_stat (sh, EDGE_STAT_STREAM_OVERFLOW);
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
    em_spend_t sp;
    emetrics_spend (self->em, &sp);
    e->cost_usd = sp.cost_usd;
    e->loser_cost_usd = sp.loser_cost_usd;
    e->saved_usd = sp.saved_usd;
    e->charges = sp.charges;
    e->late_charges = sp.late_charges;
    e->link_spends = ls.spends;
    auth_stats_t as;
    auth_stats (sh->auth, &as);
    e->auth_admitted = as.admitted;
    for (int i = 0; i < PROM_AUTH_REASONS; i++)
        e->auth_refused[i] = as.refused[i + 1];
    e->admin_refused = as.admin_refused;
    e->admin_calls = as.admin_calls;
    e->limits_shared = as.limits_shared;
    e->limits_up = as.limits_up;
    e->limits_errors = as.limits_errors;
    e->limits_refused = as.limits_refused;
}

enum MHD_Result observe_metrics_route (observe_t *self, edge_req_t *r)
{
    prom_edge_t *e = calloc (1, sizeof *e);
    if (!e)
        return edge_respond_error (r, 500, "internal_error", "out of memory", NULL);
    int64_t age;
    bsnap_t *broker = bridge_broker (self->bridge, OBSERVE_STALE_MS, &age);
    s_fill_edge (self, e, age);
    buf_t out;
    buf_init (&out, OBSERVE_METRICS_MAX);
    enum MHD_Result rc;
    if (prom_render (&out, e, broker) == 0) {
        char *text = out.data;
        size_t len = out.len;
        out.data = NULL;
        rc = edge_respond_send (r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len,
                                NULL);
    }
    else
        rc = edge_respond_error (r, 500, "internal_error", "metrics too large", NULL);
    buf_free (&out);
    bsnap_release (&broker);
    free (e);
    return rc;
}

//  --------------------------------------------------------------- /v1/aigw/events

static size_t s_pending (edge_req_t *r)
{
    return r->out.len - r->out_off;
}

//  Move what the fan-out holds into the request's buffer. -1 when the client was
//  dropped or the fan-out closed.
static int s_take (edge_req_t *r)
{
    fmsg_t *msgs[S_TAKE_MAX];
    int n = fanout_take (r->fc, msgs, S_TAKE_MAX, 0);
    for (int i = 0; i < n; i++) {
        if (sse_append (&r->out, msgs[i]->data, msgs[i]->len) != SSE_OK)
            n = -1;
        fanout_msg_release (&msgs[i]);
    }
    if (n > 0)
        r->ping_at_ms = aclock_now_ms () + EDGE_EVENTS_PING_MS;
    return n;
}

static ssize_t s_events_reader (void *cls, uint64_t pos, char *buf, size_t max)
{
    edge_req_t *r = cls;
    if (r->gone || (s_pending (r) == 0 && s_take (r) < 0))
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (s_pending (r))
        return (ssize_t) edge_req_take_out (r, buf, max);
    edge_req_suspend (r);
    return 0;
}

enum MHD_Result observe_events_route (observe_t *self, edge_req_t *r)
{
    edge_loop_t *loop = r->loop;
    r->fc = fanout_join_notify (bridge_fanout (self->bridge), loop->wake_fd);
    if (!r->fc)
        return edge_respond_error (r, 503, "unavailable", "too many event stream clients",
                                   "Retry-After: 5\n");
    r->state = EDGE_REQ_EVENTS;
    r->status = 200;
    r->ev_next = loop->events;
    if (loop->events)
        loop->events->ev_prev = r;
    loop->events = r;
    sse_append (&r->out, "retry: 2000\n\n", 13);
    r->ping_at_ms = aclock_now_ms () + EDGE_EVENTS_PING_MS;
    edge_timer_set (&loop->timers, &r->timer, r->ping_at_ms);
    return edge_respond_sse (r, s_events_reader);
}

void observe_events_wake (edge_loop_t *loop)
{
    for (edge_req_t *r = loop->events; r; r = r->ev_next)
        edge_req_resume (r);
}

void observe_events_timer (edge_req_t *r, int64_t now)
{
    if (now >= r->ping_at_ms) {
        if (s_pending (r) == 0)
            sse_append (&r->out, ": ping\n\n", 8);
        r->ping_at_ms = now + EDGE_EVENTS_PING_MS;
        edge_req_resume (r);
    }
    edge_timer_set (&r->loop->timers, &r->timer, r->ping_at_ms);
}

void observe_events_leave (observe_t *self, edge_req_t *r)
{
    edge_loop_t *loop = r->loop;
    if (r->ev_prev)
        r->ev_prev->ev_next = r->ev_next;
    else
    if (loop->events == r)
        loop->events = r->ev_next;
    if (r->ev_next)
        r->ev_next->ev_prev = r->ev_prev;
    r->ev_prev = r->ev_next = NULL;
    fanout_leave (bridge_fanout (self->bridge), &r->fc);
}

//  --------------------------------------------------------------- static files

static const char *s_mime (const char *path)
{
    static const struct { const char *ext, *type; } types[] = {
        { ".html", "text/html; charset=utf-8" }, { ".js", "text/javascript; charset=utf-8" },
        { ".mjs", "text/javascript; charset=utf-8" }, { ".css", "text/css; charset=utf-8" },
        { ".json", "application/json" }, { ".svg", "image/svg+xml" },
        { ".png", "image/png" }, { ".jpg", "image/jpeg" }, { ".ico", "image/x-icon" },
        { ".woff2", "font/woff2" }, { ".woff", "font/woff" }, { ".map", "application/json" },
        { ".txt", "text/plain; charset=utf-8" }, { ".webmanifest", "application/manifest+json" },
    };
    const char *dot = strrchr (path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcasecmp (dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

//  Open root + url if it is a regular file inside root. -1 if not.
static int s_open_file (const char *root, const char *url, off_t *size)
{
    if (url[0] != '/' || strstr (url, "/..") || strchr (url, '\\'))
        return -1;
    char joined[PATH_MAX], real[PATH_MAX];
    int n = snprintf (joined, sizeof joined, "%s%s", root, url);
    if (n < 0 || (size_t) n >= sizeof joined || !realpath (joined, real))
        return -1;
    size_t rlen = strlen (root);
    if (strncmp (real, root, rlen) != 0 || (real[rlen] != '/' && real[rlen] != 0))
        return -1;
    int fd = open (real, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && (fstat (fd, &st) || !S_ISREG (st.st_mode) || st.st_size > S_FILE_MAX)) {
        close (fd);
        fd = -1;
    }
    if (fd >= 0)
        *size = st.st_size;
    return fd;
}

enum MHD_Result observe_static_route (observe_t *self, edge_req_t *r, const char *url,
                                      const char *method)
{
    if (strcmp (method, "GET") != 0 && strcmp (method, "HEAD") != 0) {
        if (!self->root[0])
            return edge_respond_error (r, 404, "not_found", "no such route", NULL);
        return edge_respond_error (r, 405, "method_not_allowed", "use GET", "Allow: GET\n");
    }
    bool index = strcmp (url, "/") == 0;
    off_t size = 0;
    int fd = self->root[0] ? s_open_file (self->root, index ? "/index.html" : url, &size) : -1;
    if (fd < 0 && index && self->root[0]) {
        char *page = strdup (s_not_built);
        return edge_respond_send (r, 404, "text/html; charset=utf-8", page,
                                  page ? sizeof s_not_built - 1 : 0, NULL);
    }
    if (fd < 0)
        return edge_respond_error (r, 404, "not_found", "no such route", NULL);
    struct MHD_Response *resp = MHD_create_response_from_fd ((size_t) size, fd);
    if (!resp) {
        close (fd);
        return MHD_NO;
    }
    enum MHD_Result rc = edge_respond_queue (r, 200, resp, s_mime (index ? "index.html" : url),
                                             "no-cache", "X-Content-Type-Options: nosniff\n");
    r->state = EDGE_REQ_DONE;
    return rc;
}

//  --------------------------------------------------------------- object

static bool s_up (void *arg)
{
    return edge_shared_link_up (arg);
}

observe_t *observe_new (edge_shared_t *sh)
{
    observe_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->sh = sh;
    self->cfg = sh->cfg;
    const char *root = self->cfg->edge.document_root;
    if (root[0] && !realpath (root, self->root))
        snprintf (self->root, sizeof self->root, "%s", root);
    self->em = emetrics_new ();
    if (self->em)
        self->bridge = bridge_new (self->cfg->broker.metrics, self->cfg->broker.max_frame,
                                   self->em, sh->box, s_up, sh,
                                   OBSERVE_CLIENTS_MAX, self->cfg);
    if (!self->bridge) {
        observe_destroy (&self);
        return NULL;
    }
    char index[PATH_MAX + 16];
    int n = snprintf (index, sizeof index, "%s/index.html", self->root);
    if (root[0] && n > 0 && (size_t) n < sizeof index && access (index, R_OK) != 0)
        log_warn ("no dashboard in %s (build it: cd ui && npm ci && npm run build)", root);
    return self;
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
