"""ctypes bindings to libtensorc for the tests: build graphs through the C API and run them on the
CPU or the CUDA backend, with torch tensors in and out. The library is found through $TENSORC_LIB,
else in build/ at the repository root. The backend is chosen per call (backend="cpu" | "cuda") or
for the whole run by $TENSORC_TEST_BACKEND (default "cpu"); CUDA runs check guard bytes around
every output and return CPU tensors, so tests compare results the same way on both backends."""
import ctypes
import os
import pathlib

import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]

F32, F16, BF16, F8E4M3, I64, I32, I8, U8, BOOL, F64 = range(10)
TORCH_TO_TC = {
    torch.float32: F32, torch.float16: F16, torch.bfloat16: BF16, torch.float8_e4m3fn: F8E4M3,
    torch.int64: I64, torch.int32: I32, torch.int8: I8, torch.uint8: U8, torch.bool: BOOL,
    torch.float64: F64,
}
TC_TO_TORCH = {v: k for k, v in TORCH_TO_TC.items()}

MAX_RANK = 8
DIM_SYM_BASE = -(2**63) // 2

(ARG_NONE, ARG_TENSOR, ARG_TENSORS, ARG_INT, ARG_INTS, ARG_FLOAT, ARG_FLOATS, ARG_BOOL, ARG_BOOLS,
 ARG_STRING, ARG_DTYPE) = range(11)


class _ArgUnion(ctypes.Union):
    _fields_ = [("tensor", ctypes.c_void_p), ("tensors", ctypes.POINTER(ctypes.c_void_p)),
                ("i", ctypes.c_int64), ("ints", ctypes.POINTER(ctypes.c_int64)), ("f", ctypes.c_double),
                ("floats", ctypes.POINTER(ctypes.c_double)), ("b", ctypes.c_bool),
                ("bools", ctypes.POINTER(ctypes.c_bool)), ("s", ctypes.c_char_p), ("dtype", ctypes.c_int)]


class _Arg(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("kind", ctypes.c_int), ("count", ctypes.c_int64), ("u", _ArgUnion)]


class _Tensor(ctypes.Structure):
    _fields_ = [("dtype", ctypes.c_int), ("rank", ctypes.c_int), ("dims", ctypes.c_int64 * MAX_RANK),
                ("data", ctypes.c_void_p)]


BACKEND_CPU, BACKEND_CUDA = 0, 1
BACKENDS = {"cpu": BACKEND_CPU, "cuda": BACKEND_CUDA}


class _BuildOptions(ctypes.Structure):
    """tc_build_options of include/tensorc.h, member for member."""
    _fields_ = [("backend", ctypes.c_int), ("num_threads", ctypes.c_int), ("device", ctypes.c_int),
                ("allow_fp16", ctypes.c_bool), ("allow_bf16", ctypes.c_bool), ("disable_tf32", ctypes.c_bool),
                ("workspace_bytes", ctypes.c_size_t)]


def _find_lib():
    cands = [os.environ.get("TENSORC_LIB")] if os.environ.get("TENSORC_LIB") else []
    cands += [ROOT / "build" / "libtensorc.so"]
    for c in cands:
        if c and pathlib.Path(c).exists():
            return str(c)
    raise RuntimeError("libtensorc.so not found: build it (cmake -B build && cmake --build build) "
                       "or set TENSORC_LIB")


