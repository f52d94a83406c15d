"""Conformance of the normalization ops (batch norm with running statistics, layer norm, group norm)
on the CPU backend against PyTorch.

The statistics outputs follow torch.export (the meta functions, which match CUDA), not PyTorch's
CPU kernels: batch norm returns the running mean and 1/sqrt(running_var + eps) as [C] f32 (CPU
returns empty tensors), and layer norm returns mean/rstd in f32 for f16/bf16 inputs (CPU returns
the input dtype). The tests check those outputs against values computed here from the definition."""
import math

import pytest
import torch

from conformance import FLOAT_DTYPES, TOL, assert_matches, randn, run_op
from tensorc_ct import Graph, TcError

aten = torch.ops.aten


def _params(C, dtype, seed=1):
    w = randn(C, dtype=dtype, seed=seed)
    b = randn(C, dtype=dtype, seed=seed + 1)
    return w, b


# --- batch norm ---

@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("stats_f32", [True, False])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (4, 3), (2, 3, 7), (1, 5, 1, 1), (0, 3, 2, 2), (2, 3, 0, 4),
                                   (2, 3, 2, 2, 2)])
def test_batch_norm_no_training(shape, dtype, stats_f32, affine):
    C = shape[1]
    x = randn(*shape, dtype=dtype, scale=2.0)
    sdt = torch.float32 if stats_f32 else dtype
    rm = randn(C, dtype=sdt, seed=3)
    rv = (randn(C, dtype=torch.float32, seed=4).abs() + 0.5).to(sdt)
    w, b = _params(C, sdt) if affine else (None, None)  # PyTorch mixes only with all parameters f32
    ins = [x] + ([w, b] if affine else []) + [rm, rv]
    g = Graph()
    vals = [g.input(f"in{i}", t.dtype, list(t.shape)) for i, t in enumerate(ins)]
    xv = vals[0]
    wv, bv = (vals[1], vals[2]) if affine else (None, None)
    outs = g.node("_native_batch_norm_legit_no_training", xv, wv, bv, vals[-2], vals[-1], 0.1, 1e-5)
    assert [o.shape for o in outs[1:]] == [[C], [C]] and outs[1].dtype == torch.float32
    g.output(*outs)
    got = g.run(*ins)
    want = aten._native_batch_norm_legit_no_training(x, w, b, rm, rv, 0.1, 1e-5)
    assert_matches(got[0], want[0], msg="batch norm output")
    assert_matches(got[1], rm.float(), msg="save_mean")
    assert_matches(got[2], torch.rsqrt(rv.float() + 1e-5), msg="save_invstd")


# --- layer norm ---

LN_CASES = [((2, 3, 8), [8]), ((2, 3, 8), [3, 8]), ((4, 5), [4, 5]), ((2, 1, 6), [6]), ((3, 1), [1]),
            ((0, 5), [5]), ((2, 3, 10000), [10000]), ((6, 33), [33])]


@pytest.mark.parametrize("affine", ["both", "weight", "none"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape,ns", LN_CASES)
def test_layer_norm(shape, ns, dtype, affine):
    x = (randn(*shape, dtype=torch.float32, scale=3.0) + 5.0).to(dtype)  # offset mean: stability
    w = randn(*ns, dtype=dtype, seed=1) if affine != "none" else None
    b = randn(*ns, dtype=dtype, seed=2) if affine == "both" else None
    ins = [t for t in (x, w, b) if t is not None]
    g = Graph()
    vals = [g.input(f"in{i}", t.dtype, list(t.shape)) for i, t in enumerate(ins)]
    wv = vals[1] if w is not None else None
    bv = vals[2] if b is not None else None
    outs = g.node("native_layer_norm", vals[0], ns, wv, bv, 1e-5)
    g.output(*outs)
    got = g.run(*ins)
    want = aten.native_layer_norm(x, ns, w, b, 1e-5)
    assert_matches(got[0], want[0], msg="layer norm output")
    # statistics from the definition, in f64, with the shape PyTorch gives
    stat_dtype = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    axes = list(range(x.dim() - len(ns), x.dim()))
    xd = x.double()
    mean = xd.mean(axes, keepdim=True)
    rstd = torch.rsqrt(((xd - mean) ** 2).mean(axes, keepdim=True) + 1e-5)
    assert tuple(want[1].shape) == tuple(mean.shape)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else {}
    assert_matches(got[1], mean.to(stat_dtype), msg="mean", **tol)
    assert_matches(got[2], rstd.to(stat_dtype), msg="rstd", **tol)


# --- group norm ---

@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape,group", [((2, 6, 4, 5), 3), ((2, 6, 4, 5), 1), ((2, 6, 4, 5), 6), ((3, 4, 7), 2),
                                         ((2, 8), 4), ((1, 4, 100, 100), 2), ((0, 4, 3), 2)])
def test_group_norm(shape, group, dtype, affine):
    N, C = shape[0], shape[1]
    HxW = math.prod(shape[2:])
    x = (randn(*shape, dtype=torch.float32, scale=2.0) - 3.0).to(dtype)
    w, b = _params(C, dtype) if affine else (None, None)
    ins = [x] + ([w, b] if affine else [])
    g = Graph()
    vals = [g.input(f"in{i}", t.dtype, list(t.shape)) for i, t in enumerate(ins)]
    wv, bv = (vals[1], vals[2]) if affine else (None, None)
    outs = g.node("native_group_norm", vals[0], wv, bv, N, C, HxW, group, 1e-5)
    g.output(*outs)
    got = g.run(*ins)
    want = aten.native_group_norm(x, w, b, N, C, HxW, group, 1e-5)
    for i, (a, e) in enumerate(zip(got, want)):
        tol = dict(rtol=2e-2, atol=2e-2) if i and dtype != torch.float32 else {}  # 16-bit rstd of a ~unit var
        assert_matches(a, e, msg=f"group norm output {i}", **tol)


