"""Conformance of the pooling, resizing and padding ops on the CPU backend against PyTorch:
max_pool2d_with_indices, avg_pool2d, _adaptive_avg_pool2d, upsample_nearest2d.vec,
upsample_bilinear2d.vec and constant_pad_nd."""
import pytest
import torch

from conformance import FLOAT_DTYPES, assert_matches, check_op, randn
from tensorc_ct import Engine, Graph, TcError

aten = torch.ops.aten

# (shape, kernel, stride, padding, dilation, ceil_mode)
MAXPOOL = [
    ((2, 3, 8, 8), [2, 2], [], [0, 0], [1, 1], False),
    ((1, 2, 9, 7), [3, 3], [2, 2], [1, 1], [1, 1], False),       # resnet stem pool
    ((1, 2, 9, 7), [3, 3], [2, 2], [1, 1], [1, 1], True),
    ((2, 2, 10, 11), [3, 2], [2, 3], [1, 0], [2, 1], True),
    ((1, 1, 5, 5), [2, 2], [2, 2], [0, 0], [1, 1], True),         # ceil adds a partial window
    ((1, 1, 6, 6), [3, 3], [2, 2], [1, 1], [1, 1], True),         # ceil window starting in padding dropped
    ((3, 7, 6), [2, 3], [1, 2], [1, 1], [1, 1], False),           # unbatched
    ((0, 2, 6, 6), [2, 2], [2, 2], [0, 0], [1, 1], False),        # batch 0
    ((1, 2, 1, 9), [1, 2], [1, 2], [0, 0], [1, 1], False),        # max_pool1d's lowering
]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", range(len(MAXPOOL)))
def test_max_pool2d_with_indices(case, dtype):
    shape, k, s, p, d, ceil = MAXPOOL[case]
    x = randn(*shape, dtype=dtype, seed=case)
    check_op("max_pool2d_with_indices",
             lambda x: aten.max_pool2d_with_indices.default(x, k, s, p, d, ceil), [x], k, s, p, d, ceil)


def test_max_pool_nan_and_ties_pick_pytorchs_index():
    x = torch.tensor([[[[1.0, 1.0, 0.0, float("nan")], [1.0, -1.0, float("nan"), 2.0],
                        [-float("inf"), -float("inf"), 3.0, 3.0], [-float("inf"), -float("inf"), 3.0, 3.0]]]])
    check_op("max_pool2d_with_indices", lambda x: aten.max_pool2d_with_indices.default(x, [2, 2]), [x], [2, 2])


# (shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVGPOOL = [
    ((2, 3, 8, 8), [2, 2], [], [0, 0], False, True, None),
    ((1, 2, 9, 7), [3, 3], [2, 2], [1, 1], False, True, None),
    ((1, 2, 9, 7), [3, 3], [2, 2], [1, 1], False, False, None),
    ((1, 2, 9, 7), [3, 3], [2, 2], [1, 1], True, True, None),
    ((1, 2, 9, 7), [3, 3], [2, 2], [1, 1], True, False, None),
    ((2, 1, 5, 6), [2, 3], [2, 2], [1, 1], True, True, 5),
    ((1, 1, 5, 5), [2, 2], [2, 2], [0, 0], True, True, None),      # partial window past the edge
    ((3, 6, 6), [2, 2], [2, 2], [0, 0], False, True, None),        # unbatched
    ((1, 2, 1, 10), [1, 3], [1, 2], [0, 1], False, True, None),    # avg_pool1d's lowering
]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", range(len(AVGPOOL)))
def test_avg_pool2d(case, dtype):
    shape, k, s, p, ceil, cip, div = AVGPOOL[case]
    x = randn(*shape, dtype=dtype, seed=case)
    check_op("avg_pool2d", lambda x: aten.avg_pool2d.default(x, k, s, p, ceil, cip, div), [x], k, s, p, ceil, cip, div)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape,out", [((2, 3, 7, 7), [1, 1]), ((1, 2, 10, 9), [3, 4]), ((1, 2, 5, 5), [7, 8]),
                                       ((3, 8, 6), [2, 3]), ((1, 2, 1, 12), [1, 5]), ((1, 1, 4, 4), [0, 2])])