lib = ctypes.CDLL(_find_lib())
vp, i64, c_int = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
_sigs = {
    "tc_graph_create": (c_int, [ctypes.POINTER(vp)]),
    "tc_graph_free": (None, [vp]),
    "tc_graph_last_error": (ctypes.c_char_p, [vp]),
    "tc_graph_add_symbol": (c_int, [vp, ctypes.c_char_p, i64, i64, i64, ctypes.POINTER(i64)]),
    "tc_graph_add_input": (c_int, [vp, ctypes.c_char_p, c_int, c_int, ctypes.POINTER(i64), ctypes.POINTER(vp)]),
    "tc_graph_add_constant": (c_int, [vp, ctypes.c_char_p, c_int, c_int, ctypes.POINTER(i64), vp, c_int,
                                      ctypes.POINTER(vp)]),
    "tc_graph_add_node": (c_int, [vp, ctypes.c_char_p, ctypes.c_char_p, c_int, ctypes.POINTER(_Arg), c_int,
                                  ctypes.POINTER(vp), ctypes.POINTER(c_int)]),
    "tc_graph_mark_output": (c_int, [vp, vp, ctypes.c_char_p]),
    "tc_graph_verify": (c_int, [vp]),
    "tc_value_dtype": (c_int, [vp]),
    "tc_value_rank": (c_int, [vp]),
    "tc_value_dims": (ctypes.POINTER(i64), [vp]),
    "tc_status_string": (ctypes.c_char_p, [c_int]),
    "tc_engine_build": (c_int, [vp, ctypes.POINTER(_BuildOptions), ctypes.POINTER(vp), ctypes.c_char_p,
                            ctypes.c_size_t]),
    "tc_engine_free": (None, [vp]),
    "tc_context_create": (c_int, [vp, ctypes.POINTER(vp)]),
    "tc_context_free": (None, [vp]),
    "tc_context_last_error": (ctypes.c_char_p, [vp]),
    "tc_context_set_input": (c_int, [vp, c_int, ctypes.POINTER(_Tensor)]),
    "tc_context_execute": (c_int, [vp]),
    "tc_context_enqueue": (c_int, [vp, vp]),
    "tc_context_set_output": (c_int, [vp, c_int, ctypes.POINTER(_Tensor)]),
    "tc_build_options_init": (None, [ctypes.POINTER(_BuildOptions)]),
    "tc_engine_num_outputs": (c_int, [vp]),
    "tc_has_cuda": (ctypes.c_bool, []),
    "tc_context_get_output": (c_int, [vp, c_int, ctypes.POINTER(_Tensor)]),
    "tc_graph_dim_string": (ctypes.c_char_p, [vp, i64, ctypes.c_char_p, ctypes.c_size_t]),
}
for _name, (_res, _args) in _sigs.items():
    _f = getattr(lib, _name)
    _f.restype, _f.argtypes = _res, _args


class TcError(Exception):
    def __init__(self, status, message):
        super().__init__(f"{lib.tc_status_string(status).decode()}: {message}")
        self.status = status
        self.message = message


class Value:
    def __init__(self, graph, ptr):
        self.graph, self.ptr = graph, ptr

    @property
    def dtype(self):
        return TC_TO_TORCH[lib.tc_value_dtype(self.ptr)]

    @property
    def shape(self):
        """Dims as ints, or strings for symbolic dims."""
        rank = lib.tc_value_rank(self.ptr)
        dims = lib.tc_value_dims(self.ptr)
        out = []
        for i in range(rank):
            d = dims[i]
            if d <= DIM_SYM_BASE:
                buf = ctypes.create_string_buffer(256)
                out.append(lib.tc_graph_dim_string(self.graph.ptr, d, buf, 256).decode())
            else:
                out.append(d)
        return out


class Symbol(int):
    """A symbolic dim handle (an int the C library understands)."""


