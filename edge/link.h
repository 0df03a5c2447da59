// Broker links of one event loop: the loop's own DEALER to each broker of edge/broker
// (a comma list), the job_id -> request routes, PING/PONG liveness. No thread of its
// own: the loop polls edge_link_poll_items and calls edge_link_recv and edge_link_tick.
// Every call but edge_link_up, edge_link_brokers and edge_link_stats belongs to the
// loop's thread.
//
// A job goes to the live broker holding the fewest of the loop's jobs, and lives there.
// A broker is lost when its connection drops (socket monitor; ZMTP pings drop a
// connection to a vanished host after fabric/ping_timeout_ms), when its PONG shows
// another instance (it restarted), or after heartbeat * liveness of silence. Its jobs
// are settled at once: one that has sent nothing to the client yet (no CHUNK) is
// resubmitted once, with the same job id and the SUBMIT's own frames, to a live broker
// that has workers, waiting up to heartbeat * liveness for one; the others get
// ERROR(ERR_UNAVAILABLE, "lost the connection to the broker"). Answers from any broker
// but the one holding the job are dropped (counted as unrouted), so a request never
// gets two.
#ifndef AIGW_EDGE_LINK_H
#define AIGW_EDGE_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zmq.h>

#include "cfg.h"
#include "status.h"
#include "aigw.pb-c.h"

typedef struct _edge_link_t edge_link_t;

typedef struct {
    uint64_t submitted;                 // SUBMITs sent
    uint64_t submit_failed;             // refused: broker not connected
    uint64_t results;                   // RESULTs routed to a request
    uint64_t errors;                    // ERRORs routed to a request
    uint64_t chunks;                    // CHUNKs routed to a request
    uint64_t cancels;                   // CANCELs sent
    uint64_t unrouted;                  // answers for jobs nobody waits for (dropped)
    uint64_t bad_messages;              // malformed messages dropped
    uint64_t pings;
    uint64_t pongs;
    uint64_t reconnects;                // broker sockets recreated after silence
    uint64_t failed_on_down;            // jobs failed because the broker went silent
    uint64_t spends;                    // SPEND messages (late usage of cancelled losers)
    uint64_t resubmitted;               // jobs sent again after their broker was lost
    uint64_t brokers_lost;              // brokers lost (disconnect, restart or silence)
    uint64_t restarts;                  // brokers seen with a new instance id
} edge_link_stats_t;

typedef struct {
    uint8_t cmd;                        // WIRE_C_RESULT, WIRE_C_ERROR or WIRE_C_CHUNK
    Aigw__Result *result;               // set for RESULT
    Aigw__Error *error;                 // set for ERROR
    Aigw__Chunk *chunk;                 // set for CHUNK
} edge_answer_t;

//  An answer for the request req. RESULT and ERROR are final: the route is gone
//  before the call. The callee owns the answer (release with edge_link_answer_reset) and
//  may call any link function.
typedef void (edge_link_fn) (void *req, edge_answer_t *answer, void *arg);

//  A SPEND from the broker (usage of an attempt that settled after its job's answer).
//  The message is freed after the call.
typedef void (edge_spend_fn) (const Aigw__Spend *spend, void *arg);

//  Connect a DEALER in zctx to each broker of cfg->edge.broker. Uses broker.heartbeat_ms,
//  broker.liveness, broker.max_frame, fabric.ping_ms and fabric.ping_timeout_ms. box (may be NULL) receives each PONG's status.
//  cfg, zctx and box must outlive the link. NULL on failure.
edge_link_t *edge_link_new (const cfg_t *cfg, void *zctx, edge_status_box_t *box,
                            edge_link_fn *fn, void *arg);

//  Close the socket and free; routes still held are dropped without a call.
//  Nulls *self_p; accepts NULL.
void edge_link_destroy (edge_link_t **self_p);

//  Call fn for every SPEND (default: dropped after counting).
void edge_link_on_spend (edge_link_t *self, edge_spend_fn *fn, void *arg);

//  Leave out the "link up"/"link down" log lines (the loops share one broker).
void edge_link_set_quiet (edge_link_t *self, bool quiet);

//  The sockets to poll for ZMQ_POLLIN (each broker's DEALER and its monitor) into
//  items[0..cap-1]; returns how many. They change after a reconnect: ask every turn.
size_t edge_link_poll_items (edge_link_t *self, zmq_pollitem_t *items, size_t cap);

//  Read every waiting broker message and monitor event and act on it. Call
//  edge_link_tick after it (a new connection wants a PING at once).
void edge_link_recv (edge_link_t *self);

//  Ping, check liveness (a silent broker is lost and its socket recreated) and
//  resubmit jobs waiting for a broker. Returns the time (aclock ms) of the next tick.
int64_t edge_link_tick (edge_link_t *self, int64_t now_ms);

//  SUBMIT job (with the request JSON) to a live broker and route its answers to req.
//  0, or -1 when no broker is live or out of memory (nothing registered).
int edge_link_submit (edge_link_t *self, const Aigw__Job *job, const void *payload,
                      size_t len, void *req);

//  Forget job_id's route and send CANCEL to the broker. Safe for unknown ids.
void edge_link_cancel (edge_link_t *self, uint64_t job_id);

//  Answer every waiting job with ERROR(ERR_UNAVAILABLE, why) and CANCEL each at the
//  broker (shutdown).
void edge_link_fail_all (edge_link_t *self, const char *why);

//  True if a broker answered within heartbeat_ms * liveness. Any thread.
bool edge_link_up (edge_link_t *self);

//  How many brokers the link has; *live (may be NULL) gets how many are up. Any thread.
size_t edge_link_brokers (edge_link_t *self, size_t *live);

//  Jobs waiting for their final answer.
size_t edge_link_waiting (edge_link_t *self);

//  Copy the counters. Any thread.
void edge_link_stats (edge_link_t *self, edge_link_stats_t *out);

void edge_link_answer_reset (edge_answer_t *answer);

#endif
