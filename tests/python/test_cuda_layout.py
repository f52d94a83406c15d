"""Channels-last activations in the CUDA executor (TENSORC_CUDA_NHWC=1): which values it stores NHWC,
checked through tc_cuda_describe_steps (CUDA build, no GPU needed): chains of convolutions and the
elementwise ops between them go channels-last; graph inputs and outputs, broadcasting operands,
pooling and anything else that reads a value keep it NCHW; a fused residual shares its output's
layout; f32 stays NCHW. On a GPU, the same graphs run channels-last and match the CPU backend."""
import pytest
import torch
import torch.nn.functional as F

import tensorc_ct
from conformance import assert_matches, randn
from test_cuda_fusion import RecordingGraph, _compare, bnorm, compare_with_exact, conv, describe, needs_lowering
from tensorc_ct import Graph

_why = tensorc_ct.cuda_unavailable_reason()
needs_cuda = pytest.mark.skipif(_why is not None, reason=f"CUDA layout tests: {_why}")


@pytest.fixture
def nhwc(monkeypatch):
    monkeypatch.setenv("TENSORC_CUDA_NHWC", "1")


def block(g, x, cin, cout, name, dtype, seed):
    """conv-bn-relu, conv-bn, downsample conv-bn, residual add, relu (a resnet basic block)."""
    a = g.node("relu", bnorm(g, conv(g, x, cin, cout, name + ".c1", dtype, bias=False, seed=seed), cout,
                             name + ".bn1", dtype, seed=seed + 1), name=name + ".r1")
    b = bnorm(g, conv(g, a, cout, cout, name + ".c2", dtype, bias=False, seed=seed + 2), cout, name + ".bn2", dtype,
              seed=seed + 3)
    d = bnorm(g, conv(g, x, cin, cout, name + ".down", dtype, bias=False, k=1, seed=seed + 4), cout, name + ".bnd",
              dtype, seed=seed + 5)
    return g.node("relu", g.node("add.Tensor", b, d, name=name + ".add"), name=name + ".r2")


def two_blocks(dtype):
    g = RecordingGraph()
    x = g.input("x", dtype, [2, 8, 6, 6])
    y = block(g, block(g, x, 8, 16, "b1", dtype, 1), 16, 16, "b2", dtype, 11)
    g.output(y)
    return g, [randn(2, 8, 6, 6, seed=3).to(dtype)]


def two_blocks_reference(values, x):
    """two_blocks in float64 PyTorch from the (already rounded) values the graph holds."""
    def d(name):
        return values[name].double()

    def bn(y, name):
        return F.batch_norm(y, d(name + ".m"), d(name + ".v"), d(name + ".w"), d(name + ".b"), eps=1e-5)

    def blk(x, name):
        a = torch.relu(bn(F.conv2d(x, d(name + ".c1.w"), padding=1), name + ".bn1"))
        b = bn(F.conv2d(a, d(name + ".c2.w"), padding=1), name + ".bn2")
        return torch.relu(b + bn(F.conv2d(x, d(name + ".down.w")), name + ".bnd"))

    return blk(blk(x.double(), "b1"), "b2")


# Low precision: two resnet blocks, compared with the exact result (as test_cuda_fusion's resnet
# block, whose comment explains why no elementwise tolerance holds where residual adds cancel). The
# CPU backend rounds after every op: 5 roundings per block on the longest path (conv, bn, conv, bn,
# add), 10 in all; the bound allows 2 u per rounding of max|exact|. Measured on the CPU backend:
# 2.2 u (f16) and 2.1 u (bf16); the CUDA backend differed from it by 0.7 u (f16) and 0.9 u (bf16)
# (H100, elementwise comparison before this test changed).
TWO_BLOCKS_ROUNDINGS = 10


def _compare_two_blocks(dtype, msg):
    g, inputs = two_blocks(dtype)
    compare_with_exact(g, inputs, two_blocks_reference(g.values, inputs[0]), TWO_BLOCKS_ROUNDINGS, msg)


