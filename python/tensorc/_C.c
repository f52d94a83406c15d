/* tensorc._C: the CPython extension (plain C, no ctypes) over include/tensorc.h. It exposes graphs
 * (building the IR node by node, partitioning), engines (build, serialize, run on raw data pointers
 * under a per-engine lock with the GIL released) and the op table. Torch stays on the Python side:
 * tensors cross as (data pointer, dtype code, shape) triples. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "tensorc.h"
/* Internal headers, for what the public API does not expose yet: an engine's symbolic I/O types
 * and its output shapes for given input shapes (used to run engines loaded from .tce files). */
#include "core/sym.h"
#include "engine/serialize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static PyObject *tc_py_error; /* tensorc._C.Error */

/* Raises tensorc._C.Error("<status name>: <message>") with .status and .message attributes. */
static PyObject *raise_status(tc_status st, const char *msg) {
    PyObject *text = PyUnicode_FromFormat("%s: %s", tc_status_string(st), msg && msg[0] ? msg : "(no message)");
    if (!text) return NULL;
    PyObject *exc = PyObject_CallOneArg(tc_py_error, text);
    Py_DECREF(text);
    if (!exc) return NULL;
    PyObject *code = PyLong_FromLong((long)st);
    PyObject *m = PyUnicode_FromString(msg ? msg : "");
    if (code && m) {
        PyObject_SetAttrString(exc, "status", code);
        PyObject_SetAttrString(exc, "message", m);
    }
    Py_XDECREF(code);
    Py_XDECREF(m);
    PyErr_SetObject(tc_py_error, exc);
    Py_DECREF(exc);
    return NULL;
}

/* Reads a Python sequence of ints into a malloc'd int64 array (*out NULL for an empty one). */
static int int64_list(PyObject *seq, int64_t **out, Py_ssize_t *count, const char *what) {
    *out = NULL;
    *count = 0;
    PyObject *fast = PySequence_Fast(seq, what);
    if (!fast) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    int64_t *a = malloc(sizeof *a * (size_t)(n ? n : 1));
    if (!a) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        a[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(fast, i));
        if (a[i] == -1 && PyErr_Occurred()) {
            Py_DECREF(fast);
            free(a);
            return -1;
        }
    }
    Py_DECREF(fast);
    *out = a;
    *count = n;
    return 0;
}

static int dims_arg(PyObject *seq, tc_dim *dims, int *rank, const char *what) {
    int64_t *a;
    Py_ssize_t n;
    if (int64_list(seq, &a, &n, what) < 0) return -1;
    if (n > TC_MAX_RANK) {
        free(a);
        PyErr_Format(PyExc_ValueError, "%s: rank %zd is above the maximum %d", what, n, TC_MAX_RANK);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) dims[i] = a[i];
    *rank = (int)n;
    free(a);
    return 0;
}

static int dtype_arg(long code, tc_dtype *out) {
    if (code < 0 || code >= TC_DTYPE_COUNT) {
        PyErr_Format(PyExc_ValueError, "dtype code %ld is out of range", code);
        return -1;
    }
    *out = (tc_dtype)code;
    return 0;
}

/* ============================================================================================
 * Graph
 */
typedef struct {
    PyObject_HEAD
    tc_graph_t *g;
    tc_value_t **vals; /* value ids handed to Python index this array */
    Py_ssize_t n_vals, cap_vals;
    PyObject *keep;    /* objects whose memory constants borrow */
} GraphObject;

static PyTypeObject GraphType;

static PyObject *graph_fail(GraphObject *self, tc_status st) { return raise_status(st, tc_graph_last_error(self->g)); }

static PyObject *graph_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    GraphObject *self = (GraphObject *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    self->keep = PyList_New(0);
    if (!self->keep) {
        Py_DECREF(self);
        return NULL;
    }
    tc_status st = tc_graph_create(&self->g);
    if (st != TC_OK) {
        Py_DECREF(self);
        return raise_status(st, "cannot create a graph");
    }
    return (PyObject *)self;
}

