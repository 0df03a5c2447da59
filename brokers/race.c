// Per-job race state machine: pure logic over attempts, actions and timers.
#include "race.h"
#include "rng.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_push (race_t *self, uint8_t type, size_t attempt, size_t target, int code)
{
    //  Bounded by construction: one DISPATCH and one CANCEL per attempt, one FINISH
    assert (self->act_tail < RACE_ACTIONS_MAX);
    race_action_t *a = &self->act[self->act_tail++];
    a->type = type;
    a->attempt = (uint8_t) attempt;
    a->target = (uint8_t) target;
    a->code = (uint8_t) code;
}

int race_init (race_t *self, const race_config_t *cfg)
{
    memset (self, 0, sizeof *self);
    self->winner = -1;
    if (!cfg || cfg->ntargets == 0 || cfg->ntargets > RACE_TARGETS_MAX)
        return -1;
    if (cfg->policy != RACE_POLICY_RACE && cfg->policy != RACE_POLICY_HEDGE
        && cfg->policy != RACE_POLICY_FALLBACK)
        return -1;
    self->cfg = *cfg;
    if (self->cfg.retries > RACE_RETRIES_MAX)
        self->cfg.retries = RACE_RETRIES_MAX;
    if (self->cfg.retry_backoff_us < 0)
        self->cfg.retry_backoff_us = 0;
    self->rng = cfg->seed;
    self->hedge_payer = -1;
    return 0;
}

void race_fini (race_t *self)
{
    for (size_t i = 0; i < self->natt; i++) {
        free (self->att[i].reason);
        self->att[i].reason = NULL;
    }
}

//  A new attempt record on target (no action yet).
static race_attempt_t *s_new_attempt (race_t *self, size_t target, race_kind_t kind,
                                      int retry_of, int64_t now, size_t *index)
{
    assert (self->natt < RACE_ATTEMPTS_MAX);
    size_t i = self->natt++;
    race_attempt_t *a = &self->att[i];
    memset (a, 0, sizeof *a);
    a->target = (uint8_t) target;
    a->kind = (uint8_t) kind;
    a->retry_of = (int8_t) retry_of;
    a->retry_at = -1;
    a->started = now;
    a->first_token = -1;
    a->finished = -1;
    *index = i;
    return a;
}

//  Create a running attempt for target and ask the caller to dispatch it.
static void s_dispatch (race_t *self, size_t target, race_kind_t kind, int retry_of,
                        int64_t now)
{
    size_t i;
    race_attempt_t *a = s_new_attempt (self, target, kind, retry_of, now, &i);
    a->state = RACE_ATT_RUNNING;
    self->live++;
    if (self->cfg.policy == RACE_POLICY_HEDGE
        && (kind == RACE_KIND_FIRST || kind == RACE_KIND_HEDGE)) {
        self->hedge_at = now + self->cfg.hedge_delay_us[target];
        self->hedge_payer = (int) target;
        self->hedge_blocked = false;    // a new target to hedge, with its own budget
    }
    s_push (self, RACE_DISPATCH, i, target, 0);
}

static void s_set_reason (race_attempt_t *a, const char *reason);

//  Record that target was not started because it is cooling down.
static void s_skip (race_t *self, size_t target, race_kind_t kind, int retry_of, int64_t now)
{
    size_t i;
    race_attempt_t *a = s_new_attempt (self, target, kind, retry_of, now, &i);
    a->state = RACE_ATT_SKIPPED;
    a->finished = now;
    a->code = AIGW__ERROR_CODE__ERR_COOLDOWN;
    s_set_reason (a, "cooling down after failures");
}

//  Room for one more attempt beyond the scheduled retries and the targets not
//  started yet (each needs a record, started or skipped).
static bool s_room (const race_t *self)
{
    return self->natt + self->waiting + (self->cfg.ntargets - self->next_target) + 1
           <= RACE_ATTEMPTS_MAX;
}

//  Start target as kind unless the gate says otherwise (then it is recorded as
//  skipped, or the budget flag is set). Returns the gate's answer.
static race_gate_t s_start (race_t *self, size_t target, race_kind_t kind, int payer,
                            int retry_of, int64_t now)
{
    race_gate_t g = self->cfg.gate
                    ? self->cfg.gate (self->cfg.gate_arg, target, kind, payer, now)
                    : RACE_GATE_GO;
    if (g == RACE_GATE_BUDGET) {
        if (kind == RACE_KIND_HEDGE)
            self->hedge_suppressed = self->hedge_blocked = true;
        else
            self->retry_suppressed = true;
        return g;
    }
    if (g == RACE_GATE_COOLDOWN) {
        s_skip (self, target, kind, retry_of, now);
        return g;
    }
    s_dispatch (self, target, kind, retry_of, now);
    return RACE_GATE_GO;
}

