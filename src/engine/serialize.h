/* Engine files (.tce), the internal side: the little-endian byte writer and bounds-checked reader,
 * the IR graph writer/reader (graph_io.c), the 64-bit hash, the parsed file header, and the hooks
 * through which a backend stores and reads back its per-step records. The layout is in
 * docs/engine-format.md. */
#ifndef TC_ENGINE_SERIALIZE_H
#define TC_ENGINE_SERIALIZE_H

#include "ir/graph.h"

/* Engine accessors (defined in engine.c). */
const tc_graph *tc_engine_graph(const tc_engine_t *engine);
const tc_build_options *tc_engine_options(const tc_engine_t *engine);
/* The CUDA backend's engine behind a CUDA engine; NULL for others and in builds without CUDA. */
struct tc_cuda_engine;
struct tc_cuda_engine *tc_engine_cuda(const tc_engine_t *engine);

/* Our 64-bit hash (four independent multiply-rotate lanes over 8-byte little-endian words, then an
 * avalanche; specified in docs/engine-format.md). Used for the file checksum and the model hash.
 * Not cryptographic: it detects damage, not tampering. */
uint64_t tc_hash64(const void *data, size_t size, uint64_t seed);

/* Reads a whole file into a malloc'd buffer (TC_ERR_IO naming the path, TC_ERR_OUT_OF_MEMORY). */
tc_status tc_read_file(const char *path, unsigned char **data, size_t *size, tc_error *err);
/* Writes a file through a temporary one renamed over it, so that readers never see a partial file. */
tc_status tc_write_file_atomic(const char *path, const void *data, size_t size, tc_error *err);

/* ---- bytes ---------------------------------------------------------------------------------- */

/* A growable buffer written in little-endian order. A failed allocation sets oom and makes every
 * later write a no-op, so writers check once at the end. */
typedef struct tc_wbuf {
    unsigned char *data;
    size_t size, cap;
    bool oom;
} tc_wbuf;

void tc_wbuf_free(tc_wbuf *w);
void tc_wbuf_bytes(tc_wbuf *w, const void *p, size_t n);
void tc_wbuf_u8(tc_wbuf *w, uint8_t v);
void tc_wbuf_u32(tc_wbuf *w, uint32_t v);
void tc_wbuf_u64(tc_wbuf *w, uint64_t v);
void tc_wbuf_i64(tc_wbuf *w, int64_t v);
void tc_wbuf_f64(tc_wbuf *w, double v);
void tc_wbuf_str(tc_wbuf *w, const char *s); /* u32 length + bytes, no terminator; NULL = "" */
void tc_wbuf_pad(tc_wbuf *w, size_t align);  /* zero bytes up to a multiple of align */

/* A reader over [p, p + size). Reading past the end sets bad and yields zeros / empty strings, so
 * a parser reads a whole record and checks bad once. */
typedef struct tc_rbuf {
    const unsigned char *p;
    size_t size, pos;
    bool bad;
} tc_rbuf;

uint8_t tc_rbuf_u8(tc_rbuf *r);
uint32_t tc_rbuf_u32(tc_rbuf *r);
uint64_t tc_rbuf_u64(tc_rbuf *r);
int64_t tc_rbuf_i64(tc_rbuf *r);
double tc_rbuf_f64(tc_rbuf *r);
/* Points *s at the string's bytes inside the buffer (not terminated) and returns its length. */
uint32_t tc_rbuf_str(tc_rbuf *r, const char **s);
/* The string copied into buf (truncated to size - 1); false when it did not fit or r went bad. */
bool tc_rbuf_str_copy(tc_rbuf *r, char *buf, size_t size);
const void *tc_rbuf_bytes(tc_rbuf *r, size_t n);
/* How many items of elem_size bytes could still be read: bounds counts read from a file. */
static inline size_t tc_rbuf_room(const tc_rbuf *r, size_t elem_size) {
    return r->bad || r->pos > r->size ? 0 : (r->size - r->pos) / (elem_size ? elem_size : 1);
}

/* ---- graphs --------------------------------------------------------------------------------- */

/* A new range for the symbol named `name`, applied while a graph is read back. */
typedef struct tc_sym_override {
    const char *name;
    int64_t min, opt, max;
} tc_sym_override;

/* Writes g's symbols, inputs, constants, nodes (op by name, bound arguments by schema name) and
 * outputs into w; constants' bytes go into blob, each at a 64-byte aligned offset. Fails with
 * TC_ERR_UNSUPPORTED on opaque nodes (which no engine contains). */
tc_status tc_graph_write(const tc_graph *g, tc_wbuf *w, tc_wbuf *blob, tc_error *err);

/* Rebuilds a graph from what tc_graph_write wrote. Every node goes through tc_graph_add_node again,
 * so schemas, defaults and shape inference are this build's; the result is checked against the
 * recorded output types. Constants are copied out of blob into one 64-byte aligned allocation that
 * the new graph owns. Symbol ranges are replaced by overrides (n_overrides may be 0); an override
 * that names no symbol fails with TC_ERR_NOT_FOUND. Damaged input fails with TC_ERR_FORMAT, an op
 * this build does not know with TC_ERR_UNKNOWN_OP; never crashes. */
tc_status tc_graph_read(const void *data, size_t size, const void *blob, size_t blob_size,
                        const tc_sym_override *overrides, int n_overrides, tc_graph **out, tc_error *err);

/* A copy of g through tc_graph_write / tc_graph_read, with symbol range overrides. */
tc_status tc_graph_copy(const tc_graph *g, const tc_sym_override *overrides, int n_overrides, tc_graph **out,
                        tc_error *err);

/* ---- the file header, parsed ---------------------------------------------------------------- */