def conv_act_conv(dtype, act="hardswish"):
    g = Graph()
    x = g.input("x", dtype, [2, 4, 7, 7])
    c1 = conv(g, x, 4, 8, "c1", dtype, seed=1)
    h = g.node(act, c1, name="act")
    h2 = g.node("mul.Scalar", h, 0.5, name="half")
    c2 = conv(g, h2, 8, 8, "c2", dtype, seed=2)
    g.output(g.node("neg", c2, name="out"))
    return g, [randn(2, 4, 7, 7, seed=4).to(dtype)]


def dwconv(g, x, c, name, dtype, stride=1, seed=0):
    """A 3x3 depthwise convolution (groups = channels) without bias."""
    w = g.constant(name + ".w", randn(c, 1, 3, 3, seed=seed, scale=0.5).to(dtype))
    return g.node("convolution", x, w, None, [stride, stride], [1, 1], [1, 1], False, [0, 0], c, name=name)


def depthwise_blocks(dtype):
    """mobilenet-like: 1x1 conv-bn-relu, depthwise-bn with a residual add and relu, then a strided
    depthwise-bn-relu and a 1x1 projection: our depthwise kernel with its epilogue, channels-last."""
    g = Graph()
    x = g.input("x", dtype, [2, 8, 10, 10])
    a = g.node("relu", bnorm(g, conv(g, x, 8, 16, "expand", dtype, bias=False, k=1, seed=1), 16, "bn1", dtype,
                             seed=2), name="r1")
    d = bnorm(g, dwconv(g, a, 16, "dw1", dtype, seed=3), 16, "bn2", dtype, seed=4)
    h = g.node("relu", g.node("add.Tensor", d, a, name="add"), name="r2")
    e = g.node("relu", bnorm(g, dwconv(g, h, 16, "dw2", dtype, stride=2, seed=5), 16, "bn3", dtype, seed=6),
               name="r3")
    g.output(conv(g, e, 16, 8, "project", dtype, k=1, seed=7))
    return g, [randn(2, 8, 10, 10, seed=8).to(dtype)]


def depthwise_out(dtype):
    """1x1 conv (channels-last) into a strided depthwise conv whose output is the graph's (NCHW):
    the depthwise kernel reads one layout and writes the other."""
    g = Graph()
    x = g.input("x", dtype, [2, 8, 9, 9])
    c = conv(g, x, 8, 16, "pw", dtype, k=1, seed=1)
    g.output(g.node("relu", dwconv(g, c, 16, "dw", dtype, stride=2, seed=2), name="act"))
    return g, [randn(2, 8, 9, 9, seed=3).to(dtype)]


def depthwise_hardswish(dtype):
    """mobilenet_v3's later blocks: 1x1 conv-bn-hardswish, a 5x5 depthwise conv-bn-hardswish (the
    hardswish runs in our depthwise kernel's epilogue), 1x1 projection."""
    g = Graph()
    x = g.input("x", dtype, [2, 8, 9, 9])
    a = g.node("hardswish", bnorm(g, conv(g, x, 8, 16, "expand", dtype, bias=False, k=1, seed=1), 16, "bn1", dtype,
                                  seed=2), name="hs1")
    w = g.constant("dw.w", randn(16, 1, 5, 5, seed=3, scale=0.3).to(dtype))
    d = g.node("convolution", a, w, None, [2, 2], [2, 2], [1, 1], False, [0, 0], 16, name="dw")
    h = g.node("hardswish", bnorm(g, d, 16, "bn2", dtype, seed=4), name="hs2")
    g.output(conv(g, h, 16, 8, "project", dtype, k=1, seed=5))
    return g, [randn(2, 8, 9, 9, seed=6).to(dtype) * 2]


