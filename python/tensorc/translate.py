"""Translation of torch.fx graphs (core ATen, as torch.export leaves them) into tensorc IR graphs
through the C extension: one tc_graph_add_node per ATen node with its arguments by schema name,
weights as constants that borrow the torch tensors' memory, symbolic sizes as graph symbols, and
every node the op table cannot take as an opaque node, so the partitioner sees it."""
import operator

import sympy
import torch
import torch.fx

from . import _C

TORCH_TO_TC = {
    torch.float32: 0, torch.float16: 1, torch.bfloat16: 2, torch.float8_e4m3fn: 3, torch.int64: 4,
    torch.int32: 5, torch.int8: 6, torch.uint8: 7, torch.bool: 8, torch.float64: 9,
}
TC_TO_TORCH = {v: k for k, v in TORCH_TO_TC.items()}
TC_NAMES = ["f32", "f16", "bf16", "f8e4m3", "i64", "i32", "i8", "u8", "bool", "f64"]

(ARG_NONE, ARG_TENSOR, ARG_TENSORS, ARG_INT, ARG_INTS, ARG_FLOAT, ARG_FLOATS, ARG_BOOL, ARG_BOOLS,
 ARG_STRING, ARG_DTYPE) = range(11)
SYM_ADD, SYM_SUB, SYM_MUL, SYM_FLOORDIV, SYM_MOD = range(5)
DIM_SYM_BASE = _C.DIM_SYM_BASE
# an upper bound for sizes that torch leaves unbounded (the .pt2 importer uses the same)
UNBOUNDED_MAX = 1 << 20

_SKIPPED_ARG_TYPES = (torch.device, torch.layout, torch.memory_format)
_SYMINT_OPS = {operator.add: SYM_ADD, operator.sub: SYM_SUB, operator.mul: SYM_MUL,
               operator.floordiv: SYM_FLOORDIV, operator.mod: SYM_MOD}

_op_table = None


def op_table():
    """{op name: (cpu supported, cuda supported)} of the C op table."""
    global _op_table
    if _op_table is None:
        _op_table = {name: (cpu, cuda) for name, _schema, cpu, cuda in _C.ops()}
    return _op_table


def short_op_name(target):
    """The op table's spelling of a node target: "add.Tensor", "relu", "mylib.foo"."""
    if isinstance(target, torch._ops.OpOverload):
        name = str(target)
        if name.startswith("aten."):
            name = name[5:]
    elif isinstance(target, str):
        name = target
    else:
        name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or str(target)
        mod = getattr(target, "__module__", None)
        if mod and mod not in ("builtins", "_operator"):
            name = f"{mod}.{name}"
    return name[:-8] if name.endswith(".default") else name


class Rejected(Exception):
    """A node the op table cannot take; the message says why."""


class UnsupportedExpr(Exception):
    pass


def walk_expr(expr, leaf, const, binop):
    """Folds a sympy size expression: leaf(symbol), const(int), binop(op, a, b) with the SYM_* ops."""
    from torch.utils._sympy import functions as F
    if isinstance(expr, int) or expr.is_Integer:
        v = int(expr)
        if v < 0:
            return binop(SYM_SUB, const(0), const(-v))
        return const(v)
    if expr.is_Symbol:
        return leaf(expr)
    if isinstance(expr, sympy.Add):
        pos, neg = [], []
        for t in expr.args:
            c, rest = t.as_coeff_Mul()
            if c < 0:
                neg.append(-c * rest)
            else:
                pos.append(t)
        acc = None
        for t in pos:
            v = walk_expr(t, leaf, const, binop)
            acc = v if acc is None else binop(SYM_ADD, acc, v)
        if acc is None:
            acc = const(0)
        for t in neg:
            acc = binop(SYM_SUB, acc, walk_expr(t, leaf, const, binop))
        return acc
    if isinstance(expr, sympy.Mul):
        acc = None
        for t in expr.args:
            if t.is_Rational and not t.is_Integer:
                raise UnsupportedExpr(f"size expression {expr} has a fraction")
            if t.is_Pow and t.exp.is_Integer and t.exp > 0:
                v = walk_expr(t.base, leaf, const, binop)
                tv = v
                for _ in range(int(t.exp) - 1):
                    tv = binop(SYM_MUL, tv, v)
                v = tv
            else:
                v = walk_expr(t, leaf, const, binop)
            acc = v if acc is None else binop(SYM_MUL, acc, v)
        return acc
    if isinstance(expr, sympy.Pow) and expr.exp.is_Integer and expr.exp > 0:
        return walk_expr(sympy.Mul(*([expr.base] * int(expr.exp)), evaluate=False), leaf, const, binop)
    floordiv = tuple(getattr(F, n) for n in ("FloorDiv", "CleanDiv") if hasattr(F, n))
    mod = tuple(getattr(F, n) for n in ("Mod", "PythonMod") if hasattr(F, n)) + (sympy.Mod,)
    if isinstance(expr, floordiv):
        return binop(SYM_FLOORDIV, walk_expr(expr.args[0], leaf, const, binop),
                     walk_expr(expr.args[1], leaf, const, binop))
    if isinstance(expr, mod):
        return binop(SYM_MOD, walk_expr(expr.args[0], leaf, const, binop),
                     walk_expr(expr.args[1], leaf, const, binop))
    raise UnsupportedExpr(f"size expression {expr} ({type(expr).__name__}) is not supported")


