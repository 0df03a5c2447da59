// What the edge's event loops share (server.c fills it before the loops start): the
// configuration and the objects any request may use, the job slots (edge/max_jobs), the
// draining flag and the counters. The counters and slots are atomics: any thread.
#ifndef AIGW_EDGE_SHARED_H
#define AIGW_EDGE_SHARED_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "cfg.h"
#include "link.h"
#include "status.h"

typedef struct _edge_loop_t edge_loop_t;       // edge_int.h
typedef struct _observe_t observe_t;           // observe.h

//  The counters, in the order of edge_server_stats_t's fields (server.h).
typedef enum {
    EDGE_STAT_REQUESTS, EDGE_STAT_2XX, EDGE_STAT_4XX, EDGE_STAT_5XX, EDGE_STAT_TIMEOUTS,
    EDGE_STAT_STREAMS, EDGE_STAT_GONE, EDGE_STAT_CONN_REFUSED, EDGE_STAT_CONN_OVER,
    EDGE_STAT_IP_REFUSED, EDGE_STAT_HEADER_TIMEOUTS, EDGE_STAT_JOBS_REFUSED,
    EDGE_STAT_BAD_FRAMING, EDGE_STAT_STREAM_OVERFLOW,
    EDGE_STATS                          // how many
} edge_stat_t;

//  The handles are set once before the loops start and read-only after; the atomics
//  are reached through the functions below.
typedef struct _edge_shared_t {
    const cfg_t *cfg;
    edge_status_box_t *box;             // the broker's status, from its PONGs
    auth_t *auth;                       // keys, admin key, spend
    observe_t *obs;                     // /metrics, the event stream, static files
    edge_loop_t *loops;                 // the server's loops, for their links
    int nloops;
    _Atomic bool draining;              // refuse new chat jobs
    _Atomic uint64_t next_job_id;
    _Atomic int64_t jobs;               // chat jobs in flight
    _Atomic int64_t connections;        // open connections
    _Atomic uint64_t stats[EDGE_STATS];
} edge_shared_t;

//  Zero everything and keep cfg (it must outlive self).
void edge_shared_init (edge_shared_t *self, const cfg_t *cfg);

void edge_shared_count (edge_shared_t *self, edge_stat_t which);
uint64_t edge_shared_stat (edge_shared_t *self, edge_stat_t which);

//  Count a finished request: its status class, and whether it streamed, ran out of
//  time at the edge or lost its client.
void edge_shared_count_answer (edge_shared_t *self, int status, bool stream, bool timeout,
                               bool gone);

//  Take a job slot (max_jobs); false (counted) when full. Release with job_done.
bool edge_shared_job_start (edge_shared_t *self);
void edge_shared_job_done (edge_shared_t *self);
uint64_t edge_shared_job_id (edge_shared_t *self);
int64_t edge_shared_jobs (edge_shared_t *self);

//  Open connections: one more (returns the count with it), one fewer, how many.
int64_t edge_shared_conn_open (edge_shared_t *self);
void edge_shared_conn_close (edge_shared_t *self);
int64_t edge_shared_connections (edge_shared_t *self);

void edge_shared_drain (edge_shared_t *self);
bool edge_shared_draining (edge_shared_t *self);

//  True when every loop's broker link is up (ready to serve on any connection).
bool edge_shared_link_up (edge_shared_t *self);

//  The loops' broker link counters, summed.
//  Brokers in edge/broker, and (*live) how many answer, as the first loop sees them.
size_t edge_shared_brokers (edge_shared_t *self, size_t *live);

void edge_shared_link_stats (edge_shared_t *self, edge_link_stats_t *out);

#endif
