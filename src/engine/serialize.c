/* Engine files (.tce): serializing an engine (target, I/O table, graph, backend step records,
 * weights, checksum) and loading one back with every check a damaged, foreign or outdated file
 * needs. The byte layout is specified in docs/engine-format.md. */
#define _POSIX_C_SOURCE 200809L
#include "engine/serialize.h"
#include "core/dtype.h"
#ifdef TC_HAVE_CUDA
#include "backend/cuda/engine_file.h"
#endif

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HEADER_BYTES 32u
#define SECTION_ENTRY_BYTES 24u
#define MAX_SECTIONS 64u
#define GENERIC_REBUILD "tensorc build MODEL.pt2 -o ENGINE.tce [options]"

/* ---- bytes ---------------------------------------------------------------------------------- */

void tc_wbuf_free(tc_wbuf *w) {
    free(w->data);
    memset(w, 0, sizeof *w);
}

static bool wbuf_reserve(tc_wbuf *w, size_t n) {
    if (w->oom) return false;
    if (n <= w->cap - w->size) return true;
    size_t cap = w->cap ? w->cap : 256;
    while (cap - w->size < n) {
        if (cap > SIZE_MAX / 2) {
            w->oom = true;
            return false;
        }
        cap *= 2;
    }
    unsigned char *p = realloc(w->data, cap);
    if (!p) {
        w->oom = true;
        return false;
    }
    w->data = p;
    w->cap = cap;
    return true;
}

void tc_wbuf_bytes(tc_wbuf *w, const void *p, size_t n) {
    if (!n || !wbuf_reserve(w, n)) return;
    memcpy(w->data + w->size, p, n);
    w->size += n;
}

static void put_le(tc_wbuf *w, uint64_t v, int n) {
    unsigned char b[8];
    for (int i = 0; i < n; i++) b[i] = (unsigned char)(v >> (8 * i));
    tc_wbuf_bytes(w, b, (size_t)n);
}

void tc_wbuf_u8(tc_wbuf *w, uint8_t v) { put_le(w, v, 1); }
void tc_wbuf_u32(tc_wbuf *w, uint32_t v) { put_le(w, v, 4); }
void tc_wbuf_u64(tc_wbuf *w, uint64_t v) { put_le(w, v, 8); }
void tc_wbuf_i64(tc_wbuf *w, int64_t v) { put_le(w, (uint64_t)v, 8); }
void tc_wbuf_f64(tc_wbuf *w, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    put_le(w, u, 8);
}
void tc_wbuf_str(tc_wbuf *w, const char *s) {
    size_t n = s ? strlen(s) : 0;
    tc_wbuf_u32(w, (uint32_t)n);
    tc_wbuf_bytes(w, s, n);
}
void tc_wbuf_pad(tc_wbuf *w, size_t align) {
    static const unsigned char zeros[64];
    size_t n = (align - w->size % align) % align;
    tc_wbuf_bytes(w, zeros, n);
}

static uint64_t get_le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static const unsigned char *rbuf_take(tc_rbuf *r, size_t n) {
    if (r->bad || r->pos > r->size || n > r->size - r->pos) {
        r->bad = true;
        return NULL;
    }
    const unsigned char *p = r->p + r->pos;
    r->pos += n;
    return p;
}

uint8_t tc_rbuf_u8(tc_rbuf *r) {
    const unsigned char *p = rbuf_take(r, 1);
    return p ? p[0] : 0;
}
uint32_t tc_rbuf_u32(tc_rbuf *r) {
    const unsigned char *p = rbuf_take(r, 4);
    return p ? (uint32_t)get_le(p, 4) : 0;
}
uint64_t tc_rbuf_u64(tc_rbuf *r) {
    const unsigned char *p = rbuf_take(r, 8);
    return p ? get_le(p, 8) : 0;
}
int64_t tc_rbuf_i64(tc_rbuf *r) { return (int64_t)tc_rbuf_u64(r); }
double tc_rbuf_f64(tc_rbuf *r) {
    uint64_t u = tc_rbuf_u64(r);
    double d;
    memcpy(&d, &u, 8);
    return d;
}
uint32_t tc_rbuf_str(tc_rbuf *r, const char **s) {
    uint32_t n = tc_rbuf_u32(r);
    const unsigned char *p = rbuf_take(r, n);
    *s = p ? (const char *)p : "";
    return p ? n : 0;
}
bool tc_rbuf_str_copy(tc_rbuf *r, char *buf, size_t size) {
    const char *s;
    uint32_t n = tc_rbuf_str(r, &s);
    size_t k = n < size ? n : size - 1;
    memcpy(buf, s, k);
    buf[k] = '\0';
    return !r->bad && n < size;
}
const void *tc_rbuf_bytes(tc_rbuf *r, size_t n) { return rbuf_take(r, n); }

/* ---- hash ----------------------------------------------------------------------------------- */

#define H_K1 0x9e3779b97f4a7c15ull
#define H_K2 0xd6e8feb86659fd93ull
#define H_K3 0xff51afd7ed558ccdull

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

