/* The CUDA executor, part two: one run of a graph. Binds symbols from the input shapes, plans each
 * shape set once (value sizes, liveness-planned arena offsets), runs the kernels eagerly the first
 * time, then captures them into a CUDA graph per (shape set, I/O pointers) and replays it. */
#include "backend/cuda/exec_internal.h"
#include "core/dtype.h"
#include "core/liveness.h"
#include "engine/bind.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- one run ------------------------------------------------------------------------------ */

static tc_status bind_inputs(tc_cuda_exec *x, const tc_tensor *inputs, tc_error *err) {
    return tc_bind_inputs(x->g, inputs, x->symvals, x->bound, err);
}

/* Concrete dims and sizes of every value for the bound symbols (data pointers are set later). */
static tc_status compute_shapes(tc_cuda_exec *x, const tc_tensor *inputs, tc_error *err) {
    const tc_graph *g = x->g;
    for (int i = 0; i < g->values.n; i++) {
        const tc_value *v = g->values.items[i];
        tc_cuda_tensor *t = &x->vals[i];
        t->dtype = v->dtype;
        t->rank = v->rank;
        t->data = NULL;
        t->nhwc = x->e->nhwc && x->e->nhwc[i];
        t->strides = NULL;
        TC_TRY(tc_value_dims_now(g, v, inputs, x->symvals, t->dims, &t->numel, err));
    }
    return TC_OK;
}

static size_t nbytes_of(const tc_cuda_tensor *t) { return (size_t)t->numel * tc_dtype_size(t->dtype); }

static size_t input_bytes(const tc_tensor *t) {
    size_t n = tc_dtype_size(t->dtype);
    for (int d = 0; d < t->rank; d++) n *= (size_t)t->dims[d];
    return n;
}


/* Plans a new shape set: value sizes, arena offsets by liveness over the steps (first fit; graph
 * outputs live in their own buffers; values a fused step keeps inside its kernel get none), output
 * types. */
static tc_status plan_set(tc_cuda_exec *x, tc_cuda_shape_set *s, uint64_t hash, const tc_tensor *inputs, tc_error *err) {
    const tc_graph *g = x->g;
    int nv = g->values.n;
    TC_TRY(compute_shapes(x, inputs, err));
    s->in_dims = malloc(((size_t)x->n_dims + 1) * sizeof *s->in_dims);
    s->offs = calloc((size_t)nv + 1, sizeof *s->offs);
    s->out_types = calloc((size_t)x->n_out + 1, sizeof *s->out_types);
    s->out_bytes = calloc((size_t)x->n_out + 1, sizeof *s->out_bytes);
    s->flag_msgs = calloc((size_t)x->e->n_flags * TC_CUDA_FLAG_MSG + 1, 1);
    tc_live_block *blocks = calloc((size_t)nv + 1, sizeof *blocks);
    bool ok = s->in_dims && s->offs && s->out_types && s->out_bytes && s->flag_msgs && blocks;
    for (int k = 0; ok && k < TC_CUDA_GRAPHS_PER_SHAPE_SET; k++)
        ok = (s->var[k].ptrs = calloc((size_t)(x->n_in + x->n_out) + 1, sizeof(void *))) != NULL;
    if (!ok) {
        free(blocks);
        tc_cuda_shape_set_free(s);
        return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    }
    memcpy(s->in_dims, x->key_dims, (size_t)x->n_dims * sizeof *s->in_dims);
    for (int i = 0; i < nv; i++) s->offs[i] = SIZE_MAX;
    int nb = 0;
    size_t total = 0;
    const tc_cuda_engine *e = x->e;
    tc_status vst = tc_cuda_views_plan(x, s, err);
    if (vst != TC_OK) {
        free(blocks);
        tc_cuda_shape_set_free(s);
        return vst;
    }
    /* a value that views or aliases hold keeps its memory until their last reader */
    int *hold = malloc(((size_t)nv + 1) * sizeof *hold);
    if (!hold) {
        free(blocks);
        tc_cuda_shape_set_free(s);
        return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int i = 0; i < nv; i++) hold[i] = x->last_use[i];
    for (int i = 0; i < nv; i++) {
        const tc_cuda_view_plan *vp = &s->views[i];
        if (vp->src >= 0 && !vp->own && x->last_use[i] > hold[vp->src]) hold[vp->src] = x->last_use[i];
    }
    for (int si = 0; si < e->n_steps; si++) {
        const tc_cuda_step *st = &e->steps[si];
        const tc_node *n = g->nodes.items[st->last];
        int n_made = st->count > 1 ? 1 : n->n_outputs;
        for (int k = 0; k < n_made; k++) {
            tc_value *v = n->outputs[k];
            size_t size = tc_cuda_round_up(nbytes_of(&x->vals[v->id]), TC_CUDA_ALIGN);
            if (x->out_first[v->id] >= 0 || size == 0) continue;
            if (s->views[v->id].src >= 0 && !s->views[v->id].own) continue; /* no memory of its own */
            if (s->offs[v->id] != SIZE_MAX) continue; /* placed where an earlier step writes it */
            int end = hold[v->id] < si ? si : hold[v->id];
            s->offs[v->id] = tc_live_place(blocks, &nb, size, si, end, &total);
        }
        if (s->write_to[si] >= 0) { /* this step writes a later permute's output: its memory starts here */
            const tc_node *pn = g->nodes.items[e->steps[s->write_to[si]].node];
            const tc_value *p = pn->outputs[0];
            size_t size = tc_cuda_round_up(nbytes_of(&x->vals[p->id]), TC_CUDA_ALIGN);
            int end = hold[p->id] < si ? si : hold[p->id];
            if (size) s->offs[p->id] = tc_live_place(blocks, &nb, size, si, end, &total);
        }
    }
    free(blocks);
    free(hold);
    s->arena_bytes = total;
    for (int i = 0; i < x->n_out; i++) {
        const tc_value *v = g->outputs.items[i];
        const tc_cuda_tensor *t = &x->vals[v->id];
        tc_tensor *o = &s->out_types[i];
        o->dtype = t->dtype;
        o->rank = t->rank;
        memcpy(o->dims, t->dims, sizeof o->dims);
        s->out_bytes[i] = nbytes_of(t);
    }
    s->used = true;
    s->hash = hash;
    return TC_OK;
}

