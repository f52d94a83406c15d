"""Conformance of the matrix products (mm, bmm, addmm, linear) on the CPU backend against PyTorch."""
import pytest
import torch

from conformance import FLOAT_DTYPES, assert_matches, check_op, randn
from tensorc_ct import Graph, TcError

aten = torch.ops.aten

# Sums of K products: fp16/bf16 rounding of the inputs is the same on both sides, but PyTorch may
# round partial sums differently, so the tolerance grows with K.
def tol(dtype, k):
    if dtype == torch.float32:
        return dict(rtol=1e-4, atol=1e-4 * max(1, k) ** 0.5)
    return dict(rtol=2e-2, atol=2e-2 * max(1, k) ** 0.5)


MM_SHAPES = [(3, 5, 4), (1, 7, 1), (17, 33, 65), (64, 128, 96), (0, 4, 3), (4, 0, 3), (4, 3, 0), (1, 2048, 1)]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("mkn", MM_SHAPES)
def test_mm(mkn, dtype):
    m, k, n = mkn
    a, b = randn(m, k, dtype=dtype, seed=1), randn(k, n, dtype=dtype, seed=2)
    check_op("mm", aten.mm.default, [a, b], **tol(dtype, k))


def test_mm_f64_and_int():
    a, b = randn(5, 6, dtype=torch.float64, seed=1), randn(6, 3, dtype=torch.float64, seed=2)
    check_op("mm", aten.mm.default, [a, b])
    ai = torch.randint(-5, 5, (4, 7), dtype=torch.int64)
    bi = torch.randint(-5, 5, (7, 2), dtype=torch.int64)
    check_op("mm", aten.mm.default, [ai, bi])
    check_op("mm", aten.mm.default, [ai.to(torch.int32), bi.to(torch.int32)])


def test_mm_transposed_input_made_contiguous():
    a = randn(9, 6, seed=3).t()
    b = randn(9, 4, seed=4)
    check_op("mm", aten.mm.default, [a.contiguous(), b], **tol(torch.float32, 9))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("bmkn", [(2, 3, 5, 4), (1, 1, 1, 1), (5, 16, 32, 8), (0, 3, 4, 5), (3, 2, 0, 4)])
def test_bmm(bmkn, dtype):
    bs, m, k, n = bmkn
    a, b = randn(bs, m, k, dtype=dtype, seed=5), randn(bs, k, n, dtype=dtype, seed=6)
    check_op("bmm", aten.bmm.default, [a, b], **tol(dtype, k))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("self_shape", [(4, 6), (6,), (1, 6), (4, 1), (1,), ()])
@pytest.mark.parametrize("beta,alpha", [(1, 1), (0.5, 2.0), (0, 1.5)])
def test_addmm(self_shape, beta, alpha, dtype):
    s = randn(*self_shape, dtype=dtype, seed=7)
    a, b = randn(4, 5, dtype=dtype, seed=8), randn(5, 6, dtype=dtype, seed=9)
    check_op("addmm", lambda s, a, b: aten.addmm.default(s, a, b, beta=beta, alpha=alpha), [s, a, b],
             beta=beta, alpha=alpha, **tol(dtype, 5))


def test_addmm_beta_zero_ignores_nan_self():
    s = torch.full((3, 2), float("nan"))
    a, b = randn(3, 4, seed=1), randn(4, 2, seed=2)
    check_op("addmm", lambda s, a, b: aten.addmm.default(s, a, b, beta=0), [s, a, b], beta=0, **tol(torch.float32, 4))