def sym_expr_of(d):
    """The sympy expression of a SymInt (an Integer for a constant one), or an int for an int."""
    if isinstance(d, int):
        return d
    if isinstance(d, torch.SymInt):
        return d.node.expr
    raise TypeError(f"not a size: {d!r}")


def _finite_int(x, default):
    if x is None:
        return default
    try:
        if getattr(x, "is_finite", True) is False or getattr(x, "is_infinite", False):
            return default
        return int(x)
    except (TypeError, ValueError, OverflowError, AttributeError):
        return default


class SymbolTable:
    """Graph symbols for sympy symbols; ranges from `overrides` {symbol name: (min, opt, max)}
    (from tensorc.Input) or else from the shape environment of the traced graph."""

    def __init__(self, graph, overrides=None):
        self.g = graph
        self.overrides = overrides or {}
        self.syms = {}
        self.shape_env = None

    def note(self, d):
        if self.shape_env is None and isinstance(d, torch.SymInt):
            self.shape_env = d.node.shape_env

    def range_of(self, sym):
        name = str(sym)
        if name in self.overrides:
            return self.overrides[name]
        lo, hi, opt = 0, UNBOUNDED_MAX, None
        env = self.shape_env
        if env is not None:
            vr = env.var_to_range.get(sym)
            if vr is not None:
                lo = _finite_int(vr.lower, 0)
                hi = min(_finite_int(vr.upper, UNBOUNDED_MAX), UNBOUNDED_MAX)
            hints = getattr(env, "backed_var_to_val", None)
            if hints is None:
                hints = env.var_to_val
            opt = _finite_int(hints.get(sym), None)
        lo = max(lo, 0)
        hi = max(hi, lo)
        opt = lo if opt is None else min(max(opt, lo), hi)
        return lo, opt, hi

    def symbol(self, sym):
        d = self.syms.get(sym)
        if d is None:
            lo, opt, hi = self.range_of(sym)
            d = self.g.add_symbol(str(sym), lo, opt, hi)
            self.syms[sym] = d
        return d

    def dim(self, d):
        self.note(d)
        e = sym_expr_of(d)
        if isinstance(e, int):
            return e
        return walk_expr(e, self.symbol, lambda v: v, lambda op, a, b: self.g.sym_expr(op, a, b))

    def dims(self, shape):
        return [self.dim(d) for d in shape]


# env entries: ("t", value id) a tensor, ("x", value id) a value tensorc cannot represent (kept so
# the partitioner sees the dependency), ("s", dim) a symbolic or constant int, ("l", [entries]) a
# list of outputs, ("c", python value) anything else.

def _fake(node):
    return node.meta.get("val", node.meta.get("example_value"))


def _is_tensor(v):
    return isinstance(v, torch.Tensor)


