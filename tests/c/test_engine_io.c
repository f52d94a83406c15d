/* Engine files: serialize -> deserialize round trips with bit-identical outputs, agreement with
 * PyTorch's output for examples/model.pt2, every malformed-file case (bad magic, every truncation,
 * corrupted bytes, newer version, CUDA engine without CUDA, unknown op, damaged sections with a
 * valid checksum), symbol range overrides, the hash against values from an independent Python
 * implementation, and one engine shared by 4 threads x 50 executions. */
#define _POSIX_C_SOURCE 200809L
#include "test.h"
#include "engine/serialize.h"
#include "engine/timing_cache.h"
#include "import/npy.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MODEL "examples/model.pt2"
#define INPUT "examples/input.npy"
#define EXPECTED "examples/expected_output.npy"

static tc_tensor g_input;

/* Runs e once on g_input; returns a malloc'ed copy of output 0 (its byte count in *n). */
static void *run_once(tc_engine_t *e, size_t *n, tc_tensor *shape) {
    tc_context_t *c = NULL;
    void *copy = NULL;
    if (tc_context_create(e, &c) != TC_OK) return NULL;
    tc_tensor o;
    if (tc_context_set_input(c, 0, &g_input) == TC_OK && tc_context_execute(c) == TC_OK &&
        tc_context_get_output(c, 0, &o) == TC_OK) {
        size_t bytes = tc_dtype_size(o.dtype);
        for (int d = 0; d < o.rank; d++) bytes *= (size_t)o.dims[d];
        copy = malloc(bytes ? bytes : 1);
        if (copy) memcpy(copy, o.data, bytes);
        *n = bytes;
        if (shape) *shape = o;
    } else {
        fprintf(stderr, "run failed: %s\n", tc_context_last_error(c));
    }
    tc_context_free(c);
    return copy;
}

static void store_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint64_t load_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static uint32_t load_u32(const unsigned char *p) { return (uint32_t)load_u64((const unsigned char[8]){p[0], p[1], p[2], p[3]}); }

static void fix_checksum(unsigned char *p, size_t n) { store_u64(p + n - 8, tc_hash64(p, n - 8, 0)); }

/* Offset and size of section `kind` in an engine file. */
static bool find_section(const unsigned char *p, uint32_t kind, size_t *off, size_t *size) {
    uint32_t n = load_u32(p + 24);
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *q = p + 32 + 24 * i;
        if (load_u32(q) == kind) {
            *off = (size_t)load_u64(q + 8);
            *size = (size_t)load_u64(q + 16);
            return true;
        }
    }
    return false;
}

static tc_status load_bytes(const unsigned char *p, size_t n, char *err, size_t err_size) {
    tc_engine_t *e = (tc_engine_t *)0x1;
    tc_status st = tc_engine_deserialize(p, n, NULL, &e, err, err_size);
    if (st == TC_OK) tc_engine_free(e);
    else if (e != NULL) {
        fprintf(stderr, "failed deserialize left *out set\n");
        tc_test_failed++;
    }
    return st;
}

static void test_hash_matches_independent_values(void) {
    unsigned char seq[100];
    for (int i = 0; i < 100; i++) seq[i] = (unsigned char)i;
    /* from a separate Python implementation of the hash as docs/engine-format.md specifies it */
    CHECK(tc_hash64("", 0, 0) == 0x9781752985b07701ull);
    CHECK(tc_hash64("a", 1, 0) == 0x432d03cc73385d98ull);
    CHECK(tc_hash64("tensorc", 7, 0) == 0x3c02ce2d5a93203eull);
    CHECK(tc_hash64(seq, 100, 0) == 0x5a8e517bae0175aeull);
    CHECK(tc_hash64("tensorc", 7, 42) == 0x3fec04cf2e15da1cull);
}

typedef struct shared_run {
    tc_engine_t *e;
    const void *want;
    size_t n;
    int mismatches, failures;
} shared_run;

