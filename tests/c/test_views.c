/* Tests of the stride rules behind the CUDA executor's zero-copy views (ops/shape_views.h):
 * reshapes of strided views against brute-force index arithmetic, and chains of view-like nodes
 * against the CPU backend, which copies every view. Inputs hold 0, 1, 2, ... so that each output
 * element is the offset of the input element it came from. */
#include "tensorc.h"
#include "ops/shape_views.h"
#include "test.h"

#include <stdlib.h>

static tc_arg T(tc_value_t *v) { return (tc_arg){.kind = TC_ARG_TENSOR, .u.tensor = v}; }
static tc_arg I(int64_t i) { return (tc_arg){.kind = TC_ARG_INT, .u.i = i}; }
static tc_arg IS(const int64_t *v, int n) { return (tc_arg){.kind = TC_ARG_INTS, .count = n, .u.ints = v}; }
static tc_arg NONE(void) { return (tc_arg){.kind = TC_ARG_NONE}; }

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static int rnd(int n) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (int)(rng % (uint64_t)n);
}

/* offset of flat index k of a view (dims, strides, base) */
static int64_t offset_of(int64_t k, int rank, const int64_t *dims, const int64_t *st, int64_t base) {
    int64_t off = base;
    for (int d = rank - 1; d >= 0; d--) {
        off += (k % dims[d]) * st[d];
        k /= dims[d];
    }
    return off;
}

/* A permuted (and possibly sliced) view of a contiguous tensor, reshaped to a random regrouping of
 * its elements: where tc_shape_reshape_strides gives strides, they must address the elements the
 * reshape of the materialized view holds. Contiguous views must always reshape. */
static void test_reshape_strides_against_brute_force(void) {
    int ok_count = 0, refused = 0;
    for (int iter = 0; iter < 4000; iter++) {
        int rank = 1 + rnd(4);
        int64_t dims[TC_MAX_RANK], cst[TC_MAX_RANK], vd[TC_MAX_RANK], vs[TC_MAX_RANK];
        int64_t s = 1;
        for (int d = 0; d < rank; d++) dims[d] = 1 + rnd(4);
        for (int d = rank - 1; d >= 0; d--) cst[d] = s, s *= dims[d];
        int perm[TC_MAX_RANK];
        for (int d = 0; d < rank; d++) perm[d] = d;
        bool identity = rnd(3) == 0;
        for (int d = rank - 1; d > 0 && !identity; d--) {
            int j = rnd(d + 1), t = perm[d];
            perm[d] = perm[j], perm[j] = t;
        }
        int64_t numel = 1;
        for (int d = 0; d < rank; d++) vd[d] = dims[perm[d]], vs[d] = cst[perm[d]], numel *= vd[d];
        /* the target: the view's dims split into prime factors, regrouped at random, with 1s */
        int64_t f[64];
        int nf = 0;
        for (int d = 0; d < rank; d++)
            for (int64_t x = vd[d], p = 2; x > 1;) {
                if (x % p == 0) f[nf++] = p, x /= p;
                else p++;
            }
        int64_t td[TC_MAX_RANK], ts[TC_MAX_RANK];
        int tr = 0;
        for (int i = 0; i < nf; i++) {
            if (tr == 0 || (tr < TC_MAX_RANK && rnd(2))) td[tr++] = f[i];
            else td[tr - 1] *= f[i];
        }
        if (tr < TC_MAX_RANK && rnd(2)) { /* a size-1 dim somewhere */
            int at = rnd(tr + 1);
            for (int i = tr; i > at; i--) td[i] = td[i - 1];
            td[at] = 1, tr++;
        }
        if (tr == 0) td[tr++] = 1;
        bool got = tc_shape_reshape_strides(rank, vd, vs, tr, td, ts);
        if (identity) CHECK_MSG(got, "iteration %d: a contiguous view must reshape", iter);
        if (!got) {
            refused++;
            continue;
        }
        ok_count++;
        bool same = true;
        for (int64_t k = 0; k < numel && same; k++)
            same = offset_of(k, rank, vd, vs, 0) == offset_of(k, tr, td, ts, 0);
        CHECK_MSG(same, "iteration %d: reshaped strides address other elements", iter);
    }
    CHECK(ok_count > 1000 && refused > 100); /* both branches were exercised */

    /* hand-worked cases */
    int64_t d2[2] = {2, 3}, s2[2] = {1, 2}, d1[1] = {6}, out[4];
    CHECK(!tc_shape_reshape_strides(2, d2, s2, 1, d1, out)); /* a transpose does not flatten */
    int64_t d3[3] = {4, 6, 5}, s3[3] = {5, 20, 1}, t4[4] = {4, 2, 3, 5};
    CHECK(tc_shape_reshape_strides(3, d3, s3, 4, t4, out)); /* splitting a permuted dim */
    CHECK(out[0] == 5 && out[1] == 60 && out[2] == 20 && out[3] == 1);
    int64_t e1[2] = {3, 4}, z1[2] = {0, 1}, f1[1] = {12};
    CHECK(!tc_shape_reshape_strides(2, e1, z1, 1, f1, out)); /* an expanded dim does not merge with a real one */
    int64_t e2[2] = {3, 4}, z2[2] = {0, 0};
    CHECK(tc_shape_reshape_strides(2, e2, z2, 1, f1, out) && out[0] == 0);
    CHECK(tc_shape_is_contiguous(3, (int64_t[]){2, 1, 3}, (int64_t[]){3, 99, 1}));
    CHECK(!tc_shape_is_contiguous(2, (int64_t[]){2, 3}, (int64_t[]){1, 2}));
}