uint64_t tc_hash64(const void *data, size_t size, uint64_t seed) {
    const unsigned char *p = data;
    uint64_t lane[4];
    for (int i = 0; i < 4; i++) lane[i] = seed + H_K1 * (uint64_t)(i + 1);
    size_t n = size;
    while (n >= 32) {
        for (int i = 0; i < 4; i++) lane[i] = rotl64(lane[i] ^ (get_le(p + 8 * i, 8) * H_K2), 29) * H_K1;
        p += 32;
        n -= 32;
    }
    uint64_t h = seed ^ ((uint64_t)size * H_K3);
    for (int i = 0; i < 4; i++) h = rotl64(h ^ (lane[i] * H_K2), 31) * H_K1;
    while (n >= 8) {
        h = rotl64(h ^ (get_le(p, 8) * H_K2), 31) * H_K1;
        p += 8;
        n -= 8;
    }
    while (n > 0) {
        h = (h ^ *p++) * H_K1;
        n--;
    }
    h ^= h >> 33;
    h *= H_K3;
    h ^= h >> 29;
    h *= H_K2;
    h ^= h >> 32;
    return h;
}

/* ---- hooks ---------------------------------------------------------------------------------- */

static _Atomic(const tc_engine_backend_hooks *) g_hooks[TC_BACKEND_COUNT];

void tc_engine_set_backend_hooks(tc_backend_kind backend, const tc_engine_backend_hooks *hooks) {
    if ((unsigned)backend < TC_BACKEND_COUNT) atomic_store(&g_hooks[backend], hooks);
}

/* Installed hooks win; a CUDA build falls back to the CUDA backend's own, so that its engines carry
 * their target however the process started (no registration call can be forgotten). */
static const tc_engine_backend_hooks *hooks_for(tc_backend_kind backend) {
    const tc_engine_backend_hooks *h = (unsigned)backend < TC_BACKEND_COUNT ? atomic_load(&g_hooks[backend]) : NULL;
#ifdef TC_HAVE_CUDA
    if (!h && backend == TC_BACKEND_CUDA) h = tc_cuda_engine_file_hooks();
#endif
    return h;
}

struct tc_record_writer {
    tc_wbuf w;
    uint32_t n;
    uint32_t n_steps;
};

tc_status tc_record_add(tc_record_writer *rw, uint32_t step, uint32_t kind, const void *data, size_t size,
                        tc_error *err) {
    if (!rw || (size && !data)) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "bad step record");
    if (step >= rw->n_steps)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "step record for step %u, the engine has %u steps", step,
                         rw->n_steps);
    tc_wbuf_u32(&rw->w, step);
    tc_wbuf_u32(&rw->w, kind);
    tc_wbuf_u64(&rw->w, (uint64_t)size);
    tc_wbuf_bytes(&rw->w, data, size);
    tc_wbuf_pad(&rw->w, 8);
    if (rw->w.oom) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory writing step records");
    rw->n++;
    return TC_OK;
}

static const char *gemm_ops[] = {"mm", "bmm", "addmm", "linear", "matmul", "baddbmm", "addbmm", NULL};

void tc_engine_describe_step(const tc_engine_t *e, int step, tc_step_desc *d) {
    const tc_build_options *opt = tc_engine_options(e);
    tc_engine_describe_step_for(e, opt ? opt->backend : TC_BACKEND_CPU, step, d);
}

void tc_engine_describe_step_for(const tc_engine_t *e, tc_backend_kind backend, int step, tc_step_desc *d) {
    memset(d, 0, sizeof *d);
    const tc_graph *g = tc_engine_graph(e);
    const tc_engine_backend_hooks *h = hooks_for(backend);
    if (!g || step < 0 || step >= g->nodes.n) return;
    const tc_node *n = g->nodes.items[step];
    snprintf(d->precision, sizeof d->precision, "%s", n->n_outputs ? tc_dtype_name(n->outputs[0]->dtype) : "-");
    if (h && h->describe_step) {
        h->describe_step(e, step, d);
        return;
    }
    char base[48];
    snprintf(base, sizeof base, "%s", n->op_name);
    char *dot = strchr(base, '.');
    if (dot) *dot = '\0';
    const char *impl = base;
    for (int i = 0; gemm_ops[i]; i++)
        if (strcmp(base, gemm_ops[i]) == 0) impl = "gemm";
    if (strcmp(base, "convolution") == 0) impl = "im2col+gemm";
    if (backend == TC_BACKEND_CUDA) impl = "?"; /* a build without the CUDA backend cannot say */
    snprintf(d->implementation, sizeof d->implementation, "%s:%s", backend == TC_BACKEND_CUDA ? "cuda" : "cpu", impl);
}

/* ---- writing -------------------------------------------------------------------------------- */

