/* `tensorc bench ENGINE_OR_MODEL`: runs an engine repeatedly on random inputs at its opt shapes (or
 * a given batch) and reports the first runs, host latency percentiles, mean, throughput, the device
 * and, for CUDA engines, the GPU time per run from CUDA events, like trtexec; --json prints the same
 * as one JSON object. */
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
            "                    [--device cpu|cuda] [--threads N] [--profile]\n\n"
            "Times repeated executions of an engine (or of a model built on the fly) on random inputs at the\n"
            "engine's opt shapes, and prints the time of the first two runs (CUDA: plans are built in the first,\n"
            "the CUDA graph is captured in the second), the host latency of one synchronous execution (min,\n"
            "mean, p50, p90, p99, max in ms), for CUDA engines the GPU time per execution (CUDA events around\n"
            "N runs enqueued back to back, / N), the throughput (inferences per second: batch x executions\n"
            "per second) and the device. CUDA inputs are copied to the GPU once, before timing.\n\n"
            "  --warmup N       untimed executions after the first two (default 10)\n"
            "  --iterations N   timed executions (default 100)\n"
            "  --batch N        size of dim 0 of every input whose dim 0 is symbolic (default: its opt value)\n"
            "  --json           print one JSON object\n"
            "  --device D       cpu or cuda (default: the engine's own backend; cpu for a model)\n"
            "  --threads N      CPU threads (default: as built; 0 = one per core)\n"
            "  --profile        CUDA engines: time every step with CUDA events (CUDA graphs off) and print the\n"
            "                   steps by GPU time per run to stderr at the end (as TENSORC_CUDA_PROFILE=1)\n\n"
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

static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static int exec_timed(tc_context_t *ctx, double *ms) {
    double t0 = now_ms();
    if (tc_context_execute(ctx) != TC_OK) {
        fprintf(stderr, "tensorc bench: execution failed: %s\n", tc_context_last_error(ctx));
        return 1;
    }
    *ms = now_ms() - t0;
    return 0;
}

/* GPU time of one execution: n runs enqueued back to back on a stream of our own, between two CUDA
 * events, divided by n. The host never waits inside the loop, so this is the device's time per run
 * (graph replays plus the two cross-stream event waits of each enqueue), not the host's latency. */
static int gpu_time(tc_context_t *ctx, int device, int64_t n, double *ms_per_run, double *ms_total) {
    void *stream = NULL, *start = NULL, *end = NULL;
    int rc = 1;
    const char *what = "creating a CUDA stream";
    if (tc_stream_create(device, &stream) != TC_OK) goto fail;
    what = "creating CUDA events";
    if (tc_event_create(device, &start) != TC_OK || tc_event_create(device, &end) != TC_OK) goto fail;
    /* one untimed run on this stream first, so that the timed ones are plain replays */
    if (tc_context_enqueue(ctx, stream) != TC_OK) goto fail_ctx;
    what = "waiting for the GPU";
    if (tc_device_synchronize(stream) != TC_OK) goto fail;
    what = "recording a CUDA event";
    if (tc_event_record(start, stream) != TC_OK) goto fail;
    for (int64_t k = 0; k < n; k++)
        if (tc_context_enqueue(ctx, stream) != TC_OK) goto fail_ctx;
    if (tc_event_record(end, stream) != TC_OK) goto fail;
    float ms = 0;
    what = "timing with CUDA events";
    if (tc_event_elapsed_ms(start, end, &ms) != TC_OK) goto fail;
    *ms_total = ms;
    *ms_per_run = ms / (double)n;
    rc = 0;
    goto out;
fail_ctx:
    fprintf(stderr, "tensorc bench: enqueued execution failed: %s\n", tc_context_last_error(ctx));
    goto out;
fail:
    fprintf(stderr, "tensorc bench: %s: %s\n", what, tc_device_last_error());
out:
    if (stream) (void)tc_device_synchronize(stream);
    tc_event_destroy(start);
    tc_event_destroy(end);
    tc_stream_destroy(stream);
    return rc;
}

