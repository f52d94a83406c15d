/* Offsets in one memory arena for values with known lifetimes: first fit among the blocks still
 * alive, as both executors plan their activations (CPU per node, CUDA per step). */
#ifndef TC_CORE_LIVENESS_H
#define TC_CORE_LIVENESS_H

#include <stddef.h>

typedef struct tc_live_block {
    size_t off, size;
    int end; /* the last time (node or step index) the value is read */
} tc_live_block;

/* Places size bytes made at time t and read until end: the lowest offset that overlaps no block
 * still alive at t (end >= t). Appends the block to blocks (room for one more needed), grows *total
 * to cover it and returns its offset. */
size_t tc_live_place(tc_live_block *blocks, int *n_blocks, size_t size, int t, int end, size_t *total);

#endif