static void write_target(tc_wbuf *w, const tc_engine_target *t, const tc_build_options *o,
                         const tc_engine_save_info *info, uint64_t model_hash) {
    tc_wbuf_u32(w, (uint32_t)t->backend);
    tc_wbuf_str(w, t->device_name);
    tc_wbuf_u32(w, (uint32_t)t->cc_major);
    tc_wbuf_u32(w, (uint32_t)t->cc_minor);
    tc_wbuf_u32(w, (uint32_t)t->sm_count);
    tc_wbuf_str(w, t->cuda_version);
    tc_wbuf_str(w, t->cudnn_version);
    tc_wbuf_str(w, t->cublaslt_version);
    tc_wbuf_str(w, t->nvrtc_version);
    tc_wbuf_str(w, t->driver_version);
    tc_wbuf_str(w, tc_version_string());
    tc_wbuf_u32(w, (uint32_t)o->backend);
    tc_wbuf_u32(w, (uint32_t)o->num_threads);
    tc_wbuf_u32(w, (uint32_t)o->device);
    tc_wbuf_u8(w, o->allow_fp16);
    tc_wbuf_u8(w, o->allow_bf16);
    tc_wbuf_u8(w, o->disable_tf32);
    tc_wbuf_u8(w, 0);
    tc_wbuf_u64(w, (uint64_t)o->workspace_bytes);
    tc_wbuf_u64(w, model_hash);
    const char *model = info && info->model_path ? info->model_path : "";
    const char *slash = strrchr(model, '/');
    tc_wbuf_str(w, slash ? slash + 1 : model);
    tc_wbuf_str(w, info ? info->build_command : NULL);
    int n = info && info->setting_keys && info->setting_values ? info->n_settings : 0;
    if (n < 0) n = 0;
    if (n > TC_ENGINE_MAX_SETTINGS) n = TC_ENGINE_MAX_SETTINGS;
    tc_wbuf_u32(w, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        tc_wbuf_str(w, info->setting_keys[i]);
        tc_wbuf_str(w, info->setting_values[i]);
    }
}

static void write_io_value(tc_wbuf *w, const tc_graph *g, const char *name, const tc_value *v) {
    tc_wbuf_str(w, name);
    tc_wbuf_u32(w, (uint32_t)v->dtype);
    tc_wbuf_u32(w, (uint32_t)v->rank);
    for (int d = 0; d < v->rank; d++) {
        char buf[128];
        int64_t lo, o, hi;
        tc_sym_range(&g->syms, v->dims[d], &lo, &o, &hi);
        tc_wbuf_str(w, tc_sym_print(&g->syms, v->dims[d], buf, sizeof buf));
        tc_wbuf_i64(w, lo);
        tc_wbuf_i64(w, o);
        tc_wbuf_i64(w, hi);
    }
}

static void write_io(tc_wbuf *w, const tc_graph *g) {
    tc_wbuf_u32(w, (uint32_t)g->inputs.n);
    for (int i = 0; i < g->inputs.n; i++) {
        const tc_value *v = g->inputs.items[i];
        write_io_value(w, g, v->name, v);
    }
    tc_wbuf_u32(w, (uint32_t)g->outputs.n);
    for (int i = 0; i < g->outputs.n; i++) write_io_value(w, g, g->output_names.items[i], g->outputs.items[i]);
}

tc_status tc_read_file(const char *path, unsigned char **data, size_t *size, tc_error *err) {
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return tc_errorf(err, TC_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        unsigned char *grown = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
        if (!grown) free(buf);
        buf = grown;
        cap *= 2;
    }
    bool failed = ferror(f);
    fclose(f);
    if (!buf) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory reading '%s'", path);
    if (failed) {
        free(buf);
        return tc_errorf(err, TC_ERR_IO, "cannot read '%s'", path);
    }
    *data = buf;
    *size = n;
    return TC_OK;
}

