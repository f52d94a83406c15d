/* Plan choices of a CUDA engine: the table kernels consult before choosing a cuDNN plan or a
 * cuBLASLt algorithm, its step records in engine files, and the run at the opt shapes that fills
 * it before an engine is saved. A loaded engine thus runs the plans of the process that built it
 * (the same numerics, bit for bit), and skips the libraries' heuristics and any tactic timing.
 *
 * Record bytes (little-endian): u32 key_len, u32 desc_len, key, desc (text for inspect), data. */
#include "backend/cuda/cublaslt.h"
#include "backend/cuda/exec_internal.h"
#include "backend/cuda/records.h"
#include "core/dtype.h"
#include "core/sym.h"
#include "engine/serialize.h"

#include <cuda_runtime_api.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tc_cuda_choice {
    uint32_t kind;
    uint32_t node;      /* the node that made it first (for inspect) */
    bool used;          /* made or looked up by this engine, or read from its file (not just from a timing cache) */
    uint32_t key_len, desc_len, data_len;
    unsigned char *bytes; /* key, desc, data */
};

static bool same_key(const tc_cuda_choice *ch, uint32_t kind, const void *key, size_t key_len) {
    return ch->kind == kind && ch->key_len == key_len && memcmp(ch->bytes, key, key_len) == 0;
}

/* The entry for (kind, key), or NULL. Under the lock. */
static tc_cuda_choice *lookup(tc_cuda_engine *e, uint32_t kind, const void *key, size_t key_len) {
    for (int i = 0; i < e->n_choices; i++)
        if (same_key(&e->choices[i], kind, key, key_len)) return &e->choices[i];
    return NULL;
}

/* Adds or replaces an entry. Under the lock. False when out of memory (the table is unchanged). */
static bool put(tc_cuda_engine *e, uint32_t kind, uint32_t node, const void *key, size_t key_len, const char *desc,
                const void *data, size_t data_len, bool replace, bool used) {
    size_t desc_len = desc ? strlen(desc) : 0;
    if (desc_len > 255) desc_len = 255;
    if (key_len > UINT32_MAX || data_len > UINT32_MAX) return false;
    tc_cuda_choice *ch = lookup(e, kind, key, key_len);
    if (ch && !replace) {
        ch->used = ch->used || used;
        return true;
    }
    unsigned char *b = malloc(key_len + desc_len + data_len + 1);
    if (!b) return false;
    memcpy(b, key, key_len);
    if (desc_len) memcpy(b + key_len, desc, desc_len);
    if (data_len) memcpy(b + key_len + desc_len, data, data_len);
    if (!ch) {
        if (e->n_choices == e->cap_choices) {
            int cap = e->cap_choices ? 2 * e->cap_choices : 64;
            tc_cuda_choice *grown = realloc(e->choices, (size_t)cap * sizeof *grown);
            if (!grown) {
                free(b);
                return false;
            }
            e->choices = grown;
            e->cap_choices = cap;
        }
        ch = &e->choices[e->n_choices++];
    } else {
        free(ch->bytes);
    }
    ch->kind = kind;
    ch->node = node;
    ch->used = used;
    ch->key_len = (uint32_t)key_len;
    ch->desc_len = (uint32_t)desc_len;
    ch->data_len = (uint32_t)data_len;
    ch->bytes = b;
    return true;
}

void tc_cuda_choices_free(tc_cuda_engine *e) {
    for (int i = 0; i < e->n_choices; i++) free(e->choices[i].bytes);
    free(e->choices);
    e->choices = NULL;
    e->n_choices = e->cap_choices = 0;
}

void *tc_cuda_choice_find(const tc_cuda_call *c, uint32_t kind, const void *key, size_t key_len, size_t *len) {
    return tc_cuda_choice_find_engine(c->exec->e, kind, key, key_len, len, c->node->id);
}

