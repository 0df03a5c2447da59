// aigw-broker: command line, config loading, signals; the loop lives in broker.c.
#include <czmq.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "cfg.h"
#include "log.h"

#define DEFAULT_CONFIG "config/aigw.conf"

static broker_t *s_broker;     // for the signal handlers (they only write a pipe)

static void s_on_stop (int sig)
{
    (void) sig;
    broker_stop (s_broker);
}

static void s_on_usr1 (int sig)
{
    (void) sig;
    broker_request_summary (s_broker);
}

static void s_usage (FILE *out)
{
    fprintf (out,
             "usage: aigw-broker [--config FILE] [--frontend EP] [--backend EP] [--metrics EP]\n"
             "                   [--verbose] [--help]\n"
             "  --config FILE   ZPL config (default " DEFAULT_CONFIG " if it exists, else built-in defaults)\n"
             "  --frontend EP   client endpoint to bind (overrides broker/frontend)\n"
             "  --backend EP    worker endpoint to bind (overrides broker/backend)\n"
             "  --metrics EP    metrics PUB endpoint to bind (overrides broker/metrics)\n"
             "  --verbose       debug logging\n"
             "  --help          this text\n"
             "Signals: SIGINT/SIGTERM stop cleanly, SIGUSR1 logs a counter summary.\n");
}

typedef struct {
    const char *config;
    const char *frontend;
    const char *backend;
    const char *metrics;
    bool verbose;
} args_t;

//  Returns 0 to run, 1 for --help, 2 for bad usage.
static int s_args (int argc, char **argv, args_t *a)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char **dst = streq (arg, "--config") ? &a->config
                         : streq (arg, "--frontend") ? &a->frontend
                         : streq (arg, "--backend") ? &a->backend
                         : streq (arg, "--metrics") ? &a->metrics : NULL;
        if (dst) {
            if (i + 1 >= argc) {
                fprintf (stderr, "aigw-broker: %s needs a value\n", arg);
                return 2;
            }
            *dst = argv[++i];
        }
        else
        if (streq (arg, "--verbose") || streq (arg, "-v"))
            a->verbose = true;
        else
        if (streq (arg, "--help") || streq (arg, "-h"))
            return 1;
        else {
            fprintf (stderr, "aigw-broker: unknown argument '%s'\n", arg);
            return 2;
        }
    }
    return 0;
}

static int s_endpoint (char *dst, size_t len, const char *ep, const char *what)
{
    if (!ep)
        return 0;
    if (strlen (ep) >= len || !(strncmp (ep, "tcp://", 6) == 0 || strncmp (ep, "ipc://", 6) == 0
                                || strncmp (ep, "inproc://", 9) == 0)) {
        fprintf (stderr, "aigw-broker: bad %s endpoint '%s'\n", what, ep);
        return -1;
    }
    memcpy (dst, ep, strlen (ep) + 1);
    return 0;
}

static cfg_t *s_config (const args_t *a)
{
    char err[1024];
    const char *path = a->config;
    if (!path && access (DEFAULT_CONFIG, R_OK) == 0)
        path = DEFAULT_CONFIG;
    cfg_t *cfg = path ? cfg_load (path, err, sizeof err) : cfg_defaults ();
    if (!cfg) {
        fprintf (stderr, "%s\n", path ? err : "aigw-broker: out of memory");
        return NULL;
    }
    if (s_endpoint (cfg->broker.frontend, sizeof cfg->broker.frontend, a->frontend, "frontend")
        || s_endpoint (cfg->broker.backend, sizeof cfg->broker.backend, a->backend, "backend")
        || s_endpoint (cfg->broker.metrics, sizeof cfg->broker.metrics, a->metrics, "metrics"))
        cfg_destroy (&cfg);
    return cfg;
}

int main (int argc, char **argv)
{
    args_t a = { 0 };
    int rc = s_args (argc, argv, &a);
    if (rc) {
        s_usage (rc == 1 ? stdout : stderr);
        return rc == 1 ? 0 : 2;
    }
    log_init ("broker", a.verbose ? LOG_LVL_DEBUG : LOG_LVL_INFO);
    cfg_t *cfg = s_config (&a);
    if (!cfg)
        return 2;
    zsys_handler_set (NULL);
    s_broker = broker_new (cfg, NULL);
    cfg_destroy (&cfg);
    if (!s_broker)
        return 1;
    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_stop;
    sigaction (SIGINT, &sa, NULL);
    sigaction (SIGTERM, &sa, NULL);
    sa.sa_handler = s_on_usr1;
    sigaction (SIGUSR1, &sa, NULL);
    signal (SIGPIPE, SIG_IGN);
    rc = broker_run (s_broker);
    broker_destroy (&s_broker);
    return rc ? 1 : 0;
}
