/* Loads an engine file, runs it on an input from an .npy file and prints the result, using only the
 * public C API of the runtime library (libtensorc_runtime): no model importer, no Python.
 *
 *   run_engine ENGINE.tce INPUT.npy [EXPECTED.npy]
 *
 * With EXPECTED.npy, also compares the output with it (max |got - want| / max |want| <= 1e-4) and
 * exits 1 when it differs. The .npy reader below handles what the example needs: C-order,
 * little-endian float32 arrays, format versions 1 to 3. */
#include "tensorc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads a float32 .npy file into t (t->data malloc'ed). Returns 0 on success, else prints why. */
static int read_npy_f32(const char *path, tc_tensor *t) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "run_engine: cannot open %s\n", path);
        return -1;
    }
    unsigned char pre[12];
    int rc = -1;
    char *header = NULL;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0 || pre[6] < 1 || pre[6] > 3) {
        fprintf(stderr, "run_engine: %s is not an .npy file\n", path);
        goto out;
    }
    unsigned long hlen = pre[8] | (unsigned long)pre[9] << 8;
    if (pre[6] >= 2) {
        if (fread(pre + 10, 1, 2, f) != 2) goto out;
        hlen |= (unsigned long)pre[10] << 16 | (unsigned long)pre[11] << 24;
    }
    if (hlen > 1 << 20 || !(header = malloc(hlen + 1)) || fread(header, 1, hlen, f) != hlen) goto out;
    header[hlen] = '\0';
    if (!strstr(header, "'descr': '<f4'") || !strstr(header, "'fortran_order': False")) {
        fprintf(stderr, "run_engine: %s must hold a C-order float32 array\n", path);
        goto out;
    }
    const char *s = strstr(header, "'shape': (");
    if (!s) goto out;
    s += strlen("'shape': (");
    t->dtype = TC_F32;
    t->rank = 0;
    size_t numel = 1;
    while (*s && *s != ')') {
        char *end;
        long long d = strtoll(s, &end, 10);
        if (end == s || d < 0 || t->rank == TC_MAX_RANK) goto out;
        t->dims[t->rank++] = d;
        numel *= (size_t)d;
        s = end;
        while (*s == ',' || *s == ' ') s++;
    }
    t->data = malloc(numel ? numel * 4 : 1);
    if (!t->data || fread(t->data, 4, numel, f) != numel) {
        fprintf(stderr, "run_engine: %s is truncated\n", path);
        free(t->data);
        t->data = NULL;
        goto out;
    }
    rc = 0;
out:
    if (rc != 0 && !t->data) fprintf(stderr, "run_engine: cannot read %s\n", path);
    free(header);
    fclose(f);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: run_engine ENGINE.tce INPUT.npy [EXPECTED.npy]\n");
        return 2;
    }
    char err[2048];
    tc_engine_t *engine = NULL;
    if (tc_engine_load(argv[1], NULL, &engine, err, sizeof err) != TC_OK) {
        fprintf(stderr, "run_engine: %s\n", err);
        return 1;
    }
    int rc = 1;
    tc_context_t *ctx = NULL;
    tc_tensor in = {0}, want = {0}, out;
    if (read_npy_f32(argv[2], &in) != 0) goto done;
    if (tc_context_create(engine, &ctx) != TC_OK) {
        fprintf(stderr, "run_engine: %s\n", tc_engine_last_error(engine));
        goto done;
    }
    if (tc_context_set_input(ctx, 0, &in) != TC_OK || tc_context_execute(ctx) != TC_OK ||
        tc_context_get_output(ctx, 0, &out) != TC_OK) {
        fprintf(stderr, "run_engine: %s\n", tc_context_last_error(ctx));
        goto done;
    }
    printf("engine %s: input '%s' -> output '%s' %s[", argv[1], tc_engine_input_name(engine, 0),
           tc_engine_output_name(engine, 0), tc_dtype_name(out.dtype));
    size_t n = 1;
    for (int d = 0; d < out.rank; d++) {
        printf("%s%lld", d ? ", " : "", (long long)out.dims[d]);
        n *= (size_t)out.dims[d];
    }
    printf("]\n");
    if (out.dtype != TC_F32) {
        fprintf(stderr, "run_engine: this example prints float32 outputs only\n");
        goto done;
    }
    const float *y = out.data;
    size_t row = out.rank > 1 ? (size_t)out.dims[out.rank - 1] : n;
    for (size_t i = 0; i < n; i += row) {
        size_t best = i;
        printf("  ");
        for (size_t k = i; k < i + row && k < n; k++) {
            printf("%s%.5f", k > i ? " " : "", y[k]);
            if (y[k] > y[best]) best = k;
        }
        printf("   argmax %zu\n", best - i);
    }
    if (argc == 4) {
        if (read_npy_f32(argv[3], &want) != 0) goto done;
        size_t wn = 1;
        for (int d = 0; d < want.rank; d++) wn *= (size_t)want.dims[d];
        if (wn != n) {
            fprintf(stderr, "run_engine: %s has %zu elements, the output %zu\n", argv[3], wn, n);
            goto done;
        }
        double diff = 0, scale = 0;
        for (size_t i = 0; i < n; i++) {
            diff = fmax(diff, fabs((double)y[i] - ((float *)want.data)[i]));
            scale = fmax(scale, fabs(((float *)want.data)[i]));
        }
        double rel = scale > 0 ? diff / scale : diff;
        printf("max relative difference to %s: %.3g (%s)\n", argv[3], rel, rel <= 1e-4 ? "ok" : "too large");
        if (rel > 1e-4) goto done;
    }
    rc = 0;
done:
    free(in.data);
    free(want.data);
    tc_context_free(ctx);
    tc_engine_free(engine);
    return rc;
}