class Graph:
    def __init__(self):
        self.ptr = vp()
        self._check(lib.tc_graph_create(ctypes.byref(self.ptr)))
        self._keep = []  # keeps borrowed buffers alive
        self.inputs = []

    def __del__(self):
        if getattr(self, "ptr", None):
            lib.tc_graph_free(self.ptr)
            self.ptr = None

    def _check(self, status):
        if status != 0:
            msg = lib.tc_graph_last_error(self.ptr).decode() if getattr(self, "ptr", None) else ""
            raise TcError(status, msg)

    def symbol(self, name, lo, opt, hi):
        d = i64()
        self._check(lib.tc_graph_add_symbol(self.ptr, name.encode(), lo, opt, hi, ctypes.byref(d)))
        return Symbol(d.value)

    def input(self, name, dtype, shape):
        dims = (i64 * max(1, len(shape)))(*shape)
        v = vp()
        self._check(lib.tc_graph_add_input(self.ptr, name.encode(), TORCH_TO_TC[dtype], len(shape), dims,
                                           ctypes.byref(v)))
        val = Value(self, v.value)
        self.inputs.append(val)
        return val

    def constant(self, name, tensor):
        t = tensor.detach().contiguous()
        dims = (i64 * max(1, t.dim()))(*t.shape)
        v = vp()
        self._check(lib.tc_graph_add_constant(self.ptr, name.encode(), TORCH_TO_TC[t.dtype], t.dim(), dims,
                                              t.data_ptr() if t.numel() else None, 0, ctypes.byref(v)))
        return Value(self, v.value)

    def _arg(self, name, x, keep):
        a = _Arg()
        a.name = name.encode() if name else None
        if x is None:
            a.kind = ARG_NONE
        elif isinstance(x, Value):
            a.kind, a.u.tensor = ARG_TENSOR, x.ptr
        elif isinstance(x, torch.dtype):
            a.kind, a.u.dtype = ARG_DTYPE, TORCH_TO_TC[x]
        elif isinstance(x, bool):
            a.kind, a.u.b = ARG_BOOL, x
        elif isinstance(x, int):
            a.kind, a.u.i = ARG_INT, x
        elif isinstance(x, float):
            a.kind, a.u.f = ARG_FLOAT, x
        elif isinstance(x, str):
            s = x.encode()
            keep.append(s)
            a.kind, a.u.s = ARG_STRING, s
        elif isinstance(x, (list, tuple)):
            a.count = len(x)
            if len(x) and all(isinstance(e, Value) or e is None for e in x) and any(isinstance(e, Value) for e in x):
                arr = (vp * max(1, len(x)))(*[e.ptr if e is not None else None for e in x])
                a.kind, a.u.tensors = ARG_TENSORS, ctypes.cast(arr, ctypes.POINTER(vp))
            elif all(isinstance(e, bool) for e in x) and len(x):
                arr = (ctypes.c_bool * len(x))(*x)
                a.kind, a.u.bools = ARG_BOOLS, ctypes.cast(arr, ctypes.POINTER(ctypes.c_bool))
            elif all(isinstance(e, int) and not isinstance(e, bool) for e in x):
                arr = (i64 * max(1, len(x)))(*x)
                a.kind, a.u.ints = ARG_INTS, ctypes.cast(arr, ctypes.POINTER(i64))
            elif all(isinstance(e, (int, float)) for e in x):
                arr = (ctypes.c_double * len(x))(*x)
                a.kind, a.u.floats = ARG_FLOATS, ctypes.cast(arr, ctypes.POINTER(ctypes.c_double))
            else:
                raise TypeError(f"cannot pass list {x!r}")
            keep.append(arr)
        else:
            raise TypeError(f"cannot pass {type(x)}")
        return a

    def node(self, op, *args, name=None, **kwargs):
        """Adds a node; returns its output Value, or a list when it has several outputs."""
        keep = []
        items = [(None, a) for a in args] + list(kwargs.items())
        arr = (_Arg * max(1, len(items)))(*[self._arg(n, x, keep) for n, x in items])
        outs = (vp * 1024)()
        n_out = c_int()
        self._check(lib.tc_graph_add_node(self.ptr, op.encode(), name.encode() if name else None, len(items),
                                          arr, 1024, outs, ctypes.byref(n_out)))
        vals = [Value(self, outs[i]) for i in range(n_out.value)]
        return vals[0] if len(vals) == 1 else vals

    def output(self, *values):
        for v in values:
            self._check(lib.tc_graph_mark_output(self.ptr, v.ptr, None))

    def verify(self):
        self._check(lib.tc_graph_verify(self.ptr))

    def run(self, *inputs, backend=None):
        """Builds an engine for backend (default: default_backend()) and runs it; returns a list of
        CPU torch tensors."""
        return Engine(self, backend=backend).run(*inputs)


class BackendUnavailable(RuntimeError):
    """The CUDA backend was asked for but this library or machine cannot run it."""


def default_backend():
    """The backend tests use when they name none: $TENSORC_TEST_BACKEND, else "cpu"."""
    b = os.environ.get("TENSORC_TEST_BACKEND", "").strip().lower() or "cpu"
    if b not in BACKENDS:
        raise ValueError(f"TENSORC_TEST_BACKEND={b!r}: expected one of {sorted(BACKENDS)}")
    return b


def cuda_unavailable_reason():
    """None when CUDA engines can run here, else why not (for skips)."""
    if not lib.tc_has_cuda():
        return "libtensorc was built without the CUDA backend (configure with -DTENSORC_CUDA=ON)"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    return None


# Bytes of sentinel before and after every CUDA output. A multiple of 256 keeps the output itself
# as aligned as the allocation, so kernels take the same vectorized paths as with their own buffers.
GUARD_BYTES = 256
GUARD_BYTE = 0xA5
POISON_BYTE = 0xFF  # the output area before a run: NaN for floats, -1 for integers


