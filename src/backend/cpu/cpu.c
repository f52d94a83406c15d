/* The CPU executor: binds symbols from input shapes, evaluates every value's shape, plans the
 * activation memory by liveness (first fit in one arena) and runs the kernels in order. */
#include "backend/cpu/cpu.h"
#include "core/dtype.h"
#include "core/liveness.h"
#include "engine/bind.h"

#ifdef TC_HAVE_CUDA
#include "backend/cuda/cuda.h"
#endif

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static tc_cpu_kernel kernels[TC_OP_COUNT];
static pthread_once_t kernels_once = PTHREAD_ONCE_INIT;

static void register_all(void) {
    tc_cpu_register_elementwise(kernels);
    tc_cpu_register_activation(kernels);
    tc_cpu_register_matmul(kernels);
    tc_cpu_register_conv(kernels);
    tc_cpu_register_pool(kernels);
    tc_cpu_register_norm(kernels);
    tc_cpu_register_reduce(kernels);
    tc_cpu_register_shape(kernels);
    tc_cpu_register_index(kernels);
    tc_cpu_register_attention(kernels);
}

tc_cpu_kernel tc_cpu_kernel_for(int op) {
    pthread_once(&kernels_once, register_all);
    return op >= 0 && op < TC_OP_COUNT ? kernels[op] : NULL;
}

bool tc_op_supported(int op, tc_backend_kind backend) {
    if (op < 0 || op >= TC_OP_COUNT) return false;
    if (backend == TC_BACKEND_CPU) return tc_cpu_kernel_for(op) != NULL;
#ifdef TC_HAVE_CUDA
    if (backend == TC_BACKEND_CUDA) return tc_cuda_kernel_for(op) != NULL;
#endif
    return false;
}

struct tc_cpu_exec {
    const tc_graph *g;
    tc_cpu_tensor *vals;    /* per value id */
    tc_cpu_tensor **in_ptrs; /* scratch for building calls */
    tc_cpu_tensor **out_ptrs;
    int max_in, max_out;
    int64_t *symvals;
    int *last_use;          /* per value id: index of the last node reading it */
    unsigned char *arena;
    size_t arena_size;
    void **outputs;         /* per graph output: owned buffer */
    size_t *output_cap;
    void *scratch[TC_CPU_SCRATCH_SLOTS];
    size_t scratch_cap[TC_CPU_SCRATCH_SLOTS];
    tc_tensor *out_view;
};

tc_cpu_tensor *tc_cpu_in(const tc_cpu_call *c, int argi) {
    int slot = tc_node_tensor_slot(c->node, argi);
    return slot < 0 ? NULL : c->in[slot];
}

tc_cpu_tensor *tc_cpu_in_list(const tc_cpu_call *c, int argi, int64_t k) {
    return c->in[tc_node_list_slot(c->node, argi, k)];
}

int64_t tc_cpu_int(const tc_cpu_call *c, int argi) { return tc_node_int_eval(c->g, c->node, argi, c->symvals); }

int64_t tc_cpu_ints(const tc_cpu_call *c, int argi, int64_t *out, int64_t cap) {
    return tc_node_ints_eval(c->g, c->node, argi, c->symvals, out, cap);
}

tc_status tc_cpu_fail(const tc_cpu_call *c, tc_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    tc_status r = tc_node_failv(c->err, c->node, "cpu", s, fmt, ap);
    va_end(ap);
    return r;
}

void *tc_cpu_scratch(const tc_cpu_call *c, int slot, size_t bytes) {
    tc_cpu_exec *x = c->exec;
    TC_ASSERT(slot >= 0 && slot < TC_CPU_SCRATCH_SLOTS);
    if (bytes > x->scratch_cap[slot]) {
        free(x->scratch[slot]);
        size_t cap = (bytes + 63) & ~(size_t)63;
        x->scratch[slot] = aligned_alloc(64, cap);
        x->scratch_cap[slot] = x->scratch[slot] ? cap : 0;
    }
    return x->scratch[slot];
}

static float empty_f32[16];

