/* The .pt2 importer, archive side: version gates, the weights and constants configs, the graph
 * signature (inputs, weights, outputs), and the public tc_import_pt2 entry points. The nodes are
 * imported by pt2_nodes.c. */
#include "import/pt2_internal.h"
#include "core/dtype.h"

#include <stdlib.h>
#include <string.h>

/* ---- name -> value map ------------------------------------------------------------------------- */

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

tc_status tc_pt2_values_put(tc_pt2_ctx *c, const char *key, tc_value *v) {
    tc_pt2_valmap *m = &c->values;
    if ((m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        struct tc_pt2_valslot *s = calloc(cap, sizeof *s);
        if (!s) return tc_errorf(c->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->slots[i].key) continue;
            size_t j = hash_str(m->slots[i].key) & (cap - 1);
            while (s[j].key) j = (j + 1) & (cap - 1);
            s[j] = m->slots[i];
        }
        free(m->slots);
        m->slots = s;
        m->cap = cap;
    }
    size_t j = hash_str(key) & (m->cap - 1);
    while (m->slots[j].key) {
        if (strcmp(m->slots[j].key, key) == 0)
            return tc_errorf(c->err, TC_ERR_FORMAT, "pt2: tensor '%s' is defined twice", key);
        j = (j + 1) & (m->cap - 1);
    }
    m->slots[j].key = key; /* points into the JSON document, which outlives the map */
    m->slots[j].v = v;
    m->n++;
    return TC_OK;
}

tc_value *tc_pt2_values_get(const tc_pt2_ctx *c, const char *key) {
    const tc_pt2_valmap *m = &c->values;
    if (!m->cap || !key) return NULL;
    size_t j = hash_str(key) & (m->cap - 1);
    while (m->slots[j].key) {
        if (strcmp(m->slots[j].key, key) == 0) return m->slots[j].v;
        j = (j + 1) & (m->cap - 1);
    }
    return NULL;
}

/* ---- tensor metadata --------------------------------------------------------------------------- */

bool tc_pt2_dtype(int64_t scalar_type, tc_dtype *out) {
    /* torch/_export/serde/schema.py ScalarType (not c10's numbering) */
    switch (scalar_type) {
    case 1: *out = TC_U8; return true;
    case 2: *out = TC_I8; return true;
    case 4: *out = TC_I32; return true;
    case 5: *out = TC_I64; return true;
    case 6: *out = TC_F16; return true;
    case 7: *out = TC_F32; return true;
    case 8: *out = TC_F64; return true;
    case 12: *out = TC_BOOL; return true;
    case 13: *out = TC_BF16; return true;
    case 29: *out = TC_F8E4M3; return true;
    default: return false;
    }
}

const char *tc_pt2_scalar_type_name(int64_t scalar_type) {
    switch (scalar_type) {
    case 0: return "unknown";
    case 3: return "int16";
    case 9: return "complex32";
    case 10: return "complex64";
    case 11: return "complex128";
    case 28: return "uint16";
    case 30: return "float8_e5m2";
    case 31: return "float8_e4m3fnuz";
    case 32: return "float8_e5m2fnuz";
    default: return "?";
    }
}

tc_status tc_pt2_symint(tc_pt2_ctx *c, const tc_json *si, const char *what, tc_dim *out) {
    int64_t v;
    if (tc_json_int(tc_json_get(si, "as_int"), &v)) {
        if (v < 0) return tc_errorf(c->err, TC_ERR_FORMAT, "pt2: %s: negative size %lld", what, (long long)v);
        *out = v;
        return TC_OK;
    }
    const tc_json *e = tc_json_get(si, "as_expr");
    const char *s = tc_json_string(tc_json_get(e, "expr_str"));
    if (!s) return tc_errorf(c->err, TC_ERR_FORMAT, "pt2: %s: a size is neither as_int nor as_expr", what);
    int64_t hint = 0;
    bool has_hint = tc_json_int(tc_json_get(tc_json_get(e, "hint"), "as_int"), &hint);
    tc_status st = tc_pt2_parse_sym(c->g, &c->syms, c->ranges, s, has_hint, hint, out, c->err);
    if (st != TC_OK) {
        char msg[sizeof c->err->msg];
        snprintf(msg, sizeof msg, "%s", c->err->msg);
        return tc_errorf(c->err, st, "pt2: %s: %s", what, msg);
    }
    if (!TC_DIM_IS_SYM(*out) && *out < 0)
        return tc_errorf(c->err, TC_ERR_FORMAT, "pt2: %s: size expression \"%.200s\" is negative", what, s);
    return TC_OK;
}