#define TC_ENGINE_MAGIC "TCENGINE"
#define TC_ENGINE_FORMAT_VERSION_CURRENT 1u

/* Section kinds. Readers skip kinds they do not know; a change that old readers must not skip
 * raises the format version instead. */
enum {
    TC_SECTION_TARGET = 1,  /* target, library versions, build settings, source model */
    TC_SECTION_IO = 2,      /* I/O table */
    TC_SECTION_GRAPH = 3,   /* the IR graph (graph_io.c) */
    TC_SECTION_STEPS = 4,   /* backend step records */
    TC_SECTION_WEIGHTS = 5, /* the weight blob, 64-byte aligned */
};

/* Kinds of step records. Backend-private kinds start at TC_RECORD_PRIVATE. */
enum {
    TC_RECORD_CUDNN_PLAN = 1,    /* cuDNN execution plan (JSON) */
    TC_RECORD_CUBLASLT_ALGO = 2, /* cublasLtMatmulAlgo_t bytes */
    TC_RECORD_NVRTC_CUBIN = 3,   /* a compiled fused kernel */
    TC_RECORD_LAUNCH = 4,        /* a launch configuration */
    TC_RECORD_PRIVATE = 0x10000,
};

/* What the engine was built for. Library version strings are "" for CPU engines. */
typedef struct tc_engine_target {
    tc_backend_kind backend;
    char device_name[256]; /* "cpu" or the GPU's name */
    int cc_major, cc_minor, sm_count;
    char cuda_version[32], cudnn_version[32], cublaslt_version[32], nvrtc_version[32], driver_version[32];
} tc_engine_target;

#define TC_ENGINE_MAX_SETTINGS 32

typedef struct tc_engine_info {
    uint32_t format_version;
    uint64_t file_size;
    tc_engine_target target;
    char tensorc_version[64];
    tc_build_options options;
    uint64_t model_hash; /* 0 when unknown */
    char model_name[256];
    char build_command[1024];
    int n_settings;
    char setting_keys[TC_ENGINE_MAX_SETTINGS][64];
    char setting_values[TC_ENGINE_MAX_SETTINGS][256];
    uint32_t n_records;
    uint64_t record_bytes, graph_bytes, weight_bytes;
} tc_engine_info;

/* Checks the envelope of an engine file (magic, format version, size, checksum, section table)
 * and parses its target section. On failure the message says what is wrong and how to rebuild. */
tc_status tc_engine_file_info(const void *data, size_t size, tc_engine_info *info, tc_error *err);

/* ---- backend hooks -------------------------------------------------------------------------- */

/* One backend record: step index (the node index in the engine's graph), kind, bytes. */
typedef struct tc_step_record {
    uint32_t step;
    uint32_t kind;
    const void *data;
    uint64_t size;
} tc_step_record;

typedef struct tc_record_writer tc_record_writer;
struct tc_step_desc;
/* Appends a record (the bytes are copied). */
tc_status tc_record_add(tc_record_writer *w, uint32_t step, uint32_t kind, const void *data, size_t size,
                        tc_error *err);

/* What a backend supplies so that its engines round-trip through files. Every member may be NULL. */
typedef struct tc_engine_backend_hooks {
    /* Fills the target facts of an engine of this backend (device name, compute capability, SM
     * count, library versions). Required for a backend's engines to be saved. */
    tc_status (*describe_target)(const tc_engine_t *engine, tc_engine_target *target, tc_error *err);
    /* Whether this process can run an engine built for `target` on the device of `options`; on
     * failure the message says what differs (the caller adds how to rebuild): TC_ERR_UNSUPPORTED for
     * another GPU architecture, TC_ERR_VERSION for incompatible libraries, TC_ERR_CUDA when no usable
     * GPU is there. Without it engines of the backend cannot be loaded for it. */
    tc_status (*check_target)(const tc_engine_target *target, const tc_build_options *options, tc_error *err);
    /* Writes the engine's per-step records (tactics, plans, cubins). */
    tc_status (*write_backend_records)(const tc_engine_t *engine, tc_record_writer *w, tc_error *err);
    /* Hands a freshly rebuilt engine the records read from its file. */
    tc_status (*read_backend_records)(tc_engine_t *engine, const tc_step_record *records, uint32_t n,
                                      tc_error *err);
    /* Describes step `step` (node index) for `tensorc inspect`: implementation ("cuda:cublaslt"),
     * precision and workspace. Without it: the CPU's description. */
    void (*describe_step)(const tc_engine_t *engine, int step, struct tc_step_desc *desc);
} tc_engine_backend_hooks;

typedef struct tc_step_desc {
    char implementation[64]; /* "cpu:gemm", "cuda:cudnn", ... */
    char precision[16];      /* dtype name of the step's first output */
    uint64_t workspace_bytes;
} tc_step_desc;

/* The description of a step: the backend's hook, else the CPU's own. */
void tc_engine_describe_step(const tc_engine_t *engine, int step, tc_step_desc *desc);
/* The same as `backend` would run it, whatever backend the engine was loaded for (inspect shows a
 * CUDA engine whose graph was loaded on the CPU); "cuda:?" when this build has no CUDA hooks. */
void tc_engine_describe_step_for(const tc_engine_t *engine, tc_backend_kind backend, int step, tc_step_desc *desc);

/* Installs the hooks of a backend (NULL removes them); the struct must outlive its use. Safe to call
 * from any thread. A CUDA build uses the CUDA backend's hooks (src/backend/cuda/engine_file.c) when
 * none are installed. */
void tc_engine_set_backend_hooks(tc_backend_kind backend, const tc_engine_backend_hooks *hooks);

#endif