const float *tc_cpu_as_f32(const tc_cpu_call *c, const tc_cpu_tensor *t, int slot) {
    if (t->numel == 0) return empty_f32; /* never NULL, so NULL always means out of memory */
    if (t->dtype == TC_F32) return t->data;
    float *p = tc_cpu_scratch(c, slot, (size_t)(t->numel ? t->numel : 1) * sizeof(float));
    if (p) tc_to_f32(t->data, t->dtype, p, t->numel);
    return p;
}

float *tc_cpu_out_f32(const tc_cpu_call *c, tc_cpu_tensor *t, int slot) {
    if (t->numel == 0) return empty_f32;
    if (t->dtype == TC_F32) return t->data;
    return tc_cpu_scratch(c, slot, (size_t)(t->numel ? t->numel : 1) * sizeof(float));
}

void tc_cpu_store_f32(tc_cpu_tensor *t, const float *src) {
    if (t->numel == 0 || (t->dtype == TC_F32 && src == t->data)) return;
    tc_from_f32(src, t->data, t->dtype, t->numel);
}

void tc_cpu_strides(const tc_cpu_tensor *t, int64_t *strides) {
    int64_t s = 1;
    for (int i = t->rank - 1; i >= 0; i--) {
        strides[i] = s;
        s *= t->dims[i];
    }
}

tc_status tc_cpu_check_graph(const tc_graph *g, tc_error *err) {
    char msg[900];
    size_t len = 0;
    int bad = 0;
    for (int i = 0; i < g->nodes.n; i++) {
        tc_node *n = g->nodes.items[i];
        if (n->op >= 0 && tc_cpu_kernel_for(n->op)) continue;
        if (bad++ < 8 && len < sizeof msg)
            len += (size_t)snprintf(msg + len, sizeof msg - len, "%s'%s' (%s)", bad > 1 ? ", " : "", n->name, n->op_name);
    }
    if (bad)
        return tc_errorf(err, TC_ERR_UNSUPPORTED, "%d node(s) cannot run on the cpu backend: %s%s", bad, msg,
                         bad > 8 ? ", ..." : "");
    return TC_OK;
}

void tc_cpu_exec_free(tc_cpu_exec *x) {
    if (!x) return;
    for (int i = 0; x->outputs && i < x->g->outputs.n; i++) free(x->outputs[i]);
    for (int i = 0; i < TC_CPU_SCRATCH_SLOTS; i++) free(x->scratch[i]);
    free(x->outputs);
    free(x->output_cap);
    free(x->vals);
    free(x->in_ptrs);
    free(x->out_ptrs);
    free(x->symvals);
    free(x->last_use);
    free(x->arena);
    free(x->out_view);
    free(x);
}

tc_status tc_cpu_exec_create(const tc_graph *g, tc_cpu_exec **out, tc_error *err) {
    *out = NULL;
    TC_TRY(tc_cpu_check_graph(g, err));
    tc_cpu_exec *x = calloc(1, sizeof *x);
    if (!x) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    x->g = g;
    int nv = g->values.n;
    for (int i = 0; i < g->nodes.n; i++) {
        tc_node *n = g->nodes.items[i];
        if (n->n_inputs > x->max_in) x->max_in = n->n_inputs;
        if (n->n_outputs > x->max_out) x->max_out = n->n_outputs;
    }
    x->vals = calloc((size_t)nv + 1, sizeof *x->vals);
    x->in_ptrs = calloc((size_t)x->max_in + 1, sizeof *x->in_ptrs);
    x->out_ptrs = calloc((size_t)x->max_out + 1, sizeof *x->out_ptrs);
    x->symvals = calloc((size_t)g->syms.atoms.n + 1, sizeof *x->symvals);
    x->last_use = calloc((size_t)nv + 1, sizeof *x->last_use);
    x->outputs = calloc((size_t)g->outputs.n + 1, sizeof *x->outputs);
    x->output_cap = calloc((size_t)g->outputs.n + 1, sizeof *x->output_cap);
    x->out_view = calloc((size_t)g->outputs.n + 1, sizeof *x->out_view);
    if (!x->vals || !x->in_ptrs || !x->out_ptrs || !x->symvals || !x->last_use || !x->outputs ||
        !x->output_cap || !x->out_view) {
        tc_cpu_exec_free(x);
        return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int i = 0; i < nv; i++) x->last_use[i] = -1;
    for (int i = 0; i < g->nodes.n; i++) {
        tc_node *n = g->nodes.items[i];
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k]) x->last_use[n->inputs[k]->id] = i;
    }
    *out = x;
    return TC_OK;
}

