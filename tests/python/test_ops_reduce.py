"""Conformance of the reduction ops (sum, mean, amax/amin, argmax/argmin, max/min.dim, var, cumsum,
softmax/log_softmax, any/all, prod) on the CPU backend against PyTorch."""
import ctypes
import math

import pytest
import torch

from conformance import FLOAT_DTYPES, assert_matches, check_op, randn, run_op
from tensorc_ct import Graph, TcError, lib

aten = torch.ops.aten
INT_DTYPES = [torch.int64, torch.int32, torch.int8, torch.uint8]

# (shape, dims): last dims (rows), leading dims (columns), non-adjacent dims (general path),
# negative dims, all dims, size-1 and size-0 dims
DIM_CASES = [
    ((2, 3, 4), [1]),
    ((2, 3, 4), [-1]),
    ((2, 3, 4), [0]),
    ((2, 3, 4), [0, 2]),
    ((2, 3, 4), [-1, 0]),
    ((4, 3, 5, 2), [1, 3]),
    ((4, 3, 5, 2), [0, 1]),
    ((4, 3, 5, 2), [2, 3]),
    ((4, 3, 5, 2), [0, 2, 3]),
    ((2, 1, 4), [1]),
    ((7,), [0]),
    ((2, 3, 4), None),
    ((2, 3, 4), []),
    ((3, 70, 5), [1]),
    ((2, 130, 3), [0]),
]
EMPTY_CASES = [((3, 0, 2), [1]), ((0, 3), [1]), ((3, 0), None), ((2, 0, 3), [0, 1])]


def ints(shape, dtype, seed=0, lo=-5, hi=6):
    gen = torch.Generator().manual_seed(seed)
    if dtype == torch.uint8:
        lo = 0
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=gen).bool()
    return torch.randint(lo, hi, shape, generator=gen).to(dtype)


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape,dims", DIM_CASES + EMPTY_CASES)
def test_sum_and_mean_float(shape, dims, dtype, keepdim):
    x = randn(*shape, dtype=dtype)
    check_op("sum.dim_IntList", lambda t: aten.sum.dim_IntList(t, dims, keepdim), [x], dims, keepdim)
    check_op("mean.dim", lambda t: aten.mean.dim(t, dims, keepdim), [x], dims, keepdim)


@pytest.mark.parametrize("dtype", INT_DTYPES + [torch.bool])
@pytest.mark.parametrize("shape,dims", [((2, 3, 4), [1]), ((2, 3, 4), [0, 2]), ((4, 3), None), ((3, 0), [1])])
def test_sum_int_and_bool_give_int64(shape, dims, dtype):
    x = ints(shape, dtype)
    got = check_op("sum.dim_IntList", lambda t: aten.sum.dim_IntList(t, dims), [x], dims)
    assert got[0].dtype == torch.int64


def test_sum_default_and_dtype_argument():
    x = randn(3, 5, dtype=torch.float16)
    check_op("sum", lambda t: aten.sum.default(t), [x])
    check_op("sum", lambda t: aten.sum.default(t, dtype=torch.float32), [x], dtype=torch.float32)
    check_op("sum.dim_IntList", lambda t: aten.sum.dim_IntList(t, [1], dtype=torch.float32), [x], [1],
             dtype=torch.float32)
    i = ints((3, 4), torch.int32)
    check_op("sum.dim_IntList", lambda t: aten.sum.dim_IntList(t, [0], dtype=torch.int32), [i], [0], dtype=torch.int32)
    check_op("sum.dim_IntList", lambda t: aten.sum.dim_IntList(t, [0], dtype=torch.float32), [i], [0],
             dtype=torch.float32)
    check_op("mean.dim", lambda t: aten.mean.dim(t, [1], dtype=torch.float32), [i], [1], dtype=torch.float32)
    check_op("mean.dim", lambda t: aten.mean.dim(t, [1], True, dtype=torch.float32), [x], [1], True,
             dtype=torch.float32)


def test_integer_sum_wraps_like_pytorch():
    x = torch.tensor([2**62, 2**62, 2**62], dtype=torch.int64)
    check_op("sum.dim_IntList", lambda t: aten.sum.dim_IntList(t, [0]), [x], [0])


