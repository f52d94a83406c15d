/* `tensorc inspect ENGINE.tce`: the engine file's header (target, versions, build settings, source
 * model), its I/O table, every step (node, op, implementation, precision) and the memory totals, as
 * text or JSON; --dot draws the steps for Graphviz. */
#define _POSIX_C_SOURCE 200809L
#include "tensorc.h"
#include "cli.h"
#include "engine/serialize.h"

#ifdef TC_HAVE_CUDA
#include "backend/cuda/cuda.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: tensorc inspect ENGINE.tce [--json] [--dot FILE]\n\n"
            "Shows what an engine file holds: the format version, the target (cpu, or the GPU with its compute\n"
            "capability and SM count, and the CUDA library versions), the build settings, the source model's\n"
            "hash, the inputs and outputs with their shape ranges, every step (node, op, implementation,\n"
            "precision, workspace) and the memory totals (weights, activations at the opt shapes).\n\n"
            "  --json       print one JSON object instead of text\n"
            "  --dot FILE   also write the steps as a Graphviz graph (dot -Tsvg FILE -o steps.svg)\n\n"
            "Exit status: 0 success, 1 the file is not a loadable engine, 2 bad usage.\n");
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void dot_str(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
}

static size_t value_bytes_at_opt(const tc_graph *g, const tc_value *v, const int64_t *opt) {
    size_t n = tc_dtype_size(v->dtype);
    for (int d = 0; d < v->rank; d++) {
        int64_t x = tc_sym_eval(&g->syms, v->dims[d], opt);
        n *= (size_t)(x > 0 ? x : 0);
    }
    return n;
}

typedef struct totals {
    size_t weights, activation_total, activation_peak;
    int n_constants;
} totals;

/* Weights, and activations at the opt shapes: their sum and the peak of the live set (each value
 * lives from its step to its last reader; graph outputs to the end). */
static totals memory_totals(const tc_graph *g) {
    totals t = {0};
    int nv = g->values.n, na = g->syms.atoms.n;
    int64_t *opt = calloc((size_t)na + 1, sizeof *opt);
    int *last = calloc((size_t)nv + 1, sizeof *last);
    if (!opt || !last) {
        free(opt), free(last);
        return t;
    }
    for (int i = 0; i < na; i++) {
        const tc_sym_atom *a = g->syms.atoms.items[i];
        opt[i] = a->kind == TC_ATOM_SYMBOL ? a->opt : 0;
    }
    for (int i = 0; i < nv; i++) {
        const tc_value *v = g->values.items[i];
        last[i] = -1;
        if (v->kind == TC_VALUE_CONSTANT) t.weights += v->nbytes, t.n_constants++;
    }
    for (int s = 0; s < g->nodes.n; s++) {
        const tc_node *n = g->nodes.items[s];
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k]) last[n->inputs[k]->id] = s;
    }
    for (int i = 0; i < g->outputs.n; i++) last[((tc_value *)g->outputs.items[i])->id] = g->nodes.n;
    size_t live = 0;
    for (int s = 0; s < g->nodes.n; s++) {
        const tc_node *n = g->nodes.items[s];
        for (int k = 0; k < n->n_outputs; k++) {
            size_t b = value_bytes_at_opt(g, n->outputs[k], opt);
            live += b;
            t.activation_total += b;
        }
        if (live > t.activation_peak) t.activation_peak = live;
        for (int k = 0; k < n->n_outputs; k++)
            if (last[n->outputs[k]->id] < s) live -= value_bytes_at_opt(g, n->outputs[k], opt); /* never read */
        for (int k = 0; k < n->n_inputs; k++) {
            const tc_value *v = n->inputs[k];
            if (!v || v->kind != TC_VALUE_NODE || last[v->id] != s) continue;
            bool dup = false; /* a value read twice by this node is freed once */
            for (int j = 0; j < k; j++) dup = dup || n->inputs[j] == v;
            if (!dup) live -= value_bytes_at_opt(g, v, opt);
        }
    }
    free(opt);
    free(last);
    return t;
}

static const char *type_str(const tc_graph *g, const tc_value *v, char *buf, size_t size) {
    return tc_value_type_string(g, v, buf, size);
}