static uint64_t hash_dims(const int64_t *d, int n) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++) {
        h ^= (uint64_t)d[i];
        h *= 1099511628211ull;
    }
    return h;
}

static tc_cuda_shape_set *find_set(tc_cuda_exec *x, uint64_t hash) {
    for (int i = 0; i < TC_CUDA_MAX_SHAPE_SETS; i++) {
        tc_cuda_shape_set *s = &x->sets[i];
        if (s->used && s->hash == hash && memcmp(s->in_dims, x->key_dims, (size_t)x->n_dims * sizeof(int64_t)) == 0)
            return s;
    }
    return NULL;
}

/* A free slot, else the least recently used shape set, emptied. */
static tc_cuda_shape_set *evict_set(tc_cuda_exec *x) {
    tc_cuda_shape_set *victim = &x->sets[0];
    for (int i = 0; i < TC_CUDA_MAX_SHAPE_SETS; i++) {
        if (!x->sets[i].used) return &x->sets[i];
        if (x->sets[i].last_use < victim->last_use) victim = &x->sets[i];
    }
    if (x->flags_set == victim) x->flags_set = NULL;
    tc_cuda_shape_set_free(victim);
    return victim;
}

static const char *output_name(const tc_graph *g, int i) {
    const char *n = i < g->output_names.n ? g->output_names.items[i] : NULL;
    return n ? n : ((const tc_value *)g->outputs.items[i])->name;
}

static void type_text(const tc_tensor *t, char *buf, size_t n) {
    size_t len = (size_t)snprintf(buf, n, "%s[", tc_dtype_name(t->dtype));
    for (int d = 0; d < t->rank && len < n; d++)
        len += (size_t)snprintf(buf + len, n - len, "%s%lld", d ? ", " : "", (long long)t->dims[d]);
    if (len < n) snprintf(buf + len, n - len, "]");
}

/* Caller-bound outputs must have the result's type; they must not overlap an input. */
static tc_status check_bound_outputs(tc_cuda_exec *x, const tc_cuda_shape_set *s, const tc_tensor *inputs,
                                     const tc_tensor *outputs, tc_error *err) {
    if (!outputs) return TC_OK;
    const tc_graph *g = x->g;
    for (int i = 0; i < x->n_out; i++) {
        const tc_tensor *b = &outputs[i];
        if (!b->data) continue;
        const tc_tensor *want = &s->out_types[i];
        if (b->dtype != want->dtype || b->rank != want->rank ||
            memcmp(b->dims, want->dims, sizeof(int64_t) * (size_t)want->rank) != 0) {
            char t1[160], t2[160];
            type_text(b, t1, sizeof t1);
            type_text(want, t2, sizeof t2);
            return tc_errorf(err, TC_ERR_SHAPE, "output '%s': the bound buffer is %s but the result is %s",
                             output_name(g, i), t1, t2);
        }
        uintptr_t o0 = (uintptr_t)b->data, o1 = o0 + s->out_bytes[i];
        for (int k = 0; k < x->n_in && o1 > o0; k++) {
            const tc_value *v = g->inputs.items[k];
            size_t n = input_bytes(&inputs[k]);
            uintptr_t i0 = (uintptr_t)inputs[k].data, i1 = i0 + n;
            if (inputs[k].data && n && o0 < i1 && i0 < o1)
                return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "output '%s': the bound buffer overlaps input '%s'",
                                 output_name(g, i), v->name);
        }
        for (int k = 0; k < i; k++) {
            if (!outputs[k].data) continue;
            uintptr_t p0 = (uintptr_t)outputs[k].data, p1 = p0 + s->out_bytes[k];
            if (o0 < p1 && p0 < o1 && o1 > o0)
                return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "output '%s': the bound buffer overlaps output '%s'",
                                 output_name(g, i), output_name(g, k));
        }
    }
    return TC_OK;
}

