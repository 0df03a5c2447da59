// Per-model statistics: latency and TTFT histograms, outcomes, tokens, cost, and the
// model's health (breaker and hedge budget). One per model a worker ever announced,
// hung on its dispatcher model (dsp_model_user); the loop frees them at the end.
// Also the prices of the config's models, for costs.
#ifndef AIGW_BSTATS_H
#define AIGW_BSTATS_H

#include <stdint.h>

#include "aigw.pb-c.h"
#include "cfg.h"
#include "dsp.h"
#include "health.h"
#include "hist.h"

//  Attempt outcomes are added when the job ends (bjob.c); the metrics stream reads them.
typedef struct {
    hist_t latency;                 // attempt start -> RESULT, winners only (µs)
    hist_t ttft;                    // attempt start -> first CHUNK (µs)
    uint64_t wins;                  // attempts that won
    uint64_t losses;                // attempts cancelled because another won
    uint64_t errors;                // attempts that failed (incl. TTFT, worker lost)
    uint64_t cancelled;             // every cancelled attempt (losses included)
    uint64_t tokens_saved;          // estimate, see docs/metrics-stream.md
    uint64_t tokens_wasted;         // tokens losers had produced when cancelled
    double cost_usd;                // cfg_cost of every attempt whose usage is known
    double cost_saved_usd;          // tokens_saved at the model's output price
    uint64_t p95_us, p95_n;         // latency p95 and sample count, refreshed each second
    uint64_t retries;               // retries started on it
    uint64_t hedges;                // backups started on it
    health_t health;                // cooldown and hedge budget
} model_stats_t;

//  Statistics for a model a worker just announced, with its health settings from
//  prices (bstats_prices). Caller owns the result (free); NULL if out of memory.
model_stats_t *bstats_new (const cfg_t *prices, const char *model);
//  Statistics of a model by name, NULL if no worker ever announced it.
model_stats_t *bstats_find (dsp_t *dsp, const char *model);
//  Free every model's statistics (dsp may be NULL).
void bstats_free_all (dsp_t *dsp);
//  Refresh each model's latency p95 (hedge auto) so SUBMIT does not scan histograms.
void bstats_refresh_p95 (dsp_t *dsp);

//  A copy of cfg's models (names and prices) for cfg_cost, so the broker does not
//  keep the caller's config. Caller owns the result (cfg_destroy); NULL if out of memory.
cfg_t *bstats_prices (const cfg_t *cfg);
//  Cost in USD of a usage at model's prices (0 when u is NULL, or unpriced).
double bstats_cost (const cfg_t *prices, const char *model, const Aigw__Usage *u);

#endif
