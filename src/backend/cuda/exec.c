/* The CUDA executor, part one: the kernel table, engines (device, weights uploaded once, options),
 * execution contexts (stream, events, library handles, node cache) and the accessors kernels call.
 * Part two, exec_run.c, runs a graph: binding, memory plan, CUDA graph capture and replay.
 * docs/cuda-backend.md explains the design. */
#include "backend/cuda/exec_internal.h"
#include "backend/cuda/records.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- kernel table ----------------------------------------------------------------------- */

static tc_cuda_kernel kernels[TC_OP_COUNT];
static pthread_once_t kernels_once = PTHREAD_ONCE_INIT;

static void register_all(void) {
    tc_cuda_register_elementwise(kernels);
    tc_cuda_register_activation(kernels);
    tc_cuda_register_matmul(kernels);
    tc_cuda_register_conv(kernels);
    tc_cuda_register_pool(kernels);
    tc_cuda_register_norm(kernels);
    tc_cuda_register_reduce(kernels);
    tc_cuda_register_shape(kernels);
    tc_cuda_register_index(kernels);
    tc_cuda_register_attention(kernels);
}

tc_cuda_kernel tc_cuda_kernel_for(int op) {
    pthread_once(&kernels_once, register_all);
    return op >= 0 && op < TC_OP_COUNT ? kernels[op] : NULL;
}

tc_status tc_cuda_check_graph(const tc_graph *g, tc_error *err) {
    char msg[900];
    size_t len = 0;
    int bad = 0;
    for (int i = 0; i < g->nodes.n; i++) {
        tc_node *n = g->nodes.items[i];
        if (n->op >= 0 && tc_cuda_kernel_for(n->op)) continue;
        if (bad++ < 8 && len < sizeof msg)
            len += (size_t)snprintf(msg + len, sizeof msg - len, "%s'%s' (%s)", bad > 1 ? ", " : "", n->name, n->op_name);
    }
    if (bad)
        return tc_errorf(err, TC_ERR_UNSUPPORTED, "%d node(s) cannot run on the cuda backend: %s%s", bad, msg,
                         bad > 8 ? ", ..." : "");
    return TC_OK;
}

/* ---- device selection ------------------------------------------------------------------- */


tc_status tc_cuda_dev_enter(int dev, tc_cuda_dev_guard *gd, tc_error *err) {
    gd->changed = false;
    gd->prev = 0;
    TC_CUDA_TRY(cudaGetDevice(&gd->prev), err);
    if (gd->prev != dev) {
        TC_CUDA_TRY(cudaSetDevice(dev), err);
        gd->changed = true;
    }
    return TC_OK;
}

void tc_cuda_dev_leave(const tc_cuda_dev_guard *gd) {
    if (gd->changed) (void)cudaSetDevice(gd->prev);
}

/* ---- engine ----------------------------------------------------------------------------- */


static size_t value_bytes_static(const tc_value *v) {
    int64_t n = tc_value_numel_static(v);
    return n > 0 ? (size_t)n * tc_dtype_size(v->dtype) : 0;
}

