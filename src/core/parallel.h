/* A process-wide pool of worker threads for the CPU kernels, created on first use.
 * Work is split into contiguous chunks, one per thread, so a kernel that gives each output
 * element to exactly one chunk produces the same bits whatever the thread count. */
#ifndef TC_CORE_PARALLEL_H
#define TC_CORE_PARALLEL_H

#include <stdint.h>

/* Sets the number of threads tc_parallel_for uses, the calling thread included.
 * 0 = the number of online cores; 1 = everything runs inline on the caller. Values above 256 are
 * clamped. A running pool is stopped and restarted lazily with the new size. Waits for a
 * tc_parallel_for in flight on another thread; must not be called from inside a callback. */
void tc_parallel_set_threads(int n);

/* The number of threads tc_parallel_for will use (>= 1). */
int tc_parallel_threads(void);

/* Calls fn(ctx, begin, end) over [0, n) split into contiguous chunks of at least `grain` items
 * (grain <= 0 counts as 1), at most one chunk per thread; the caller runs the first chunk and
 * the call returns when all chunks are done. Chunk boundaries depend only on n, grain and the
 * thread count. Calls made from inside fn run inline (one chunk), as does a call made while another
 * thread is using the pool. n <= 0 does nothing. Thread-safe; a child process after fork() gets
 * a fresh pool. */
void tc_parallel_for(int64_t n, int64_t grain, void (*fn)(void *ctx, int64_t begin, int64_t end),
                     void *ctx);

#endif