/* Fails unless p is device memory of the engine's GPU (or managed memory). */
static tc_status check_device_ptr(tc_cuda_exec *x, const void *p, const char *kind, const char *name, tc_error *err) {
    struct cudaPointerAttributes a;
    cudaError_t ce = cudaPointerGetAttributes(&a, p);
    if (ce != cudaSuccess) {
        (void)cudaGetLastError();
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "%s '%s': %p is not memory CUDA knows (%s)", kind, name, p,
                         cudaGetErrorString(ce));
    }
    if (a.type == cudaMemoryTypeUnregistered || a.type == cudaMemoryTypeHost)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT,
                         "%s '%s' is host memory (%p); a CUDA engine takes device memory of GPU %d", kind, name, p,
                         x->e->device);
    if (a.type == cudaMemoryTypeDevice && a.device != x->e->device)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "%s '%s' is on GPU %d but the engine runs on GPU %d", kind, name,
                         a.device, x->e->device);
    return TC_OK;
}

static tc_status check_io_pointers(tc_cuda_exec *x, const tc_tensor *inputs, const tc_tensor *outputs, tc_error *err) {
    const tc_graph *g = x->g;
    for (int i = 0; i < x->n_in; i++) {
        const tc_value *v = g->inputs.items[i];
        if (inputs[i].data && input_bytes(&inputs[i])) TC_TRY(check_device_ptr(x, inputs[i].data, "input", v->name, err));
    }
    for (int i = 0; outputs && i < x->n_out; i++)
        if (outputs[i].data) TC_TRY(check_device_ptr(x, outputs[i].data, "output", output_name(g, i), err));
    return TC_OK;
}

/* Arena and owned output buffers large enough for shape set s. */
static tc_status ensure_memory(tc_cuda_exec *x, const tc_cuda_shape_set *s, const tc_tensor *outputs, tc_error *err) {
    TC_TRY(tc_cuda_exec_regrow(x, (void **)&x->arena, &x->arena_cap, s->arena_bytes, "the activation arena", err));
    for (int i = 0; i < x->n_out; i++) {
        if ((outputs && outputs[i].data) || s->out_bytes[i] == 0) continue;
        char what[300];
        snprintf(what, sizeof what, "output '%s'", output_name(x->g, i));
        TC_TRY(tc_cuda_exec_regrow(x, &x->out_buf[i], &x->out_cap[i], s->out_bytes[i], what, err));
    }
    return TC_OK;
}

/* The I/O pointers of this run: inputs, then the buffer each output is written to. */
static void collect_pointers(tc_cuda_exec *x, const tc_cuda_shape_set *s, const tc_tensor *inputs,
                             const tc_tensor *outputs) {
    for (int i = 0; i < x->n_in; i++) x->ptrs[i] = inputs[i].data;
    for (int i = 0; i < x->n_out; i++)
        x->ptrs[x->n_in + i] = outputs && outputs[i].data ? outputs[i].data
                               : s->out_bytes[i]          ? x->out_buf[i]
                                                          : x->e->empty;
}

/* Data pointers of every value for this run (shapes already computed). */
static void place_values(tc_cuda_exec *x, const tc_cuda_shape_set *s) {
    const tc_graph *g = x->g;
    for (int i = 0; i < g->values.n; i++) {
        const tc_value *v = g->values.items[i];
        tc_cuda_tensor *t = &x->vals[i];
        if (t->numel == 0) t->data = x->e->empty;
        else if (v->kind == TC_VALUE_INPUT) t->data = x->ptrs[v->input_index];
        else if (v->kind == TC_VALUE_CONSTANT)
            t->data = x->e->const_off[i] == SIZE_MAX ? NULL : x->e->weights + x->e->const_off[i];
        else if (x->out_first[i] >= 0) t->data = x->ptrs[x->n_in + x->out_first[i]];
        else t->data = s->offs[i] == SIZE_MAX ? NULL : x->arena + s->offs[i]; /* NULL: inside a fused step */
    }
    for (int i = 0; i < g->values.n; i++) { /* aliases and strided views: in their source's memory */
        const tc_cuda_view_plan *vp = &s->views[i];
        tc_cuda_tensor *t = &x->vals[i];
        if (vp->src < 0 || vp->own || t->numel == 0) continue;
        const tc_cuda_tensor *src = &x->vals[vp->src];
        t->data = (char *)src->data + (size_t)vp->base * tc_dtype_size(t->dtype);
        t->strides = vp->contiguous ? NULL : vp->strides;
    }
}