int tc_cli_bench(int argc, char **argv) {
    const char *path = NULL;
    int64_t warmup = 10, iters = 100, batch = -1, threads = 0;
    bool json = false, profile = false;
    int device = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--profile") == 0) {
            profile = true;
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
    tc_tensor *in = NULL, *dev_in = NULL; /* dev_in: the inputs' device copies (CUDA engines) */
    double *lat = NULL;
    if (profile) setenv("TENSORC_CUDA_PROFILE", "1", 1); /* read when the engine is built or loaded */
    if (tc_cli_open("bench", path, device, (int)threads, &e) != 0) return 1;
    const tc_graph *g = tc_engine_graph(e);
    int ni = g->inputs.n;
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
    bool cuda = tc_engine_backend(e) == TC_BACKEND_CUDA;
    if (profile && !cuda) fprintf(stderr, "tensorc bench: --profile times the steps of CUDA engines; this one runs on the CPU\n");
    int gpu = cuda ? tc_cli_engine_device(e) : -1;
    if (tc_context_create(e, &ctx) != TC_OK) {
        fprintf(stderr, "tensorc bench: %s\n", tc_engine_last_error(e));
        goto done;
    }
    if (cuda) {
        dev_in = calloc((size_t)ni + 1, sizeof *dev_in);
        if (!dev_in) {
            fprintf(stderr, "tensorc bench: out of memory\n");
            goto done;
        }
    }
    for (int i = 0; i < ni; i++) {
        /* CUDA engines read device memory: the inputs are copied once, so every run replays one graph */
        if (cuda && tc_cli_to_device("bench", gpu, &in[i], &dev_in[i]) != 0) goto done;
        if (tc_context_set_input(ctx, i, cuda ? &dev_in[i] : &in[i]) != TC_OK) {
            fprintf(stderr, "tensorc bench: %s\n", tc_context_last_error(ctx));
            goto done;
        }
    }
    lat = malloc(sizeof *lat * (size_t)iters);
    if (!lat) {
        fprintf(stderr, "tensorc bench: out of memory\n");
        goto done;
    }
    /* The first run plans memory and, on CUDA, builds the library plans; the second captures the
     * CUDA graph. Both are reported apart from the steady state. */
    double first_ms = 0, second_ms = 0, dummy;
    if (exec_timed(ctx, &first_ms) != 0) goto done;
    if (exec_timed(ctx, &second_ms) != 0) goto done;
    for (int64_t k = 0; k < warmup; k++)
        if (exec_timed(ctx, &dummy) != 0) goto done;
    double t_start = now_ms();
    for (int64_t k = 0; k < iters; k++)
        if (exec_timed(ctx, &lat[k]) != 0) goto done;
    double total = now_ms() - t_start;
    double gpu_ms = 0, gpu_total = 0;
    if (cuda && gpu_time(ctx, gpu, iters, &gpu_ms, &gpu_total) != 0) goto done;
    double mean = 0;
    for (int64_t k = 0; k < iters; k++) mean += lat[k];
    mean /= (double)iters;
    qsort(lat, (size_t)iters, sizeof *lat, cmp_double);
    int n = (int)iters;
    double p50 = percentile(lat, n, 50), p90 = percentile(lat, n, 90), p99 = percentile(lat, n, 99);
    double qps = total > 0 ? (double)iters * 1e3 / total : 0;
    char dev[400];
    if (!cuda) {
        char cpu[256];
        cpu_name(cpu, sizeof cpu);
        snprintf(dev, sizeof dev, "%s (%d threads)", cpu, tc_parallel_threads());
    } else {
        tc_cli_gpu_name(gpu, dev, sizeof dev);
    }
    char shape[512] = "";
    for (int i = 0; i < ni; i++) {
        size_t len = strlen(shape);
        len += (size_t)snprintf(shape + len, sizeof shape - len, "%s%s=", i ? " " : "", ((tc_value *)g->inputs.items[i])->name);
        for (int d = 0; d < in[i].rank && len < sizeof shape; d++)
            len += (size_t)snprintf(shape + len, sizeof shape - len, "%s%lld", d ? "x" : "", (long long)in[i].dims[d]);
    }
    if (json) {
        printf("{\"engine\": ");
        json_string(path);
        printf(", \"backend\": \"%s\", \"device\": ", cuda ? "cuda" : "cpu");
        json_string(dev);
        printf(", \"inputs\": ");
        json_string(shape);
        printf(", \"batch\": %lld, \"warmup\": %lld, \"iterations\": %lld, \"first_run_ms\": %.6f, "
               "\"second_run_ms\": %.6f, "
               "\"latency_ms\": {\"min\": %.6f, \"mean\": %.6f, \"p50\": %.6f, \"p90\": %.6f, \"p99\": %.6f, \"max\": %.6f}, ",
               (long long)eff_batch, (long long)warmup, (long long)iters, first_ms, second_ms, lat[0], mean, p50, p90,
               p99, lat[n - 1]);
        if (cuda)
            printf("\"gpu_time_ms\": {\"mean\": %.6f, \"total\": %.6f, \"iterations\": %lld, \"executions_per_s\": %.3f}, ",
                   gpu_ms, gpu_total, (long long)iters, gpu_total > 0 ? (double)iters * 1e3 / gpu_total : 0.0);
        else printf("\"gpu_time_ms\": null, ");
        printf("\"throughput\": {\"executions_per_s\": %.3f, \"inferences_per_s\": %.3f}, \"total_ms\": %.3f}\n", qps,
               qps * (double)eff_batch, total);
    } else {
        printf("engine: %s\ndevice: %s\ninputs: %s (batch %lld)\n", path, dev, shape, (long long)eff_batch);
        printf("first run: %.3f ms, second run: %.3f ms%s\n", first_ms, second_ms,
               cuda ? " (the first builds plans, the second captures the CUDA graph)" : "");
        printf("warmup: %lld, iterations: %lld, total %.3f ms\n", (long long)warmup, (long long)iters, total);
        printf("host latency (ms): min %.4f  mean %.4f  p50 %.4f  p90 %.4f  p99 %.4f  max %.4f\n", lat[0], mean, p50,
               p90, p99, lat[n - 1]);
        if (cuda)
            printf("gpu time (ms): mean %.4f per execution (%lld enqueued back to back, %.2f executions/s)\n", gpu_ms,
                   (long long)iters, gpu_total > 0 ? (double)iters * 1e3 / gpu_total : 0.0);
        else printf("gpu time: n/a (cpu engine)\n");
        printf("throughput: %.2f executions/s, %.2f inferences/s\n", qps, qps * (double)eff_batch);
    }
    rc = 0;
done:
    tc_context_free(ctx); /* before the device inputs it was bound to */
    ctx = NULL;
    if (in)
        for (int i = 0; i < ni; i++) free(in[i].data);
    if (dev_in)
        for (int i = 0; i < ni; i++) tc_device_free(dev_in[i].data);
    free(in);
    free(dev_in);
    free(lat);
    tc_context_free(ctx);
    tc_engine_free(e);
    return rc;
}
