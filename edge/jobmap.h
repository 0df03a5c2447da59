// Job routing table of a broker link: job_id -> the request waiting for it.
// On common/hmap (the one hash map); O(1) insert, find, remove.
#ifndef AIGW_EDGE_JOBMAP_H
#define AIGW_EDGE_JOBMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t job_id;                    // never 0
    void *req;                          // the waiting request (not owned)
    int64_t since_ms;                   // when the SUBMIT passed the link
    //  The link's own fields (put sets them to 0 / NULL)
    void *held;                         // what a resubmission needs (link-owned), or NULL
    int64_t lost_ms;                    // when its broker was lost (waiting to resubmit)
    uint16_t broker;                    // index of the broker holding the job
} edge_route_t;

typedef struct _edge_jobmap_t edge_jobmap_t;

//  Create an empty table. Returns NULL on allocation failure.
edge_jobmap_t *edge_jobmap_new (void);
void edge_jobmap_destroy (edge_jobmap_t **self_p);

//  Insert or replace the route of job_id (job_id 0 is invalid). Returns 0, or -1
//  on allocation failure or job_id 0.
int edge_jobmap_put (edge_jobmap_t *self, uint64_t job_id, void *req, int64_t since_ms);

//  Find a route; NULL if absent. The pointer is valid until the next put or remove.
edge_route_t *edge_jobmap_get (const edge_jobmap_t *self, uint64_t job_id);

//  Call fn for every route; fn may change a route's fields but not put or take.
void edge_jobmap_each (const edge_jobmap_t *self, void (*fn) (edge_route_t *r, void *arg),
                       void *arg);

//  Remove a route and copy it into *out (out may be NULL). Returns true if found.
bool edge_jobmap_take (edge_jobmap_t *self, uint64_t job_id, edge_route_t *out);

size_t edge_jobmap_size (const edge_jobmap_t *self);

//  Remove every route, then call fn for each (fn may be NULL; it may use the table).
void edge_jobmap_drain (edge_jobmap_t *self, void (*fn) (const edge_route_t *r, void *arg),
                        void *arg);

#endif
