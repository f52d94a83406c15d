/* `tensorc check MODEL.pt2`: imports a model and reports which backends can run its nodes: op
 * counts, every unsupported node with its op and the reason, and the model's inputs and symbols. */
#include "tensorc.h"
#include "cli.h"
#include "ir/graph.h"
#ifdef TC_HAVE_CUDA
#include "backend/cuda/cuda.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *backend_names[TC_BACKEND_COUNT] = {"cpu", "cuda"};

static void usage(FILE *f) {
    fprintf(f,
            "usage: tensorc check MODEL.pt2 [--backend cpu|cuda] [--allow-unsupported] [--json]\n"
            "       tensorc check MODEL.pt2 --plan [--fp16|--bf16]\n\n"
            "Imports a torch.export archive and reports, per backend, how many nodes it can run, and every\n"
            "node it cannot run with its op and the reason. Exits 1 when a node is unsupported on the\n"
            "chosen backend (default cpu) or the import fails, 0 otherwise.\n\n"
            "  --backend B           the backend whose support decides the exit code (cpu or cuda)\n"
            "  --allow-unsupported   exit 0 even when nodes are unsupported\n"
            "  --json                one JSON object instead of text\n"
            "  --plan                instead: the CUDA executor's plan of the optimized graph, without a GPU:\n"
            "                        its steps (fused groups, epilogues, channels-last values) and what each\n"
            "                        view-like step costs (alias, strided view or gather) with every symbolic\n"
            "                        size at its opt value; --fp16 / --bf16 optimize as `tensorc build` does\n");
}

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch < 0x20) printf("\\u%04x", ch);
        else putchar(ch);
    }
    putchar('"');
}

/* Why backend b cannot run node n, or NULL when it can. */
static const char *unsupported_reason(const tc_node *n, int b) {
    if (n->op < 0) return "not in the op table (the importer kept it as an opaque node)";
    if (!tc_op_supported(n->op, (tc_backend_kind)b))
        return b == TC_BACKEND_CUDA ? (tc_has_cuda() ? "no cuda kernel for this op" : "this build has no cuda backend")
                                    : "no cpu kernel for this op";
    return NULL;
}

typedef struct {
    const char *op;
    int count;
    int table_id;
} op_count;

static int by_count(const void *a, const void *b) {
    const op_count *x = a, *y = b;
    if (x->count != y->count) return y->count - x->count;
    return strcmp(x->op, y->op);
}

/* Writes what describe (tc_cuda_describe_steps or _views) says about g, growing its buffer until the
 * text fits; returns its status, the text or the reason in *out (malloc'ed). */
#ifdef TC_HAVE_CUDA
static tc_status describe_text(tc_status (*describe)(const tc_graph *, char *, size_t, int *, int *), const tc_graph *g,
                               char **out, int *a, int *b) {
    *out = NULL;
    for (size_t n = (size_t)1 << 16; n <= (size_t)1 << 26; n *= 2) {
        char *buf = malloc(n);
        if (!buf) return TC_ERR_OUT_OF_MEMORY;
        tc_status st = describe(g, buf, n, a, b);
        if (st != TC_ERR_INVALID_ARGUMENT || strlen(buf) + 1 < n) {
            *out = buf;
            return st;
        }
        free(buf);
    }
    return TC_ERR_OUT_OF_MEMORY;
}
#endif