tc_status tc_cuda_engine_create(const tc_graph *g, const tc_build_options *opt, tc_cuda_engine **out, tc_error *err) {
    *out = NULL;
    if (!g) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "graph is NULL");
    TC_TRY(tc_cuda_check_graph(g, err));
    int count = 0;
    TC_TRY(tc_cuda_device_count(&count, err));
    int dev = opt ? opt->device : 0;
    if (dev < 0 || dev >= count)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "CUDA device %d does not exist (this machine has %d device%s)", dev,
                         count, count == 1 ? "" : "s");
    tc_cuda_engine *e = calloc(1, sizeof *e);
    if (!e) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    pthread_mutex_init(&e->choice_lock, NULL);
    pthread_mutex_init(&e->ew_lock, NULL);
    e->records = tc_cuda_env_flag("TENSORC_PLAN_RECORDS", true);
    e->g = g;
    if (opt) e->opt = *opt;
    else tc_build_options_init(&e->opt);
    e->device = dev;
    e->sync_each = tc_cuda_env_flag("TENSORC_CUDA_SYNC", false);
    e->profile = tc_cuda_env_flag("TENSORC_CUDA_PROFILE", false);
    e->use_graphs = tc_cuda_env_flag("TENSORC_CUDA_GRAPHS", true) && !e->sync_each && !e->profile;
    tc_cuda_engine_read_switches(e);
    tc_status st = tc_cuda_lower_steps(e, e->fuse, err);
    if (st != TC_OK) {
        free(e);
        return st;
    }
    tc_cuda_dev_guard gd;
    st = tc_cuda_device_info(dev, &e->props, err);
    if (st == TC_OK) st = tc_cuda_dev_enter(dev, &gd, err);
    if (st != TC_OK) {
        tc_cuda_free_steps(e);
        free(e);
        return st;
    }
    e->const_off = calloc((size_t)g->values.n + 1, sizeof *e->const_off);
    if (!e->const_off) st = tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    size_t total = 0;
    for (int i = 0; st == TC_OK && i < g->values.n; i++) {
        const tc_value *v = g->values.items[i];
        e->const_off[i] = SIZE_MAX;
        if (v->kind != TC_VALUE_CONSTANT || !e->uploaded[i]) continue; /* folded into a derived constant */
        size_t n = value_bytes_static(v);
        if (n && !v->data) {
            st = tc_errorf(err, TC_ERR_INVALID_GRAPH, "constant '%s' has no data", v->name);
            break;
        }
        e->const_off[i] = total;
        total += tc_cuda_round_up(n, TC_CUDA_ALIGN);
    }
    for (int i = 0; st == TC_OK && i < e->n_derived; i++) {
        e->derived[i].off = total;
        total += tc_cuda_round_up((size_t)e->derived[i].numel * tc_dtype_size(e->derived[i].dtype), TC_CUDA_ALIGN);
    }
    if (st == TC_OK) {
        cudaError_t ce = cudaMalloc((void **)&e->weights, total + TC_CUDA_ALIGN);
        if (ce != cudaSuccess) {
            size_t fr = 0, tot = 0;
            (void)cudaGetLastError();
            (void)cudaMemGetInfo(&fr, &tot);
            (void)cudaGetLastError();
            st = tc_errorf(err, TC_ERR_OUT_OF_MEMORY,
                           "cannot allocate %zu bytes of device memory for the weights on device %d (%s; %zu of %zu "
                           "bytes free)",
                           total + TC_CUDA_ALIGN, dev, cudaGetErrorString(ce), fr, tot);
            e->weights = NULL;
        }
    }
    for (int i = 0; st == TC_OK && i < g->values.n; i++) {
        const tc_value *v = g->values.items[i];
        size_t n = value_bytes_static(v);
        if (v->kind != TC_VALUE_CONSTANT || !n || e->const_off[i] == SIZE_MAX) continue;
        st = TC_CUDA_CHECK(cudaMemcpy(e->weights + e->const_off[i], v->data, n, cudaMemcpyHostToDevice), err);
    }
    for (int i = 0; st == TC_OK && i < e->n_derived; i++) {
        tc_cuda_derived *d = &e->derived[i];
        size_t n = (size_t)d->numel * tc_dtype_size(d->dtype);
        if (n) st = TC_CUDA_CHECK(cudaMemcpy(e->weights + d->off, d->host, n, cudaMemcpyHostToDevice), err);
        free(d->host);
        d->host = NULL;
    }
    if (st == TC_OK) {
        e->weight_bytes = total;
        e->empty = e->weights + total;
    }
    tc_cuda_dev_leave(&gd);
    if (st != TC_OK) {
        tc_cuda_engine_free(e);
        return st;
    }
    *out = e;
    return TC_OK;
}

