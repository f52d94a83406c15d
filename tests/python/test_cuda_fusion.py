"""Fused steps of the CUDA executor: which node groups it lowers to one step (convolution with folded
batch norms / per-channel adds, relu, residual add, relu; mm / addmm / linear with relu or gelu), checked
through tc_cuda_describe_steps (CUDA build, no GPU needed), and fused results against the CPU backend
(GPU only). Also device-side errors reported from a CUDA graph replay."""
import ctypes

import pytest
import torch
import torch.nn.functional as F

import tensorc_ct
from conformance import assert_matches, randn
from tensorc_ct import Engine, Graph, TcError, lib

_has_lowering = hasattr(lib, "tc_cuda_describe_steps")
needs_lowering = pytest.mark.skipif(not _has_lowering,
                                    reason="libtensorc was built without the CUDA backend (no tc_cuda_describe_steps)")
_why = tensorc_ct.cuda_unavailable_reason()
needs_cuda = pytest.mark.skipif(_why is not None, reason=f"CUDA fusion tests: {_why}")

if _has_lowering:
    lib.tc_cuda_describe_steps.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                                           ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]
    lib.tc_cuda_describe_steps.restype = ctypes.c_int


def describe(g):
    """(steps, fused nodes, one line per step) as the CUDA executor lowers g."""
    buf = ctypes.create_string_buffer(16384)
    n_steps, n_fused = ctypes.c_int(), ctypes.c_int()
    st = lib.tc_cuda_describe_steps(g.ptr, buf, len(buf), ctypes.byref(n_steps), ctypes.byref(n_fused))
    assert st == 0, buf.value.decode()
    return n_steps.value, n_fused.value, buf.value.decode().splitlines()


# --- graph builders -----------------------------------------------------------------------------

class RecordingGraph(Graph):
    """A Graph that keeps the constants it is given, so PyTorch can compute the same graph."""

    def __init__(self):
        super().__init__()
        self.values = {}

    def constant(self, name, tensor):
        self.values[name] = tensor
        return super().constant(name, tensor)