typedef struct chain {
    tc_graph_t *g;
    tc_value_t *x;
    tc_value_t *vals[16];
    int n;
} chain;

static tc_value_t *add(chain *c, const char *op, int n, const tc_arg *a) {
    tc_value_t *out = NULL;
    if (tc_graph_add_node(c->g, op, NULL, n, a, 1, &out, NULL) != TC_OK) {
        fprintf(stderr, "add %s: %s\n", op, tc_graph_last_error(c->g));
        return NULL;
    }
    c->vals[c->n++] = out;
    return out;
}

/* Runs the chain's graph on the CPU backend (every chain value an output, the input 0, 1, 2, ...)
 * and checks each value against the view that tc_shape_strided_view composes node by node from
 * the input's memory. Returns how many nodes composed. */
static int check_chain(chain *c, const char *what) {
    for (int i = 0; i < c->n; i++) CHECK(tc_graph_mark_output(c->g, c->vals[i], NULL) == TC_OK);
    CHECK(tc_graph_verify(c->g) == TC_OK);
    const tc_graph *g = (const tc_graph *)c->g;
    const tc_value *xv = (const tc_value *)c->x;
    int64_t xn = 1, xd[TC_MAX_RANK];
    for (int d = 0; d < xv->rank; d++) xd[d] = xv->dims[d], xn *= xd[d];
    float *in = malloc((size_t)xn * sizeof *in);
    for (int64_t i = 0; i < xn; i++) in[i] = (float)i;
    tc_tensor t = {.dtype = TC_F32, .rank = xv->rank, .data = in};
    for (int d = 0; d < xv->rank; d++) t.dims[d] = xd[d];
    tc_build_options o;
    tc_build_options_init(&o);
    o.backend = TC_BACKEND_CPU;
    tc_engine_t *e = NULL;
    tc_context_t *ctx = NULL;
    char err[512] = "";
    int composed = 0;
    bool ran = tc_engine_build(c->g, &o, &e, err, sizeof err) == TC_OK && tc_context_create(e, &ctx) == TC_OK &&
               tc_context_set_input(ctx, 0, &t) == TC_OK && tc_context_execute(ctx) == TC_OK;
    CHECK_MSG(ran, "%s: %s", what, err);
    /* the composed view of each value: starts at the input, contiguous */
    int64_t st[TC_MAX_RANK], base = 0, dims[TC_MAX_RANK];
    int rank = xv->rank;
    memcpy(dims, xd, sizeof dims);
    for (int d = rank - 1, s = 1; d >= 0; d--) st[d] = s, s *= (int)dims[d];
    bool chain_ok = true;
    for (int i = 0; ran && i < c->n && chain_ok; i++) {
        const tc_value *v = (const tc_value *)c->vals[i];
        const tc_node *n = v->producer;
        int64_t vd[TC_MAX_RANK], vs[TC_MAX_RANK], vb = 0;
        for (int d = 0; d < v->rank; d++) vd[d] = v->dims[d];
        chain_ok = tc_shape_strided_view(g, n, NULL, rank, dims, st, base, v->rank, vd, vs, &vb);
        if (!chain_ok) break;
        composed++;
        tc_tensor out;
        CHECK(tc_context_get_output(ctx, i, &out) == TC_OK);
        int64_t numel = 1;
        for (int d = 0; d < v->rank; d++) numel *= vd[d];
        const float *y = out.data;
        bool same = true;
        for (int64_t k = 0; k < numel && same; k++) same = (int64_t)y[k] == offset_of(k, v->rank, vd, vs, vb);
        CHECK_MSG(same, "%s: node %d (%s) reads other elements than its composed view", what, i, n->op_name);
        rank = v->rank, base = vb;
        memcpy(dims, vd, sizeof dims);
        memcpy(st, vs, sizeof st);
    }
    tc_context_free(ctx);
    tc_engine_free(e);
    tc_graph_free(c->g);
    free(in);
    return composed;
}

static chain new_chain(int rank, const int64_t *dims) {
    chain c = {0};
    CHECK(tc_graph_create(&c.g) == TC_OK);
    tc_dim d[TC_MAX_RANK];
    for (int i = 0; i < rank; i++) d[i] = dims[i];
    CHECK(tc_graph_add_input(c.g, "x", TC_F32, rank, d, &c.x) == TC_OK);
    return c;
}

