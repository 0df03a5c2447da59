#pragma once
#include "d.h"
#include "a.h"
