#pragma once
#include "gen.pb-c.h"
int r (void);