tc_status tc_pt2_meta(tc_pt2_ctx *c, const tc_json *meta, const char *what, tc_pt2_meta_t *out) {
    memset(out, 0, sizeof *out);
    int64_t st_enum;
    if (!meta || !tc_json_int(tc_json_get(meta, "dtype"), &st_enum))
        return tc_errorf(c->err, TC_ERR_FORMAT, "pt2: %s: tensor metadata without a dtype", what);
    if (!tc_pt2_dtype(st_enum, &out->dtype))
        return tc_errorf(c->err, TC_ERR_DTYPE, "pt2: %s: dtype %s (serde ScalarType %lld) is not supported by tensorc",
                         what, tc_pt2_scalar_type_name(st_enum), (long long)st_enum);
    int64_t layout;
    if (tc_json_int(tc_json_get(meta, "layout"), &layout) && layout != 7 && layout != 0)
        return tc_errorf(c->err, TC_ERR_UNSUPPORTED, "pt2: %s: only strided (dense) tensors are supported (layout %lld)",
                         what, (long long)layout);
    const tc_json *sizes = tc_json_get(meta, "sizes");
    if (tc_json_type_of(sizes) != TC_JSON_ARRAY)
        return tc_errorf(c->err, TC_ERR_FORMAT, "pt2: %s: tensor metadata without sizes", what);
    size_t rank = tc_json_len(sizes);
    if (rank > TC_MAX_RANK)
        return tc_errorf(c->err, TC_ERR_UNSUPPORTED, "pt2: %s: rank %zu exceeds tensorc's maximum of %d", what, rank,
                         TC_MAX_RANK);
    out->rank = (int)rank;
    for (size_t i = 0; i < rank; i++) TC_TRY(tc_pt2_symint(c, tc_json_at(sizes, i), what, &out->dims[i]));
    const tc_json *strides = tc_json_get(meta, "strides");
    out->has_strides = tc_json_type_of(strides) == TC_JSON_ARRAY && tc_json_len(strides) == rank;
    for (size_t i = 0; out->has_strides && i < rank; i++)
        if (!tc_json_int(tc_json_get(tc_json_at(strides, i), "as_int"), &out->strides[i]) || out->strides[i] < 0)
            out->has_strides = false;
    out->storage_offset = 0;
    int64_t off;
    if (tc_json_int(tc_json_get(tc_json_get(meta, "storage_offset"), "as_int"), &off)) {
        if (off < 0) return tc_errorf(c->err, TC_ERR_FORMAT, "pt2: %s: negative storage offset", what);
        out->storage_offset = off;
    }
    return TC_OK;
}

/* ---- weights and constants --------------------------------------------------------------------- */

/* Finds the payload entry of fqn: the weights config first, then the constants config (non-persistent
 * buffers and lifted tensor constants live there). */
static const tc_json *find_payload(tc_pt2_ctx *c, const char *fqn, const char **folder) {
    const tc_json *cfgs[2] = {c->weights_cfg, c->constants_cfg};
    const char *dirs[2] = {"data/weights/", "data/constants/"};
    for (int k = 0; k < 2; k++) {
        const tc_json *e = tc_json_get(cfgs[k], fqn);
        if (e) {
            *folder = dirs[k];
            return e;
        }
    }
    return NULL;
}

