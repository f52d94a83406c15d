"""tensorc.save and tensorc.load: compiled modules as an ExportedProgram (torch.export.save), a
TorchScript module (torch.jit.save), or a bare .tce engine file when the whole model is one engine.
Engines travel inside the first two as uint8 buffers; loading them needs `import tensorc`."""
import operator

import torch
import torch.fx

from . import _C
from .compile import Input, _examples
from .runtime import EngineModule, InputError, TORCH_TO_TC, TC_TO_TORCH

FORMATS = ("exported_program", "torchscript", "engine")
TCE_MAGIC = b"TCENGINE"


def _engine_modules(module):
    return [(n, m) for n, m in module.named_modules() if isinstance(m, EngineModule)]


def _example_args(module, inputs):
    specs = inputs if inputs is not None else getattr(module, "_tensorc_inputs", None)
    if specs is None:
        raise ValueError("tensorc.save: inputs are needed for a module that tensorc.compile did not return")
    if isinstance(specs, (torch.Tensor, Input)):
        specs = [specs]
    engines = _engine_modules(module)
    device = torch.device(_backend_of(engines[0][1])) if engines else None
    return _examples(list(specs), device)


def _backend_of(m):
    import json
    return json.loads(m.meta).get("backend", "cpu")


def save(module, path, *, output_format="exported_program", inputs=None, arg_inputs=None):
    """Saves a module from tensorc.compile.

    output_format "exported_program": re-exports it (engines become tensorc::execute_engine calls
        with their bytes as buffers) and writes it with torch.export.save; read it back with
        torch.export.load or tensorc.load.
    "torchscript": traces it with torch.jit.trace (at the example shapes) and writes it with
        torch.jit.save; read it back with torch.jit.load or tensorc.load.
    "engine": writes the .tce engine file, when the whole model is one engine (compile with
        require_full_compilation=True); the C runtime and the tensorc CLI run it too.
    inputs: example tensors or tensorc.Input; default: the inputs given to tensorc.compile."""
    if output_format not in FORMATS:
        raise ValueError(f"tensorc.save: output_format must be one of {', '.join(FORMATS)}, got {output_format!r}")
    if arg_inputs is not None:
        inputs = arg_inputs
    if output_format == "engine":
        _save_engine(module, path)
        return
    args, dynamic_shapes = _example_args(module, inputs)
    if output_format == "exported_program":
        ep = torch.export.export(module, tuple(args), dynamic_shapes=dynamic_shapes, strict=False)
        torch.export.save(ep, path)
    else:
        with torch.no_grad():
            ts = torch.jit.trace(module, tuple(args), check_trace=False, strict=False)
        torch.jit.save(ts, path)


def _save_engine(module, path):
    engines = _engine_modules(module)
    other = []
    if isinstance(module, torch.fx.GraphModule):
        for n in module.graph.nodes:
            if n.op in ("placeholder", "output") or (n.op == "call_function" and n.target is operator.getitem):
                continue
            if n.op == "call_module" and isinstance(module.get_submodule(n.target), EngineModule):
                continue
            if n.op == "call_function" and n.target is torch.ops.aten.sym_size.int:
                continue
            other.append(n.name)
    if len(engines) != 1 or other:
        raise ValueError(f"tensorc.save(output_format='engine') needs the whole model in one engine; this one has "
                         f"{len(engines)} engine(s) and {len(other)} PyTorch node(s)"
                         f"{' (' + ', '.join(other[:8]) + ')' if other else ''}: compile it with "
                         "require_full_compilation=True, or save as 'exported_program' or 'torchscript'")
    data = engines[0][1].engine
    if data.numel() == 0:
        raise RuntimeError("tensorc.save: the engine carries no bytes (this build cannot serialize engines)")
    with open(path, "wb") as f:
        t = data.detach().cpu().contiguous()
        f.write(_C.copy_bytes(t.data_ptr(), t.numel()))


class EngineFileModule(torch.nn.Module):
    """A .tce engine file as a module: forward(*inputs) returns the outputs (a tensor when there is
    one). Runs eagerly (no torch.export / torch.compile tracing)."""

    def __init__(self, data, device=None):
        super().__init__()
        backend = None
        if device is not None:
            device = torch.device(device)
            backend = 1 if device.type == "cuda" else 0
        self._engine = _C.Engine.deserialize(data, backend=backend, device=(device.index or 0) if device else 0)
        self._device = "cuda" if self._engine.backend == 1 else "cpu"
        self._inputs, self._outputs = self._engine.io_types()

    def forward(self, *inputs):
        if len(inputs) != len(self._inputs):
            raise InputError(f"the engine takes {len(self._inputs)} inputs, got {len(inputs)}")
        ins = []
        for k, (t, (name, dt, dims)) in enumerate(zip(inputs, self._inputs)):
            label = f"tensorc engine: input '{name}' (#{k})"
            if t.device.type != self._device:
                raise InputError(f"{label} is on {t.device}, the engine runs on {self._device}")
            if TORCH_TO_TC.get(t.dtype) != dt:
                raise InputError(f"{label} must be {TC_TO_TORCH[dt]}, got {t.dtype}")
            if t.dim() != len(dims) or any(isinstance(w, int) and w != g for w, g in zip(dims, t.shape)):
                raise InputError(f"{label} must have shape [{', '.join(map(str, dims))}], got {list(t.shape)}")
            ins.append(t.contiguous())
        shapes = self._engine.output_shapes([tuple(t.shape) for t in ins])
        device = ins[0].device if ins else torch.device(self._device)
        outs = [torch.empty(s, dtype=TC_TO_TORCH[dt], device=device) for s, (_n, dt, _d) in zip(shapes, self._outputs)]
        stream = torch.cuda.current_stream(device).cuda_stream if self._device == "cuda" else None
        self._engine.execute([(t.data_ptr(), TORCH_TO_TC[t.dtype], tuple(t.shape)) for t in ins],
                             [(t.data_ptr(), TORCH_TO_TC[t.dtype], tuple(t.shape)) for t in outs], stream)
        return outs[0] if len(outs) == 1 else tuple(outs)


def load(path, *, device=None):
    """Loads what tensorc.save wrote and returns a callable module: the ExportedProgram's module(),
    the TorchScript module, or an EngineFileModule for a .tce file."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head == TCE_MAGIC:
        with open(path, "rb") as f:
            return EngineFileModule(f.read(), device)
    errors = []
    try:
        return torch.export.load(path).module()
    except Exception as e:  # noqa: BLE001 - try the other format
        errors.append(f"torch.export.load: {type(e).__name__}: {e}")
    try:
        return torch.jit.load(path, map_location=device)
    except Exception as e:  # noqa: BLE001
        errors.append(f"torch.jit.load: {type(e).__name__}: {e}")
    raise RuntimeError(f"tensorc.load: cannot read {path}:\n  " + "\n  ".join(errors))
