// Per-model statistics and prices (see bstats.h).
#include "bstats.h"

#include <stdlib.h>
#include <string.h>

model_stats_t *bstats_new (const cfg_t *prices, const char *model)
{
    model_stats_t *st = calloc (1, sizeof *st);
    if (!st)
        return NULL;
    cfg_health_t h;
    cfg_model_health (prices, model, &h);
    health_cfg_t hc = {
        .failures = h.cooldown_failures, .error_rate = h.cooldown_error_rate,
        .min_requests = h.cooldown_min_requests, .window_ms = h.cooldown_window_ms,
        .cooldown_ms = h.cooldown_ms, .cooldown_max_ms = h.cooldown_max_ms,
        .hedge_budget = h.hedge_budget,
    };
    health_init (&st->health, &hc);
    return st;
}

model_stats_t *bstats_find (dsp_t *dsp, const char *model)
{
    dsp_model_t *m = dsp_model (dsp, model);
    return m ? dsp_model_user (m) : NULL;
}

void bstats_free_all (dsp_t *dsp)
{
    for (size_t i = 0; dsp && i < dsp_model_count (dsp); i++)
        free (dsp_model_user (dsp_model_at (dsp, i)));
}

void bstats_refresh_p95 (dsp_t *dsp)
{
    for (size_t i = 0; i < dsp_model_count (dsp); i++) {
        model_stats_t *st = dsp_model_user (dsp_model_at (dsp, i));
        if (st && hist_count (&st->latency) != st->p95_n) {
            st->p95_n = hist_count (&st->latency);
            st->p95_us = hist_percentile (&st->latency, 95.0);
        }
    }
}

cfg_t *bstats_prices (const cfg_t *cfg)
{
    cfg_t *prices = calloc (1, sizeof *prices);
    size_t n = cfg ? cfg->nmodels : 0;
    if (prices)
        prices->models = calloc (n ? n : 1, sizeof *prices->models);
    if (!prices || !prices->models) {
        cfg_destroy (&prices);
        return NULL;
    }
    if (n)
        memcpy (prices->models, cfg->models, n * sizeof *prices->models);
    prices->nmodels = n;
    if (cfg)
        prices->broker.health = cfg->broker.health;     // for cfg_model_health
    return prices;
}

double bstats_cost (const cfg_t *prices, const char *model, const Aigw__Usage *u)
{
    if (!u)
        return 0.0;
    return cfg_cost (prices, model, u->has_prompt_tokens ? u->prompt_tokens : 0,
                     u->has_completion_tokens ? u->completion_tokens : 0);
}
