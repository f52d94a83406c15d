/* The pass manager: an ordered list of named passes, each replacing the graph with its rewrite,
 * plus the public tc_graph_optimize entry point. */
#define _POSIX_C_SOURCE 200809L
#include "passes/passes.h"

#include <string.h>
#include <time.h>

void tc_pass_options_init(tc_pass_options *o) {
    memset(o, 0, sizeof *o);
    o->dce = true;
    o->identity = true;
    o->fold_constants = true;
    o->fold_batchnorm = true;
    o->attention_masks = true;
    o->patch_conv = true;
    o->permute_linear = true;
    o->merge_linear = true;
    o->view_chains = true;
    o->precision = TC_F32;
}

typedef struct pass {
    const char *name;
    tc_pass_fn run;
} pass;

static int count_constants(const tc_graph *g) {
    int n = 0;
    for (int i = 0; i < g->values.n; i++) n += ((tc_value *)g->values.items[i])->kind == TC_VALUE_CONSTANT;
    return n;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static tc_status run_one(const pass *p, tc_graph **g, const tc_pass_options *o, tc_error *err) {
    double t0 = now_ms();
    tc_graph *out = NULL;
    int changed = 0;
    tc_status st = p->run(*g, o, &out, &changed, err);
    if (st != TC_OK) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        return tc_errorf(err, st, "pass '%s': %s", p->name, msg);
    }
    /* a pass bug must not reach a backend: the rewrite re-inferred every node, this checks the rest */
    st = tc_graph_verify(out);
    if (st != TC_OK) {
        tc_errorf(err, TC_ERR_INTERNAL, "pass '%s' produced an invalid graph: %s", p->name, out->err.msg);
        tc_graph_free(out);
        return TC_ERR_INTERNAL;
    }
    if (o->verbose)
        fprintf(o->log ? o->log : stderr, "tensorc: pass %-15s %5d -> %5d nodes, %5d -> %5d constants, %d rewrites%s (%.1f ms)\n",
                p->name, (*g)->nodes.n, out->nodes.n, count_constants(*g), count_constants(out), changed,
                changed ? "" : ", kept the input", now_ms() - t0);
    if (!changed) {
        tc_graph_free(out);
        return TC_OK;
    }
    tc_graph_free(*g); /* out holds its own reference */
    *g = out;
    return TC_OK;
}

tc_status tc_passes_run(tc_graph **g, const tc_pass_options *opt, tc_error *err) {
    if (!g || !*g) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "passes: graph is NULL");
    tc_pass_options o;
    tc_pass_options_init(&o);
    if (opt) o = *opt;
    if (o.precision != TC_F32 && o.precision != TC_F16 && o.precision != TC_BF16)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "passes: precision must be f32, f16 or bf16, got %s",
                         tc_dtype_name(o.precision));
    const pass list[] = {
        {"dce", o.dce ? tc_pass_dce : NULL},
        {"identity", o.identity ? tc_pass_identity : NULL},
        {"fold_constants", o.fold_constants ? tc_pass_fold_constants : NULL},
        {"fold_batchnorm", o.fold_batchnorm ? tc_pass_fold_batchnorm : NULL},
        {"attention_masks", o.attention_masks ? tc_pass_attention_masks : NULL},
        {"patch_conv", o.patch_conv ? tc_pass_patch_conv : NULL},
        {"permute_linear", o.permute_linear ? tc_pass_permute_linear : NULL},
        {"merge_linear", o.merge_linear ? tc_pass_merge_linear : NULL},
        {"view_chains", o.view_chains ? tc_pass_view_chains : NULL},
        {"precision", o.precision != TC_F32 ? tc_pass_precision : NULL},
        {"dce", o.dce ? tc_pass_dce : NULL},
    };
    tc_graph *cur = *g;
    tc_graph_retain(cur); /* so that *g stays valid for the caller when a pass fails */
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) {
        if (!list[i].run) continue;
        tc_status st = run_one(&list[i], &cur, &o, err);
        if (st != TC_OK) {
            tc_graph_free(cur);
            return st;
        }
    }
    tc_graph_free(*g);
    *g = cur;
    return TC_OK;
}

void tc_optimize_options_init(tc_optimize_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->eliminate_dead_code = true;
    o->fold_constants = true;
    o->fold_batchnorm = true;
}

tc_status tc_graph_optimize(tc_graph_t **graph, const tc_optimize_options *options, char *err_buf, size_t err_size) {
    tc_error err = {0};
    if (err_buf && err_size) err_buf[0] = '\0';
    tc_status st;
    if (!graph || !*graph) {
        st = tc_errorf(&err, TC_ERR_INVALID_ARGUMENT, "graph is NULL");
    } else {
        tc_optimize_options oo;
        tc_optimize_options_init(&oo);
        if (options) oo = *options;
        tc_pass_options po;
        tc_pass_options_init(&po);
        po.dce = oo.eliminate_dead_code;
        po.fold_constants = oo.fold_constants;
        po.fold_batchnorm = oo.fold_batchnorm;
        po.precision = oo.allow_fp16 ? TC_F16 : oo.allow_bf16 ? TC_BF16 : TC_F32;
        po.fold_max_bytes = oo.fold_max_bytes;
        po.verbose = oo.verbose;
        st = tc_graph_verify(*graph);
        if (st != TC_OK) tc_errorf(&err, st, "%s", (*graph)->err.msg);
        else st = tc_passes_run(graph, &po, &err);
    }
    if (st != TC_OK && err_buf && err_size) snprintf(err_buf, err_size, "%s", err.msg);
    return st;
}