class Translator:
    """Builds one C graph from FX nodes. `force_opaque` {fx node: reason} adds those nodes as
    opaque nodes whatever their op (nodes the op table took with a wrong inferred type)."""

    def __init__(self, sym_overrides=None, force_opaque=None):
        self.g = _C.Graph()
        self.syms = SymbolTable(self.g, sym_overrides)
        self.env = {}
        self.force_opaque = force_opaque or {}
        self.node_index = {}   # fx node -> C node index
        self.fx_of_index = []  # C node index -> fx node
        self.reasons = {}      # fx node -> why the op table did not take it
        self.mismatches = {}   # fx node -> inferred type differs from PyTorch's

    # ---- values --------------------------------------------------------------------------------
    def add_input(self, node, name=None):
        val = _fake(node)
        if _is_tensor(val) and val.dtype in TORCH_TO_TC:
            vid = self.g.add_input(name or node.name, TORCH_TO_TC[val.dtype], self.syms.dims(val.shape))
            self.env[node] = ("t", vid)
        elif isinstance(val, (int, torch.SymInt)) and not isinstance(val, bool):
            self.env[node] = ("s", self.syms.dim(val))
        else:
            self.env[node] = ("x", self._dummy(node, "input", []))
        return self.env[node]

    def add_constant(self, node, tensor):
        if not _is_tensor(tensor) or tensor.dtype not in TORCH_TO_TC:
            self.env[node] = ("x", self._dummy(node, "get_attr", []))
            return
        t = tensor.detach()
        if t.device.type != "cpu":
            t = t.cpu()  # engines read weights from host memory and upload them themselves
        if not t.is_contiguous():
            t = t.contiguous()
        ptr = t.data_ptr() if t.numel() else 0
        vid = self.g.add_constant(node.name, TORCH_TO_TC[t.dtype], list(t.shape), ptr, t if ptr else None)
        self.env[node] = ("t", vid)

    def _dummy(self, node, op, inputs):
        ids = self.g.add_opaque_node(op, node.name, inputs, [(TORCH_TO_TC[torch.uint8], [])])
        self._record_node(node)
        return ids[0]

    def _record_node(self, node):
        idx = len(self.fx_of_index)
        self.node_index[node] = idx
        self.fx_of_index.append(node)

    def value(self, node):
        return self.env[node]

    # ---- nodes ---------------------------------------------------------------------------------
    def add_call(self, node):
        """Translates a call_function node; returns the C node index or None when it needs none."""
        target = node.target
        if target is operator.getitem:
            src = self.env.get(node.args[0])
            if src is not None and src[0] == "l":
                self.env[node] = src[1][node.args[1]]
                return None
            return self._opaque(node, "getitem of a value that is not a list of outputs")
        val = _fake(node)
        if isinstance(val, (torch.SymInt, int)) and not isinstance(val, bool) and not _is_tensor(val):
            # sym_size and arithmetic on sizes: a dim expression, no IR node
            try:
                self.env[node] = ("s", self.syms.dim(val))
                return None
            except UnsupportedExpr as e:
                return self._opaque(node, str(e))
        if node in self.force_opaque:
            return self._opaque(node, self.force_opaque[node])
        if not isinstance(target, torch._ops.OpOverload) or target.namespace != "aten":
            return self._opaque(node, None)
        name = short_op_name(target)
        if name not in op_table():
            return self._opaque(node, None)
        try:
            op, args = self._bind(node, target, name)
            outs = self.g.add_node(op, node.name, args)
        except Rejected as e:
            return self._opaque(node, str(e))
        except _C.Error as e:
            return self._opaque(node, e.message)
        self._record_node(node)
        self._bind_outputs(node, outs)
        return self.node_index[node]

    def _bind_outputs(self, node, outs):
        val = _fake(node)
        if isinstance(val, (list, tuple)):
            self.env[node] = ("l", [("t", o) for o in outs])
            fakes = list(val)
            # only outputs the graph reads must agree (unused saved statistics may differ)
            used = {u.args[1] for u in node.users if u.target is operator.getitem and u.users}
        else:
            self.env[node] = ("t", outs[0]) if outs else ("c", None)
            fakes = [val]
            used = {0}
        for i, (o, f) in enumerate(zip(outs, fakes)):
            if not _is_tensor(f) or i not in used:
                continue
            _name, dt, dims = self.g.value_info(o)
            want = TORCH_TO_TC.get(f.dtype)
            same = want == dt and len(dims) == f.dim()
            if same:
                for a, b in zip(dims, f.shape):
                    if a > DIM_SYM_BASE and isinstance(b, int) and a != b:
                        same = False
            if not same:
                got = f"{TC_NAMES[dt]}[{', '.join(self.g.dim_string(d) for d in dims)}]"
                self.mismatches[node] = (f"tensorc infers {got}, PyTorch {f.dtype}{list(f.shape)}")

    def _opaque(self, node, reason):
        ins = []

        def collect(a):
            if isinstance(a, torch.fx.Node):
                e = self.env.get(a)
                if e is None:
                    return
                stack = [e]
                while stack:
                    k, v = stack.pop()
                    if k in ("t", "x"):
                        ins.append(v)
                    elif k == "l":
                        stack.extend(v)
            elif isinstance(a, (list, tuple)):
                for x in a:
                    collect(x)
            elif isinstance(a, dict):
                for x in a.values():
                    collect(x)

        collect(node.args)
        collect(node.kwargs)
        val = _fake(node)
        fakes = list(val) if isinstance(val, (list, tuple)) else [val]
        specs, kinds = [], []
        for f in fakes:
            if _is_tensor(f) and f.dtype in TORCH_TO_TC:
                try:
                    specs.append((TORCH_TO_TC[f.dtype], self.syms.dims(f.shape)))
                    kinds.append("t")
                    continue
                except UnsupportedExpr:
                    pass
            specs.append((TORCH_TO_TC[torch.uint8], []))
            kinds.append("x")
        op = short_op_name(node.target) if node.op == "call_function" else f"{node.op}:{node.target}"
        outs = self.g.add_opaque_node(op, node.name, ins, specs)
        self._record_node(node)
        entries = [(k, o) for k, o in zip(kinds, outs)]
        self.env[node] = ("l", entries) if isinstance(val, (list, tuple)) else entries[0]
        if reason:
            self.reasons[node] = reason
        return self.node_index[node]

    def _bind(self, node, target, name):
        schema = target._schema
        pairs = []
        for i, a in enumerate(node.args):
            if i >= len(schema.arguments):
                raise Rejected(f"more positional arguments than the schema of {name} has")
            pairs.append((schema.arguments[i], a))
        by_name = {a.name: a for a in schema.arguments}
        for k, a in node.kwargs.items():
            if k not in by_name:
                raise Rejected(f"argument '{k}' is not in the schema of {name}")
            pairs.append((by_name[k], a))
        op = name
        args = []
        for sarg, a in pairs:
            enc = self._encode(sarg, a)
            if enc is not None:
                args.append(enc)
        # a Python number where the schema wants a Tensor: the .Scalar overload or a 0-dim constant
        wrapped = [i for i, (sarg, _a) in enumerate(pairs) if str(sarg.type) == "Tensor"
                   and isinstance(_a, (int, float, bool))]
        if wrapped:
            alt = name[:-7] + ".Scalar" if name.endswith(".Tensor") else None
            if alt in op_table():
                op = alt
            else:
                args = [self._wrap_scalar(node, a) if a[1] in (ARG_INT, ARG_FLOAT, ARG_BOOL) and
                        str(by_name[a[0]].type) == "Tensor" else a for a in args]
        return op, args

    def _wrap_scalar(self, node, arg):
        name, kind, v = arg
        dtype = {ARG_INT: torch.int64, ARG_FLOAT: torch.float32, ARG_BOOL: torch.bool}[kind]
        t = torch.tensor(v, dtype=dtype)
        vid = self.g.add_constant(f"{node.name}.{name}", TORCH_TO_TC[dtype], [], t.data_ptr(), None)
        return (name, ARG_TENSOR, vid)

    def _resolve(self, a, what):
        e = self.env.get(a)
        if e is None:
            raise Rejected(f"argument '{what}' comes from node '{a.name}', which was not translated")
        return e

    def _encode(self, sarg, a):
        name = sarg.name
        tstr = str(sarg.type)
        if a is None:
            return (name, ARG_NONE, None)
        if isinstance(a, _SKIPPED_ARG_TYPES):
            return None
        if isinstance(a, torch.fx.Node):
            k, v = self._resolve(a, name)
            if k == "t":
                return (name, ARG_TENSOR, v)
            if k == "s":
                return (name, ARG_INT, v)
            if k == "c":
                return self._encode(sarg, v)
            raise Rejected(f"argument '{name}' is a value tensorc cannot represent")
        if isinstance(a, bool):
            return (name, ARG_BOOL, a)
        if isinstance(a, int):
            return (name, ARG_INT, a)
        if isinstance(a, float):
            return (name, ARG_FLOAT, a)
        if isinstance(a, torch.SymInt):
            return (name, ARG_INT, self.syms.dim(a))
        if isinstance(a, torch.dtype):
            if a not in TORCH_TO_TC:
                raise Rejected(f"argument '{name}': dtype {a} is not supported")
            return (name, ARG_DTYPE, TORCH_TO_TC[a])
        if isinstance(a, str):
            return (name, ARG_STRING, a)
        if isinstance(a, (list, tuple)):
            if "Tensor" in tstr:
                ids = []
                for x in a:
                    if x is None:
                        ids.append(None)
                        continue
                    if not isinstance(x, torch.fx.Node):
                        raise Rejected(f"argument '{name}' holds a {type(x).__name__} where a tensor is expected")
                    k, v = self._resolve(x, name)
                    if k != "t":
                        raise Rejected(f"argument '{name}' holds a value tensorc cannot represent")
                    ids.append(v)
                return (name, ARG_TENSORS, ids)
            vals = []
            for x in a:
                if isinstance(x, torch.fx.Node):
                    k, v = self._resolve(x, name)
                    if k != "s":
                        raise Rejected(f"argument '{name}' holds a tensor where a number is expected")
                    vals.append(v)
                elif isinstance(x, torch.SymInt):
                    vals.append(self.syms.dim(x))
                else:
                    vals.append(x)
            if "float" in tstr or any(isinstance(x, float) for x in vals):
                return (name, ARG_FLOATS, [float(x) for x in vals])
            if "bool" in tstr:
                return (name, ARG_BOOLS, [bool(x) for x in vals])
            return (name, ARG_INTS, [int(x) for x in vals])
        raise Rejected(f"argument '{name}' of type {type(a).__name__} is not supported")
