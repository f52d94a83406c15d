/* C-callable launcher for the fused scaled-dot-product attention kernel: per (batch, query tile),
 * K/V tiles through shared memory, online softmax in f32, output rounded once. Pointers are
 * device pointers; `stream` is a cudaStream_t as void*. */
#ifndef TC_BACKEND_CUDA_KERNELS_ATTENTION_H
#define TC_BACKEND_CUDA_KERNELS_ATTENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "core/error.h"
#include "tensorc.h"

/* query [.., L, E], key [.., S, E], value [.., S, Ev] (contiguous, dtype f32/f16/bf16) give the
 * contiguous output [nb, L, Ev], nb = prod(ob). For output batch index (i_0 .. i_{rb-1}) the
 * operands start at sum_d i_d * qs[d] (and ks, vs, ms), except that on the last batch dim (the
 * heads) key and value use i / k_rep and i / v_rep (grouped-query attention). Strides are in
 * elements, 0 for a broadcast dim. The mask, when present (bool: false masks out; f32, f16 or
 * bf16: added to the scores), is read at mask offset + l * mask_ls + s * mask_ss. Scores are
 * scale * (q . k); with causal, key s > query l is masked out. A row with every key masked
 * out gives zeros. E and Ev up to 512. */
typedef struct tc_cuda_sdpa_args {
    const void *q, *k, *v;
    void *o;
    tc_dtype dtype;
    const void *mask; /* NULL for none */
    tc_dtype mask_dtype;
    int64_t L, S, E, Ev;
    int rb;
    int64_t ob[TC_MAX_RANK];
    int64_t qs[TC_MAX_RANK], ks[TC_MAX_RANK], vs[TC_MAX_RANK], ms[TC_MAX_RANK];
    int64_t k_rep, v_rep;
    int64_t mask_ls, mask_ss;
    bool causal;
    float scale;
} tc_cuda_sdpa_args;

tc_status tc_cuda_sdpa(const tc_cuda_sdpa_args *a, void *stream, tc_error *err);

#ifdef __cplusplus
}
#endif
#endif
