// Provider registry, and the placeholder adapter for a provider type it does not know.
#include "wk_core.h"

static int s_unimplemented_start (worker_t *w, wk_attempt_t *a, const char *req, size_t len)
{
    wk_reply_error (w, a, AIGW__ERROR_CODE__ERR_UPSTREAM, 0, "provider %s not implemented yet",
                    cfg_provider_name (a->model->cfg->provider));
    return -1;
}

static void s_unimplemented_done (worker_t *w, wk_attempt_t *a, const wk_done_t *done)
{
}

static void s_unimplemented_cancel (worker_t *w, wk_attempt_t *a)
{
}

const wk_provider_t wk_unimplemented_provider = {
    .name = "unimplemented",
    .start = s_unimplemented_start,
    .on_done = s_unimplemented_done,
    .cancel = s_unimplemented_cancel,
};

const wk_provider_t *wk_provider_for (cfg_provider_t type)
{
    switch (type) {
        case CFG_PROVIDER_SIM:       return &wk_sim_provider;
        case CFG_PROVIDER_OPENAI:    return &wk_openai_provider;
        case CFG_PROVIDER_ANTHROPIC: return &wk_anthropic_provider;
        case CFG_PROVIDER_OLLAMA:    return &wk_ollama_provider;
        default:                     return &wk_unimplemented_provider;
    }
}