static tc_status add_weight(tc_pt2_ctx *c, const char *value_name, const char *fqn, const char *kind) {
    const char *folder = NULL;
    const tc_json *e = find_payload(c, fqn, &folder);
    if (!e)
        return tc_errorf(c->err, TC_ERR_NOT_FOUND,
                         "pt2: %s '%s' is not in data/weights/%s_weights_config.json or "
                         "data/constants/%s_constants_config.json",
                         kind, fqn, c->model, c->model);
    bool pickled = false;
    tc_json_bool(tc_json_get(e, "use_pickle"), &pickled);
    if (pickled)
        return tc_errorf(c->err, TC_ERR_UNSUPPORTED,
                         "pt2: %s '%s' is pickled (a tensor subclass or custom object); tensorc reads plain tensors only",
                         kind, fqn);
    const char *path = tc_json_string(tc_json_get(e, "path_name"));
    if (!path || !*path || strstr(path, ".."))
        return tc_errorf(c->err, TC_ERR_FORMAT, "pt2: %s '%s' has no valid path_name", kind, fqn);
    char what[600];
    snprintf(what, sizeof what, "%s '%s'", kind, fqn);
    tc_pt2_meta_t m;
    TC_TRY(tc_pt2_meta(c, tc_json_get(e, "tensor_meta"), what, &m));
    int64_t dims[TC_MAX_RANK];
    size_t numel = 1;
    for (int i = 0; i < m.rank; i++) {
        if (TC_DIM_IS_SYM(m.dims[i])) return tc_errorf(c->err, TC_ERR_FORMAT, "pt2: %s has a symbolic size", what);
        dims[i] = m.dims[i];
        if (dims[i] && numel > ((size_t)1 << 48) / (size_t)dims[i])
            return tc_errorf(c->err, TC_ERR_FORMAT, "pt2: %s is impossibly large", what);
        numel *= (size_t)dims[i];
    }
    size_t esize = tc_dtype_size(m.dtype);
    char entry[512];
    snprintf(entry, sizeof entry, "%s%s", folder, path);
    const void *data = NULL;
    size_t size = 0;
    tc_error zerr = {0};
    tc_status st = tc_zip_find(c->z, entry, &data, &size, &zerr);
    if (st != TC_OK)
        return tc_errorf(c->err, st == TC_ERR_NOT_FOUND ? TC_ERR_NOT_FOUND : st,
                         "pt2: the data of %s is missing: %s", what, zerr.msg);
    tc_value *v = NULL;
    if (numel == 0 || size == 0) {
        /* nbytes 0: torch saved a fake/empty tensor and loads zeros of its size */
        void *zeros = calloc(numel ? numel : 1, esize);
        if (!zeros) return tc_errorf(c->err, TC_ERR_OUT_OF_MEMORY, "pt2: out of memory for %s", what);
        st = tc_graph_add_constant(c->g, value_name, m.dtype, m.rank, dims, zeros, TC_CONSTANT_COPY, &v);
        free(zeros);
    } else {
        /* C-order strides of these sizes; dims of size 1 may carry any stride */
        int64_t cstride[TC_MAX_RANK];
        int64_t acc = 1;
        for (int i = m.rank - 1; i >= 0; i--) cstride[i] = acc, acc *= dims[i];
        bool contiguous = true;
        int64_t strides[TC_MAX_RANK];
        for (int i = 0; i < m.rank; i++) {
            strides[i] = m.has_strides ? m.strides[i] : cstride[i];
            if (dims[i] > 1 && strides[i] != cstride[i]) contiguous = false;
        }
        /* last element's position, checked against the file so no read leaves it */
        double last = (double)m.storage_offset;
        for (int i = 0; i < m.rank; i++) last += (double)(dims[i] - 1) * (double)strides[i];
        if ((last + 1) * (double)esize > (double)size)
            return tc_errorf(c->err, TC_ERR_FORMAT,
                             "pt2: %s needs %.0f bytes of %s but the file holds %zu (truncated or wrong metadata)",
                             what, (last + 1) * (double)esize, entry, size);
        const char *base = (const char *)data + (size_t)m.storage_offset * esize;
        if (contiguous && ((uintptr_t)base % (esize < 16 ? esize : 16)) == 0) {
            st = tc_graph_add_constant(c->g, value_name, m.dtype, m.rank, dims, base, TC_CONSTANT_BORROW, &v);
        } else {
            char *buf = malloc(numel * esize);
            if (!buf) return tc_errorf(c->err, TC_ERR_OUT_OF_MEMORY, "pt2: out of memory for %s", what);
            int64_t idx[TC_MAX_RANK] = {0};
            for (size_t k = 0; k < numel; k++) {
                int64_t off = 0;
                for (int i = 0; i < m.rank; i++) off += idx[i] * strides[i];
                memcpy(buf + k * esize, base + (size_t)off * esize, esize);
                for (int i = m.rank - 1; i >= 0; i--) {
                    if (++idx[i] < dims[i]) break;
                    idx[i] = 0;
                }
            }
            st = tc_graph_add_constant(c->g, value_name, m.dtype, m.rank, dims, buf, TC_CONSTANT_COPY, &v);
            free(buf);
        }
    }
    if (st != TC_OK) return tc_errorf(c->err, st, "pt2: %s: %s", what, c->g->err.msg);
    return tc_pt2_values_put(c, value_name, v);
}

