"""Partitioning a core-ATen FX graph with the C partitioner and stitching the result back together:
every block of backend nodes becomes an engine module (`_run_on_acc_<k>`), every other node stays a
PyTorch node of the parent graph, in an order where each runs after what it needs."""
import copy
import heapq
import json
import operator
import os
import time

import torch
import torch.fx

from . import _C
from ._log import Progress, logger, progress_enabled
from .runtime import BACKENDS, EngineModule, EngineRunner, engine_bytes_tensor, new_engine_id
from .translate import (TORCH_TO_TC, Translator, UnsupportedExpr, _fake, short_op_name, sym_expr_of,
                        walk_expr)

REASONS = ["", "unknown op", "rejected by the op table", "unsupported by the backend",
           "forced by torch_executed_ops", "block below min_block_size"]


# A view is valid for the layout its input had when the graph was traced. In PyTorch between engines
# its input may be laid out otherwise: engines return contiguous tensors where the trace may have had
# another layout (so a permute after an engine need not give what the traced permute gave), and a
# kernel may choose another layout than its meta function. Such views run as reshape, which views
# where it can and copies where it must.
_VIEWS = (torch.ops.aten.view.default, torch.ops.aten._unsafe_view.default)


class UnsupportedError(RuntimeError):
    """require_full_compilation was set and some nodes cannot run on the backend."""


def _fetch_attr(gm, target):
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _inputs_of(node):
    out = []
    torch.fx.map_arg((node.args, node.kwargs), lambda a: out.append(a))
    return out


def translate_graph(gm, sym_overrides, force_opaque=None):
    tr = Translator(sym_overrides, force_opaque)
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            tr.add_input(node)
        elif node.op == "get_attr":
            tr.add_constant(node, _fetch_attr(gm, node.target))
        elif node.op == "call_function":
            tr.add_call(node)
        elif node.op == "call_module" and node.target == "_guards_fn":
            continue
        elif node.op in ("call_module", "call_method"):
            tr._opaque(node, f"a {node.op} node ({node.target}) stays in PyTorch")
    return tr


class Partition:
    """Where each FX node runs: block_of[node] = k for nodes of engine k; reason[node] for the
    nodes that stay in PyTorch."""

    def __init__(self, gm, settings, sym_overrides):
        self.gm = gm
        self.settings = settings
        tr = translate_graph(gm, sym_overrides)
        if tr.mismatches:
            for node, msg in tr.mismatches.items():
                logger.warning("node '%s' (%s): %s; it stays in PyTorch", node.name, short_op_name(node.target), msg)
            tr = translate_graph(gm, sym_overrides, dict(tr.mismatches))
        self.translator = tr
        backend = BACKENDS[settings["backend"]]
        forced = [str(o) for o in settings["torch_executed_ops"]]
        try:
            n_blocks, rows, self.c_report = tr.g.partition(backend, settings["min_block_size"], forced,
                                                           settings["require_full_compilation"])
        except _C.Error as e:
            if settings["require_full_compilation"] and e.status == 6:  # TC_ERR_UNSUPPORTED
                _n, rows, _r = tr.g.partition(backend, 1, forced, False)
                bad = [self._row_text(tr.fx_of_index[i], r, tr) for i, r in enumerate(rows) if r[0] < 0]
                raise UnsupportedError(
                    f"require_full_compilation is set but {len(bad)} node(s) cannot run on the "
                    f"{settings['backend']} backend:\n  " + "\n  ".join(bad)) from None
            raise
        self.n_blocks = n_blocks
        self.block_of = {}
        self.reason = {}
        self.kind = {}
        for i, (block, reason, message, _name, _op) in enumerate(rows):
            node = tr.fx_of_index[i]
            if block >= 0:
                self.block_of[node] = block
            else:
                self.reason[node] = tr.reasons.get(node) or message
                self.kind[node] = REASONS[reason] if reason < len(REASONS) else "?"
        # getitems of a block's multi-output node belong to the block
        for node in gm.graph.nodes:
            if node.op == "call_function" and node.target is operator.getitem and node.args[0] in self.block_of:
                self.block_of[node] = self.block_of[node.args[0]]

    @staticmethod
    def _row_text(node, row, tr):
        block, reason, message, name, op = row
        return f"node '{name}' ({op}): {tr.reasons.get(node) or message}"

    def blocks(self):
        out = [[] for _ in range(self.n_blocks)]
        for node in self.gm.graph.nodes:
            if node in self.block_of:
                out[self.block_of[node]].append(node)
        return out

    def report(self):
        """The partition report: for each node where it runs and, for PyTorch nodes, why."""
        blocks = self.blocks()
        n_acc = sum(1 for b in blocks for n in b if n.target is not operator.getitem)
        lines = [f"tensorc partition ({self.settings['backend']} backend, min_block_size "
                 f"{self.settings['min_block_size']}): {n_acc} node(s) in {self.n_blocks} engine(s), "
                 f"{len(self.reason)} node(s) stay in PyTorch"]
        for node in self.gm.graph.nodes:
            if node.op != "call_function" or node.target is operator.getitem:
                continue
            op = short_op_name(node.target)
            if node in self.block_of:
                lines.append(f"  {node.name:<32} {op:<32} engine _run_on_acc_{self.block_of[node]}")
            elif node in self.reason:
                lines.append(f"  {node.name:<32} {op:<32} PyTorch: {self.reason[node]}")
        for k, b in enumerate(blocks):
            ops = sum(1 for n in b if n.target is not operator.getitem)
            lines.append(f"  engine _run_on_acc_{k}: {ops} node(s)")
        return "\n".join(lines)