void tc_cuda_engine_free(tc_cuda_engine *e) {
    if (!e) return;
    if (e->weights) {
        tc_cuda_dev_guard gd;
        bool ok = tc_cuda_dev_enter(e->device, &gd, NULL) == TC_OK;
        (void)cudaFree(e->weights);
        (void)cudaGetLastError();
        if (ok) tc_cuda_dev_leave(&gd);
    }
    free(e->const_off);
    if (e->ew_lib) {
        tc_cuda_dev_guard gd;
        bool ok = tc_cuda_dev_enter(e->device, &gd, NULL) == TC_OK;
        tc_cuda_ew_unload(e);
        (void)cudaGetLastError();
        if (ok) tc_cuda_dev_leave(&gd);
    }
    tc_cuda_free_steps(e);
    tc_cuda_choices_free(e);
    pthread_mutex_destroy(&e->choice_lock);
    pthread_mutex_destroy(&e->ew_lock);
    free(e);
}

int tc_cuda_engine_device(const tc_cuda_engine *e) { return e ? e->device : -1; }
bool tc_cuda_engine_depthwise(const tc_cuda_engine *e) { return e && e->depthwise_mode; }

/* ---- execution context ------------------------------------------------------------------ */

static void side_failf(tc_cuda_exec *x, tc_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void side_failf(tc_cuda_exec *x, tc_status s, const char *fmt, ...) {
    if (x->side_fail) return; /* the first cause is the useful one */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->side_msg, sizeof x->side_msg, fmt, ap);
    va_end(ap);
    x->side_fail = true;
    x->side_status = s;
}

/* Frees a device buffer that queued work may still use: the stream is drained first. Cached graphs
 * hold raw pointers, so every reallocation bumps the generation that marks them stale. */
tc_status tc_cuda_exec_regrow(tc_cuda_exec *x, void **p, size_t *cap, size_t need, const char *what, tc_error *err) {
    if (need <= *cap && *p) return TC_OK;
    if (x->mode != TC_CUDA_MODE_EAGER)
        return tc_errorf(err, TC_ERR_INTERNAL,
                         "%s needs %zu bytes but has %zu while a CUDA graph is being captured (sizes must be learnt "
                         "in an eager run with the same shapes first)", what, need, *cap);
    if (*p) {
        TC_CUDA_TRY(cudaStreamSynchronize(x->stream), err);
        TC_CUDA_TRY(cudaFree(*p), err);
        *p = NULL;
        *cap = 0;
    }
    size_t n = tc_cuda_round_up(need ? need : 1, TC_CUDA_ALIGN);
    cudaError_t ce = cudaMalloc(p, n);
    if (ce != cudaSuccess) {
        size_t fr = 0, tot = 0;
        (void)cudaGetLastError();
        (void)cudaMemGetInfo(&fr, &tot);
        (void)cudaGetLastError();
        *p = NULL;
        return tc_errorf(err, TC_ERR_OUT_OF_MEMORY,
                         "cannot allocate %zu bytes of device memory for %s (%s; %zu of %zu bytes free on device %d)", n,
                         what, cudaGetErrorString(ce), fr, tot, x->e->device);
    }
    *cap = n;
    x->gen++;
    x->stats.reallocations++;
    return TC_OK;
}

/* ---- accessors for kernels ---------------------------------------------------------------- */

tc_cuda_tensor *tc_cuda_in(const tc_cuda_call *c, int argi) {
    int slot = tc_node_tensor_slot(c->node, argi);
    return slot < 0 ? NULL : c->in[slot];
}

tc_cuda_tensor *tc_cuda_in_list(const tc_cuda_call *c, int argi, int64_t k) {
    return c->in[tc_node_list_slot(c->node, argi, k)];
}

int64_t tc_cuda_int(const tc_cuda_call *c, int argi) { return tc_node_int_eval(c->g, c->node, argi, c->symvals); }

