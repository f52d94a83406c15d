/* `tensorc build MODEL.pt2 -o MODEL.tce`: imports a model, applies symbolic-size overrides, builds an
 * engine for the CPU or CUDA and writes it as a .tce file. Also tc_cli_open, which the run, bench
 * and inspect commands use to open an engine file or a model (detected by the engine magic). */
#define _POSIX_C_SOURCE 200809L
#include "tensorc.h"
#include "cli.h"
#include "core/parallel.h"
#include "engine/serialize.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_SHAPES 32

static void usage(FILE *f) {
    fprintf(f,
            "usage: tensorc build MODEL.pt2 -o MODEL.tce [--device cuda|cpu] [--fp32|--fp16|--bf16] [--no-tf32]\n"
            "                    [--shape NAME=MIN:OPT:MAX ...] [--min-block-size N] [--workspace MiB]\n"
            "                    [--no-autotune] [--timing-cache FILE] [--threads N] [--verbose]\n\n"
            "Builds an engine from a torch.export archive and writes it as an engine file (.tce) that\n"
            "`tensorc run`, `tensorc bench`, `tensorc inspect` and the C runtime (tc_engine_load) load\n"
            "without the model.\n\n"
            "  -o, --output FILE       the engine file to write (required)\n"
            "  --device cpu|cuda       the backend to build for (default: cuda when this build has the CUDA\n"
            "                          backend and a GPU is visible, else cpu)\n"
            "  --fp32                  keep f32 (default; TF32 allowed on CUDA unless --no-tf32)\n"
            "  --fp16, --bf16          CUDA: lower f32 parts of the graph to f16 / bf16 where it is safe\n"
            "  --no-tf32               CUDA: keep f32 matrix products and convolutions in full f32\n"
            "  --shape NAME=MIN:OPT:MAX  the range of a symbolic size: NAME is the symbol (as `tensorc check`\n"
            "                          prints it, e.g. s77) or an input with one symbolic dim (e.g. x); repeatable\n"
            "  --min-block-size N      smallest accelerated partition (recorded; default 1)\n"
            "  --workspace MiB         CUDA: cap on library workspace (default: the backend's choice)\n"
            "  --no-autotune           CUDA: take the libraries' first choice for each cuDNN plan and cuBLASLt\n"
            "                          algorithm instead of timing up to 8 candidates on the GPU (faster build;\n"
            "                          TENSORC_AUTOTUNE=N sets the candidate count). Either way the file stores\n"
            "                          the choices, so every process that loads it runs the same plans\n"
            "  --timing-cache FILE     CUDA: reuse the plan choices in FILE (made on the same GPU model with the\n"
            "                          same cuDNN and cuBLASLt) and write them back with this build's added; a\n"
            "                          missing, damaged or foreign cache is noted and replaced\n"
            "  --threads N             CPU threads the engine uses (default 0: one per core)\n"
            "  --verbose               print each build stage and the graph\n\n"
            "Progress lines go to stderr on a terminal (always with --verbose).\n"
            "Exit status: 0 success, 1 the model cannot be built or the file cannot be written, 2 bad usage.\n");
}

/* ---- shared by run, bench, inspect ---------------------------------------------------------- */

bool tc_cli_is_engine_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    char magic[8];
    bool yes = fread(magic, 1, 8, f) == 8 && memcmp(magic, TC_ENGINE_MAGIC, 8) == 0;
    fclose(f);
    return yes;
}

