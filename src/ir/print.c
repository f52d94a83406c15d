/* Printing graphs: a readable text form and Graphviz DOT. */
#include "ops/op.h"
#include "core/dtype.h"

#include <stdio.h>
#include <string.h>

static void print_arg(FILE *f, const tc_graph *g, const tc_arg *a) {
    char buf[128];
    switch (a->kind) {
    case TC_ARG_NONE: fprintf(f, "None"); break;
    case TC_ARG_TENSOR: fprintf(f, "%%%s", a->u.tensor->name); break;
    case TC_ARG_TENSORS:
        fprintf(f, "[");
        for (int64_t i = 0; i < a->count; i++)
            fprintf(f, "%s%s%s", i ? ", " : "", a->u.tensors[i] ? "%" : "None",
                    a->u.tensors[i] ? a->u.tensors[i]->name : "");
        fprintf(f, "]");
        break;
    case TC_ARG_INT: fprintf(f, "%s", tc_sym_print(&g->syms, a->u.i, buf, sizeof buf)); break;
    case TC_ARG_INTS:
        fprintf(f, "[");
        for (int64_t i = 0; i < a->count; i++)
            fprintf(f, "%s%s", i ? ", " : "", tc_sym_print(&g->syms, a->u.ints[i], buf, sizeof buf));
        fprintf(f, "]");
        break;
    case TC_ARG_FLOAT: fprintf(f, "%g", a->u.f); break;
    case TC_ARG_FLOATS:
        fprintf(f, "[");
        for (int64_t i = 0; i < a->count; i++) fprintf(f, "%s%g", i ? ", " : "", a->u.floats[i]);
        fprintf(f, "]");
        break;
    case TC_ARG_BOOL: fprintf(f, "%s", a->u.b ? "True" : "False"); break;
    case TC_ARG_BOOLS:
        fprintf(f, "[");
        for (int64_t i = 0; i < a->count; i++) fprintf(f, "%s%s", i ? ", " : "", a->u.bools[i] ? "True" : "False");
        fprintf(f, "]");
        break;
    case TC_ARG_STRING: fprintf(f, "'%s'", a->u.s); break;
    case TC_ARG_DTYPE: fprintf(f, "%s", tc_dtype_name(a->u.dtype)); break;
    case TC_ARG_KIND_COUNT: break;
    }
}

static void print_text(FILE *f, const tc_graph *g) {
    char t[512], b[128];
    fprintf(f, "graph(");
    for (int i = 0; i < g->inputs.n; i++) {
        tc_value *v = g->inputs.items[i];
        fprintf(f, "%s%%%s: %s", i ? ", " : "", v->name, tc_value_type_string(g, v, t, sizeof t));
    }
    fprintf(f, ") {\n");
    for (int i = 0; i < g->syms.atoms.n; i++) {
        const tc_sym_atom *a = g->syms.atoms.items[i];
        if (a->kind == TC_ATOM_SYMBOL)
            fprintf(f, "  symbol %s in [%lld, %lld], opt %lld\n", a->name, (long long)a->min, (long long)a->max,
                    (long long)a->opt);
    }
    for (int i = 0; i < g->values.n; i++) {
        tc_value *v = g->values.items[i];
        if (v->kind == TC_VALUE_CONSTANT)
            fprintf(f, "  %%%s = constant : %s\n", v->name, tc_value_type_string(g, v, t, sizeof t));
    }
    for (int i = 0; i < g->nodes.n; i++) {
        tc_node *n = g->nodes.items[i];
        fprintf(f, "  ");
        for (int k = 0; k < n->n_outputs; k++) fprintf(f, "%s%%%s", k ? ", " : "", n->outputs[k]->name);
        fprintf(f, " = %s(", n->op_name);
        if (n->op < 0) {
            for (int k = 0; k < n->n_inputs; k++)
                fprintf(f, "%s%s%s", k ? ", " : "", n->inputs[k] ? "%" : "None", n->inputs[k] ? n->inputs[k]->name : "");
            fprintf(f, ") [unknown op]");
        } else {
            for (int k = 0; k < n->n_args; k++) {
                fprintf(f, "%s%s=", k ? ", " : "", n->args[k].a.name);
                print_arg(f, g, &n->args[k].a);
            }
            fprintf(f, ")");
        }
        fprintf(f, " : ");
        for (int k = 0; k < n->n_outputs; k++)
            fprintf(f, "%s%s", k ? ", " : "", tc_value_type_string(g, n->outputs[k], t, sizeof t));
        fprintf(f, "\n");
    }
    fprintf(f, "  return ");
    for (int i = 0; i < g->outputs.n; i++) {
        tc_value *v = g->outputs.items[i];
        fprintf(f, "%s%%%s", i ? ", " : "", v->name);
        if (strcmp(g->output_names.items[i], v->name) != 0) fprintf(f, " as %s", (const char *)g->output_names.items[i]);
    }
    fprintf(f, "\n}\n");
    (void)b;
}

static void dot_escape(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
}

static void print_dot(FILE *f, const tc_graph *g) {
    char t[512];
    fprintf(f, "digraph tensorc {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n");
    for (int i = 0; i < g->inputs.n; i++) {
        tc_value *v = g->inputs.items[i];
        fprintf(f, "  v%d [shape=ellipse, style=filled, fillcolor=\"#d0e8ff\", label=\"", v->id);
        dot_escape(f, v->name);
        fprintf(f, "\\n");
        dot_escape(f, tc_value_type_string(g, v, t, sizeof t));
        fprintf(f, "\"];\n");
    }
    for (int i = 0; i < g->nodes.n; i++) {
        tc_node *n = g->nodes.items[i];
        fprintf(f, "  n%d [shape=box, style=filled, fillcolor=\"%s\", label=\"", n->id,
                n->op < 0 ? "#ffc0c0" : "#f0f0f0");
        dot_escape(f, n->op_name);
        fprintf(f, "\\n");
        dot_escape(f, n->name);
        fprintf(f, "\"];\n");
        for (int k = 0; k < n->n_inputs; k++) {
            tc_value *v = n->inputs[k];
            if (!v) continue;
            if (v->kind == TC_VALUE_CONSTANT) continue; /* weights would clutter the picture */
            if (v->kind == TC_VALUE_INPUT) fprintf(f, "  v%d -> n%d;\n", v->id, n->id);
            else {
                fprintf(f, "  n%d -> n%d [label=\"", v->producer->id, n->id);
                dot_escape(f, tc_value_type_string(g, v, t, sizeof t));
                fprintf(f, "\"];\n");
            }
        }
    }
    for (int i = 0; i < g->outputs.n; i++) {
        tc_value *v = g->outputs.items[i];
        fprintf(f, "  out%d [shape=ellipse, style=filled, fillcolor=\"#d0ffd0\", label=\"", i);
        dot_escape(f, g->output_names.items[i]);
        fprintf(f, "\"];\n");
        if (v->kind == TC_VALUE_NODE) fprintf(f, "  n%d -> out%d;\n", v->producer->id, i);
        else fprintf(f, "  v%d -> out%d;\n", v->id, i);
    }
    fprintf(f, "}\n");
}

tc_status tc_graph_print(const tc_graph_t *g, tc_print_format format, void *file) {
    if (!g || !file) return TC_ERR_INVALID_ARGUMENT;
    if (format == TC_PRINT_DOT) print_dot(file, g);
    else print_text(file, g);
    return ferror((FILE *)file) ? TC_ERR_IO : TC_OK;
}