//  Start the next target that is not cooling down (those are recorded as skipped).
//  A hedge the budget refuses leaves the target unstarted and disarms the hedge until
//  the next regular start (a failover), which hedges on its own target's budget.
static void s_start_next (race_t *self, race_kind_t kind, int64_t now)
{
    int payer = kind == RACE_KIND_HEDGE ? self->hedge_payer : -1;
    while (self->next_target < self->cfg.ntargets) {
        size_t t = self->next_target++;
        race_gate_t g = s_start (self, t, kind, payer, -1, now);
        if (g == RACE_GATE_GO)
            return;
        if (g == RACE_GATE_BUDGET) {
            self->next_target--;
            return;
        }
    }
}

static void s_finish_error (race_t *self, int code);
static int s_aggregate (const race_t *self);

void race_start (race_t *self, int64_t now)
{
    if (self->natt || self->finished)
        return;
    self->t0 = now;
    self->deadline_at = now + self->cfg.deadline_us;
    if (self->cfg.policy == RACE_POLICY_RACE)
        while (self->next_target < self->cfg.ntargets) {
            size_t t = self->next_target++;
            s_start (self, t, RACE_KIND_FIRST, -1, -1, now);
        }
    else
        s_start_next (self, RACE_KIND_FIRST, now);
    if (self->live == 0)
        s_finish_error (self, s_aggregate (self));  // every target is cooling down
}

//  Move a running attempt to a final state.
static void s_end_attempt (race_t *self, size_t i, race_att_state_t state, int64_t now)
{
    race_attempt_t *a = &self->att[i];
    assert (a->state == RACE_ATT_RUNNING);
    a->state = (uint8_t) state;
    a->finished = now;
    self->live--;
}

//  Cancel every running attempt except `keep` (-1: all of them). lost: they lose
//  because attempt `keep` won.
static void s_cancel_others (race_t *self, int keep, bool lost, int64_t now)
{
    for (size_t i = 0; i < self->natt; i++)
        self->att[i].retry_at = -1;     // the job is decided: no retry will start
    self->waiting = 0;
    for (size_t i = 0; i < self->natt; i++)
        if (self->att[i].state == RACE_ATT_RUNNING && (int) i != keep) {
            s_end_attempt (self, i, RACE_ATT_CANCELLED, now);
            self->att[i].lost = lost;
            s_push (self, RACE_CANCEL, i, self->att[i].target, 0);
        }
}

static void s_cancel_running (race_t *self, int64_t now)
{
    s_cancel_others (self, -1, false, now);
}

static void s_finish_error (race_t *self, int code)
{
    assert (!self->finished);
    self->finished = true;
    self->final_code = (uint8_t) code;
    s_push (self, RACE_FINISH_ERROR, 0, 0, code);
}

//  Aggregate code of the failed attempts (docs/errors.md): all the same -> that code;
//  else a provider's rate limit (a later retry can succeed), else a provider refusing
//  the gateway's key, else ERR_UPSTREAM. So ERR_BAD_REQUEST needs every attempt to agree.
//  Skipped targets do not vote; with nothing but skipped ones it is ERR_COOLDOWN.
static int s_aggregate (const race_t *self)
{
    int code = -1;
    bool mixed = false, limited = false, auth = false, skipped = false;
    for (size_t i = 0; i < self->natt; i++) {
        const race_attempt_t *a = &self->att[i];
        skipped |= a->state == RACE_ATT_SKIPPED;
        if (a->state != RACE_ATT_FAILED || a->replaced)
            continue;
        limited |= a->code == AIGW__ERROR_CODE__ERR_RATE_LIMITED;
        auth |= a->code == AIGW__ERROR_CODE__ERR_UPSTREAM_AUTH;
        if (code == -1)
            code = a->code;
        else
        if (code != a->code)
            mixed = true;
    }
    if (code == -1)
        return skipped ? AIGW__ERROR_CODE__ERR_COOLDOWN : AIGW__ERROR_CODE__ERR_UPSTREAM;
    if (!mixed)
        return code;
    return limited ? AIGW__ERROR_CODE__ERR_RATE_LIMITED
         : auth ? AIGW__ERROR_CODE__ERR_UPSTREAM_AUTH : AIGW__ERROR_CODE__ERR_UPSTREAM;
}