def test_addmm_int():
    s = torch.randint(-3, 3, (2, 3))
    a, b = torch.randint(-3, 3, (2, 4)), torch.randint(-3, 3, (4, 3))
    check_op("addmm", lambda s, a, b: aten.addmm.default(s, a, b, beta=2, alpha=3), [s, a, b], beta=2, alpha=3)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("x_shape", [(8,), (3, 8), (2, 5, 8), (2, 1, 3, 8), (0, 8)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(x_shape, bias, dtype):
    x, w = randn(*x_shape, dtype=dtype, seed=10), randn(6, 8, dtype=dtype, seed=11)
    ts = [x, w] + ([randn(6, dtype=dtype, seed=12)] if bias else [])
    check_op("linear", aten.linear.default, ts, **tol(dtype, 8))


def test_linear_scalar_and_one_element_bias():
    x, w, b = randn(3, 8, seed=1), randn(4, 8, seed=2), randn(seed=3)
    check_op("linear", aten.linear.default, [x, w, b], **tol(torch.float32, 8))
    check_op("linear", aten.linear.default, [x, randn(5, 8, seed=4), randn(1, seed=5)], **tol(torch.float32, 8))


def test_linear_large_like_resnet_fc():
    x, w, b = randn(2, 2048, seed=1), randn(1000, 2048, seed=2, scale=0.02), randn(1000, seed=3)
    check_op("linear", aten.linear.default, [x, w, b], **tol(torch.float32, 2048))


def test_linear_symbolic_leading_dims():
    g = Graph()
    s0 = g.symbol("s0", 1, 4, 16)
    s1 = g.symbol("s1", 1, 3, 8)
    x = g.input("x", torch.float32, [s0, s1, 8])
    w = g.constant("w", randn(5, 8, seed=1))
    b = g.constant("b", randn(5, seed=2))
    y = g.node("linear", x, w, b)
    assert y.shape == ["s0", "s1", 5]
    g.output(y)
    from tensorc_ct import Engine
    eng = Engine(g)
    for n0, n1 in [(2, 3), (7, 1)]:
        xv = randn(n0, n1, 8, seed=n0)
        assert_matches(eng.run(xv)[0], aten.linear.default(xv, randn(5, 8, seed=1), randn(5, seed=2)),
                       msg=f"linear at s0={n0}, s1={n1}")


def test_bmm_symbolic_batch():
    g = Graph()
    s0 = g.symbol("batch", 1, 2, 8)
    a = g.input("a", torch.float32, [s0, 3, 4])
    b = g.input("b", torch.float32, [s0, 4, 2])
    y = g.node("bmm", a, b)
    assert y.shape == ["batch", 3, 2]
    g.output(y)
    for n in (1, 5):
        av, bv = randn(n, 3, 4, seed=1), randn(n, 4, 2, seed=2)
        assert_matches(g.run(av, bv)[0], torch.bmm(av, bv), msg=f"bmm batch={n}")


def _node_error(op, shapes, *args, dtypes=None, **kwargs):
    g = Graph()
    vals = [g.input(f"in{i}", (dtypes or {}).get(i, torch.float32), list(s)) for i, s in enumerate(shapes)]
    with pytest.raises(TcError) as e:
        g.node(op, *vals, *args, name="bad_node", **kwargs)
    assert "node 'bad_node'" in e.value.message and op.split(".")[0] in e.value.message, e.value.message
    return e.value.message


def test_invalid_mm_rank_mismatch():
    msg = _node_error("mm", [(2, 3, 4), (4, 5)])
    assert "2-D" in msg


def test_invalid_mm_inner_mismatch():
    msg = _node_error("mm", [(2, 3), (4, 5)])
    assert "inner" in msg


def test_invalid_bmm_batch_mismatch():
    assert "batch" in _node_error("bmm", [(2, 3, 4), (3, 4, 5)])


def test_invalid_mm_dtype_mismatch():
    assert "dtype" in _node_error("mm", [(2, 3), (3, 5)], dtypes={1: torch.float16})


def test_invalid_addmm_self_not_broadcastable():
    assert "broadcast" in _node_error("addmm", [(3, 5), (2, 4), (4, 5)])


def test_invalid_linear_weight_rank():
    assert "2-D" in _node_error("linear", [(2, 8), (8,)])


def test_invalid_linear_in_features():
    assert "in_features" in _node_error("linear", [(2, 7), (5, 8)])