static void graph_dealloc(GraphObject *self) {
    tc_graph_free(self->g); /* engines built from it hold their own reference */
    free(self->vals);
    Py_XDECREF(self->keep);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *push_value(GraphObject *self, tc_value_t *v) {
    if (self->n_vals == self->cap_vals) {
        Py_ssize_t cap = self->cap_vals ? self->cap_vals * 2 : 64;
        tc_value_t **nv = realloc(self->vals, sizeof *nv * (size_t)cap);
        if (!nv) return PyErr_NoMemory();
        self->vals = nv;
        self->cap_vals = cap;
    }
    self->vals[self->n_vals] = v;
    return PyLong_FromSsize_t(self->n_vals++);
}

static tc_value_t *value_at(GraphObject *self, PyObject *id) {
    Py_ssize_t i = PyLong_AsSsize_t(id);
    if (i == -1 && PyErr_Occurred()) return NULL;
    if (i < 0 || i >= self->n_vals) {
        PyErr_Format(PyExc_IndexError, "value id %zd is not a value of this graph", i);
        return NULL;
    }
    return self->vals[i];
}

static PyObject *graph_add_symbol(GraphObject *self, PyObject *args) {
    const char *name;
    long long lo, opt, hi;
    if (!PyArg_ParseTuple(args, "sLLL", &name, &lo, &opt, &hi)) return NULL;
    tc_dim d;
    tc_status st = tc_graph_add_symbol(self->g, name, lo, opt, hi, &d);
    if (st != TC_OK) return graph_fail(self, st);
    return PyLong_FromLongLong(d);
}

static PyObject *graph_sym_expr(GraphObject *self, PyObject *args) {
    int op;
    long long a, b;
    if (!PyArg_ParseTuple(args, "iLL", &op, &a, &b)) return NULL;
    if (op < TC_SYM_ADD || op > TC_SYM_MOD) return PyErr_Format(PyExc_ValueError, "unknown symbolic op %d", op);
    tc_dim d;
    tc_status st = tc_graph_sym_expr(self->g, (tc_sym_op)op, a, b, &d);
    if (st != TC_OK) return graph_fail(self, st);
    return PyLong_FromLongLong(d);
}

static PyObject *graph_dim_string(GraphObject *self, PyObject *args) {
    long long d;
    if (!PyArg_ParseTuple(args, "L", &d)) return NULL;
    char buf[512];
    return PyUnicode_FromString(tc_graph_dim_string(self->g, d, buf, sizeof buf));
}

static PyObject *graph_add_input(GraphObject *self, PyObject *args) {
    const char *name;
    long code;
    PyObject *shape;
    if (!PyArg_ParseTuple(args, "slO", &name, &code, &shape)) return NULL;
    tc_dtype dt;
    tc_dim dims[TC_MAX_RANK];
    int rank;
    if (dtype_arg(code, &dt) < 0 || dims_arg(shape, dims, &rank, "input shape") < 0) return NULL;
    tc_value_t *v;
    tc_status st = tc_graph_add_input(self->g, name, dt, rank, dims, &v);
    if (st != TC_OK) return graph_fail(self, st);
    return push_value(self, v);
}

/* add_constant(name, dtype, shape, data_ptr, owner): borrows the memory at data_ptr, which
 * `owner` (kept alive by the graph) holds; owner None copies the data instead. */
static PyObject *graph_add_constant(GraphObject *self, PyObject *args) {
    const char *name;
    long code;
    PyObject *shape, *owner;
    unsigned long long ptr;
    if (!PyArg_ParseTuple(args, "slOKO", &name, &code, &shape, &ptr, &owner)) return NULL;
    tc_dtype dt;
    tc_dim dims[TC_MAX_RANK];
    int rank;
    if (dtype_arg(code, &dt) < 0 || dims_arg(shape, dims, &rank, "constant shape") < 0) return NULL;
    tc_constant_mode mode = owner == Py_None ? TC_CONSTANT_COPY : TC_CONSTANT_BORROW;
    if (owner != Py_None && PyList_Append(self->keep, owner) < 0) return NULL;
    tc_value_t *v;
    tc_status st = tc_graph_add_constant(self->g, name, dt, rank, dims, (const void *)(uintptr_t)ptr, mode, &v);
    if (st != TC_OK) return graph_fail(self, st);
    return push_value(self, v);
}

/* Per-call storage for converted node arguments. */
typedef struct {
    void **ptrs;
    int n, cap;
} scratch_list;

static void *scratch_alloc(scratch_list *s, size_t bytes) {
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 8;
        void **np = realloc(s->ptrs, sizeof *np * (size_t)cap);
        if (!np) return NULL;
        s->ptrs = np;
        s->cap = cap;
    }
    void *p = calloc(1, bytes ? bytes : 1);
    if (p) s->ptrs[s->n++] = p;
    return p;
}

static void scratch_free(scratch_list *s) {
    for (int i = 0; i < s->n; i++) free(s->ptrs[i]);
    free(s->ptrs);
}

/* One argument: a tuple (name or None, kind, payload) with kind a tc_arg_kind. */
static int convert_arg(GraphObject *self, PyObject *item, tc_arg *a, scratch_list *s) {
    PyObject *name, *payload;
    int kind;
    if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "OiO", &name, &kind, &payload)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "a node argument is a (name, kind, value) tuple");
        return -1;
    }
    memset(a, 0, sizeof *a);
    if (name != Py_None) {
        a->name = PyUnicode_AsUTF8(name);
        if (!a->name) return -1;
    }
    if (kind < 0 || kind >= TC_ARG_KIND_COUNT) {
        PyErr_Format(PyExc_ValueError, "argument kind %d is out of range", kind);
        return -1;
    }
    a->kind = (tc_arg_kind)kind;
    switch (a->kind) {
    case TC_ARG_NONE: return 0;
    case TC_ARG_TENSOR: return (a->u.tensor = value_at(self, payload)) ? 0 : -1;
    case TC_ARG_INT:
        a->u.i = PyLong_AsLongLong(payload);
        return a->u.i == -1 && PyErr_Occurred() ? -1 : 0;
    case TC_ARG_FLOAT:
        a->u.f = PyFloat_AsDouble(payload);
        return a->u.f == -1.0 && PyErr_Occurred() ? -1 : 0;
    case TC_ARG_BOOL: {
        int b = PyObject_IsTrue(payload);
        if (b < 0) return -1;
        a->u.b = b;
        return 0;
    }
    case TC_ARG_STRING: return (a->u.s = PyUnicode_AsUTF8(payload)) ? 0 : -1;
    case TC_ARG_DTYPE: {
        long code = PyLong_AsLong(payload);
        if (code == -1 && PyErr_Occurred()) return -1;
        tc_dtype dt;
        if (dtype_arg(code, &dt) < 0) return -1;
        a->u.dtype = dt;
        return 0;
    }
    case TC_ARG_TENSORS:
    case TC_ARG_INTS:
    case TC_ARG_FLOATS:
    case TC_ARG_BOOLS: break;
    case TC_ARG_KIND_COUNT: return -1;
    }
    PyObject *fast = PySequence_Fast(payload, "a list argument must be a sequence");
    if (!fast) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    a->count = n;
    int rc = 0;
    if (a->kind == TC_ARG_TENSORS) {
        tc_value_t **l = scratch_alloc(s, sizeof *l * (size_t)n);
        if (!l) rc = -1, PyErr_NoMemory();
        for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
            PyObject *e = PySequence_Fast_GET_ITEM(fast, i);
            l[i] = e == Py_None ? NULL : value_at(self, e);
            if (e != Py_None && !l[i]) rc = -1;
        }
        a->u.tensors = l;
    } else if (a->kind == TC_ARG_INTS) {
        int64_t *l = scratch_alloc(s, sizeof *l * (size_t)n);
        if (!l) rc = -1, PyErr_NoMemory();
        for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
            l[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(fast, i));
            if (l[i] == -1 && PyErr_Occurred()) rc = -1;
        }
        a->u.ints = l;
    } else if (a->kind == TC_ARG_FLOATS) {
        double *l = scratch_alloc(s, sizeof *l * (size_t)n);
        if (!l) rc = -1, PyErr_NoMemory();
        for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
            l[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(fast, i));
            if (l[i] == -1.0 && PyErr_Occurred()) rc = -1;
        }
        a->u.floats = l;
    } else {
        bool *l = scratch_alloc(s, sizeof *l * (size_t)n);
        if (!l) rc = -1, PyErr_NoMemory();
        for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
            int b = PyObject_IsTrue(PySequence_Fast_GET_ITEM(fast, i));
            if (b < 0) rc = -1;
            else l[i] = b;
        }
        a->u.bools = l;
    }
    Py_DECREF(fast);
    return rc;
}