# ---- building engines ---------------------------------------------------------------------------

def _block_io(part, block_nodes, k):
    members = set(block_nodes)
    inputs, seen = [], set()
    for node in block_nodes:
        for a in _inputs_of(node):
            if a in members or a in seen:
                continue
            seen.add(a)
            if a.op == "get_attr":
                continue
            e = part.translator.env.get(a)
            if e is not None and e[0] == "s":
                continue
            inputs.append(a)
    outputs = []
    for node in block_nodes:
        e = part.translator.env.get(node)
        if e is None or e[0] != "t":
            continue
        if any(u not in members for u in node.users):
            outputs.append(node)
    return inputs, outputs


def _dim_json(d, symbol_source):
    e = sym_expr_of(d)
    if isinstance(e, int):
        return e
    ops = {0: "+", 1: "-", 2: "*", 3: "//", 4: "%"}

    def leaf(sym):
        if sym not in symbol_source:
            raise UnsupportedExpr(f"size symbol {sym} is not a dim of any engine input")
        return ["s", *symbol_source[sym]]

    return walk_expr(e, leaf, lambda v: v, lambda op, a, b: [ops[op], a, b])


def _use_timing_cache(engine, path, k):
    """Takes the plan choices of the timing cache at path (when it is there and fits this GPU and
    these libraries), chooses the engine's plans now, timing what the cache lacks, and writes the
    cache back with them."""
    try:
        got = engine.import_timing_cache(path)
    except _C.Error as e:
        got = 0
        if os.path.exists(path):
            logger.warning("engine _run_on_acc_%d: %s; it is not used and will be replaced", k, e)
    engine.prepare()
    wrote = engine.export_timing_cache(path)
    logger.info("engine _run_on_acc_%d: timing cache %s: %d plan choice(s) read, %d written", k, path, got, wrote)