static void *thread_main(void *arg) {
    shared_run *s = arg;
    tc_context_t *c = NULL;
    if (tc_context_create(s->e, &c) != TC_OK) {
        s->failures++;
        return NULL;
    }
    for (int it = 0; it < 50; it++) {
        tc_tensor o;
        if (tc_context_set_input(c, 0, &g_input) != TC_OK || tc_context_execute(c) != TC_OK ||
            tc_context_get_output(c, 0, &o) != TC_OK) {
            s->failures++;
            continue;
        }
        if (memcmp(o.data, s->want, s->n) != 0) s->mismatches++;
    }
    tc_context_free(c);
    return NULL;
}

/* Step records through a file: a backend's hooks write records of several sizes (so that padding
 * is exercised) and get exactly them back when the file is loaded. Uses CPU hooks installed for the
 * test; the CPU backend itself writes none. */
static const unsigned char rec_bytes[64] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17};
static const size_t rec_sizes[4] = {1, 13, 64, 0};
static int rec_seen;

static tc_status test_write_records(const tc_engine_t *e, tc_record_writer *w, tc_error *err) {
    uint32_t last = (uint32_t)tc_engine_graph(e)->nodes.n - 1;
    const uint32_t steps[4] = {0, last, 1, last};
    for (int i = 0; i < 4; i++) TC_TRY(tc_record_add(w, steps[i], TC_RECORD_PRIVATE + (uint32_t)i, rec_bytes, rec_sizes[i], err));
    /* a step past the engine's is refused */
    tc_error why = {0};
    CHECK(tc_record_add(w, last + 1, TC_RECORD_PRIVATE, rec_bytes, 1, &why) == TC_ERR_INVALID_ARGUMENT);
    return TC_OK;
}

static tc_status test_read_records(tc_engine_t *e, const tc_step_record *r, uint32_t n, tc_error *err) {
    (void)err;
    uint32_t last = (uint32_t)tc_engine_graph(e)->nodes.n - 1;
    const uint32_t steps[4] = {0, last, 1, last};
    CHECK(n == 4);
    for (uint32_t i = 0; i < n && i < 4; i++) {
        CHECK(r[i].step == steps[i] && r[i].kind == TC_RECORD_PRIVATE + i && r[i].size == rec_sizes[i]);
        CHECK(r[i].size == 0 || memcmp(r[i].data, rec_bytes, rec_sizes[i]) == 0);
    }
    rec_seen++;
    return TC_OK;
}

static void test_step_records_round_trip(tc_engine_t *built) {
    static const tc_engine_backend_hooks hooks = {.write_backend_records = test_write_records,
                                                  .read_backend_records = test_read_records};
    tc_engine_set_backend_hooks(TC_BACKEND_CPU, &hooks);
    void *data = NULL;
    size_t size = 0;
    char err[1024];
    CHECK(tc_engine_serialize(built, &data, &size) == TC_OK);
    tc_error e = {0};
    tc_engine_info hi;
    CHECK_MSG(data && tc_engine_file_info(data, size, &hi, &e) == TC_OK, "%s", e.msg);
    CHECK(hi.n_records == 4);
    tc_engine_t *loaded = NULL;
    rec_seen = 0;
    CHECK_MSG(tc_engine_deserialize(data, size, NULL, &loaded, err, sizeof err) == TC_OK, "%s", err);
    CHECK(rec_seen == 1);
    tc_engine_free(loaded);
    /* without hooks that read them, the records are refused with the rebuild command */
    tc_engine_set_backend_hooks(TC_BACKEND_CPU, NULL);
    CHECK(tc_engine_deserialize(data, size, NULL, &loaded, err, sizeof err) == TC_ERR_UNSUPPORTED && !loaded &&
          strstr(err, "4 CPU step records") && strstr(err, "rebuild"));
    tc_free_buffer(data);
}

/* Timing caches: the seed written by tests/fuzz/gen_timing_cache_seeds.py (an encoder independent
 * of ours) parses to what it holds; encode -> parse round trips; damage of every kind is refused;
 * a CPU engine's import and export do nothing. */