/* `--plan`: the optimized graph as the CUDA executor lowers and plans it. */
static int check_plan(const char *path, tc_graph_t *g, int precision) {
#ifdef TC_HAVE_CUDA
    tc_optimize_options o;
    tc_optimize_options_init(&o);
    o.allow_fp16 = precision == 16;
    o.allow_bf16 = precision == 17;
    char err[1024];
    if (tc_graph_optimize(&g, &o, err, sizeof err) != TC_OK) {
        fprintf(stderr, "tensorc check: cannot optimize '%s': %s\n", path, err);
        tc_graph_free(g);
        return 1;
    }
    int steps = 0, fused = 0, skipped = 0, gathers = 0;
    char *text = NULL;
    tc_status st = describe_text(tc_cuda_describe_steps, g, &text, &steps, &fused);
    if (st != TC_OK) {
        fprintf(stderr, "tensorc check: cannot lower '%s' for cuda: %s\n", path, text ? text : "out of memory");
        free(text);
        tc_graph_free(g);
        return 1;
    }
    printf("model %s: %d nodes after the passes%s, %d cuda steps (%d nodes fused into others)\n", path,
           tc_graph_num_nodes(g), precision == 16 ? " (f16)" : precision == 17 ? " (bf16)" : "", steps, fused);
    printf("\nsteps:\n%s", text);
    free(text);
    st = describe_text(tc_cuda_describe_views, g, &text, &skipped, &gathers);
    if (st == TC_OK) {
        printf("\nview-like steps: %d run nothing, %d gather, the others run their kernel\n%s", skipped, gathers, text);
    } else {
        printf("\nview-like steps: not described (%s)\n", text ? text : "out of memory");
    }
    free(text);
    tc_graph_free(g);
    return 0;
#else
    (void)precision;
    fprintf(stderr, "tensorc check: --plan needs the CUDA backend, which this build of tensorc lacks ('%s' not planned)\n",
            path);
    tc_graph_free(g);
    return 1;
#endif
}