int tc_cli_open(const char *cmd, const char *path, int device, int threads, tc_engine_t **engine) {
    *engine = NULL;
    char err[2048];
    if (threads > 0) tc_parallel_set_threads(threads);
    size_t plen = strlen(path);
    bool tce_name = plen > 4 && strcmp(path + plen - 4, ".tce") == 0;
    if (tc_cli_is_engine_file(path) || tce_name) {
        tc_build_options over, *po = NULL;
        if (device >= 0 || threads > 0) {
            /* start from the options stored in the file, change only what was asked for */
            FILE *f = fopen(path, "rb");
            void *buf = NULL;
            size_t n = 0;
            if (f) {
                fseek(f, 0, SEEK_END);
                long len = ftell(f);
                fseek(f, 0, SEEK_SET);
                buf = len > 0 ? malloc((size_t)len) : NULL;
                if (buf) n = fread(buf, 1, (size_t)len, f);
                fclose(f);
            }
            tc_engine_info info;
            tc_error e = {0};
            if (buf && tc_engine_file_info(buf, n, &info, &e) == TC_OK) {
                over = info.options;
                if (device >= 0) over.backend = (tc_backend_kind)device;
                if (threads > 0) over.num_threads = threads;
                po = &over;
            }
            free(buf);
        }
        tc_status st = tc_engine_load(path, po, engine, err, sizeof err);
        if (st != TC_OK) {
            fprintf(stderr, "tensorc %s: cannot load the engine %s\n", cmd, err);
            /* the library's message speaks of options; say it the command line's way */
            if (device < 0 && (st == TC_ERR_UNSUPPORTED || st == TC_ERR_CUDA || st == TC_ERR_VERSION ||
                               st == TC_ERR_INVALID_ARGUMENT) && strstr(err, "CUDA"))
                fprintf(stderr, "tensorc %s: to run its graph on the CPU instead: tensorc %s %s --device cpu\n", cmd, cmd,
                        path);
            return 1;
        }
        return 0;
    }
    tc_graph_t *g = NULL;
    if (tc_import_pt2(path, &g, err, sizeof err) != TC_OK) {
        fprintf(stderr, "tensorc %s: cannot import '%s': %s\n", cmd, path, err);
        return 1;
    }
    tc_build_options opt;
    tc_build_options_init(&opt);
    opt.num_threads = threads;
    if (device >= 0) opt.backend = (tc_backend_kind)device;
    tc_status st = tc_engine_build(g, &opt, engine, err, sizeof err);
    tc_graph_free(g);
    if (st != TC_OK) {
        fprintf(stderr, "tensorc %s: cannot build an engine for '%s': %s\n", cmd, path, err);
        if (st == TC_ERR_UNSUPPORTED && strstr(err, "cannot run on the"))
            fprintf(stderr, "(`tensorc check %s` lists unsupported nodes)\n", path);
        return 1;
    }
    return 0;
}

int tc_cli_engine_device(const tc_engine_t *engine) {
    const tc_build_options *o = tc_engine_options(engine);
    return o ? o->device : 0;
}

size_t tc_cli_tensor_bytes(const tc_tensor *t) {
    size_t n = tc_dtype_size(t->dtype);
    for (int d = 0; d < t->rank; d++) n *= (size_t)(t->dims[d] > 0 ? t->dims[d] : 0);
    return n;
}

int tc_cli_to_device(const char *cmd, int device, const tc_tensor *host, tc_tensor *dev) {
    *dev = *host;
    dev->data = NULL;
    size_t n = tc_cli_tensor_bytes(host);
    if (tc_device_alloc(device, n, &dev->data) != TC_OK) {
        fprintf(stderr, "tensorc %s: %s\n", cmd, tc_device_last_error());
        return 1;
    }
    if (n && tc_device_copy(dev->data, host->data, n, TC_COPY_HOST_TO_DEVICE, NULL) != TC_OK) {
        fprintf(stderr, "tensorc %s: copying an input to the GPU failed: %s\n", cmd, tc_device_last_error());
        tc_device_free(dev->data);
        dev->data = NULL;
        return 1;
    }
    return 0;
}

int tc_cli_to_host(const char *cmd, const tc_tensor *dev, tc_tensor *host) {
    *host = *dev;
    size_t n = tc_cli_tensor_bytes(dev);
    host->data = malloc(n ? n : 1);
    if (!host->data) {
        fprintf(stderr, "tensorc %s: out of memory for %zu bytes of output\n", cmd, n);
        return 1;
    }
    if (n && tc_device_copy(host->data, dev->data, n, TC_COPY_DEVICE_TO_HOST, NULL) != TC_OK) {
        fprintf(stderr, "tensorc %s: copying an output from the GPU failed: %s\n", cmd, tc_device_last_error());
        free(host->data);
        host->data = NULL;
        return 1;
    }
    return 0;
}