static const char *mode_text(tc_cuda_run_mode m) {
    if (m == TC_CUDA_MODE_CAPTURE) return " during CUDA graph capture";
    return m == TC_CUDA_MODE_JOINED ? " in the caller's stream capture" : "";
}

/* " (fused step: conv1 + bn1 + relu1)" for a step of several nodes, else "". */
static const char *fused_note(const tc_cuda_exec *x, const tc_cuda_step *s, char *buf, size_t n) {
    buf[0] = 0;
    if (s->count < 2) return buf;
    size_t len = (size_t)snprintf(buf, n, " (fused step: ");
    for (int k = 0; k < s->count && len < n; k++) {
        const tc_node *m = x->g->nodes.items[x->e->step_nodes[s->first + k]];
        len += (size_t)snprintf(buf + len, n - len, "%s%s", k ? " + " : "", m->name);
    }
    if (len < n) snprintf(buf + len, n - len, ")");
    return buf;
}

/* Runs every step's kernel on the context's stream; in capture modes they are recorded instead. */
static tc_status run_steps(tc_cuda_exec *x, tc_error *err) {
    const tc_graph *g = x->g;
    const tc_cuda_engine *e = x->e;
    char label[256], note[300], kmsg[sizeof err->msg];
    const bool prof = x->prof_this && x->mode == TC_CUDA_MODE_EAGER;
    for (int si = 0; si < e->n_steps; si++) {
        const tc_cuda_step *s = &e->steps[si];
        tc_node *n = g->nodes.items[s->node];
        const tc_node *last = g->nodes.items[s->last];
        if (prof) TC_CUDA_TRY(cudaEventRecord(x->prof_ev[si], x->stream), err);
        for (int k = 0; k < n->n_inputs; k++) x->in_ptrs[k] = n->inputs[k] ? &x->vals[n->inputs[k]->id] : NULL;
        int n_made = s->count > 1 ? 1 : n->n_outputs;
        for (int k = 0; k < n_made; k++) x->out_ptrs[k] = &x->vals[last->outputs[k]->id];
        bool empty = n_made > 0;
        for (int k = 0; k < n_made; k++) empty = empty && x->out_ptrs[k]->numel == 0;
        if (empty) continue;
        unsigned char vmode = x->cur_set->step_mode[si];
        if (vmode == TC_CUDA_VIEW_SKIP) continue;
        if (vmode == TC_CUDA_VIEW_GATHER) {
            TC_TRY(tc_cuda_views_gather(x, si, err));
            continue;
        }
        const tc_cuda_epilogue *epi = NULL;
        if (s->count > 1 || s->weight >= 0 || s->bias >= 0) { /* a lone conv may have a channels-last weight */
            x->epi.weight = s->weight >= 0 ? &x->derived_t[s->weight] : NULL;
            x->epi.bias = s->bias >= 0 ? &x->derived_t[s->bias] : NULL;
            x->epi.act1 = s->act1;
            x->epi.residual = s->residual >= 0 ? &x->vals[s->residual] : NULL;
            x->epi.act2 = s->act2;
            epi = &x->epi;
        }
        tc_cuda_kernel kern = tc_cuda_kernel_for(n->op);
        TC_ASSERT(kern); /* tc_cuda_check_graph ran at build */
        x->side_fail = false;
        tc_cuda_call call = {g, n, x->in_ptrs, x->out_ptrs, x->symvals, x, x->stream, err, epi};
        tc_status st = s->kind == TC_CUDA_STEP_EW ? tc_cuda_ew_run(x, s, err) : kern(&call);
        tc_node_label(n, label, sizeof label);
        fused_note(x, s, note, sizeof note);
        if (x->side_fail) {
            snprintf(kmsg, sizeof kmsg, "%s", st != TC_OK ? err->msg : "");
            return tc_errorf(err, x->side_status, "%s on cuda%s%s: %s%s%.300s", label, note, mode_text(x->mode),
                             x->side_msg, kmsg[0] ? "; the kernel reported: " : "", kmsg);
        }
        if (st != TC_OK) {
            if (x->mode != TC_CUDA_MODE_EAGER || note[0]) {
                snprintf(kmsg, sizeof kmsg, "%s", err->msg);
                return tc_errorf(err, st, "%.700s%s%s%s", kmsg, note, mode_text(x->mode),
                                 x->mode != TC_CUDA_MODE_EAGER
                                     ? " (set TENSORC_CUDA_GRAPHS=0 to run without CUDA graphs)"
                                     : " (set TENSORC_CUDA_FUSE=0 to run every node on its own)");
            }
            return st;
        }
        cudaError_t ce = cudaGetLastError();
        if (ce != cudaSuccess)
            return tc_errorf(err, TC_ERR_CUDA,
                             "%s on cuda%s%s: the kernel returned success but CUDA reports %s (%s): a launch or "
                             "library call whose error it did not check", label, note, mode_text(x->mode),
                             cudaGetErrorName(ce), cudaGetErrorString(ce));
        if (x->mode != TC_CUDA_MODE_EAGER) {
            enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
            ce = cudaStreamIsCapturing(x->stream, &cs);
            if (ce != cudaSuccess || cs != cudaStreamCaptureStatusActive) {
                (void)cudaGetLastError();
                return tc_errorf(err, TC_ERR_CUDA,
                                 "%s on cuda%s broke the CUDA graph capture%s: it synchronized, allocated or freed "
                                 "memory, or used another stream (kernels must not; see docs/cuda-backend.md); set "
                                 "TENSORC_CUDA_GRAPHS=0 to run without CUDA graphs", label, note, mode_text(x->mode));
            }
        } else if (x->e->sync_each) {
            ce = cudaStreamSynchronize(x->stream);
            if (ce != cudaSuccess) {
                (void)cudaGetLastError();
                return tc_errorf(err, TC_ERR_CUDA, "%s on cuda%s failed on the device: %s (%s)", label, note,
                                 cudaGetErrorName(ce), cudaGetErrorString(ce));
            }
        }
    }
    if (prof) {
        TC_CUDA_TRY(cudaEventRecord(x->prof_ev[e->n_steps], x->stream), err);
        TC_CUDA_TRY(cudaEventSynchronize(x->prof_ev[e->n_steps]), err);
        for (int si = 0; si < e->n_steps; si++) {
            float ms = 0;
            TC_CUDA_TRY(cudaEventElapsedTime(&ms, x->prof_ev[si], x->prof_ev[si + 1]), err);
            x->prof_ms[si] += ms;
        }
        x->prof_runs++;
    }
    return TC_OK;
}

