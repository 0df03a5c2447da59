#pragma once
#include "r.h"
int q (void);
