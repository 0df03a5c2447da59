// What an attempt cost: the usage it reports (or the answer's, for the winner) and
// its USD at the configured prices. Pure; used by the reply bodies and by spend.c.
#ifndef AIGW_EDGE_PRICE_H
#define AIGW_EDGE_PRICE_H

#include "cfg.h"
#include "aigw.pb-c.h"

//  The usage an attempt reports: its own, or for the winner the answer's usage when
//  the broker gave none per attempt. NULL when unknown.
const Aigw__Usage *edge_price_usage (const Aigw__AttemptInfo *a, const char *winner,
                                     const Aigw__Usage *winner_usage);

//  USD of usage u at target's prices (0 for NULL or an unknown model).
double edge_price_cost (const cfg_t *cfg, const char *target, const Aigw__Usage *u);

#endif
