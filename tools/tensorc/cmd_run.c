/* `tensorc run ENGINE_OR_MODEL`: loads an engine file (.tce, detected by its magic) or imports a
 * model and builds a CPU or CUDA engine, runs it once on inputs from .npy files (or deterministic
 * random ones; copied to the GPU for CUDA engines), writes every output as .npy and prints a summary
 * of each. */
#define _POSIX_C_SOURCE 200809L
#include "tensorc.h"
#include "cli.h"
#include "core/dtype.h"
#include "import/npy.h"
#include "engine/serialize.h"
#include "ir/graph.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_ITEMS 64

static void usage(FILE *f) {
    fprintf(f,
            "usage: tensorc run ENGINE.tce|MODEL.pt2 [--device cpu|cuda] [--input NAME=FILE.npy ...]\n"
            "                  [--output-dir DIR] [--seed N] [--shape NAME=d0,d1,...] [--threads N]\n\n"
            "Runs an engine file (from `tensorc build`) or a torch.export archive once and writes each output\n"
            "as DIR/<output name>.npy. Engine files are recognized by their magic, whatever their name.\n"
            "Inputs not given with --input are filled with deterministic random values from the seed\n"
            "(floats: normal(0, 1); integers: 0..9; bools: 0/1) at the shape given by --shape, else at the\n"
            "model's shape with symbolic dims at their export-time value. Prints each output's shape, dtype,\n"
            "mean and max |x|. CUDA engines get their inputs copied to the GPU and their outputs copied back.\n\n"
            "  --device cpu|cuda     where to run (default: the engine's own backend; cpu for a model)\n"
            "  --input NAME=FILE     an input from an .npy file (dtype and shape must match the model)\n"
            "  --output-dir DIR      where to write the outputs (default: no files written)\n"
            "  --seed N              seed of the random inputs (default 0)\n"
            "  --shape NAME=D,...    shape of a random input (for symbolic dims)\n"
            "  --threads N           CPU threads (default: one per core)\n\n"
            "Exit status: 0 success, 1 the engine, model or an input could not be used, 2 bad usage.\n");
}

typedef struct {
    const char *name, *value;
} kv;

static bool split_kv(const char *arg, kv *out) {
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1]) return false;
    char *name = malloc((size_t)(eq - arg) + 1);
    if (!name) return false;
    memcpy(name, arg, (size_t)(eq - arg));
    name[eq - arg] = '\0';
    out->name = name;
    out->value = eq + 1;
    return true;
}

static bool parse_i64(const char *s, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) return false;
    *out = v;
    return true;
}

