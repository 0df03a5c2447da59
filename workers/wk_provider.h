// Provider registry: the adapter for each configured provider type.
#ifndef AIGW_WK_PROVIDER_H
#define AIGW_WK_PROVIDER_H

#include "cfg.h"
#include "wk_attempt.h"

//  The provider for a configured provider type; NULL for a type with no adapter.
const wk_provider_t *wk_provider_for (cfg_provider_t type);

#endif
