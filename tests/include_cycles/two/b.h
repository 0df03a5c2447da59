#pragma once
#include "a.h"
int b (void);
