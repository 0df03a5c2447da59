// What the edge charges: each attempt's real usage priced from the config's price
// table, charged to the paying key (keys_charge), and the edge-wide cost counters the
// dashboard shows (cost, what cancelled losers still cost, what cancelling saved).
// Thread-safe: every loop calls it.
#ifndef AIGW_EDGE_SPEND_H
#define AIGW_EDGE_SPEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "emetrics.h"
#include "aigw.pb-c.h"

typedef struct keys_s keys_t;

//  Job.account of a job no key pays for (auth off): the broker still sends its losers'
//  SPEND, so the edge's cost counters see them; never a key name (keys_name_ok).
#define EDGE_NO_ACCOUNT "*"

typedef struct _spend_t spend_t;

//  cfg (prices), keys (may be NULL: nothing is charged to keys) and em (where the
//  counters live) outlive the object.
spend_t *spend_new (const cfg_t *cfg, keys_t *keys, emetrics_t *em);
void spend_destroy (spend_t **self_p);

//  A job's final answer: charge every attempt whose usage is known to account ("" or
//  NULL: no key pays), and credit the saving of each cancelled loser (the tokens the
//  winner produced, at the loser's output price). Returns the USD charged.
double spend_answer (spend_t *self, const char *account, Aigw__AttemptInfo *const *att,
                     size_t n, const char *winner, const Aigw__Usage *winner_usage,
                     int64_t wall_ms);

//  A SPEND from the broker: a cancelled loser's usage, after its job's answer.
double spend_late (spend_t *self, const Aigw__Spend *sp, int64_t wall_ms);

#endif