def test_scalar_input_reductions():
    x = torch.tensor(2.5)
    check_op("sum.dim_IntList", lambda t: aten.sum.dim_IntList(t, [0]), [x], [0])
    check_op("sum.dim_IntList", lambda t: aten.sum.dim_IntList(t, [-1], True), [x], [-1], True)
    check_op("amax", lambda t: aten.amax(t, []), [x], [])
    check_op("argmax", lambda t: aten.argmax(t, 0, True), [x], 0, True)
    check_op("var.correction", lambda t: aten.var.correction(t, None), [x], None)
    check_op("cumsum", lambda t: aten.cumsum(t, 0), [x], 0)
    check_op("_softmax", lambda t: aten._softmax(t, 0, False), [x], 0, False)


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES + INT_DTYPES)
@pytest.mark.parametrize("shape,dims", DIM_CASES + [((2, 0, 3), [0])])
def test_amax_amin(shape, dims, dtype, keepdim):
    x = randn(*shape, dtype=dtype) if dtype.is_floating_point else ints(shape, dtype)
    d = dims if dims is not None else []
    check_op("amax", lambda t: aten.amax(t, d, keepdim), [x], d, keepdim)
    check_op("amin", lambda t: aten.amin(t, d, keepdim), [x], d, keepdim)


def test_amax_amin_bool():
    x = torch.tensor([[True, False], [False, False]])
    check_op("amax", lambda t: aten.amax(t, [1]), [x], [1])
    check_op("amin", lambda t: aten.amin(t, [0]), [x], [0])


def test_extrema_propagate_nan_like_pytorch():
    nan, inf = math.nan, math.inf
    x = torch.tensor([[1.0, nan, 3.0, nan], [-inf, -inf, -inf, -inf], [2.0, 5.0, 5.0, 1.0], [nan, 1, 2, 3]])
    for dt in FLOAT_DTYPES:
        xt = x.to(dt)
        for dim in [0, 1]:
            check_op("amax", lambda t: aten.amax(t, [dim]), [xt], [dim])
            check_op("amin", lambda t: aten.amin(t, [dim]), [xt], [dim])
            check_op("argmax", lambda t: aten.argmax(t, dim), [xt], dim)
            check_op("argmin", lambda t: aten.argmin(t, dim), [xt], dim)
            check_op("max.dim", lambda t: aten.max.dim(t, dim), [xt], dim)
            check_op("min.dim", lambda t: aten.min.dim(t, dim), [xt], dim)
        check_op("argmax", lambda t: aten.argmax(t), [xt])
        check_op("_softmax", lambda t: aten._softmax(t, 1, False), [xt], 1, False)


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES + [torch.int64, torch.int32, torch.uint8])
@pytest.mark.parametrize("shape,dim", [((2, 3, 4), 1), ((2, 3, 4), -1), ((2, 3, 4), 0), ((5,), 0), ((3, 1), 1),
                                       ((0, 4), 1), ((3, 70, 5), 1), ((2, 3, 4), None)])
def test_argmax_argmin_max_min_dim(shape, dim, dtype, keepdim):
    # few distinct values: plenty of ties, which must resolve to the first index
    x = ints(shape, dtype, lo=0, hi=4).to(dtype)
    check_op("argmax", lambda t: aten.argmax(t, dim, keepdim), [x], dim, keepdim)
    check_op("argmin", lambda t: aten.argmin(t, dim, keepdim), [x], dim, keepdim)
    if dim is not None:
        check_op("max.dim", lambda t: aten.max.dim(t, dim, keepdim), [x], dim, keepdim)
        check_op("min.dim", lambda t: aten.min.dim(t, dim, keepdim), [x], dim, keepdim)


def test_argmax_ties_give_first_index():
    x = torch.tensor([[1.0, 3.0, 3.0, 2.0], [7.0, 7.0, 7.0, 7.0]])
    got = run_op("argmax", [x], 1)[0]
    assert got.tolist() == [1, 0]
    cols = torch.tensor([[2.0, 1.0, 1.0], [5.0, 5.0, 5.0]]).t().contiguous()  # down columns
    got = run_op("argmin", [cols], 0)[0]
    assert got.tolist() == [1, 0]
    values, idx = run_op("max.dim", [x], 1)
    assert values.tolist() == [3.0, 7.0] and idx.tolist() == [1, 0]


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("correction", [None, 0, 2, 0.5])
@pytest.mark.parametrize("shape,dims", [((2, 3, 4), [1]), ((2, 3, 4), [0, 2]), ((4, 3, 5, 2), [0, 1]),
                                        ((6, 5), None), ((3, 1), [1]), ((3, 0), [1]), ((3, 70, 5), [-2])])