typedef struct prof_row {
    int step;
    double ms;
} prof_row;

static int by_time_desc(const void *a, const void *b) {
    double x = ((const prof_row *)a)->ms, y = ((const prof_row *)b)->ms;
    return x < y ? 1 : x > y ? -1 : ((const prof_row *)a)->step - ((const prof_row *)b)->step;
}

void tc_cuda_exec_profile_report(const tc_cuda_exec *x, FILE *f) {
    if (!x || !x->prof_ms || x->prof_runs <= 0 || !f) return;
    const tc_cuda_engine *e = x->e;
    prof_row *rows = malloc(sizeof *rows * (size_t)(e->n_steps ? e->n_steps : 1));
    if (!rows) return;
    double total = 0;
    for (int si = 0; si < e->n_steps; si++) {
        rows[si].step = si, rows[si].ms = x->prof_ms[si] / (double)x->prof_runs;
        total += rows[si].ms;
    }
    qsort(rows, (size_t)e->n_steps, sizeof *rows, by_time_desc);
    fprintf(f, "tensorc profile: %lld run(s), %d steps, %.1f us of GPU time per run (events around each step, "
               "no CUDA graph)\n%10s %6s  %5s  step\n", (long long)x->prof_runs, e->n_steps, total * 1e3, "us/run",
            "share", "index");
    char label[256], note[300];
    for (int i = 0; i < e->n_steps; i++) {
        const tc_cuda_step *s = &e->steps[rows[i].step];
        tc_node_label(x->g->nodes.items[s->node], label, sizeof label);
        fprintf(f, "%10.1f %5.1f%%  %5d  %s%s\n", rows[i].ms * 1e3, total > 0 ? 100.0 * rows[i].ms / total : 0.0,
                rows[i].step, label, fused_note(x, s, note, sizeof note));
    }
    free(rows);
}

/* Graph outputs that are inputs, constants or repeats of another output are copied. */
static tc_status copy_outputs(tc_cuda_exec *x, tc_error *err) {
    const tc_graph *g = x->g;
    for (int i = 0; i < x->n_out; i++) {
        const tc_value *v = g->outputs.items[i];
        const tc_cuda_tensor *t = &x->vals[v->id];
        void *dst = x->ptrs[x->n_in + i];
        size_t n = nbytes_of(t);
        if (n && dst != t->data)
            TC_CUDA_TRY(cudaMemcpyAsync(dst, t->data, n, cudaMemcpyDeviceToDevice, x->stream), err);
    }
    return TC_OK;
}

/* The device work of one run: clear the error words, the steps, the output copies, and the error
 * words back to the host. */
