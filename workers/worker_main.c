// aigw-worker: command line, config loading and signal handling around the worker loop.
#include "worker.h"
#include "log.h"

#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_CONFIG "config/aigw.conf"

static worker_t *s_worker;

static void s_on_signal (int sig)
{
    worker_stop (s_worker);     // atomic store + curl_multi_wakeup (a socket write)
}

static void s_usage (FILE *out)
{
    fprintf (out,
        "Usage: aigw-worker [options]\n"
        "Serves models from the config to the aigw broker (backend socket).\n\n"
        "  --config FILE      config file (default " DEFAULT_CONFIG " if present, else built-in)\n"
        "  --models a,b       serve only these models from the config (default: all)\n"
        "  --capacity N       concurrent attempts (default: worker/capacity, 64)\n"
        "  --id NAME          worker id sent in READY (default: <hostname>-<pid>)\n"
        "  --broker EP[,EP]   broker backends, up to 8 (default: worker/broker = broker/backend)\n"
        "  --verbose          debug logging\n"
        "  --help             this text\n");
}

static cfg_t *s_load_config (const char *path)
{
    char err [1024];
    if (!path && access (DEFAULT_CONFIG, R_OK) == 0)
        path = DEFAULT_CONFIG;
    cfg_t *cfg = path ? cfg_load (path, err, sizeof err) : cfg_defaults ();
    if (!cfg)
        fprintf (stderr, "aigw-worker: %s\n", path ? err : "cannot build default config");
    return cfg;
}

static int s_parse_capacity (const char *s, uint32_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long n = strtoul (s, &end, 10);
    if (errno || !*s || *end || *s == '-' || n == 0 || n > WORKER_CAPACITY_MAX)
        return -1;
    *out = (uint32_t) n;
    return 0;
}

static void s_signals (void)
{
    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset (&sa.sa_mask);
    sigaction (SIGINT, &sa, NULL);
    sigaction (SIGTERM, &sa, NULL);
    signal (SIGPIPE, SIG_IGN);
}

int main (int argc, char **argv)
{
    static const struct option longopts [] = {
        { "config",   required_argument, NULL, 'c' },
        { "models",   required_argument, NULL, 'm' },
        { "capacity", required_argument, NULL, 'n' },
        { "id",       required_argument, NULL, 'i' },
        { "broker",   required_argument, NULL, 'b' },
        { "verbose",  no_argument,       NULL, 'v' },
        { "help",     no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    zsys_handler_set (NULL);
    const char *config = NULL;
    worker_opts_t opts = { 0 };
    bool verbose = false;
    int c;
    while ((c = getopt_long (argc, argv, "", longopts, NULL)) != -1) {
        if (c == 'c') config = optarg;
        else if (c == 'm') opts.models = optarg;
        else if (c == 'i') opts.id = optarg;
        else if (c == 'b') opts.broker = optarg;
        else if (c == 'v') verbose = true;
        else if (c == 'h') { s_usage (stdout); return 0; }
        else if (c == 'n' && s_parse_capacity (optarg, &opts.capacity) == 0) continue;
        else if (c == 'n') {
            fprintf (stderr, "aigw-worker: --capacity must be an integer from 1 to %d\n",
                     WORKER_CAPACITY_MAX);
            return 2;
        }
        else { s_usage (stderr); return 2; }
    }
    if (optind < argc) {
        fprintf (stderr, "aigw-worker: unexpected argument '%s'\n", argv [optind]);
        return 2;
    }
    log_init ("worker", verbose ? LOG_LVL_DEBUG : LOG_LVL_INFO);
    cfg_t *cfg = s_load_config (config);
    if (!cfg)
        return 2;
    char err [512];
    s_worker = worker_new (cfg, &opts, err, sizeof err);
    if (!s_worker) {
        fprintf (stderr, "aigw-worker: %s\n", err);
        cfg_destroy (&cfg);
        return 2;
    }
    s_signals ();
    int rc = worker_run (s_worker);
    worker_t *w = s_worker;
    s_worker = NULL;
    worker_destroy (&w);
    cfg_destroy (&cfg);
    return rc == 0 ? 0 : 2;
}
