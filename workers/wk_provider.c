// Provider registry: maps a configured provider type to its adapter.
#include "wk_provider.h"
#include "wk_anthropic.h"
#include "wk_ollama.h"
#include "wk_openai.h"
#include "wk_sim.h"

const wk_provider_t *wk_provider_for (cfg_provider_t type)
{
    switch (type) {
        case CFG_PROVIDER_SIM:       return &wk_sim_provider;
        case CFG_PROVIDER_OPENAI:    return &wk_openai_provider;
        case CFG_PROVIDER_ANTHROPIC: return &wk_anthropic_provider;
        case CFG_PROVIDER_OLLAMA:    return &wk_ollama_provider;
    }
    return NULL;
}