def build_engine(part, k, block_nodes, settings, sym_overrides):
    """Translates block k into its own graph, builds the engine, returns (module, inputs, outputs)."""
    gm = part.gm
    inputs, outputs = _block_io(part, block_nodes, k)
    if not outputs:
        return None  # nothing outside reads it: dead code
    tr = Translator(sym_overrides)
    names = settings.get("input_names") or {}
    for a in inputs:
        tr.add_input(a, names.get(a.name) if a.op == "placeholder" else None)
        if tr.env[a][0] != "t":
            raise RuntimeError(f"engine _run_on_acc_{k}: input '{a.name}' is not a tensor tensorc can take")
    members = set(block_nodes)
    for node in block_nodes:
        for a in _inputs_of(node):
            if a in members or a in tr.env:
                continue
            if a.op == "get_attr":
                tr.add_constant(a, _fetch_attr(gm, a.target))
            else:  # sizes (sym_size and arithmetic on them): dims of this graph
                tr.env[a] = ("s", tr.syms.dim(_fake(a)))
    for node in block_nodes:
        if node.op == "call_function":
            idx = tr.add_call(node)
            if node in tr.reasons or (idx is not None and node not in tr.env):
                raise RuntimeError(f"engine _run_on_acc_{k}: node '{node.name}' was not accepted the second "
                                   f"time: {tr.reasons.get(node)}")
    for o in outputs:
        tr.g.mark_output(tr.env[o][1], o.name)
    backend = settings["backend"]
    precisions = settings["enabled_precisions"]
    t0 = time.perf_counter()
    engine = _C.Engine(tr.g, backend=BACKENDS[backend], num_threads=settings.get("num_threads") or 0,
                       device=settings.get("device_index") or 0,
                       allow_fp16=torch.float16 in precisions, allow_bf16=torch.bfloat16 in precisions,
                       disable_tf32=bool(settings.get("disable_tf32")),
                       workspace_bytes=int(settings.get("workspace_size") or 0))
    cache = settings.get("timing_cache_path")
    if cache and backend == "cuda":
        _use_timing_cache(engine, str(cache), k)
    build_s = time.perf_counter() - t0
    # the description the custom op needs: dims of inputs, output dims as expressions of them
    symbol_source = {}
    in_specs = []
    for i, a in enumerate(inputs):
        f = _fake(a)
        shape, ranges = [], []
        for d, size in enumerate(f.shape):
            e = sym_expr_of(size)
            if isinstance(e, int) or e.is_Integer:
                shape.append(int(e))
                ranges.append([int(e), int(e)])
                continue
            shape.append(None)
            if e.is_Symbol:
                symbol_source.setdefault(e, (i, d))
                lo, _opt, hi = tr.syms.range_of(e)
            else:
                lo, hi = 0, 1 << 62
            ranges.append([lo, hi])
        in_specs.append({"name": names.get(a.name, a.name) if a.op == "placeholder" else a.name, "dtype": TORCH_TO_TC[f.dtype], "shape": shape, "range": ranges})
    out_specs = []
    for o in outputs:
        f = _fake(o)
        out_specs.append({"name": o.name, "dtype": TORCH_TO_TC[f.dtype],
                          "shape": [_dim_json(d, symbol_source) for d in f.shape]})
    eid = new_engine_id()
    n_ops = sum(1 for n in block_nodes if n.target is not operator.getitem)
    meta = json.dumps({"id": eid, "name": f"_run_on_acc_{k}", "backend": backend, "nodes": n_ops,
                       "inputs": in_specs, "outputs": out_specs}, separators=(",", ":"))
    runner = EngineRunner(engine, meta)
    module = EngineModule(runner, engine_bytes_tensor(engine), meta)
    return module, inputs, outputs, n_ops, build_s


# ---- stitching ----------------------------------------------------------------------------------

def _schedule(gm, part, block_nodes):
    """Topological order of the parent's steps: ("block", k) and ("node", fx node), earliest first."""
    order = {n: i for i, n in enumerate(gm.graph.nodes)}
    steps = {}

    def step_of(n):
        if n in part.block_of:
            return ("block", part.block_of[n])
        if n.op == "call_function" and not _is_free(part, n):
            return ("node", n)
        if n.op in ("call_module", "call_method") and n.target != "_guards_fn":
            return ("node", n)
        return None

    for n in gm.graph.nodes:
        s = step_of(n)
        if s is not None:
            steps.setdefault(s, []).append(n)
    deps = {s: set() for s in steps}
    users = {s: set() for s in steps}
    for s, members in steps.items():
        for n in members:
            for a in _inputs_of(n):
                p = step_of(a)
                if p is not None and p != s:
                    deps[s].add(p)
                    users[p].add(s)
    first = {s: min(order[n] for n in m) for s, m in steps.items()}
    ready = [(first[s], s) for s in steps if not deps[s]]
    heapq.heapify(ready)
    out = []
    while ready:
        _, s = heapq.heappop(ready)
        out.append(s)
        for u in users[s]:
            deps[u].discard(s)
            if not deps[u]:
                heapq.heappush(ready, (first[u], u))
    if len(out) != len(steps):
        raise RuntimeError("tensorc: the partition has a cycle between engines and PyTorch nodes (a bug in the "
                           "partitioner); compile with min_block_size larger or report the model")
    return out


def _is_free(part, n):
    """Size arithmetic (sym_size, operator.* on SymInts): recomputed from the graph inputs where needed."""
    e = part.translator.env.get(n)
    return e is not None and e[0] == "s" and n.op == "call_function"