static bool s_live (const race_t *self, size_t attempt, race_ev_t *ev)
{
    if (attempt >= self->natt) {
        *ev = RACE_EV_BAD;
        return false;
    }
    if (self->finished || self->att[attempt].state != RACE_ATT_RUNNING) {
        *ev = RACE_EV_LATE;
        return false;
    }
    *ev = RACE_EV_OK;
    return true;
}

race_ev_t race_attempt_result (race_t *self, size_t attempt, int64_t now)
{
    race_ev_t ev;
    if (!s_live (self, attempt, &ev)) {
        self->late += ev == RACE_EV_LATE;
        return ev;
    }
    s_end_attempt (self, attempt, RACE_ATT_WON, now);
    if (self->winner < 0)
        s_cancel_others (self, (int) attempt, true, now);
    else
        s_cancel_running (self, now);   // none left: a streaming winner cancelled them
    self->winner = (int) attempt;
    self->finished = true;
    s_push (self, RACE_FINISH_RESULT, attempt, self->att[attempt].target, 0);
    return RACE_EV_OK;
}

//  After an attempt failed (and no retry of it is scheduled): start what the policy
//  says, or end the job.
static void s_after_failure (race_t *self, int64_t now)
{
    if (self->winner < 0) {
        if (self->cfg.policy == RACE_POLICY_HEDGE && self->next_target < self->cfg.ntargets)
            s_start_next (self, RACE_KIND_FIRST, now);
        else
        if (self->cfg.policy == RACE_POLICY_FALLBACK && self->live == 0 && self->waiting == 0
            && self->next_target < self->cfg.ntargets)
            s_start_next (self, RACE_KIND_FIRST, now);
    }
    if (self->live == 0 && self->waiting == 0)
        s_finish_error (self, s_aggregate (self));
}

//  Full jitter: uniform in [0, min(cap, base x 2^n)].
static int64_t s_backoff (race_t *self, unsigned n)
{
    int64_t top = self->cfg.retry_backoff_us;
    for (unsigned i = 0; i < n && top < RACE_BACKOFF_MAX_US; i++)
        top *= 2;
    if (top > RACE_BACKOFF_MAX_US)
        top = RACE_BACKOFF_MAX_US;
    return top > 0 ? (int64_t) (rng_next (&self->rng) % (uint64_t) (top + 1)) : 0;
}

//  Schedule a retry of failed attempt i if its target has retries left, there is
//  room, and it can start before the deadline. Returns true if scheduled.
static bool s_schedule_retry (race_t *self, size_t i, int64_t retry_after_us, int64_t now)
{
    race_attempt_t *a = &self->att[i];
    if (self->retries_used[a->target] >= self->cfg.retries || !s_room (self))
        return false;
    int64_t delay = s_backoff (self, self->retries_used[a->target]);
    if (retry_after_us > delay)
        delay = retry_after_us;
    if (now + delay >= self->deadline_at)
        return false;
    self->retries_used[a->target]++;
    a->retry_at = now + delay;
    self->waiting++;
    return true;
}

static void s_set_reason (race_attempt_t *a, const char *reason)
{
    free (a->reason);
    a->reason = NULL;
    if (!reason)
        return;
    size_t n = strnlen (reason, RACE_REASON_MAX - 1);
    a->reason = malloc (n + 1);
    if (a->reason) {
        memcpy (a->reason, reason, n);
        a->reason[n] = 0;
    }
}

race_ev_t race_attempt_error (race_t *self, size_t attempt, int code, const char *reason,
                              int64_t now)
{
    return race_attempt_fail (self, attempt, code, reason,
                              code == AIGW__ERROR_CODE__ERR_WORKER_LOST ? RACE_FAIL_REDISPATCH : 0,
                              0, now);
}

race_ev_t race_attempt_fail (race_t *self, size_t attempt, int code, const char *reason,
                             unsigned flags, int64_t retry_after_us, int64_t now)
{
    race_ev_t ev;
    if (!s_live (self, attempt, &ev)) {
        self->late += ev == RACE_EV_LATE;
        return ev;
    }
    race_attempt_t *a = &self->att[attempt];
    s_end_attempt (self, attempt, RACE_ATT_FAILED, now);
    a->code = (uint8_t) code;
    if ((int) attempt == self->winner) {
        //  A streaming winner failed after its chunks reached the client: nothing
        //  can replace it
        if (code == AIGW__ERROR_CODE__ERR_WORKER_LOST) {
            char why[RACE_REASON_MAX];
            snprintf (why, sizeof why, "worker lost mid-stream (%s)", reason ? reason : "?");
            s_set_reason (a, why);
        }
        else
            s_set_reason (a, reason);
        s_cancel_running (self, now);
        s_finish_error (self, code);
        return RACE_EV_OK;
    }
    s_set_reason (a, reason);
    uint32_t bit = 1u << a->target;
    if ((flags & RACE_FAIL_REDISPATCH) && !(self->redispatched & bit) && self->winner < 0
        && s_room (self)) {
        self->redispatched |= bit;
        a->replaced = true;
        s_dispatch (self, a->target, RACE_KIND_REDISPATCH, (int) attempt, now);
        return RACE_EV_OK;
    }
    if ((flags & RACE_FAIL_RETRYABLE) && self->winner < 0
        && s_schedule_retry (self, attempt, retry_after_us, now))
        return RACE_EV_OK;
    s_after_failure (self, now);
    return RACE_EV_OK;
}