def guarded_buffer(nbytes, device="cuda"):
    """A uint8 tensor of GUARD_BYTES + nbytes + GUARD_BYTES: sentinel guards, poisoned middle."""
    buf = torch.full((nbytes + 2 * GUARD_BYTES,), GUARD_BYTE, dtype=torch.uint8, device=device)
    buf[GUARD_BYTES:GUARD_BYTES + nbytes] = POISON_BYTE
    return buf


def check_guards(buf, nbytes, what):
    """Raises AssertionError when a byte outside the middle nbytes of buf lost its sentinel."""
    head, tail = buf[:GUARD_BYTES], buf[GUARD_BYTES + nbytes:]
    bad_head = (head != GUARD_BYTE).nonzero()
    bad_tail = (tail != GUARD_BYTE).nonzero()
    if bad_head.numel() or bad_tail.numel():
        parts = []
        if bad_head.numel():
            parts.append(f"{bad_head.numel()} byte(s) before it (first at offset "
                         f"{int(bad_head[0]) - GUARD_BYTES})")
        if bad_tail.numel():
            parts.append(f"{bad_tail.numel()} byte(s) after it (first at offset +{int(bad_tail[0])} past the end)")
        raise AssertionError(f"{what} was written out of bounds: {' and '.join(parts)} changed")


