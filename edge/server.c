// The edge's HTTP server: event loops on libmicrohttpd (external epoll), one MHD
// daemon, listening socket, broker link, timer heap and hang-up watch per loop.
// Everything a loop owns is touched by its thread only; the server owns what the
// loops share (shared.h: limits, counters, the broker status, the metrics) and the
// per-IP table. The server calls down into the modules, never the other way.
#include "server.h"
#include "edge_int.h"
#include "http.h"
#include "observe.h"
#include "req.h"
#include "respond.h"
#include "shared.h"
#include "timer.h"
#include "aclock.h"
#include "log.h"
#include "wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zmq.h>

#define S_LOOPS_MAX 64
#define S_BACKLOG 4096
#define S_WATCH_BATCH 256
#define S_IP_SLOTS_MIN 1024             // per-IP table slots (power of two, grows)
#define S_TLS_FILE_MAX (1u << 20)

//  The snapshot is the shared counters in order, then the two gauges
_Static_assert (sizeof (edge_server_stats_t) == (EDGE_STATS + 2) * sizeof (uint64_t),
                "edge_server_stats_t and edge_stat_t disagree");

//  Open connections per client address: open addressing, counts never below 1 for a
//  present key (a key whose count falls to 0 is removed with backward shift).
typedef struct {
    uint8_t key[16];
    uint8_t len;                        // 0 = empty
    uint32_t count;
} s_ip_slot_t;

struct _edge_server_t {
    const cfg_t *cfg;
    void *zctx;
    edge_shared_t sh;                   // the box, auth and obs in it are owned here
    edge_loop_t loops[S_LOOPS_MAX];
    int nloops;
    int port;
    char *tls_cert, *tls_key;           // PEM text for MHD (owned)
    pthread_mutex_t ip_lock;
    s_ip_slot_t *ips;
    size_t ip_cap, ip_size;
};

//  --------------------------------------------------------------- per-IP counts

static size_t s_ip_hash (const uint8_t *key, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ key[i]) * 1099511628211ULL;
    return (size_t) (h ^ (h >> 29));
}

static s_ip_slot_t *s_ip_slot (s_ip_slot_t *slots, size_t cap, const uint8_t *key, size_t len)
{
    for (size_t i = s_ip_hash (key, len) & (cap - 1);; i = (i + 1) & (cap - 1)) {
        s_ip_slot_t *s = &slots[i];
        if (s->len == 0 || (s->len == len && memcmp (s->key, key, len) == 0))
            return s;
    }
}

static int s_ip_grow (edge_server_t *self)
{
    size_t cap = self->ip_cap ? self->ip_cap * 2 : S_IP_SLOTS_MIN;
    s_ip_slot_t *slots = calloc (cap, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < self->ip_cap; i++)
        if (self->ips[i].len)
            *s_ip_slot (slots, cap, self->ips[i].key, self->ips[i].len) = self->ips[i];
    free (self->ips);
    self->ips = slots;
    self->ip_cap = cap;
    return 0;
}

static uint32_t s_ip_get (edge_server_t *self, const uint8_t *key, size_t len)
{
    pthread_mutex_lock (&self->ip_lock);
    uint32_t n = self->ip_cap ? s_ip_slot (self->ips, self->ip_cap, key, len)->count : 0;
    pthread_mutex_unlock (&self->ip_lock);
    return n;
}

static int s_ip_add (edge_server_t *self, const uint8_t *key, size_t len)
{
    pthread_mutex_lock (&self->ip_lock);
    int rc = 0;
    if ((self->ip_size + 1) * 2 > self->ip_cap && s_ip_grow (self))
        rc = -1;
    else {
        s_ip_slot_t *s = s_ip_slot (self->ips, self->ip_cap, key, len);
        if (!s->len) {
            memcpy (s->key, key, len);
            s->len = (uint8_t) len;
            self->ip_size++;
        }
        s->count++;
    }
    pthread_mutex_unlock (&self->ip_lock);
    return rc;
}

