// aigw-edge: the REST front door. Parses options, starts the broker link and the
// HTTP server, waits for SIGINT/SIGTERM, then shuts both down cleanly.
#include "server.h"
#include "auth.h"
#include "cfg.h"
#include "log.h"

#include <czmq.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <string.h>
#include <unistd.h>

#define S_DEFAULT_CONFIG "config/aigw.conf"
#define S_DRAIN_MS 10000                // at shutdown, wait this long for jobs in flight

typedef struct {
    const char *config;
    const char *listen;
    const char *broker;
    bool verbose;
} s_opts_t;

static void s_usage (FILE *out)
{
    fprintf (out,
             "usage: aigw-edge [--config FILE] [--listen ADDR] [--broker EP] [--verbose] [--help]\n"
             "  --config FILE  ZPL config (default " S_DEFAULT_CONFIG " if it exists)\n"
             "  --listen ADDR  HTTP listen address, e.g. 127.0.0.1:8080 (overrides edge/listen)\n"
             "  --broker EP    broker frontend, e.g. tcp://127.0.0.1:5555 (overrides edge/broker)\n"
             "  --verbose      debug logging\n"
             "  --help         this text\n");
}

//  Returns 0 to run, 1 to exit 0 (help), 2 on a usage error.
static int s_parse_args (int argc, char **argv, s_opts_t *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (strcmp (a, "--help") == 0 || strcmp (a, "-h") == 0) {
            s_usage (stdout);
            return 1;
        }
        if (strcmp (a, "--verbose") == 0 || strcmp (a, "-v") == 0)
            o->verbose = true;
        else
        if (strcmp (a, "--config") == 0 && has_value)
            o->config = argv[++i];
        else
        if (strcmp (a, "--listen") == 0 && has_value)
            o->listen = argv[++i];
        else
        if (strcmp (a, "--broker") == 0 && has_value)
            o->broker = argv[++i];
        else {
            fprintf (stderr, "aigw-edge: bad argument '%s'\n", a);
            s_usage (stderr);
            return 2;
        }
    }
    return 0;
}

static cfg_t *s_load_config (const s_opts_t *o)
{
    char err[512] = "";
    cfg_t *cfg = NULL;
    const char *path = o->config ? o->config
                     : access (S_DEFAULT_CONFIG, R_OK) == 0 ? S_DEFAULT_CONFIG : NULL;
    cfg = path ? cfg_load (path, err, sizeof err) : cfg_defaults ();
    if (!cfg) {
        fprintf (stderr, "aigw-edge: %s\n", err[0] ? err : "cannot load config");
        return NULL;
    }
    //  A relative edge/document_root is relative to the config file's directory
    if (cfg_resolve_path (cfg->edge.document_root, sizeof cfg->edge.document_root, path))
        log_warn ("edge/document_root is too long once made absolute; using it as written");
    if (cfg_resolve_path (cfg->edge.keys_db, sizeof cfg->edge.keys_db, path)) {
        fprintf (stderr, "aigw-edge: edge/keys_db is too long once made absolute\n");
        cfg_destroy (&cfg);
        return NULL;
    }
    if (o->listen)
        snprintf (cfg->edge.listen, sizeof cfg->edge.listen, "%s", o->listen);
    if (o->broker)
        snprintf (cfg->edge.broker, sizeof cfg->edge.broker, "%s", o->broker);
    return cfg;
}

static void s_log_url (const cfg_t *cfg, edge_server_t *srv)
{
    char host[CFG_STR_MAX];
    snprintf (host, sizeof host, "%s", cfg->edge.listen);
    char *colon = strrchr (host, ':');
    if (colon)
        *colon = 0;
    if (!host[0])
        snprintf (host, sizeof host, "0.0.0.0");
    log_info ("listening on %s://%s:%d (broker %s, %u event loops, max body %llu bytes, "
              "max connections %u)", cfg->edge.tls_cert[0] ? "https" : "http", host,
              edge_server_port (srv), cfg->edge.broker,
              cfg->edge.threads ? cfg->edge.threads : (unsigned) sysconf (_SC_NPROCESSORS_ONLN),
              (unsigned long long) cfg->edge.max_body, cfg->edge.max_connections);
}