static tc_status serialize(const tc_engine_t *e, const tc_engine_save_info *info, tc_wbuf *out, tc_error *err) {
    const tc_graph *g = tc_engine_graph(e);
    const tc_build_options *opt = tc_engine_options(e);
    if (!g || !opt) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "engine is NULL");
    const tc_engine_backend_hooks *h = hooks_for(opt->backend);

    uint64_t model_hash = 0;
    if (info && info->model_path) {
        unsigned char *m;
        size_t msize;
        TC_TRY(tc_read_file(info->model_path, &m, &msize, err));
        model_hash = tc_hash64(m, msize, 0);
        free(m);
    }
    tc_engine_target t = {.backend = opt->backend};
    if (opt->backend == TC_BACKEND_CPU) snprintf(t.device_name, sizeof t.device_name, "cpu");
    else if (h && h->describe_target) {
        TC_TRY(h->describe_target(e, &t, err));
        t.backend = opt->backend;
    } else
        return tc_errorf(err, TC_ERR_UNSUPPORTED, "the %s backend cannot describe its engines' target in this build",
                         opt->backend == TC_BACKEND_CUDA ? "CUDA" : "?");

    tc_wbuf sec[6] = {{0}};
    tc_record_writer rw = {.n_steps = (uint32_t)g->nodes.n};
    tc_status st = TC_OK;
    write_target(&sec[TC_SECTION_TARGET], &t, opt, info, model_hash);
    write_io(&sec[TC_SECTION_IO], g);
    st = tc_graph_write(g, &sec[TC_SECTION_GRAPH], &sec[TC_SECTION_WEIGHTS], err);
    if (st == TC_OK && h && h->write_backend_records) st = h->write_backend_records(e, &rw, err);
    if (st == TC_OK) {
        tc_wbuf_u32(&sec[TC_SECTION_STEPS], rw.n);
        tc_wbuf_bytes(&sec[TC_SECTION_STEPS], rw.w.data, rw.w.size);
    }
    tc_wbuf_free(&rw.w);
    for (int k = 1; k <= 5 && st == TC_OK; k++)
        if (sec[k].oom) st = tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory serializing the engine");
    if (st == TC_OK) {
        const int order[5] = {TC_SECTION_TARGET, TC_SECTION_IO, TC_SECTION_GRAPH, TC_SECTION_STEPS, TC_SECTION_WEIGHTS};
        uint64_t offs[6] = {0};
        uint64_t pos = HEADER_BYTES + 5 * SECTION_ENTRY_BYTES;
        for (int i = 0; i < 5; i++) {
            int k = order[i];
            uint64_t align = k == TC_SECTION_WEIGHTS ? 64 : 8;
            pos = (pos + align - 1) / align * align;
            offs[k] = pos;
            pos += sec[k].size;
        }
        pos = (pos + 7) / 8 * 8;
        uint64_t file_size = pos + 8;
        tc_wbuf_bytes(out, TC_ENGINE_MAGIC, 8);
        tc_wbuf_u32(out, TC_ENGINE_FORMAT_VERSION_CURRENT);
        tc_wbuf_u32(out, 0);
        tc_wbuf_u64(out, file_size);
        tc_wbuf_u32(out, 5);
        tc_wbuf_u32(out, 0);
        for (int i = 0; i < 5; i++) {
            tc_wbuf_u32(out, (uint32_t)order[i]);
            tc_wbuf_u32(out, 0);
            tc_wbuf_u64(out, offs[order[i]]);
            tc_wbuf_u64(out, sec[order[i]].size);
        }
        for (int i = 0; i < 5; i++) {
            int k = order[i];
            tc_wbuf_pad(out, k == TC_SECTION_WEIGHTS ? 64 : 8);
            tc_wbuf_bytes(out, sec[k].data, sec[k].size);
        }
        tc_wbuf_pad(out, 8);
        if (!out->oom) tc_wbuf_u64(out, tc_hash64(out->data, out->size, 0));
        if (out->oom) st = tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory serializing the engine");
        else TC_ASSERT(out->size == file_size);
    }
    for (int k = 0; k < 6; k++) tc_wbuf_free(&sec[k]);
    return st;
}

static void copy_err(const tc_error *err, char *buf, size_t size) {
    if (buf && size) snprintf(buf, size, "%s", err->msg);
}

tc_status tc_engine_serialize_ex(const tc_engine_t *engine, const tc_engine_save_info *info, void **data,
                                 size_t *size, char *err_buf, size_t err_size) {
    tc_error err = {0};
    if (err_buf && err_size) err_buf[0] = '\0';
    if (data) *data = NULL;
    if (size) *size = 0;
    if (!engine || !data || !size) {
        tc_errorf(&err, TC_ERR_INVALID_ARGUMENT, "engine, data and size must not be NULL");
        copy_err(&err, err_buf, err_size);
        return TC_ERR_INVALID_ARGUMENT;
    }
    tc_wbuf out = {0};
    tc_status st = serialize(engine, info, &out, &err);
    if (st != TC_OK) {
        tc_wbuf_free(&out);
        copy_err(&err, err_buf, err_size);
        return st;
    }
    *data = out.data;
    *size = out.size;
    return TC_OK;
}

tc_status tc_engine_serialize(const tc_engine_t *engine, void **data, size_t *size) {
    return tc_engine_serialize_ex(engine, NULL, data, size, NULL, 0);
}

void tc_free_buffer(void *data) { free(data); }

tc_status tc_engine_save_ex(const tc_engine_t *engine, const tc_engine_save_info *info, const char *path,
                            char *err_buf, size_t err_size) {
    tc_error err = {0};
    if (!path) {
        tc_errorf(&err, TC_ERR_INVALID_ARGUMENT, "path is NULL");
        copy_err(&err, err_buf, err_size);
        return TC_ERR_INVALID_ARGUMENT;
    }
    void *data;
    size_t size;
    TC_TRY(tc_engine_serialize_ex(engine, info, &data, &size, err_buf, err_size));
    tc_status st = TC_OK;
    FILE *f = fopen(path, "wb");
    if (!f) {
        st = tc_errorf(&err, TC_ERR_IO, "cannot create '%s': %s", path, strerror(errno));
    } else {
        bool ok = fwrite(data, 1, size, f) == size;
        int saved = errno;
        if (fclose(f) != 0) ok = false;
        if (!ok) {
            st = tc_errorf(&err, TC_ERR_IO, "cannot write '%s': %s", path, strerror(saved ? saved : errno));
            remove(path);
        }
    }
    tc_free_buffer(data);
    if (st != TC_OK) copy_err(&err, err_buf, err_size);
    return st;
}

