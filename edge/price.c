// What an attempt cost (see price.h).
#include "price.h"

#include <stdbool.h>
#include <string.h>

static bool s_usage_known (const Aigw__Usage *u)
{
    return u && (u->has_prompt_tokens || u->has_completion_tokens);
}

const Aigw__Usage *edge_price_usage (const Aigw__AttemptInfo *a, const char *winner,
                                     const Aigw__Usage *winner_usage)
{
    if (s_usage_known (a->usage))
        return a->usage;
    bool won = a->outcome == AIGW__OUTCOME__OUTCOME_WON && winner && a->target
               && strcmp (a->target, winner) == 0;
    return won && s_usage_known (winner_usage) ? winner_usage : NULL;
}

double edge_price_cost (const cfg_t *cfg, const char *target, const Aigw__Usage *u)
{
    if (!u)
        return 0.0;
    return cfg_cost (cfg, target, u->has_prompt_tokens ? u->prompt_tokens : 0,
                     u->has_completion_tokens ? u->completion_tokens : 0);
}
