// Log-linear histogram: bucket = (exponent, 4-bit mantissa); atomics only, no locks.
#include "hist.h"

#include <string.h>

void hist_reset (hist_t *self)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        atomic_store_explicit (&self->counts[i], 0, memory_order_relaxed);
    atomic_store (&self->total, 0);
    atomic_store (&self->sum, 0);
    atomic_store (&self->max, 0);
}

unsigned hist_bucket_of (uint64_t value)
{
    if (value < HIST_SUB)
        return (unsigned) value;
    unsigned msb = 63u - (unsigned) __builtin_clzll (value);      // >= HIST_SUB_BITS
    unsigned shift = msb - HIST_SUB_BITS;
    unsigned mant = (unsigned) (value >> shift) & (HIST_SUB - 1);
    return (shift + 1) * HIST_SUB + mant;
}

uint64_t hist_bucket_upper (unsigned bucket)
{
    if (bucket < HIST_SUB)
        return bucket;
    unsigned shift = bucket / HIST_SUB - 1;
    uint64_t mant = bucket % HIST_SUB;
    uint64_t base = ((uint64_t) HIST_SUB + mant) << shift;
    if (shift >= 63 - HIST_SUB_BITS && mant == HIST_SUB - 1)
        return UINT64_MAX;
    return base + ((uint64_t) 1 << shift) - 1;
}

void hist_record (hist_t *self, uint64_t value)
{
    atomic_fetch_add_explicit (&self->counts[hist_bucket_of (value)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit (&self->total, 1, memory_order_relaxed);
    atomic_fetch_add_explicit (&self->sum, value, memory_order_relaxed);
    uint64_t cur = atomic_load_explicit (&self->max, memory_order_relaxed);
    while (value > cur
           && !atomic_compare_exchange_weak_explicit (&self->max, &cur, value,
                                                      memory_order_relaxed, memory_order_relaxed))
        ;
}

void hist_merge (hist_t *dst, const hist_t *src)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        uint64_t c = atomic_load_explicit (&((hist_t *) src)->counts[i], memory_order_relaxed);
        if (c)
            atomic_fetch_add_explicit (&dst->counts[i], c, memory_order_relaxed);
    }
    atomic_fetch_add (&dst->total, atomic_load (&((hist_t *) src)->total));
    atomic_fetch_add (&dst->sum, atomic_load (&((hist_t *) src)->sum));
    uint64_t m = atomic_load (&((hist_t *) src)->max);
    uint64_t cur = atomic_load (&dst->max);
    while (m > cur && !atomic_compare_exchange_weak (&dst->max, &cur, m))
        ;
}

uint64_t hist_count (const hist_t *self)
{
    return atomic_load (&((hist_t *) self)->total);
}

uint64_t hist_sum (const hist_t *self)
{
    return atomic_load (&((hist_t *) self)->sum);
}

uint64_t hist_max (const hist_t *self)
{
    return atomic_load (&((hist_t *) self)->max);
}

uint64_t hist_percentile (const hist_t *self, double p)
{
    hist_t *h = (hist_t *) self;
    uint64_t total = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        total += atomic_load_explicit (&h->counts[i], memory_order_relaxed);
    if (total == 0)
        return 0;
    if (p < 0)
        p = 0;
    if (p > 100)
        p = 100;
    uint64_t rank = (uint64_t) ((p / 100.0) * (double) total + 0.5);
    if (rank < 1)
        rank = 1;
    if (rank > total)
        rank = total;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += atomic_load_explicit (&h->counts[i], memory_order_relaxed);
        if (seen >= rank) {
            uint64_t upper = hist_bucket_upper (i);
            uint64_t mx = atomic_load (&h->max);
            return upper > mx && mx ? mx : upper;
        }
    }
    return atomic_load (&h->max);
}

uint64_t hist_count_le (const hist_t *self, uint64_t limit)
{
    hist_t *h = (hist_t *) self;
    uint64_t n = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        if (hist_bucket_upper (i) > limit)
            break;
        n += atomic_load_explicit (&h->counts[i], memory_order_relaxed);
    }
    return n;
}