static void print_io_text(const tc_graph *g, const char *name, const tc_value *v) {
    char t[512];
    printf("  %-20s %s", name, type_str(g, v, t, sizeof t));
    for (int d = 0; d < v->rank; d++) {
        if (!TC_DIM_IS_SYM(v->dims[d])) continue;
        int64_t lo, o, hi;
        char b[128];
        tc_sym_range(&g->syms, v->dims[d], &lo, &o, &hi);
        printf("  dim %d = %s in [%lld, %lld] opt %lld", d, tc_sym_print(&g->syms, v->dims[d], b, sizeof b),
               (long long)lo, (long long)hi, (long long)o);
    }
    printf("\n");
}

static void print_io_json(FILE *f, const tc_graph *g, const char *name, const tc_value *v) {
    char b[128];
    fprintf(f, "{\"name\": ");
    json_str(f, name);
    fprintf(f, ", \"dtype\": \"%s\", \"shape\": [", tc_dtype_name(v->dtype));
    for (int d = 0; d < v->rank; d++) {
        int64_t lo, o, hi;
        tc_sym_range(&g->syms, v->dims[d], &lo, &o, &hi);
        fprintf(f, "%s{\"dim\": ", d ? ", " : "");
        json_str(f, tc_sym_print(&g->syms, v->dims[d], b, sizeof b));
        fprintf(f, ", \"min\": %lld, \"opt\": %lld, \"max\": %lld}", (long long)lo, (long long)o, (long long)hi);
    }
    fprintf(f, "]}");
}

/* Steps as the engine's target backend runs them, also when only its graph could be loaded here
 * (a CUDA engine without a GPU or without the CUDA backend: then "cuda:?"). */
static void describe(const tc_engine_t *e, int step, tc_backend_kind target, tc_step_desc *d) {
    tc_engine_describe_step_for(e, target, step, d);
}

/* The CUDA executor's fused steps of the graph ("conv1 + bn1 + relu1: convolution, folded scale,
 * bias, relu"), one per line, in a malloc'ed string; NULL when this build has no CUDA backend or the
 * lowering fails (*why then says so). */
static char *cuda_steps(const tc_graph *g, int *n_steps, int *n_fused, char *why, size_t why_size) {
    *n_steps = *n_fused = 0;
    snprintf(why, why_size, "this build of tensorc has no CUDA backend");
#ifdef TC_HAVE_CUDA
    for (size_t n = (size_t)1 << 16; n <= (size_t)1 << 26; n *= 2) {
        char *buf = malloc(n);
        if (!buf) break;
        tc_status st = tc_cuda_describe_steps(g, buf, n, n_steps, n_fused);
        if (st == TC_OK) return buf;
        if (st != TC_ERR_INVALID_ARGUMENT || strlen(buf) + 1 < n) { /* failed, not cut */
            snprintf(why, why_size, "%s", buf);
            free(buf);
            return NULL;
        }
        free(buf);
    }
    snprintf(why, why_size, "out of memory describing the steps");
#else
    (void)g;
#endif
    return NULL;
}

static int write_dot(const char *path, const tc_engine_t *e, const tc_graph *g, tc_backend_kind target) {
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return 1;
    }
    fprintf(f, "digraph engine {\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\", fontsize=10];\n");
    char t[512];
    for (int i = 0; i < g->inputs.n; i++) {
        const tc_value *v = g->inputs.items[i];
        fprintf(f, "  in%d [shape=ellipse, label=\"", i);
        dot_str(f, v->name);
        fprintf(f, "\\n");
        dot_str(f, type_str(g, v, t, sizeof t));
        fprintf(f, "\"];\n");
    }
    for (int s = 0; s < g->nodes.n; s++) {
        const tc_node *n = g->nodes.items[s];
        tc_step_desc d;
        describe(e, s, target, &d);
        fprintf(f, "  s%d [label=\"#%d ", s, s);
        dot_str(f, n->name);
        fprintf(f, "\\n");
        dot_str(f, n->op_name);
        fprintf(f, "\\n");
        dot_str(f, d.implementation);
        fprintf(f, " (%s)\"];\n", d.precision);
        for (int k = 0; k < n->n_inputs; k++) {
            const tc_value *v = n->inputs[k];
            if (!v) continue;
            if (v->kind == TC_VALUE_INPUT) fprintf(f, "  in%d -> s%d;\n", v->input_index, s);
            else if (v->kind == TC_VALUE_NODE) {
                fprintf(f, "  s%d -> s%d [label=\"", v->producer->id, s);
                dot_str(f, type_str(g, v, t, sizeof t));
                fprintf(f, "\", fontsize=8];\n");
            }
        }
    }
    for (int i = 0; i < g->outputs.n; i++) {
        const tc_value *v = g->outputs.items[i];
        fprintf(f, "  out%d [shape=ellipse, label=\"", i);
        dot_str(f, g->output_names.items[i]);
        fprintf(f, "\\n");
        dot_str(f, type_str(g, v, t, sizeof t));
        fprintf(f, "\"];\n");
        if (v->kind == TC_VALUE_NODE) fprintf(f, "  s%d -> out%d;\n", v->producer->id, i);
        else if (v->kind == TC_VALUE_INPUT) fprintf(f, "  in%d -> out%d;\n", v->input_index, i);
    }
    fprintf(f, "}\n");
    if (fclose(f) != 0) {
        perror(path);
        return 1;
    }
    return 0;
}