race_ev_t race_attempt_chunk (race_t *self, size_t attempt, int64_t now)
{
    race_ev_t ev;
    if (!s_live (self, attempt, &ev)) {
        self->late += ev == RACE_EV_LATE;
        return ev;
    }
    race_attempt_t *a = &self->att[attempt];
    if (a->first_token < 0)
        a->first_token = now;
    a->chunks++;
    if (self->cfg.stream && self->winner < 0) {
        //  Everyone else loses now; the winner stays running until its RESULT
        self->winner = (int) attempt;
        s_cancel_others (self, (int) attempt, true, now);
    }
    return RACE_EV_OK;
}

race_ev_t race_abort (race_t *self, int code, int64_t now)
{
    if (self->finished) {
        self->late++;
        return RACE_EV_LATE;
    }
    s_cancel_running (self, now);
    s_finish_error (self, code);
    return RACE_EV_OK;
}

race_ev_t race_client_cancel (race_t *self, int64_t now)
{
    return race_abort (self, AIGW__ERROR_CODE__ERR_CANCELLED, now);
}

static bool s_any_produced (const race_t *self)
{
    for (size_t i = 0; i < self->natt; i++)
        if (self->att[i].state == RACE_ATT_RUNNING && self->att[i].first_token >= 0)
            return true;
    return false;
}

static bool s_hedge_armed (const race_t *self)
{
    return self->cfg.policy == RACE_POLICY_HEDGE && self->winner < 0 && !self->hedge_blocked
           && self->next_target < self->cfg.ntargets && !s_any_produced (self);
}

//  Start the retries that are due; one the gate refuses lets the policy go on.
static void s_tick_retries (race_t *self, int64_t now)
{
    size_t n = self->natt;
    for (size_t i = 0; i < n && !self->finished && self->waiting; i++) {
        race_attempt_t *a = &self->att[i];
        if (a->retry_at < 0 || a->retry_at > now)
            continue;
        a->retry_at = -1;
        self->waiting--;
        if (s_start (self, a->target, RACE_KIND_RETRY, a->target, (int) i, now) != RACE_GATE_GO)
            s_after_failure (self, now);
    }
}

static bool s_ttft_armed (const race_t *self, const race_attempt_t *a)
{
    return self->cfg.ttft_us > 0 && a->state == RACE_ATT_RUNNING && a->first_token < 0;
}

//  Fail every attempt that had no first token within the TTFT limit.
static void s_tick_ttft (race_t *self, int64_t now)
{
    size_t n = self->natt;      // attempts started below are not checked now
    for (size_t i = 0; i < n && !self->finished; i++) {
        race_attempt_t *a = &self->att[i];
        if (!s_ttft_armed (self, a) || a->started + self->cfg.ttft_us > now)
            continue;
        s_end_attempt (self, i, RACE_ATT_FAILED, now);
        a->code = AIGW__ERROR_CODE__ERR_TTFT;
        char why[RACE_REASON_MAX];
        snprintf (why, sizeof why, "no first token within %lld ms",
                  (long long) (self->cfg.ttft_us / 1000));
        s_set_reason (a, why);
        s_push (self, RACE_CANCEL, i, a->target, 0);
        s_after_failure (self, now);
    }
}

void race_tick (race_t *self, int64_t now)
{
    if (self->finished || self->natt == 0)
        return;
    if (now >= self->deadline_at) {
        s_cancel_running (self, now);
        s_finish_error (self, AIGW__ERROR_CODE__ERR_TIMEOUT);
        return;
    }
    s_tick_ttft (self, now);
    if (!self->finished)
        s_tick_retries (self, now);
    if (!self->finished && s_hedge_armed (self) && now >= self->hedge_at) {
        //  With nothing running (a retry is waiting) it is a failover, not a backup
        s_start_next (self, self->live ? RACE_KIND_HEDGE : RACE_KIND_FIRST, now);
        if (self->live == 0 && self->waiting == 0)
            s_finish_error (self, s_aggregate (self));
    }
}