#define MAX_NODE_OUTPUTS 1024

static PyObject *output_ids(GraphObject *self, tc_value_t **outs, int n) {
    PyObject *list = PyList_New(n);
    if (!list) return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *id = push_value(self, outs[i]);
        if (!id) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, id);
    }
    return list;
}

/* add_node(op, node_name, args) -> list of output value ids. */
static PyObject *graph_add_node(GraphObject *self, PyObject *args) {
    const char *op, *node_name;
    PyObject *arglist;
    if (!PyArg_ParseTuple(args, "szO", &op, &node_name, &arglist)) return NULL;
    PyObject *fast = PySequence_Fast(arglist, "node arguments must be a sequence");
    if (!fast) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n > 64) {
        Py_DECREF(fast);
        return PyErr_Format(PyExc_ValueError, "node '%s': %zd arguments is more than any schema has", node_name, n);
    }
    tc_arg targs[64];
    scratch_list s = {0};
    PyObject *result = NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        if (convert_arg(self, PySequence_Fast_GET_ITEM(fast, i), &targs[i], &s) < 0) goto done;
    tc_value_t **outs = scratch_alloc(&s, sizeof *outs * MAX_NODE_OUTPUTS);
    if (!outs) {
        PyErr_NoMemory();
        goto done;
    }
    int n_out = 0;
    tc_status st = tc_graph_add_node(self->g, op, node_name, (int)n, targs, MAX_NODE_OUTPUTS, outs, &n_out);
    if (st != TC_OK) {
        graph_fail(self, st);
        goto done;
    }
    result = output_ids(self, outs, n_out);
done:
    scratch_free(&s);
    Py_DECREF(fast);
    return result;
}

/* add_opaque_node(op, node_name, input_ids, [(dtype, shape), ...]) -> output value ids. */
static PyObject *graph_add_opaque_node(GraphObject *self, PyObject *args) {
    const char *op, *node_name;
    PyObject *ins, *outs_spec;
    if (!PyArg_ParseTuple(args, "szOO", &op, &node_name, &ins, &outs_spec)) return NULL;
    PyObject *fin = PySequence_Fast(ins, "inputs must be a sequence");
    if (!fin) return NULL;
    PyObject *fout = PySequence_Fast(outs_spec, "outputs must be a sequence");
    if (!fout) {
        Py_DECREF(fin);
        return NULL;
    }
    Py_ssize_t ni = PySequence_Fast_GET_SIZE(fin), no = PySequence_Fast_GET_SIZE(fout);
    scratch_list s = {0};
    PyObject *result = NULL;
    tc_value_t **in = scratch_alloc(&s, sizeof *in * (size_t)ni);
    tc_value_t **out = scratch_alloc(&s, sizeof *out * (size_t)no);
    tc_dtype *dts = scratch_alloc(&s, sizeof *dts * (size_t)no);
    int *ranks = scratch_alloc(&s, sizeof *ranks * (size_t)no);
    tc_dim *dimstore = scratch_alloc(&s, sizeof *dimstore * (size_t)no * TC_MAX_RANK);
    const tc_dim **dims = scratch_alloc(&s, sizeof *dims * (size_t)no);
    if (!in || !out || !dts || !ranks || !dimstore || !dims) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < ni; i++)
        if (!(in[i] = value_at(self, PySequence_Fast_GET_ITEM(fin, i)))) goto done;
    for (Py_ssize_t i = 0; i < no; i++) {
        long code;
        PyObject *shape;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fout, i), "lO", &code, &shape)) goto done;
        if (dtype_arg(code, &dts[i]) < 0 || dims_arg(shape, dimstore + i * TC_MAX_RANK, &ranks[i], "output shape") < 0)
            goto done;
        dims[i] = dimstore + i * TC_MAX_RANK;
    }
    tc_status st = tc_graph_add_opaque_node(self->g, op, node_name, (int)ni, in, (int)no, dts, ranks, dims, out);
    if (st != TC_OK) {
        graph_fail(self, st);
        goto done;
    }
    result = output_ids(self, out, (int)no);
done:
    scratch_free(&s);
    Py_DECREF(fin);
    Py_DECREF(fout);
    return result;
}

static PyObject *graph_mark_output(GraphObject *self, PyObject *args) {
    PyObject *id;
    const char *name = NULL;
    if (!PyArg_ParseTuple(args, "O|z", &id, &name)) return NULL;
    tc_value_t *v = value_at(self, id);
    if (!v) return NULL;
    tc_status st = tc_graph_mark_output(self->g, v, name);
    if (st != TC_OK) return graph_fail(self, st);
    Py_RETURN_NONE;
}

