// Seeded pseudo-random numbers (splitmix64): fast, reproducible from a seed, any seed
// (0 included) is fine. Not for secrets. The one PRNG of the sim provider's draws and
// the broker's retry jitter.
#ifndef AIGW_RNG_H
#define AIGW_RNG_H

#include <stdint.h>

//  Next 64-bit value of the sequence in *state.
uint64_t rng_next (uint64_t *state);
//  Uniform double in the open interval (0, 1).
double rng_uniform (uint64_t *state);

#endif
