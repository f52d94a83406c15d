/* Engines and execution contexts. An engine is a verified graph bound to a backend; a context
 * holds the memory of one execution, so several contexts of one engine can run at once. */
#include "backend/cpu/cpu.h"
#include "core/parallel.h"
#include "passes/passes.h"
#ifdef TC_HAVE_CUDA
#include "backend/cuda/cuda.h"
#include "backend/cuda/records.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tc_engine tc_engine;
typedef struct tc_context tc_context;

struct tc_engine {
    tc_graph *g;
    tc_build_options opt;
    tc_error err;
#ifdef TC_HAVE_CUDA
    tc_cuda_engine *cuda;
#endif
};

struct tc_context {
    tc_engine *e;
    tc_error err;
    tc_tensor *inputs;
    bool *input_set;
    tc_tensor *outputs; /* caller-bound output buffers (data NULL when not bound) */
    tc_cpu_exec *exec;
#ifdef TC_HAVE_CUDA
    tc_cuda_exec *cuda;
#endif
    bool ran;
};

void tc_build_options_init(tc_build_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->backend = TC_BACKEND_CPU;
}

const char *tc_version_string(void) {
#ifdef TC_HAVE_CUDA
    return "0.1.0 (backends: cpu, cuda)";
#else
    return "0.1.0 (backends: cpu)";
#endif
}

bool tc_has_cuda(void) {
#ifdef TC_HAVE_CUDA
    return true;
#else
    return false;
#endif
}

tc_status tc_engine_build(const tc_graph_t *graph, const tc_build_options *options, tc_engine_t **out,
                          char *err_buf, size_t err_size) {
    tc_error err = {0};
    tc_status st = TC_OK;
    if (err_buf && err_size) err_buf[0] = '\0';
    if (!out) return TC_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!graph) {
        st = tc_errorf(&err, TC_ERR_INVALID_ARGUMENT, "graph is NULL");
        goto done;
    }
    tc_build_options opt;
    tc_build_options_init(&opt);
    if (options) opt = *options;
    if ((unsigned)opt.backend >= TC_BACKEND_COUNT) {
        st = tc_errorf(&err, TC_ERR_INVALID_ARGUMENT, "unknown backend %d", (int)opt.backend);
        goto done;
    }
#ifndef TC_HAVE_CUDA
    if (opt.backend == TC_BACKEND_CUDA) {
        st = tc_errorf(&err, TC_ERR_UNSUPPORTED,
                       "this build of tensorc has no CUDA backend: rebuild with -DTENSORC_CUDA=ON on a machine with "
                       "the CUDA toolkit and cuDNN");
        goto done;
    }
#endif
    st = tc_graph_verify((tc_graph_t *)graph);
    if (st != TC_OK) {
        tc_errorf(&err, st, "%s", graph->err.msg);
        goto done;
    }
    /* The engine runs an optimized copy of the graph (dead code, constant and batch-norm folding,
     * mixed precision when allowed); the caller's graph is left as it was. TENSORC_PASSES=0 skips
     * the passes, for debugging. */
    tc_graph *g = (tc_graph *)graph;
    tc_graph_retain(g);
    const char *passes_env = getenv("TENSORC_PASSES");
    if (!passes_env || strcmp(passes_env, "0") != 0) {
        tc_pass_options po;
        tc_pass_options_init(&po);
        po.precision = opt.allow_fp16 ? TC_F16 : opt.allow_bf16 ? TC_BF16 : TC_F32;
        po.verbose = getenv("TENSORC_LOG_PASSES") != NULL;
        st = tc_passes_run(&g, &po, &err);
        if (st != TC_OK) {
            tc_graph_free(g);
            goto done;
        }
    }
    if (opt.backend == TC_BACKEND_CPU) st = tc_cpu_check_graph(g, &err);
#ifdef TC_HAVE_CUDA
    else st = tc_cuda_check_graph(g, &err);