def test_var(shape, dims, correction, dtype, keepdim):
    x = randn(*shape, dtype=dtype, scale=3.0) + 10  # offset mean: a one-pass formula would lose digits
    x = x.to(dtype)
    check_op("var.correction", lambda t: aten.var.correction(t, dims, correction=correction, keepdim=keepdim), [x],
             dims, correction=correction, keepdim=keepdim)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + INT_DTYPES + [torch.bool])
@pytest.mark.parametrize("shape,dim", [((2, 3, 4), 1), ((2, 3, 4), -1), ((2, 3, 4), 0), ((7,), 0), ((3, 0), 1),
                                       ((2, 1, 3), 1), ((3, 70, 5), 1)])
def test_cumsum(shape, dim, dtype):
    x = randn(*shape, dtype=dtype) if dtype.is_floating_point else ints(shape, dtype)
    got = check_op("cumsum", lambda t: aten.cumsum(t, dim), [x], dim)
    if not dtype.is_floating_point:
        assert got[0].dtype == torch.int64


def test_cumsum_dtype_argument():
    x = randn(4, 6, dtype=torch.float16)
    check_op("cumsum", lambda t: aten.cumsum(t, 1, dtype=torch.float32), [x], 1, dtype=torch.float32)
    i = ints((4, 6), torch.int64)
    check_op("cumsum", lambda t: aten.cumsum(t, 0, dtype=torch.int32), [i], 0, dtype=torch.int32)
    check_op("cumsum", lambda t: aten.cumsum(t, 0, dtype=torch.float32), [i], 0, dtype=torch.float32)


@pytest.mark.parametrize("op,ref", [("_softmax", aten._softmax), ("_log_softmax", aten._log_softmax)])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape,dim", [((2, 3, 4), 1), ((2, 3, 4), -1), ((2, 3, 4), 0), ((7,), 0), ((3, 0), 1),
                                       ((0, 3), 1), ((2, 1, 3), 1), ((3, 70, 5), 1), ((2, 5, 130), 1)])
def test_softmax(op, ref, shape, dim, dtype):
    x = randn(*shape, dtype=dtype, scale=4.0)
    check_op(op, lambda t: ref(t, dim, False), [x], dim, False)


@pytest.mark.parametrize("op,ref", [("_softmax", aten._softmax), ("_log_softmax", aten._log_softmax)])
def test_softmax_is_stable_for_large_and_infinite_inputs(op, ref):
    inf = math.inf
    x = torch.tensor([[1000.0, 1001.0, 999.0], [-1000.0, -1001.0, -1002.0], [-inf, 0.0, -inf], [-inf, -inf, -inf]])
    for dt in FLOAT_DTYPES:
        check_op(op, lambda t: ref(t, 1, False), [x.to(dt)], 1, False)


@pytest.mark.parametrize("op,ref", [("_softmax", aten._softmax), ("_log_softmax", aten._log_softmax)])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_softmax_half_to_float(op, ref, dtype):
    # PyTorch's CPU kernels refuse half_to_float (CUDA supports it): the reference is the f32 op on
    # the upcast input, which is what half_to_float means
    x = randn(3, 9, dtype=dtype, scale=3.0)
    got = run_op(op, [x], 1, True)[0]
    assert_matches(got, ref(x.float(), 1, False), msg=op)


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dtype", [torch.bool, torch.float32, torch.float16, torch.int32, torch.uint8])
def test_any_all(dtype, keepdim):
    x = torch.tensor([[0, 0, 0], [0, 2, 0], [1, 1, 3], [0, 0, 1]]).to(dtype)
    if dtype.is_floating_point:
        x[3, 1] = math.nan  # NaN is true
    for dim in [0, 1, -1]:
        check_op("any.dim", lambda t: aten.any.dim(t, dim, keepdim), [x], dim, keepdim)
        check_op("all.dim", lambda t: aten.all.dim(t, dim, keepdim), [x], dim, keepdim)
    for dims in [None, [0], [0, 1], []]:
        check_op("any.dims", lambda t: aten.any.dims(t, dims, keepdim), [x], dims, keepdim)
        check_op("all.dims", lambda t: aten.all.dims(t, dims, keepdim), [x], dims, keepdim)
    e = torch.zeros(3, 0).to(dtype)
    check_op("any.dim", lambda t: aten.any.dim(t, 1, keepdim), [e], 1, keepdim)
    check_op("all.dim", lambda t: aten.all.dim(t, 1, keepdim), [e], 1, keepdim)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + [torch.int64, torch.int32, torch.bool])
