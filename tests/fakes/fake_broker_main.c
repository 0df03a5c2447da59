// aigw-edge-fakebroker: run the scripted fake broker for manual edge checks.
#include "fake_broker.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main (int argc, char **argv)
{
    const char *bind = "tcp://127.0.0.1:5555";
    const char *models = "fast-sim,slow-sim,flaky-sim,agent/deliberate,never,fail,busy,slow";
    unsigned workers = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv[i], "--bind") == 0 && i + 1 < argc)
            bind = argv[++i];
        else
        if (strcmp (argv[i], "--models") == 0 && i + 1 < argc)
            models = argv[++i];
        else
        if (strcmp (argv[i], "--workers") == 0 && i + 1 < argc)
            workers = (unsigned) strtoul (argv[++i], NULL, 10);
        else {
            fprintf (stderr, "usage: aigw-edge-fakebroker [--bind EP] [--models a,b] [--workers N]\n");
            return strcmp (argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    sigset_t sigs;
    sigemptyset (&sigs);
    sigaddset (&sigs, SIGINT);
    sigaddset (&sigs, SIGTERM);
    pthread_sigmask (SIG_BLOCK, &sigs, NULL);
    fake_broker_t *fb = fake_broker_new (bind, models, workers);
    if (!fb) {
        fprintf (stderr, "aigw-edge-fakebroker: cannot bind %s\n", bind);
        return 1;
    }
    fprintf (stderr, "fake broker on %s (models %s)\n", fake_broker_endpoint (fb), models);
    int sig;
    sigwait (&sigs, &sig);
    fake_broker_destroy (&fb);
    return 0;
}