#endif
    if (st != TC_OK) {
        tc_graph_free(g);
        goto done;
    }
    tc_engine *e = calloc(1, sizeof *e);
    if (!e) {
        tc_graph_free(g);
        st = tc_errorf(&err, TC_ERR_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    e->g = g;
    e->opt = opt;
#ifdef TC_HAVE_CUDA
    if (opt.backend == TC_BACKEND_CUDA) {
        st = tc_cuda_engine_create(g, &opt, &e->cuda, &err);
        if (st != TC_OK) {
            tc_graph_free(g);
            free(e);
            goto done;
        }
    }
#endif
    if (opt.num_threads > 0) tc_parallel_set_threads(opt.num_threads);
    *out = e;
done:
    if (st != TC_OK && err_buf && err_size) snprintf(err_buf, err_size, "%s", err.msg);
    return st;
}

void tc_engine_free(tc_engine_t *e) {
    if (!e) return;
#ifdef TC_HAVE_CUDA
    tc_cuda_engine_free(e->cuda);
#endif
    tc_graph_free(e->g);
    free(e);
}

const char *tc_engine_last_error(const tc_engine_t *e) { return e ? e->err.msg : "no engine"; }
int tc_engine_num_inputs(const tc_engine_t *e) { return e ? e->g->inputs.n : 0; }
int tc_engine_num_outputs(const tc_engine_t *e) { return e ? e->g->outputs.n : 0; }
const char *tc_engine_input_name(const tc_engine_t *e, int i) {
    return e && i >= 0 && i < e->g->inputs.n ? ((tc_value *)e->g->inputs.items[i])->name : NULL;
}
const char *tc_engine_output_name(const tc_engine_t *e, int i) {
    return e && i >= 0 && i < e->g->outputs.n ? e->g->output_names.items[i] : NULL;
}
tc_backend_kind tc_engine_backend(const tc_engine_t *e) { return e ? e->opt.backend : TC_BACKEND_CPU; }

tc_dtype tc_engine_input_dtype(const tc_engine_t *e, int i) {
    return e && i >= 0 && i < e->g->inputs.n ? ((tc_value *)e->g->inputs.items[i])->dtype : TC_DTYPE_COUNT;
}

tc_status tc_context_create(tc_engine_t *e, tc_context_t **out) {
    if (!out) return TC_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!e) return TC_ERR_INVALID_ARGUMENT;
    tc_context *c = calloc(1, sizeof *c);
    if (!c) return tc_errorf(&e->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    c->e = e;
    c->inputs = calloc((size_t)e->g->inputs.n + 1, sizeof *c->inputs);
    c->input_set = calloc((size_t)e->g->inputs.n + 1, sizeof *c->input_set);
    c->outputs = calloc((size_t)e->g->outputs.n + 1, sizeof *c->outputs);
    tc_status st = TC_OK;
    if (!c->inputs || !c->input_set || !c->outputs) st = tc_errorf(&e->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    else if (e->opt.backend == TC_BACKEND_CPU) st = tc_cpu_exec_create(e->g, &c->exec, &e->err);
#ifdef TC_HAVE_CUDA
    else st = tc_cuda_exec_create(e->cuda, &c->cuda, &e->err);
#endif
    if (st != TC_OK) {
        tc_context_free(c);
        return st;
    }
    *out = c;
    return TC_OK;
}

void tc_context_free(tc_context_t *c) {
    if (!c) return;
    tc_cpu_exec_free(c->exec);
#ifdef TC_HAVE_CUDA
    tc_cuda_exec_free(c->cuda);
#endif
    free(c->outputs);
    free(c->inputs);
    free(c->input_set);
    free(c);
}

const char *tc_context_last_error(const tc_context_t *c) { return c ? c->err.msg : "no context"; }

tc_status tc_context_set_input(tc_context_t *c, int i, const tc_tensor *t) {
    if (!c) return TC_ERR_INVALID_ARGUMENT;
    tc_error_clear(&c->err);
    if (i < 0 || i >= c->e->g->inputs.n)
        return tc_errorf(&c->err, TC_ERR_NOT_FOUND, "input index %d is out of range (the engine has %d inputs)", i,
                         c->e->g->inputs.n);
    if (!t) return tc_errorf(&c->err, TC_ERR_INVALID_ARGUMENT, "tensor for input %d is NULL", i);
    if (t->rank < 0 || t->rank > TC_MAX_RANK)
        return tc_errorf(&c->err, TC_ERR_SHAPE, "input '%s': rank %d is invalid", tc_engine_input_name(c->e, i), t->rank);
    c->inputs[i] = *t;
    c->input_set[i] = true;
    return TC_OK;
}

tc_status tc_context_set_output(tc_context_t *c, int i, const tc_tensor *t) {
    if (!c) return TC_ERR_INVALID_ARGUMENT;
    tc_error_clear(&c->err);
    if (i < 0 || i >= c->e->g->outputs.n)
        return tc_errorf(&c->err, TC_ERR_NOT_FOUND, "output index %d is out of range (the engine has %d outputs)", i,
                         c->e->g->outputs.n);
    if (t) c->outputs[i] = *t;
    else memset(&c->outputs[i], 0, sizeof c->outputs[i]);
    return TC_OK;
}

static tc_status run(tc_context_t *c, void *stream, bool sync) {
    if (!c) return TC_ERR_INVALID_ARGUMENT;
    tc_error_clear(&c->err);
    c->ran = false;
    for (int i = 0; i < c->e->g->inputs.n; i++)
        if (!c->input_set[i])
            return tc_errorf(&c->err, TC_ERR_INVALID_ARGUMENT, "input '%s' is not set", tc_engine_input_name(c->e, i));
    if (c->e->opt.backend == TC_BACKEND_CPU) {
        /* bound outputs are computed in place, with no copy */
        TC_TRY(tc_cpu_exec_run(c->exec, c->inputs, c->outputs, &c->err));
    }
#ifdef TC_HAVE_CUDA
    else {
        TC_TRY(tc_cuda_exec_run(c->cuda, c->inputs, c->outputs, stream, &c->err));
        if (sync) TC_TRY(tc_cuda_exec_sync(c->cuda, stream, &c->err));
    }
#else
    (void)stream;
    (void)sync;
#endif
    c->ran = true;
    return TC_OK;
}

tc_status tc_context_execute(tc_context_t *c) { return run(c, NULL, true); }

tc_status tc_context_enqueue(tc_context_t *c, void *stream) { return run(c, stream, false); }

tc_status tc_context_get_output(tc_context_t *c, int i, tc_tensor *out) {
    if (!c || !out) return TC_ERR_INVALID_ARGUMENT;
    if (i < 0 || i >= c->e->g->outputs.n)
        return tc_errorf(&c->err, TC_ERR_NOT_FOUND, "output index %d is out of range (the engine has %d outputs)", i,
                         c->e->g->outputs.n);
    if (!c->ran) return tc_errorf(&c->err, TC_ERR_INVALID_ARGUMENT, "no successful execution yet");
#ifdef TC_HAVE_CUDA
    if (c->cuda) {
        tc_cuda_exec_output(c->cuda, i, out);
        return TC_OK;
    }
#endif
    tc_cpu_exec_output(c->exec, i, out);
    return TC_OK;
}

/* Internal accessors for engine serialization (declared in engine/serialize.h). */
const tc_graph *tc_engine_graph(const tc_engine_t *e) { return e ? e->g : NULL; }
const tc_build_options *tc_engine_options(const tc_engine_t *e) { return e ? &e->opt : NULL; }
tc_status tc_engine_prepare(tc_engine_t *e, char *err_buf, size_t err_size) {
    if (err_buf && err_size) err_buf[0] = '\0';
    if (!e) return TC_ERR_INVALID_ARGUMENT;
#ifdef TC_HAVE_CUDA
    if (e->cuda) {
        tc_error err = {0};
        tc_status st = tc_cuda_engine_prepare(e->cuda, &err);
        if (st != TC_OK && err_buf && err_size) snprintf(err_buf, err_size, "%s", err.msg);
        return st;
    }
#endif
    return TC_OK;
}

struct tc_cuda_engine *tc_engine_cuda(const tc_engine_t *e) {
#ifdef TC_HAVE_CUDA
    return e ? e->cuda : NULL;
#else
    (void)e;
    return NULL;
#endif
}