static PyObject *graph_verify(GraphObject *self, PyObject *unused) {
    tc_status st = tc_graph_verify(self->g);
    if (st != TC_OK) return graph_fail(self, st);
    Py_RETURN_NONE;
}

/* value_info(id) -> (name, dtype code, dims) with symbolic dims as the library's codes. */
static PyObject *graph_value_info(GraphObject *self, PyObject *id) {
    tc_value_t *v = value_at(self, id);
    if (!v) return NULL;
    int rank = tc_value_rank(v);
    const tc_dim *dims = tc_value_dims(v);
    PyObject *shape = PyTuple_New(rank);
    if (!shape) return NULL;
    for (int i = 0; i < rank; i++) {
        PyObject *d = PyLong_FromLongLong(dims[i]);
        if (!d) {
            Py_DECREF(shape);
            return NULL;
        }
        PyTuple_SET_ITEM(shape, i, d);
    }
    return Py_BuildValue("(siN)", tc_value_name(v), (int)tc_value_dtype(v), shape);
}

static PyObject *graph_num_nodes(GraphObject *self, PyObject *unused) {
    return PyLong_FromLong(tc_graph_num_nodes(self->g));
}

/* Reads everything written to a temporary FILE* back as a str. */
static PyObject *file_to_str(FILE *f) {
    long size = ftell(f);
    if (size < 0) return PyErr_SetFromErrno(PyExc_OSError);
    rewind(f);
    char *buf = malloc((size_t)size + 1);
    if (!buf) return PyErr_NoMemory();
    size_t got = fread(buf, 1, (size_t)size, f);
    PyObject *s = PyUnicode_DecodeUTF8(buf, (Py_ssize_t)got, "replace");
    free(buf);
    return s;
}

static PyObject *graph_print(GraphObject *self, PyObject *args) {
    int dot = 0;
    if (!PyArg_ParseTuple(args, "|p", &dot)) return NULL;
    FILE *f = tmpfile();
    if (!f) return PyErr_SetFromErrno(PyExc_OSError);
    tc_status st = tc_graph_print(self->g, dot ? TC_PRINT_DOT : TC_PRINT_TEXT, f);
    PyObject *r = st == TC_OK ? file_to_str(f) : graph_fail(self, st);
    fclose(f);
    return r;
}

/* partition(backend, min_block_size, forced_ops, require_full_compilation)
 *   -> (n_blocks, [(block, reason, message, name, op) per node], report text) */
static PyObject *graph_partition(GraphObject *self, PyObject *args) {
    int backend, min_block, full;
    PyObject *forced;
    if (!PyArg_ParseTuple(args, "iiOp", &backend, &min_block, &forced, &full)) return NULL;
    PyObject *fast = PySequence_Fast(forced, "forced ops must be a sequence of str");
    if (!fast) return NULL;
    Py_ssize_t nf = PySequence_Fast_GET_SIZE(fast);
    const char **names = calloc((size_t)nf + 1, sizeof *names);
    PyObject *result = NULL;
    tc_partition_t *p = NULL;
    if (!names) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < nf; i++)
        if (!(names[i] = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(fast, i)))) goto done;
    tc_partition_options o;
    tc_partition_options_init(&o);
    o.backend = (tc_backend_kind)backend;
    o.min_block_size = min_block;
    o.forced_ops = names;
    o.n_forced_ops = (int)nf;
    o.require_full_compilation = full;
    char err[2048];
    tc_status st;
    Py_BEGIN_ALLOW_THREADS
    st = tc_graph_partition(self->g, &o, &p, err, sizeof err);
    Py_END_ALLOW_THREADS
    if (st != TC_OK) {
        raise_status(st, err);
        goto done;
    }
    int n = tc_partition_num_nodes(p);
    PyObject *nodes = PyList_New(n);
    if (!nodes) goto done;
    for (int i = 0; i < n; i++) {
        PyObject *t = Py_BuildValue("(iiss" "s)", tc_partition_node_block(p, i), (int)tc_partition_node_reason(p, i),
                                    tc_partition_node_message(p, i), tc_partition_node_name(p, i),
                                    tc_partition_node_op(p, i));
        if (!t) {
            Py_DECREF(nodes);
            goto done;
        }
        PyList_SET_ITEM(nodes, i, t);
    }
    PyObject *report = NULL;
    FILE *f = tmpfile();
    if (f) {
        if (tc_partition_print(p, f) == TC_OK) report = file_to_str(f);
        fclose(f);
    }
    if (!report) {
        PyErr_Clear();
        report = PyUnicode_FromString("");
    }
    result = Py_BuildValue("(iNN)", tc_partition_num_blocks(p), nodes, report);
done:
    tc_partition_free(p);
    free(names);
    Py_DECREF(fast);
    return result;
}