int64_t tc_cuda_ints(const tc_cuda_call *c, int argi, int64_t *out, int64_t cap) {
    return tc_node_ints_eval(c->g, c->node, argi, c->symvals, out, cap);
}

tc_status tc_cuda_fail(const tc_cuda_call *c, tc_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    tc_status r = tc_node_failv(c->err, c->node, "cuda", s, fmt, ap);
    va_end(ap);
    return r;
}

void *tc_cuda_scratch(const tc_cuda_call *c, int slot, size_t bytes) {
    tc_cuda_exec *x = c->exec;
    TC_ASSERT(slot >= 0 && slot < TC_CUDA_SCRATCH_SLOTS);
    if (bytes <= x->scratch_cap[slot] && x->scratch[slot]) return x->scratch[slot];
    if (x->mode != TC_CUDA_MODE_EAGER) {
        side_failf(x, TC_ERR_INTERNAL,
                   "asked for %zu bytes of scratch slot %d while a CUDA graph was being captured, more than the %zu "
                   "it got in the warm-up run with these shapes (a kernel must ask for the same sizes for the same "
                   "shapes)", bytes, slot, x->scratch_cap[slot]);
        return NULL;
    }
    /* 64 KiB steps: a few growing requests do not each cost a reallocation */
    tc_error e2;
    char what[48];
    snprintf(what, sizeof what, "scratch slot %d", slot);
    size_t want = tc_cuda_round_up(bytes ? bytes : 1, (size_t)64 << 10);
    if (tc_cuda_exec_regrow(x, &x->scratch[slot], &x->scratch_cap[slot], want, what, &e2) != TC_OK) {
        side_failf(x, e2.status, "%s", e2.msg);
        return NULL;
    }
    return x->scratch[slot];
}

void *tc_cuda_cublaslt(const tc_cuda_call *c) {
    tc_cuda_exec *x = c->exec;
    if (x->lt) return x->lt;
    if (x->mode != TC_CUDA_MODE_EAGER) {
        side_failf(x, TC_ERR_INTERNAL, "the cuBLASLt handle was first asked for during CUDA graph capture (ask for it in "
                                       "the warm-up run, before capture)");
        return NULL;
    }
    cublasStatus_t s = cublasLtCreate(&x->lt);
    if (s != CUBLAS_STATUS_SUCCESS) {
        side_failf(x, TC_ERR_CUDA, "cublasLtCreate failed with status %d", (int)s);
        x->lt = NULL;
    }
    return x->lt;
}

void *tc_cuda_cudnn(const tc_cuda_call *c) {
    tc_cuda_exec *x = c->exec;
    if (x->dnn) return x->dnn;
    if (x->mode != TC_CUDA_MODE_EAGER) {
        side_failf(x, TC_ERR_INTERNAL, "the cuDNN handle was first asked for during CUDA graph capture (ask for it in "
                                       "the warm-up run, before capture)");
        return NULL;
    }
    cudnnStatus_t s = cudnnCreate(&x->dnn);
    if (s == CUDNN_STATUS_SUCCESS) s = cudnnSetStream(x->dnn, x->stream);
    if (s != CUDNN_STATUS_SUCCESS) {
        char last[256] = "";
        cudnnGetLastErrorString(last, sizeof last);
        side_failf(x, TC_ERR_CUDA, "creating the cuDNN handle failed: %s (%d)%s%s", cudnnGetErrorString(s), (int)s,
                   last[0] ? ": " : "", last);
        if (x->dnn) cudnnDestroy(x->dnn);
        x->dnn = NULL;
    }
    return x->dnn;
}

bool tc_cuda_allow_tf32(const tc_cuda_call *c) { return !c->exec->e->opt.disable_tf32; }

bool tc_cuda_depthwise_on(const tc_cuda_call *c) { return c->exec->e->depthwise_mode; }

const tc_cuda_device_props *tc_cuda_device_props_of(const tc_cuda_call *c) { return &c->exec->e->props; }