static void test_timing_cache_format(tc_engine_t *cpu_engine) {
    tc_error e = {0};
    unsigned char *data = NULL;
    size_t size = 0;
    CHECK_MSG(tc_read_file("tests/fuzz/corpus/timing_cache/two_plans.tcc", &data, &size, &e) == TC_OK, "%s", e.msg);
    if (!data) return;
    tc_timing_cache_target t;
    tc_step_record *r = NULL;
    uint32_t n = 0;
    CHECK_MSG(tc_timing_cache_parse(data, size, &t, &r, &n, &e) == TC_OK, "%s", e.msg);
    CHECK(n == 2 && strcmp(t.device_name, "NVIDIA H100 80GB HBM3") == 0 && t.cc_major == 9 && t.cc_minor == 0 &&
          strcmp(t.cudnn_version, "9.19.0") == 0 && strcmp(t.cublaslt_version, "13.1.0") == 0);
    if (n == 2) {
        CHECK(r[0].kind == TC_RECORD_CUDNN_PLAN && r[1].kind == TC_RECORD_CUBLASLT_ALGO);
        uint32_t kl, dl;
        memcpy(&kl, r[1].data, 4);
        memcpy(&dl, (const char *)r[1].data + 4, 4);
        CHECK(kl == 23 * 8 && r[1].size == 8 + kl + dl + 64 &&
              memcmp((const char *)r[1].data + 8 + kl, "cublaslt algo 21", 16) == 0);
    }
    /* our encoder writes the same bytes */
    tc_wbuf w = {0};
    CHECK(r && tc_timing_cache_encode(&t, r, n, &w, &e) == TC_OK && w.size == size && memcmp(w.data, data, size) == 0);
    tc_wbuf_free(&w);
    free(r);
    tc_timing_cache_target other = t;
    CHECK(tc_timing_cache_matches(&t, &other));
    snprintf(other.cudnn_version, sizeof other.cudnn_version, "9.20.0");
    CHECK(!tc_timing_cache_matches(&t, &other));
    /* damage: every truncation, a flipped byte, bad magic; a newer version with a valid checksum */
    for (size_t cut = 0; cut < size; cut += 7) {
        CHECK(tc_timing_cache_parse(data, cut, &t, &r, &n, &e) == TC_ERR_FORMAT && !r && !n);
    }
    data[40] ^= 1;
    CHECK(tc_timing_cache_parse(data, size, &t, &r, &n, &e) == TC_ERR_FORMAT && strstr(e.msg, "checksum"));
    data[40] ^= 1;
    unsigned char *nv = NULL;
    size_t nvs = 0;
    CHECK(tc_read_file("tests/fuzz/corpus/timing_cache/newer_version.tcc", &nv, &nvs, &e) == TC_OK);
    CHECK(nv && tc_timing_cache_parse(nv, nvs, &t, &r, &n, &e) == TC_ERR_VERSION && strstr(e.msg, "version 2"));
    free(nv);
    /* a record size past the end, with the checksum made valid again */
    unsigned char *bad = malloc(size);
    if (bad) {
        memcpy(bad, data, size);
        size_t first = 8 + 8 + 4 + 21 + 8 + 4 + 6 + 4 + 6; /* magic .. cuBLASLt version */
        first = (first + 7) / 8 * 8 + 8;                     /* padding, count, reserved */
        uint64_t huge = (uint64_t)1 << 40;
        memcpy(bad + first + 8, &huge, 8);
        uint64_t h = tc_hash64(bad, size - 8, 0);
        memcpy(bad + size - 8, &h, 8);
        CHECK(tc_timing_cache_parse(bad, size, &t, &r, &n, &e) == TC_ERR_FORMAT && strstr(e.msg, "record 0"));
        free(bad);
    }
    free(data);
    /* CPU engines: nothing to import or export, and no file is written */
    int k = -1;
    char msg[512];
    remove("/tmp/tc_test_cpu.tcc");
    CHECK(tc_engine_import_timing_cache(cpu_engine, "/nonexistent.tcc", &k, msg, sizeof msg) == TC_OK && k == 0);
    CHECK(tc_engine_export_timing_cache(cpu_engine, "/tmp/tc_test_cpu.tcc", &k, msg, sizeof msg) == TC_OK && k == 0);
    FILE *f = fopen("/tmp/tc_test_cpu.tcc", "rb");
    CHECK(f == NULL);
    if (f) fclose(f);
    CHECK(tc_engine_import_timing_cache(NULL, "x", &k, msg, sizeof msg) == TC_ERR_INVALID_ARGUMENT);
}

