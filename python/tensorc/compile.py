"""tensorc.compile and tensorc.Input: a PyTorch module (nn.Module, ExportedProgram, TorchScript,
fx.GraphModule) to core ATen through torch.export, partitioned between tensorc engines and PyTorch;
and the torch.compile backend "tensorc", which does the same to each graph Dynamo captures."""
import copy

import torch
import torch.fx

from . import _C
from ._log import logger
from .partition import stitch
from .translate import short_op_name

# ops whose composite form tensorc implements whole: the decomposition table must not split them
KEEP_COMPOSITES = ("linear", "silu", "hardswish", "hardsigmoid", "scaled_dot_product_attention")
IRS = ("default", "dynamo", "torch_compile", "ts", "torchscript", "fx")


def decomposition_table():
    table = torch.export.default_decompositions()
    for name in KEEP_COMPOSITES:
        packet = getattr(torch.ops.aten, name)
        for overload in packet.overloads():
            table.pop(getattr(packet, overload), None)
    return table


class Input:
    """An input of the model to compile: a static shape, or a range for dynamic dims.

        tensorc.Input(shape=(1, 3, 224, 224), dtype=torch.float16, name="x")
        tensorc.Input(min_shape=(1, 128), opt_shape=(8, 128), max_shape=(32, 128), dtype=torch.int64)

    Dims where min_shape and max_shape differ are dynamic; engines accept any size in [min, max]
    and are tuned for opt. `name` labels the input in messages."""

    def __init__(self, shape=None, dtype=torch.float32, name=None, *, min_shape=None, opt_shape=None,
                 max_shape=None):
        ranged = (min_shape, opt_shape, max_shape)
        if shape is not None and any(s is not None for s in ranged):
            raise ValueError("tensorc.Input: give either shape or min_shape/opt_shape/max_shape, not both")
        if shape is not None:
            shape = tuple(int(d) for d in shape)
            self.min_shape = self.opt_shape = self.max_shape = shape
        else:
            if min_shape is None or max_shape is None:
                raise ValueError("tensorc.Input: a dynamic input needs min_shape and max_shape (and opt_shape)")
            if opt_shape is None:
                opt_shape = min_shape
            self.min_shape, self.opt_shape, self.max_shape = (tuple(int(d) for d in s) for s in
                                                              (min_shape, opt_shape, max_shape))
            if not len(self.min_shape) == len(self.opt_shape) == len(self.max_shape):
                raise ValueError(f"tensorc.Input: min_shape {self.min_shape}, opt_shape {self.opt_shape} and "
                                 f"max_shape {self.max_shape} have different ranks")
            for lo, opt, hi in zip(self.min_shape, self.opt_shape, self.max_shape):
                if not 0 <= lo <= opt <= hi:
                    raise ValueError(f"tensorc.Input: need 0 <= min <= opt <= max in every dim, got min_shape "
                                     f"{self.min_shape}, opt_shape {self.opt_shape}, max_shape {self.max_shape}")
        if not isinstance(dtype, torch.dtype):
            raise TypeError(f"tensorc.Input: dtype must be a torch.dtype, got {dtype!r}")
        self.dtype = dtype
        self.name = name

    @classmethod
    def from_tensor(cls, t, name=None):
        return cls(shape=tuple(t.shape), dtype=t.dtype, name=name)

    @property
    def shape(self):
        return self.opt_shape

    def dynamic_dims(self):
        return [d for d, (lo, hi) in enumerate(zip(self.min_shape, self.max_shape)) if lo != hi]

    def example(self, device="cpu"):
        """A tensor to trace with: opt_shape, except that dynamic dims are at least 2 (torch.export
        specializes sizes 0 and 1)."""
        shape = list(self.opt_shape)
        for d in self.dynamic_dims():
            if shape[d] < 2:
                shape[d] = min(2, self.max_shape[d])
        if self.dtype.is_floating_point:
            return torch.randn(shape, device=device).to(self.dtype)
        if self.dtype == torch.bool:
            return torch.zeros(shape, dtype=torch.bool, device=device)
        return torch.zeros(shape, dtype=self.dtype, device=device)

    def __repr__(self):
        if not self.dynamic_dims():
            return f"Input(shape={self.opt_shape}, dtype={self.dtype}, name={self.name!r})"
        return (f"Input(min_shape={self.min_shape}, opt_shape={self.opt_shape}, max_shape={self.max_shape}, "
                f"dtype={self.dtype}, name={self.name!r})")


