// Waiting for a job's answers in a handler thread: the job's time limit, the caller's
// timer (SSE keep-alive) and the HTTP client's socket (hang-up), in one call.
#ifndef AIGW_EDGE_WAITER_H
#define AIGW_EDGE_WAITER_H

#include <stdint.h>

#include "link.h"

#define EDGE_WAITER_CHECK_MS 100        // hang-up check period once the fd cannot be polled

//  Finds the HTTP client's socket; returns its fd or -1. Called at most once a wait.
typedef int (edge_find_fd_fn) (void *arg);

typedef enum {
    EDGE_WAIT_ANSWER,                   // an answer for the job: *out is filled
    EDGE_WAIT_TICK,                     // the caller's tick time came
    EDGE_WAIT_GONE,                     // the HTTP client hung up
    EDGE_WAIT_EXPIRED,                  // the time limit passed
} edge_wait_ev_t;

typedef struct {
    edge_client_t *client;
    uint64_t job_id;
    int64_t until_ms;                   // give up then
    int64_t watch_at_ms;                // look for the client's fd from then on
    edge_find_fd_fn *find_fd;
    void *find_arg;
    int fd;                             // the client's socket, -1 = not watched
    int state;                          // see waiter.c
    int64_t check_at_ms;                // next periodic hang-up check
} edge_waiter_t;

//  Wait for job_id's answers on client until until_ms (monotonic ms). The client's
//  socket is looked up watch_after_ms into the wait (0 = at once; fast jobs never pay
//  for it) and then polled together with the link. find_fd may be NULL (no watch).
void edge_waiter_init (edge_waiter_t *w, edge_client_t *client, uint64_t job_id,
                       int64_t until_ms, int watch_after_ms, edge_find_fd_fn *find_fd,
                       void *find_arg);

//  Block until something happens: an answer, tick_at_ms (0 = no tick), the client's
//  hang-up or the time limit. Release an answer with edge_answer_reset.
edge_wait_ev_t edge_waiter_next (edge_waiter_t *w, int64_t tick_at_ms, edge_answer_t *out);

#endif