static PyMethodDef graph_methods[] = {
    {"add_symbol", (PyCFunction)graph_add_symbol, METH_VARARGS,
     "add_symbol(name, min, opt, max) -> dim: declares a symbolic size"},
    {"sym_expr", (PyCFunction)graph_sym_expr, METH_VARARGS,
     "sym_expr(op, a, b) -> dim: a op b with op 0 add, 1 sub, 2 mul, 3 floordiv, 4 mod"},
    {"dim_string", (PyCFunction)graph_dim_string, METH_VARARGS, "dim_string(dim) -> str"},
    {"add_input", (PyCFunction)graph_add_input, METH_VARARGS, "add_input(name, dtype, dims) -> value id"},
    {"add_constant", (PyCFunction)graph_add_constant, METH_VARARGS,
     "add_constant(name, dtype, dims, data_ptr, owner) -> value id; borrows the data while owner lives "
     "(owner None: copies it)"},
    {"add_node", (PyCFunction)graph_add_node, METH_VARARGS,
     "add_node(op, node_name, [(arg name or None, kind, value), ...]) -> [output value ids]"},
    {"add_opaque_node", (PyCFunction)graph_add_opaque_node, METH_VARARGS,
     "add_opaque_node(op, node_name, [input ids], [(dtype, dims), ...]) -> [output value ids]"},
    {"mark_output", (PyCFunction)graph_mark_output, METH_VARARGS, "mark_output(value id, name=None)"},
    {"verify", (PyCFunction)graph_verify, METH_NOARGS, "verify(): checks the whole graph"},
    {"value_info", (PyCFunction)graph_value_info, METH_O, "value_info(id) -> (name, dtype, dims)"},
    {"num_nodes", (PyCFunction)graph_num_nodes, METH_NOARGS, "num_nodes() -> int"},
    {"print", (PyCFunction)graph_print, METH_VARARGS, "print(dot=False) -> str"},
    {"partition", (PyCFunction)graph_partition, METH_VARARGS,
     "partition(backend, min_block_size, forced_ops, require_full_compilation) -> "
     "(n_blocks, [(block, reason, message, name, op)], report)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject GraphType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tensorc._C.Graph",
    .tp_basicsize = sizeof(GraphObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An IR graph under construction (tc_graph_t).",
    .tp_new = graph_new,
    .tp_dealloc = (destructor)graph_dealloc,
    .tp_methods = graph_methods,
};

/* ============================================================================================
 * Engine
 */
typedef struct {
    PyObject_HEAD
    tc_engine_t *e;
    tc_context_t *ctx;
    PyThread_type_lock lock; /* one execution at a time on ctx */
    PyObject *graph;         /* keeps borrowed constants alive */
} EngineObject;

static PyTypeObject EngineType;

static void engine_dealloc(EngineObject *self) {
    tc_context_free(self->ctx);
    tc_engine_free(self->e);
    if (self->lock) PyThread_free_lock(self->lock);
    Py_XDECREF(self->graph);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static EngineObject *engine_wrap(PyTypeObject *type, tc_engine_t *e, PyObject *graph) {
    EngineObject *self = (EngineObject *)type->tp_alloc(type, 0);
    if (!self) {
        tc_engine_free(e);
        return NULL;
    }
    self->e = e;
    self->lock = PyThread_allocate_lock();
    if (!self->lock) {
        Py_DECREF(self);
        return (EngineObject *)PyErr_NoMemory();
    }
    tc_status st = tc_context_create(e, &self->ctx);
    if (st != TC_OK) {
        raise_status(st, tc_engine_last_error(e));
        Py_DECREF(self);
        return NULL;
    }
    Py_XINCREF(graph);
    self->graph = graph;
    return self;
}

/* Engine(graph, backend=0, num_threads=0, device=0, allow_fp16=False, allow_bf16=False,
 *        disable_tf32=False, workspace_bytes=0): builds an engine (the GIL is released). */
static PyObject *engine_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"graph", "backend", "num_threads", "device", "allow_fp16", "allow_bf16",
                             "disable_tf32", "workspace_bytes", NULL};
    PyObject *graph;
    int backend = TC_BACKEND_CPU, threads = 0, device = 0, fp16 = 0, bf16 = 0, no_tf32 = 0;
    unsigned long long workspace = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!|iiipppK", kwlist, &GraphType, &graph, &backend, &threads, &device,
                                     &fp16, &bf16, &no_tf32, &workspace))
        return NULL;
    tc_build_options o;
    tc_build_options_init(&o);
    o.backend = (tc_backend_kind)backend;
    o.num_threads = threads;
    o.device = device;
    o.allow_fp16 = fp16;
    o.allow_bf16 = bf16;
    o.disable_tf32 = no_tf32;
    o.workspace_bytes = (size_t)workspace;
    tc_engine_t *e = NULL;
    char err[2048];
    tc_status st;
    tc_graph_t *g = ((GraphObject *)graph)->g;
    Py_BEGIN_ALLOW_THREADS
    st = tc_engine_build(g, &o, &e, err, sizeof err);
    Py_END_ALLOW_THREADS
    if (st != TC_OK) return raise_status(st, err);
    return (PyObject *)engine_wrap(type, e, graph);
}

/* Engine.deserialize(data, backend=None, device=0, num_threads=0) -> Engine. With backend given,
 * the engine is rebuilt with those build options instead of the ones stored in the file. */