@pytest.mark.parametrize("shape,dim", [((2, 3, 4), 1), ((2, 3, 4), -1), ((2, 3, 4), 0), ((3, 0), 1)])
def test_prod(shape, dim, dtype):
    x = randn(*shape, dtype=dtype) if dtype.is_floating_point else ints(shape, dtype, lo=-3, hi=4)
    check_op("prod.dim_int", lambda t: aten.prod.dim_int(t, dim), [x], dim)
    check_op("prod.dim_int", lambda t: aten.prod.dim_int(t, dim, True), [x], dim, True)


# --- long rows: f32 accumulation for 16-bit storage, and the blocked path for very long rows ---

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_long_rows_accumulate_in_f32(dtype):
    # 10000 values near 1: a 16-bit accumulator would stall far below the true sum (~10000)
    x = (torch.rand(2, 10000, generator=torch.Generator().manual_seed(1)) + 0.5).to(dtype)
    want = x.double().sum(1)
    got = run_op("sum.dim_IntList", [x], [1])[0]
    assert torch.allclose(got.double(), want, rtol=1e-2), (got, want)
    check_op("sum.dim_IntList", lambda t: aten.sum.dim_IntList(t, [1]), [x], [1])
    check_op("mean.dim", lambda t: aten.mean.dim(t, [1]), [x], [1])
    check_op("var.correction", lambda t: aten.var.correction(t, [1]), [x], [1])
    check_op("_softmax", lambda t: aten._softmax(t, 1, False), [x], 1, False)
    check_op("_log_softmax", lambda t: aten._log_softmax(t, 1, False), [x], 1, False)
    check_op("cumsum", lambda t: aten.cumsum(t, 1), [x], 1, atol=0.5, rtol=1e-2)
    xt = x.t().contiguous()  # the same reductions down columns
    check_op("sum.dim_IntList", lambda t: aten.sum.dim_IntList(t, [0]), [xt], [0])
    check_op("var.correction", lambda t: aten.var.correction(t, [0]), [xt], [0])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_very_long_rows(dtype):
    x = randn(2, 300001, dtype=dtype)
    for op, ref in [("sum.dim_IntList", aten.sum.dim_IntList), ("mean.dim", aten.mean.dim),
                    ("amax", aten.amax), ("amin", aten.amin)]:
        check_op(op, lambda t: ref(t, [1]), [x], [1], atol=0.05 if op.startswith("sum") else None)
    check_op("var.correction", lambda t: aten.var.correction(t, [1]), [x], [1])
    check_op("sum.dim_IntList", lambda t: aten.sum.dim_IntList(t, None), [x], None, atol=0.1)
    y = torch.zeros(300001, dtype=dtype)
    y[[7, 100000, 250000]] = 5  # ties across blocks: the first wins
    y[200000] = -5
    assert run_op("argmax", [y])[0].item() == 7
    assert run_op("argmin", [y], 0)[0].item() == 200000
    y[123456] = math.nan
    y[280000] = math.nan
    assert run_op("argmax", [y])[0].item() == 123456
    assert math.isnan(run_op("amax", [y], [0])[0].item())
    i = ints((3, 100000), torch.int64)
    check_op("sum.dim_IntList", lambda t: aten.sum.dim_IntList(t, [1]), [i], [1])
    check_op("argmax", lambda t: aten.argmax(t, 1), [i], 1)