def _specs(inputs):
    if inputs is None:
        return None
    if isinstance(inputs, (torch.Tensor, Input)):
        inputs = [inputs]
    return [x if isinstance(x, Input) else x for x in inputs]


def _examples(specs, device):
    """(example args, dynamic_shapes or None) for torch.export."""
    args, dyn, any_dyn = [], [], False
    for s in specs:
        if isinstance(s, torch.Tensor):
            args.append(s.to(device) if device is not None and s.device.type != device.type else s)
            dyn.append(None)
        elif isinstance(s, Input):
            args.append(s.example(device or "cpu"))
            dd = s.dynamic_dims()
            dyn.append({d: torch.export.Dim.DYNAMIC(min=s.min_shape[d], max=s.max_shape[d]) for d in dd} or None)
            any_dyn = any_dyn or bool(dd)
        else:
            raise TypeError(f"tensorc.compile: inputs must be tensors or tensorc.Input, got {type(s).__name__}")
    return args, (tuple(dyn) if any_dyn else None)


def _sym_overrides(gm, specs):
    """Symbol ranges (min, opt, max) from the Input specs, keyed by the symbol's name in gm."""
    out = {}
    phs = [n for n in gm.graph.nodes if n.op == "placeholder"]
    for ph, s in zip(phs, specs or []):
        val = ph.meta.get("val")
        if not isinstance(s, Input) or not isinstance(val, torch.Tensor):
            continue
        for d in s.dynamic_dims():
            size = val.shape[d]
            if isinstance(size, torch.SymInt) and size.node.expr.is_Symbol:
                out.setdefault(str(size.node.expr), (s.min_shape[d], s.opt_shape[d], s.max_shape[d]))
    return out


def _input_names(gm, specs):
    """{placeholder name: Input.name} for inputs named by the caller (used in engine messages)."""
    phs = [n for n in gm.graph.nodes if n.op == "placeholder"]
    return {ph.name: s.name for ph, s in zip(phs, specs or []) if isinstance(s, Input) and s.name}


def _resolve_device(device, specs, module):
    if device is not None:
        device = torch.device(device)
    else:
        for s in specs or []:
            if isinstance(s, torch.Tensor):
                device = s.device
                break
        if device is None and isinstance(module, torch.nn.Module):
            p = next(iter(module.parameters()), None)
            device = p.device if p is not None else None
        device = device or torch.device("cpu")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"tensorc.compile: device {device} is not supported (cpu or cuda)")
    if device.type == "cuda" and not _C.has_cuda():
        raise RuntimeError("tensorc.compile: this build of tensorc has no CUDA backend "
                           f"({_C.version()}); rebuild it with -DTENSORC_CUDA=ON or compile for device='cpu'")
    return device


def _settings(**kw):
    s = dict(kw)
    s["enabled_precisions"] = set(kw.get("enabled_precisions") or {torch.float32})
    for p in s["enabled_precisions"]:
        if p not in (torch.float32, torch.float16, torch.bfloat16):
            raise ValueError(f"tensorc.compile: enabled_precisions may hold torch.float32, torch.float16 and "
                             f"torch.bfloat16, not {p}")
    ops = kw.get("torch_executed_ops") or ()
    if isinstance(ops, (str, torch._ops.OpOverload, torch._ops.OpOverloadPacket)):
        ops = [ops]
    s["torch_executed_ops"] = [_op_pattern(o) for o in ops]
    if int(kw.get("min_block_size", 5)) < 1:
        raise ValueError("tensorc.compile: min_block_size must be at least 1")
    return s


def _op_pattern(o):
    if isinstance(o, torch._ops.OpOverload):
        return str(o)
    if isinstance(o, torch._ops.OpOverloadPacket):
        return o._qualified_op_name.replace("::", ".")
    if isinstance(o, str):
        return o
    raise TypeError(f"tensorc.compile: torch_executed_ops holds {o!r}; use names like "
                    "'torch.ops.aten.relu.default' or 'aten.relu', or the op objects")


def _is_check(node):
    """A node that only checks something (torch.export's _assert_tensor_metadata for .to() calls,
    _assert_scalar, sym_constrain_range*) and computes nothing that anything reads."""
    if node.op != "call_function" or node.users or not isinstance(node.target, torch._ops.OpOverload):
        return False
    return short_op_name(node.target).startswith(("_assert", "sym_constrain_range", "_check"))