def squeeze_excite(dtype):
    """conv, then x * sigmoid(pool(x)) with a [N, C, 1, 1] gate: the mean over H and W reads x
    channels-last, and the multiply reads the gate broadcast over a channels-last x."""
    g = Graph()
    x = g.input("x", dtype, [2, 4, 6, 6])
    c = conv(g, x, 4, 8, "c", dtype, seed=1)
    s = g.node("sigmoid", g.node("mean.dim", c, [2, 3], True, name="pool"), name="gate")
    y = g.node("mul.Tensor", c, s, name="scale")
    g.output(conv(g, y, 8, 8, "c2", dtype, seed=2))
    return g, [randn(2, 4, 6, 6, seed=5).to(dtype)]


def squeeze_excite_variants(dtype):
    """mobilenet_v3's form: mean without keepdim, a view back to [N, C, 1, 1], 1x1 convolutions on
    the pooled values, hardsigmoid, the gate multiply, then a per-channel constant [C, 1, 1] added
    (a broadcast operand of another rank) before the next convolution."""
    g = Graph()
    x = g.input("x", dtype, [2, 8, 5, 7])
    c = conv(g, x, 8, 16, "c", dtype, seed=1)
    m = g.node("view", g.node("mean.dim", c, [-1, -2], False, name="pool"), [2, 16, 1, 1], name="pooled")
    f1 = g.node("relu", conv(g, m, 16, 8, "fc1", dtype, k=1, seed=2), name="fc1_relu")
    gate = g.node("hardsigmoid", conv(g, f1, 8, 16, "fc2", dtype, k=1, seed=3), name="gate")
    y = g.node("mul.Tensor", gate, c, name="scale")  # the gate first: either operand order
    shift = g.constant("shift", randn(16, 1, 1, seed=4, scale=0.2).to(dtype))
    z = g.node("add.Tensor", y, shift, name="shift_add")
    g.output(conv(g, z, 16, 8, "c2", dtype, seed=5))
    return g, [randn(2, 8, 5, 7, seed=6).to(dtype)]


@needs_lowering
def test_resnet_blocks_run_channels_last_between_graph_input_and_output(nhwc):
    g, _ = two_blocks(torch.float16)
    steps, fused, lines = describe(g)
    assert steps == 6, lines
    # block 1 reads the graph input (NCHW) and writes channels-last; block 2's last step writes the
    # graph output, and its residual (the downsample) shares that output's layout: NCHW
    assert lines == [
        "b1.c1 + b1.bn1 + b1.r1: convolution, folded scale, bias, relu [channels-last out]",
        "b1.down + b1.bnd: convolution, folded scale, bias [channels-last out]",
        "b1.c2 + b1.bn2 + b1.add + b1.r2: convolution, folded scale, bias, residual add, relu [channels-last in, out]",
        "b2.c1 + b2.bn1 + b2.r1: convolution, folded scale, bias, relu [channels-last in, out]",
        "b2.down + b2.bnd: convolution, folded scale, bias [channels-last in]",
        "b2.c2 + b2.bn2 + b2.add + b2.r2: convolution, folded scale, bias, residual add, relu [channels-last in]",
    ]


@needs_lowering
def test_elementwise_ops_between_convolutions_stay_channels_last(nhwc, monkeypatch):
    monkeypatch.setenv("TENSORC_CUDA_NVRTC", "0")
    g, _ = conv_act_conv(torch.bfloat16)
    _, _, lines = describe(g)
    assert lines == [
        "c1: convolution [channels-last out]",
        "act: hardswish [channels-last in, out]",
        "half: mul.Scalar [channels-last in, out]",
        "c2: convolution [channels-last in]",
        "out: neg",
    ], lines