class Engine:
    # TF32 is off by default here: the conformance suite holds f32 to f32 tolerances.
    def __init__(self, graph, backend=None, device=0, disable_tf32=True):
        self.graph = graph
        self.backend = backend or default_backend()
        if self.backend not in BACKENDS:
            raise ValueError(f"backend {self.backend!r}: expected one of {sorted(BACKENDS)}")
        if self.backend == "cuda":
            why = cuda_unavailable_reason()
            if why:
                raise BackendUnavailable(why)
        self.ptr = vp()
        opts = _BuildOptions()
        lib.tc_build_options_init(ctypes.byref(opts))
        opts.backend = BACKENDS[self.backend]
        opts.device = device
        opts.disable_tf32 = disable_tf32
        err = ctypes.create_string_buffer(2048)
        st = lib.tc_engine_build(graph.ptr, ctypes.byref(opts), ctypes.byref(self.ptr), err, 2048)
        if st:
            raise TcError(st, err.value.decode())
        self.ctx = vp()
        st = lib.tc_context_create(self.ptr, ctypes.byref(self.ctx))
        if st:
            raise TcError(st, "context creation failed")
        self.n_outputs = lib.tc_engine_num_outputs(self.ptr)
        self._out_types = {}  # input shapes -> [(dtype, shape)] per output, learnt from a first run

    def __del__(self):
        if getattr(self, "ctx", None):
            lib.tc_context_free(self.ctx)
        if getattr(self, "ptr", None):
            lib.tc_engine_free(self.ptr)

    def run(self, *inputs):
        if self.backend == "cuda":
            return self._run_cuda(inputs)
        keep = []
        for i, x in enumerate(inputs):
            x = x.detach().contiguous()
            keep.append(x)
            t = _Tensor()
            t.dtype, t.rank = TORCH_TO_TC[x.dtype], x.dim()
            for k, d in enumerate(x.shape):
                t.dims[k] = d
            t.data = x.data_ptr() if x.numel() else None
            self._ctx_check(lib.tc_context_set_input(self.ctx, i, ctypes.byref(t)))
        self._ctx_check(lib.tc_context_execute(self.ctx))
        outs = []
        i = 0
        while True:
            t = _Tensor()
            if lib.tc_context_get_output(self.ctx, i, ctypes.byref(t)) != 0:
                break
            shape = [t.dims[k] for k in range(t.rank)]
            dtype = TC_TO_TORCH[t.dtype]
            n = 1
            for d in shape:
                n *= d
            nbytes = n * torch.empty((), dtype=dtype).element_size()
            raw = ctypes.string_at(t.data, nbytes) if nbytes else b""
            out = torch.frombuffer(bytearray(raw), dtype=dtype) if nbytes else torch.empty(0, dtype=dtype)
            outs.append(out.reshape(shape).clone())
            i += 1
        return outs

    def _ctx_check(self, st):
        if st:
            raise TcError(st, lib.tc_context_last_error(self.ctx).decode())

    # --- CUDA ---------------------------------------------------------------------------------
    def _bind_output(self, i, dtype=None, shape=None, data=None):
        t = _Tensor()
        if data is not None:
            t.dtype, t.rank = TORCH_TO_TC[dtype], len(shape)
            for k, d in enumerate(shape):
                t.dims[k] = d
            t.data = data
        self._ctx_check(lib.tc_context_set_output(self.ctx, i, ctypes.byref(t)))

    def _execute_cuda(self):
        """Runs on torch's current stream, so that the inputs torch wrote before are ready and torch's
        later reads of the outputs come after; returns when the outputs are ready."""
        stream = torch.cuda.current_stream()
        if stream.cuda_stream:
            self._ctx_check(lib.tc_context_enqueue(self.ctx, stream.cuda_stream))
            stream.synchronize()
        else:  # the legacy default stream: the context orders itself after it and waits for its own stream
            self._ctx_check(lib.tc_context_execute(self.ctx))

    def _run_cuda(self, inputs):
        """Device inputs, then: a first run per input-shape set with outputs the context owns (the
        warm-up, which also tells the output types); a run into guarded buffers the test owns (CUDA
        graph capture); a second one (graph replay) that must give the same bytes. Returns CPU
        tensors of the replay."""
        keep = []
        key = []
        for i, x in enumerate(inputs):
            x = x.detach().contiguous()
            if not x.is_cuda:
                x = x.to("cuda")
            keep.append(x)
            key.append((x.dtype, tuple(x.shape)))
            t = _Tensor()
            t.dtype, t.rank = TORCH_TO_TC[x.dtype], x.dim()
            for k, d in enumerate(x.shape):
                t.dims[k] = d
            t.data = x.data_ptr() if x.numel() else None
            self._ctx_check(lib.tc_context_set_input(self.ctx, i, ctypes.byref(t)))
        key = tuple(key)
        first = key not in self._out_types
        if first:
            for i in range(self.n_outputs):
                self._bind_output(i)
            self._execute_cuda()
            types = []
            for i in range(self.n_outputs):
                t = _Tensor()
                self._ctx_check(lib.tc_context_get_output(self.ctx, i, ctypes.byref(t)))
                types.append((TC_TO_TORCH[t.dtype], [t.dims[k] for k in range(t.rank)]))
            self._out_types[key] = types
        types = self._out_types[key]
        bufs = []
        for i, (dtype, shape) in enumerate(types):
            n = 1
            for d in shape:
                n *= d
            nbytes = n * torch.empty((), dtype=dtype).element_size()
            buf = guarded_buffer(nbytes) if nbytes else None
            bufs.append((buf, nbytes))
            self._bind_output(i, dtype, shape, buf[GUARD_BYTES:].data_ptr() if nbytes else None)
        runs = 2 if first and os.environ.get("TENSORC_TEST_CUDA_REPLAY_CHECK", "1") != "0" else 1
        snapshot = None
        for r in range(runs):
            self._execute_cuda()
            for i, (buf, nbytes) in enumerate(bufs):
                if buf is not None:
                    check_guards(buf, nbytes, f"CUDA output {i} (run {r + 1} into bound buffers)")
            if runs == 2 and r == 0:
                snapshot = [buf.clone() if buf is not None else None for buf, _ in bufs]
        if snapshot is not None:
            for i, ((buf, _), old) in enumerate(zip(bufs, snapshot)):
                if buf is not None and not torch.equal(buf, old):
                    diff = (buf != old).nonzero()
                    raise AssertionError(
                        f"CUDA output {i}: the CUDA graph replay wrote different bytes than the run that captured "
                        f"it ({diff.numel()} bytes differ, first at byte {int(diff[0]) - GUARD_BYTES}); a kernel "
                        f"reads memory it did not write, or is not deterministic "
                        f"(TENSORC_TEST_CUDA_REPLAY_CHECK=0 skips this check)")
        outs = []
        for i, ((dtype, shape), (buf, nbytes)) in enumerate(zip(types, bufs)):
            if buf is None:
                outs.append(torch.empty(shape, dtype=dtype))
            else:
                outs.append(buf[GUARD_BYTES:GUARD_BYTES + nbytes].view(dtype).reshape(shape).cpu().clone())
            self._bind_output(i)
        return outs