static tc_status run_all(tc_cuda_exec *x, tc_cuda_shape_set *s, tc_error *err) {
    size_t fb = (size_t)x->e->n_flags * sizeof(unsigned int);
    x->cur_set = s;
    tc_status st = TC_OK;
    if (x->flags_dev) st = TC_CUDA_CHECK(cudaMemsetAsync(x->flags_dev, 0, fb, x->stream), err);
    if (st == TC_OK) st = run_steps(x, err);
    if (st == TC_OK) st = copy_outputs(x, err);
    if (st == TC_OK && x->flags_dev)
        st = TC_CUDA_CHECK(cudaMemcpyAsync(x->flags_host, x->flags_dev, fb, cudaMemcpyDeviceToHost, x->stream), err);
    x->cur_set = NULL;
    return st;
}

/* Fails, naming the first node in graph order, when a kernel of the last finished run raised its
 * error word; the words are cleared so that the failure is reported once. Host only: the caller
 * has synchronized with that run. */
static tc_status check_flags(tc_cuda_exec *x, tc_error *err) {
    const tc_cuda_engine *e = x->e;
    if (!x->flags_host) return TC_OK;
    int first = -1, count = 0;
    for (int i = 0; i < e->n_flags; i++)
        if (x->flags_host[i]) {
            if (first < 0) first = i;
            count++;
        }
    if (first < 0) return TC_OK;
    memset(x->flags_host, 0, (size_t)e->n_flags * sizeof(unsigned int));
    const tc_node *n = x->g->nodes.items[e->flag_node[first]];
    bool division = n->op == TC_OP_DIV_TENSOR_MODE || n->op == TC_OP_REMAINDER_TENSOR;
    const char *msg = x->flags_set ? x->flags_set->flag_msgs + (size_t)first * TC_CUDA_FLAG_MSG : "";
    if (!msg[0]) msg = division ? "integer division by zero" : "an index is out of range";
    char label[256];
    tc_node_label(n, label, sizeof label);
    return tc_errorf(err, division ? TC_ERR_INVALID_ARGUMENT : TC_ERR_SHAPE,
                     "%s on cuda: %s (found on the device after the run; its outputs are not valid)%s", label, msg,
                     count > 1 ? "; other nodes raised errors too" : "");
}

static tc_status run_eager(tc_cuda_exec *x, tc_cuda_shape_set *s, const tc_tensor *inputs, tc_cuda_run_mode mode,
                           tc_error *err) {
    TC_TRY(compute_shapes(x, inputs, err));
    place_values(x, s);
    x->mode = mode;
    tc_status st = run_all(x, s, err);
    x->mode = TC_CUDA_MODE_EAGER;
    return st;
}

static bool same_ptrs(const tc_cuda_exec *x, void *const *a) {
    return memcmp(a, x->ptrs, (size_t)(x->n_in + x->n_out) * sizeof(void *)) == 0;
}

/* Captures the run into a graph and stores it in a variant of s: a stale or free slot first, else
 * the least recently used one. An existing executable graph is updated in place when CUDA allows
 * (same topology), which is much cheaper than instantiating a new one. */
static tc_status capture(tc_cuda_exec *x, tc_cuda_shape_set *s, const tc_tensor *inputs, tc_cuda_graph_variant **out,
                         tc_error *err) {
    *out = NULL;
    TC_TRY(compute_shapes(x, inputs, err));
    place_values(x, s);
    cudaGraph_t graph = NULL;
    TC_CUDA_TRY(cudaStreamBeginCapture(x->stream, cudaStreamCaptureModeThreadLocal), err);
    x->mode = TC_CUDA_MODE_CAPTURE;
    tc_status st = run_all(x, s, err);
    x->mode = TC_CUDA_MODE_EAGER;
    cudaError_t ce = cudaStreamEndCapture(x->stream, &graph);
    if (st != TC_OK || ce != cudaSuccess) {
        if (graph) (void)cudaGraphDestroy(graph);
        (void)cudaGetLastError();
        if (st != TC_OK) return st;
        return tc_errorf(err, TC_ERR_CUDA,
                         "ending the CUDA graph capture failed with %s (%s): some kernel used an operation that cannot "
                         "be captured; run with TENSORC_CUDA_GRAPHS=0 (or TENSORC_CUDA_SYNC=1) to check the kernels "
                         "eagerly", cudaGetErrorName(ce), cudaGetErrorString(ce));
    }
    x->stats.captures++;
    size_t n_nodes = 0;
    st = TC_CUDA_CHECK(cudaGraphGetNodes(graph, NULL, &n_nodes), err);
    tc_cuda_graph_variant *v = NULL;
    for (int k = 0; k < TC_CUDA_GRAPHS_PER_SHAPE_SET && !v; k++)
        if (s->var[k].valid && s->var[k].gen != x->gen) v = &s->var[k];
    for (int k = 0; k < TC_CUDA_GRAPHS_PER_SHAPE_SET && !v; k++)
        if (!s->var[k].valid) v = &s->var[k];
    if (!v) {
        v = &s->var[0];
        for (int k = 1; k < TC_CUDA_GRAPHS_PER_SHAPE_SET; k++)
            if (s->var[k].last_use < v->last_use) v = &s->var[k];
    }
    v->valid = false;
    if (st == TC_OK && n_nodes == 0 && v->exec) {
        (void)cudaGraphExecDestroy(v->exec);
        v->exec = NULL;
    }
    if (st == TC_OK && n_nodes > 0 && v->exec) {
        cudaGraphExecUpdateResultInfo info;
        if (cudaGraphExecUpdate(v->exec, graph, &info) == cudaSuccess) {
            x->stats.updates++;
        } else {
            (void)cudaGetLastError();
            (void)cudaGraphExecDestroy(v->exec);
            v->exec = NULL;
        }
    }
    if (st == TC_OK && n_nodes > 0 && !v->exec) {
        st = TC_CUDA_CHECK(cudaGraphInstantiate(&v->exec, graph, 0), err);
        if (st == TC_OK) x->stats.instantiations++;
        else v->exec = NULL;
    }
    (void)cudaGraphDestroy(graph);
    if (st != TC_OK) return st;
    v->valid = true;
    v->gen = x->gen;
    memcpy(v->ptrs, x->ptrs, (size_t)(x->n_in + x->n_out) * sizeof(void *));
    *out = v;
    return TC_OK;
}