void *tc_cuda_choice_find_engine(tc_cuda_engine *e, uint32_t kind, const void *key, size_t key_len, size_t *len,
                                 int node) {
    *len = 0;
    if (!e->records) return NULL;
    void *out = NULL;
    pthread_mutex_lock(&e->choice_lock);
    tc_cuda_choice *ch = lookup(e, kind, key, key_len);
    if (ch) {
        if (!ch->used && node >= 0) ch->node = (uint32_t)node; /* from a timing cache: this node uses it first */
        ch->used = true;
        out = malloc(ch->data_len + 1);
        if (out) {
            memcpy(out, ch->bytes + ch->key_len + ch->desc_len, ch->data_len);
            ((unsigned char *)out)[ch->data_len] = 0;
            *len = ch->data_len;
        }
    }
    pthread_mutex_unlock(&e->choice_lock);
    return out;
}

void tc_cuda_choice_store(const tc_cuda_call *c, uint32_t kind, const void *key, size_t key_len, const char *desc,
                          const void *data, size_t len, bool replace) {
    tc_cuda_choice_store_engine(c->exec->e, kind, key, key_len, desc, data, len, replace, c->node->id);
}

void tc_cuda_choice_store_engine(tc_cuda_engine *e, uint32_t kind, const void *key, size_t key_len, const char *desc,
                                 const void *data, size_t len, bool replace, int node) {
    if (!e->records) return;
    pthread_mutex_lock(&e->choice_lock);
    /* out of memory only loses the record: the plan itself is in the context's cache */
    (void)put(e, kind, (uint32_t)(node < 0 ? 0 : node), key, key_len, desc, data, len, replace, true);
    pthread_mutex_unlock(&e->choice_lock);
}

void tc_cuda_choice_drop(const tc_cuda_call *c, uint32_t kind, const void *key, size_t key_len) {
    tc_cuda_choice_drop_engine(c->exec->e, kind, key, key_len);
}

void tc_cuda_choice_drop_engine(tc_cuda_engine *e, uint32_t kind, const void *key, size_t key_len) {
    pthread_mutex_lock(&e->choice_lock);
    tc_cuda_choice *ch = lookup(e, kind, key, key_len);
    if (ch) {
        free(ch->bytes);
        *ch = e->choices[--e->n_choices];
    }
    pthread_mutex_unlock(&e->choice_lock);
    atomic_fetch_add_explicit(&e->plans_rechosen, 1, memory_order_relaxed);
}

void tc_cuda_choice_used(const tc_cuda_call *c) {
    atomic_fetch_add_explicit(&c->exec->e->plans_from_records, 1, memory_order_relaxed);
}

void tc_cuda_engine_plan_counts(tc_cuda_engine *e, uint64_t *from_records, uint64_t *rechosen) {
    *from_records = atomic_load_explicit(&e->plans_from_records, memory_order_relaxed);
    *rechosen = atomic_load_explicit(&e->plans_rechosen, memory_order_relaxed);
}

bool tc_cuda_choice_describe(tc_cuda_engine *e, int node, char *buf, size_t n) {
    bool found = false;
    pthread_mutex_lock(&e->choice_lock);
    for (int i = 0; i < e->n_choices && !found; i++) {
        const tc_cuda_choice *ch = &e->choices[i];
        if (!ch->used || (int)ch->node != node || !ch->desc_len) continue;
        snprintf(buf, n, "%.*s", (int)ch->desc_len, (const char *)ch->bytes + ch->key_len);
        found = true;
    }
    pthread_mutex_unlock(&e->choice_lock);
    return found;
}

int tc_cuda_choice_count(tc_cuda_engine *e) {
    pthread_mutex_lock(&e->choice_lock);
    int n = e->n_choices;
    pthread_mutex_unlock(&e->choice_lock);
    return n;
}

/* ---- the run at the opt shapes ---------------------------------------------------------------- */