bool race_next_action (race_t *self, race_action_t *action)
{
    if (self->act_head == self->act_tail) {
        self->act_head = self->act_tail = 0;
        return false;
    }
    *action = self->act[self->act_head++];
    if (self->act_head == self->act_tail)
        self->act_head = self->act_tail = 0;
    return true;
}

int64_t race_next_timer (const race_t *self)
{
    if (self->finished || self->natt == 0)
        return INT64_MAX;
    int64_t t = self->deadline_at;
    if (s_hedge_armed (self) && self->hedge_at < t)
        t = self->hedge_at;
    for (size_t i = 0; i < self->natt; i++) {
        const race_attempt_t *a = &self->att[i];
        if (s_ttft_armed (self, a) && a->started + self->cfg.ttft_us < t)
            t = a->started + self->cfg.ttft_us;
        if (a->retry_at >= 0 && a->retry_at < t)
            t = a->retry_at;
    }
    return t;
}

bool race_finished (const race_t *self)
{
    return self->finished;
}

int race_final_code (const race_t *self)
{
    return self->finished ? self->final_code : AIGW__ERROR_CODE__ERR_NONE;
}

int race_winner (const race_t *self)
{
    return self->winner;
}

size_t race_attempts (const race_t *self)
{
    return self->natt;
}

const race_attempt_t *race_attempt (const race_t *self, size_t attempt)
{
    return attempt < self->natt ? &self->att[attempt] : NULL;
}

size_t race_targets_started (const race_t *self)
{
    return self->next_target;
}

uint32_t race_late (const race_t *self)
{
    return self->late;
}

bool race_hedge_suppressed (const race_t *self)
{
    return self->hedge_suppressed;
}

bool race_retry_suppressed (const race_t *self)
{
    return self->retry_suppressed;
}

const char *race_code_name (int code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value (&aigw__error_code__descriptor, code);
    return v ? v->name : "ERR_?";
}

static void s_append (char *buf, size_t len, size_t *off, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));
static void s_append (char *buf, size_t len, size_t *off, const char *fmt, ...)
{
    if (*off + 1 >= len)
        return;
    va_list ap;
    va_start (ap, fmt);
    int n = vsnprintf (buf + *off, len - *off, fmt, ap);
    va_end (ap);
    if (n > 0)
        *off = *off + (size_t) n < len ? *off + (size_t) n : len - 1;
}

char *race_format_message (const race_t *self, const char *const *names, char *buf, size_t len)
{
    size_t off = 0;
    if (!len)
        return buf;
    buf[0] = 0;
    int code = self->final_code;
    const race_attempt_t *w = self->winner >= 0 ? &self->att[self->winner] : NULL;
    if (w && w->state == RACE_ATT_FAILED) {
        s_append (buf, len, &off, "stream failed after %u chunks: %s", w->chunks,
                  w->reason ? w->reason : race_code_name (w->code));
        return buf;
    }
    if (code == AIGW__ERROR_CODE__ERR_CANCELLED)
        s_append (buf, len, &off, "cancelled by client");
    else
    if (code == AIGW__ERROR_CODE__ERR_COOLDOWN)
        s_append (buf, len, &off, "every target is cooling down after failures");
    else
    if (code == AIGW__ERROR_CODE__ERR_TIMEOUT)
        s_append (buf, len, &off, "deadline of %lld ms exceeded",
                  (long long) (self->cfg.deadline_us / 1000));
    else
        s_append (buf, len, &off, "all attempts failed");
    const char *sep = ": ";
    for (size_t i = 0; i < self->natt; i++) {
        const race_attempt_t *a = &self->att[i];
        if (a->state != RACE_ATT_FAILED
            && !(a->state == RACE_ATT_SKIPPED && code == AIGW__ERROR_CODE__ERR_COOLDOWN))
            continue;
        const char *name = names && names[a->target] ? names[a->target] : "?";
        s_append (buf, len, &off, "%s%s: %s", sep, name,
                  a->reason ? a->reason : race_code_name (a->code));
        sep = "; ";
    }
    return buf;
}

int64_t race_hedge_auto_us (uint64_t p95_us, uint64_t samples, uint32_t default_ms)
{
    if (samples >= RACE_HEDGE_MIN_SAMPLES && p95_us > 0)
        return (int64_t) p95_us;
    return (int64_t) default_ms * 1000;
}