/* Binds symbols from the inputs' dims and checks every input against its declared type. */
static tc_status bind_inputs(tc_cpu_exec *x, const tc_tensor *inputs, tc_error *err) {
    bool *bound = calloc((size_t)x->g->syms.atoms.n + 1, 1);
    if (!bound) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    tc_status st = tc_bind_inputs(x->g, inputs, x->symvals, bound, err);
    free(bound);
    return st;
}

static size_t nbytes_of(const tc_cpu_tensor *t) { return (size_t)t->numel * tc_dtype_size(t->dtype); }


/* The caller's buffer for output i, after checking that it fits the result; NULL when unbound. */
static tc_status bound_output(const tc_cpu_exec *x, const tc_tensor *outputs, int i, void **data, tc_error *err) {
    *data = NULL;
    if (!outputs || !outputs[i].data) return TC_OK;
    const tc_value *v = x->g->outputs.items[i];
    const tc_cpu_tensor *t = &x->vals[v->id];
    const tc_tensor *o = &outputs[i];
    bool same = o->dtype == t->dtype && o->rank == t->rank;
    for (int d = 0; same && d < t->rank; d++) same = o->dims[d] == t->dims[d];
    if (!same)
        return tc_errorf(err, TC_ERR_SHAPE, "output '%s': the bound buffer's type does not match the result (%s, rank %d)",
                         (const char *)x->g->output_names.items[i], tc_dtype_name(t->dtype), t->rank);
    *data = o->data;
    return TC_OK;
}

