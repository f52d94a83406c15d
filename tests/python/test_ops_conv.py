"""Conformance of aten.convolution on the CPU backend against PyTorch: 1-D and 2-D, stride,
padding, dilation, groups (depthwise too), transposed with output_padding, bias or not."""
import time

import pytest
import torch

from conformance import FLOAT_DTYPES, assert_matches, check_op, randn
from tensorc_ct import Engine, Graph, TcError

aten = torch.ops.aten


def tol(dtype, k):
    """k products are summed per output; f16/bf16 outputs differ by one rounding of the sum."""
    if dtype == torch.float32:
        return dict(rtol=1e-4, atol=2e-5 * max(1, k) ** 0.5)
    return dict(rtol=2e-2, atol=2e-2 * max(1, k) ** 0.5)


def run_conv(x_shape, w_shape, bias, stride, padding, dilation, transposed, output_padding, groups, dtype,
             seed=0):
    x = randn(*x_shape, dtype=dtype, seed=seed)
    w = randn(*w_shape, dtype=dtype, seed=seed + 1, scale=0.5)
    ts = [x, w]
    if bias:
        ts.append(randn(w_shape[1] * groups if transposed else w_shape[0], dtype=dtype, seed=seed + 2))
    args = [stride, padding, dilation, transposed, output_padding, groups]

    def ref(*t):
        return aten.convolution.default(t[0], t[1], t[2] if bias else None, *args)

    k = 1
    for d in (w_shape[0] // groups if transposed else w_shape[1]), *w_shape[2:]:
        k *= d
    if bias:
        check_op("convolution", ref, ts, *args, **tol(dtype, k))
    else:
        check_op("convolution", ref, ts, None, *args, **tol(dtype, k))


# (x_shape, w_shape, bias, stride, padding, dilation, groups)
CONV2D = [
    ((2, 3, 9, 9), (4, 3, 3, 3), True, [1, 1], [0, 0], [1, 1], 1),
    ((1, 4, 8, 10), (6, 4, 3, 3), True, [1, 1], [1, 1], [1, 1], 1),
    ((2, 3, 11, 9), (5, 3, 3, 2), False, [2, 3], [1, 0], [1, 1], 1),
    ((1, 2, 12, 12), (3, 2, 3, 3), True, [1, 1], [2, 2], [2, 2], 1),
    ((2, 4, 7, 7), (6, 2, 3, 3), True, [2, 2], [1, 1], [1, 1], 2),          # grouped
    ((1, 6, 9, 8), (6, 1, 3, 3), True, [1, 1], [1, 1], [1, 1], 6),          # depthwise
    ((2, 4, 10, 9), (8, 1, 5, 3), False, [2, 1], [2, 1], [1, 2], 4),        # depthwise, multiplier 2
    ((1, 8, 6, 6), (16, 8, 1, 1), True, [1, 1], [0, 0], [1, 1], 1),         # pointwise: plain GEMM
    ((2, 8, 7, 7), (4, 8, 1, 1), False, [2, 2], [0, 0], [1, 1], 1),         # strided 1x1
    ((1, 3, 17, 17), (4, 3, 7, 7), True, [2, 2], [3, 3], [1, 1], 1),        # resnet stem-like
    ((0, 3, 5, 5), (4, 3, 3, 3), True, [1, 1], [1, 1], [1, 1], 1),          # batch 0
    ((1, 2, 3, 3), (2, 2, 3, 3), True, [1, 1], [0, 0], [1, 1], 1),          # 1x1 output
    ((1, 3, 5, 5), (3, 1, 3, 3), True, [1, 1], [1, 1], [1, 1], 3),          # depthwise, pad
    ((5, 4, 6, 6), (4, 2, 3, 3), True, [1, 1], [1, 1], [1, 1], 2),          # groups=2, many tasks
]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", range(len(CONV2D)))
def test_conv2d(case, dtype):
    xs, ws, bias, s, p, d, g = CONV2D[case]
    run_conv(xs, ws, bias, s, p, d, False, [0, 0], g, dtype)


CONV1D = [
    ((2, 3, 20), (4, 3, 3), True, [1], [0], [1], 1),
    ((1, 4, 17), (6, 2, 5), False, [2], [2], [2], 2),
    ((2, 4, 9), (4, 1, 3), True, [1], [1], [1], 4),   # depthwise
    ((3, 5, 8), (7, 5, 1), True, [1], [0], [1], 1),   # pointwise
]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", range(len(CONV1D)))
def test_conv1d(case, dtype):
    xs, ws, bias, s, p, d, g = CONV1D[case]
    run_conv(xs, ws, bias, s, p, d, False, [0], g, dtype)


# (x_shape, w_shape [Cin, Cout/groups, k...], bias, stride, padding, dilation, output_padding, groups)
CONVT = [
    ((2, 4, 5, 5), (4, 3, 3, 3), True, [2, 2], [0, 0], [1, 1], [0, 0], 1),
    ((1, 4, 4, 6), (4, 2, 3, 3), True, [2, 2], [1, 1], [1, 1], [1, 1], 1),
    ((1, 4, 5, 4), (4, 3, 4, 2), False, [3, 2], [1, 0], [1, 1], [2, 1], 2),
    ((2, 6, 3, 3), (6, 1, 3, 3), True, [1, 1], [1, 1], [2, 2], [0, 0], 6),
    ((1, 2, 4, 4), (2, 3, 3, 3), True, [1, 2], [0, 1], [2, 1], [1, 1], 1),  # opad < dilation
    ((1, 8, 5, 5), (8, 4, 1, 1), True, [1, 1], [0, 0], [1, 1], [0, 0], 1),
]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", range(len(CONVT)))
def test_conv_transposed2d(case, dtype):
    xs, ws, bias, s, p, d, op, g = CONVT[case]
    run_conv(xs, ws, bias, s, p, d, True, op, g, dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_conv_transposed1d(dtype):
    run_conv((2, 4, 7), (4, 3, 4), True, [3], [1], [1], True, [2], 2, dtype)
    run_conv((1, 3, 6), (3, 2, 3), False, [2], [0], [2], True, [1], 1, dtype)


def test_conv_unbatched_input_is_rejected_like_aten():
    """aten.convolution itself wants a batch dim (F.conv2d adds it before calling it)."""
    with pytest.raises(RuntimeError):
        aten.convolution.default(randn(3, 9, 9), randn(4, 3, 3, 3), None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)
    assert "input" in _conv_error((3, 9, 9), (4, 3, 3, 3))


def test_conv_single_element_params_expand():
    x, w = randn(1, 2, 7, 7), randn(3, 2, 3, 3, seed=1)
    check_op("convolution", lambda x, w: aten.convolution.default(x, w, None, [2], [1], [1], False, [0], 1),
             [x, w], None, [2], [1], [1], False, [0], 1, **tol(torch.float32, 18))


def test_conv_symbolic_batch_and_width():
    g = Graph()
    s0 = g.symbol("s0", 1, 2, 8)
    s1 = g.symbol("s1", 8, 16, 64)
    x = g.input("x", torch.float32, [s0, 3, 10, s1])
    wt, bt = randn(4, 3, 3, 3, seed=1), randn(4, seed=2)
    y = g.node("convolution", x, g.constant("w", wt), g.constant("b", bt), [2, 2], [1, 1], [1, 1], False, [0, 0], 1)
    shape = y.shape
    assert shape[:3] == ["s0", 4, 5], shape
    assert isinstance(shape[3], str) and "s1" in shape[3], shape
    g.output(y)
    eng = Engine(g)
    for n, wd in [(1, 8), (3, 13)]:
        xv = randn(n, 3, 10, wd, seed=n)
        want = aten.convolution.default(xv, wt, bt, [2, 2], [1, 1], [1, 1], False, [0, 0], 1)
        assert_matches(eng.run(xv)[0], want, **tol(torch.float32, 27), msg=f"conv at s0={n}, s1={wd}")


def _conv_error(x_shape, w_shape, *args, transposed=False, groups=1, bias=None):
    g = Graph()
    x = g.input("x", torch.float32, list(x_shape))
    w = g.input("w", torch.float32, list(w_shape))
    nsp = len(w_shape) - 2
    b = g.input("b", torch.float32, [bias]) if bias else None
    with pytest.raises(TcError) as e:
        g.node("convolution", x, w, b, [1] * nsp, [0] * nsp, [1] * nsp, transposed, [0] * nsp, groups,
               name="conv_bad")
    msg = e.value.message
    assert "node 'conv_bad'" in msg and "convolution" in msg, msg
    return msg


def test_invalid_channel_mismatch():
    assert "channels" in _conv_error((1, 4, 8, 8), (6, 3, 3, 3))
    assert "channels" in _conv_error((1, 4, 8, 8), (6, 4, 3, 3), groups=2)


def test_invalid_kernel_larger_than_padded_input():
    assert "kernel" in _conv_error((1, 3, 2, 2), (4, 3, 3, 3))


def test_invalid_rank_and_bias_and_groups():
    assert "input" in _conv_error((3, 8), (4, 3, 3, 3))
    assert "bias" in _conv_error((1, 3, 8, 8), (4, 3, 3, 3), bias=5)
    assert "divisible" in _conv_error((1, 4, 8, 8), (6, 2, 3, 3), groups=4)


def test_invalid_output_padding():
    g = Graph()
    x, w = g.input("x", torch.float32, [1, 2, 4, 4]), g.input("w", torch.float32, [2, 2, 3, 3])
    with pytest.raises(TcError) as e:
        g.node("convolution", x, w, None, [1, 1], [0, 0], [1, 1], True, [1, 1], 1, name="ct")
    assert "node 'ct'" in e.value.message and "output_padding" in e.value.message


def test_invalid_dtype_mismatch():
    g = Graph()
    x, w = g.input("x", torch.float32, [1, 2, 4, 4]), g.input("w", torch.float16, [2, 2, 3, 3])
    with pytest.raises(TcError) as e:
        g.node("convolution", x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1, name="cd")
    assert "node 'cd'" in e.value.message and "dtype" in e.value.message


def test_kernel_larger_than_symbolic_input_fails_at_run_time():
    g = Graph()
    s = g.symbol("s", 1, 8, 16)
    x = g.input("x", torch.float32, [1, 2, s, s])
    y = g.node("convolution", x, g.constant("w", randn(3, 2, 3, 3)), None, [1, 1], [0, 0], [1, 1], False,
               [0, 0], 1, name="cs")
    g.output(y)
    eng = Engine(g)
    with pytest.raises(TcError) as e:
        eng.run(randn(1, 2, 1, 1))
    assert "'cs'" in e.value.message


def test_resnet_3x3_conv_speed(capsys):
    """ResNet-50 layer1 3x3 conv, 64->64 channels at 56x56: correctness, and GFLOP/s for the record."""
    x, w = randn(1, 64, 56, 56, seed=1), randn(64, 64, 3, 3, seed=2, scale=0.05)
    g = Graph()
    xv = g.input("x", torch.float32, [1, 64, 56, 56])
    y = g.node("convolution", xv, g.constant("w", w), None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1)
    g.output(y)
    eng = Engine(g)
    got = eng.run(x)[0]
    assert_matches(got, torch.nn.functional.conv2d(x, w, padding=1), **tol(torch.float32, 576), msg="resnet conv")
    reps = 5
    t0 = time.perf_counter()
    for _ in range(reps):
        eng.run(x)
    dt = (time.perf_counter() - t0) / reps
    flops = 2 * 64 * 64 * 9 * 56 * 56
    with capsys.disabled():
        print(f"\n3x3 conv 64->64 @56x56: {dt * 1e3:.2f} ms, {flops / dt / 1e9:.1f} GFLOP/s")


def test_conv3d_shape_inferred_but_cpu_reports_unsupported():
    x, w = randn(1, 2, 5, 6, 7), randn(3, 2, 3, 3, 3, seed=1)
    want = aten.convolution.default(x, w, None, [1, 2, 1], [1, 0, 1], [1, 1, 2], False, [0, 0, 0], 1)
    g = Graph()
    y = g.node("convolution", g.input("x", torch.float32, [1, 2, 5, 6, 7]), g.constant("w", w), None, [1, 2, 1],
               [1, 0, 1], [1, 1, 2], False, [0, 0, 0], 1, name="c3")
    assert y.shape == list(want.shape)
    g.output(y)
    with pytest.raises(TcError) as e:
        g.run(x)
    assert "'c3'" in e.value.message and "3-D convolution is not supported" in e.value.message