/* ---- signature --------------------------------------------------------------------------------- */

static const char *tensor_arg_name(const tc_json *arg) { return tc_json_string(tc_json_get(arg, "name")); }

static tc_status import_inputs(tc_pt2_ctx *c, const tc_json *specs) {
    for (size_t i = 0; i < tc_json_len(specs); i++) {
        const tc_json *s = tc_json_at(specs, i);
        const tc_json *p;
        if ((p = tc_json_get(s, "parameter")) || (p = tc_json_get(s, "buffer")) ||
            (p = tc_json_get(s, "tensor_constant"))) {
            const char *kind = tc_json_get(s, "parameter") ? "parameter" : tc_json_get(s, "buffer") ? "buffer" : "tensor constant";
            const char *key = tc_json_get(s, "parameter") ? "parameter_name"
                              : tc_json_get(s, "buffer") ? "buffer_name"
                                                         : "tensor_constant_name";
            const char *name = tensor_arg_name(tc_json_get(p, "arg"));
            const char *fqn = tc_json_string(tc_json_get(p, key));
            if (!name || !fqn) return tc_errorf(c->err, TC_ERR_FORMAT, "pt2: input spec %zu (%s) lacks its names", i, kind);
            TC_TRY(add_weight(c, name, fqn, kind));
        } else if ((p = tc_json_get(s, "user_input"))) {
            const tc_json *arg = tc_json_get(p, "arg");
            const char *name = tensor_arg_name(tc_json_get(arg, "as_tensor"));
            if (!name)
                return tc_errorf(c->err, TC_ERR_UNSUPPORTED,
                                 "pt2: user input %zu is not a tensor (scalars, None and symbolic ints as model "
                                 "inputs are not supported; make them tensors or constants before export)", i);
            char what[300];
            snprintf(what, sizeof what, "input '%s'", name);
            tc_pt2_meta_t m;
            TC_TRY(tc_pt2_meta(c, tc_json_get(c->tensor_values, name), what, &m));
            tc_value *v;
            if (tc_graph_add_input(c->g, name, m.dtype, m.rank, m.dims, &v) != TC_OK)
                return tc_errorf(c->err, c->g->err.status, "pt2: %s", c->g->err.msg);
            TC_TRY(tc_pt2_values_put(c, name, v));
        } else {
            const char *kind = tc_json_len(s) ? tc_json_key_at(s, 0) : "?";
            return tc_errorf(c->err, TC_ERR_UNSUPPORTED,
                             "pt2: input spec %zu is a '%s'; tensorc imports parameters, buffers, tensor "
                             "constants and tensor user inputs only", i, kind);
        }
    }
    return TC_OK;
}