tc_status tc_write_file_atomic(const char *path, const void *data, size_t size, tc_error *err) {
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    snprintf(tmp, n, "%s.tmp%ld", path, (long)getpid());
    tc_status st = TC_OK;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        st = tc_errorf(err, TC_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
    } else {
        bool ok = fwrite(data, 1, size, f) == size;
        int saved = errno;
        if (fclose(f) != 0) ok = false;
        if (!ok) st = tc_errorf(err, TC_ERR_IO, "cannot write '%s': %s", tmp, strerror(saved ? saved : errno));
        else if (rename(tmp, path) != 0) st = tc_errorf(err, TC_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
        if (st != TC_OK) remove(tmp);
    }
    free(tmp);
    return st;
}

tc_status tc_engine_save(const tc_engine_t *engine, const char *path) {
    return tc_engine_save_ex(engine, NULL, path, NULL, 0);
}

/* ---- reading -------------------------------------------------------------------------------- */

typedef struct section {
    const unsigned char *p;
    uint64_t size;
    bool present;
} section;

typedef struct parsed {
    section sec[6];
} parsed;

static tc_status parse_envelope(const unsigned char *p, size_t size, tc_engine_info *info, parsed *ps, tc_error *err) {
    memset(ps, 0, sizeof *ps);
    if (size < 8 || memcmp(p, TC_ENGINE_MAGIC, 8) != 0)
        return tc_errorf(err, TC_ERR_FORMAT,
                         "not a tensorc engine file (%s); build one with: " GENERIC_REBUILD,
                         size < 8 ? "too short for the magic \"TCENGINE\"" : "the magic \"TCENGINE\" is missing");
    if (size < HEADER_BYTES + 8)
        return tc_errorf(err, TC_ERR_FORMAT, "the engine file is truncated (%zu bytes, the header alone is %u); rebuild "
                         "it with: " GENERIC_REBUILD, size, HEADER_BYTES + 8);
    uint32_t version = (uint32_t)get_le(p + 8, 4);
    info->format_version = version;
    if (version > TC_ENGINE_FORMAT_VERSION_CURRENT)
        return tc_errorf(err, TC_ERR_VERSION,
                         "the engine file has format version %u, newer than this build of tensorc reads (%u): use a "
                         "newer tensorc, or rebuild the engine with this one: " GENERIC_REBUILD,
                         version, TC_ENGINE_FORMAT_VERSION_CURRENT);
    if (version == 0) return tc_errorf(err, TC_ERR_FORMAT, "the engine file has format version 0, which does not exist");
    uint64_t file_size = get_le(p + 16, 8);
    info->file_size = file_size;
    if (file_size > size)
        return tc_errorf(err, TC_ERR_FORMAT,
                         "the engine file is truncated: it has %zu of its %llu bytes; copy it again or rebuild it with: "
                         GENERIC_REBUILD, size, (unsigned long long)file_size);
    if (file_size < size)
        return tc_errorf(err, TC_ERR_FORMAT,
                         "the engine file has %llu unexpected bytes after its end (%llu bytes); copy it again or "
                         "rebuild it with: " GENERIC_REBUILD,
                         (unsigned long long)(size - file_size), (unsigned long long)file_size);
    if (file_size % 8 != 0) return tc_errorf(err, TC_ERR_FORMAT, "the engine file's size %llu is not a multiple of 8", (unsigned long long)file_size);
    uint64_t want = get_le(p + size - 8, 8), got = tc_hash64(p, size - 8, 0);
    if (want != got)
        return tc_errorf(err, TC_ERR_FORMAT,
                         "the engine file is corrupted (checksum %016llx, expected %016llx); copy it again or rebuild it "
                         "with: " GENERIC_REBUILD,
                         (unsigned long long)got, (unsigned long long)want);
    uint32_t n_sec = (uint32_t)get_le(p + 24, 4);
    if (n_sec > MAX_SECTIONS || HEADER_BYTES + (uint64_t)n_sec * SECTION_ENTRY_BYTES > size - 8)
        return tc_errorf(err, TC_ERR_FORMAT, "the engine file's section table is damaged (%u sections)", n_sec);
    uint64_t body = HEADER_BYTES + (uint64_t)n_sec * SECTION_ENTRY_BYTES;
    for (uint32_t i = 0; i < n_sec; i++) {
        const unsigned char *q = p + HEADER_BYTES + i * SECTION_ENTRY_BYTES;
        uint32_t kind = (uint32_t)get_le(q, 4);
        uint64_t off = get_le(q + 8, 8), len = get_le(q + 16, 8);
        if (off < body || off > size - 8 || len > size - 8 - off)
            return tc_errorf(err, TC_ERR_FORMAT, "the engine file's section %u (kind %u) lies outside the file", i, kind);
        if (kind < TC_SECTION_TARGET || kind > TC_SECTION_WEIGHTS) continue; /* a later addition: skipped */
        if (ps->sec[kind].present)
            return tc_errorf(err, TC_ERR_FORMAT, "the engine file has section kind %u twice", kind);
        if (off % (kind == TC_SECTION_WEIGHTS ? 64 : 8) != 0)
            return tc_errorf(err, TC_ERR_FORMAT, "the engine file's section kind %u is not aligned", kind);
        ps->sec[kind] = (section){p + off, len, true};
    }
    static const char *names[6] = {"", "target", "I/O table", "graph", "step table", "weights"};
    for (int k = TC_SECTION_TARGET; k <= TC_SECTION_WEIGHTS; k++)
        if (!ps->sec[k].present)
            return tc_errorf(err, TC_ERR_FORMAT, "the engine file has no %s section", names[k]);
    return TC_OK;
}

static tc_status parse_target(const section *s, tc_engine_info *info, tc_error *err) {
    tc_rbuf r = {.p = s->p, .size = s->size};
    tc_engine_target *t = &info->target;
    uint32_t backend = tc_rbuf_u32(&r);
    bool ok = tc_rbuf_str_copy(&r, t->device_name, sizeof t->device_name);
    t->cc_major = (int)tc_rbuf_u32(&r);
    t->cc_minor = (int)tc_rbuf_u32(&r);
    t->sm_count = (int)tc_rbuf_u32(&r);
    ok &= tc_rbuf_str_copy(&r, t->cuda_version, sizeof t->cuda_version);
    ok &= tc_rbuf_str_copy(&r, t->cudnn_version, sizeof t->cudnn_version);
    ok &= tc_rbuf_str_copy(&r, t->cublaslt_version, sizeof t->cublaslt_version);
    ok &= tc_rbuf_str_copy(&r, t->nvrtc_version, sizeof t->nvrtc_version);
    ok &= tc_rbuf_str_copy(&r, t->driver_version, sizeof t->driver_version);
    ok &= tc_rbuf_str_copy(&r, info->tensorc_version, sizeof info->tensorc_version);
    tc_build_options *o = &info->options;
    tc_build_options_init(o);
    uint32_t obackend = tc_rbuf_u32(&r);
    o->num_threads = (int)tc_rbuf_u32(&r);
    o->device = (int)tc_rbuf_u32(&r);
    o->allow_fp16 = tc_rbuf_u8(&r) != 0;
    o->allow_bf16 = tc_rbuf_u8(&r) != 0;
    o->disable_tf32 = tc_rbuf_u8(&r) != 0;
    (void)tc_rbuf_u8(&r);
    o->workspace_bytes = (size_t)tc_rbuf_u64(&r);
    info->model_hash = tc_rbuf_u64(&r);
    ok &= tc_rbuf_str_copy(&r, info->model_name, sizeof info->model_name);
    ok &= tc_rbuf_str_copy(&r, info->build_command, sizeof info->build_command);
    uint32_t n = tc_rbuf_u32(&r);
    if (n > TC_ENGINE_MAX_SETTINGS) ok = false;
    for (uint32_t i = 0; ok && i < n; i++) {
        ok &= tc_rbuf_str_copy(&r, info->setting_keys[i], sizeof info->setting_keys[i]);
        ok &= tc_rbuf_str_copy(&r, info->setting_values[i], sizeof info->setting_values[i]);
    }
    info->n_settings = ok ? (int)n : 0;
    if (!ok || r.bad || r.pos != r.size || backend >= TC_BACKEND_COUNT || obackend != backend || o->num_threads < 0 ||
        o->device < 0 || t->cc_major < 0 || t->cc_minor < 0 || t->sm_count < 0)
        return tc_errorf(err, TC_ERR_FORMAT, "the engine file's target section is damaged; rebuild it with: " GENERIC_REBUILD);
    t->backend = (tc_backend_kind)backend;
    o->backend = (tc_backend_kind)obackend;
    return TC_OK;
}

tc_status tc_engine_file_info(const void *data, size_t size, tc_engine_info *info, tc_error *err) {
    memset(info, 0, sizeof *info);
    if (!data && size) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "data is NULL");
    parsed ps;
    TC_TRY(parse_envelope(data ? data : (const void *)"", size, info, &ps, err));
    TC_TRY(parse_target(&ps.sec[TC_SECTION_TARGET], info, err));
    info->graph_bytes = ps.sec[TC_SECTION_GRAPH].size;
    info->weight_bytes = ps.sec[TC_SECTION_WEIGHTS].size;
    tc_rbuf r = {.p = ps.sec[TC_SECTION_STEPS].p, .size = ps.sec[TC_SECTION_STEPS].size};
    info->n_records = tc_rbuf_u32(&r);
    info->record_bytes = ps.sec[TC_SECTION_STEPS].size;
    if (r.bad) return tc_errorf(err, TC_ERR_FORMAT, "the engine file's step table is damaged");
    return TC_OK;
}