@needs_lowering
def test_a_generated_chain_between_convolutions_stays_channels_last(nhwc, monkeypatch):
    monkeypatch.setenv("TENSORC_CUDA_NVRTC", "1")
    g, _ = conv_act_conv(torch.float16)
    _, _, lines = describe(g)
    assert lines == [
        "c1: convolution [channels-last out]",
        "act + half: generated kernel (2 ops, 1 inputs) [channels-last in, out]",
        "c2: convolution [channels-last in]",
        "out: neg",
    ], lines


@needs_lowering
def test_depthwise_convolutions_stay_channels_last_with_their_epilogues(nhwc):
    _, _, lines = describe(depthwise_blocks(torch.float16)[0])
    assert lines == [
        "expand + bn1 + r1: convolution, folded scale, bias, relu [channels-last out]",
        "dw1 + bn2 + add + r2: convolution, folded scale, bias, residual add, relu [channels-last in, out]",
        "dw2 + bn3 + r3: convolution, folded scale, bias, relu [channels-last in, out]",
        "project: convolution [channels-last in]",
    ], lines
    _, _, lines = describe(depthwise_out(torch.float16)[0])
    # a channels-last weight and the zero bias a fused activation needs read as "folded scale, bias"
    assert lines == ["pw: convolution [channels-last out]",
                     "dw + act: convolution, folded scale, bias, relu [channels-last in]"], lines


@needs_lowering
def test_depthwise_convolution_takes_hardswish_into_its_epilogue(nhwc, monkeypatch):
    _, _, lines = describe(depthwise_hardswish(torch.float16)[0])
    assert lines == ["expand + bn1: convolution, folded scale, bias [channels-last out]",
                     "hs1: hardswish [channels-last in, out]",
                     "dw + bn2 + hs2: convolution, folded scale, bias, hardswish [channels-last in, out]",
                     "project: convolution [channels-last in]"], lines
    monkeypatch.setenv("TENSORC_CUDA_DEPTHWISE", "0")  # cuDNN runs it: no hardswish epilogue there
    _, _, lines = describe(depthwise_hardswish(torch.float16)[0])
    assert "hs2: hardswish [channels-last in, out]" in lines, lines


@needs_lowering
def test_squeeze_excite_stays_channels_last(nhwc, monkeypatch):
    _, _, lines = describe(squeeze_excite(torch.float16)[0])
    assert lines == ["c: convolution [channels-last out]",
                     "pool: mean.dim [channels-last in]",
                     "gate: sigmoid",
                     "scale: mul.Tensor [channels-last in, out]",
                     "c2: convolution [channels-last in]"], lines
    # a generated chain indexes its broadcast operands in NCHW order: with one (scale + shift_add),
    # the values it touches stay NCHW
    monkeypatch.setenv("TENSORC_CUDA_NVRTC", "1")
    _, _, lines = describe(squeeze_excite_variants(torch.float16)[0])
    assert "scale + shift_add: generated kernel (2 ops, 3 inputs)" in lines, lines
    assert not any("channels-last" in line for line in lines if line.startswith(("c:", "pool:", "c2:"))), lines
    monkeypatch.setenv("TENSORC_CUDA_NVRTC", "0")
    _, _, lines = describe(squeeze_excite_variants(torch.float16)[0])
    assert "pool: mean.dim [channels-last in]" in lines, lines
    assert "scale: mul.Tensor [channels-last out]" in lines, lines  # its first operand is the gate
    assert "shift_add: add.Tensor [channels-last in, out]" in lines, lines
    assert "c2: convolution [channels-last in]" in lines, lines


@needs_lowering
def test_other_reductions_f32_and_the_switch_off_keep_nchw(nhwc, monkeypatch):
    g = Graph()
    x = g.input("x", torch.float16, [2, 4, 6, 6])
    c = conv(g, x, 4, 8, "c", torch.float16, seed=1)
    s = g.node("mean.dim", c, [1], True, name="channel_mean")  # over C: reads NCHW
    g.output(conv(g, g.node("mul.Tensor", c, s, name="scale"), 8, 8, "c2", torch.float16, seed=2))
    _, _, lines = describe(g)
    assert lines[:2] == ["c: convolution", "channel_mean: mean.dim"], lines
    g, _ = two_blocks(torch.float32)
    assert not any("channels-last" in line for line in describe(g)[2])
    monkeypatch.setenv("TENSORC_CUDA_NHWC", "0")
    g, _ = two_blocks(torch.float16)
    assert not any("channels-last" in line for line in describe(g)[2])