def test_adaptive_avg_pool2d(shape, out, dtype):
    x = randn(*shape, dtype=dtype, seed=3)
    check_op("_adaptive_avg_pool2d", lambda x: aten._adaptive_avg_pool2d.default(x, out), [x], out)


NEAREST = [([8, 10], None), (None, [2.0, 2.0]), (None, [1.5, 0.75]), (None, [3.3, 1.7]), ([5, 3], None),
           ([4, 5], None), (None, [0.5, 2.5]), ([13, 7], None)]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + [torch.uint8])
@pytest.mark.parametrize("case", range(len(NEAREST)))
def test_upsample_nearest2d(case, dtype):
    size, scales = NEAREST[case]
    x = (randn(2, 3, 4, 5, seed=case) * 10).to(dtype)
    check_op("upsample_nearest2d.vec", lambda x: aten.upsample_nearest2d.vec(x, size, scales), [x], size, scales)


BILINEAR = [([8, 10], None), (None, [2.0, 2.0]), (None, [1.5, 0.75]), (None, [3.3, 1.7]), ([5, 3], None),
            ([4, 5], None), ([1, 1], None), (None, [0.6, 2.5]), ([13, 7], None)]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("case", range(len(BILINEAR)))
def test_upsample_bilinear2d(case, align, dtype):
    size, scales = BILINEAR[case]
    x = randn(2, 3, 4, 5, dtype=dtype, seed=case)
    check_op("upsample_bilinear2d.vec", lambda x: aten.upsample_bilinear2d.vec(x, size, align, scales), [x], size,
             align, scales)


def test_upsample_bilinear_large_fractional_scale():
    x = randn(1, 2, 17, 23, seed=9)
    for align in (False, True):
        check_op("upsample_bilinear2d.vec", lambda x: aten.upsample_bilinear2d.vec(x, None, align, [2.37, 1.61]),
                 [x], None, align, [2.37, 1.61])
        check_op("upsample_nearest2d.vec", lambda x: aten.upsample_nearest2d.vec(x, None, [2.37, 1.61]),
                 [x], None, [2.37, 1.61])


PADS = [((2, 3, 4, 5), [1, 2], 0.0), ((2, 3, 4, 5), [1, 2, 3, 0], 1.5), ((2, 3, 4, 5), [-1, 2, 1, -2], -2.0),
        ((3, 4), [0, 0, 2, 1], 0.0), ((5,), [3, -2], 7.0), ((2, 3, 4), [1, 1, 1, 1, 1, 1], 0.25),
        ((0, 3, 4), [1, 1], 0.0), ((2, 3, 4, 5), [-2, -3], 0.0), ((2, 2), [], 0.0)]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", range(len(PADS)))
def test_constant_pad_nd(case, dtype):
    shape, pad, value = PADS[case]
    x = randn(*shape, dtype=dtype, seed=case)
    check_op("constant_pad_nd", lambda x: aten.constant_pad_nd.default(x, pad, value), [x], pad, value)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool])
def test_constant_pad_nd_int(dtype):
    x = torch.arange(12).reshape(3, 4).to(dtype)
    check_op("constant_pad_nd", lambda x: aten.constant_pad_nd.default(x, [1, -1, 2, 0], 1), [x], [1, -1, 2, 0], 1)