static tc_status import_outputs(tc_pt2_ctx *c, const tc_json *specs) {
    for (size_t i = 0; i < tc_json_len(specs); i++) {
        const tc_json *s = tc_json_at(specs, i);
        const tc_json *p = tc_json_get(s, "user_output");
        if (!p) {
            const char *kind = tc_json_len(s) ? tc_json_key_at(s, 0) : "?";
            return tc_errorf(c->err, TC_ERR_UNSUPPORTED,
                             "pt2: output spec %zu is a '%s'; only user outputs are supported (a buffer "
                             "mutation usually means the model was exported in training mode: call .eval())",
                             i, kind);
        }
        const char *name = tensor_arg_name(tc_json_get(tc_json_get(p, "arg"), "as_tensor"));
        if (!name)
            return tc_errorf(c->err, TC_ERR_UNSUPPORTED,
                             "pt2: user output %zu is not a tensor (None, ints and other constants as outputs are "
                             "not supported)", i);
        tc_value *v = tc_pt2_values_get(c, name);
        if (!v) return tc_errorf(c->err, TC_ERR_FORMAT, "pt2: output '%s' is not produced by the graph", name);
        if (tc_graph_mark_output(c->g, v, name) != TC_OK)
            return tc_errorf(c->err, c->g->err.status, "pt2: %s", c->g->err.msg);
    }
    if (!tc_json_len(specs)) return tc_errorf(c->err, TC_ERR_FORMAT, "pt2: the model has no outputs");
    return TC_OK;
}

/* ---- archive ----------------------------------------------------------------------------------- */

static tc_status parse_entry(tc_pt2_ctx *c, const char *name, bool required, tc_json_doc **out) {
    *out = NULL;
    const void *d;
    size_t n;
    tc_error zerr = {0};
    tc_status st = tc_zip_find(c->z, name, &d, &n, &zerr);
    if (st == TC_ERR_NOT_FOUND && !required) return TC_OK;
    if (st != TC_OK) return tc_errorf(c->err, st, "pt2: %s", zerr.msg);
    tc_error jerr = {0};
    st = tc_json_parse(d, n, out, &jerr);
    if (st != TC_OK) return tc_errorf(c->err, st, "pt2: %s is not valid JSON: %s", name, jerr.msg);
    return TC_OK;
}

static bool entry_text(const tc_zip *z, const char *name, char *buf, size_t size) {
    const void *d;
    size_t n;
    tc_error e;
    if (tc_zip_find(z, name, &d, &n, &e) != TC_OK) return false;
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < size; i++) {
        char ch = ((const char *)d)[i];
        if (ch != '\n' && ch != '\r' && ch != ' ') buf[k++] = ch;
    }
    buf[k] = '\0';
    return true;
}

/* The model's name: the NAME of models/NAME.json ("model" for torch.export.save). */
static tc_status find_model(tc_pt2_ctx *c) {
    const char *prefix = tc_zip_prefix(c->z);
    size_t plen = strlen(prefix);
    const char *found = NULL;
    for (int i = 0; i < tc_zip_num_entries(c->z); i++) {
        const char *e = tc_zip_entry_name(c->z, i);
        if (!e || strncmp(e, prefix, plen) != 0) continue;
        e += plen;
        size_t len = strlen(e);
        if (strncmp(e, "models/", 7) == 0 && len > 12 && strcmp(e + len - 5, ".json") == 0 &&
            !strchr(e + 7, '/')) {
            if (!found || strcmp(e + 7, "model.json") == 0) found = e + 7;
        }
    }
    if (!found)
        return tc_errorf(c->err, TC_ERR_FORMAT,
                         "pt2: no models/<name>.json in the archive: not a torch.export archive (save it with "
                         "torch.export.save)");
    size_t n = strlen(found) - 5;
    if (n >= sizeof c->model) return tc_errorf(c->err, TC_ERR_FORMAT, "pt2: model name too long");
    memcpy(c->model, found, n);
    c->model[n] = '\0';
    return TC_OK;
}