static void s_log_stats (edge_server_t *srv)
{
    edge_link_stats_t ls;
    edge_server_stats_t hs;
    edge_server_link_stats (srv, &ls);
    edge_server_stats (srv, &hs);
    log_info ("requests=%llu 2xx=%llu 4xx=%llu 5xx=%llu edge_timeouts=%llu streams=%llu "
              "client_gone=%llu submitted=%llu unrouted=%llu bad=%llu reconnects=%llu "
              "refused=%llu header_timeouts=%llu",
              (unsigned long long) hs.requests, (unsigned long long) hs.status_2xx,
              (unsigned long long) hs.status_4xx, (unsigned long long) hs.status_5xx,
              (unsigned long long) hs.timeouts, (unsigned long long) hs.streams,
              (unsigned long long) hs.client_gone, (unsigned long long) ls.submitted,
              (unsigned long long) ls.unrouted, (unsigned long long) ls.bad_messages,
              (unsigned long long) ls.reconnects, (unsigned long long) hs.conn_refused,
              (unsigned long long) hs.header_timeouts);
}

static void s_wait_idle (edge_server_t *srv, sigset_t *sigs, int max_ms)
{
    struct timespec tick = { 0, 10 * 1000 * 1000 };
    for (int waited = 0; waited < max_ms && edge_server_in_flight (srv) > 0; waited += 10)
        if (sigs && sigtimedwait (sigs, NULL, &tick) > 0)
            break;
        else
        if (!sigs)
            nanosleep (&tick, NULL);
}

//  Let jobs in flight finish (new ones get 503) for up to S_DRAIN_MS (a second
//  signal ends the wait), then answer the rest with 503.
static void s_drain (edge_server_t *srv, sigset_t *sigs)
{
    edge_server_drain (srv);
    int n = edge_server_in_flight (srv);
    if (n == 0)
        return;
    log_info ("waiting up to %d ms for %d requests in flight (signal again to stop now)",
              S_DRAIN_MS, n);
    s_wait_idle (srv, sigs, S_DRAIN_MS);
    n = edge_server_in_flight (srv);
    if (n == 0)
        return;
    log_info ("answering %d requests still in flight with 503", n);
    edge_server_fail_all (srv);
    s_wait_idle (srv, NULL, 1000);
}

//  Run until SIGINT/SIGTERM. Signals are blocked in every thread and taken here
//  with sigwait, so no handler runs inside the loops or zmq threads.
static int s_run (const cfg_t *cfg, sigset_t *sigs)
{
    edge_server_t *srv = edge_server_new (cfg);
    if (!srv)
        return 1;
    s_log_url (cfg, srv);
    int sig = 0;
    sigwait (sigs, &sig);
    log_info ("signal %d: shutting down", sig);
    s_drain (srv, sigs);
    s_log_stats (srv);
    edge_server_destroy (&srv);
    return 0;
}

int main (int argc, char **argv)
{
    s_opts_t opts = { 0 };
    int rc = s_parse_args (argc, argv, &opts);
    if (rc)
        return rc == 1 ? 0 : 2;
    log_init ("edge", opts.verbose ? LOG_LVL_DEBUG : LOG_LVL_INFO);
    zsys_handler_set (NULL);
    cfg_t *cfg = s_load_config (&opts);
    if (!cfg)
        return 2;
    char err[768];
    if (auth_check_exposure (cfg, err, sizeof err)) {
        fprintf (stderr, "aigw-edge: refusing to start: %s\n", err);
        cfg_destroy (&cfg);
        return 2;
    }
    sigset_t sigs;
    sigemptyset (&sigs);
    sigaddset (&sigs, SIGINT);
    sigaddset (&sigs, SIGTERM);
    pthread_sigmask (SIG_BLOCK, &sigs, NULL);
    signal (SIGPIPE, SIG_IGN);
    rc = s_run (cfg, &sigs);
    cfg_destroy (&cfg);
    return rc;
}