def conv(g, x, cin, cout, name, dtype, bias=True, k=3, stride=1, seed=0):
    w = g.constant(name + ".w", randn(cout, cin, k, k, seed=seed, scale=0.3).to(dtype))
    b = g.constant(name + ".b", randn(cout, seed=seed + 1, scale=0.5).to(dtype)) if bias else None
    return g.node("convolution", x, w, b, [stride, stride], [k // 2, k // 2], [1, 1], False, [0, 0], 1, name=name)


def bnorm(g, x, c, name, dtype, seed=0, var_input=None):
    gen = torch.Generator().manual_seed(seed)
    p = [torch.rand(c, generator=gen) + 0.5, torch.randn(c, generator=gen) * 0.2,
         torch.randn(c, generator=gen) * 0.2, torch.rand(c, generator=gen) + 0.5]
    w, b, m = (g.constant(f"{name}.{k}", t.to(dtype)) for k, t in zip("wbm", p))
    v = var_input if var_input is not None else g.constant(name + ".v", p[3].to(dtype))
    return g.node("_native_batch_norm_legit_no_training", x, w, b, m, v, 0.1, 1e-5, name=name)[0]


def conv_bias_relu(dtype):
    g = Graph()
    x = g.input("x", dtype, [2, 4, 9, 7])
    g.output(g.node("relu", conv(g, x, 4, 8, "conv", dtype), name="relu"))
    return g, [randn(2, 4, 9, 7, seed=5).to(dtype)]


def resnet_block(dtype):
    """conv-bn-relu, conv-bn, downsample conv-bn, add, relu; plus a per-channel constant add."""
    g = RecordingGraph()
    x = g.input("x", dtype, [2, 8, 6, 6])
    c1 = conv(g, x, 8, 16, "conv1", dtype, bias=False, seed=1)
    a = g.node("relu", bnorm(g, c1, 16, "bn1", dtype, seed=2), name="relu1")
    c2 = conv(g, a, 16, 16, "conv2", dtype, bias=True, seed=3)
    shift = g.constant("shift", randn(16, 1, 1, seed=4, scale=0.1).to(dtype))
    b = bnorm(g, g.node("add.Tensor", c2, shift, name="shift_add"), 16, "bn2", dtype, seed=5)
    d = bnorm(g, conv(g, x, 8, 16, "down", dtype, bias=False, k=1, seed=6), 16, "bn_down", dtype, seed=7)
    g.output(g.node("relu", g.node("add.Tensor", b, d, name="add"), name="relu2"))
    return g, [randn(2, 8, 6, 6, seed=8).to(dtype)]


def resnet_block_reference(values, x):
    """resnet_block in float64 PyTorch, from the values (already rounded to the graph's dtype) that
    the graph holds."""
    def d(name):
        return values[name].double()

    def bn(y, name):
        return F.batch_norm(y, d(name + ".m"), d(name + ".v"), d(name + ".w"), d(name + ".b"), eps=1e-5)

    x = x.double()
    a = torch.relu(bn(F.conv2d(x, d("conv1.w"), None, padding=1), "bn1"))
    b = bn(F.conv2d(a, d("conv2.w"), d("conv2.b"), padding=1) + d("shift"), "bn2")
    return torch.relu(b + bn(F.conv2d(x, d("down.w")), "bn_down"))


def linear_act(dtype, act, approximate="none", op="linear"):
    g = Graph()
    x = g.input("x", dtype, [5, 12])
    w = randn(24, 12, seed=9, scale=0.4).to(dtype)
    b = g.constant("b", randn(24, seed=10).to(dtype))
    if op == "linear":
        y = g.node("linear", x, g.constant("w", w), b, name="fc")
    elif op == "addmm":
        y = g.node("addmm", b, x, g.constant("wt", w.t().contiguous()), name="fc")
    else:
        y = g.node("mm", x, g.constant("wt", w.t().contiguous()), name="fc")
    kw = {"approximate": approximate} if act == "gelu" else {}
    g.output(g.node(act, y, name="act", **kw))
    return g, [randn(5, 12, seed=11).to(dtype)]


def linear_residual(dtype, op="linear", bias="vector", residual_first=False):
    """A product plus a residual input (a transformer block's out-projection and skip connection).
    bias: "vector" (cuBLASLt's BIAS epilogue, the residual as C), "none", or for linear "scalar" (a
    one-element bias) and for addmm "beta" (beta 0.5): the bias is then seeded into the output and
    the residual added by a separate pass."""
    g = Graph()
    x = g.input("x", dtype, [6, 16])
    r = g.input("r", dtype, [6, 24])
    w = randn(24, 16, seed=12, scale=0.4).to(dtype)
    bv = None if bias == "none" else g.constant("b", randn(1 if bias == "scalar" else 24, seed=13).to(dtype))
    if op == "linear":
        y = g.node("linear", x, g.constant("w", w), bv, name="fc")
    elif op == "addmm":
        kw = {"beta": 0.5} if bias == "beta" else {}
        y = g.node("addmm", bv, x, g.constant("wt", w.t().contiguous()), name="fc", **kw)
    else:
        y = g.node("mm", x, g.constant("wt", w.t().contiguous()), name="fc")
    g.output(g.node("add.Tensor", *((r, y) if residual_first else (y, r)), name="skip"))
    return g, [randn(6, 16, seed=14).to(dtype), randn(6, 24, seed=15).to(dtype)]


# --- lowering (no GPU) --------------------------------------------------------------------------

@needs_lowering
def test_conv_bias_relu_is_one_step():
    g, _ = conv_bias_relu(torch.float16)
    steps, fused, lines = describe(g)
    assert (steps, fused) == (1, 1), lines
    assert lines == ["conv + relu: convolution, bias, relu"]


@needs_lowering
def test_resnet_block_lowers_to_three_steps_with_folded_batch_norms():
    g, _ = resnet_block(torch.float32)
    steps, fused, lines = describe(g)
    assert (steps, fused) == (3, 7), lines
    assert lines == [
        "conv1 + bn1 + relu1: convolution, folded scale, bias, relu",
        "down + bn_down: convolution, folded scale, bias",
        "conv2 + shift_add + bn2 + add + relu2: convolution, folded scale, bias, residual add, relu",
    ]


@needs_lowering
def test_gemm_activation_fusion_rules():
    # cuBLASLt's GELU is the tanh form: an erf GELU fuses only where f16/bf16 cannot tell them apart
    for dtype, act, approx, op, want in [
        (torch.float16, "gelu", "none", "linear", 1), (torch.bfloat16, "gelu", "none", "addmm", 1),
        (torch.float32, "gelu", "none", "linear", 0), (torch.float32, "gelu", "tanh", "linear", 1),
        (torch.float32, "relu", "none", "mm", 1), (torch.float16, "relu", "none", "addmm", 1),
    ]:
        g, _ = linear_act(dtype, act, approx, op)
        steps, fused, lines = describe(g)
        assert (steps, fused) == (2 - want, want), (dtype, act, approx, op, lines)


@needs_lowering
def test_gemm_residual_fusion_rules():
    for op, bias in [("linear", "vector"), ("linear", "none"), ("linear", "scalar"), ("mm", "none"),
                     ("addmm", "vector"), ("addmm", "beta")]:
        g, _ = linear_residual(torch.float16, op, bias, residual_first=op == "mm")
        steps, fused, lines = describe(g)
        assert (steps, fused) == (1, 1), (op, bias, lines)
        assert lines[0].endswith("residual add epilogue"), lines
    # an add with alpha, or of a broadcast operand, is no residual
    g = Graph()
    x = g.input("x", torch.float16, [6, 16])
    y = g.node("linear", x, g.constant("w", randn(24, 16).half()), None, name="fc")
    g.output(g.node("add.Tensor", y, g.input("r", torch.float16, [6, 24]), alpha=2, name="skip"))
    assert describe(g)[:2] == (2, 0)
    g = Graph()
    x = g.input("x", torch.float16, [6, 16])
    y = g.node("linear", x, g.constant("w", randn(24, 16).half()), None, name="fc")
    g.output(g.node("add.Tensor", y, g.input("r", torch.float16, [24]), name="skip"))
    assert describe(g)[:2] == (2, 0)


@needs_lowering
def test_no_fusion_across_a_value_that_is_an_output_or_read_twice(monkeypatch):
    monkeypatch.setenv("TENSORC_CUDA_NVRTC", "0")  # epilogues only: relu + add would be a generated chain
    g = Graph()
    x = g.input("x", torch.float16, [1, 4, 5, 5])
    c = conv(g, x, 4, 4, "conv", torch.float16)
    g.output(g.node("relu", c, name="relu"), c)  # the conv output is also a graph output
    assert describe(g)[:2] == (2, 0)
    g = Graph()
    x = g.input("x", torch.float16, [1, 4, 5, 5])
    c = conv(g, x, 4, 4, "conv", torch.float16)
    g.output(g.node("relu", c, name="relu"), g.node("neg", c, name="neg"))
    assert describe(g)[:2] == (3, 0)
    g = Graph()
    x = g.input("x", torch.float32, [3, 6])
    y = g.node("linear", x, g.constant("w", randn(6, 6)), None, name="fc")
    g.output(g.node("add.Tensor", g.node("relu", y, name="relu"), y, name="add"))
    assert describe(g)[:2] == (3, 0)


@needs_lowering
def test_batch_norm_with_runtime_statistics_is_not_folded():
    g = Graph()
    x = g.input("x", torch.float32, [2, 4, 5, 5])
    v = g.input("var", torch.float32, [4])
    g.output(g.node("relu", bnorm(g, conv(g, x, 4, 4, "conv", torch.float32), 4, "bn", torch.float32,
                                  var_input=v), name="relu"))
    steps, fused, lines = describe(g)
    assert (steps, fused) == (3, 0), lines


@needs_lowering
def test_fusion_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("TENSORC_CUDA_FUSE", "0")
    g, _ = resnet_block(torch.float16)
    steps, fused, _ = describe(g)
    assert fused == 0 and steps == 10


# --- fused results against the CPU backend (GPU) -------------------------------------------------

def _compare(g, inputs, msg):
    got = g.run(*inputs, backend="cuda")
    want = g.run(*inputs, backend="cpu")
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        assert_matches(a, b, msg=f"{msg}, output {i}: cuda vs cpu backend")


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_conv_bias_relu_matches_cpu(dtype):
    g, inputs = conv_bias_relu(dtype)
    _compare(g, inputs, f"conv+bias+relu {dtype}")


# Low precision: the two backends round differently, so each is compared with the exact result of
# the same values (float64 PyTorch from the rounded weights and input) instead of with the other. The
# CPU backend rounds to the storage type after every op: 6 roundings on the longest path (conv1, bn1,
# conv2, shift_add, bn2, add; relu is exact). The fused CUDA steps keep f32 from convolution to relu
# and round once per step (twice on that path). So the two can differ by an ulp of the largest values
# (bf16: 0.0625 at 8), and where the residual add cancels (8 - 7.2) that ulp is 8% of the result: no
# elementwise relative tolerance holds. The bound is normwise: each rounding errs by at most u (half
# the type's eps) of its value, intermediates here reach 1.7 * max|exact| (bn2 before the relu), and
# errors that are rounded on the way are unbiased and mostly cancel in the convolution sums, so the
# expected error is a few u of max|exact| for the 6-rounding chain; the bound allows 2 u per rounding:
#     max|got - exact| <= 2 * 6 * u * max|exact|.
# Measured: the CPU backend 1.0 u (bf16) and 1.2 u (f16); one rounding of the exact result 0.7 u. A
# wrong kernel errs by a sizeable fraction of max|exact| and still fails.
RESNET_BLOCK_ROUNDINGS = 6
U_PER_ROUNDING = 2


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_resnet_block_matches_cpu(dtype):
    g, inputs = resnet_block(dtype)
    assert describe(g)[1] == 7
    if dtype == torch.float32:
        _compare(g, inputs, f"resnet block {dtype}")
        return
    compare_with_exact(g, inputs, resnet_block_reference(g.values, inputs[0]), RESNET_BLOCK_ROUNDINGS,
                       f"resnet block {dtype}")


def compare_with_exact(g, inputs, exact, roundings, msg):
    """Both backends' first output against the exact result: max|got - exact| within U_PER_ROUNDING
    units of rounding (u, half the dtype's eps) per rounding on the longest path, of max|exact|."""
    dtype = inputs[0].dtype
    scale = exact.abs().max().item()
    u = torch.finfo(dtype).eps / 2
    bound = U_PER_ROUNDING * roundings * u
    assert scale > 1, "the reference is too small to test anything"
    for backend in ("cuda", "cpu"):
        got = g.run(*inputs, backend=backend)[0]
        assert got.dtype == dtype and got.shape == exact.shape, (got.dtype, got.shape)
        assert torch.isfinite(got).all(), f"{msg} on {backend}: non-finite values"
        err = (got.double() - exact).abs().max().item() / scale
        assert err <= bound, (f"{msg} on {backend}: max|got - exact| / max|exact| = {err:.3g} "
                              f"({err / u:.2f} u) > {bound:.3g} ({bound / u:.1f} u)")


@needs_cuda
def test_resnet_block_with_dynamic_batch():
    g = Graph()
    b = g.symbol("b", 1, 2, 8)
    x = g.input("x", torch.float16, [b, 8, 6, 6])
    c1 = conv(g, x, 8, 8, "conv1", torch.float16, bias=False, seed=1)
    y = g.node("relu", g.node("add.Tensor", bnorm(g, c1, 8, "bn1", torch.float16, seed=2), x, name="add"),
               name="relu")
    g.output(y)
    assert describe(g)[:2] == (1, 3)
    eng_cuda, eng_cpu = Engine(g, backend="cuda"), Engine(g, backend="cpu")
    for n in [2, 5, 2, 8, 1]:
        inp = randn(n, 8, 6, 6, seed=n).half()
        assert_matches(eng_cuda.run(inp)[0], eng_cpu.run(inp)[0], msg=f"batch {n}")


@needs_cuda
@pytest.mark.parametrize("dtype,act,approx,op", [
    (torch.float32, "relu", "none", "linear"), (torch.float16, "relu", "none", "mm"),
    (torch.bfloat16, "relu", "none", "addmm"), (torch.float32, "gelu", "tanh", "linear"),
    (torch.float16, "gelu", "none", "linear"), (torch.bfloat16, "gelu", "none", "addmm"),
    (torch.float16, "gelu", "tanh", "mm"),
])
def test_gemm_epilogue_matches_cpu(dtype, act, approx, op):
    g, inputs = linear_act(dtype, act, approx, op)
    assert describe(g)[1] == 1
    _compare(g, inputs, f"{op}+{act}({approx}) {dtype}")


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("op,bias", [("linear", "vector"), ("linear", "none"), ("linear", "scalar"), ("mm", "none"),
                                     ("addmm", "vector"), ("addmm", "beta")])
def test_gemm_residual_matches_cpu(dtype, op, bias):
    g, inputs = linear_residual(dtype, op, bias, residual_first=op == "mm")
    assert describe(g)[1] == 1
    _compare(g, inputs, f"{op} ({bias} bias) + residual {dtype}")


@needs_cuda
def test_gemm_residual_with_an_empty_sum():
    """K = 0: the product is zeros, so the step's result is the residual (plus the bias)."""
    g = Graph()
    x = g.input("x", torch.float16, [6, 0])
    r = g.input("r", torch.float16, [6, 24])
    b = g.constant("b", randn(24, seed=3).half())
    y = g.node("linear", x, g.constant("w", torch.zeros(24, 0, dtype=torch.float16)), b, name="fc")
    g.output(g.node("add.Tensor", y, r, name="skip"))
    assert describe(g)[1] == 1
    inputs = [torch.zeros(6, 0, dtype=torch.float16), randn(6, 24, seed=4).half()]
    _compare(g, inputs, "linear with K = 0 + residual")


# --- device-side errors after a CUDA graph replay ------------------------------------------------

@needs_cuda
def test_out_of_range_index_is_reported_from_a_graph_replay():
    g = Graph()
    w, i = g.input("w", torch.float32, [10, 4]), g.input("i", torch.int64, [3])
    g.output(g.node("embedding", w, i, name="tok_emb"))
    eng = Engine(g, backend="cuda")
    weights = randn(10, 4)
    good = torch.tensor([1, 9, 0])
    assert_matches(eng.run(weights, good)[0], weights[good], msg="warm-up and capture")
    with pytest.raises(TcError) as e:
        eng.run(weights, torch.tensor([1, 10, 0]))  # same shapes: a replay of the captured graph
    for word in ("node 'tok_emb'", "embedding", "out of range", "size 10"):
        assert word in e.value.message, e.value.message
    # the error is reported once; the next good run is clean
    assert_matches(eng.run(weights, good)[0], weights[good], msg="after the error")
