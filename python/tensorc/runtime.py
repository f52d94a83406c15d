"""Engines inside PyTorch: the custom op tensorc::execute_engine (registered with torch.library, with
a fake implementation so torch.export and torch.compile trace through it), the engine module that
calls it, and the process-wide registry that maps an engine's id to its loaded C engine. An engine
travels as a uint8 tensor holding its .tce bytes plus a JSON description of its inputs and outputs;
`import tensorc` is what makes programs saved with engines loadable."""
import functools
import json
import threading
import uuid
import weakref
from typing import List

import torch

from . import _C
from ._log import logger
from .translate import TC_TO_TORCH, TORCH_TO_TC

BACKENDS = {"cpu": 0, "cuda": 1}


class InputError(ValueError):
    """An engine input with the wrong device, dtype or shape; the message names the input."""


# ---- shape expressions ------------------------------------------------------------------------
# An output dim is an int, ["s", k, d] (dim d of input k), or [op, a, b] with op one of
# "+", "-", "*", "//", "%". Evaluated on ints at run time and on SymInts while tracing.

_BINOPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
           "//": lambda a, b: a // b, "%": lambda a, b: a % b}


def eval_dim(e, inputs):
    if isinstance(e, int):
        return e
    if e[0] == "s":
        return inputs[e[1]].shape[e[2]]
    return _BINOPS[e[0]](eval_dim(e[1], inputs), eval_dim(e[2], inputs))


@functools.lru_cache(maxsize=4096)
def parse_meta(meta):
    m = json.loads(meta)
    m["in_dtypes"] = [TC_TO_TORCH[i["dtype"]] for i in m["inputs"]]
    m["out_dtypes"] = [TC_TO_TORCH[o["dtype"]] for o in m["outputs"]]
    return m


# ---- the registry -----------------------------------------------------------------------------

_lock = threading.Lock()
_live = weakref.WeakValueDictionary()  # id -> runner, owned by engine modules of this process
_loaded = {}                           # id -> runner read back from engine bytes (saved programs)


class EngineRunner:
    """A loaded engine with its description; runs it on torch tensors."""

    def __init__(self, engine, meta):
        self.engine = engine
        self.meta_str = meta
        self.meta = parse_meta(meta)
        self.name = self.meta.get("name", "engine")
        self.device_type = self.meta.get("backend", "cpu")

    def check(self, inputs):
        m = self.meta
        if len(inputs) != len(m["inputs"]):
            raise InputError(f"tensorc engine '{self.name}' takes {len(m['inputs'])} inputs, got {len(inputs)}")
        out = []
        for k, (t, spec, dtype) in enumerate(zip(inputs, m["inputs"], m["in_dtypes"])):
            label = f"tensorc engine '{self.name}': input '{spec['name']}' (#{k})"
            if not isinstance(t, torch.Tensor):
                raise InputError(f"{label} must be a tensor, got {type(t).__name__}")
            if t.device.type != self.device_type:
                raise InputError(f"{label} is on {t.device}, the engine runs on {self.device_type}")
            if t.dtype != dtype:
                raise InputError(f"{label} must be {dtype}, got {t.dtype}")
            if t.dim() != len(spec["shape"]):
                raise InputError(f"{label} must have {len(spec['shape'])} dims "
                                 f"(shape {self._shape_text(spec)}), got shape {list(t.shape)}")
            for d, (got, want, rng) in enumerate(zip(t.shape, spec["shape"], spec["range"])):
                if want is not None and got != want:
                    raise InputError(f"{label} must have shape {self._shape_text(spec)}, got {list(t.shape)}")
                if want is None and not (rng[0] <= got <= rng[1]):
                    raise InputError(f"{label} dim {d} is {got}, outside the range [{rng[0]}, {rng[1]}] "
                                     f"the engine was built for")
            out.append(t if t.is_contiguous() else t.contiguous())
        return out

    @staticmethod
    def _shape_text(spec):
        return "[" + ", ".join(str(d) if d is not None else f"{r[0]}..{r[1]}"
                               for d, r in zip(spec["shape"], spec["range"])) + "]"

    def run(self, inputs):
        inputs = self.check(inputs)
        m = self.meta
        device = inputs[0].device if inputs else torch.device(self.device_type)
        outs = [torch.empty([eval_dim(e, inputs) for e in o["shape"]], dtype=dt, device=device)
                for o, dt in zip(m["outputs"], m["out_dtypes"])]
        ins = [(t.data_ptr(), TORCH_TO_TC[t.dtype], tuple(t.shape)) for t in inputs]
        outd = [(t.data_ptr(), TORCH_TO_TC[t.dtype], tuple(t.shape)) for t in outs]
        stream = None
        if self.device_type == "cuda":
            stream = torch.cuda.current_stream(device).cuda_stream
        self.engine.execute(ins, outd, stream)
        return outs