def test_pool_symbolic_batch():
    g = Graph()
    s0 = g.symbol("s0", 1, 2, 8)
    x = g.input("x", torch.float32, [s0, 3, 9, 9])
    vals, idx = g.node("max_pool2d_with_indices", x, [3, 3], [2, 2], [1, 1], [1, 1], True)
    avg = g.node("avg_pool2d", vals, [2, 2], [2, 2], [0, 0], True)
    ad = g.node("_adaptive_avg_pool2d", avg, [1, 1])
    up = g.node("upsample_bilinear2d.vec", vals, None, False, [2.0, 2.0])
    pad = g.node("constant_pad_nd", x, [1, 1, 0, 2], 0.5)
    assert vals.shape == ["s0", 3, 5, 5] and idx.shape == ["s0", 3, 5, 5]
    assert avg.shape == ["s0", 3, 3, 3] and ad.shape == ["s0", 3, 1, 1] and up.shape == ["s0", 3, 10, 10]
    assert pad.shape == ["s0", 3, 11, 11]
    g.output(vals, idx, avg, ad, up, pad)
    eng = Engine(g)
    for n in (1, 3):
        xv = randn(n, 3, 9, 9, seed=n)
        v, i = aten.max_pool2d_with_indices.default(xv, [3, 3], [2, 2], [1, 1], [1, 1], True)
        a = aten.avg_pool2d.default(v, [2, 2], [2, 2], [0, 0], True)
        want = [v, i, a, aten._adaptive_avg_pool2d.default(a, [1, 1]),
                aten.upsample_bilinear2d.vec(v, None, False, [2.0, 2.0]), aten.constant_pad_nd.default(xv, [1, 1, 0, 2], 0.5)]
        for k, (got, w) in enumerate(zip(eng.run(xv), want)):
            assert_matches(got, w, msg=f"output {k} at s0={n}")


def test_symbolic_spatial_size():
    g = Graph()
    s = g.symbol("s", 4, 8, 32)
    x = g.input("x", torch.float32, [1, 2, s, s])
    y = g.node("max_pool2d_with_indices", x, [2, 2], [2, 2])[0]
    up = g.node("upsample_nearest2d.vec", x, None, [2.0, 2.0])
    assert up.shape == [1, 2, "2*s", "2*s"]
    g.output(y, up)
    eng = Engine(g)
    for n in (5, 8):
        xv = randn(1, 2, n, n, seed=n)
        got = eng.run(xv)
        assert_matches(got[0], aten.max_pool2d_with_indices.default(xv, [2, 2], [2, 2])[0], msg=f"s={n}")
        assert_matches(got[1], aten.upsample_nearest2d.vec(xv, None, [2.0, 2.0]), msg=f"s={n}")


def _error(op, shape, *args, dtype=torch.float32):
    g = Graph()
    x = g.input("x", dtype, list(shape))
    with pytest.raises(TcError) as e:
        g.node(op, x, *args, name="pool_bad")
    msg = e.value.message
    assert "node 'pool_bad'" in msg and op.split(".")[0] in msg, msg
    return msg


def test_invalid_kernel_larger_than_padded_input():
    assert "kernel" in _error("max_pool2d_with_indices", (1, 1, 2, 2), [3, 3])
    assert "kernel" in _error("avg_pool2d", (1, 1, 4, 2), [3, 3], [1, 1], [0, 0])


def test_invalid_pool_arguments():
    assert "half" in _error("max_pool2d_with_indices", (1, 1, 8, 8), [2, 2], [2, 2], [2, 2])
    assert "4-D" in _error("max_pool2d_with_indices", (8, 8), [2, 2])
    assert "zero" in _error("avg_pool2d", (1, 1, 8, 8), [2, 2], [2, 2], [0, 0], False, True, 0)
    assert "floating" in _error("avg_pool2d", (1, 1, 8, 8), [2, 2], dtype=torch.int64)


def test_invalid_upsample_and_pad_arguments():
    assert "exactly one" in _error("upsample_nearest2d.vec", (1, 1, 4, 4), [8, 8], [2.0, 2.0])
    assert "exactly one" in _error("upsample_bilinear2d.vec", (1, 1, 4, 4), None, False, None)
    assert "4-D" in _error("upsample_bilinear2d.vec", (1, 4, 4), [8, 8], False, None)
    assert "negative" in _error("constant_pad_nd", (2, 3), [-2, -2])
    assert "even" in _error("constant_pad_nd", (2, 3), [1, 2, 3])
