/* `tensorc bench ENGINE_OR_MODEL`: runs an engine repeatedly on random inputs at its opt shapes (or
 * a given batch) and reports host latency percentiles, mean, throughput and the device, like
 * trtexec; --json prints the same as one JSON object. */
#define _POSIX_C_SOURCE 200809L
#include "tensorc.h"
#include "cli.h"
#include "core/dtype.h"
#include "core/parallel.h"
#include "engine/serialize.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: tensorc bench ENGINE.tce|MODEL.pt2 [--warmup N] [--iterations N] [--batch N] [--json]\n"
            "                    [--device cpu|cuda] [--threads N]\n\n"
            "Times repeated executions of an engine (or of a model built on the fly) on random inputs at the\n"
            "engine's opt shapes, and prints the host latency of one execution (min, mean, p50, p90, p99, max\n"
            "in ms), the throughput (inferences per second: batch x executions per second) and the device.\n\n"
            "  --warmup N       executions before timing (default 10)\n"
            "  --iterations N   timed executions (default 100)\n"
            "  --batch N        size of dim 0 of every input whose dim 0 is symbolic (default: its opt value)\n"
            "  --json           print one JSON object\n"
            "  --device D       cpu or cuda (default: the engine's own backend; cpu for a model)\n"
            "  --threads N      CPU threads (default: as built; 0 = one per core)\n\n"
            "Exit status: 0 success, 1 the engine cannot be loaded or run, 2 bad usage.\n");
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted values. */
static double percentile(const double *v, int n, double p) {
    int k = (int)ceil(p / 100.0 * n);
    if (k < 1) k = 1;
    if (k > n) k = n;
    return v[k - 1];
}

static void cpu_name(char *buf, size_t size) {
    snprintf(buf, size, "cpu");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        const char *c = strchr(line, ':');
        if (!c) break;
        c++;
        while (*c == ' ') c++;
        snprintf(buf, size, "cpu: %.*s", (int)strcspn(c, "\n"), c);
        break;
    }
    fclose(f);
}

/* TODO(cuda): GPU time per execution from CUDA events recorded around tc_context_enqueue on the
 * context's stream, once CUDA contexts can execute (tc_cuda_exec_run is a placeholder today). The
 * hook returns false while there is nothing to measure, and bench then reports gpu time as null. */
static bool gpu_time_ms(tc_context_t *ctx, double *ms) {
    (void)ctx;
    *ms = 0;
    return false;
}