def _retraceable(ep):
    """ep, or a copy of it (weights shared) that run_decompositions can retrace on the device its
    weights are on now. A program exported on one device and moved with move_to_device_pass keeps
    what was true on the first device: _assert_tensor_metadata nodes compare tensors on cuda:0 with
    the device "cuda" and fail, and a view may rely on the layout one device's kernel gave
    (torchvision's attention views the permuted output of SDPA, which the CPU kernel makes contiguous
    in that order and CUDA's kernels do not, so the .contiguous() between them recorded no copy).
    Views become reshapes, which the retrace turns back into views where the layout allows and into
    a copy and a view where it does not; metadata checks go (the C importer drops them too)."""
    graph = copy.deepcopy(ep.graph)
    changed = False
    for n in list(graph.nodes):
        if _is_check(n) and n.target is torch.ops.aten._assert_tensor_metadata.default:
            graph.erase_node(n)
            changed = True
        elif n.op == "call_function" and n.target in (torch.ops.aten.view.default, torch.ops.aten._unsafe_view.default):
            n.target = torch.ops.aten.reshape.default
            changed = True
    if not changed:
        return ep
    gm = torch.fx.GraphModule(ep.graph_module, graph)
    gm.meta.update(ep.graph_module.meta)
    return ep._update(gm, ep.graph_signature)


def _decomposed_module(ep):
    """ep in core ATen as a GraphModule without the nodes that only check (they compute nothing, and
    in PyTorch between engines they would run for nothing or fail, as above)."""
    gm = _retraceable(ep).run_decompositions(decomposition_table()).module()
    checks = [n for n in gm.graph.nodes if _is_check(n)]
    for n in checks:
        gm.graph.erase_node(n)
    if checks:
        gm.recompile()
    return gm


def _to_exported(module, ir, args, dynamic_shapes):
    if isinstance(module, torch.export.ExportedProgram):
        return module
    if ir in ("ts", "torchscript") or isinstance(module, (torch.jit.ScriptModule, torch.jit.ScriptFunction)):
        if not isinstance(module, (torch.jit.ScriptModule, torch.jit.ScriptFunction)):
            raise TypeError("tensorc.compile(ir='ts') takes a TorchScript module (torch.jit.script/trace)")
        from torch._export.converter import TS2EPConverter
        if dynamic_shapes is not None:
            logger.warning("ir='ts': TorchScript conversion traces at the example shapes; dynamic dims are ignored")
        return TS2EPConverter(module, tuple(args)).convert()
    if ir == "fx" and not isinstance(module, torch.fx.GraphModule):
        raise TypeError("tensorc.compile(ir='fx') takes a torch.fx.GraphModule")
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"tensorc.compile: cannot compile a {type(module).__name__}")
    if module.training and not isinstance(module, torch.fx.GraphModule):
        logger.warning("compiling a module in training mode; call module.eval() first for inference behaviour")
    return torch.export.export(module, tuple(args), dynamic_shapes=dynamic_shapes, strict=False)


