// Tombs: cancelled attempts remembered for their last word. A worker may still
// deliver tokens (late CHUNKs, a late RESULT's usage) before it sees the CANCEL: they
// count as wasted for its model. Its last word (cancel acknowledgement, late RESULT
// or ERROR) carries the usage it consumed: that goes into its job's answer if the
// job is still open (the caller's part), else into its model's cost and, when the
// job has an account, a SPEND to the job's client.
#ifndef AIGW_BTOMB_H
#define AIGW_BTOMB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aigw.pb-c.h"
#include "bjob.h"
#include "bstats.h"
#include "wire.h"

#define BTOMB_SLOTS 4096            // direct-mapped by attempt id

typedef struct btomb_t btomb_t;

typedef struct {
    uint64_t attempt_id;            // 0: free
    model_stats_t *st;
    const char *model;              // its target (the dispatcher's copy of the name)
    uint32_t chunks;                // late chunks counted so far
    uint64_t job_id;                // the client's id
    uint8_t index;                  // attempt index in its job
    uint8_t cid_len;
    uint8_t cid[WIRE_ID_MAX];       // the job's client (routing id)
    char account[BJOB_ACCOUNT_MAX]; // Job.account, "" = none (no SPEND)
} tomb_t;

//  Uses env's frontend, dsp, prices and counters (env must outlive it). NULL if out
//  of memory.
btomb_t *btomb_new (const bjob_env_t *env);
//  Safe with NULL, nulls the pointer.
void btomb_destroy (btomb_t **self_p);

//  Remember attempt index of job, cancelled at its worker as attempt_id, with what
//  its last word needs. Overwrites whatever shared the slot (ids grow, so that is an
//  older one; a SPEND it still owed is lost).
void btomb_add (btomb_t *self, const job_t *job, size_t index, uint64_t attempt_id);
//  The tomb of attempt_id, NULL if none (or !has_id).
tomb_t *btomb_find (btomb_t *self, bool has_id, uint64_t attempt_id);
//  A late CHUNK: one more token wasted.
void btomb_late_chunk (tomb_t *t);
//  A late RESULT's usage: the tokens it produced beyond its late chunks were wasted.
void btomb_late_result (tomb_t *t, const Aigw__Usage *u);
//  The last word's usage u (known) after the job answered: its model's cost and,
//  for a job with an account, one SPEND to its client. Does not free the tomb.
void btomb_spend (btomb_t *self, const tomb_t *t, const Aigw__Usage *u);

#endif