static void s_ip_remove_at (edge_server_t *self, size_t hole)
{
    size_t mask = self->ip_cap - 1;
    for (size_t i = (hole + 1) & mask; self->ips[i].len; i = (i + 1) & mask) {
        size_t home = s_ip_hash (self->ips[i].key, self->ips[i].len) & mask;
        bool stays = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!stays) {
            self->ips[hole] = self->ips[i];
            hole = i;
        }
    }
    memset (&self->ips[hole], 0, sizeof self->ips[hole]);
    self->ip_size--;
}

static void s_ip_del (edge_server_t *self, const uint8_t *key, size_t len)
{
    pthread_mutex_lock (&self->ip_lock);
    s_ip_slot_t *s = self->ip_cap ? s_ip_slot (self->ips, self->ip_cap, key, len) : NULL;
    if (s && s->len && --s->count == 0)
        s_ip_remove_at (self, (size_t) (s - self->ips));
    pthread_mutex_unlock (&self->ip_lock);
}

//  The address bytes of a sockaddr (IPv4-mapped IPv6 counts as IPv4). 0 if unknown.
static size_t s_ip_key (const struct sockaddr *sa, uint8_t key[16])
{
    if (sa && sa->sa_family == AF_INET) {
        memcpy (key, &((const struct sockaddr_in *) sa)->sin_addr, 4);
        return 4;
    }
    if (sa && sa->sa_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *) sa)->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        if (memcmp (a, mapped, 12) == 0) {
            memcpy (key, a + 12, 4);
            return 4;
        }
        memcpy (key, a, 16);
        return 16;
    }
    return 0;
}

//  --------------------------------------------------------------- hang-up watch

//  Every connection's fd sits in the loop's hang-up set from accept to close
//  (EPOLLRDHUP, edge-triggered): one epoll_ctl each way per connection, none per request.
static void s_watch_conn (edge_conn_t *c)
{
    struct epoll_event ev = { .events = EPOLLRDHUP | EPOLLET, .data.ptr = c };
    if (c->fd >= 0 && epoll_ctl (c->loop->watch_fd, EPOLL_CTL_ADD, c->fd, &ev) == 0)
        c->watched = true;
}

static void s_check_watch (edge_loop_t *loop)
{
    struct epoll_event evs[S_WATCH_BATCH];
    int n;
    while ((n = epoll_wait (loop->watch_fd, evs, S_WATCH_BATCH, 0)) > 0) {
        for (int i = 0; i < n; i++) {
            edge_conn_t *c = evs[i].data.ptr;
            c->hup = true;
            edge_req_t *r = c->watcher;
            if (r) {
                edge_req_unwatch (r);
                edge_req_gone (r);
            }
        }
        if (n < S_WATCH_BATCH)
            break;
    }
}

//  --------------------------------------------------------------- connections

//  Raw 408 on a connection whose headers did not arrive in time, then close it. MHD
//  has written nothing on it (no request is in progress), so the bytes stand alone.
static void s_header_timeout (void *owner, int64_t now)
{
    edge_conn_t *c = owner;
    //  Not on an idle keep-alive connection, and not over TLS (plain bytes would
    //  break the TLS stream; the connection is closed all the same)
    bool answer = (c->line_seen || c->requests == 0) && !c->loop->srv->tls_cert;
    if (answer && edge_respond_raw (c->fd, 408, "request_timeout",
                                    "the request headers did not arrive in time"))
        edge_shared_count (c->loop->sh, EDGE_STAT_HEADER_TIMEOUTS);
    shutdown (c->fd, SHUT_RDWR);        // MHD sees the end and closes the connection
}

//  Wait for the next request: header_timeout_ms on a new connection, idle_timeout_ms
//  between keep-alive requests (tightened to header_timeout_ms once its line arrives).
static void s_arm_headers (edge_conn_t *c, bool first)
{
    c->in_request = false;
    c->line_seen = false;
    const cfg_t *cfg = c->loop->srv->cfg;
    uint32_t ms = first ? cfg->edge.header_timeout_ms : cfg->edge.idle_timeout_ms;
    edge_timer_set (&c->loop->timers, &c->header_timer, aclock_now_ms () + ms);
}