static const char *rebuild_cmd(const tc_engine_info *info) {
    return info->build_command[0] ? info->build_command : GENERIC_REBUILD;
}

/* The I/O table must describe the graph that was rebuilt from the file. */
static tc_status check_io(const section *s, const tc_graph *g, const tc_engine_info *info, tc_error *err) {
    tc_rbuf r = {.p = s->p, .size = s->size};
    for (int pass = 0; pass < 2; pass++) {
        uint32_t n = tc_rbuf_u32(&r);
        int want = pass == 0 ? g->inputs.n : g->outputs.n;
        if (r.bad || n != (uint32_t)want) goto bad;
        for (uint32_t i = 0; i < n; i++) {
            const tc_value *v = pass == 0 ? g->inputs.items[i] : g->outputs.items[i];
            const char *name = pass == 0 ? v->name : g->output_names.items[i];
            const char *s_name;
            uint32_t len = tc_rbuf_str(&r, &s_name);
            uint32_t dtype = tc_rbuf_u32(&r), rank = tc_rbuf_u32(&r);
            if (r.bad || len != strlen(name) || memcmp(s_name, name, len) != 0 || dtype != (uint32_t)v->dtype ||
                rank != (uint32_t)v->rank)
                goto bad;
            for (uint32_t d = 0; d < rank; d++) {
                const char *txt;
                (void)tc_rbuf_str(&r, &txt);
                int64_t lo = tc_rbuf_i64(&r), o = tc_rbuf_i64(&r), hi = tc_rbuf_i64(&r), glo, go, ghi;
                tc_sym_range(&g->syms, v->dims[d], &glo, &go, &ghi);
                if (r.bad || lo != glo || o != go || hi != ghi) goto bad;
            }
        }
    }
    if (r.pos == r.size) return TC_OK;
bad:
    return tc_errorf(err, TC_ERR_FORMAT,
                     "the engine file's I/O table does not match its graph; rebuild it with: %s", rebuild_cmd(info));
}