def compile(module, inputs=None, *, ir="default", enabled_precisions=None, device=None, min_block_size=5,
            torch_executed_ops=(), require_full_compilation=False, workspace_size=None, dryrun=False,
            arg_inputs=None, num_threads=None, disable_tf32=False, progress=None, timing_cache_path=None):
    """Compiles `module` with tensorc; returns a torch.fx.GraphModule whose accelerated parts are
    engine submodules (_run_on_acc_<k>) and whose other parts stay PyTorch.

    inputs: tensors or tensorc.Input specs, one per positional argument of forward (arg_inputs is
        an alias). Needed for every ir except "torch_compile" and an ExportedProgram.
    ir: "default"/"dynamo" (torch.export to core ATen), "torch_compile" (returns
        torch.compile(module, backend="tensorc")), "ts" (a TorchScript module through PyTorch's
        TorchScript-to-ExportedProgram converter), "fx" (a torch.fx.GraphModule).
    enabled_precisions: {torch.float32} (default), with torch.float16 / torch.bfloat16 to let the CUDA
        backend lower f32 parts where it is safe.
    device: where engines run; default the inputs' (or parameters') device. "cuda" needs a CUDA build.
    min_block_size: engines with fewer ops fall back to PyTorch.
    torch_executed_ops: ops forced to run in PyTorch ("torch.ops.aten.relu.default", "aten.relu",
        or op objects).
    require_full_compilation: raise tensorc.UnsupportedError, listing every node that cannot run on
        the backend (name, op, reason), unless the whole graph goes to engines.
    workspace_size: cap in bytes on library workspace (CUDA). num_threads: CPU engine threads.
    dryrun: print the partition report and return the module unchanged.
    timing_cache_path: a file of cuDNN/cuBLASLt plan choices (CUDA): each engine takes the choices the
        file has for its layers, times the candidates of the others now instead of at its first call,
        and writes the file back with them. A missing or unusable file is replaced. CPU engines
        ignore it.
    """
    if arg_inputs is not None:
        if inputs is not None:
            raise ValueError("tensorc.compile: give inputs or arg_inputs, not both")
        inputs = arg_inputs
    if ir not in IRS:
        raise ValueError(f"tensorc.compile: unknown ir {ir!r} (one of {', '.join(IRS)})")
    specs = _specs(inputs)
    dev = _resolve_device(device, specs, module)
    settings = _settings(enabled_precisions=enabled_precisions, min_block_size=int(min_block_size),
                         torch_executed_ops=torch_executed_ops, require_full_compilation=bool(require_full_compilation),
                         workspace_size=workspace_size, dryrun=bool(dryrun), num_threads=num_threads,
                         disable_tf32=disable_tf32, progress=progress, timing_cache_path=timing_cache_path,
                         backend=dev.type,
                         device_index=dev.index or 0)
    if ir == "torch_compile":
        opts = {k: v for k, v in settings.items() if k not in ("backend", "device_index")}
        opts["device"] = str(dev)
        return torch.compile(module, backend="tensorc", dynamic=False, options=opts)
    if specs is None and not isinstance(module, torch.export.ExportedProgram):
        raise ValueError("tensorc.compile: inputs are needed (example tensors or tensorc.Input)")
    args, dynamic_shapes = _examples(specs or [], dev)
    gm = _decomposed_module(_to_exported(module, ir, args, dynamic_shapes))
    if specs is None:
        specs = [Input.from_tensor(n.meta["val"]) for n in gm.graph.nodes
                 if n.op == "placeholder" and isinstance(n.meta.get("val"), torch.Tensor)]
    settings["input_names"] = _input_names(gm, specs)
    new_gm, part = stitch(gm, settings, _sym_overrides(gm, specs))
    if dryrun:
        print(part.report())
        return module
    new_gm._tensorc_inputs = [s if isinstance(s, Input) else Input.from_tensor(s) for s in specs]
    new_gm._tensorc_report = part.report()
    return new_gm


def partition_report(module, inputs=None, **kwargs):
    """The partition report (which nodes go to engines, which stay in PyTorch and why) as text,
    without building engines."""
    kwargs.pop("dryrun", None)
    ir = kwargs.pop("ir", "default")
    specs = _specs(inputs)
    dev = _resolve_device(kwargs.pop("device", None), specs, module)
    settings = _settings(enabled_precisions=kwargs.pop("enabled_precisions", None),
                         min_block_size=int(kwargs.pop("min_block_size", 5)),
                         torch_executed_ops=kwargs.pop("torch_executed_ops", ()),
                         require_full_compilation=bool(kwargs.pop("require_full_compilation", False)),
                         dryrun=True, backend=dev.type, device_index=dev.index or 0)
    if kwargs:
        raise TypeError(f"tensorc.partition_report: unexpected arguments {sorted(kwargs)}")
    args, dynamic_shapes = _examples(specs or [], dev)
    gm = _decomposed_module(_to_exported(module, ir, args, dynamic_shapes))
    _gm, part = stitch(gm, settings, _sym_overrides(gm, specs))
    return part.report()


# ---- the torch.compile backend ------------------------------------------------------------------

def tensorc_backend(gm, example_inputs, options=None, **kwargs):
    """torch.compile(model, backend="tensorc", options={...}): compiles each captured graph like
    tensorc.compile (options take compile's keyword arguments). A graph that cannot be exported
    runs in PyTorch with a warning, unless options["pass_through_build_failures"] is set."""
    opts = dict(options or {})
    opts.update(kwargs)
    passthrough = opts.pop("pass_through_build_failures", False)
    opts.pop("dryrun", None)
    try:
        if not all(isinstance(x, torch.Tensor) for x in example_inputs):
            raise TypeError("the graph takes symbolic sizes as inputs (compile with dynamic=False)")
        return compile(gm, list(example_inputs), ir="fx", **opts)
    except Exception as e:  # noqa: BLE001 - the graph still runs, in PyTorch
        if passthrough:
            raise
        logger.warning("tensorc backend: this graph runs in PyTorch: %s: %s", type(e).__name__, e)
        return gm.forward


def register_backend():
    from torch._dynamo import list_backends
    from torch._dynamo.backends.registry import register_backend as reg
    if "tensorc" not in list_backends(exclude_tags=()):
        reg(tensorc_backend, name="tensorc")