static PyObject *engine_deserialize(PyObject *cls, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"data", "backend", "device", "num_threads", "size", NULL};
    PyObject *data, *backend_obj = Py_None;
    int device = 0, threads = 0;
    long long size = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OiiL", kwlist, &data, &backend_obj, &device, &threads, &size))
        return NULL;
    /* data: a bytes-like object, or the address of `size` bytes (a tensor's memory) */
    Py_buffer buf = {0};
    if (PyLong_Check(data)) {
        if (size < 0) return PyErr_Format(PyExc_ValueError, "deserialize from an address needs size");
        buf.buf = PyLong_AsVoidPtr(data);
        buf.len = (Py_ssize_t)size;
        if (!buf.buf && PyErr_Occurred()) return NULL;
    } else if (PyObject_GetBuffer(data, &buf, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    tc_build_options o, *override = NULL;
    if (backend_obj != Py_None) {
        long b = PyLong_AsLong(backend_obj);
        if (b == -1 && PyErr_Occurred()) {
            if (buf.obj) PyBuffer_Release(&buf);
            return NULL;
        }
        tc_build_options_init(&o);
        o.backend = (tc_backend_kind)b;
        o.device = device;
        o.num_threads = threads;
        override = &o;
    }
    tc_engine_t *e = NULL;
    char err[2048];
    tc_status st;
    Py_BEGIN_ALLOW_THREADS
    st = tc_engine_deserialize(buf.buf, (size_t)buf.len, override, &e, err, sizeof err);
    Py_END_ALLOW_THREADS
    if (buf.obj) PyBuffer_Release(&buf);
    if (st != TC_OK) return raise_status(st, err);
    return (PyObject *)engine_wrap((PyTypeObject *)cls, e, NULL);
}

/* serialize() -> bytes (a .tce file's contents) */
static PyObject *engine_serialize(EngineObject *self, PyObject *unused) {
    void *data = NULL;
    size_t size = 0;
    char err[2048];
    tc_status st;
    Py_BEGIN_ALLOW_THREADS
    st = tc_engine_serialize_ex(self->e, NULL, &data, &size, err, sizeof err);
    Py_END_ALLOW_THREADS
    if (st != TC_OK) return raise_status(st, err);
    PyObject *b = PyBytes_FromStringAndSize(data, (Py_ssize_t)size);
    tc_free_buffer(data);
    return b;
}

/* prepare(): chooses (and times) a CUDA engine's plans at its opt shapes now (tc_engine_prepare) */
static PyObject *engine_prepare(EngineObject *self, PyObject *unused) {
    char err[2048];
    tc_status st;
    Py_BEGIN_ALLOW_THREADS
    st = tc_engine_prepare(self->e, err, sizeof err);
    Py_END_ALLOW_THREADS
    if (st != TC_OK) return raise_status(st, err);
    Py_RETURN_NONE;
}

/* import_timing_cache(path) -> choices read; export_timing_cache(path) -> choices written */
static PyObject *engine_timing_cache(EngineObject *self, PyObject *args, bool import) {
    const char *path;
    if (!PyArg_ParseTuple(args, "s", &path)) return NULL;
    char err[2048];
    int n = 0;
    tc_status st;
    Py_BEGIN_ALLOW_THREADS
    st = import ? tc_engine_import_timing_cache(self->e, path, &n, err, sizeof err)
                : tc_engine_export_timing_cache(self->e, path, &n, err, sizeof err);
    Py_END_ALLOW_THREADS
    if (st != TC_OK) return raise_status(st, err);
    return PyLong_FromLong(n);
}

static PyObject *engine_import_timing_cache(EngineObject *self, PyObject *args) {
    return engine_timing_cache(self, args, true);
}

static PyObject *engine_export_timing_cache(EngineObject *self, PyObject *args) {
    return engine_timing_cache(self, args, false);
}

/* Reads [(data_ptr, dtype, shape), ...] into tensors. */
static int tensor_list(PyObject *seq, int expect, const char *what, tc_tensor **out) {
    *out = NULL;
    PyObject *fast = PySequence_Fast(seq, "tensors must be a sequence of (data_ptr, dtype, shape)");
    if (!fast) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n != expect) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "the engine has %d %s, got %zd", expect, what, n);
        return -1;
    }
    tc_tensor *t = calloc((size_t)n + 1, sizeof *t);
    if (!t) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned long long ptr;
        long code;
        PyObject *shape;
        tc_dim dims[TC_MAX_RANK];
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, i), "KlO", &ptr, &code, &shape) ||
            dtype_arg(code, &t[i].dtype) < 0 || dims_arg(shape, dims, &t[i].rank, what) < 0) {
            free(t);
            Py_DECREF(fast);
            return -1;
        }
        for (int d = 0; d < t[i].rank; d++) t[i].dims[d] = dims[d];
        t[i].data = (void *)(uintptr_t)ptr;
    }
    Py_DECREF(fast);
    *out = t;
    return 0;
}

/* execute(inputs, outputs, stream=None): inputs and outputs are [(data_ptr, dtype, shape)];
 * outputs are caller buffers of the right size. CPU engines run synchronously; CUDA engines are
 * enqueued on stream (a cudaStream_t as int; None = synchronous on the context's stream). */
static PyObject *engine_execute(EngineObject *self, PyObject *args) {
    PyObject *ins, *outs, *stream_obj = Py_None;
    if (!PyArg_ParseTuple(args, "OO|O", &ins, &outs, &stream_obj)) return NULL;
    void *stream = NULL;
    if (stream_obj != Py_None) {
        stream = PyLong_AsVoidPtr(stream_obj);
        if (!stream && PyErr_Occurred()) return NULL;
    }
    tc_tensor *in = NULL, *out = NULL;
    if (tensor_list(ins, tc_engine_num_inputs(self->e), "inputs", &in) < 0) return NULL;
    if (tensor_list(outs, tc_engine_num_outputs(self->e), "outputs", &out) < 0) {
        free(in);
        return NULL;
    }
    int n_in = tc_engine_num_inputs(self->e), n_out = tc_engine_num_outputs(self->e);
    tc_status st = TC_OK;
    char err[1024] = "";
    Py_BEGIN_ALLOW_THREADS
    PyThread_acquire_lock(self->lock, WAIT_LOCK);
    for (int i = 0; st == TC_OK && i < n_in; i++) st = tc_context_set_input(self->ctx, i, &in[i]);
    for (int i = 0; st == TC_OK && i < n_out; i++) st = tc_context_set_output(self->ctx, i, &out[i]);
    if (st == TC_OK) {
        if (stream_obj == Py_None) st = tc_context_execute(self->ctx);
        else st = tc_context_enqueue(self->ctx, stream);
    }
    if (st != TC_OK) snprintf(err, sizeof err, "%s", tc_context_last_error(self->ctx));
    /* unbind caller memory so a later failed call cannot touch it */
    for (int i = 0; i < n_out; i++) tc_context_set_output(self->ctx, i, NULL);
    PyThread_release_lock(self->lock);
    Py_END_ALLOW_THREADS
    free(in);
    free(out);
    if (st != TC_OK) return raise_status(st, err);
    Py_RETURN_NONE;
}