static tc_status read_records(const section *s, uint32_t n_steps, tc_step_record **out, uint32_t *n_out,
                              tc_error *err) {
    *out = NULL;
    *n_out = 0;
    tc_rbuf r = {.p = s->p, .size = s->size};
    uint32_t n = tc_rbuf_u32(&r);
    if (r.bad || n > tc_rbuf_room(&r, 16)) return tc_errorf(err, TC_ERR_FORMAT, "the engine file's step table is damaged");
    tc_step_record *recs = calloc((size_t)n + 1, sizeof *recs);
    if (!recs) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        recs[i].step = tc_rbuf_u32(&r);
        recs[i].kind = tc_rbuf_u32(&r);
        recs[i].size = tc_rbuf_u64(&r);
        recs[i].data = r.bad || recs[i].size > SIZE_MAX ? NULL : tc_rbuf_bytes(&r, (size_t)recs[i].size);
        size_t pad = (8 - (r.pos - 4) % 8) % 8; /* to a multiple of 8 from the first record */
        (void)tc_rbuf_bytes(&r, pad);
        if (r.bad || recs[i].step >= n_steps) {
            free(recs);
            return tc_errorf(err, TC_ERR_FORMAT, "the engine file's step record %u is damaged", i);
        }
    }
    if (r.pos != r.size) {
        free(recs);
        return tc_errorf(err, TC_ERR_FORMAT, "the engine file's step table has bytes left over");
    }
    *out = recs;
    *n_out = n;
    return TC_OK;
}