tc_status tc_cuda_engine_prepare(tc_cuda_engine *e, tc_error *err) {
    if (!e->records) return TC_OK;
    const tc_graph *g = e->g;
    int ni = g->inputs.n;
    int64_t *symvals = calloc((size_t)g->syms.atoms.n + 1, sizeof *symvals);
    tc_tensor *in = calloc((size_t)ni + 1, sizeof *in);
    if (!symvals || !in) {
        free(symvals);
        free(in);
        return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int i = 0; i < g->syms.atoms.n; i++) {
        const tc_sym_atom *a = g->syms.atoms.items[i];
        symvals[i] = a->kind == TC_ATOM_SYMBOL ? a->opt : 0;
    }
    tc_cuda_dev_guard gd;
    tc_status st = tc_cuda_dev_enter(e->device, &gd, err);
    if (st != TC_OK) {
        free(symvals);
        free(in);
        return st;
    }
    /* float inputs: small pseudo-random values (timing on zeros flatters some kernels' power
     * draw); other inputs zeros, a valid index for every embedding and gather */
    uint32_t seed = 0x9e3779b9u;
    for (int i = 0; st == TC_OK && i < ni; i++) {
        const tc_value *v = g->inputs.items[i];
        in[i].dtype = v->dtype;
        in[i].rank = v->rank;
        size_t numel = 1;
        for (int k = 0; k < v->rank; k++) {
            in[i].dims[k] = tc_sym_eval(&g->syms, v->dims[k], symvals);
            numel *= (size_t)in[i].dims[k];
        }
        size_t bytes = numel * tc_dtype_size(v->dtype);
        st = TC_CUDA_CHECK(cudaMalloc(&in[i].data, bytes ? bytes : 1), err);
        bool fl = v->dtype == TC_F32 || v->dtype == TC_F16 || v->dtype == TC_BF16 || v->dtype == TC_F64;
        void *host = st == TC_OK && bytes && fl ? malloc(bytes) : NULL;
        if (host) {
            for (size_t k = 0; k < numel; k++) {
                seed = seed * 1664525u + 1013904223u;
                tc_store_f64(host, v->dtype, (int64_t)k, ((double)(seed >> 8) / 16777216.0 - 0.5) * 2.0);
            }
            st = TC_CUDA_CHECK(cudaMemcpy(in[i].data, host, bytes, cudaMemcpyHostToDevice), err);
            free(host);
        } else if (st == TC_OK && bytes) {
            st = TC_CUDA_CHECK(cudaMemset(in[i].data, 0, bytes), err);
        }
    }
    tc_cuda_exec *x = NULL;
    /* an engine file is built once and run many times: its plans are timed (TENSORC_AUTOTUNE
     * overrides), unless chosen already */
    int old = tc_tactic_set_thread_default(8);
    if (st == TC_OK) st = tc_cuda_exec_create(e, &x, err);
    if (st == TC_OK) st = tc_cuda_exec_run(x, in, NULL, NULL, err);
    if (st == TC_OK) st = tc_cuda_exec_sync(x, NULL, err);
    tc_cuda_exec_free(x);
    tc_tactic_set_thread_default(old);
    for (int i = 0; i < ni; i++)
        if (in[i].data) (void)cudaFree(in[i].data);
    (void)cudaGetLastError();
    tc_cuda_dev_leave(&gd);
    free(symvals);
    free(in);
    return st;
}

/* ---- engine-file records ---------------------------------------------------------------------- */

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