def register(runner, engine_id):
    with _lock:
        _live[engine_id] = runner


def runner_for(engine_bytes, meta):
    m = parse_meta(meta)
    eid = m["id"]
    r = _live.get(eid) or _loaded.get(eid)
    if r is not None:
        return r
    with _lock:
        r = _live.get(eid) or _loaded.get(eid)
        if r is None:
            if engine_bytes.numel() == 0:
                raise RuntimeError(f"tensorc engine '{m.get('name')}' ({eid}) is not loaded in this process "
                                   "and its module carries no engine bytes")
            data = engine_bytes.detach().cpu().contiguous()
            logger.info("loading engine '%s' (%d bytes)", m.get("name"), data.numel())
            r = EngineRunner(_C.Engine.deserialize(data.data_ptr(), size=data.numel()), meta)
            _loaded[eid] = r
    return r


# ---- the custom op ----------------------------------------------------------------------------

@torch.library.custom_op("tensorc::execute_engine", mutates_args=())
def execute_engine(inputs: List[torch.Tensor], engine: torch.Tensor, meta: str) -> List[torch.Tensor]:
    """Runs a tensorc engine: `engine` holds its .tce bytes (used only the first time an engine id
    is seen in a process), `meta` its JSON description (id, inputs, output dtypes and shapes)."""
    return runner_for(engine, meta).run(list(inputs))


@execute_engine.register_fake
def _execute_engine_fake(inputs, engine, meta):
    m = parse_meta(meta)
    device = inputs[0].device if inputs else torch.device(m.get("backend", "cpu"))
    return [torch.empty([eval_dim(e, inputs) for e in o["shape"]], dtype=dt, device=device)
            for o, dt in zip(m["outputs"], m["out_dtypes"])]


class EngineModule(torch.nn.Module):
    """One engine as a module: forward(*inputs) -> list of outputs through tensorc::execute_engine.
    The engine bytes are a buffer, so they go wherever the module's state goes (exported programs,
    TorchScript, state dicts)."""

    def __init__(self, runner, engine_bytes, meta):
        super().__init__()
        self.register_buffer("engine", engine_bytes)
        self.meta = meta
        self._runner = runner
        register(runner, parse_meta(meta)["id"])

    def forward(self, *inputs):
        return torch.ops.tensorc.execute_engine(list(inputs), self.engine, self.meta)

    def extra_repr(self):
        m = parse_meta(self.meta)
        return (f"name={m.get('name')!r}, backend={m.get('backend')!r}, inputs={len(m['inputs'])}, "
                f"outputs={len(m['outputs'])}, nodes={m.get('nodes')}")

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_runner"] = None  # the C engine is rebuilt from the bytes on first use
        return state

    def __deepcopy__(self, memo):
        new = EngineModule.__new__(EngineModule)
        memo[id(self)] = new
        torch.nn.Module.__init__(new)
        new.register_buffer("engine", self.engine)
        new.meta = self.meta
        new._runner = self._runner
        return new


def new_engine_id():
    return uuid.uuid4().hex


def engine_bytes_tensor(engine):
    """The engine's .tce bytes as a uint8 tensor (one copy)."""
    data = engine.serialize()
    return torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
