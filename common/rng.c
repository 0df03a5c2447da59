// splitmix64 (Steele, Lea and Flood) and a uniform double from it.
#include "rng.h"

uint64_t rng_next (uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double rng_uniform (uint64_t *state)
{
    //  53 random bits, shifted by half a step so 0 and 1 never occur
    return ((double) (rng_next (state) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}