tc_status tc_pt2_import_zip(const tc_zip *z, tc_graph *g, tc_error *err) {
    tc_pt2_ctx c = {.z = z, .g = g, .err = err};
    tc_json_doc *model_doc = NULL, *wdoc = NULL, *cdoc = NULL;
    tc_status st = TC_OK;
    char text[64];

    if (entry_text(z, "archive_format", text, sizeof text) && strcmp(text, "pt2") != 0) {
        st = tc_errorf(err, TC_ERR_FORMAT, "pt2: archive_format is '%s', not 'pt2'", text);
        goto done;
    }
    if (!entry_text(z, "archive_version", text, sizeof text)) {
        st = tc_errorf(err, TC_ERR_FORMAT,
                       "pt2: no archive_version entry: not a torch.export archive (torch.export.save writes one)");
        goto done;
    }
    if (strcmp(text, "0") != 0) {
        st = tc_errorf(err, TC_ERR_VERSION,
                       "pt2: archive version '%s' is not supported (tensorc reads version 0, written by torch 2.9 and later)",
                       text);
        goto done;
    }
    if ((st = find_model(&c)) != TC_OK) goto done;
    char name[600];
    {
        const void *d;
        size_t n;
        tc_error e;
        snprintf(name, sizeof name, "data/weights/%s.pt", c.model);
        if (tc_zip_find(z, name, &d, &n, &e) == TC_OK) {
            st = tc_errorf(err, TC_ERR_VERSION,
                           "pt2: the weights are in the legacy pickled layout (%s, written by torch <= 2.8); "
                           "re-export with torch >= 2.9",
                           name);
            goto done;
        }
    }
    snprintf(name, sizeof name, "models/%s.json", c.model);
    if ((st = parse_entry(&c, name, true, &model_doc)) != TC_OK) goto done;
    const tc_json *root = tc_json_root(model_doc);
    int64_t major = -1, minor = -1;
    const tc_json *ver = tc_json_get(root, "schema_version");
    if (!tc_json_int(tc_json_get(ver, "major"), &major)) {
        st = tc_errorf(err, TC_ERR_FORMAT, "pt2: %s has no schema_version", name);
        goto done;
    }
    tc_json_int(tc_json_get(ver, "minor"), &minor);
    if (major != 8) {
        st = tc_errorf(err, TC_ERR_VERSION,
                       "pt2: schema version %lld.%lld is not supported; tensorc reads schema 8.x (torch 2.9 to 2.14). "
                       "Re-export with a torch release that writes schema 8",
                       (long long)major, (long long)minor);
        goto done;
    }
    snprintf(name, sizeof name, "data/weights/%s_weights_config.json", c.model);
    if ((st = parse_entry(&c, name, false, &wdoc)) != TC_OK) goto done;
    snprintf(name, sizeof name, "data/constants/%s_constants_config.json", c.model);
    if ((st = parse_entry(&c, name, false, &cdoc)) != TC_OK) goto done;
    c.weights_cfg = tc_json_get(tc_json_root(wdoc), "config");
    c.constants_cfg = tc_json_get(tc_json_root(cdoc), "config");

    const tc_json *gm = tc_json_get(root, "graph_module");
    const tc_json *graph = tc_json_get(gm, "graph");
    const tc_json *sig = tc_json_get(gm, "signature");
    c.tensor_values = tc_json_get(graph, "tensor_values");
    c.sym_int_values = tc_json_get(graph, "sym_int_values");
    c.ranges = tc_json_get(root, "range_constraints");
    if (tc_json_type_of(graph) != TC_JSON_OBJECT || tc_json_type_of(sig) != TC_JSON_OBJECT) {
        st = tc_errorf(err, TC_ERR_FORMAT, "pt2: %s has no graph_module.graph or graph_module.signature", name);
        goto done;
    }
    if ((st = tc_pt2_collect_used(&c, tc_json_get(graph, "nodes"), tc_json_get(sig, "output_specs"))) != TC_OK) goto done;
    if ((st = import_inputs(&c, tc_json_get(sig, "input_specs"))) != TC_OK) goto done;
    if ((st = tc_pt2_import_nodes(&c, tc_json_get(graph, "nodes"))) != TC_OK) goto done;
    st = import_outputs(&c, tc_json_get(sig, "output_specs"));
done:
    tc_pt2_symmap_free(&c.syms);
    tc_pt2_symmap_free(&c.used);
    free(c.values.slots);
    tc_json_free(model_doc);
    tc_json_free(wdoc);
    tc_json_free(cdoc);
    return st;
}

