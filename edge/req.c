// What every route does with its request (see req.h).
#include "req.h"
#include "shared.h"
#include "aclock.h"

#include <string.h>

void edge_req_resume (edge_req_t *r)
{
    if (!r->suspended)
        return;
    r->suspended = false;
    MHD_resume_connection (r->mc);
}

void edge_req_suspend (edge_req_t *r)
{
    if (r->suspended)
        return;
    r->suspended = true;
    MHD_suspend_connection (r->mc);
}

int edge_req_watch (edge_req_t *r)
{
    edge_conn_t *c = r->conn;
    if (!c)
        return 0;
    if (c->hup)
        return -1;
    c->watcher = r;
    r->watched = true;
    return 0;
}

void edge_req_unwatch (edge_req_t *r)
{
    if (r->watched && r->conn && r->conn->watcher == r)
        r->conn->watcher = NULL;
    r->watched = false;
}

size_t edge_req_take_out (edge_req_t *r, char *buf, size_t max)
{
    size_t n = r->out.len - r->out_off;
    if (n > max)
        n = max;
    memcpy (buf, r->out.mem + SSE_HEADROOM + r->out_off, n);
    r->out_off += n;
    if (r->out_off == r->out.len) {
        sse_buf_reset (&r->out);
        r->out_off = 0;
    }
    return n;
}

void edge_req_gone (edge_req_t *r)
{
    if (r->gone || r->state == EDGE_REQ_DONE)
        return;
    r->gone = true;
    r->status = 499;
    if (r->job_live) {
        edge_link_cancel (r->loop->link, r->job_id);
        r->job_live = false;
        edge_shared_job_done (r->loop->sh);
    }
    edge_req_resume (r);
}

void edge_req_settle (edge_req_t *r, Aigw__AttemptInfo *const *att, size_t n,
                      const char *winner, const Aigw__Usage *usage)
{
    spend_answer (auth_spend (r->loop->sh->auth), r->account, att, n, winner, usage,
                  aclock_wall_ms ());
}