/* Multi-head attention as nn.MultiheadAttention exports it (L=5, B=3, 3 x E with E = 2 heads x 4):
 * the packed projection viewed, permuted, made contiguous, split, and each part reshaped into
 * heads; then the attention output transposed back. */
static void test_attention_chain(void) {
    chain c = new_chain(3, (int64_t[]){5, 3, 24});
    tc_value_t *v1 = add(&c, "view", 2, (tc_arg[]){T(c.x), IS((int64_t[]){5, 3, 3, 8}, 4)});
    tc_value_t *v2 = add(&c, "unsqueeze", 2, (tc_arg[]){T(v1), I(0)});
    tc_value_t *v3 = add(&c, "permute", 2, (tc_arg[]){T(v2), IS((int64_t[]){3, 1, 2, 0, 4}, 5)});
    tc_value_t *v4 = add(&c, "squeeze.dims", 2, (tc_arg[]){T(v3), IS((int64_t[]){-2}, 1)});
    tc_value_t *v5 = add(&c, "clone", 1, (tc_arg[]){T(v4)});
    tc_value_t *v6 = add(&c, "select.int", 3, (tc_arg[]){T(v5), I(0), I(1)});
    tc_value_t *v7 = add(&c, "view", 2, (tc_arg[]){T(v6), IS((int64_t[]){5, 6, 4}, 3)});
    (void)v7;
    /* everything up to the select composes; the view that merges the batch with the heads across
     * the packed projection's stride does not (the executor gathers the clone there) */
    CHECK(check_chain(&c, "attention input") == 6);

    chain d = new_chain(3, (int64_t[]){5, 24, 4}); /* a contiguous [L, B*H, D] part */
    tc_value_t *p = add(&d, "permute", 2, (tc_arg[]){T(d.x), IS((int64_t[]){1, 0, 2}, 3)});
    tc_value_t *q = add(&d, "view", 2, (tc_arg[]){T(p), IS((int64_t[]){3, 8, 5, 4}, 4)});
    tc_value_t *o = add(&d, "permute", 2, (tc_arg[]){T(q), IS((int64_t[]){2, 0, 1, 3}, 4)});
    tc_value_t *f = add(&d, "view", 2, (tc_arg[]){T(o), IS((int64_t[]){15, 32}, 2)});
    (void)f;
    CHECK(check_chain(&d, "attention heads") == 4); /* the heads split and merge back to contiguous */
}

static void test_other_view_ops(void) {
    chain c = new_chain(4, (int64_t[]){2, 3, 4, 5});
    tc_value_t *a = add(&c, "transpose.int", 3, (tc_arg[]){T(c.x), I(1), I(3)});          /* [2, 5, 4, 3] */
    tc_value_t *b = add(&c, "slice.Tensor", 5, (tc_arg[]){T(a), I(1), I(1), I(5), I(2)}); /* [2, 2, 4, 3] */
    tc_value_t *s = add(&c, "select.int", 3, (tc_arg[]){T(b), I(2), I(-1)});               /* [2, 2, 3] */
    tc_value_t *u = add(&c, "unsqueeze", 2, (tc_arg[]){T(s), I(1)});                       /* [2, 1, 2, 3] */
    tc_value_t *e = add(&c, "expand", 2, (tc_arg[]){T(u), IS((int64_t[]){2, 4, 2, 3}, 4)}); /* [2, 4, 2, 3] */
    tc_value_t *t = add(&c, "t", 1, (tc_arg[]){T(add(&c, "view", 2, (tc_arg[]){T(e), IS((int64_t[]){-1, 3}, 2)}))});
    (void)t;
    /* the view of the expanded tensor cannot merge the broadcast dim with its neighbours */
    CHECK(check_chain(&c, "transpose, slice, select, unsqueeze, expand") == 5);

    chain d = new_chain(3, (int64_t[]){4, 1, 6});
    tc_value_t *f = add(&d, "flatten.using_ints", 3, (tc_arg[]){T(d.x), I(0), I(1)});     /* [4, 6] */
    tc_value_t *sl = add(&d, "slice.Tensor", 5, (tc_arg[]){T(f), I(1), I(2), NONE(), I(1)}); /* [4, 4] */
    tc_value_t *tt = add(&d, "t", 1, (tc_arg[]){T(sl)});                                  /* [4, 4] */
    tc_value_t *r = add(&d, "reshape", 2, (tc_arg[]){T(tt), IS((int64_t[]){2, 2, 4}, 3)});  /* splits a dim */
    tc_value_t *sq = add(&d, "unsqueeze", 2, (tc_arg[]){T(r), I(-1)});
    tc_value_t *al = add(&d, "alias", 1, (tc_arg[]){T(sq)});
    (void)al;
    CHECK(check_chain(&d, "flatten, slice, t, reshape, unsqueeze, alias") == 6);
}

int main(void) {
    test_reshape_strides_against_brute_force();
    test_attention_chain();
    test_other_view_ops();
    TEST_MAIN_END();
}
