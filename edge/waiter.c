// Wait for a job's answers while watching the time limit and the HTTP client's socket.
#include "waiter.h"
#include "cwatch.h"
#include "aclock.h"

enum {
    S_LOOK,                             // fd not looked up yet (until watch_at_ms)
    S_POLLED,                           // fd polled with the link socket: instant wake-up
    S_PERIODIC,                         // fd has unread bytes: checked every CHECK_MS
    S_NONE,                             // no fd: nothing to watch
};

void edge_waiter_init (edge_waiter_t *w, edge_client_t *client, uint64_t job_id,
                       int64_t until_ms, int watch_after_ms, edge_find_fd_fn *find_fd,
                       void *find_arg)
{
    w->client = client;
    w->job_id = job_id;
    w->until_ms = until_ms;
    w->watch_at_ms = aclock_now_ms () + (watch_after_ms > 0 ? watch_after_ms : 0);
    w->find_fd = find_fd;
    w->find_arg = find_arg;
    w->fd = -1;
    w->state = find_fd ? S_LOOK : S_NONE;
    w->check_at_ms = 0;
}

static int64_t s_min (int64_t a, int64_t b)
{
    return a < b ? a : b;
}

//  Advance the watch state; true if the client is gone.
static bool s_watch (edge_waiter_t *w, int64_t now)
{
    if (w->state == S_LOOK && now >= w->watch_at_ms) {
        w->fd = w->find_fd (w->find_arg);
        w->state = w->fd >= 0 ? S_POLLED : S_NONE;
        return cwatch_gone (w->fd);
    }
    if (w->state == S_PERIODIC && now >= w->check_at_ms) {
        w->check_at_ms = now + EDGE_WAITER_CHECK_MS;
        return cwatch_gone (w->fd);
    }
    return false;
}

edge_wait_ev_t edge_waiter_next (edge_waiter_t *w, int64_t tick_at_ms, edge_answer_t *out)
{
    while (true) {
        int64_t now = aclock_now_ms ();
        if (now >= w->until_ms)
            return EDGE_WAIT_EXPIRED;
        if (tick_at_ms && now >= tick_at_ms)
            return EDGE_WAIT_TICK;
        if (s_watch (w, now))
            return EDGE_WAIT_GONE;
        int64_t wake = w->until_ms;
        if (tick_at_ms)
            wake = s_min (wake, tick_at_ms);
        if (w->state == S_LOOK)
            wake = s_min (wake, w->watch_at_ms);
        if (w->state == S_PERIODIC)
            wake = s_min (wake, w->check_at_ms);
        int rc = edge_client_wait_fd (w->client, w->job_id, (int) (wake - now),
                                      w->state == S_POLLED ? w->fd : -1, out);
        if (rc == 0)
            return EDGE_WAIT_ANSWER;
        if (rc == 1) {
            if (cwatch_gone (w->fd))
                return EDGE_WAIT_GONE;
            //  Bytes wait unread (a pipelined request): polling would spin, so check
            //  every CHECK_MS instead
            w->state = S_PERIODIC;
            w->check_at_ms = now + EDGE_WAITER_CHECK_MS;
        }
    }
}
