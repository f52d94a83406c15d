/* Fuzz target for the engine file loader: deserializes the input as a .tce file and, when that
 * succeeds, runs the engine once on zero-filled inputs at its opt shapes. Also feeds the bytes with
 * a freshly computed checksum, so mutations reach the sections behind the checksum. */
#include "tensorc.h"
#include "engine/serialize.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void run_zero_inputs(tc_engine_t *e) {
    const tc_graph *g = tc_engine_graph(e);
    int64_t syms[64] = {0};
    if (g->syms.atoms.n > 64) return;
    for (int i = 0; i < g->syms.atoms.n; i++) {
        const tc_sym_atom *a = g->syms.atoms.items[i];
        syms[i] = a->kind == TC_ATOM_SYMBOL ? a->opt : 0;
    }
    tc_context_t *c = NULL;
    if (tc_context_create(e, &c) != TC_OK) return;
    tc_tensor in[16];
    int n = g->inputs.n;
    if (n > 16) n = 0;
    bool ok = n == g->inputs.n;
    for (int i = 0; i < n; i++) {
        const tc_value *v = g->inputs.items[i];
        in[i] = (tc_tensor){.dtype = v->dtype, .rank = v->rank};
        int64_t numel = 1;
        for (int d = 0; d < v->rank; d++) numel *= (in[i].dims[d] = tc_sym_eval(&g->syms, v->dims[d], syms));
        /* keep runs small: a fuzzed range may ask for huge tensors */
        in[i].data = numel >= 0 && numel <= (1 << 16) ? calloc((size_t)numel + 1, 8) : NULL;
        if (!in[i].data) ok = false;
        else (void)tc_context_set_input(c, i, &in[i]);
    }
    if (ok) (void)tc_context_execute(c);
    for (int i = 0; i < n; i++) free(in[i].data);
    tc_context_free(c);
}

static void one(const uint8_t *data, size_t size) {
    tc_engine_t *e = NULL;
    char err[2048];
    tc_status st = tc_engine_deserialize(data, size, NULL, &e, err, sizeof err);
    if (st == TC_OK) {
        if (!e) abort(); /* success must hand out an engine */
        run_zero_inputs(e);
        void *again = NULL;
        size_t n = 0;
        if (tc_engine_serialize(e, &again, &n) == TC_OK) tc_free_buffer(again);
        tc_engine_free(e);
    } else if (e || !err[0]) {
        abort(); /* failure must leave *out NULL and say why */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    one(data, size);
    if (size >= 40 && size % 8 == 0 && memcmp(data, TC_ENGINE_MAGIC, 8) == 0) {
        uint8_t *fixed = malloc(size);
        if (!fixed) return 0;
        memcpy(fixed, data, size);
        uint64_t h = tc_hash64(fixed, size - 8, 0);
        for (int i = 0; i < 8; i++) fixed[size - 8 + i] = (uint8_t)(h >> (8 * i));
        one(fixed, size);
        free(fixed);
    }
    return 0;
}
