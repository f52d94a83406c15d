/* The partitioner's result (public API in include/tensorc.h, "Partitioning"): per node the block
 * that runs it or the reason it falls back. Shared with the CLI, which prints it. */
#ifndef TC_PARTITION_PARTITION_H
#define TC_PARTITION_PARTITION_H

#include "ir/graph.h"

typedef struct tc_partition_node {
    int block;                 /* -1 when the node falls back */
    tc_fallback_reason reason; /* TC_FALLBACK_NONE when block >= 0 */
    const char *message;       /* why it falls back; "" when it does not */
    const char *name;
    const char *op;
} tc_partition_node;

typedef struct tc_partition tc_partition;
struct tc_partition {
    tc_arena arena; /* messages and names */
    tc_backend_kind backend;
    int min_block_size;
    int n_nodes;
    tc_partition_node *nodes;
    int n_blocks;
    int *block_sizes;
};

/* Whether forced-op pattern `pattern` (any of the spellings tc_partition_options accepts) names
 * op `op` (a node's op name: "relu", "add.Tensor", "mylib.foo"). */
bool tc_partition_op_matches(const char *pattern, const char *op);

#endif
