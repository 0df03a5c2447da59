// The jobs in flight: SUBMIT makes a job; its race's actions start attempts through
// the dispatcher and send them to workers (TASK), stop them (CANCEL) and answer the
// client; worker replies and timers feed the race; attempts a dead worker leaves
// behind fail at the next reap. Owns every job, attempt and tomb.
#ifndef AIGW_BJOBS_H
#define AIGW_BJOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bjob.h"
#include "bpeer.h"
#include "breg.h"
#include "wire.h"

typedef struct bjobs_t bjobs_t;

//  Jobs working with env, sending to workers through reg (whose hooks it takes:
//  attempts of dead workers come back to it) and logging bad peers through peers.
//  All three must outlive it. NULL if out of memory.
bjobs_t *bjobs_new (const bjob_env_t *env, breg_t *reg, bpeer_t *peers);
//  Frees every job, open ones without an answer. Safe with NULL, nulls the pointer.
void bjobs_destroy (bjobs_t **self_p);
//  While stopping, no queued attempt is handed to a worker.
void bjobs_set_stopping (bjobs_t *self, bool stopping);

//  From clients: SUBMIT (a job, or ERROR ERR_BAD_REQUEST), CANCEL. conn_fd and conn_gen
//  name the connection the SUBMIT came on (-1, 0 when not known); see bjobs_client_gone.
void bjobs_submit (bjobs_t *self, wire_msg_t *msg, int conn_fd, uint32_t conn_gen, int64_t now);
void bjobs_cancel (bjobs_t *self, wire_msg_t *msg, int64_t now);
//  The client connection (fd, generation) closed: cancel every job that came on it, as
//  its client's CANCEL would (losing upstream calls stop now, not at the deadline).
//  Returns how many.
size_t bjobs_client_gone (bjobs_t *self, int fd, uint32_t gen, int64_t now);
//  From worker w (registered, alive): RESULT, ERROR, CHUNK of one of its attempts.
//  An ERROR ERR_OVERLOADED before any token means w is full: the attempt is placed
//  again (another worker, or its queue's head), at most a few times, then fails.
void bjobs_result (bjobs_t *self, worker_t *w, wire_msg_t *msg, int64_t now);
void bjobs_error (bjobs_t *self, worker_t *w, wire_msg_t *msg, int64_t now);
void bjobs_chunk (bjobs_t *self, worker_t *w, wire_msg_t *msg, int64_t now);
//  Give worker w queued attempts while it has credit.
void bjobs_pull (bjobs_t *self, worker_t *w, int64_t now);

//  Run the race timers that are due.
void bjobs_tick (bjobs_t *self, int64_t now);
//  When the earliest race timer is due; INT64_MAX if none.
int64_t bjobs_next_timer (const bjobs_t *self);
//  True if attempts wait to be failed by bjobs_reap.
bool bjobs_has_pending (const bjobs_t *self);
//  The start-up hold is over (see dsp_set_hold): attempts still queued for a model no
//  worker came back for fail, as "no worker serves model M", at the next reap.
void bjobs_end_hold (bjobs_t *self);
//  Fail the attempts of dead workers (and TASKs not sent). Call where no job is
//  being processed.
void bjobs_reap (bjobs_t *self, int64_t now);
//  On stop: answer every open job ERR_UNAVAILABLE "broker shutting down".
void bjobs_shutdown (bjobs_t *self, int64_t now);
//  Jobs open now.
size_t bjobs_count (const bjobs_t *self);

#endif