static enum MHD_Result s_accept_policy (void *cls, const struct sockaddr *addr, socklen_t len)
{
    edge_loop_t *loop = cls;
    edge_server_t *srv = loop->srv;
    const cfg_t *cfg = srv->cfg;
    int64_t open = edge_shared_connections (&srv->sh);
    int64_t hard = (int64_t) cfg->edge.max_connections + cfg->edge.max_connections / 8 + 16;
    if (open >= hard) {
        edge_shared_count (&srv->sh, EDGE_STAT_CONN_REFUSED);
        return MHD_NO;
    }
    uint8_t key[16];
    size_t klen = s_ip_key (addr, key);
    if (klen && s_ip_get (srv, key, klen) >= cfg->edge.max_per_ip) {
        edge_shared_count (&srv->sh, EDGE_STAT_CONN_REFUSED);
        edge_shared_count (&srv->sh, EDGE_STAT_IP_REFUSED);
        return MHD_NO;
    }
    return MHD_YES;
}

static void s_conn_started (edge_loop_t *loop, struct MHD_Connection *mc, void **socket_ctx)
{
    edge_server_t *srv = loop->srv;
    edge_conn_t *c = calloc (1, sizeof *c);
    *socket_ctx = c;
    if (!c)
        return;
    c->loop = loop;
    const union MHD_ConnectionInfo *fi = MHD_get_connection_info (mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    c->fd = fi ? fi->connect_fd : -1;
    const union MHD_ConnectionInfo *ai = MHD_get_connection_info (mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    size_t klen = s_ip_key (ai ? ai->client_addr : NULL, c->ip);
    if (klen && s_ip_add (srv, c->ip, klen) == 0)
        c->ip_len = (uint8_t) klen;
    int64_t open = edge_shared_conn_open (&srv->sh);
    if (open > (int64_t) srv->cfg->edge.max_connections) {
        c->over_limit = true;
        edge_shared_count (&srv->sh, EDGE_STAT_CONN_OVER);
    }
    if (c->fd >= 0) {
        int one = 1;
        setsockopt (c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    edge_timer_init (&c->header_timer, s_header_timeout, c);
    s_arm_headers (c, true);
    s_watch_conn (c);
}

static void s_conn_closed (edge_loop_t *loop, edge_conn_t *c)
{
    if (!c)
        return;
    edge_timer_clear (&loop->timers, &c->header_timer);
    if (c->watched)
        epoll_ctl (loop->watch_fd, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->watcher)
        c->watcher->watched = false;
    if (c->ip_len)
        s_ip_del (loop->srv, c->ip, c->ip_len);
    edge_shared_conn_close (loop->sh);
    free (c);
}

static void s_notify_connection (void *cls, struct MHD_Connection *mc, void **socket_ctx,
                                 enum MHD_ConnectionNotificationCode code)
{
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        s_conn_started (cls, mc, socket_ctx);
    else
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        s_conn_closed (cls, *socket_ctx);
        *socket_ctx = NULL;
    }
}

//  The request line arrived: the request's context starts here (every request that
//  MHD knows of ends in s_completed, even one refused by MHD's own parser).
static void *s_uri_log (void *cls, const char *uri, struct MHD_Connection *mc)
{
    edge_loop_t *loop = cls;
    edge_req_t *r = calloc (1, sizeof *r);
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info (mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    edge_conn_t *c = ci ? ci->socket_context : NULL;
    if (c) {
        c->line_seen = true;
        int64_t by = aclock_now_ms () + loop->srv->cfg->edge.header_timeout_ms;
        if (c->header_timer.node.idx == THEAP_NONE || c->header_timer.node.when > by)
            edge_timer_set (&loop->timers, &c->header_timer, by);
    }
    if (!r)
        return NULL;
    r->loop = loop;
    r->mc = mc;
    r->conn = c;
    r->state = EDGE_REQ_HEADERS;
    r->target_len = strlen (uri);
    r->start_us = aclock_now_us ();
    r->upstream_us = -1;
    edge_timer_init (&r->timer, edge_http_timer, r);
    char path[256];
    size_t plen = strcspn (uri, "?");
    snprintf (path, sizeof path, "%.*s", (int) (plen < sizeof path ? plen : 0), uri);
    r->route = plen < sizeof path ? emetrics_route (path) : EM_ROUTE_STATIC;
    r->all_next = loop->reqs;
    if (loop->reqs)
        loop->reqs->all_prev = r;
    loop->reqs = r;
    emetrics_request_begin (observe_metrics (loop->sh->obs), r->route);
    return r;
}

static void s_completed (void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    edge_req_t *r = *con_cls;
    *con_cls = NULL;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info (mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    edge_conn_t *c = ci ? ci->socket_context : NULL;
    if (c)
        c->requests++;
    if (c && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        s_arm_headers (c, false);       // keep-alive: wait for the next request
    if (r)
        edge_http_completed (r);
}

static void s_mhd_log (void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf (line, sizeof line, fmt, ap);
    line[strcspn (line, "\n")] = 0;
    log_debug ("microhttpd: %s", line);
}

//  --------------------------------------------------------------- the loop

static void s_wake (edge_loop_t *loop)
{
    uint64_t one = 1;
    if (write (loop->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_warn ("cannot wake loop %d: %s", loop->index, strerror (errno));
}

static void s_on_wake (edge_loop_t *loop)
{
    uint64_t v;
    while (read (loop->wake_fd, &v, sizeof v) > 0)
        ;
    if (atomic_exchange (&loop->fail, false))
        edge_link_fail_all (loop->link, "the edge is shutting down");
    observe_events_wake (loop);
}

static int64_t s_poll_timeout (edge_loop_t *loop, int64_t now, int64_t link_at)
{
    int64_t until = link_at;
    theap_node_t *t = theap_top (&loop->timers);
    if (t && t->when < until)
        until = t->when;
    MHD_UNSIGNED_LONG_LONG mhd_ms = 0;
    if (MHD_get_timeout (loop->mhd, &mhd_ms) == MHD_YES && (int64_t) mhd_ms < until - now)
        until = now + (int64_t) mhd_ms;
    return until > now ? until - now : 0;
}

static void *s_loop_run (void *arg)
{
    edge_loop_t *loop = arg;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info (loop->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    int mhd_fd = di ? di->epoll_fd : -1;
    int64_t link_at = 0;
    while (!atomic_load (&loop->stop)) {
        int64_t now = aclock_now_ms ();
        if (now >= link_at)
            link_at = edge_link_tick (loop->link, now);
        zmq_pollitem_t items[3 + 2 * CFG_BROKERS_MAX] = {
            { NULL, mhd_fd, ZMQ_POLLIN, 0 },
            { NULL, loop->watch_fd, ZMQ_POLLIN, 0 },
            { NULL, loop->wake_fd, ZMQ_POLLIN, 0 },
        };
        size_t n = 3 + edge_link_poll_items (loop->link, items + 3, 2 * CFG_BROKERS_MAX);
        if (zmq_poll (items, (int) n, s_poll_timeout (loop, now, link_at)) < 0 && errno != EINTR)
            log_warn ("loop %d: poll failed: %s", loop->index, zmq_strerror (errno));
        bool link_in = false;
        for (size_t i = 3; i < n; i++)
            link_in |= (items[i].revents & ZMQ_POLLIN) != 0;
        if (link_in) {
            edge_link_recv (loop->link);
            link_at = edge_link_tick (loop->link, aclock_now_ms ());
        }
        if (items[1].revents)
            s_check_watch (loop);
        if (items[2].revents)
            s_on_wake (loop);
        edge_timer_run (&loop->timers, aclock_now_ms ());
        MHD_run (loop->mhd);
        atomic_store (&loop->idle, edge_link_waiting (loop->link) == 0);
    }
    //  MHD may not stop with suspended connections: end every request still open
    for (edge_req_t *r = loop->reqs; r; r = r->all_next)
        edge_req_gone (r);
    edge_link_fail_all (loop->link, "the edge is shutting down");
    return NULL;
}

//  --------------------------------------------------------------- listening

//  Split "host:port", "[v6]:port" or "port" into host (may be empty) and port.
static int s_split_listen (const char *listen, char *host, size_t cap, char *port, size_t pcap)
{
    const char *colon = strrchr (listen, ':');
    const char *h = listen;
    size_t hlen = colon ? (size_t) (colon - listen) : 0;
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    const char *p = colon ? colon + 1 : listen;
    if (hlen >= cap || strlen (p) >= pcap || !*p || strspn (p, "0123456789") != strlen (p))
        return -1;
    memcpy (host, h, hlen);
    host[hlen] = 0;
    snprintf (port, pcap, "%s", p);
    return 0;
}

static int s_listen_socket (const char *addr, bool reuseport, int port_override,
                            int *port_out)
{
    char host[256], port[16];
    if (s_split_listen (addr, host, sizeof host, port, sizeof port)) {
        log_error ("edge/listen: cannot parse '%s' (expected HOST:PORT)", addr);
        return -1;
    }
    if (port_override)
        snprintf (port, sizeof port, "%d", port_override);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    int rc = getaddrinfo (host[0] ? host : NULL, port, &hints, &res);
    if (rc) {
        log_error ("edge/listen: cannot resolve '%s': %s", addr, gai_strerror (rc));
        return -1;
    }
    int fd = socket (res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0 && (setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one)
                    || (reuseport && setsockopt (fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one))
                    || bind (fd, res->ai_addr, res->ai_addrlen) || listen (fd, S_BACKLOG))) {
        log_error ("cannot listen on %s: %s", addr, strerror (errno));
        close (fd);
        fd = -1;
    }
    freeaddrinfo (res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (fd >= 0 && getsockname (fd, (struct sockaddr *) &ss, &sl) == 0)
        *port_out = ntohs (ss.ss_family == AF_INET ? ((struct sockaddr_in *) &ss)->sin_port
                                                   : ((struct sockaddr_in6 *) &ss)->sin6_port);
    return fd;
}

static char *s_read_file (const char *path)
{
    FILE *f = fopen (path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc (S_TLS_FILE_MAX + 1);
    size_t n = buf ? fread (buf, 1, S_TLS_FILE_MAX + 1, f) : 0;
    fclose (f);
    if (!buf || n == 0 || n > S_TLS_FILE_MAX) {
        free (buf);
        return NULL;
    }
    buf[n] = 0;
    return buf;
}

static int s_start_mhd (edge_loop_t *loop)
{
    edge_server_t *srv = loop->srv;
    const cfg_t *cfg = srv->cfg;
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (srv->tls_cert)
        flags |= MHD_USE_TLS;
    unsigned idle_s = (cfg->edge.idle_timeout_ms + 999) / 1000;
    unsigned limit = cfg->edge.max_connections + cfg->edge.max_connections / 8 + 64;
    size_t pool = cfg->edge.max_header_bytes + 4096;   // all resident: MHD zeroes it
    struct MHD_OptionItem tls[] = {
        { MHD_OPTION_HTTPS_MEM_CERT, 0, srv->tls_cert },
        { MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls_key },
        { MHD_OPTION_END, 0, NULL },
    };
    loop->mhd = MHD_start_daemon (
        flags, 0, s_accept_policy, loop, edge_http_access, loop,
        MHD_OPTION_LISTEN_SOCKET, loop->listen_fd,
        MHD_OPTION_CONNECTION_LIMIT, limit,
        MHD_OPTION_CONNECTION_TIMEOUT, idle_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool,
        MHD_OPTION_NOTIFY_COMPLETED, s_completed, loop,
        MHD_OPTION_NOTIFY_CONNECTION, s_notify_connection, loop,
        MHD_OPTION_URI_LOG_CALLBACK, s_uri_log, loop,
        MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, loop,
        MHD_OPTION_SIGPIPE_HANDLED_BY_APP, 1,
        MHD_OPTION_ARRAY, srv->tls_cert ? tls : tls + 2,
        MHD_OPTION_END);
    if (!loop->mhd)
        return -1;
    loop->listen_fd = -1;               // MHD closes it at stop
    return 0;
}

static void s_on_spend (const Aigw__Spend *sp, void *arg);

static int s_loop_init (edge_server_t *srv, int i)
{
    edge_loop_t *loop = &srv->loops[i];
    loop->srv = srv;
    loop->sh = &srv->sh;
    loop->index = i;
    loop->listen_fd = -1;
    theap_init (&loop->timers);
    atomic_init (&loop->idle, true);
    loop->watch_fd = epoll_create1 (EPOLL_CLOEXEC);
    loop->wake_fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
    loop->link = edge_link_new (srv->cfg, srv->zctx, srv->sh.box, edge_http_answer, loop);
    if (loop->watch_fd < 0 || loop->wake_fd < 0 || !loop->link)
        return -1;
    edge_link_set_quiet (loop->link, i > 0);
    edge_link_on_spend (loop->link, s_on_spend, &srv->sh);
    loop->listen_fd = s_listen_socket (srv->cfg->edge.listen, true, srv->port, &srv->port);
    if (loop->listen_fd < 0 || s_start_mhd (loop)) {
        log_error ("cannot start the HTTP server on %s", srv->cfg->edge.listen);
        return -1;
    }
    if (pthread_create (&loop->thread, NULL, s_loop_run, loop))
        return -1;
    loop->started = true;
    return 0;
}

static void s_loop_fini (edge_loop_t *loop)
{
    if (loop->started) {
        atomic_store (&loop->stop, true);
        s_wake (loop);
        pthread_join (loop->thread, NULL);
        loop->started = false;
    }
    if (loop->mhd)
        MHD_stop_daemon (loop->mhd);    // closes the rest; completion callbacks run here
    loop->mhd = NULL;
    if (loop->listen_fd >= 0)
        close (loop->listen_fd);
    edge_link_destroy (&loop->link);
    if (loop->watch_fd >= 0)
        close (loop->watch_fd);
    if (loop->wake_fd >= 0)
        close (loop->wake_fd);
    theap_fini (&loop->timers);
}

//  --------------------------------------------------------------- server

static int s_nloops (const cfg_t *cfg)
{
    long n = cfg->edge.threads ? (long) cfg->edge.threads : sysconf (_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > S_LOOPS_MAX ? S_LOOPS_MAX : (int) n;
}

//  Room for max_connections sockets, plus files, zmq and the process's own.
static void s_raise_fd_limit (const cfg_t *cfg)
{
    struct rlimit rl;
    if (getrlimit (RLIMIT_NOFILE, &rl))
        return;
    rlim_t want = (rlim_t) cfg->edge.max_connections + cfg->edge.max_connections / 8 + 1024;
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
    setrlimit (RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < want)
        log_warn ("open files limited to %llu (edge/max_connections = %u needs %llu)",
                  (unsigned long long) rl.rlim_cur, cfg->edge.max_connections,
                  (unsigned long long) want);
}

static int s_load_tls (edge_server_t *self)
{
    const cfg_t *cfg = self->cfg;
    if (!cfg->edge.tls_cert[0])
        return 0;
    self->tls_cert = s_read_file (cfg->edge.tls_cert);
    self->tls_key = s_read_file (cfg->edge.tls_key);
    if (!self->tls_cert || !self->tls_key) {
        log_error ("cannot read edge/%s (%s)", self->tls_cert ? "tls_key" : "tls_cert",
                   self->tls_cert ? cfg->edge.tls_key : cfg->edge.tls_cert);
        return -1;
    }
    return 0;
}

edge_server_t *edge_server_new (const cfg_t *cfg)
{
    edge_server_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->cfg = cfg;
    pthread_mutex_init (&self->ip_lock, NULL);
    edge_shared_t *sh = &self->sh;
    edge_shared_init (sh, cfg);
    sh->loops = self->loops;
    s_raise_fd_limit (cfg);
    self->zctx = zmq_ctx_new ();
    sh->box = edge_status_box_new ();
    if (self->zctx)
        zmq_ctx_set (self->zctx, ZMQ_BLOCKY, 0);
    if (!self->zctx || !sh->box || s_load_tls (self))
        goto failed;
    sh->obs = observe_new (sh);
    if (!sh->obs)
        goto failed;
    char err[512] = "";
    sh->auth = auth_new (cfg, observe_metrics (sh->obs), err, sizeof err);
    if (!sh->auth) {
        log_error ("%s", err);
        goto failed;
    }
    //  Each loop listens on its own SO_REUSEPORT socket (the kernel spreads new
    //  connections over them). A plain bind first: a port someone already listens on,
    //  even with SO_REUSEPORT, is refused instead of shared.
    int probe = s_listen_socket (cfg->edge.listen, false, 0, &self->port);
    if (probe < 0)
        goto failed;
    close (probe);
    self->nloops = s_nloops (cfg);
    sh->nloops = self->nloops;
    for (int i = 0; i < self->nloops; i++)
        if (s_loop_init (self, i))
            goto failed;
    return self;
failed:
    edge_server_destroy (&self);
    return NULL;
}

void edge_server_destroy (edge_server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    edge_server_t *self = *self_p;
    *self_p = NULL;
    if (self->sh.obs)
        observe_close (self->sh.obs);
    for (int i = 0; i < self->nloops; i++)
        s_loop_fini (&self->loops[i]);
    observe_destroy (&self->sh.obs);
    auth_destroy (&self->sh.auth);
    if (self->zctx)
        zmq_ctx_term (self->zctx);
    edge_status_box_destroy (&self->sh.box);
    free (self->ips);
    free (self->tls_cert);
    free (self->tls_key);
    pthread_mutex_destroy (&self->ip_lock);
    free (self);
}

void edge_server_drain (edge_server_t *self)
{
    edge_shared_drain (&self->sh);
}

int edge_server_in_flight (edge_server_t *self)
{
    return (int) edge_shared_jobs (&self->sh);
}

void edge_server_fail_all (edge_server_t *self)
{
    for (int i = 0; i < self->nloops; i++) {
        atomic_store (&self->loops[i].fail, true);
        s_wake (&self->loops[i]);
    }
}

int edge_server_port (edge_server_t *self)
{
    return self->port;
}

void edge_server_stats (edge_server_t *self, edge_server_stats_t *out)
{
    uint64_t *dst = (uint64_t *) out;
    for (int i = 0; i < EDGE_STATS; i++)
        dst[i] = edge_shared_stat (&self->sh, (edge_stat_t) i);
    int64_t conns = edge_shared_connections (&self->sh);
    int64_t jobs = edge_shared_jobs (&self->sh);
    out->connections = conns > 0 ? (uint64_t) conns : 0;
    out->jobs_in_flight = jobs > 0 ? (uint64_t) jobs : 0;
}

void edge_server_link_stats (edge_server_t *self, edge_link_stats_t *out)
{
    edge_shared_link_stats (&self->sh, out);
}

//  A cancelled loser's usage, after its job's answer: charge it (any loop's thread).
static void s_on_spend (const Aigw__Spend *sp, void *arg)
{
    edge_shared_t *sh = arg;
    spend_late (auth_spend (sh->auth), sp, aclock_wall_ms ());
}