def test_results_do_not_depend_on_thread_count():
    if not hasattr(lib, "tc_parallel_set_threads"):
        pytest.skip("libtensorc does not export tc_parallel_set_threads")
    lib.tc_parallel_set_threads.argtypes = [ctypes.c_int]
    cases = [("sum.dim_IntList", [randn(3, 200000)], ([1],)), ("sum.dim_IntList", [randn(64, 300, 9)], ([1],)),
             ("var.correction", [randn(5, 70001)], ([1],)), ("_softmax", [randn(33, 1000)], (1, False)),
             ("mean.dim", [randn(40, 50, 60)], ([0, 2],)), ("cumsum", [randn(100, 500)], (0,))]
    try:
        for op, xs, args in cases:
            outs = []
            for n in [1, 2, 5]:
                lib.tc_parallel_set_threads(n)
                outs.append(run_op(op, xs, *args)[0])
            for o in outs[1:]:
                assert torch.equal(o, outs[0]), op
    finally:
        lib.tc_parallel_set_threads(0)


# --- invalid graphs ---

def _node_error(op, shape, *args, dtype=torch.float32, **kwargs):
    g = Graph()
    x = g.input("x", dtype, list(shape))
    with pytest.raises(TcError) as e:
        g.node(op, x, *args, name="red", **kwargs)
    msg = e.value.message
    assert "node 'red'" in msg and op.split(".")[0] in msg, msg
    return msg


def test_invalid_reductions_name_node_and_op():
    assert "out of range" in _node_error("sum.dim_IntList", (2, 3), [2])
    assert "out of range" in _node_error("amax", (2, 3), [-3])
    assert "out of range" in _node_error("argmax", (2, 3), 5)
    assert "out of range" in _node_error("cumsum", (2, 3), 2)
    assert "out of range" in _node_error("_softmax", (2, 3), -3, False)
    assert "more than once" in _node_error("sum.dim_IntList", (2, 3), [1, -1])
    assert "size 0" in _node_error("amax", (2, 0), [1])
    assert "size 0" in _node_error("max.dim", (0, 3), 0)
    assert "size 0" in _node_error("argmin", (4, 0, 2), 1)
    assert "no elements" in _node_error("argmax", (0, 3))
    assert "bool" in _node_error("argmax", (3,), dtype=torch.bool)
    assert "floating" in _node_error("mean.dim", (3,), [0], dtype=torch.int32)
    assert "floating" in _node_error("var.correction", (3,), [0], dtype=torch.int64)
    assert "floating" in _node_error("_softmax", (3,), 0, False, dtype=torch.int64)
    assert "half_to_float" in _node_error("_softmax", (3,), 0, True)


def test_empty_reduction_of_symbolic_size_fails_at_run_time():
    g = Graph()
    s = g.symbol("s0", 0, 2, 8)
    x = g.input("x", torch.float32, [3, s])
    out = g.node("amax", x, [1], name="mx")
    g.output(out)
    eng_out = g.run(randn(3, 4))[0]
    assert_matches(eng_out, aten.amax(randn(3, 4), [1]))
    with pytest.raises(TcError) as e:
        g.run(torch.zeros(3, 0))
    assert "node 'mx'" in e.value.message and "size 0" in e.value.message


def test_symbolic_batch():
    g = Graph()
    s = g.symbol("s0", 1, 4, 16)
    x = g.input("x", torch.float16, [s, 5, 6])
    total = g.node("sum.dim_IntList", x, [1, 2], True)
    mx, idx = g.node("max.dim", x, -1)
    sm = g.node("_softmax", x, 1, False)
    v = g.node("var.correction", x, [0])
    assert total.shape == ["s0", 1, 1]
    assert mx.shape == ["s0", 5] and idx.shape == ["s0", 5] and idx.dtype == torch.int64
    assert sm.shape == ["s0", 5, 6]
    assert v.shape == [5, 6]
    g.output(total, mx, idx, sm, v)
    for n in [1, 7]:
        xt = randn(n, 5, 6, dtype=torch.float16, seed=n)
        got = g.run(xt)
        want = [aten.sum.dim_IntList(xt, [1, 2], True), *aten.max.dim(xt, -1), aten._softmax(xt, 1, False),
                aten.var.correction(xt, [0])]
        for a, b in zip(got, want):
            assert_matches(a, b, msg=f"batch {n}")