@needs_lowering
def test_a_value_read_by_anything_else_stays_nchw(nhwc):
    # the first conv's output also feeds a max pool: NCHW; the second's only a conv: channels-last
    g = Graph()
    x = g.input("x", torch.float16, [1, 4, 8, 8])
    c1 = conv(g, x, 4, 4, "c1", torch.float16, seed=1)
    p = g.node("max_pool2d_with_indices", c1, [2, 2], [2, 2], name="pool")[0]
    c2 = conv(g, c1, 4, 4, "c2", torch.float16, seed=2)
    c3 = conv(g, c2, 4, 4, "c3", torch.float16, seed=3)
    g.output(p, c3)
    _, _, lines = describe(g)
    assert lines[0] == "c1: convolution" and "c2: convolution [channels-last out]" in lines
    assert "c3: convolution [channels-last in]" in lines, lines


# --- on the GPU: the same graphs against the CPU backend -------------------------------------------

@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("build", [two_blocks, conv_act_conv, squeeze_excite, squeeze_excite_variants,
                                   depthwise_blocks, depthwise_out, depthwise_hardswish])
def test_channels_last_results_match_the_cpu_backend(nhwc, build, dtype):
    if build is two_blocks:
        _compare_two_blocks(dtype, f"two_blocks {dtype} channels-last")
        return
    g, inputs = build(dtype)
    _compare(g, inputs, f"{build.__name__} {dtype} channels-last")


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_channels_last_with_generated_chains(nhwc, monkeypatch, dtype):
    monkeypatch.setenv("TENSORC_CUDA_NVRTC", "1")
    g, inputs = conv_act_conv(dtype)
    _compare(g, inputs, f"conv_act_conv {dtype} channels-last with a generated chain")


@needs_cuda
@pytest.mark.parametrize("nvrtc", ["0", "1"])
def test_squeeze_excite_variants_with_and_without_generated_chains(nhwc, monkeypatch, nvrtc):
    monkeypatch.setenv("TENSORC_CUDA_NVRTC", nvrtc)
    g, inputs = squeeze_excite_variants(torch.float16)
    _compare(g, inputs, f"squeeze_excite_variants f16, TENSORC_CUDA_NVRTC={nvrtc}")


@needs_cuda
def test_depthwise_blocks_f32_match_the_cpu_backend():
    g, inputs = depthwise_blocks(torch.float32)  # f32 stays NCHW
    _compare(g, inputs, "depthwise blocks f32")


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_depthwise_kernel_matches_cudnn(monkeypatch, dtype):
    # the same channels-last blocks on our depthwise kernel and on cuDNN's
    g, inputs = depthwise_blocks(dtype)
    ours = g.run(*inputs, backend="cuda")[0]
    monkeypatch.setenv("TENSORC_CUDA_DEPTHWISE", "0")
    g, inputs = depthwise_blocks(dtype)
    theirs = g.run(*inputs, backend="cuda")[0]
    assert_matches(ours, theirs, msg=f"depthwise blocks {dtype}: our kernel vs cuDNN")


@needs_cuda
def test_channels_last_with_autotune_and_without_fusion(nhwc, monkeypatch):
    monkeypatch.setenv("TENSORC_AUTOTUNE", "1")
    _compare_two_blocks(torch.float16, "two_blocks f16 channels-last, tuned")
    monkeypatch.setenv("TENSORC_CUDA_FUSE", "0")
    _compare_two_blocks(torch.float16, "two_blocks f16 channels-last, unfused")