/* splitmix64: a tiny, well-mixed generator so the random inputs are the same on every platform */
static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double next_normal(uint64_t *s) {
    double u1 = ((double)(next_u64(s) >> 11) + 1.0) / 9007199254740993.0;
    double u2 = (double)(next_u64(s) >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static void fill_random(tc_tensor *t, int64_t numel, uint64_t seed) {
    uint64_t s = seed;
    for (int64_t i = 0; i < numel; i++) {
        if (tc_dtype_is_float(t->dtype)) tc_store_f64(t->data, t->dtype, i, next_normal(&s));
        else if (t->dtype == TC_BOOL) tc_store_i64(t->data, t->dtype, i, (int64_t)(next_u64(&s) & 1));
        else tc_store_i64(t->data, t->dtype, i, (int64_t)(next_u64(&s) % 10));
    }
}

static const char *shape_str(const tc_tensor *t, char *buf, size_t size) {
    size_t len = (size_t)snprintf(buf, size, "%s[", tc_dtype_name(t->dtype));
    for (int i = 0; i < t->rank && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%lld", i ? ", " : "", (long long)t->dims[i]);
    if (len < size) snprintf(buf + len, size - len, "]");
    return buf;
}

static int64_t numel_of(const tc_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->dims[i];
    return n;
}

/* A file name from an output name: path separators and odd characters become '_'. */
static void file_name(const char *name, char *buf, size_t size) {
    size_t k = 0;
    for (; *name && k + 5 < size; name++) {
        char ch = *name;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                  ch == '-' || ch == '.';
        buf[k++] = ok ? ch : '_';
    }
    if (k == 0) buf[k++] = '_';
    snprintf(buf + k, size - k, ".npy");
}

/* mkdir -p: creates dir and any missing parents; true when it exists afterwards. */
static bool make_dirs(const char *dir) {
    char buf[4096];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof buf) return false;
    memcpy(buf, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char keep = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return false;
        buf[i] = keep;
    }
    struct stat st;
    return stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

int tc_cli_run(int argc, char **argv) {
    const char *path = NULL, *out_dir = NULL;
    kv inputs[MAX_ITEMS], shapes[MAX_ITEMS];
    int n_inputs = 0, n_shapes = 0, rc = 2;
    int64_t seed = 0, threads = 0;
    int device = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            rc = 0;
            goto out;
        } else if (strcmp(a, "--device") == 0 && has_val) {
            const char *d = argv[++i];
            if (strcmp(d, "cpu") == 0) device = TC_BACKEND_CPU;
            else if (strcmp(d, "cuda") == 0) device = TC_BACKEND_CUDA;
            else {
                fprintf(stderr, "tensorc run: --device wants cpu or cuda, got '%s'\n", d);
                goto out;
            }
        } else if (strcmp(a, "--input") == 0 && has_val) {
            if (n_inputs == MAX_ITEMS || !split_kv(argv[++i], &inputs[n_inputs])) {
                fprintf(stderr, "tensorc run: --input wants NAME=FILE.npy, got '%s'\n", argv[i]);
                goto out;
            }
            n_inputs++;
        } else if (strcmp(a, "--shape") == 0 && has_val) {
            if (n_shapes == MAX_ITEMS || !split_kv(argv[++i], &shapes[n_shapes])) {
                fprintf(stderr, "tensorc run: --shape wants NAME=d0,d1,..., got '%s'\n", argv[i]);
                goto out;
            }
            n_shapes++;
        } else if (strcmp(a, "--output-dir") == 0 && has_val) {
            out_dir = argv[++i];
        } else if (strcmp(a, "--seed") == 0 && has_val) {
            if (!parse_i64(argv[++i], &seed)) {
                fprintf(stderr, "tensorc run: --seed wants an integer, got '%s'\n", argv[i]);
                goto out;
            }
        } else if (strcmp(a, "--threads") == 0 && has_val) {
            if (!parse_i64(argv[++i], &threads) || threads < 0 || threads > 1024) {
                fprintf(stderr, "tensorc run: --threads wants an integer in [0, 1024], got '%s'\n", argv[i]);
                goto out;
            }
        } else if (a[0] == '-') {
            fprintf(stderr, "tensorc run: unknown or incomplete option '%s' (see tensorc run --help)\n", a);
            goto out;
        } else if (!path) {
            path = a;
        } else {
            fprintf(stderr, "tensorc run: more than one model given ('%s' and '%s')\n", path, a);
            goto out;
        }
    }
    if (!path) {
        fprintf(stderr, "tensorc run: no model given\n\n");
        usage(stderr);
        goto out;
    }

    rc = 1;
    const tc_graph *g = NULL;
    tc_engine_t *engine = NULL;
    tc_context_t *ctx = NULL;
    int ng = 0, gpu = -1;
    bool cuda = false;
    tc_tensor *tensors = NULL, *dev_in = NULL; /* dev_in: device copies of the inputs (CUDA engines) */
    void *host_out = NULL; /* CUDA engines: the host copy of the output being summarized */
    if (tc_cli_open("run", path, device, (int)threads, &engine) != 0) goto done;
    g = tc_engine_graph(engine);
    ng = tc_graph_num_inputs(g);
    /* names given must exist: a typo would otherwise silently run on random data */
    for (int k = 0; k < n_inputs + n_shapes; k++) {
        const char *nm = k < n_inputs ? inputs[k].name : shapes[k - n_inputs].name;
        int i;
        for (i = 0; i < ng; i++)
            if (strcmp(tc_value_name(tc_graph_input(g, i)), nm) == 0) break;
        if (i == ng) {
            fprintf(stderr, "tensorc run: the model has no input named '%s'; its inputs are:", nm);
            for (i = 0; i < ng; i++) fprintf(stderr, " %s", tc_value_name(tc_graph_input(g, i)));
            fprintf(stderr, "\n");
            rc = 2;
            goto done;
        }
    }
    cuda = tc_engine_backend(engine) == TC_BACKEND_CUDA;
    gpu = cuda ? tc_cli_engine_device(engine) : -1;
    if (tc_context_create(engine, &ctx) != TC_OK) {
        fprintf(stderr, "tensorc run: %s\n", tc_engine_last_error(engine));
        goto done;
    }
    tensors = calloc((size_t)ng + 1, sizeof *tensors);
    dev_in = calloc((size_t)ng + 1, sizeof *dev_in);
    if (!tensors || !dev_in) {
        fprintf(stderr, "tensorc run: out of memory\n");
        goto done;
    }
    for (int i = 0; i < ng; i++) {
        const tc_value *v = tc_graph_input(g, i);
        const char *file = NULL, *shape = NULL;
        for (int k = 0; k < n_inputs; k++)
            if (strcmp(inputs[k].name, v->name) == 0) file = inputs[k].value;
        for (int k = 0; k < n_shapes; k++)
            if (strcmp(shapes[k].name, v->name) == 0) shape = shapes[k].value;
        tc_tensor *t = &tensors[i];
        char want[512], got[512];
        tc_value_type_string(g, v, want, sizeof want);
        if (file) {
            tc_error e = {0};
            if (tc_npy_read_file(file, t, &e) != TC_OK) {
                fprintf(stderr, "tensorc run: input '%s' from %s: %s\n", v->name, file, e.msg);
                goto done;
            }
            bool ok = t->dtype == v->dtype && t->rank == v->rank;
            for (int d = 0; ok && d < v->rank; d++) ok = TC_DIM_IS_SYM(v->dims[d]) || v->dims[d] == t->dims[d];
            if (!ok) {
                fprintf(stderr, "tensorc run: input '%s' from %s is %s, but the model expects %s\n", v->name, file,
                        shape_str(t, got, sizeof got), want);
                goto done;
            }
            continue;
        }
        t->dtype = v->dtype;
        t->rank = v->rank;
        if (shape) {
            int r = 0;
            const char *p = shape;
            while (*p) {
                char *end;
                errno = 0;
                long long d = strtoll(p, &end, 10);
                if (end == p || errno || d < 0 || r == TC_MAX_RANK || (*end && *end != ',')) {
                    fprintf(stderr, "tensorc run: --shape %s=%s: want non-negative integers separated by commas\n",
                            v->name, shape);
                    rc = 2;
                    goto done;
                }
                t->dims[r++] = d;
                p = *end ? end + 1 : end;
            }
            if (r != v->rank) {
                fprintf(stderr, "tensorc run: --shape %s=%s has rank %d, the model expects %s\n", v->name, shape, r, want);
                rc = 2;
                goto done;
            }
        } else {
            for (int d = 0; d < v->rank; d++) {
                int64_t lo, o, hi;
                tc_graph_dim_range(g, v->dims[d], &lo, &o, &hi);
                t->dims[d] = o;
            }
        }
        int64_t n = numel_of(t);
        if (n > ((int64_t)1 << 31)) {
            fprintf(stderr, "tensorc run: random input '%s' of %s would be too large\n", v->name, shape_str(t, got, sizeof got));
            goto done;
        }
        t->data = calloc((size_t)(n ? n : 1), tc_dtype_size(t->dtype));
        if (!t->data) {
            fprintf(stderr, "tensorc run: out of memory for input '%s'\n", v->name);
            goto done;
        }
        fill_random(t, n, (uint64_t)seed * 1000003u + (uint64_t)i);
        if (n_inputs) fprintf(stderr, "tensorc run: input '%s' not given; using random %s\n", v->name, shape_str(t, got, sizeof got));
    }
    for (int i = 0; i < ng; i++) {
        if (cuda && tc_cli_to_device("run", gpu, &tensors[i], &dev_in[i]) != 0) goto done;
        if (tc_context_set_input(ctx, i, cuda ? &dev_in[i] : &tensors[i]) != TC_OK) {
            fprintf(stderr, "tensorc run: %s\n", tc_context_last_error(ctx));
            goto done;
        }
    }
    if (tc_context_execute(ctx) != TC_OK) {
        fprintf(stderr, "tensorc run: execution failed: %s\n", tc_context_last_error(ctx));
        goto done;
    }
    if (out_dir && !make_dirs(out_dir)) {
        fprintf(stderr, "tensorc run: cannot create output directory '%s': %s\n", out_dir, strerror(errno));
        goto done;
    }
    for (int i = 0; i < tc_engine_num_outputs(engine); i++) {
        tc_tensor o, od;
        const char *name = tc_engine_output_name(engine, i);
        if (tc_context_get_output(ctx, i, cuda ? &od : &o) != TC_OK) {
            fprintf(stderr, "tensorc run: output '%s': %s\n", name, tc_context_last_error(ctx));
            goto done;
        }
        free(host_out); /* the previous output's host copy */
        host_out = NULL;
        if (cuda) {
            if (tc_cli_to_host("run", &od, &o) != 0) goto done;
            host_out = o.data;
        }
        int64_t n = numel_of(&o);
        double sum = 0, amax = 0;
        for (int64_t k = 0; k < n; k++) {
            double x = tc_load_f64(o.data, o.dtype, k);
            sum += x;
            if (fabs(x) > amax || isnan(x)) amax = isnan(x) ? NAN : (isnan(amax) ? amax : fabs(x));
        }
        char s[512];
        printf("output %s: %s mean %.6g max|x| %.6g", name, shape_str(&o, s, sizeof s), n ? sum / (double)n : 0.0, amax);
        if (out_dir) {
            char fn[300], full[4096];
            file_name(name, fn, sizeof fn);
            snprintf(full, sizeof full, "%s/%s", out_dir, fn);
            tc_error e = {0};
            if (tc_npy_write_file(full, &o, &e) != TC_OK) {
                printf("\n");
                fprintf(stderr, "tensorc run: cannot write output '%s' to %s: %s\n", name, full, e.msg);
                goto done;
            }
            printf(" -> %s", full);
        }
        printf("\n");
    }
    rc = 0;
done:
    tc_context_free(ctx); /* before the device inputs it was bound to */
    ctx = NULL;
    free(host_out);
    if (tensors)
        for (int i = 0; i < ng; i++) free(tensors[i].data);
    if (dev_in)
        for (int i = 0; i < ng; i++) tc_device_free(dev_in[i].data);
    free(tensors);
    free(dev_in);
    tc_context_free(ctx);
    tc_engine_free(engine);
out:
    for (int k = 0; k < n_inputs; k++) free((void *)inputs[k].name);
    for (int k = 0; k < n_shapes; k++) free((void *)shapes[k].name);
    return rc;
}
