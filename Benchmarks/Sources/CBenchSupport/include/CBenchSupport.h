#ifndef C_BENCH_SUPPORT_H
#define C_BENCH_SUPPORT_H

/// Asks the CPU to bring the cache line at `address` in, without waiting for it (Swift has no
/// prefetch of its own; a plain load would stall the core when it misses).
static inline void bench_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

#endif