void tc_cli_gpu_name(int device, char *buf, size_t size) {
    tc_device_info di;
    if (tc_device_get_info(device, &di) == TC_OK)
        snprintf(buf, size, "cuda:%d %s (compute capability %d.%d, %d SMs)", device, di.name, di.cc_major, di.cc_minor,
                 di.sm_count);
    else snprintf(buf, size, "cuda:%d (unknown: %s)", device, tc_device_last_error());
}

bool tc_cli_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

/* ---- build ---------------------------------------------------------------------------------- */

typedef struct progress {
    bool on;
    int stage, stages;
    struct timespec t0;
} progress;

static double seconds_since(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

static void step(progress *p, const char *fmt, ...) {
    if (!p->on) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%d/%d %6.2fs] ", ++p->stage, p->stages, seconds_since(&p->t0));
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

/* NAME=MIN:OPT:MAX */
static bool parse_shape(const char *arg, char *name, size_t name_size, int64_t v[3]) {
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || (size_t)(eq - arg) >= name_size) return false;
    memcpy(name, arg, (size_t)(eq - arg));
    name[eq - arg] = '\0';
    const char *p = eq + 1;
    for (int i = 0; i < 3; i++) {
        char *end;
        errno = 0;
        if (*p < '0' || *p > '9') return false;
        long long x = strtoll(p, &end, 10);
        if (errno || end == p || (i < 2 && *end != ':') || (i == 2 && *end)) return false;
        v[i] = x;
        p = end + 1;
    }
    return v[0] <= v[1] && v[1] <= v[2];
}

/* The symbol a --shape NAME means: a symbol name, or an input whose dims hold exactly one symbol. */
static const char *resolve_symbol(const tc_graph *g, const char *name, char *why, size_t why_size) {
    if (tc_sym_find(&g->syms, name) >= 0) return name;
    for (int i = 0; i < g->inputs.n; i++) {
        const tc_value *v = g->inputs.items[i];
        if (strcmp(v->name, name) != 0) continue;
        int found = -1, count = 0;
        for (int d = 0; d < v->rank; d++) {
            int s = tc_sym_as_symbol(&g->syms, v->dims[d]);
            if (s >= 0 && s != found) found = s, count++;
        }
        if (count == 1) return ((const tc_sym_atom *)g->syms.atoms.items[found])->name;
        snprintf(why, why_size, "input '%.100s' has %d symbolic dims; name the symbol instead (see `tensorc check`)", name,
                 count);
        return NULL;
    }
    size_t len = 0;
    len += (size_t)snprintf(why, why_size, "the model has no symbolic size or input named '%s' (symbols:", name);
    for (int i = 0; i < g->syms.atoms.n && len < why_size; i++) {
        const tc_sym_atom *a = g->syms.atoms.items[i];
        if (a->kind == TC_ATOM_SYMBOL) len += (size_t)snprintf(why + len, why_size - len, " %s", a->name);
    }
    if (len < why_size) snprintf(why + len, why_size - len, ")");
    return NULL;
}

/* Whether a --fp16/--bf16 build computes in `low` anywhere, or has no f32 compute to lower: a graph
 * whose node outputs include f32 but none of `low` was not lowered (the precision pass is absent, or
 * found nothing safe to lower, which the user must hear about either way). */
static bool lowered(const tc_graph *g, tc_dtype low) {
    bool f32 = false;
    for (int i = 0; i < g->nodes.n; i++) {
        const tc_node *n = g->nodes.items[i];
        for (int k = 0; k < n->n_outputs; k++) {
            if (n->outputs[k]->dtype == low) return true;
            if (n->outputs[k]->dtype == TC_F32) f32 = true;
        }
    }
    return !f32;
}

static void append_cmd(char *buf, size_t size, const char *s) {
    size_t len = strlen(buf);
    bool quote = strpbrk(s, " \t'\"$\\") != NULL;
    snprintf(buf + len, size - len, "%s%s%s%s", len ? " " : "", quote ? "'" : "", s, quote ? "'" : "");
}