size_t tc_cuda_workspace_limit(const tc_cuda_call *c) {
    size_t w = c->exec->e->opt.workspace_bytes;
    return w ? w : TC_CUDA_DEFAULT_WORKSPACE;
}

bool tc_cuda_capturing(const tc_cuda_call *c) { return c->exec->mode != TC_CUDA_MODE_EAGER; }

unsigned int *tc_cuda_error_flag(const tc_cuda_call *c, const char *fmt, ...) {
    tc_cuda_exec *x = c->exec;
    int slot = c->node->id < x->g->nodes.n ? x->e->flag_slot[c->node->id] : -1;
    if (slot < 0 || !x->flags_dev) {
        side_failf(x, TC_ERR_INTERNAL,
                   "the kernel asked for a device error word but the executor reserved none for this op (add it to "
                   "can_fail_on_device in exec_steps.c)");
        return NULL;
    }
    if (x->cur_set && x->cur_set->flag_msgs) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->cur_set->flag_msgs + (size_t)slot * TC_CUDA_FLAG_MSG, TC_CUDA_FLAG_MSG, fmt, ap);
        va_end(ap);
    }
    return x->flags_dev + slot;
}

static void **cache_slot(tc_cuda_exec *x, int node, uint64_t key, void (*destroy)(void *)) {
    uint64_t h = (key ^ ((uint64_t)(uint32_t)node * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull;
    tc_cuda_node_cache_entry **b = &x->cache[(h >> 32) % TC_CUDA_NODE_CACHE_BUCKETS];
    for (tc_cuda_node_cache_entry *p = *b; p; p = p->next)
        if (p->node == node && p->key == key) {
            if (!p->destroy) p->destroy = destroy;
            return &p->value;
        }
    tc_cuda_node_cache_entry *p = calloc(1, sizeof *p);
    if (!p) {
        side_failf(x, TC_ERR_OUT_OF_MEMORY, "out of memory for the node cache");
        return NULL;
    }
    p->node = node;
    p->key = key;
    p->destroy = destroy;
    p->next = *b;
    *b = p;
    return &p->value;
}

void **tc_cuda_node_cache(const tc_cuda_call *c, uint64_t key, void (*destroy)(void *)) {
    return cache_slot(c->exec, c->node->id, key, destroy);
}

void **tc_cuda_shared_cache(const tc_cuda_call *c, uint64_t key, void (*destroy)(void *)) {
    return cache_slot(c->exec, -1, key, destroy);
}

/* ---- context lifetime --------------------------------------------------------------------- */

void tc_cuda_shape_set_free(tc_cuda_shape_set *s) {
    for (int k = 0; k < TC_CUDA_GRAPHS_PER_SHAPE_SET; k++) {
        if (s->var[k].exec) (void)cudaGraphExecDestroy(s->var[k].exec); /* in-flight launches finish first */
        free(s->var[k].ptrs);
    }
    free(s->in_dims);
    free(s->offs);
    free(s->flag_msgs);
    free(s->out_types);
    free(s->out_bytes);
    free(s->views);
    free(s->step_mode);
    free(s->write_to);
    memset(s, 0, sizeof *s);
}

void tc_cuda_exec_free(tc_cuda_exec *x) {
    if (!x) return;
    tc_cuda_dev_guard gd;
    bool dev_ok = tc_cuda_dev_enter(x->e->device, &gd, NULL) == TC_OK;
    if (x->stream) (void)cudaStreamSynchronize(x->stream);
    for (int i = 0; i < TC_CUDA_MAX_SHAPE_SETS; i++) tc_cuda_shape_set_free(&x->sets[i]);
    for (int i = 0; i < TC_CUDA_NODE_CACHE_BUCKETS; i++)
        for (tc_cuda_node_cache_entry *p = x->cache[i], *next; p; p = next) {
            next = p->next;
            if (p->destroy && p->value) p->destroy(p->value);
            free(p);
        }
    if (x->dnn) cudnnDestroy(x->dnn);
    if (x->lt) cublasLtDestroy(x->lt);
    if (x->arena) (void)cudaFree(x->arena);
    if (x->flags_dev) (void)cudaFree(x->flags_dev);
    if (x->flags_host) (void)cudaFreeHost(x->flags_host);
    for (int i = 0; i < TC_CUDA_SCRATCH_SLOTS; i++)
        if (x->scratch[i]) (void)cudaFree(x->scratch[i]);
    for (int i = 0; x->out_buf && i < x->n_out; i++)
        if (x->out_buf[i]) (void)cudaFree(x->out_buf[i]);
    if (x->prof_runs > 0) tc_cuda_exec_profile_report(x, stderr);
    for (int i = 0; x->prof_ev && i <= x->e->n_steps; i++)
        if (x->prof_ev[i]) (void)cudaEventDestroy(x->prof_ev[i]);
    free(x->prof_ev);
    free(x->prof_ms);
    if (x->ev_in) (void)cudaEventDestroy(x->ev_in);
    if (x->ev_out) (void)cudaEventDestroy(x->ev_out);
    if (x->stream) (void)cudaStreamDestroy(x->stream);
    (void)cudaGetLastError();
    if (dev_ok) tc_cuda_dev_leave(&gd);
    free(x->vals);
    free(x->in_ptrs);
    free(x->out_ptrs);
    free(x->symvals);
    free(x->bound);
    free(x->last_use);
    free(x->out_first);
    free(x->key_dims);
    free(x->ptrs);
    free(x->out_buf);
    free(x->out_cap);
    free(x->out_view);
    free(x->step_view);
    free(x->strided_ok);
    free(x->write_to);
    free(x->written_by);
    free(x->derived_t);
    free(x);
}

tc_status tc_cuda_exec_create(tc_cuda_engine *e, tc_cuda_exec **out, tc_error *err) {
    *out = NULL;
    if (!e) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "engine is NULL");
    const tc_graph *g = e->g;
    tc_cuda_exec *x = calloc(1, sizeof *x);
    if (!x) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    x->e = e;
    x->g = g;
    int nv = g->values.n;
    x->n_in = g->inputs.n;
    x->n_out = g->outputs.n;
    for (int i = 0; i < g->nodes.n; i++) {
        tc_node *n = g->nodes.items[i];
        if (n->n_inputs > x->max_in) x->max_in = n->n_inputs;
        if (n->n_outputs > x->max_out) x->max_out = n->n_outputs;
    }
    for (int i = 0; i < x->n_in; i++) x->n_dims += ((tc_value *)g->inputs.items[i])->rank;
    x->vals = calloc((size_t)nv + 1, sizeof *x->vals);
    x->in_ptrs = calloc((size_t)x->max_in + 1, sizeof *x->in_ptrs);
    x->out_ptrs = calloc((size_t)x->max_out + 1, sizeof *x->out_ptrs);
    x->symvals = calloc((size_t)g->syms.atoms.n + 1, sizeof *x->symvals);
    x->bound = calloc((size_t)g->syms.atoms.n + 1, sizeof *x->bound);
    x->last_use = calloc((size_t)nv + 1, sizeof *x->last_use);
    x->out_first = calloc((size_t)nv + 1, sizeof *x->out_first);
    x->key_dims = calloc((size_t)x->n_dims + 1, sizeof *x->key_dims);
    x->ptrs = calloc((size_t)(x->n_in + x->n_out) + 1, sizeof *x->ptrs);
    x->out_buf = calloc((size_t)x->n_out + 1, sizeof *x->out_buf);
    x->out_cap = calloc((size_t)x->n_out + 1, sizeof *x->out_cap);
    x->out_view = calloc((size_t)x->n_out + 1, sizeof *x->out_view);
    x->derived_t = calloc((size_t)e->n_derived + 1, sizeof *x->derived_t);
    if (!x->vals || !x->in_ptrs || !x->out_ptrs || !x->symvals || !x->bound || !x->last_use || !x->out_first ||
        !x->key_dims || !x->ptrs || !x->out_buf || !x->out_cap || !x->out_view || !x->derived_t) {
        tc_cuda_exec_free(x);
        return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int i = 0; i < nv; i++) x->last_use[i] = -1, x->out_first[i] = -1;
    /* liveness in steps: a fused step reads every input of its nodes that no node of it makes */
    for (int si = 0; si < e->n_steps; si++) {
        const tc_cuda_step *s = &e->steps[si];
        for (int j = 0; j < s->count; j++) {
            const tc_node *n = g->nodes.items[e->step_nodes[s->first + j]];
            for (int k = 0; k < n->n_inputs; k++)
                if (n->inputs[k]) x->last_use[n->inputs[k]->id] = si;
        }
    }
    for (int i = 0; i < e->n_derived; i++) {
        const tc_cuda_derived *d = &e->derived[i];
        tc_cuda_tensor *t = &x->derived_t[i];
        t->dtype = d->dtype;
        t->rank = d->rank;
        memcpy(t->dims, d->dims, sizeof t->dims);
        t->numel = d->numel;
        t->data = d->numel ? (void *)(e->weights + d->off) : e->empty;
        t->nhwc = d->nhwc;
    }
    for (int i = x->n_out - 1; i >= 0; i--) {
        const tc_value *v = g->outputs.items[i];
        if (v->kind == TC_VALUE_NODE) x->out_first[v->id] = i;
    }
    if (tc_cuda_views_prepare(x, err) != TC_OK) {
        tc_cuda_exec_free(x);
        return TC_ERR_OUT_OF_MEMORY;
    }
    x->stats.graphs_enabled = e->use_graphs;
    x->stats.weight_bytes = e->weight_bytes;
    x->stats.steps = e->n_steps;
    x->stats.fused_nodes = e->n_fused;
    x->stats.error_flags = e->n_flags;
    tc_cuda_dev_guard gd;
    tc_status st = tc_cuda_dev_enter(e->device, &gd, err);
    if (st != TC_OK) {
        tc_cuda_exec_free(x);
        return st;
    }
    st = TC_CUDA_CHECK(cudaStreamCreateWithFlags(&x->stream, cudaStreamNonBlocking), err);
    if (st == TC_OK) st = TC_CUDA_CHECK(cudaEventCreateWithFlags(&x->ev_in, cudaEventDisableTiming), err);
    if (st == TC_OK) st = TC_CUDA_CHECK(cudaEventCreateWithFlags(&x->ev_out, cudaEventDisableTiming), err);
    if (st == TC_OK && e->profile) {
        x->prof_ev = calloc((size_t)e->n_steps + 1, sizeof *x->prof_ev);
        x->prof_ms = calloc((size_t)e->n_steps + 1, sizeof *x->prof_ms);
        if (!x->prof_ev || !x->prof_ms) st = tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
        for (int i = 0; st == TC_OK && i <= e->n_steps; i++)
            st = TC_CUDA_CHECK(cudaEventCreate(&x->prof_ev[i]), err);
    }
    if (st == TC_OK && e->n_flags) {
        size_t fb = (size_t)e->n_flags * sizeof(unsigned int);
        st = TC_CUDA_CHECK(cudaMalloc((void **)&x->flags_dev, fb), err);
        if (st == TC_OK) st = TC_CUDA_CHECK(cudaHostAlloc((void **)&x->flags_host, fb, cudaHostAllocDefault), err);
        if (st == TC_OK) memset(x->flags_host, 0, fb);
    }
    tc_cuda_dev_leave(&gd);
    if (st != TC_OK) {
        tc_cuda_exec_free(x);
        return st;
    }
    *out = x;
    return TC_OK;
}
