// Per-job race state machine (race / hedge / fallback): decides which targets to
// start, who wins, what to cancel and when the job ends. Pure logic: no sockets,
// no clock (callers pass `now`, any monotonic microseconds >= 0), no allocation
// except a copied reason string per failed attempt.
#ifndef AIGW_RACE_H
#define AIGW_RACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aigw.pb-c.h"

#define RACE_TARGETS_MAX 16
#define RACE_ATTEMPTS_MAX (2 * RACE_TARGETS_MAX)     // each target may be re-dispatched once
#define RACE_ACTIONS_MAX (2 * RACE_ATTEMPTS_MAX + 2) // one DISPATCH + one CANCEL per attempt, one FINISH
#define RACE_REASON_MAX 256                          // longest kept failure reason
#define RACE_HEDGE_MIN_SAMPLES 10                    // auto hedge needs this many samples
#define RACE_RETRIES_MAX 5                           // retries per target at most
#define RACE_BACKOFF_MAX_US (30LL * 1000 * 1000)     // cap of the exponential backoff

typedef enum {
    RACE_POLICY_RACE = AIGW__POLICY__POLICY_RACE,
    RACE_POLICY_HEDGE = AIGW__POLICY__POLICY_HEDGE,
    RACE_POLICY_FALLBACK = AIGW__POLICY__POLICY_FALLBACK,
} race_policy_t;

typedef enum {
    RACE_ATT_RUNNING = 0,   // dispatched (queued or at a worker), live
    RACE_ATT_WON,
    RACE_ATT_CANCELLED,     // lost the race, or the job ended while it ran
    RACE_ATT_FAILED,
    RACE_ATT_SKIPPED,       // never started: its target was cooling down (ERR_COOLDOWN)
} race_att_state_t;

//  Why an attempt starts.
typedef enum {
    RACE_KIND_FIRST = 0,    // a target's regular start (race, first of hedge/fallback, failover)
    RACE_KIND_HEDGE,        // a backup: started by the hedge timer while another runs
    RACE_KIND_RETRY,        // the same target again after a retryable failure
    RACE_KIND_REDISPATCH,   // the same target again because its worker was lost
} race_kind_t;

//  The caller's say on a start (cooldown, hedge budget): see race_gate_fn.
typedef enum {
    RACE_GATE_GO = 0,
    RACE_GATE_COOLDOWN,     // the target is cooling down: record a skipped attempt
    RACE_GATE_BUDGET,       // no budget for this hedge or retry: do not start it
} race_gate_t;

//  Asked before every start except a redispatch: may `target` start now as `kind`?
//  payer: for a hedge, the target being hedged (the one that was slow); for a retry,
//  the target itself; -1 for a regular start. GO commits the caller (a token taken,
//  a probe sent), so the race starts the attempt after GO without asking again.
typedef race_gate_t (race_gate_fn) (void *arg, size_t target, race_kind_t kind, int payer,
                                    int64_t now);

//  Flags of race_attempt_fail.
#define RACE_FAIL_REDISPATCH 1u     // its worker was lost: start the target again at once,
                                    // once per target, no retry used
#define RACE_FAIL_RETRYABLE  2u     // the provider may answer a retry (connection error,
                                    // 500, 502, 503, 429)

typedef enum {
    RACE_DISPATCH = 1,      // start attempt `attempt` on target `target`
    RACE_CANCEL,            // stop attempt `attempt` (at its worker, or unqueue it)
    RACE_FINISH_RESULT,     // the job ends: attempt `attempt` won, answer its result
    RACE_FINISH_ERROR,      // the job ends with error `code` (see race_format_message)
} race_act_type_t;

typedef struct {
    uint8_t type;           // race_act_type_t
    uint8_t attempt;        // attempt index (DISPATCH, CANCEL, FINISH_RESULT)
    uint8_t target;         // target index (DISPATCH)
    uint8_t code;           // Aigw__ErrorCode (FINISH_ERROR)
} race_action_t;

//  What an input event did.
typedef enum {
    RACE_EV_BAD = -1,       // no such attempt
    RACE_EV_OK = 0,         // accepted
    RACE_EV_LATE = 1,       // attempt no longer live or job finished: ignored, counted
} race_ev_t;

typedef struct {
    int64_t started;        // when dispatched
    int64_t first_token;    // first CHUNK, -1 if none
    int64_t finished;       // won, failed or cancelled; -1 while running
    char *reason;           // failure reason (owned), or NULL
    uint8_t target;
    uint8_t state;          // race_att_state_t
    uint32_t chunks;        // CHUNKs received while live (tokens, for streaming)
    uint8_t code;           // Aigw__ErrorCode when failed
    bool replaced;          // failed and a new attempt on its target took over (redispatch)
    bool lost;              // cancelled because another attempt won
    uint8_t kind;           // race_kind_t
    int8_t retry_of;        // attempt it retries or redispatches, -1 none
    int64_t retry_at;       // failed, and a retry of it starts then; -1 none
} race_attempt_t;

typedef struct {
    race_policy_t policy;
    size_t ntargets;                          // 1..RACE_TARGETS_MAX
    int64_t deadline_us;                      // relative to start
    int64_t hedge_delay_us[RACE_TARGETS_MAX]; // hedge: after starting target i, wait this long before the next
    int64_t ttft_us;                          // 0 = none; every attempt needs a first token by then
    bool stream;                              // first CHUNK wins
    uint8_t retries;                          // retries per target (0..RACE_RETRIES_MAX)
    int64_t retry_backoff_us;                 // base of the exponential backoff (full jitter)
    uint64_t seed;                            // jitter PRNG seed
    race_gate_fn *gate;                       // NULL: every start goes
    void *gate_arg;
} race_config_t;