int tc_cli_build(int argc, char **argv) {
    const char *model = NULL, *out = NULL;
    int64_t min_block = 1, workspace_mib = -1, threads = 0;
    const char *cache = NULL;
    bool verbose = false, fp16 = false, bf16 = false, no_tf32 = false;
    int device = -1, n_precisions = 0; /* -1: chosen below, as trtexec does: the GPU when there is one */
    char shape_names[MAX_SHAPES][128];
    int64_t shape_vals[MAX_SHAPES][3];
    int n_shapes = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && has_val) {
            out = argv[++i];
        } else if (strcmp(a, "--device") == 0 && has_val) {
            const char *d = argv[++i];
            if (strcmp(d, "cpu") == 0) device = TC_BACKEND_CPU;
            else if (strcmp(d, "cuda") == 0) device = TC_BACKEND_CUDA;
            else {
                fprintf(stderr, "tensorc build: --device wants cpu or cuda, got '%s'\n", d);
                return 2;
            }
        } else if (strcmp(a, "--fp32") == 0) {
            n_precisions++;
        } else if (strcmp(a, "--fp16") == 0) {
            fp16 = true, n_precisions++;
        } else if (strcmp(a, "--bf16") == 0) {
            bf16 = true, n_precisions++;
        } else if (strcmp(a, "--no-tf32") == 0) {
            no_tf32 = true;
        } else if (strcmp(a, "--timing-cache") == 0 && has_val) {
            cache = argv[++i];
        } else if (strcmp(a, "--no-autotune") == 0) {
            setenv("TENSORC_AUTOTUNE", "0", 1); /* read by the CUDA kernels when they choose */
        } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            verbose = true;
        } else if (strcmp(a, "--shape") == 0 && has_val) {
            const char *s = argv[++i];
            if (n_shapes == MAX_SHAPES || !parse_shape(s, shape_names[n_shapes], sizeof shape_names[0], shape_vals[n_shapes])) {
                fprintf(stderr,
                        "tensorc build: --shape wants NAME=MIN:OPT:MAX with 0 <= MIN <= OPT <= MAX (e.g. x=1:8:32), "
                        "got '%s'\n", s);
                return 2;
            }
            n_shapes++;
        } else if (strcmp(a, "--min-block-size") == 0 && has_val) {
            if (!tc_cli_parse_int(argv[++i], 1, 1 << 20, &min_block)) {
                fprintf(stderr, "tensorc build: --min-block-size wants a positive integer, got '%s'\n", argv[i]);
                return 2;
            }
        } else if (strcmp(a, "--workspace") == 0 && has_val) {
            if (!tc_cli_parse_int(argv[++i], 0, (int64_t)1 << 30, &workspace_mib)) {
                fprintf(stderr, "tensorc build: --workspace wants a size in MiB, got '%s'\n", argv[i]);
                return 2;
            }
        } else if (strcmp(a, "--threads") == 0 && has_val) {
            if (!tc_cli_parse_int(argv[++i], 0, 1024, &threads)) {
                fprintf(stderr, "tensorc build: --threads wants an integer in [0, 1024], got '%s'\n", argv[i]);
                return 2;
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "tensorc build: unknown or incomplete option '%s' (see tensorc build --help)\n", a);
            return 2;
        } else if (!model) {
            model = a;
        } else {
            fprintf(stderr, "tensorc build: more than one model given ('%s' and '%s')\n", model, a);
            return 2;
        }
    }
    if (!model || !out) {
        fprintf(stderr, "tensorc build: %s\n\n", !model ? "no model given" : "no output file given (-o MODEL.tce)");
        usage(stderr);
        return 2;
    }
    if (n_precisions > 1) {
        fprintf(stderr, "tensorc build: give at most one of --fp32, --fp16, --bf16\n");
        return 2;
    }
    if (device < 0) {
        int ngpu = 0;
        device = tc_has_cuda() && tc_device_count(&ngpu) == TC_OK && ngpu > 0 ? TC_BACKEND_CUDA : TC_BACKEND_CPU;
    }
    if (device == TC_BACKEND_CUDA && !tc_has_cuda()) {
        fprintf(stderr,
                "tensorc build: --device cuda: this build of tensorc has no CUDA backend (%s). Rebuild tensorc with "
                "-DTENSORC_CUDA=ON on a machine with the CUDA toolkit and cuDNN, or build for the CPU with --device cpu\n",
                tc_version_string());
        return 1;
    }

    progress pr = {.on = verbose || isatty(2), .stages = 3};
    clock_gettime(CLOCK_MONOTONIC, &pr.t0);
    char err[2048];
    int rc = 1;
    tc_graph_t *g = NULL;
    tc_engine_t *engine = NULL;
    step(&pr, "importing %s", model);
    if (tc_import_pt2(model, &g, err, sizeof err) != TC_OK) {
        fprintf(stderr, "tensorc build: cannot import '%s': %s\n", model, err);
        goto done;
    }
    if (n_shapes) {
        tc_sym_override ov[MAX_SHAPES];
        char why[512];
        for (int k = 0; k < n_shapes; k++) {
            const char *sym = resolve_symbol(g, shape_names[k], why, sizeof why);
            if (!sym) {
                fprintf(stderr, "tensorc build: --shape %s: %s\n", shape_names[k], why);
                rc = 2;
                goto done;
            }
            ov[k] = (tc_sym_override){sym, shape_vals[k][0], shape_vals[k][1], shape_vals[k][2]};
            if (pr.on)
                fprintf(stderr, "           symbol %s in [%lld, %lld], opt %lld\n", sym, (long long)ov[k].min,
                        (long long)ov[k].max, (long long)ov[k].opt);
        }
        tc_graph *g2;
        tc_error e = {0};
        if (tc_graph_copy(g, ov, n_shapes, &g2, &e) != TC_OK) {
            fprintf(stderr, "tensorc build: the model does not accept the --shape ranges: %s\n", e.msg);
            goto done;
        }
        tc_graph_free(g);
        g = g2;
    }
    if (verbose) tc_graph_print(g, TC_PRINT_TEXT, stderr);
    tc_build_options opt;
    tc_build_options_init(&opt);
    opt.backend = (tc_backend_kind)device;
    opt.num_threads = (int)threads;
    opt.allow_fp16 = fp16;
    opt.allow_bf16 = bf16;
    opt.disable_tf32 = no_tf32;
    opt.workspace_bytes = workspace_mib > 0 ? (size_t)workspace_mib << 20 : 0;
    step(&pr, "building a %s engine (%d nodes)", device == TC_BACKEND_CUDA ? "cuda" : "cpu", tc_graph_num_nodes(g));
    tc_status bst = tc_engine_build(g, &opt, &engine, err, sizeof err);
    if (bst != TC_OK) {
        fprintf(stderr, "tensorc build: cannot build an engine for '%s': %s\n", model, err);
        if (bst == TC_ERR_UNSUPPORTED && strstr(err, "cannot run on the"))
            fprintf(stderr, "(`tensorc check %s` lists unsupported nodes)\n", model);
        goto done;
    }

    if (device == TC_BACKEND_CUDA && (fp16 || bf16) && !lowered(tc_engine_graph(engine), fp16 ? TC_F16 : TC_BF16)) {
        fprintf(stderr,
                "tensorc build: %s: '%s' computes in f32 and nothing of it was lowered to %s (this build of tensorc "
                "has no f32-to-%s precision pass yet, or found nothing safe to lower). Export the model in %s instead "
                "(model.%s() and %s inputs before torch.export) and build that, or build this model with --fp32\n",
                fp16 ? "--fp16" : "--bf16", model, fp16 ? "f16" : "bf16", fp16 ? "f16" : "bf16", fp16 ? "f16" : "bf16",
                fp16 ? "half" : "bfloat16", fp16 ? "half" : "bfloat16");
        goto done;
    }
    if (device == TC_BACKEND_CPU && (fp16 || bf16)) {
        int ngpu = 0;
        fprintf(stderr, "tensorc build: note: %s applies to CUDA engines; this CPU engine (the default device) computes "
                "in the model's dtypes", fp16 ? "--fp16" : "--bf16");
        if (tc_has_cuda() && tc_device_count(&ngpu) == TC_OK && ngpu > 0) fprintf(stderr, "; add --device cuda to build for the GPU");
        fprintf(stderr, "\n");
    }

    char cmdline[1024] = "";
    append_cmd(cmdline, sizeof cmdline, "tensorc");
    for (int i = 0; i < argc; i++) append_cmd(cmdline, sizeof cmdline, argv[i]);
    char mbs[32], ws[32], shapes[512] = "";
    snprintf(mbs, sizeof mbs, "%lld", (long long)min_block);
    if (workspace_mib > 0) snprintf(ws, sizeof ws, "%lld MiB", (long long)workspace_mib);
    else snprintf(ws, sizeof ws, "default");
    for (int k = 0; k < n_shapes; k++) {
        size_t len = strlen(shapes);
        snprintf(shapes + len, sizeof shapes - len, "%s%.100s=%lld:%lld:%lld", k ? " " : "", shape_names[k],
                 (long long)shape_vals[k][0], (long long)shape_vals[k][1], (long long)shape_vals[k][2]);
    }
    const char *keys[] = {"precision", "min_block_size", "workspace", "shapes"};
    const char *vals[] = {fp16 ? "fp16" : bf16 ? "bf16" : no_tf32 ? "fp32 (no tf32)" : "fp32", mbs, ws, shapes};
    tc_engine_save_info info = {model, cmdline, n_shapes ? 4 : 3, keys, vals};
    int cache_read = 0;
    if (cache && device == TC_BACKEND_CUDA) {
        char cerr[1024];
        tc_status cs = tc_engine_import_timing_cache(engine, cache, &cache_read, cerr, sizeof cerr);
        if (cs == TC_ERR_IO && access(cache, F_OK) != 0)
            fprintf(stderr, "tensorc build: timing cache %s does not exist yet: it will be created\n", cache);
        else if (cs != TC_OK)
            fprintf(stderr, "tensorc build: note: %s; it is not used and will be replaced\n", cerr);
    } else if (cache) {
        fprintf(stderr, "tensorc build: note: --timing-cache applies to CUDA engines only; ignored\n");
    }
    if (device == TC_BACKEND_CUDA) {
        const char *at = getenv("TENSORC_AUTOTUNE");
        step(&pr, "%s cuDNN plans and cuBLASLt algorithms at the opt shapes, writing %s",
             at && strcmp(at, "0") == 0 ? "choosing" : "timing", out);
    }
    else step(&pr, "writing %s", out);
    if (tc_engine_save_ex(engine, &info, out, err, sizeof err) != TC_OK) {
        fprintf(stderr, "tensorc build: %s\n", err);
        goto done;
    }
    if (cache && device == TC_BACKEND_CUDA) {
        int written = 0;
        if (tc_engine_export_timing_cache(engine, cache, &written, err, sizeof err) != TC_OK) {
            fprintf(stderr, "tensorc build: cannot write the timing cache: %s\n", err);
            goto done;
        }
        printf("timing cache %s: %d plan choice(s) read, %d written\n", cache, cache_read, written);
    }
    struct stat stt;
    size_t size = stat(out, &stt) == 0 ? (size_t)stt.st_size : 0;
    char gpu[400] = "";
    if (device == TC_BACKEND_CUDA) {
        char name[360];
        tc_cli_gpu_name(tc_cli_engine_device(engine), name, sizeof name);
        snprintf(gpu, sizeof gpu, " for %s", name);
    }
    char plans[64] = "";
    if (device == TC_BACKEND_CUDA) { /* how many library plans the file stores (docs/engine-format.md) */
        unsigned char *bytes = NULL;
        size_t n = 0;
        tc_error ferr = {0};
        tc_engine_info info;
        if (tc_read_file(out, &bytes, &n, &ferr) == TC_OK && tc_engine_file_info(bytes, n, &info, &ferr) == TC_OK)
            snprintf(plans, sizeof plans, ", %u stored plan(s)", info.n_records);
        free(bytes);
    }
    printf("built %s: %s engine%s, %d steps, %d input(s), %d output(s)%s, %zu bytes, in %.2f s\n", out,
           device == TC_BACKEND_CUDA ? "cuda" : "cpu", gpu, tc_graph_num_nodes(tc_engine_graph(engine)),
           tc_engine_num_inputs(engine), tc_engine_num_outputs(engine), plans, size, seconds_since(&pr.t0));
    rc = 0;
done:
    tc_engine_free(engine);
    tc_graph_free(g);
    return rc;
}
