// The edge's cost accounting (see spend.h). Amounts are kept as atomic nano-USD so
// the loops never take a lock for them; keys_charge has its own.
#include "spend.h"
#include "keys.h"
#include "price.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct _spend_t {
    const cfg_t *cfg;
    keys_t *keys;
    emetrics_t *em;                     // the counters live there (bridge, /metrics)
};

static int64_t s_nusd (double usd)
{
    return usd > 0 ? (int64_t) llround (usd * 1e9) : 0;
}

spend_t *spend_new (const cfg_t *cfg, keys_t *keys, emetrics_t *em)
{
    spend_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->cfg = cfg;
    self->keys = keys;
    self->em = em;
    return self;
}

void spend_destroy (spend_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free (*self_p);
    *self_p = NULL;
}

static bool s_known (const Aigw__Usage *u)
{
    return u && (u->has_prompt_tokens || u->has_completion_tokens);
}

static uint64_t s_tokens (const Aigw__Usage *u)
{
    return (uint64_t) (u->has_prompt_tokens ? u->prompt_tokens : 0)
         + (u->has_completion_tokens ? u->completion_tokens : 0);
}

static void s_charge (spend_t *self, const char *account, const char *target,
                      const Aigw__Usage *u, bool loser, int64_t wall_ms, double *sum)
{
    double usd = edge_price_cost (self->cfg, target, u);
    atomic_fetch_add (&self->em->cost_nusd, s_nusd (usd));
    if (loser)
        atomic_fetch_add (&self->em->loser_cost_nusd, s_nusd (usd));
    atomic_fetch_add (&self->em->charges, 1);
    if (self->keys && account && account[0] && strcmp (account, EDGE_NO_ACCOUNT) != 0)
        keys_charge (self->keys, account, s_tokens (u), usd, wall_ms);
    *sum += usd;
}

double spend_answer (spend_t *self, const char *account, Aigw__AttemptInfo *const *att,
                     size_t n, const char *winner, const Aigw__Usage *winner_usage,
                     int64_t wall_ms)
{
    double sum = 0.0;
    uint32_t won_tokens = winner_usage && winner_usage->has_completion_tokens
                        ? winner_usage->completion_tokens : 0;
    for (size_t i = 0; i < n; i++) {
        const Aigw__AttemptInfo *a = att[i];
        if (!a)
            continue;
        const Aigw__Usage *u = edge_price_usage (a, winner, winner_usage);
        bool loser = a->outcome == AIGW__OUTCOME__OUTCOME_CANCELLED;
        if (u)
            s_charge (self, account, a->target, u, loser, wall_ms, &sum);
        if (loser) {
            const cfg_model_t *m = a->target ? cfg_model (self->cfg, a->target) : NULL;
            if (m)
                atomic_fetch_add (&self->em->saved_nusd,
                                  s_nusd ((double) won_tokens * m->output_price / 1e6));
        }
    }
    return sum;
}

double spend_late (spend_t *self, const Aigw__Spend *sp, int64_t wall_ms)
{
    if (!s_known (sp->usage))
        return 0.0;
    double sum = 0.0;
    s_charge (self, sp->account, sp->target, sp->usage, true, wall_ms, &sum);
    atomic_fetch_add (&self->em->late_charges, 1);
    const cfg_model_t *m = sp->target ? cfg_model (self->cfg, sp->target) : NULL;
    if (m && sp->usage->has_completion_tokens)
        atomic_fetch_sub (&self->em->saved_nusd,
                          s_nusd ((double) sp->usage->completion_tokens * m->output_price / 1e6));
    return sum;
}