int main(void) {
    tc_error e = {0};
    char err[2048];
    test_hash_matches_independent_values();

    tc_tensor expected = {0};
    CHECK_MSG(tc_npy_read_file(INPUT, &g_input, &e) == TC_OK, "%s", e.msg);
    CHECK_MSG(tc_npy_read_file(EXPECTED, &expected, &e) == TC_OK, "%s", e.msg);
    tc_graph_t *g = NULL;
    CHECK_MSG(tc_import_pt2(MODEL, &g, err, sizeof err) == TC_OK, "%s", err);
    if (!g || !g_input.data || !expected.data) TEST_MAIN_END();
    tc_engine_t *built = NULL;
    CHECK_MSG(tc_engine_build(g, NULL, &built, err, sizeof err) == TC_OK, "%s", err);
    tc_graph_free(g);

    /* the engine built from the model agrees with PyTorch */
    size_t n_ref = 0;
    tc_tensor oshape;
    float *ref = run_once(built, &n_ref, &oshape);
    CHECK(ref && oshape.rank == expected.rank && n_ref == 2 * 10 * sizeof(float));
    if (ref) {
        double maxdiff = 0, scale = 0;
        for (size_t i = 0; i < n_ref / sizeof(float); i++) {
            double w = ((float *)expected.data)[i];
            maxdiff = fmax(maxdiff, fabs(ref[i] - w));
            scale = fmax(scale, fabs(w));
        }
        CHECK_MSG(scale > 0 && maxdiff / scale <= 1e-4, "max rel diff %g", maxdiff / scale);
    }

    test_step_records_round_trip(built);
    test_timing_cache_format(built);

    /* serialize -> deserialize: bit-identical outputs; serializing is deterministic */
    void *data = NULL, *data2 = NULL;
    size_t size = 0, size2 = 0;
    CHECK(tc_engine_serialize(built, &data, &size) == TC_OK && size > 1000);
    CHECK(tc_engine_serialize(built, &data2, &size2) == TC_OK && size2 == size && memcmp(data, data2, size) == 0);
    tc_free_buffer(data2);
    CHECK(size % 8 == 0 && memcmp(data, "TCENGINE", 8) == 0);
    size_t woff = 0, wsize = 0;
    CHECK(find_section(data, TC_SECTION_WEIGHTS, &woff, &wsize) && woff % 64 == 0 && wsize >= 96936 /* the example's weights after batch-norm folding */);
    tc_engine_t *loaded = NULL;
    CHECK_MSG(tc_engine_deserialize(data, size, NULL, &loaded, err, sizeof err) == TC_OK, "%s", err);
    if (loaded) {
        size_t n2 = 0;
        void *out2 = run_once(loaded, &n2, NULL);
        CHECK(out2 && n2 == n_ref && memcmp(out2, ref, n_ref) == 0);
        free(out2);
        CHECK(tc_engine_num_inputs(loaded) == 1 && strcmp(tc_engine_input_name(loaded, 0), "x") == 0);
        CHECK(tc_engine_backend(loaded) == TC_BACKEND_CPU);
    }

    /* a file round trip, and the header facts */
    const char *path = "/tmp/tc_test_engine_io.tce";
    const char *keys[] = {"precision"}, *vals[] = {"fp32"};
    tc_engine_save_info info = {MODEL, "tensorc build " MODEL " -o x.tce", 1, keys, vals};
    CHECK_MSG(tc_engine_save_ex(built, &info, path, err, sizeof err) == TC_OK, "%s", err);
    tc_engine_t *from_file = NULL;
    CHECK_MSG(tc_engine_load(path, NULL, &from_file, err, sizeof err) == TC_OK, "%s", err);
    if (from_file) {
        size_t n3 = 0;
        void *out3 = run_once(from_file, &n3, NULL);
        CHECK(out3 && n3 == n_ref && memcmp(out3, ref, n_ref) == 0);
        free(out3);
        tc_engine_free(from_file);
    }
    {
        FILE *f = fopen(path, "rb");
        static unsigned char fbuf[1 << 20];
        size_t fn = f ? fread(fbuf, 1, sizeof fbuf, f) : 0;
        if (f) fclose(f);
        FILE *m = fopen(MODEL, "rb");
        static unsigned char mbuf[1 << 20];
        size_t mn = m ? fread(mbuf, 1, sizeof mbuf, m) : 0;
        if (m) fclose(m);
        tc_engine_info hi;
        CHECK_MSG(tc_engine_file_info(fbuf, fn, &hi, &e) == TC_OK, "%s", e.msg);
        CHECK(hi.model_hash == tc_hash64(mbuf, mn, 0) && strcmp(hi.model_name, "model.pt2") == 0);
        CHECK(hi.target.backend == TC_BACKEND_CPU && strcmp(hi.target.device_name, "cpu") == 0);
        CHECK(hi.n_settings == 1 && strcmp(hi.setting_values[0], "fp32") == 0 && hi.n_records == 0);
    }
    CHECK(tc_engine_load("/nonexistent/dir/x.tce", NULL, &from_file, err, sizeof err) == TC_ERR_IO && !from_file &&
          strstr(err, "/nonexistent/dir/x.tce"));
    CHECK(tc_engine_save(built, "/nonexistent/dir/x.tce") == TC_ERR_IO);

    /* malformed files */
    unsigned char *buf = malloc(size + 64);
    memcpy(buf, data, size);
    CHECK(load_bytes(buf, 0, err, sizeof err) == TC_ERR_FORMAT && strstr(err, "not a tensorc engine"));
    memcpy(buf, "TCENGINX", 8);
    CHECK(load_bytes(buf, size, err, sizeof err) == TC_ERR_FORMAT && strstr(err, "magic") && strstr(err, "tensorc build"));
    memcpy(buf, data, size);
    int truncated_ok = 0;
    for (size_t n = 0; n < size; n++) truncated_ok += load_bytes(buf, n, err, sizeof err) != TC_OK && err[0];
    CHECK_MSG(truncated_ok == (int)size, "%d of %zu truncations rejected with a message", truncated_ok, size);
    CHECK(load_bytes(buf, size - 1, err, sizeof err) == TC_ERR_FORMAT && strstr(err, "truncated"));
    memset(buf + size, 0, 8);
    CHECK(load_bytes(buf, size + 8, err, sizeof err) == TC_ERR_FORMAT && strstr(err, "after its end"));
    int corrupt_ok = 0, corrupt_n = 0;
    for (size_t pos = 24; pos < size; pos += 37, corrupt_n++) {
        buf[pos] ^= 0x5a;
        corrupt_ok += load_bytes(buf, size, err, sizeof err) == TC_ERR_FORMAT && strstr(err, "corrupted") != NULL;
        buf[pos] ^= 0x5a;
    }
    CHECK_MSG(corrupt_ok == corrupt_n, "%d of %d corruptions detected by the checksum", corrupt_ok, corrupt_n);
    buf[8] = 2; /* format version 2 */
    CHECK(load_bytes(buf, size, err, sizeof err) == TC_ERR_VERSION && strstr(err, "newer") && strstr(err, "rebuild"));
    buf[8] = 1;
    CHECK(load_bytes(buf, size, err, sizeof err) == TC_OK);

    /* a CUDA engine: target backend 1 (CUDA) for a GPU of compute capability 1.0 */
    size_t toff, tsize;
    CHECK(find_section(buf, TC_SECTION_TARGET, &toff, &tsize));
    {
        unsigned char *cuda = malloc(size);
        memcpy(cuda, buf, size);
        cuda[toff] = 1; /* target backend */
        uint32_t name_len = load_u32(cuda + toff + 4);
        cuda[toff + 8 + name_len] = 1; /* cc major */
        /* options.backend follows the 5 version strings and the tensorc version string */
        size_t p = toff + 8 + name_len + 12;
        for (int s = 0; s < 6; s++) p += 4 + load_u32(cuda + p);
        cuda[p] = 1;
        fix_checksum(cuda, size);
        tc_status st = load_bytes(cuda, size, err, sizeof err);
        if (!tc_has_cuda())
            CHECK_MSG(st == TC_ERR_UNSUPPORTED && strstr(err, "no CUDA backend") && strstr(err, "--device cpu"), "%s", err);
        else
            CHECK_MSG(st != TC_OK && err[0], "%s", err); /* no GPU, or not compute capability 1.0 */
        /* the same file runs on the CPU when asked to */
        tc_build_options cpu;
        tc_build_options_init(&cpu);
        tc_engine_t *ce = NULL;
        CHECK_MSG(tc_engine_deserialize(cuda, size, &cpu, &ce, err, sizeof err) == TC_OK, "%s", err);
        tc_engine_free(ce);
        free(cuda);
    }

    /* an op this build does not know: the first "relu" op name in the graph section becomes "relx" */
    size_t goff, gsize;
    CHECK(find_section(buf, TC_SECTION_GRAPH, &goff, &gsize));
    {
        unsigned char *bad = malloc(size);
        memcpy(bad, buf, size);
        const unsigned char pat[] = {4, 0, 0, 0, 'r', 'e', 'l', 'u'};
        size_t at = 0;
        for (size_t i = goff; i + sizeof pat <= goff + gsize && !at; i++)
            if (memcmp(bad + i, pat, sizeof pat) == 0) at = i;
        CHECK(at > 0);
        if (at) {
            bad[at + 7] = 'x';
            fix_checksum(bad, size);
            CHECK_MSG(load_bytes(bad, size, err, sizeof err) == TC_ERR_UNKNOWN_OP && strstr(err, "relx") &&
                          strstr(err, "rebuild"),
                      "%s", err);
        }
        free(bad);
    }

    /* damaged sections behind a valid checksum: never a crash, always a message */
    uint64_t rng = 12345;
    int deep = 0, deep_ok = 0;
    unsigned char *mut = malloc(size);
    for (int it = 0; it < 3000; it++) {
        memcpy(mut, buf, size);
        int flips = 1 + (int)(it % 4);
        for (int k = 0; k < flips; k++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            /* mostly in the target, I/O, graph and step sections; weights change values, not structure */
            size_t span = woff - toff;
            size_t pos = toff + (size_t)((rng >> 20) % span);
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            mut[pos] = (it & 1) ? (unsigned char)(rng >> 40) : mut[pos] ^ (unsigned char)(1u << ((rng >> 33) % 8));
        }
        fix_checksum(mut, size);
        tc_status st = load_bytes(mut, size, err, sizeof err);
        deep++;
        deep_ok += st == TC_OK || err[0] != '\0';
    }
    free(mut);
    CHECK_MSG(deep_ok == deep, "%d of %d damaged files gave a status with a message", deep_ok, deep);

    /* symbol range overrides, as `tensorc build --shape` applies them */
    {
        const tc_graph *lg = tc_engine_graph(loaded);
        tc_sym_override ov = {"s77", 1, 4, 8};
        tc_graph *g2 = NULL;
        CHECK_MSG(tc_graph_copy(lg, &ov, 1, &g2, &e) == TC_OK, "%s", e.msg);
        if (g2) {
            int64_t lo, o, hi;
            CHECK(tc_graph_dim_range(g2, ((tc_value *)g2->inputs.items[0])->dims[0], &lo, &o, &hi) == TC_OK && lo == 1 &&
                  o == 4 && hi == 8);
            tc_graph_free(g2);
        }
        tc_sym_override nope = {"batch_size", 1, 1, 1};
        CHECK(tc_graph_copy(lg, &nope, 1, &g2, &e) == TC_ERR_NOT_FOUND && !g2 && strstr(e.msg, "s77"));
        tc_sym_override bad_range = {"s77", 4, 2, 8};
        CHECK(tc_graph_copy(lg, &bad_range, 1, &g2, &e) != TC_OK && !g2);
    }

    /* one loaded engine, 4 threads x 50 executions, each with its own context */
    if (loaded && ref) {
        pthread_t th[4];
        shared_run runs[4];
        for (int i = 0; i < 4; i++) {
            runs[i] = (shared_run){loaded, ref, n_ref, 0, 0};
            pthread_create(&th[i], NULL, thread_main, &runs[i]);
        }
        int mism = 0, fails = 0;
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            mism += runs[i].mismatches;
            fails += runs[i].failures;
        }
        CHECK_MSG(fails == 0 && mism == 0, "%d failures, %d outputs differ from the single-threaded run", fails, mism);
    }

    free(buf);
    free(ref);
    tc_free_buffer(data);
    tc_engine_free(loaded);
    tc_engine_free(built);
    free(g_input.data);
    free(expected.data);
    remove(path);
    TEST_MAIN_END();
}