//  Public so a job can embed it (no allocation per job); treat fields as private.
typedef struct {
    race_config_t cfg;
    race_attempt_t att[RACE_ATTEMPTS_MAX];
    size_t natt;            // attempts created
    size_t next_target;     // targets started so far
    size_t live;            // attempts running
    int winner;             // attempt index, -1 until someone wins
    bool finished;          // a FINISH was emitted
    uint8_t final_code;     // Aigw__ErrorCode of FINISH_ERROR
    uint32_t redispatched;  // bit per target: already re-dispatched once
    int64_t t0, deadline_at, hedge_at;
    uint32_t late;          // ignored late events
    size_t waiting;         // failed attempts with a retry scheduled (retry_at)
    uint8_t retries_used[RACE_TARGETS_MAX];
    int hedge_payer;        // target the armed hedge would back up, -1 none
    bool hedge_suppressed;  // a hedge was not started: no budget
    bool hedge_blocked;     // the armed hedge was refused; the next regular start re-arms
    bool retry_suppressed;  // a retry was not started: no budget
    uint64_t rng;           // jitter PRNG state (common/rng.h)
    race_action_t act[RACE_ACTIONS_MAX];
    uint8_t act_head, act_tail;
} race_t;

//  Set up a race. Returns 0, or -1 if the config is invalid (no targets, too many).
int race_init (race_t *self, const race_config_t *cfg);
//  Free the reasons. Safe to call twice.
void race_fini (race_t *self);

//  Accept the job at `now`: starts the first target(s), arms deadline and hedge.
void race_start (race_t *self, int64_t now);
//  An attempt returned a good RESULT: it wins unless it is no longer live.
race_ev_t race_attempt_result (race_t *self, size_t attempt, int64_t now);
//  An attempt failed with code (Aigw__ErrorCode) and reason (copied, may be NULL).
//  Same as race_attempt_fail with RACE_FAIL_REDISPATCH when code is ERR_WORKER_LOST.
race_ev_t race_attempt_error (race_t *self, size_t attempt, int code, const char *reason,
                              int64_t now);
//  An attempt failed. Nothing of the job has reached the client yet (no streaming
//  winner), so:
//  - RACE_FAIL_REDISPATCH: its target starts again at once, once per target;
//  - RACE_FAIL_RETRYABLE: while the target has retries left, a retry starts after
//    the backoff (full jitter: uniform in [0, backoff x 2^n]), or after
//    retry_after_us when that is longer, if that is before the deadline; the gate
//    may still refuse it then (cooldown, budget) and the policy goes on without it.
//  Otherwise the policy goes on (hedge, fallback) or the job ends. A streaming
//  winner that fails ends the job with its code: no failover after the first token
//  reached the client.
race_ev_t race_attempt_fail (race_t *self, size_t attempt, int code, const char *reason,
                             unsigned flags, int64_t retry_after_us, int64_t now);
//  An attempt produced a CHUNK (a token). Records the first token and counts chunks;
//  for stream jobs the first chunk wins (the others are cancelled as lost). Caller
//  forwards chunks of race_winner() only.
race_ev_t race_attempt_chunk (race_t *self, size_t attempt, int64_t now);
//  Run timers due at `now`: deadline, TTFT (every attempt: no CHUNK, or for
//  non-stream jobs no RESULT, within ttft_us of its start fails it with ERR_TTFT),
//  retries, hedge.
void race_tick (race_t *self, int64_t now);
//  The client cancelled: cancel every live attempt and finish with ERR_CANCELLED.
race_ev_t race_client_cancel (race_t *self, int64_t now);
//  End the job from outside (e.g. broker shutdown): cancel every live attempt and
//  finish with code. Returns RACE_EV_LATE if it had already finished.
race_ev_t race_abort (race_t *self, int code, int64_t now);

//  Pop the next action for the caller to execute, in order. Executing an action
//  may feed new events (e.g. a dispatch that fails at once); their actions queue
//  behind. Returns false when none is left.
bool race_next_action (race_t *self, race_action_t *action);
//  Earliest time race_tick has something to do, INT64_MAX if nothing.
int64_t race_next_timer (const race_t *self);

bool race_finished (const race_t *self);
//  Aigw__ErrorCode the job finished with (FINISH_ERROR), ERR_NONE otherwise.
int race_final_code (const race_t *self);
//  Winning attempt index or -1.
int race_winner (const race_t *self);
size_t race_attempts (const race_t *self);
const race_attempt_t *race_attempt (const race_t *self, size_t attempt);
//  Number of targets started so far (targets beyond it never ran).
size_t race_targets_started (const race_t *self);
uint32_t race_late (const race_t *self);
//  Whether the budget kept this job from hedging, or from retrying.
bool race_hedge_suppressed (const race_t *self);
bool race_retry_suppressed (const race_t *self);
//  Human-readable reason for FINISH_ERROR into buf, naming targets by names[target]:
//  "all attempts failed: a: why; b: why", "deadline of N ms exceeded", "cancelled by
//  client", or for a streaming winner that failed "stream failed after N chunks: why".
//  Returns buf.
char *race_format_message (const race_t *self, const char *const *names, char *buf, size_t len);
//  Hedge delay for `auto`: the target's observed p95 once it has enough samples,
//  else the configured default.
int64_t race_hedge_auto_us (uint64_t p95_us, uint64_t samples, uint32_t default_ms);
//  Name of an error code ("ERR_TIMEOUT"), "ERR_?" if unknown.
const char *race_code_name (int code);

#endif