def test_norms_accumulate_in_f32_for_long_rows():
    # 16-bit inputs with a large common offset: 16-bit accumulation of the mean would lose the
    # variance entirely
    x = (randn(2, 10000, scale=1.0) + 100.0).to(torch.float16)
    got = run_op("native_layer_norm", [x], [10000], None, None, 1e-5)
    want = aten.native_layer_norm(x.float(), [10000], None, None, 1e-5)
    assert_matches(got[0], want[0].half(), msg="output")
    assert_matches(got[2], want[2], rtol=1e-2, msg="rstd")


# --- invalid graphs ---

def _node_error(op, shapes, *args, **kwargs):
    g = Graph()
    vals = [g.input(f"in{i}", torch.float32, list(s)) if s is not None else None for i, s in enumerate(shapes)]
    with pytest.raises(TcError) as e:
        g.node(op, *vals, *args, name="nrm", **kwargs)
    msg = e.value.message
    assert "node 'nrm'" in msg and op in msg, msg
    return msg


def test_invalid_norms_name_node_and_op():
    msg = _node_error("native_layer_norm", [(2, 3, 4)], [5], None, None, 1e-5)
    assert "normalized_shape" in msg and "trailing" in msg
    assert "normalized_shape" in _node_error("native_layer_norm", [(2, 3, 4)], [2, 3, 4, 5], None, None, 1e-5)
    g = Graph()
    x, w = g.input("x", torch.float32, [2, 3, 4]), g.input("w", torch.float32, [3])
    with pytest.raises(TcError) as e:
        g.node("native_layer_norm", x, [4], w, None, 1e-5, name="nrm")
    assert "node 'nrm'" in e.value.message and "weight must have the normalized_shape" in e.value.message
    assert "divisible" in _node_error("native_group_norm", [(2, 6, 4)], None, None, 2, 6, 4, 4, 1e-5)
    assert "C = 5" in _node_error("native_group_norm", [(2, 6, 4)], None, None, 2, 5, 4, 5, 1e-5)
    assert "HxW" in _node_error("native_group_norm", [(2, 6, 4)], None, None, 2, 6, 5, 3, 1e-5)
    assert "group must be positive" in _node_error("native_group_norm", [(2, 6, 4)], None, None, 2, 6, 4, 0, 1e-5)
    assert "running_mean" in _node_error("_native_batch_norm_legit_no_training", [(2, 3, 4), None, None, (4,), (3,)],
                                         0.1, 1e-5)
    assert "rank >= 2" in _node_error("_native_batch_norm_legit_no_training", [(3,), None, None, (3,), (3,)],
                                      0.1, 1e-5)
    g = Graph()
    x = g.input("x", torch.int32, [2, 4])
    with pytest.raises(TcError) as e:
        g.node("native_layer_norm", x, [4], None, None, 1e-5, name="nrm")
    assert "node 'nrm'" in e.value.message and "floating" in e.value.message


def test_symbolic_batch():
    g = Graph()
    s = g.symbol("s0", 1, 4, 16)
    x = g.input("x", torch.bfloat16, [s, 6, 8])
    w = g.input("w", torch.bfloat16, [8])
    y, mean, rstd = g.node("native_layer_norm", x, [8], w, None, 1e-5)
    gy, gm, gr = g.node("native_group_norm", x, None, None, s, 6, 8, 3, 1e-5)
    rm = g.input("rm", torch.float32, [6])
    rv = g.input("rv", torch.float32, [6])
    by, _, _ = g.node("_native_batch_norm_legit_no_training", x, None, None, rm, rv, 0.1, 1e-5)
    assert y.shape == ["s0", 6, 8] and mean.shape == ["s0", 6, 1] and mean.dtype == torch.float32
    assert gm.shape == ["s0", 3] and by.shape == ["s0", 6, 8]
    g.output(y, rstd, gy, gm, by)
    wt = randn(8, dtype=torch.bfloat16, seed=9)
    rmt, rvt = randn(6, seed=10), randn(6, seed=11).abs() + 0.5
    for n in [1, 5]:
        xt = randn(n, 6, 8, dtype=torch.bfloat16, seed=n)
        got = g.run(xt, wt, rmt, rvt)
        ln = aten.native_layer_norm(xt.float(), [8], wt.float(), None, 1e-5)
        gn = aten.native_group_norm(xt, None, None, n, 6, 8, 3, 1e-5)
        bn = aten._native_batch_norm_legit_no_training(xt, None, None, rmt, rvt, 0.1, 1e-5)
        assert_matches(got[0], ln[0].bfloat16(), msg=f"ln {n}")
        assert_matches(got[1], ln[2], rtol=1e-2, msg=f"ln rstd {n}")
        assert_matches(got[2], gn[0], msg=f"gn {n}")
        assert_matches(got[3], gn[1], msg=f"gn mean {n}")
        assert_matches(got[4], bn[0], msg=f"bn {n}")


def test_symbolic_group_norm_checks_channels_at_run_time():
    g = Graph()
    c = g.symbol("c", 1, 6, 16)
    x = g.input("x", torch.float32, [2, c, 4])
    y = g.node("native_group_norm", x, None, None, 2, c, 4, 3, 1e-5, name="gn")[0]
    g.output(y)
    assert_matches(g.run(randn(2, 6, 4))[0], aten.native_group_norm(randn(2, 6, 4), None, None, 2, 6, 4, 3, 1e-5)[0])
    with pytest.raises(TcError) as e:
        g.run(randn(2, 5, 4))
    assert "node 'gn'" in e.value.message and "divisible" in e.value.message
