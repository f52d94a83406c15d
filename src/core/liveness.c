/* First-fit placement of values by lifetime (liveness.h). */
#include "core/liveness.h"

#include <stdbool.h>

size_t tc_live_place(tc_live_block *blocks, int *n_blocks, size_t size, int t, int end, size_t *total) {
    size_t off = 0;
    for (bool moved = true; moved;) {
        moved = false;
        for (int b = 0; b < *n_blocks; b++) {
            if (blocks[b].end < t) continue;
            if (off < blocks[b].off + blocks[b].size && blocks[b].off < off + size) {
                off = blocks[b].off + blocks[b].size;
                moved = true;
            }
        }
    }
    blocks[(*n_blocks)++] = (tc_live_block){off, size, end};
    if (off + size > *total) *total = off + size;
    return off;
}
