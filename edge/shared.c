// What the edge's event loops share (see shared.h).
#include "shared.h"
#include "edge_int.h"

#include <string.h>

void edge_shared_init (edge_shared_t *self, const cfg_t *cfg)
{
    memset (self, 0, sizeof *self);
    self->cfg = cfg;
    atomic_init (&self->draining, false);
    atomic_init (&self->next_job_id, 1);
    atomic_init (&self->jobs, 0);
    atomic_init (&self->connections, 0);
    for (int i = 0; i < EDGE_STATS; i++)
        atomic_init (&self->stats[i], 0);
}

void edge_shared_count (edge_shared_t *self, edge_stat_t which)
{
    atomic_fetch_add_explicit (&self->stats[which], 1, memory_order_relaxed);
}

uint64_t edge_shared_stat (edge_shared_t *self, edge_stat_t which)
{
    return atomic_load_explicit (&self->stats[which], memory_order_relaxed);
}

void edge_shared_count_answer (edge_shared_t *self, int status, bool stream, bool timeout,
                               bool gone)
{
    edge_shared_count (self, EDGE_STAT_REQUESTS);
    edge_shared_count (self, status < 300 ? EDGE_STAT_2XX : status < 500 ? EDGE_STAT_4XX
                                                                         : EDGE_STAT_5XX);
    if (stream)
        edge_shared_count (self, EDGE_STAT_STREAMS);
    if (timeout)
        edge_shared_count (self, EDGE_STAT_TIMEOUTS);
    if (gone)
        edge_shared_count (self, EDGE_STAT_GONE);
}

bool edge_shared_job_start (edge_shared_t *self)
{
    if (atomic_fetch_add (&self->jobs, 1) < (int64_t) self->cfg->edge.max_jobs)
        return true;
    atomic_fetch_sub (&self->jobs, 1);
    edge_shared_count (self, EDGE_STAT_JOBS_REFUSED);
    return false;
}

void edge_shared_job_done (edge_shared_t *self)
{
    atomic_fetch_sub (&self->jobs, 1);
}

uint64_t edge_shared_job_id (edge_shared_t *self)
{
    return atomic_fetch_add (&self->next_job_id, 1);
}

int64_t edge_shared_jobs (edge_shared_t *self)
{
    return atomic_load (&self->jobs);
}

int64_t edge_shared_conn_open (edge_shared_t *self)
{
    return atomic_fetch_add (&self->connections, 1) + 1;
}

void edge_shared_conn_close (edge_shared_t *self)
{
    atomic_fetch_sub (&self->connections, 1);
}

int64_t edge_shared_connections (edge_shared_t *self)
{
    return atomic_load (&self->connections);
}

void edge_shared_drain (edge_shared_t *self)
{
    atomic_store (&self->draining, true);
}

bool edge_shared_draining (edge_shared_t *self)
{
    return atomic_load (&self->draining);
}

bool edge_shared_link_up (edge_shared_t *self)
{
    for (int i = 0; i < self->nloops; i++)
        if (!self->loops[i].link || !edge_link_up (self->loops[i].link))
            return false;
    return self->nloops > 0;
}

size_t edge_shared_brokers (edge_shared_t *self, size_t *live)
{
    *live = 0;
    return self->nloops > 0 && self->loops[0].link
           ? edge_link_brokers (self->loops[0].link, live) : 0;
}

void edge_shared_link_stats (edge_shared_t *self, edge_link_stats_t *out)
{
    memset (out, 0, sizeof *out);
    for (int i = 0; i < self->nloops; i++) {
        edge_link_stats_t one;
        if (!self->loops[i].link)
            continue;
        edge_link_stats (self->loops[i].link, &one);
        uint64_t *dst = (uint64_t *) out;
        const uint64_t *src = (const uint64_t *) &one;
        for (size_t k = 0; k < sizeof one / sizeof (uint64_t); k++)
            dst[k] += src[k];
    }
}
