// The loop's own state (broker.c): sockets, timers, and the modules it drives. Not
// a public API: only broker.c includes it (tests may peek, e.g. at a socket).
#ifndef AIGW_BROKER_INT_H
#define AIGW_BROKER_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "bconn.h"
#include "bjob.h"
#include "bjobs.h"
#include "bmetrics.h"
#include "bpeer.h"
#include "bpub.h"
#include "breg.h"
#include "broker.h"
#include "cfg.h"
#include "curve.h"
#include "dsp.h"
#include "zmon.h"

#define BROKER_DRAIN_MAX 512        // messages per socket per wake-up (fairness)
#define BROKER_METRICS_US 1000000   // metrics publish interval

//  The sockets the loop monitors (broker_t.mon)
enum { BROKER_MON_FRONTEND = 0, BROKER_MON_BACKEND, BROKER_MON_METRICS, BROKER_MONS };

struct broker_t {
    void *ctx;
    bool own_ctx;
    void *frontend, *backend;
    bpub_t pub;                     // metrics stream (XPUB)
    curve_server_t *curve;          // NULL: fabric/curve off
    zmon_t mon[BROKER_MONS];        // backend: connections (and refused handshakes with
                                    // CURVE); frontend, metrics: refused handshakes (CURVE)
    bconn_t conns;                  // the backend's connection generations
    bconn_t fconns;                 // the frontend's (clients' jobs name theirs)
    int wake[2];                    // pipe: 'q' stop, 'u' summary
    bool stopping;
    //  config
    char ep_front[CFG_STR_MAX], ep_back[CFG_STR_MAX], ep_metrics[CFG_STR_MAX];
    int64_t heartbeat_us, expiry_us;
    int64_t hold_us;                // the start-up hold (broker/start_hold_ms)
    char broker_id[96];
    uint64_t instance;              // random, non-zero, drawn at start
    //  state
    dsp_t *dsp;                     // worker pools; each model's model_stats_t (freed here)
    cfg_t *prices;                  // the config's models, for cfg_cost (owned)
    bpeer_t peers;                  // malformed messages, refused certificates
    bmetrics_t *metrics;
    bjob_env_t env;                 // what jobs read: sockets, config, started
    breg_t *reg;                    // the workers
    bjobs_t *jobs;                  // the jobs
    int64_t next_heartbeat, next_metrics;
    broker_counters_t c;
};

#endif