static tc_status run_impl(tc_cuda_exec *x, const tc_tensor *inputs, const tc_tensor *outputs, cudaStream_t caller,
                          tc_error *err) {
    x->mode = TC_CUDA_MODE_EAGER;
    TC_TRY(bind_inputs(x, inputs, err));
    int nd = 0;
    for (int i = 0; i < x->n_in; i++)
        for (int d = 0; d < inputs[i].rank; d++) x->key_dims[nd++] = inputs[i].dims[d];
    uint64_t hash = hash_dims(x->key_dims, x->n_dims);

    /* Is the caller's stream being captured into a graph of its own? Then this run's kernels join
     * that capture: nothing may be allocated or synchronized, so the shapes must be warmed up. */
    bool joined = false;
    if (caller) {
        enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
        TC_CUDA_TRY(cudaStreamIsCapturing(caller, &cs), err);
        if (cs == cudaStreamCaptureStatusInvalidated)
            return tc_errorf(err, TC_ERR_CUDA, "the caller's stream is in an invalidated CUDA graph capture");
        joined = cs == cudaStreamCaptureStatusActive;
    }

    tc_cuda_shape_set *s = find_set(x, hash);
    if (s) {
        x->stats.shape_set_hits++;
    } else {
        if (joined)
            return tc_errorf(err, TC_ERR_INVALID_ARGUMENT,
                             "the caller's stream is being captured into a CUDA graph, but this context has not run "
                             "with these input shapes yet: run it once outside the capture first");
        s = evict_set(x);
        TC_TRY(plan_set(x, s, hash, inputs, err));
    }
    s->last_use = ++x->clock;
    if (joined && !s->warmed)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT,
                         "the caller's stream is being captured into a CUDA graph, but this context has not yet run "
                         "successfully with these input shapes: run it once outside the capture first");
    TC_TRY(check_bound_outputs(x, s, inputs, outputs, err));
    if (joined) {
        bool fits = s->arena_bytes <= x->arena_cap && (s->arena_bytes == 0 || x->arena);
        for (int i = 0; i < x->n_out && fits; i++) {
            bool owned = !(outputs && outputs[i].data) && s->out_bytes[i];
            if (owned) fits = s->out_bytes[i] <= x->out_cap[i] && x->out_buf[i];
        }
        if (!fits)
            return tc_errorf(err, TC_ERR_INVALID_ARGUMENT,
                             "the caller's stream is being captured into a CUDA graph, but this context's memory for "
                             "these shapes is not allocated: run it once outside the capture first");
    } else {
        TC_TRY(ensure_memory(x, s, outputs, err));
    }
    collect_pointers(x, s, inputs, outputs);

    /* Order this run after the caller's earlier work (NULL: after the legacy default stream's). */
    cudaStream_t after = caller ? caller : cudaStreamLegacy;
    TC_CUDA_TRY(cudaEventRecord(x->ev_in, after), err);
    TC_CUDA_TRY(cudaStreamWaitEvent(x->stream, x->ev_in, 0), err);

    tc_status st = TC_OK;
    if (joined) {
        st = run_eager(x, s, inputs, TC_CUDA_MODE_JOINED, err);
    } else if (!x->e->use_graphs || !s->warmed) {
        bool warmup = !s->warmed;
        x->prof_this = x->e->profile && !warmup; /* a first run also builds plans: not timed */
        st = check_io_pointers(x, inputs, outputs, err);
        if (st == TC_OK) st = run_eager(x, s, inputs, TC_CUDA_MODE_EAGER, err);
        x->stats.eager_runs++;
        if (warmup) x->stats.warmups++;
        if (st == TC_OK && warmup && x->e->use_graphs) {
            /* Surface a kernel's device fault here, at the first run with these shapes, rather than
             * later inside a graph replay where no node can be named. */
            cudaError_t ce = cudaStreamSynchronize(x->stream);
            if (ce != cudaSuccess) {
                (void)cudaGetLastError();
                st = tc_errorf(err, TC_ERR_CUDA,
                               "the first run with these input shapes failed on the device: %s (%s); rerun with "
                               "TENSORC_CUDA_SYNC=1 to find the node", cudaGetErrorName(ce), cudaGetErrorString(ce));
            }
        }
        if (st == TC_OK) s->warmed = true;
        if (st == TC_OK && warmup && x->e->use_graphs) {
            x->flags_set = s;
            st = check_flags(x, err); /* the run was synchronized: report a data error at once */
        }
    } else {
        tc_cuda_graph_variant *v = NULL;
        for (int k = 0; k < TC_CUDA_GRAPHS_PER_SHAPE_SET && !v; k++)
            if (s->var[k].valid && s->var[k].gen == x->gen && same_ptrs(x, s->var[k].ptrs)) v = &s->var[k];
        if (!v) {
            st = check_io_pointers(x, inputs, outputs, err);
            if (st == TC_OK) st = capture(x, s, inputs, &v, err);
        }
        if (st == TC_OK) {
            v->last_use = x->clock;
            if (v->exec) st = TC_CUDA_CHECK(cudaGraphLaunch(v->exec, x->stream), err);
            x->stats.graph_launches++;
        }
    }
    /* The caller's later work waits for this run; the event is recorded even after a failure so
     * that the caller's stream is never left waiting on an older run's event. */
    cudaError_t ce = cudaEventRecord(x->ev_out, x->stream);
    /* NULL means the legacy default stream (PyTorch's default stream hands us 0): it must wait too,
     * or work the caller queues there next (events, copies) runs before this run has finished. */
    if (ce == cudaSuccess) ce = cudaStreamWaitEvent(caller ? caller : cudaStreamLegacy, x->ev_out, 0);
    if (st != TC_OK) {
        (void)cudaGetLastError();
        return st;
    }
    if (ce != cudaSuccess) return TC_CUDA_CHECK(ce, err);
    x->flags_set = s;
    x->stats.runs++;
    for (int i = 0; i < x->n_out; i++) {
        x->out_view[i] = s->out_types[i];
        x->out_view[i].data = x->ptrs[x->n_in + i];
    }
    return TC_OK;
}