static PyObject *engine_inputs(EngineObject *self, void *unused) {
    int n = tc_engine_num_inputs(self->e);
    PyObject *l = PyList_New(n);
    for (int i = 0; l && i < n; i++) {
        PyObject *t = Py_BuildValue("(si)", tc_engine_input_name(self->e, i), (int)tc_engine_input_dtype(self->e, i));
        if (!t) {
            Py_DECREF(l);
            return NULL;
        }
        PyList_SET_ITEM(l, i, t);
    }
    return l;
}

static PyObject *engine_outputs(EngineObject *self, void *unused) {
    int n = tc_engine_num_outputs(self->e);
    PyObject *l = PyList_New(n);
    for (int i = 0; l && i < n; i++) {
        const char *name = tc_engine_output_name(self->e, i);
        PyObject *s = PyUnicode_FromString(name ? name : "");
        if (!s) {
            Py_DECREF(l);
            return NULL;
        }
        PyList_SET_ITEM(l, i, s);
    }
    return l;
}

static PyObject *engine_backend(EngineObject *self, void *unused) {
    return PyLong_FromLong((long)tc_engine_backend(self->e));
}

static PyObject *dims_object(const tc_graph *g, const tc_value *v) {
    PyObject *t = PyTuple_New(v->rank);
    for (int d = 0; t && d < v->rank; d++) {
        PyObject *o;
        if (TC_DIM_IS_SYM(v->dims[d])) {
            char buf[256];
            o = PyUnicode_FromString(tc_sym_print(&g->syms, v->dims[d], buf, sizeof buf));
        } else {
            o = PyLong_FromLongLong(v->dims[d]);
        }
        if (!o) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, d, o);
    }
    return t;
}

/* io_types() -> ([(name, dtype, dims)], [(name, dtype, dims)]): symbolic dims as text ("2*s0"). */
static PyObject *engine_io_types(EngineObject *self, PyObject *unused) {
    const tc_graph *g = tc_engine_graph(self->e);
    PyObject *ins = PyList_New(g->inputs.n), *outs = PyList_New(g->outputs.n);
    if (!ins || !outs) goto fail;
    for (int i = 0; i < g->inputs.n; i++) {
        const tc_value *v = g->inputs.items[i];
        PyObject *t = Py_BuildValue("(siN)", v->name, (int)v->dtype, dims_object(g, v));
        if (!t) goto fail;
        PyList_SET_ITEM(ins, i, t);
    }
    for (int i = 0; i < g->outputs.n; i++) {
        const tc_value *v = g->outputs.items[i];
        const char *name = g->output_names.items[i];
        PyObject *t = Py_BuildValue("(siN)", name ? name : v->name, (int)v->dtype, dims_object(g, v));
        if (!t) goto fail;
        PyList_SET_ITEM(outs, i, t);
    }
    return Py_BuildValue("(NN)", ins, outs);
fail:
    Py_XDECREF(ins);
    Py_XDECREF(outs);
    return NULL;
}

/* output_shapes([input shape, ...]) -> [output shape, ...]: symbols bound from the inputs' dims
 * (those that are exactly one symbol); the engine checks the inputs fully when it runs. */
static PyObject *engine_output_shapes(EngineObject *self, PyObject *shapes) {
    const tc_graph *g = tc_engine_graph(self->e);
    PyObject *fast = PySequence_Fast(shapes, "input shapes must be a sequence");
    if (!fast) return NULL;
    if (PySequence_Fast_GET_SIZE(fast) != g->inputs.n) {
        Py_DECREF(fast);
        return PyErr_Format(PyExc_ValueError, "the engine has %d inputs, got %zd shapes", g->inputs.n,
                            PySequence_Fast_GET_SIZE(fast));
    }
    int64_t *vals = calloc((size_t)tc_sym_num_atoms(&g->syms) + 1, sizeof *vals);
    if (!vals) {
        Py_DECREF(fast);
        return PyErr_NoMemory();
    }
    for (int i = 0; i < tc_sym_num_atoms(&g->syms); i++) {
        const tc_sym_atom *a = g->syms.atoms.items[i];
        if (a->kind == TC_ATOM_SYMBOL) vals[i] = a->opt;
    }
    PyObject *result = NULL;
    for (int i = 0; i < g->inputs.n; i++) {
        const tc_value *v = g->inputs.items[i];
        tc_dim dims[TC_MAX_RANK];
        int rank;
        if (dims_arg(PySequence_Fast_GET_ITEM(fast, i), dims, &rank, "input shape") < 0) goto done;
        if (rank != v->rank) {
            PyErr_Format(PyExc_ValueError, "input '%s' must have %d dims, got %d", v->name, v->rank, rank);
            goto done;
        }
        for (int d = 0; d < rank; d++) {
            int sym = tc_sym_as_symbol(&g->syms, v->dims[d]);
            if (sym >= 0) vals[sym] = dims[d];
        }
    }
    result = PyList_New(g->outputs.n);
    for (int i = 0; result && i < g->outputs.n; i++) {
        const tc_value *v = g->outputs.items[i];
        PyObject *t = PyTuple_New(v->rank);
        for (int d = 0; t && d < v->rank; d++) {
            int64_t x = TC_DIM_IS_SYM(v->dims[d]) ? tc_sym_eval(&g->syms, v->dims[d], vals) : v->dims[d];
            PyObject *o = PyLong_FromLongLong(x);
            if (!o) Py_CLEAR(t);
            else PyTuple_SET_ITEM(t, d, o);
        }
        if (!t) Py_CLEAR(result);
        else PyList_SET_ITEM(result, i, t);
    }
done:
    free(vals);
    Py_DECREF(fast);
    return result;
}