tc_status tc_cuda_choices_snapshot(tc_cuda_engine *e, bool all, tc_step_record **out, uint32_t *n, tc_error *err) {
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&e->choice_lock);
    tc_step_record *r = calloc((size_t)e->n_choices + 1, sizeof *r);
    uint32_t k = 0;
    bool oom = !r;
    for (int i = 0; !oom && i < e->n_choices; i++) {
        const tc_cuda_choice *ch = &e->choices[i];
        if (!all && !ch->used) continue;
        size_t body = (size_t)ch->key_len + ch->desc_len + ch->data_len;
        unsigned char *b = malloc(8 + body);
        if (!b) {
            oom = true;
            break;
        }
        put_u32(b, ch->key_len);
        put_u32(b + 4, ch->desc_len);
        memcpy(b + 8, ch->bytes, body);
        r[k].step = ch->node, r[k].kind = ch->kind, r[k].data = b, r[k].size = 8 + body;
        k++;
    }
    pthread_mutex_unlock(&e->choice_lock);
    if (oom) {
        tc_cuda_choices_snapshot_free(r, k);
        return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory copying plan records");
    }
    *out = r;
    *n = k;
    return TC_OK;
}

void tc_cuda_choices_snapshot_free(tc_step_record *r, uint32_t n) {
    for (uint32_t i = 0; r && i < n; i++) free((void *)r[i].data);
    free(r);
}

tc_status tc_cuda_write_records(tc_cuda_engine *e, tc_record_writer *w, tc_error *err) {
    if (!e->records) return TC_OK;
    /* the choices of the opt shapes, made now unless a run at them made them already */
    tc_error why = {0};
    if (tc_cuda_engine_prepare(e, &why) != TC_OK && getenv("TENSORC_VERBOSE"))
        fprintf(stderr, "tensorc: the run at the opt shapes before saving failed (%s); the file keeps the plans "
                        "chosen so far\n", why.msg);
    tc_step_record *r;
    uint32_t n;
    TC_TRY(tc_cuda_choices_snapshot(e, false, &r, &n, err));
    tc_status st = TC_OK;
    for (uint32_t i = 0; st == TC_OK && i < n; i++) st = tc_record_add(w, r[i].step, r[i].kind, r[i].data, r[i].size, err);
    tc_cuda_choices_snapshot_free(r, n);
    return st;
}

static bool known_kind(uint32_t kind) {
    return kind == TC_RECORD_CUDNN_PLAN || kind == TC_RECORD_CUBLASLT_ALGO || kind == TC_RECORD_NVRTC_CUBIN;
}

tc_status tc_cuda_read_records(tc_cuda_engine *e, const tc_step_record *r, uint32_t n, bool from_cache,
                               tc_error *err) {
    /* every record is checked before any is taken, so that a damaged set changes nothing */
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *p = r[i].data;
        uint64_t size = r[i].size;
        uint32_t kl = size >= 8 ? get_u32(p) : 0, dl = size >= 8 ? get_u32(p + 4) : 0;
        if (known_kind(r[i].kind) && (size < 8 || kl == 0 || (uint64_t)kl + dl > size - 8))
            return tc_errorf(err, TC_ERR_FORMAT, "plan record %u of step %u is malformed", i, r[i].step);
    }
    pthread_mutex_lock(&e->choice_lock);
    tc_status st = TC_OK;
    for (uint32_t i = 0; st == TC_OK && i < n; i++) {
        if (!known_kind(r[i].kind)) continue; /* a kind this build does not make: its steps choose again */
        /* a timing cache holds plan choices, never code: a cubin in one is ignored */
        if (from_cache && r[i].kind == TC_RECORD_NVRTC_CUBIN) continue;
        const unsigned char *p = r[i].data;
        uint64_t size = r[i].size;
        uint32_t kl = get_u32(p), dl = get_u32(p + 4);
        char desc[256];
        snprintf(desc, sizeof desc, "%.*s", (int)(dl < 255 ? dl : 255), (const char *)p + 8 + kl);
        if (!put(e, r[i].kind, from_cache ? 0 : r[i].step, p + 8, kl, desc, p + 8 + kl + dl,
                 (size_t)(size - 8 - kl - dl), false, !from_cache))
            st = tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory reading plan records");
    }
    pthread_mutex_unlock(&e->choice_lock);
    return st;
}
