/* State shared by the files of the .pt2 importer (pt2.c: archive and signature, pt2_nodes.c: nodes,
 * pt2_sym.c: symbolic sizes). Not part of any interface outside src/import/pt2*.c. */
#ifndef TC_IMPORT_PT2_INTERNAL_H
#define TC_IMPORT_PT2_INTERNAL_H

#include "import/pt2.h"

typedef struct tc_pt2_valmap {
    struct tc_pt2_valslot {
        const char *key;
        tc_value *v;
    } *slots;
    size_t cap, n;
} tc_pt2_valmap;

typedef struct tc_pt2_ctx {
    const tc_zip *z;
    tc_graph *g;
    tc_error *err;
    char model[256];
    const tc_json *weights_cfg, *constants_cfg; /* the "config" objects, may be NULL */
    const tc_json *tensor_values, *sym_int_values, *ranges;
    tc_pt2_valmap values; /* tensor name -> value */
    tc_pt2_symmap syms;   /* symbol names and sym-int value names -> dim */
    tc_pt2_symmap used;   /* names of tensors some node or the output list reads (a set) */
} tc_pt2_ctx;

typedef struct tc_pt2_meta_t {
    tc_dtype dtype;
    int rank;
    tc_dim dims[TC_MAX_RANK];
    bool has_strides; /* all strides are plain ints */
    int64_t strides[TC_MAX_RANK];
    int64_t storage_offset;
} tc_pt2_meta_t;

tc_status tc_pt2_values_put(tc_pt2_ctx *c, const char *key, tc_value *v);
tc_value *tc_pt2_values_get(const tc_pt2_ctx *c, const char *key);
bool tc_pt2_dtype(int64_t scalar_type, tc_dtype *out);
const char *tc_pt2_scalar_type_name(int64_t scalar_type);
/* A SymInt ({"as_int"} or {"as_expr": {"expr_str", "hint"}}) as a dim; `what` prefixes messages. */
tc_status tc_pt2_symint(tc_pt2_ctx *c, const tc_json *si, const char *what, tc_dim *out);
tc_status tc_pt2_meta(tc_pt2_ctx *c, const tc_json *meta, const char *what, tc_pt2_meta_t *out);
tc_status tc_pt2_import_nodes(tc_pt2_ctx *c, const tc_json *nodes);
/* Fills c->used from every tensor argument of nodes and the user outputs. */
tc_status tc_pt2_collect_used(tc_pt2_ctx *c, const tc_json *nodes, const tc_json *output_specs);

#endif