tc_status tc_cuda_exec_run(tc_cuda_exec *x, const tc_tensor *inputs, const tc_tensor *outputs, void *stream,
                           tc_error *err) {
    if (!x) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "execution context is NULL");
    if (!inputs && x->n_in) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "inputs are NULL");
    tc_cuda_dev_guard gd;
    TC_TRY(tc_cuda_dev_enter(x->e->device, &gd, err));
    tc_status st = run_impl(x, inputs, outputs, (cudaStream_t)stream, err);
    tc_cuda_dev_leave(&gd);
    return st;
}

tc_status tc_cuda_exec_sync(tc_cuda_exec *x, void *stream, tc_error *err) {
    if (!x) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "execution context is NULL");
    tc_cuda_dev_guard gd;
    TC_TRY(tc_cuda_dev_enter(x->e->device, &gd, err));
    /* A caller's stream waits for this context's stream, so syncing it covers both. */
    cudaError_t ce = cudaStreamSynchronize(stream ? (cudaStream_t)stream : x->stream);
    tc_cuda_dev_leave(&gd);
    if (ce != cudaSuccess) {
        (void)cudaGetLastError();
        return tc_errorf(err, TC_ERR_CUDA,
                         "the execution failed on the device: %s (%s); rerun with TENSORC_CUDA_SYNC=1 to find the node",
                         cudaGetErrorName(ce), cudaGetErrorString(ce));
    }
    return check_flags(x, err);
}

void tc_cuda_exec_output(const tc_cuda_exec *x, int i, tc_tensor *out) {
    if (!x || i < 0 || i >= x->n_out) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = x->out_view[i];
}

void tc_cuda_exec_get_stats(const tc_cuda_exec *x, tc_cuda_exec_stats *out) {
    memset(out, 0, sizeof *out);
    if (!x) return;
    *out = x->stats;
    out->shape_sets = 0;
    for (int i = 0; i < TC_CUDA_MAX_SHAPE_SETS; i++) out->shape_sets += x->sets[i].used;
    out->arena_bytes = x->arena_cap;
    out->scratch_bytes = 0;
    for (int i = 0; i < TC_CUDA_SCRATCH_SLOTS; i++) out->scratch_bytes += x->scratch_cap[i];
    out->output_bytes = 0;
    for (int i = 0; i < x->n_out; i++) out->output_bytes += x->out_cap[i];
}