tc_status tc_cpu_exec_run(tc_cpu_exec *x, const tc_tensor *inputs, const tc_tensor *outputs, tc_error *err) {
    const tc_graph *g = x->g;
    if (!inputs && g->inputs.n) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "inputs are NULL");
    TC_TRY(bind_inputs(x, inputs, err));
    int nv = g->values.n;
    /* concrete shapes */
    for (int i = 0; i < nv; i++) {
        const tc_value *v = g->values.items[i];
        tc_cpu_tensor *t = &x->vals[i];
        t->dtype = v->dtype;
        t->rank = v->rank;
        TC_TRY(tc_value_dims_now(g, v, inputs, x->symvals, t->dims, &t->numel, err));
        t->data = NULL;
        if (v->kind == TC_VALUE_INPUT) t->data = inputs[v->input_index].data;
        else if (v->kind == TC_VALUE_CONSTANT) t->data = (void *)v->data;
    }
    /* liveness plan: graph outputs get their own buffers, everything else shares the arena */
    bool *is_out = calloc((size_t)nv + 1, 1);
    tc_live_block *blocks = calloc((size_t)nv + 1, sizeof *blocks);
    size_t *offs = calloc((size_t)nv + 1, sizeof *offs);
    if (!is_out || !blocks || !offs) {
        free(is_out), free(blocks), free(offs);
        return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int i = 0; i < g->outputs.n; i++) is_out[((tc_value *)g->outputs.items[i])->id] = 1;
    int nb = 0;
    size_t total = 0;
    for (int ni = 0; ni < g->nodes.n; ni++) {
        tc_node *n = g->nodes.items[ni];
        for (int k = 0; k < n->n_outputs; k++) {
            tc_value *v = n->outputs[k];
            if (is_out[v->id]) continue;
            size_t size = (nbytes_of(&x->vals[v->id]) + 63) & ~(size_t)63;
            int end = x->last_use[v->id] < ni ? ni : x->last_use[v->id];
            offs[v->id] = tc_live_place(blocks, &nb, size, ni, end, &total);
        }
    }
    tc_status st = TC_OK;
    if (total > x->arena_size) {
        free(x->arena);
        x->arena = aligned_alloc(64, total);
        x->arena_size = x->arena ? total : 0;
        if (!x->arena) st = tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory: activations need %zu bytes", total);
    }
    void **bound = calloc((size_t)g->outputs.n + 1, sizeof *bound);
    if (!bound) st = tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; st == TC_OK && i < g->outputs.n; i++) st = bound_output(x, outputs, i, &bound[i], err);
    for (int i = 0; st == TC_OK && i < g->outputs.n; i++) {
        const tc_value *v = g->outputs.items[i];
        size_t need = nbytes_of(&x->vals[v->id]);
        if (v->kind != TC_VALUE_NODE || bound[i]) continue;
        if (need > x->output_cap[i] || !x->outputs[i]) {
            free(x->outputs[i]);
            x->outputs[i] = aligned_alloc(64, (need + 63) & ~(size_t)63);
            x->output_cap[i] = x->outputs[i] ? need : 0;
            if (!x->outputs[i]) st = tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory for output '%s'", v->name);
        }
    }
    /* a node output that is a graph output is computed straight into its (bound or owned) buffer */
    for (int i = 0; st == TC_OK && i < g->outputs.n; i++) {
        const tc_value *v = g->outputs.items[i];
        if (v->kind == TC_VALUE_NODE && !x->vals[v->id].data) x->vals[v->id].data = bound[i] ? bound[i] : x->outputs[i];
    }
    for (int ni = 0; st == TC_OK && ni < g->nodes.n; ni++) {
        tc_node *n = g->nodes.items[ni];
        for (int k = 0; k < n->n_outputs; k++) {
            tc_value *v = n->outputs[k];
            if (!is_out[v->id]) x->vals[v->id].data = x->arena + offs[v->id];
        }
    }
    free(is_out), free(blocks), free(offs);
    if (st != TC_OK) {
        free(bound);
        return st;
    }
    for (int ni = 0; st == TC_OK && ni < g->nodes.n; ni++) {
        tc_node *n = g->nodes.items[ni];
        for (int k = 0; k < n->n_inputs; k++) x->in_ptrs[k] = n->inputs[k] ? &x->vals[n->inputs[k]->id] : NULL;
        for (int k = 0; k < n->n_outputs; k++) x->out_ptrs[k] = &x->vals[n->outputs[k]->id];
        /* a node whose outputs are all empty has nothing to compute */
        bool empty = n->n_outputs > 0;
        for (int k = 0; k < n->n_outputs; k++) empty = empty && x->out_ptrs[k]->numel == 0;
        if (empty) continue;
        tc_cpu_call call = {g, n, x->in_ptrs, x->out_ptrs, x->symvals, x, err};
        st = tc_cpu_kernel_for(n->op)(&call);
    }
    if (st != TC_OK) {
        free(bound);
        return st;
    }
    /* an output that is an input or a constant, or that appears twice, is copied */
    for (int i = 0; i < g->outputs.n; i++) {
        const tc_value *v = g->outputs.items[i];
        const tc_cpu_tensor *t = &x->vals[v->id];
        if (bound[i]) {
            if (t->data != bound[i] && nbytes_of(t)) memmove(bound[i], t->data, nbytes_of(t));
            tc_tensor *o = &x->out_view[i];
            o->dtype = t->dtype;
            o->rank = t->rank;
            memcpy(o->dims, t->dims, sizeof o->dims);
            o->data = bound[i];
            continue;
        }
        if (v->kind != TC_VALUE_NODE || t->data != x->outputs[i]) {
            size_t need = nbytes_of(t);
            if (need > x->output_cap[i] || !x->outputs[i]) {
                free(x->outputs[i]);
                x->outputs[i] = aligned_alloc(64, (need + 63) & ~(size_t)63);
                x->output_cap[i] = x->outputs[i] ? need : 0;
                if (!x->outputs[i]) {
                    free(bound);
                    return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
                }
            }
            if (need) memcpy(x->outputs[i], t->data, need);
        }
        tc_tensor *o = &x->out_view[i];
        o->dtype = t->dtype;
        o->rank = t->rank;
        memcpy(o->dims, t->dims, sizeof o->dims);
        o->data = x->outputs[i];
    }
    free(bound);
    return TC_OK;
}

void tc_cpu_exec_output(const tc_cpu_exec *x, int i, tc_tensor *out) { *out = x->out_view[i]; }
