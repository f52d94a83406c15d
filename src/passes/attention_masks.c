/* Attention masks that mask nothing: scaled_dot_product_attention with a constant boolean mask
 * that is true everywhere, or a constant additive float mask that is zero everywhere, computes
 * the same as with no mask, and a fused attention engine that takes no mask can run it. Models
 * make such masks from shapes alone (BERT without an attention mask builds `arange(L) >= 0`),
 * which constant folding turns into constants first. */
#include "passes/passes.h"
#include "core/dtype.h"

#include <string.h>

enum { SDPA_MASK_ARG = 3 };

/* Whether constant v leaves every score as it is: bool all true, float all +0 or -0. */
static bool masks_nothing(const tc_value *v) {
    if (!v || v->kind != TC_VALUE_CONSTANT || !v->data) return false;
    int64_t n = tc_value_numel_static(v);
    if (n <= 0) return false;
    if (v->dtype == TC_BOOL) {
        const unsigned char *b = v->data;
        for (int64_t i = 0; i < n; i++)
            if (!b[i]) return false;
        return true;
    }
    if (v->dtype != TC_F32 && v->dtype != TC_F16 && v->dtype != TC_BF16 && v->dtype != TC_F64) return false;
    for (int64_t i = 0; i < n; i++)
        if (tc_load_f64(v->data, v->dtype, i) != 0.0) return false;
    return true;
}

/* Ops that only move or repeat their first input's elements: a mask made by them from a constant
 * holds only that constant's values. */
static bool moves_elements(int op) {
    switch (op) {
    case TC_OP_EXPAND: case TC_OP_VIEW: case TC_OP_UNSAFE_VIEW: case TC_OP_RESHAPE: case TC_OP_PERMUTE:
    case TC_OP_UNSQUEEZE: case TC_OP_SQUEEZE: case TC_OP_SQUEEZE_DIM: case TC_OP_SQUEEZE_DIMS: case TC_OP_ALIAS:
    case TC_OP_DETACH: case TC_OP_CLONE: case TC_OP_CONTIGUOUS: case TC_OP_LIFT_FRESH_COPY: case TC_OP_REPEAT:
        return true;
    default:
        return false;
    }
}

static tc_status mask_node(tc_rewriter *rw, const tc_node *n, void *user) {
    (void)user;
    if (n->op != TC_OP_SDPA) return tc_rw_copy_node(rw, n);
    const tc_value *mask = tc_node_tensor(n, SDPA_MASK_ARG);
    /* a constant too large to fold once broadcast (BERT's [B, 1, L, L] from [1, 1, L, 1]) is still
     * found behind its expand */
    const tc_value *src = mask;
    while (src && src->kind == TC_VALUE_NODE && moves_elements(src->producer->op))
        src = tc_node_tensor(src->producer, 0);
    if (!src || !masks_nothing(tc_rw_peek(rw, src))) return tc_rw_copy_node(rw, n);
    tc_arg args[TC_OP_MAX_ARGS];
    int na;
    TC_TRY(tc_rw_args(rw, n, NULL, args, &na));
    int at = -1;
    for (int k = 0; k < na; k++)
        if (args[k].name && strcmp(args[k].name, "attn_mask") == 0) at = k;
    if (at < 0) return tc_rw_copy_node(rw, n);
    args[at].kind = TC_ARG_NONE;
    memset(&args[at].u, 0, sizeof args[at].u);
    tc_value *y;
    TC_TRY(tc_rw_add_node(rw, n->op_name, n->name, na, args, 1, &y, NULL));
    tc_rw_set(rw, n->outputs[0], y);
    rw->changed++;
    return TC_OK;
}

tc_status tc_pass_attention_masks(tc_graph *g, const tc_pass_options *o, tc_graph **out, int *changed,
                                  tc_error *err) {
    (void)o;
    tc_rewrite_hooks hooks = {.node = mask_node};
    return tc_rewrite(g, &hooks, out, changed, err);
}