int tc_cli_bench(int argc, char **argv) {
    const char *path = NULL;
    int64_t warmup = 10, iters = 100, batch = -1, threads = 0;
    bool json = false;
    int device = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--warmup") == 0 && has_val) {
            if (!tc_cli_parse_int(argv[++i], 0, 1000000, &warmup)) {
                fprintf(stderr, "tensorc bench: --warmup wants an integer >= 0, got '%s'\n", argv[i]);
                return 2;
            }
        } else if (strcmp(a, "--iterations") == 0 && has_val) {
            if (!tc_cli_parse_int(argv[++i], 1, 10000000, &iters)) {
                fprintf(stderr, "tensorc bench: --iterations wants an integer >= 1, got '%s'\n", argv[i]);
                return 2;
            }
        } else if (strcmp(a, "--batch") == 0 && has_val) {
            if (!tc_cli_parse_int(argv[++i], 1, 1 << 20, &batch)) {
                fprintf(stderr, "tensorc bench: --batch wants an integer >= 1, got '%s'\n", argv[i]);
                return 2;
            }
        } else if (strcmp(a, "--threads") == 0 && has_val) {
            if (!tc_cli_parse_int(argv[++i], 0, 1024, &threads)) {
                fprintf(stderr, "tensorc bench: --threads wants an integer in [0, 1024], got '%s'\n", argv[i]);
                return 2;
            }
        } else if (strcmp(a, "--device") == 0 && has_val) {
            const char *d = argv[++i];
            if (strcmp(d, "cpu") == 0) device = TC_BACKEND_CPU;
            else if (strcmp(d, "cuda") == 0) device = TC_BACKEND_CUDA;
            else {
                fprintf(stderr, "tensorc bench: --device wants cpu or cuda, got '%s'\n", d);
                return 2;
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "tensorc bench: unknown or incomplete option '%s' (see tensorc bench --help)\n", a);
            return 2;
        } else if (!path) {
            path = a;
        } else {
            fprintf(stderr, "tensorc bench: more than one engine given ('%s' and '%s')\n", path, a);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "tensorc bench: no engine or model given\n\n");
        usage(stderr);
        return 2;
    }

    int rc = 1;
    tc_engine_t *e = NULL;
    tc_context_t *ctx = NULL;
    tc_tensor *in = NULL;
    double *lat = NULL;
    if (tc_cli_open("bench", path, device, (int)threads, &e) != 0) return 1;
    const tc_graph *g = tc_engine_graph(e);
    int ni = g->inputs.n;
    if (tc_engine_backend(e) == TC_BACKEND_CUDA) {
        /* TODO(cuda): stage random inputs in device memory (see gpu_time_ms) once CUDA contexts execute. */
        fprintf(stderr, "tensorc bench: benchmarking CUDA engines is not available yet (the CUDA backend cannot "
                        "execute); bench its graph on the CPU with --device cpu\n");
        goto done;
    }
    in = calloc((size_t)ni + 1, sizeof *in);
    int64_t *symvals = calloc((size_t)g->syms.atoms.n + 1, sizeof *symvals);
    if (!in || !symvals) {
        free(symvals);
        fprintf(stderr, "tensorc bench: out of memory\n");
        goto done;
    }
    for (int i = 0; i < g->syms.atoms.n; i++) {
        const tc_sym_atom *a = g->syms.atoms.items[i];
        symvals[i] = a->kind == TC_ATOM_SYMBOL ? a->opt : 0;
    }
    int64_t eff_batch = 1;
    bool batch_used = false;
    if (batch > 0) {
        for (int i = 0; i < ni; i++) {
            const tc_value *v = g->inputs.items[i];
            int s = v->rank > 0 ? tc_sym_as_symbol(&g->syms, v->dims[0]) : -1;
            if (s < 0) continue;
            const tc_sym_atom *a = g->syms.atoms.items[s];
            if (batch < a->min || batch > a->max) {
                fprintf(stderr, "tensorc bench: --batch %lld is outside the engine's range [%lld, %lld] for %s; rebuild "
                                "with --shape %s=MIN:OPT:MAX\n",
                        (long long)batch, (long long)a->min, (long long)a->max, a->name, a->name);
                free(symvals);
                rc = 2;
                goto done;
            }
            symvals[s] = batch;
            batch_used = true;
        }
        if (!batch_used) {
            fprintf(stderr, "tensorc bench: --batch: no input has a symbolic dim 0; this engine's batch is fixed\n");
            free(symvals);
            rc = 2;
            goto done;
        }
    }
    if (ni > 0 && g->inputs.n) {
        const tc_value *v0 = g->inputs.items[0];
        if (v0->rank > 0) eff_batch = tc_sym_eval(&g->syms, v0->dims[0], symvals);
    }
    uint64_t seed = 0x243f6a8885a308d3ull;
    for (int i = 0; i < ni; i++) {
        const tc_value *v = g->inputs.items[i];
        tc_tensor *t = &in[i];
        t->dtype = v->dtype;
        t->rank = v->rank;
        int64_t n = 1;
        for (int d = 0; d < v->rank; d++) n *= (t->dims[d] = tc_sym_eval(&g->syms, v->dims[d], symvals));
        t->data = calloc((size_t)(n ? n : 1), tc_dtype_size(t->dtype));
        if (!t->data) {
            fprintf(stderr, "tensorc bench: out of memory for input '%s'\n", v->name);
            free(symvals);
            goto done;
        }
        for (int64_t k = 0; k < n; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            double u = (double)(seed >> 11) / 9007199254740992.0; /* [0, 1) */
            if (tc_dtype_is_float(t->dtype)) tc_store_f64(t->data, t->dtype, k, 2 * u - 1);
            else if (t->dtype == TC_BOOL) tc_store_i64(t->data, t->dtype, k, u < 0.5);
            else tc_store_i64(t->data, t->dtype, k, (int64_t)(u * 10));
        }
    }
    free(symvals);
    if (tc_context_create(e, &ctx) != TC_OK) {
        fprintf(stderr, "tensorc bench: %s\n", tc_engine_last_error(e));
        goto done;
    }
    for (int i = 0; i < ni; i++) {
        if (tc_context_set_input(ctx, i, &in[i]) != TC_OK) {
            fprintf(stderr, "tensorc bench: %s\n", tc_context_last_error(ctx));
            goto done;
        }
    }
    lat = malloc(sizeof *lat * (size_t)iters);
    if (!lat) {
        fprintf(stderr, "tensorc bench: out of memory\n");
        goto done;
    }
    for (int64_t k = 0; k < warmup; k++) {
        if (tc_context_execute(ctx) != TC_OK) {
            fprintf(stderr, "tensorc bench: execution failed: %s\n", tc_context_last_error(ctx));
            goto done;
        }
    }
    double gpu_sum = 0;
    bool have_gpu = true;
    double t_start = now_ms();
    for (int64_t k = 0; k < iters; k++) {
        double t0 = now_ms();
        if (tc_context_execute(ctx) != TC_OK) {
            fprintf(stderr, "tensorc bench: execution failed: %s\n", tc_context_last_error(ctx));
            goto done;
        }
        lat[k] = now_ms() - t0;
        double gms;
        if (have_gpu && gpu_time_ms(ctx, &gms)) gpu_sum += gms;
        else have_gpu = false;
    }
    double total = now_ms() - t_start;
    double mean = 0;
    for (int64_t k = 0; k < iters; k++) mean += lat[k];
    mean /= (double)iters;
    qsort(lat, (size_t)iters, sizeof *lat, cmp_double);
    int n = (int)iters;
    double p50 = percentile(lat, n, 50), p90 = percentile(lat, n, 90), p99 = percentile(lat, n, 99);
    double qps = total > 0 ? (double)iters * 1e3 / total : 0;
    char dev[300];
    if (tc_engine_backend(e) == TC_BACKEND_CPU) {
        char cpu[256];
        cpu_name(cpu, sizeof cpu);
        snprintf(dev, sizeof dev, "%s (%d threads)", cpu, tc_parallel_threads());
    } else {
        snprintf(dev, sizeof dev, "cuda");
    }
    char shape[512] = "";
    for (int i = 0; i < ni; i++) {
        size_t len = strlen(shape);
        len += (size_t)snprintf(shape + len, sizeof shape - len, "%s%s=", i ? " " : "", ((tc_value *)g->inputs.items[i])->name);
        for (int d = 0; d < in[i].rank && len < sizeof shape; d++)
            len += (size_t)snprintf(shape + len, sizeof shape - len, "%s%lld", d ? "x" : "", (long long)in[i].dims[d]);
    }
    if (json) {
        printf("{\"engine\": \"");
        for (const char *p = path; *p; p++) {
            if (*p == '"' || *p == '\\') putchar('\\');
            putchar(*p);
        }
        printf("\", \"device\": \"");
        for (const char *p = dev; *p; p++) {
            if (*p == '"' || *p == '\\') putchar('\\');
            putchar(*p);
        }
        printf("\", \"inputs\": \"%s\", \"batch\": %lld, \"warmup\": %lld, \"iterations\": %lld, "
               "\"latency_ms\": {\"min\": %.6f, \"mean\": %.6f, \"p50\": %.6f, \"p90\": %.6f, \"p99\": %.6f, \"max\": %.6f}, ",
               shape, (long long)eff_batch, (long long)warmup, (long long)iters, lat[0], mean, p50, p90, p99, lat[n - 1]);
        if (have_gpu) printf("\"gpu_time_ms\": {\"mean\": %.6f}, ", gpu_sum / (double)iters);
        else printf("\"gpu_time_ms\": null, ");
        printf("\"throughput\": {\"executions_per_s\": %.3f, \"inferences_per_s\": %.3f}, \"total_ms\": %.3f}\n", qps,
               qps * (double)eff_batch, total);
    } else {
        printf("engine: %s\ndevice: %s\ninputs: %s (batch %lld)\n", path, dev, shape, (long long)eff_batch);
        printf("warmup: %lld, iterations: %lld, total %.3f ms\n", (long long)warmup, (long long)iters, total);
        printf("host latency (ms): min %.4f  mean %.4f  p50 %.4f  p90 %.4f  p99 %.4f  max %.4f\n", lat[0], mean, p50,
               p90, p99, lat[n - 1]);
        if (have_gpu) printf("gpu time (ms): mean %.4f\n", gpu_sum / (double)iters);
        else printf("gpu time: n/a (%s)\n", tc_engine_backend(e) == TC_BACKEND_CPU ? "cpu engine" : "not measured yet");
        printf("throughput: %.2f executions/s, %.2f inferences/s\n", qps, qps * (double)eff_batch);
    }
    rc = 0;
done:
    if (in)
        for (int i = 0; i < ni; i++) free(in[i].data);
    free(in);
    free(lat);
    tc_context_free(ctx);
    tc_engine_free(e);
    return rc;
}
