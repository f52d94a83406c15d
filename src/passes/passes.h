/* The graph passes and the tiny pass manager that runs them in order. Each pass reads a graph and
 * returns a new one built through tc_rewrite (passes/rewrite.h), so its result is verified. */
#ifndef TC_PASSES_PASSES_H
#define TC_PASSES_PASSES_H

#include "passes/rewrite.h"

#include <stdio.h>

/* The largest constant that constant folding creates by default. */
#define TC_FOLD_MAX_BYTES ((size_t)16 << 20)

typedef struct tc_pass_options {
    bool dce;              /* dead-code elimination */
    bool identity;         /* readers of identity nodes (alias, same-shape views, dropout's clone) read their input */
    bool fold_constants;   /* evaluate nodes whose inputs are all constants on the CPU backend */
    bool fold_batchnorm;   /* fold inference batch norm into the convolution before it */
    bool attention_masks;  /* drop constant attention masks that mask nothing */
    bool patch_conv;       /* patch-embedding convolutions (stride = kernel) as matrix products */
    bool permute_linear;   /* permutes of leading dims moved across linear layers (batch-first attention) */
    bool merge_linear;     /* sibling linears on one input (attention's q, k, v) as one product */
    bool view_chains;      /* attention's q, k, v as one view (atoms, select, permute) of their source */
    tc_dtype precision;    /* TC_F32: off; TC_F16 / TC_BF16: run f32 compute in that type */
    size_t fold_max_bytes; /* largest constant folding may create; 0 = TC_FOLD_MAX_BYTES */
    bool verbose;          /* one line per pass: node and constant counts before and after, time */
    FILE *log;             /* where verbose lines go; NULL = stderr */
} tc_pass_options;

/* dce, identity, fold_constants, fold_batchnorm, attention_masks, patch_conv, permute_linear,
 * merge_linear, view_chains on; precision TC_F32; quiet. */
void tc_pass_options_init(tc_pass_options *o);

/* Runs the enabled passes in order: dce, identity, fold_constants, fold_batchnorm, attention_masks,
 * patch_conv, permute_linear, merge_linear, view_chains, precision, dce.
 * Takes over the caller's reference to *g: on success *g is the optimized graph (which keeps
 * the graphs it came from alive, so borrowed constants stay valid) and the caller frees that one;
 * a pass that changes nothing leaves *g as it was. On error *g is unchanged and still the
 * caller's; err names the pass. o may be NULL (defaults). */
tc_status tc_passes_run(tc_graph **g, const tc_pass_options *o, tc_error *err);

/* The passes. Each writes a new graph to *out and the number of rewrites to *changed. */
typedef tc_status (*tc_pass_fn)(tc_graph *g, const tc_pass_options *o, tc_graph **out, int *changed, tc_error *err);
/* Removes nodes none of whose outputs reach a graph output, and constants nothing reads. */
tc_status tc_pass_dce(tc_graph *g, const tc_pass_options *o, tc_graph **out, int *changed, tc_error *err);
/* Identity nodes (alias, detach, lift_fresh_copy, views and _to_copy that change nothing, clone or
 * contiguous of a computed tensor) disappear: their readers read the input. */
tc_status tc_pass_identity(tc_graph *g, const tc_pass_options *o, tc_graph **out, int *changed, tc_error *err);
/* Replaces every node whose tensor inputs are all constants (and whose int arguments and output
 * shapes are not symbolic) by constants computed with the CPU kernels, up to o->fold_max_bytes
 * per node and not when that would blow a small constant up into a large one (expand, repeat). */
tc_status tc_pass_fold_constants(tc_graph *g, const tc_pass_options *o, tc_graph **out, int *changed,
                                 tc_error *err);
/* conv -> _native_batch_norm_legit_no_training with constant parameters and no other reader of
 * the conv output becomes one conv with scaled weights and a new bias. */
tc_status tc_pass_fold_batchnorm(tc_graph *g, const tc_pass_options *o, tc_graph **out, int *changed,
                                 tc_error *err);
/* scaled_dot_product_attention whose mask is a constant that masks nothing (bool all true, float
 * all zero) loses the mask, so that fused attention without mask support can run it. */
tc_status tc_pass_attention_masks(tc_graph *g, const tc_pass_options *o, tc_graph **out, int *changed,
                                  tc_error *err);
/* A 2-D convolution whose stride equals its kernel (no padding or dilation, one group, kernel
 * larger than 1x1, input sizes multiples of it) and whose output only view-like nodes read
 * becomes view, permute, reshape, linear, permute: the patches times the flattened weight. */
tc_status tc_pass_patch_conv(tc_graph *g, const tc_pass_options *o, tc_graph **out, int *changed, tc_error *err);
/* A permute of leading dims after a linear, reached through views from a permute before it, joins
 * that permute (the linear reads its rows in the final order); a linear reading a permute of
 * leading dims, whose output only view-like nodes read, runs before the permute. */
tc_status tc_pass_permute_linear(tc_graph *g, const tc_pass_options *o, tc_graph **out, int *changed,
                                 tc_error *err);
/* Linears reading one input, with constant weights of one dtype and width (constant biases on
 * all or none), read only by view-like nodes, become one linear over the concatenated weights and
 * a slice of its last dim per original linear. */
tc_status tc_pass_merge_linear(tc_graph *g, const tc_pass_options *o, tc_graph **out, int *changed, tc_error *err);
/* The chain of views, permutes, selects and copies that leads to the query, key or value of
 * scaled_dot_product_attention (static sizes, two steps or more, with a copy or made shorter)
 * becomes view (the source split into atoms), select, permute, view. */
tc_status tc_pass_view_chains(tc_graph *g, const tc_pass_options *o, tc_graph **out, int *changed, tc_error *err);
/* Mixed precision (o->precision f16 or bf16): f32 compute runs in the low type; the numerically
 * sensitive ops (softmax, norms, sums and means, exp/log/pow) stay f32 with casts around them;
 * graph inputs and outputs keep their dtypes. */
tc_status tc_pass_precision(tc_graph *g, const tc_pass_options *o, tc_graph **out, int *changed,
                            tc_error *err);
/* Whether the precision pass keeps op (an op id) in f32. */
bool tc_precision_keeps_f32(int op);

#endif