int tc_cli_check(int argc, char **argv) {
    const char *path = NULL;
    bool json = false, allow = false, plan = false;
    int precision = 32;
    int backend = TC_BACKEND_CPU;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--json") == 0) json = true;
        else if (strcmp(argv[i], "--plan") == 0) plan = true;
        else if (strcmp(argv[i], "--fp16") == 0) precision = 16;
        else if (strcmp(argv[i], "--bf16") == 0) precision = 17;
        else if (strcmp(argv[i], "--allow-unsupported") == 0) allow = true;
        else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
            i++;
            if (strcmp(argv[i], "cpu") == 0) backend = TC_BACKEND_CPU;
            else if (strcmp(argv[i], "cuda") == 0) backend = TC_BACKEND_CUDA;
            else {
                fprintf(stderr, "tensorc check: unknown backend '%s' (cpu or cuda)\n", argv[i]);
                return 2;
            }
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "tensorc check: unknown or incomplete option '%s' (see tensorc check --help)\n", argv[i]);
            return 2;
        } else if (!path) path = argv[i];
        else {
            fprintf(stderr, "tensorc check: more than one model given ('%s' and '%s')\n", path, argv[i]);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "tensorc check: no model given\n\n");
        usage(stderr);
        return 2;
    }
    char err[1024];
    tc_graph_t *g = NULL;
    tc_status st = tc_import_pt2(path, &g, err, sizeof err);
    if (st != TC_OK) {
        fprintf(stderr, "tensorc check: cannot import '%s': %s\n", path, err);
        return 1;
    }
    if (plan) return check_plan(path, g, precision);
    if (precision != 32) {
        fprintf(stderr, "tensorc check: --fp16 and --bf16 go with --plan\n");
        tc_graph_free(g);
        return 2;
    }

    int nn = g->nodes.n;
    op_count *ops = calloc((size_t)nn + 1, sizeof *ops);
    if (!ops) {
        tc_graph_free(g);
        fprintf(stderr, "tensorc check: out of memory\n");
        return 1;
    }
    int n_ops = 0, supported[TC_BACKEND_COUNT] = {0};
    for (int i = 0; i < nn; i++) {
        const tc_node *n = g->nodes.items[i];
        for (int b = 0; b < TC_BACKEND_COUNT; b++) supported[b] += unsupported_reason(n, b) == NULL;
        int k;
        for (k = 0; k < n_ops; k++)
            if (strcmp(ops[k].op, n->op_name) == 0) break;
        if (k == n_ops) ops[n_ops++] = (op_count){n->op_name, 0, n->op};
        ops[k].count++;
    }
    qsort(ops, (size_t)n_ops, sizeof *ops, by_count);
    int bad = nn - supported[backend];

    if (json) {
        printf("{\"model\": ");
        json_str(path);
        printf(", \"nodes\": %d, \"backend\": \"%s\", \"backends\": {", nn, backend_names[backend]);
        for (int b = 0; b < TC_BACKEND_COUNT; b++)
            printf("%s\"%s\": {\"supported\": %d, \"unsupported\": %d}", b ? ", " : "", backend_names[b], supported[b],
                   nn - supported[b]);
        printf("},\n \"inputs\": [");
        for (int i = 0; i < tc_graph_num_inputs(g); i++) {
            const tc_value *v = tc_graph_input(g, i);
            char t[512];
            printf("%s{\"name\": ", i ? ", " : "");
            json_str(v->name);
            printf(", \"type\": ");
            json_str(tc_value_type_string(g, v, t, sizeof t));
            printf("}");
        }
        printf("],\n \"ops\": [");
        for (int k = 0; k < n_ops; k++) {
            printf("%s\n  {\"op\": ", k ? "," : "");
            json_str(ops[k].op);
            printf(", \"count\": %d", ops[k].count);
            for (int b = 0; b < TC_BACKEND_COUNT; b++)
                printf(", \"%s\": %s", backend_names[b],
                       ops[k].table_id >= 0 && tc_op_supported(ops[k].table_id, (tc_backend_kind)b) ? "true" : "false");
            printf("}");
        }
        printf("],\n \"unsupported\": [");
        int first = 1;
        for (int i = 0; i < nn; i++) {
            const tc_node *n = g->nodes.items[i];
            const char *why = unsupported_reason(n, backend);
            if (!why) continue;
            printf("%s\n  {\"node\": ", first ? "" : ",");
            json_str(n->name);
            printf(", \"op\": ");
            json_str(n->op_name);
            printf(", \"reason\": ");
            json_str(why);
            printf("}");
            first = 0;
        }
        printf("]}\n");
    } else {
        printf("model %s: %d inputs, %d outputs, %d nodes, %d distinct ops\n", path, tc_graph_num_inputs(g),
               tc_graph_num_outputs(g), nn, n_ops);
        for (int i = 0; i < tc_graph_num_inputs(g); i++) {
            const tc_value *v = tc_graph_input(g, i);
            char t[512];
            printf("  input  %s: %s\n", v->name, tc_value_type_string(g, v, t, sizeof t));
        }
        for (int i = 0; i < g->syms.atoms.n; i++) {
            const tc_sym_atom *a = g->syms.atoms.items[i];
            if (a->kind != TC_ATOM_SYMBOL) continue;
            printf("  symbol %s in [%lld, %lld]%s, opt %lld\n", a->name, (long long)a->min, (long long)a->max,
                   a->max == ((int64_t)1 << 20) ? " (unbounded in the archive; capped)" : "", (long long)a->opt);
        }
        for (int b = 0; b < TC_BACKEND_COUNT; b++)
            printf("backend %-4s: %d of %d nodes supported\n", backend_names[b], supported[b], nn);
        printf("\n%-44s %6s  %-4s %-4s\n", "op", "count", "cpu", "cuda");
        for (int k = 0; k < n_ops; k++) {
            printf("%-44s %6d ", ops[k].op, ops[k].count);
            for (int b = 0; b < TC_BACKEND_COUNT; b++)
                printf(" %-4s", ops[k].table_id >= 0 && tc_op_supported(ops[k].table_id, (tc_backend_kind)b) ? "yes" : "-");
            printf("\n");
        }
        if (bad) {
            printf("\n%d node%s unsupported on %s:\n", bad, bad == 1 ? "" : "s", backend_names[backend]);
            for (int i = 0; i < nn; i++) {
                const tc_node *n = g->nodes.items[i];
                const char *why = unsupported_reason(n, backend);
                if (why) printf("  node '%s' (%s): %s\n", n->name, n->op_name, why);
            }
        } else {
            printf("\nevery node is supported on %s\n", backend_names[backend]);
        }
    }
    free(ops);
    tc_graph_free(g);
    return bad && !allow ? 1 : 0;
}
