// The broker's counters: one struct every broker module adds to, read by the loop's
// API (broker_counters), its summary line and the metrics stream.
#ifndef AIGW_BROKER_COUNTERS_H
#define AIGW_BROKER_COUNTERS_H

#include <stdint.h>

//  Every counter the broker keeps (name, then meaning). Only the loop thread writes them.
#define BROKER_COUNTERS(X) \
    X (jobs_accepted)         /* SUBMITs that became jobs */ \
    X (jobs_rejected)         /* SUBMITs answered ERR_BAD_REQUEST */ \
    X (jobs_won)              /* answered RESULT */ \
    X (jobs_failed)           /* answered ERROR, not timeout/cancel */ \
    X (jobs_timeout)          /* answered ERR_TIMEOUT */ \
    X (jobs_cancelled)        /* answered ERR_CANCELLED */ \
    X (jobs_client_gone)      /* cancelled: their client's connection closed (in jobs_cancelled) */ \
    X (attempts_started) \
    X (attempts_won) \
    X (attempts_cancelled)    /* losers and attempts of ended jobs */ \
    X (attempts_failed) \
    X (attempts_redispatched) /* worker lost, started again */ \
    X (attempts_bounced)      /* sent back by a full worker (ERR_OVERLOADED), placed again */ \
    X (attempts_retried)      /* retries started after a retryable failure */ \
    X (attempts_hedged)       /* backups started by the hedge timer */ \
    X (attempts_skipped)      /* targets not started: cooling down */ \
    X (hedges_suppressed)     /* hedges the budget refused */ \
    X (retries_suppressed)    /* retries the budget refused */ \
    X (jobs_cooldown)         /* jobs failed at once: every target cooling (in jobs_failed) */ \
    X (breaker_trips)         /* times a target started cooling down */ \
    X (late_replies)          /* RESULT/ERROR/CHUNK for an attempt no longer live */ \
    X (cancel_acks)           /* ERROR(ERR_CANCELLED) after our CANCEL */ \
    X (malformed)             /* dropped messages */ \
    X (unknown_worker)        /* messages from unregistered workers (sent DISCONNECT) */ \
    X (denied_clients)        /* frontend messages from certificates not in fabric/clients */ \
    X (denied_models)         /* models in READYs that fabric/workers does not allow */ \
    X (denied_readys)         /* READYs refused: no model left, or no known certificate */ \
    X (denied_handshakes)     /* connections refused at the CURVE handshake */ \
    X (workers_joined) \
    X (workers_lost) \
    X (workers_disconnected)  /* of which lost because their connection closed */ \
    X (send_failures)         /* sends that failed (peer gone or pipe full) */ \
    X (send_full)             /* of which refused because a worker's pipe was full */ \
    X (spend_sent)            /* SPENDs sent: a cancelled attempt's usage after its answer */ \
    X (spend_lost)            /* SPENDs owed but not sent: tomb overwritten, or send failed */ \
    X (events_published)      /* job and worker events handed to the metrics PUB */

typedef struct {
#define BROKER_COUNTER_FIELD(name) uint64_t name;
    BROKER_COUNTERS (BROKER_COUNTER_FIELD)
#undef BROKER_COUNTER_FIELD
} broker_counters_t;

#endif