static tc_status deserialize(const unsigned char *p, size_t size, const tc_build_options *override,
                             tc_engine_t **out, tc_error *err) {
    tc_engine_info info;
    memset(&info, 0, sizeof info);
    parsed ps;
    TC_TRY(parse_envelope(p, size, &info, &ps, err));
    TC_TRY(parse_target(&ps.sec[TC_SECTION_TARGET], &info, err));
    const tc_engine_target *t = &info.target;
    tc_build_options opt = override ? *override : info.options;
    if ((unsigned)opt.backend >= TC_BACKEND_COUNT)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "override options name an unknown backend %d", (int)opt.backend);
    bool same_backend = opt.backend == t->backend;
    if (opt.backend == TC_BACKEND_CUDA && !tc_has_cuda()) {
        if (t->backend == TC_BACKEND_CUDA)
            return tc_errorf(err, TC_ERR_UNSUPPORTED,
                             "the engine was built for CUDA on %s (compute capability %d.%d), but this build of tensorc "
                             "has no CUDA backend. Use a CUDA build of tensorc, or rebuild the engine for the CPU: "
                             "tensorc build MODEL.pt2 -o ENGINE.tce --device cpu (it was built with: %s)",
                             t->device_name, t->cc_major, t->cc_minor, rebuild_cmd(&info));
        return tc_errorf(err, TC_ERR_UNSUPPORTED, "the override options ask for CUDA, but this build of tensorc has no CUDA backend");
    }
    if (same_backend && t->backend == TC_BACKEND_CUDA) {
        const tc_engine_backend_hooks *h = hooks_for(TC_BACKEND_CUDA);
        tc_error why = {0};
        tc_status st = h && h->check_target
                           ? h->check_target(t, &opt, &why)
                           : tc_errorf(&why, TC_ERR_UNSUPPORTED, "this build cannot check CUDA engine targets");
        /* No usable GPU here: rebuilding would not help, running the graph elsewhere would. */
        if (st == TC_ERR_CUDA || st == TC_ERR_INVALID_ARGUMENT)
            return tc_errorf(err, st,
                             "%s. Run it on a machine with that GPU, or run its graph on the CPU (`tensorc run "
                             "--device cpu`, or load it with backend TC_BACKEND_CPU)", why.msg);
        if (st != TC_OK)
            return tc_errorf(err, st, "%s. Rebuild the engine on this machine with: %s", why.msg, rebuild_cmd(&info));
    }

    tc_graph *g = NULL;
    tc_status st = tc_graph_read(ps.sec[TC_SECTION_GRAPH].p, (size_t)ps.sec[TC_SECTION_GRAPH].size,
                                 ps.sec[TC_SECTION_WEIGHTS].p, (size_t)ps.sec[TC_SECTION_WEIGHTS].size, NULL, 0, &g, err);
    if (st == TC_ERR_OUT_OF_MEMORY) return st;
    if (st != TC_OK) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        return tc_errorf(err, st,
                         "%s. The engine (written by tensorc %s) does not match this build (%s); rebuild it with: %s",
                         msg, info.tensorc_version, tc_version_string(), rebuild_cmd(&info));
    }
    st = check_io(&ps.sec[TC_SECTION_IO], g, &info, err);
    tc_step_record *recs = NULL;
    uint32_t n_recs = 0;
    if (st == TC_OK) st = read_records(&ps.sec[TC_SECTION_STEPS], (uint32_t)g->nodes.n, &recs, &n_recs, err);
    tc_engine_t *e = NULL;
    if (st == TC_OK) {
        char buf[1024];
        st = tc_engine_build(g, &opt, &e, buf, sizeof buf);
        if (st != TC_OK) tc_errorf(err, st, "cannot rebuild the engine from its file: %s", buf);
    }
    tc_graph_free(g); /* the engine holds its own reference */
    if (st == TC_OK && same_backend && n_recs) {
        const tc_engine_backend_hooks *h = hooks_for(opt.backend);
        if (h && h->read_backend_records) st = h->read_backend_records(e, recs, n_recs, err);
        else
            st = tc_errorf(err, TC_ERR_UNSUPPORTED,
                           "the engine file has %u %s step records that this build cannot use; rebuild it with: %s",
                           n_recs, opt.backend == TC_BACKEND_CUDA ? "CUDA" : "CPU", rebuild_cmd(&info));
    }
    free(recs);
    if (st != TC_OK) {
        tc_engine_free(e);
        return st;
    }
    *out = e;
    return TC_OK;
}

tc_status tc_engine_deserialize(const void *data, size_t size, const tc_build_options *override_or_null,
                                tc_engine_t **out, char *err_buf, size_t err_size) {
    tc_error err = {0};
    if (err_buf && err_size) err_buf[0] = '\0';
    if (!out) return TC_ERR_INVALID_ARGUMENT;
    *out = NULL;
    tc_status st;
    if (!data && size) st = tc_errorf(&err, TC_ERR_INVALID_ARGUMENT, "data is NULL");
    else st = deserialize(data ? data : (const void *)"", size, override_or_null, out, &err);
    if (st != TC_OK) copy_err(&err, err_buf, err_size);
    return st;
}

tc_status tc_engine_load(const char *path, const tc_build_options *override_or_null, tc_engine_t **out,
                         char *err_buf, size_t err_size) {
    tc_error err = {0};
    if (err_buf && err_size) err_buf[0] = '\0';
    if (!out) return TC_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!path) {
        tc_errorf(&err, TC_ERR_INVALID_ARGUMENT, "path is NULL");
        copy_err(&err, err_buf, err_size);
        return TC_ERR_INVALID_ARGUMENT;
    }
    unsigned char *data;
    size_t size;
    tc_status st = tc_read_file(path, &data, &size, &err);
    if (st == TC_OK) {
        st = deserialize(data, size, override_or_null, out, &err);
        free(data);
        if (st != TC_OK) {
            char msg[sizeof err.msg];
            snprintf(msg, sizeof msg, "%s", err.msg);
            tc_errorf(&err, st, "%s: %s", path, msg);
        }
    }
    if (st != TC_OK) copy_err(&err, err_buf, err_size);
    return st;
}