class _Stitcher:
    def __init__(self, gm, part):
        self.gm, self.part = gm, part
        self.graph = torch.fx.Graph()
        self.graph._codegen = copy.deepcopy(gm.graph._codegen)
        self.env = {}
        self.attrs = {}
        self.dim_sources = {}
        self.sym_cache = {}

    def placeholder(self, n):
        new = self.graph.node_copy(n, lambda a: self.env[a])
        self.env[n] = new
        f = _fake(n)
        if isinstance(f, torch.Tensor):
            for d, size in enumerate(f.shape):
                e = sym_expr_of(size)
                if not isinstance(e, int) and e.is_Symbol:
                    self.dim_sources.setdefault(e, (new, d))

    def arg(self, a):
        if a in self.env:
            return self.env[a]
        if a.op == "get_attr":
            self.attrs[a.target] = _fetch_attr(self.gm, a.target)
            self.env[a] = self.graph.node_copy(a, lambda x: self.arg(x))
            return self.env[a]
        if _is_free(self.part, a):
            self.env[a] = self.symint(a)
            return self.env[a]
        raise RuntimeError(f"tensorc: node '{a.name}' is used before it is computed")

    def symint(self, n):
        """A SymInt node rebuilt from sym_size of graph inputs, so no engine has to export it."""
        ops = {0: operator.add, 1: operator.sub, 2: operator.mul, 3: operator.floordiv, 4: operator.mod}

        def leaf(sym):
            if sym not in self.sym_cache:
                if sym not in self.dim_sources:
                    raise UnsupportedExpr(str(sym))
                ph, d = self.dim_sources[sym]
                self.sym_cache[sym] = self.graph.call_function(torch.ops.aten.sym_size.int, (ph, d))
            return self.sym_cache[sym]

        try:
            return walk_expr(sym_expr_of(_fake(n)), leaf, lambda v: v,
                             lambda op, a, b: self.graph.call_function(ops[op], (a, b)))
        except UnsupportedExpr:
            return self.graph.node_copy(n, lambda x: self.arg(x))


def stitch(gm, settings, sym_overrides):
    """Partitions gm and returns (new GraphModule, Partition)."""
    part = Partition(gm, settings, sym_overrides)
    logger.info("%s", part.report().splitlines()[0])
    logger.debug("%s", part.report())
    if settings.get("dryrun"):
        return None, part
    blocks = part.blocks()
    if not blocks:
        logger.warning("no node of this graph runs on the %s backend: the whole model stays in PyTorch "
                       "(tensorc.partition_report or dryrun=True says why)", settings["backend"])
    engines = {}
    bar = Progress(len(blocks), "tensorc: building engines", progress_enabled(settings.get("progress")))
    try:
        for k, b in enumerate(blocks):
            built = build_engine(part, k, b, settings, sym_overrides)
            if built is None:
                engines[k] = None
                bar.step(f"_run_on_acc_{k}: unused, dropped")
                continue
            mod, ins, outs, n_ops, secs = built
            engines[k] = (mod, ins, outs)
            bar.step(f"_run_on_acc_{k}: {n_ops} nodes, {len(ins)} inputs, {len(outs)} outputs, {secs:.2f} s")
    finally:
        bar.close()
    st = _Stitcher(gm, part)
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            st.placeholder(n)
    for kind, item in _schedule(gm, part, blocks):
        if kind == "block":
            if engines[item] is None:
                continue
            mod, ins, outs = engines[item]
            name = f"_run_on_acc_{item}"
            st.attrs[name] = mod
            call = st.graph.call_module(name, tuple(st.arg(a) for a in ins))
            for j, o in enumerate(outs):
                g = st.graph.call_function(operator.getitem, (call, j))
                g.meta = dict(o.meta)
                st.env[o] = g
        else:
            new = st.graph.node_copy(item, lambda a: st.arg(a))
            if new.target in _VIEWS:
                new.target = torch.ops.aten.reshape.default
            st.env[item] = new
    for n in gm.graph.nodes:
        if n.op == "output":
            st.graph.node_copy(n, lambda a: st.arg(a))
    new_gm = torch.fx.GraphModule(st.attrs, st.graph, class_name="TensorcModule")
    for attr in ("_in_spec", "_out_spec"):
        if hasattr(gm, attr) and not hasattr(new_gm, attr):
            setattr(new_gm, attr, getattr(gm, attr))
    new_gm.graph.lint()
    return new_gm, part
