// Monotonic clock helpers shared by every aigw binary.
#ifndef AIGW_ACLOCK_H
#define AIGW_ACLOCK_H

#include <stdint.h>
#include <time.h>

//  Microseconds on CLOCK_MONOTONIC (comparable across processes on Linux).
static inline int64_t aclock_now_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t aclock_now_ms (void)
{
    return aclock_now_us () / 1000;
}

//  Unix wall-clock milliseconds (for what must survive a restart: rate windows, budgets).
static inline int64_t aclock_wall_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
