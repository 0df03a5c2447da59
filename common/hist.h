// Lock-free log-linear latency histogram (HdrHistogram-style), mergeable.
// Values are unsigned integers (we record microseconds). Relative error <= 1/16.
#ifndef AIGW_HIST_H
#define AIGW_HIST_H

#include <stdatomic.h>
#include <stdint.h>

#define HIST_SUB_BITS 4                          // 16 linear sub-buckets per power of two
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_BUCKETS  ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

typedef struct {
    _Atomic uint64_t counts[HIST_BUCKETS];
    _Atomic uint64_t total;                      // number of values
    _Atomic uint64_t sum;                        // sum of values
    _Atomic uint64_t max;
} hist_t;

//  Zero a histogram (it may live on the stack, in a struct or in shared memory).
void hist_reset (hist_t *self);
//  Record one value. Thread-safe, wait-free.
void hist_record (hist_t *self, uint64_t value);
//  Add every count of src into dst. Thread-safe on both sides.
void hist_merge (hist_t *dst, const hist_t *src);
//  Value at percentile p (0..100): the upper bound of the bucket holding it; 0 if empty.
uint64_t hist_percentile (const hist_t *self, double p);
uint64_t hist_count (const hist_t *self);
uint64_t hist_sum (const hist_t *self);
uint64_t hist_max (const hist_t *self);
//  Number of recorded values <= limit (for Prometheus cumulative buckets).
//  Exact when limit is a bucket boundary; otherwise counts buckets whose upper bound <= limit.
uint64_t hist_count_le (const hist_t *self, uint64_t limit);
//  Bucket index for a value and the largest value a bucket holds (exposed for tests).
unsigned hist_bucket_of (uint64_t value);
uint64_t hist_bucket_upper (unsigned bucket);

#endif