static PyMethodDef engine_methods[] = {
    {"execute", (PyCFunction)engine_execute, METH_VARARGS,
     "execute(inputs, outputs, stream=None): runs on [(data_ptr, dtype, shape)] inputs into caller outputs"},
    {"serialize", (PyCFunction)engine_serialize, METH_NOARGS, "serialize() -> bytes of a .tce engine file"},
    {"prepare", (PyCFunction)engine_prepare, METH_NOARGS,
     "prepare(): choose (and time) a CUDA engine's cuDNN/cuBLASLt plans at its opt shapes now"},
    {"import_timing_cache", (PyCFunction)engine_import_timing_cache, METH_VARARGS,
     "import_timing_cache(path) -> plan choices read (0 for CPU engines)"},
    {"export_timing_cache", (PyCFunction)engine_export_timing_cache, METH_VARARGS,
     "export_timing_cache(path) -> plan choices written (0 for CPU engines, no file)"},
    {"deserialize", (PyCFunction)(void (*)(void))engine_deserialize, METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     "Engine.deserialize(data, backend=None, device=0, num_threads=0, size=-1) -> Engine from .tce bytes "
     "(data: bytes-like, or an address of size bytes)"},
    {"io_types", (PyCFunction)engine_io_types, METH_NOARGS,
     "io_types() -> (inputs, outputs) as [(name, dtype, dims)] with symbolic dims as text"},
    {"output_shapes", (PyCFunction)engine_output_shapes, METH_O,
     "output_shapes([input shapes]) -> [output shapes] for those input shapes"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef engine_getset[] = {
    {"inputs", (getter)engine_inputs, NULL, "[(name, dtype code)] of the engine's inputs", NULL},
    {"outputs", (getter)engine_outputs, NULL, "[name] of the engine's outputs", NULL},
    {"backend", (getter)engine_backend, NULL, "0 cpu, 1 cuda", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tensorc._C.Engine",
    .tp_basicsize = sizeof(EngineObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A built engine with one execution context guarded by a lock.",
    .tp_new = engine_new,
    .tp_dealloc = (destructor)engine_dealloc,
    .tp_methods = engine_methods,
    .tp_getset = engine_getset,
};

/* ============================================================================================
 * Module functions
 */
static PyObject *mod_version(PyObject *m, PyObject *unused) { return PyUnicode_FromString(tc_version_string()); }
static PyObject *mod_has_cuda(PyObject *m, PyObject *unused) { return PyBool_FromLong(tc_has_cuda()); }

/* ops() -> [(name, schema, cpu supported, cuda supported)] */
static PyObject *mod_ops(PyObject *m, PyObject *unused) {
    int n = tc_op_count();
    PyObject *l = PyList_New(n);
    for (int i = 0; l && i < n; i++) {
        PyObject *t = Py_BuildValue("(ssNN)", tc_op_name(i), tc_op_schema(i),
                                    PyBool_FromLong(tc_op_supported(i, TC_BACKEND_CPU)),
                                    PyBool_FromLong(tc_op_supported(i, TC_BACKEND_CUDA)));
        if (!t) {
            Py_DECREF(l);
            return NULL;
        }
        PyList_SET_ITEM(l, i, t);
    }
    return l;
}

static PyObject *mod_status_string(PyObject *m, PyObject *arg) {
    long s = PyLong_AsLong(arg);
    if (s == -1 && PyErr_Occurred()) return NULL;
    return PyUnicode_FromString(tc_status_string((tc_status)s));
}

/* copy_bytes(address, size) -> bytes: host memory (a CPU tensor's) as bytes. */
static PyObject *mod_copy_bytes(PyObject *m, PyObject *args) {
    unsigned long long ptr;
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "Kn", &ptr, &size)) return NULL;
    if (size < 0 || (!ptr && size)) return PyErr_Format(PyExc_ValueError, "bad address or size");
    return PyBytes_FromStringAndSize(size ? (const char *)(uintptr_t)ptr : "", size);
}

static PyMethodDef module_methods[] = {
    {"copy_bytes", mod_copy_bytes, METH_VARARGS, "copy_bytes(address, size) -> bytes of host memory"},
    {"version", mod_version, METH_NOARGS, "version() -> str: library version and backends"},
    {"has_cuda", mod_has_cuda, METH_NOARGS, "has_cuda() -> bool: whether the CUDA backend is compiled in"},
    {"ops", mod_ops, METH_NOARGS, "ops() -> [(name, schema, cpu, cuda)]: the op table"},
    {"status_string", mod_status_string, METH_O, "status_string(code) -> str"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "tensorc._C",
    .m_doc = "The tensorc C library (include/tensorc.h) for the tensorc package.",
    .m_size = -1,
    .m_methods = module_methods,
};

static int add_long_long(PyObject *m, const char *name, long long v) {
    PyObject *o = PyLong_FromLongLong(v);
    if (!o) return -1;
    int rc = PyModule_AddObjectRef(m, name, o);
    Py_DECREF(o);
    return rc;
}

PyMODINIT_FUNC PyInit__C(void) {
    if (PyType_Ready(&GraphType) < 0 || PyType_Ready(&EngineType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (!m) return NULL;
    tc_py_error = PyErr_NewExceptionWithDoc("tensorc._C.Error",
                                            "An error from the tensorc C library; .status is the tc_status code, "
                                            ".message the library's message (with node name and op where there is one).",
                                            PyExc_RuntimeError, NULL);
    if (!tc_py_error || PyModule_AddObjectRef(m, "Error", tc_py_error) < 0 ||
        PyModule_AddObjectRef(m, "Graph", (PyObject *)&GraphType) < 0 ||
        PyModule_AddObjectRef(m, "Engine", (PyObject *)&EngineType) < 0 ||
        PyModule_AddIntConstant(m, "MAX_RANK", TC_MAX_RANK) < 0 ||
        add_long_long(m, "DIM_SYM_BASE", TC_DIM_SYM_BASE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
