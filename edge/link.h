// Broker link: one thread owns the DEALER to the broker frontend and an inproc ROUTER
// that every HTTP handler thread talks to through its own edge_client_t (a DEALER).
// It routes answers back by job_id, pings the broker and keeps its latest status.
#ifndef AIGW_EDGE_LINK_H
#define AIGW_EDGE_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "status.h"
#include "aigw.pb-c.h"

typedef struct _edge_link_t edge_link_t;
typedef struct _edge_client_t edge_client_t;

typedef struct {
    uint64_t submitted;                 // SUBMITs from handlers
    uint64_t submit_failed;             // of those, refused: broker not connected
    uint64_t results;                   // RESULTs routed to a handler
    uint64_t errors;                    // ERRORs routed to a handler
    uint64_t chunks;                    // CHUNKs routed to a handler
    uint64_t cancels;                   // CANCELs forwarded
    uint64_t unrouted;                  // answers for jobs nobody waits for (dropped)
    uint64_t late_discarded;            // answers a handler discarded (older job)
    uint64_t handler_gone;              // of those routed, handler socket gone
    uint64_t bad_messages;              // malformed messages dropped
    uint64_t pings;
    uint64_t pongs;
    uint64_t reconnects;                // broker sockets recreated after silence
    uint64_t failed_on_down;            // jobs failed because the broker went silent
} edge_link_stats_t;

//  Start the link thread, connecting to cfg->edge.broker. Uses broker.heartbeat_ms,
//  broker.liveness and broker.max_frame. cfg must outlive the link. NULL on failure.
edge_link_t *edge_link_new (const cfg_t *cfg);

//  Stop the thread and close every socket, including clients still open (only
//  safe once no other thread uses them). Nulls *self_p; accepts NULL.
void edge_link_destroy (edge_link_t **self_p);

//  Answer every job still waiting with ERROR(ERR_UNAVAILABLE, why) and send CANCEL
//  for each to the broker (used at shutdown). Asynchronous; call from the thread
//  that created the link.
void edge_link_fail_all (edge_link_t *self, const char *why);

//  A fresh job id (atomic counter, never 0).
uint64_t edge_link_next_job_id (edge_link_t *self);

//  True if the broker answered within heartbeat_ms * liveness.
bool edge_link_up (edge_link_t *self);

//  The latest broker status, or NULL if no PONG arrived yet. Caller owns a
//  reference: release it with edge_status_release.
edge_status_t *edge_link_status (edge_link_t *self);

//  Copy the counters.
void edge_link_stats (edge_link_t *self, edge_link_stats_t *out);

//  A handler's own socket to the link. Use it from one thread at a time.
edge_client_t *edge_client_new (edge_link_t *link);
void edge_client_destroy (edge_client_t **self_p);

//  Send a SUBMIT (job + request JSON) through the link. Returns 0 / -1.
int edge_client_submit (edge_client_t *self, const Aigw__Job *job, const void *payload,
                        size_t len);

//  Ask the broker to cancel a job; its answers are dropped from now on. 0 / -1.
int edge_client_cancel (edge_client_t *self, uint64_t job_id);

typedef struct {
    uint8_t cmd;                        // WIRE_C_RESULT, WIRE_C_ERROR or WIRE_C_CHUNK
    Aigw__Result *result;               // set for RESULT
    Aigw__Error *error;                 // set for ERROR
    Aigw__Chunk *chunk;                 // set for CHUNK
} edge_answer_t;

//  Wait up to timeout_ms for the next answer to job_id; answers to other (older,
//  abandoned) jobs are discarded and counted. Returns 0 and fills out (release with
//  edge_answer_reset), or -1 on timeout.
int edge_client_wait (edge_client_t *self, uint64_t job_id, int timeout_ms, edge_answer_t *out);

//  As edge_client_wait, and also wake when fd (>= 0; e.g. the HTTP client's socket)
//  becomes readable or hangs up: returns 1 then, with no answer taken.
int edge_client_wait_fd (edge_client_t *self, uint64_t job_id, int timeout_ms, int fd,
                         edge_answer_t *out);

void edge_answer_reset (edge_answer_t *answer);

#endif