/* ---- public entry points ----------------------------------------------------------------------- */

static tc_status finish(tc_status st, tc_error *err, tc_graph *g, tc_graph_t **out, char *err_buf, size_t err_size) {
    if (st == TC_OK) {
        *out = g;
        return TC_OK;
    }
    tc_graph_free(g);
    if (err_buf && err_size) snprintf(err_buf, err_size, "%s", err->msg);
    return st;
}

tc_status tc_import_pt2_memory(const void *data, size_t size, tc_graph_t **out, char *err_buf, size_t err_size) {
    if (err_buf && err_size) err_buf[0] = '\0';
    if (!out) return TC_ERR_INVALID_ARGUMENT;
    *out = NULL;
    tc_error err = {0};
    if (!data && size) return finish(tc_errorf(&err, TC_ERR_INVALID_ARGUMENT, "pt2: data is NULL"), &err, NULL, out, err_buf, err_size);
    tc_graph *g = NULL;
    if (tc_graph_create(&g) != TC_OK)
        return finish(tc_errorf(&err, TC_ERR_OUT_OF_MEMORY, "out of memory"), &err, NULL, out, err_buf, err_size);
    tc_zip *z = NULL;
    tc_status st = tc_zip_open_memory(data, size, &z, &err);
    if (st != TC_OK) {
        char msg[sizeof err.msg];
        snprintf(msg, sizeof msg, "%s", err.msg);
        tc_errorf(&err, st, "pt2: not a readable archive: %s", msg);
    } else {
        st = tc_pt2_import_zip(z, g, &err);
    }
    tc_zip_close(z);
    return finish(st, &err, g, out, err_buf, err_size);
}

static void release_zip(void *z) { tc_zip_close(z); }

/* The archive is mapped read-only; weights borrow from the mapping without a copy, and the graph
 * keeps the mapping until it is freed (after engines built from it). */
tc_status tc_import_pt2(const char *path, tc_graph_t **out, char *err_buf, size_t err_size) {
    if (err_buf && err_size) err_buf[0] = '\0';
    if (!out) return TC_ERR_INVALID_ARGUMENT;
    *out = NULL;
    tc_error err = {0};
    if (!path) return finish(tc_errorf(&err, TC_ERR_INVALID_ARGUMENT, "pt2: path is NULL"), &err, NULL, out, err_buf, err_size);
    tc_zip *z = NULL;
    tc_status st = tc_zip_open_file(path, &z, &err);
    if (st != TC_OK) {
        char msg[sizeof err.msg];
        snprintf(msg, sizeof msg, "%s", err.msg);
        if (st == TC_ERR_IO) tc_errorf(&err, st, "pt2: cannot read '%s': %s", path, msg);
        else tc_errorf(&err, st, "pt2: '%s' is not a readable archive: %s", path, msg);
        return finish(st, &err, NULL, out, err_buf, err_size);
    }
    tc_graph *g = NULL;
    if (tc_graph_create(&g) != TC_OK) {
        tc_zip_close(z);
        return finish(tc_errorf(&err, TC_ERR_OUT_OF_MEMORY, "out of memory"), &err, NULL, out, err_buf, err_size);
    }
    if (tc_graph_keep(g, z, release_zip) != TC_OK) {
        tc_zip_close(z);
        return finish(tc_errorf(&err, TC_ERR_OUT_OF_MEMORY, "out of memory"), &err, g, out, err_buf, err_size);
    }
    st = tc_pt2_import_zip(z, g, &err);
    return finish(st, &err, g, out, err_buf, err_size);
}