int tc_cli_inspect(int argc, char **argv) {
    const char *path = NULL, *dot = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--dot") == 0 && i + 1 < argc) {
            dot = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "tensorc inspect: unknown or incomplete option '%s' (see tensorc inspect --help)\n", a);
            return 2;
        } else if (!path) {
            path = a;
        } else {
            fprintf(stderr, "tensorc inspect: more than one engine given ('%s' and '%s')\n", path, a);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "tensorc inspect: no engine given\n\n");
        usage(stderr);
        return 2;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "tensorc inspect: cannot open '%s'\n", path);
        return 1;
    }
    fclose(f);
    if (!tc_cli_is_engine_file(path)) {
        fprintf(stderr, "tensorc inspect: '%s' is not an engine file; build one with: tensorc build %s -o ENGINE.tce\n",
                path, path);
        return 1;
    }
    FILE *fh = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t n = 0;
    if (fh) {
        fseek(fh, 0, SEEK_END);
        long len = ftell(fh);
        fseek(fh, 0, SEEK_SET);
        buf = len > 0 ? malloc((size_t)len) : NULL;
        if (buf) n = fread(buf, 1, (size_t)len, fh);
        fclose(fh);
    }
    tc_engine_info info;
    tc_error err = {0};
    if (!buf || tc_engine_file_info(buf, n, &info, &err) != TC_OK) {
        fprintf(stderr, "tensorc inspect: %s: %s\n", path, buf ? err.msg : "cannot read");
        free(buf);
        return 1;
    }
    /* A CUDA engine that cannot run here (no CUDA backend, no GPU, another GPU architecture, other
     * libraries) is still shown, through its graph loaded for the CPU; why it cannot run is reported. */
    tc_backend_kind target = info.target.backend;
    tc_build_options over = info.options;
    over.backend = TC_BACKEND_CPU;
    tc_engine_t *e = NULL;
    char msg[2048], why[2048] = "";
    tc_status st = tc_engine_deserialize(buf, n, NULL, &e, msg, sizeof msg);
    bool loadable = st == TC_OK;
    if (st != TC_OK && target == TC_BACKEND_CUDA &&
        (st == TC_ERR_UNSUPPORTED || st == TC_ERR_CUDA || st == TC_ERR_VERSION || st == TC_ERR_INVALID_ARGUMENT ||
         st == TC_ERR_OUT_OF_MEMORY)) {
        snprintf(why, sizeof why, "%s", msg);
        st = tc_engine_deserialize(buf, n, &over, &e, msg, sizeof msg);
    }
    free(buf);
    if (st != TC_OK) {
        fprintf(stderr, "tensorc inspect: cannot load the engine %s: %s\n", path, msg);
        return 1;
    }
    const tc_graph *g = tc_engine_graph(e);
    totals tot = memory_totals(g);
    const tc_engine_target *t = &info.target;
    const tc_build_options *o = &info.options;
    bool cuda = t->backend == TC_BACKEND_CUDA;
    char tb[512];

    if (json) {
        FILE *out = stdout;
        fprintf(out, "{\n  \"file\": ");
        json_str(out, path);
        fprintf(out, ",\n  \"format_version\": %u,\n  \"file_bytes\": %llu,\n  \"tensorc_version\": ", info.format_version,
                (unsigned long long)info.file_size);
        json_str(out, info.tensorc_version);
        fprintf(out, ",\n  \"target\": {\"backend\": \"%s\", \"device\": ", cuda ? "cuda" : "cpu");
        json_str(out, t->device_name);
        fprintf(out, ", \"compute_capability\": \"%d.%d\", \"sm_count\": %d, \"cuda\": ", t->cc_major, t->cc_minor,
                t->sm_count);
        json_str(out, t->cuda_version);
        fprintf(out, ", \"cudnn\": ");
        json_str(out, t->cudnn_version);
        fprintf(out, ", \"cublaslt\": ");
        json_str(out, t->cublaslt_version);
        fprintf(out, ", \"nvrtc\": ");
        json_str(out, t->nvrtc_version);
        fprintf(out, ", \"driver\": ");
        json_str(out, t->driver_version);
        fprintf(out,
                "},\n  \"build\": {\"num_threads\": %d, \"device\": %d, \"allow_fp16\": %s, \"allow_bf16\": %s, "
                "\"disable_tf32\": %s, \"workspace_bytes\": %zu",
                o->num_threads, o->device, o->allow_fp16 ? "true" : "false", o->allow_bf16 ? "true" : "false",
                o->disable_tf32 ? "true" : "false", o->workspace_bytes);
        for (int i = 0; i < info.n_settings; i++) {
            fprintf(out, ", ");
            json_str(out, info.setting_keys[i]);
            fprintf(out, ": ");
            json_str(out, info.setting_values[i]);
        }
        fprintf(out, "},\n  \"source_model\": {\"name\": ");
        json_str(out, info.model_name);
        fprintf(out, ", \"hash\": \"%016llx\"},\n  \"build_command\": ", (unsigned long long)info.model_hash);
        json_str(out, info.build_command);
        fprintf(out, ",\n  \"loadable_here\": %s, \"load_error\": ", loadable ? "true" : "false");
        if (loadable) fprintf(out, "null");
        else json_str(out, why);
        fprintf(out, ",\n  \"inputs\": [");
        for (int i = 0; i < g->inputs.n; i++) {
            fprintf(out, "%s\n    ", i ? "," : "");
            print_io_json(out, g, ((tc_value *)g->inputs.items[i])->name, g->inputs.items[i]);
        }
        fprintf(out, "],\n  \"outputs\": [");
        for (int i = 0; i < g->outputs.n; i++) {
            fprintf(out, "%s\n    ", i ? "," : "");
            print_io_json(out, g, g->output_names.items[i], g->outputs.items[i]);
        }
        fprintf(out, "],\n  \"steps\": [");
        for (int s = 0; s < g->nodes.n; s++) {
            const tc_node *nd = g->nodes.items[s];
            tc_step_desc d;
            describe(e, s, target, &d);
            fprintf(out, "%s\n    {\"index\": %d, \"node\": ", s ? "," : "", s);
            json_str(out, nd->name);
            fprintf(out, ", \"op\": ");
            json_str(out, nd->op_name);
            fprintf(out, ", \"implementation\": ");
            json_str(out, d.implementation);
            fprintf(out, ", \"precision\": \"%s\", \"workspace_bytes\": %llu, \"output\": ", d.precision,
                    (unsigned long long)d.workspace_bytes);
            json_str(out, nd->n_outputs ? type_str(g, nd->outputs[0], tb, sizeof tb) : "");
            fprintf(out, "}");
        }
        if (target == TC_BACKEND_CUDA) {
            int ns, nf;
            char why_steps[1024];
            char *cs = cuda_steps(g, &ns, &nf, why_steps, sizeof why_steps);
            fprintf(out, "],\n  \"cuda_steps\": ");
            if (cs) {
                fprintf(out, "{\"steps\": %d, \"fused_nodes\": %d, \"lines\": [", ns, nf);
                int k = 0;
                for (char *line = strtok(cs, "\n"); line; line = strtok(NULL, "\n")) {
                    fprintf(out, "%s\n    ", k++ ? "," : "");
                    json_str(out, line);
                }
                fprintf(out, "]}");
                free(cs);
            } else {
                fprintf(out, "{\"error\": ");
                json_str(out, why_steps);
                fprintf(out, "}");
            }
            fprintf(out, ",\n  \"memory\": {");
        } else {
            fprintf(out, "],\n  \"memory\": {");
        }
        fprintf(out,
                "\"weights_bytes\": %zu, \"constants\": %d, \"activation_peak_bytes_at_opt\": %zu, "
                "\"activation_total_bytes_at_opt\": %zu, \"step_records\": %u, \"step_record_bytes\": %llu}\n}\n",
                tot.weights, tot.n_constants, tot.activation_peak, tot.activation_total, info.n_records,
                (unsigned long long)info.record_bytes);
    } else {
        printf("engine %s: format %u, %llu bytes, checksum ok, written by tensorc %s\n", path, info.format_version,
               (unsigned long long)info.file_size, info.tensorc_version);
        if (cuda)
            printf("target: cuda, %s (compute capability %d.%d, %d SMs); CUDA %s, cuDNN %s, cuBLASLt %s, NVRTC %s, driver %s\n",
                   t->device_name, t->cc_major, t->cc_minor, t->sm_count, t->cuda_version, t->cudnn_version,
                   t->cublaslt_version, t->nvrtc_version, t->driver_version);
        else printf("target: cpu\n");
        printf("build: threads %d%s%s%s", o->num_threads, o->allow_fp16 ? ", fp16" : "", o->allow_bf16 ? ", bf16" : "",
               o->disable_tf32 ? ", no tf32" : "");
        if (o->workspace_bytes) printf(", workspace %zu bytes", o->workspace_bytes);
        for (int i = 0; i < info.n_settings; i++) printf(", %s=%s", info.setting_keys[i], info.setting_values[i]);
        printf("\nsource model: %s (hash %016llx)\n", info.model_name[0] ? info.model_name : "unknown",
               (unsigned long long)info.model_hash);
        if (info.build_command[0]) printf("rebuild with: %s\n", info.build_command);
        if (!loadable) printf("cannot run here (steps shown from its graph): %s\n", why);
        printf("inputs:\n");
        for (int i = 0; i < g->inputs.n; i++) print_io_text(g, ((tc_value *)g->inputs.items[i])->name, g->inputs.items[i]);
        printf("outputs:\n");
        for (int i = 0; i < g->outputs.n; i++) print_io_text(g, g->output_names.items[i], g->outputs.items[i]);
        int wn = 4, wo = 2, wi = 14;
        for (int s = 0; s < g->nodes.n; s++) {
            const tc_node *nd = g->nodes.items[s];
            tc_step_desc d;
            describe(e, s, target, &d);
            int a = (int)strlen(nd->name), b = (int)strlen(nd->op_name), c = (int)strlen(d.implementation);
            wn = a > wn ? (a < 48 ? a : 48) : wn;
            wo = b > wo ? (b < 48 ? b : 48) : wo;
            wi = c > wi ? c : wi;
        }
        printf("steps (%d):\n  %4s  %-*s  %-*s  %-*s  %-5s %s\n", g->nodes.n, "#", wn, "node", wo, "op", wi,
               "implementation", "prec", "output");
        for (int s = 0; s < g->nodes.n; s++) {
            const tc_node *nd = g->nodes.items[s];
            tc_step_desc d;
            describe(e, s, target, &d);
            printf("  %4d  %-*s  %-*s  %-*s  %-5s %s\n", s, wn, nd->name, wo, nd->op_name, wi, d.implementation,
                   d.precision, nd->n_outputs ? type_str(g, nd->outputs[0], tb, sizeof tb) : "");
        }
        if (target == TC_BACKEND_CUDA) {
            int ns, nf;
            char why_steps[1024];
            char *cs = cuda_steps(g, &ns, &nf, why_steps, sizeof why_steps);
            if (cs) {
                printf("cuda steps (%d, %d node(s) fused into another's step):\n", ns, nf);
                for (char *line = strtok(cs, "\n"); line; line = strtok(NULL, "\n")) printf("  %s\n", line);
                free(cs);
            } else {
                printf("cuda steps: unknown (%s)\n", why_steps);
            }
        }
        printf("memory: weights %zu bytes in %d constants; activations at opt shapes: peak %zu bytes, total %zu bytes; "
               "step records: %u (%llu bytes)\n",
               tot.weights, tot.n_constants, tot.activation_peak, tot.activation_total, info.n_records,
               (unsigned long long)info.record_bytes);
    }
    int rc = dot ? write_dot(dot, e, g, target) : 0;
    tc_engine_free(e);
    return rc;
}
