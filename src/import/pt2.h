/* Importer for torch.export archives (.pt2, schema 8.x, archive version 0): builds an IR graph
 * from models/<model>.json, the weights and constants configs, and the raw tensor files.
 * Internal interface; the public entry points are tc_import_pt2 / tc_import_pt2_memory. */
#ifndef TC_IMPORT_PT2_H
#define TC_IMPORT_PT2_H

#include "import/json.h"
#include "import/zip.h"
#include "ir/graph.h"

/* Upper bound given to a symbol whose range_constraints max is missing or larger: torch writes
 * int_oo (or a huge number) for unbounded dims, and a bound this size keeps size arithmetic far
 * from overflow. */
#define TC_PT2_SYM_MAX_CAP ((int64_t)1 << 20)

/* Imports the archive z into the empty graph g. Constants borrow the archive's bytes where they are
 * contiguous and aligned, so the archive's bytes must outlive g. */
tc_status tc_pt2_import_zip(const tc_zip *z, tc_graph *g, tc_error *err);

/* Symbolic sizes named by the archive (symbol name or sym-int value name -> dim). */
typedef struct tc_pt2_symmap {
    struct tc_pt2_symslot {
        char *key;
        tc_dim dim;
    } *slots;
    size_t cap, n;
} tc_pt2_symmap;

tc_status tc_pt2_symmap_put(tc_pt2_symmap *m, const char *key, tc_dim dim);
bool tc_pt2_symmap_get(const tc_pt2_symmap *m, const char *key, tc_dim *dim);
void tc_pt2_symmap_free(tc_pt2_symmap *m);

/* Parses a SymPy srepr string as torch.export writes it ("Add(Symbol('s0', integer=True),
 * Integer(1))") into a dim of g. Accepts Symbol, Integer, Add, Mul, FloorDiv (CleanDiv), Mod
 * (PythonMod); rejects Max/Min and anything else with TC_ERR_UNSUPPORTED. A new symbol takes its
 * range from range_constraints (an object, may be NULL) — min 0 and max TC_PT2_SYM_MAX_CAP where
 * missing, max capped at TC_PT2_SYM_MAX_CAP — and opt = hint when the whole expression is that
 * symbol and has_hint, else its min. Symbols are remembered in syms by name. */
tc_status tc_pt2_parse_sym(tc_graph *g, tc_pt2_symmap *syms, const tc_json *range_constraints,
                           const char *expr, bool has_hint, int64_t hint, tc_dim *out, tc_error *err);

#endif
