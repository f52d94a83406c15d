"""Conformance of the shape/copy ops (view, permute, expand, cat, slice, select, squeeze, split,
repeat, dtype conversion and the identity-like ops) on the CPU backend against PyTorch, with
symbolic sizes and invalid graphs."""
import ctypes

import pytest
import torch

from conformance import FLOAT_DTYPES, assert_matches, check_op, randn
from tensorc_ct import Graph, TcError, lib

aten = torch.ops.aten
INT64_MAX = 2**63 - 1
ALL_DTYPES = FLOAT_DTYPES + [torch.int64, torch.bool]


def make(shape, dtype, seed=0):
    """Distinct values in every dtype (bools alternate), so a wrong element order shows."""
    if dtype == torch.bool:
        return (torch.arange(int(torch.tensor(shape).prod()) if shape else 1) % 3 == 0).reshape(shape)
    if dtype == torch.int64:
        n = int(torch.tensor(shape).prod()) if shape else 1
        return (torch.arange(n, dtype=torch.int64) * 7 - 5).reshape(shape)
    return randn(*shape, dtype=dtype, seed=seed)


def check_list(op, ref, tensors, *args, **kwargs):
    """Like check_op for ops taking one Tensor[] argument first (cat)."""
    g = Graph()
    vals = [g.input(f"in{i}", t.dtype, list(t.shape)) for i, t in enumerate(tensors)]
    out = g.node(op, vals, *args, **kwargs)
    g.output(out)
    got = g.run(*tensors)[0]
    want = ref(list(tensors), *args, **kwargs)
    assert_matches(got, want, msg=f"{op} {[tuple(t.shape) for t in tensors]} {args}")
    return out


# --- views ----------------------------------------------------------------------------------------

VIEWS = [((2, 3, 4), [6, 4]), ((2, 3, 4), [-1]), ((2, 3, 4), [4, -1, 2]), ((2, 3, 4), [-1, 12]),
         ((0, 3), [-1, 3]), ((0, 3), [3, 0, 5]), ((), [1, 1]), ((1,), []), ((5, 1), [1, 5, 1])]


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("shape,size", VIEWS)
@pytest.mark.parametrize("op", ["view", "_unsafe_view", "reshape"])
def test_view(op, shape, size, dtype):
    ref = {"view": aten.view.default, "_unsafe_view": aten._unsafe_view.default, "reshape": aten.reshape.default}[op]
    check_op(op, lambda x: ref(x, size), [make(shape, dtype)], size)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("shape,start,end", [((2, 3, 4), 0, -1), ((2, 3, 4), 1, 2), ((2, 3, 4), -2, -1),
                                             ((2, 0, 4), 0, 1), ((), 0, -1), ((5,), 0, 0)])
def test_flatten(shape, start, end, dtype):
    check_op("flatten.using_ints", lambda x: aten.flatten.using_ints(x, start, end), [make(shape, dtype)], start, end)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("op,args", [("squeeze.dims", ([0, -1],)), ("squeeze.dims", ([1],)), ("squeeze.dims", ([],)),
                                     ("squeeze.dim", (2,)), ("squeeze.dim", (-3,)), ("squeeze", ()),
                                     ("unsqueeze", (0,)), ("unsqueeze", (-1,)), ("unsqueeze", (2,)),
                                     ("unsqueeze", (-4,))])
def test_squeeze_unsqueeze(op, args, dtype):
    name, _, ov = op.partition(".")
    ref = getattr(getattr(aten, name), ov or "default")
    x = make((1, 3, 1), dtype)
    check_op(op, lambda x: ref(x, *args), [x], *args)


def test_squeeze_scalar_and_zero_size():
    check_op("squeeze.dims", lambda x: aten.squeeze.dims(x, [0]), [torch.tensor(2.5)], [0])
    check_op("squeeze", aten.squeeze.default, [torch.zeros(1, 0, 1)])
    check_op("unsqueeze", lambda x: aten.unsqueeze(x, 0), [torch.tensor(2.5)], 0)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("op", ["clone", "alias", "detach", "contiguous", "lift_fresh_copy"])
def test_identity_ops(op, dtype):
    ref = getattr(aten, op).default
    for shape in [(2, 3), (), (0, 4)]:
        check_op(op, ref, [make(shape, dtype)])


def test_clone_ignores_memory_format():
    x = make((2, 3, 4, 5), torch.float32)
    check_op("clone", lambda x: aten.clone(x, memory_format=torch.channels_last).contiguous(), [x],
             memory_format=None)


# --- permutations ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("shape,dims", [((2, 3, 4), [2, 0, 1]), ((2, 3, 4), [-1, 0, -2]), ((2, 3, 4, 5), [0, 2, 1, 3]),
                                        ((2, 3, 4, 5), [3, 2, 1, 0]), ((0, 3), [1, 0]), ((), []), ((1, 5, 1), [2, 1, 0]),
                                        ((7,), [0])])
def test_permute(shape, dims, dtype):
    check_op("permute", lambda x: aten.permute(x, dims), [make(shape, dtype)], dims)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_t_and_transpose(dtype):
    for shape in [(3, 4), (5,), (), (0, 2)]:
        check_op("t", aten.t.default, [make(shape, dtype)])
    for shape, a, b in [((2, 3, 4), 0, 2), ((2, 3, 4), -1, 1), ((2, 3, 4), 1, 1), ((), 0, -1), ((3, 0, 2), 0, 1)]:
        check_op("transpose.int", lambda x: aten.transpose.int(x, a, b), [make(shape, dtype)], a, b)


# --- broadcasting copies --------------------------------------------------------------------------

EXPANDS = [((3, 1), [2, 3, 4]), ((1,), [5]), ((3, 1), [-1, 0]), ((2, 1, 4), [2, 3, -1]), ((2, 3), [4, -1, -1]),
           ((), [3, 2]), ((1, 1), [1, 1]), ((0, 1), [0, 3])]


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("shape,size", EXPANDS)
def test_expand(shape, size, dtype):
    check_op("expand", lambda x: aten.expand(x, size), [make(shape, dtype)], size)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("shape,rep", [((2, 3), [2, 1]), ((2, 3), [2, 1, 3]), ((3,), [0, 2]), ((), [2, 3]),
                                       ((2, 1, 2), [1, 3, 2]), ((0, 2), [3, 1])])
def test_repeat(shape, rep, dtype):
    check_op("repeat", lambda x: aten.repeat(x, rep), [make(shape, dtype)], rep)


# --- cat and split --------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("shapes,dim", [([(2, 3), (4, 3)], 0), ([(2, 3), (2, 5), (2, 1)], 1), ([(2, 3), (2, 5)], -1),
                                        ([(2, 3, 4), (2, 1, 4)], -2), ([(2, 0), (2, 3)], 1), ([(0, 3), (0, 3)], 0),
                                        ([(3,)], 0), ([(1, 2, 3)] * 5, 2)])
def test_cat(shapes, dim, dtype):
    ts = [make(s, dtype, seed=i) for i, s in enumerate(shapes)]
    check_list("cat", aten.cat.default, ts, dim)


def test_cat_skips_legacy_empty_tensors():
    a, b = make((2, 3), torch.float32), make((2, 4), torch.float32, seed=1)
    check_list("cat", aten.cat.default, [torch.empty(0), a, torch.empty(0), b], 1)
    check_list("cat", aten.cat.default, [torch.empty(0), torch.empty(0)], 0)


@pytest.mark.parametrize("da,db", [(torch.int64, torch.float16), (torch.bool, torch.int32), (torch.float16, torch.bfloat16),
                                   (torch.float32, torch.bfloat16), (torch.int64, torch.bool)])
def test_cat_promotes_types(da, db):
    a, b = make((2, 3), da), make((2, 2), db, seed=1)
    check_list("cat", aten.cat.default, [a, b], 1)
    check_list("cat", aten.cat.default, [torch.empty(0, dtype=torch.float64), a], 0)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("shape,sizes,dim", [((5, 3), [2, 3], 0), ((2, 7), [1, 0, 6], -1), ((2, 6, 2), [6], 1),
                                             ((0, 4), [0], 0), ((4, 0), [1, 3], 0)])
def test_split_with_sizes(shape, sizes, dim, dtype):
    check_op("split_with_sizes", lambda x: aten.split_with_sizes(x, sizes, dim), [make(shape, dtype)], sizes, dim)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("shape,size,dim", [((5, 3), 2, 0), ((2, 6), 3, 1), ((2, 6), 10, -1), ((0, 3), 2, 0),
                                            ((0, 3), 0, 0), ((4, 2), 1, 0)])
def test_split(shape, size, dim, dtype):
    check_op("split.Tensor", lambda x: aten.split.Tensor(x, size, dim), [make(shape, dtype)], size, dim)


# --- slicing and selecting ------------------------------------------------------------------------

SLICES = [(0, None, None, 1), (0, 1, None, 1), (0, None, -1, 1), (1, 1, 4, 2), (1, -3, None, 1), (1, 2, INT64_MAX, 1),
          (-1, 0, 3, 2), (0, 10, 20, 1), (0, -20, 2, 1), (1, 4, 2, 1), (1, None, None, 3), (-1, -100, 100, 4),
          (0, 1, 1, 1)]


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("dim,start,end,step", SLICES)
def test_slice(dim, start, end, step, dtype):
    x = make((4, 5, 3), dtype)
    check_op("slice.Tensor", lambda x: aten.slice.Tensor(x, dim, start, end, step), [x], dim, start, end, step)


def test_slice_zero_size_dim():
    x = make((0, 5), torch.float32)
    check_op("slice.Tensor", lambda x: aten.slice.Tensor(x, 1, 1, 3), [x], 1, 1, 3)
    check_op("slice.Tensor", lambda x: aten.slice.Tensor(x, 0, 0, 3), [x], 0, 0, 3)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("dim,index", [(0, 0), (0, -1), (1, 4), (-1, -3), (2, 1), (1, -5)])
def test_select(dim, index, dtype):
    x = make((4, 5, 3), dtype)
    check_op("select.int", lambda x: aten.select.int(x, dim, index), [x], dim, index)
    check_op("select.int", lambda x: aten.select.int(x, 0, 0), [make((1,), dtype)], 0, 0)


# --- dtype conversion -----------------------------------------------------------------------------

CAST_SRC = {
    torch.float32: torch.tensor([[1.7, -1.7, 0.0, -0.0], [2.5, -2.5, 1e-3, 300.7]]),
    torch.float16: torch.tensor([[1.5, -1.5, 0.0, 7.0]], dtype=torch.float16),
    torch.bfloat16: torch.tensor([[1.5, -3.5, 0.0, 100.0]], dtype=torch.bfloat16),
    torch.int64: torch.tensor([[0, -3, 5, 2**40]], dtype=torch.int64),
    torch.int32: torch.tensor([[0, -3, 5, 70000]], dtype=torch.int32),
    torch.bool: torch.tensor([[True, False, True]]),
}
CAST_DST = [torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.bool, torch.int8]


@pytest.mark.parametrize("dst", CAST_DST)
@pytest.mark.parametrize("src", list(CAST_SRC))
def test_to_copy(src, dst):
    x = CAST_SRC[src]
    if dst == torch.int8 and src in (torch.float32, torch.int64, torch.int32):
        x = x.clamp(-100, 100)  # out-of-range float to int8 is undefined behaviour in C and PyTorch alike
    check_op("_to_copy", lambda x: aten._to_copy(x, dtype=dst), [x], dtype=dst)


def test_to_copy_wraps_to_uint8_and_keeps_dtype_when_none():
    x = torch.tensor([300.7, -1.7, 255.9, 0.5])
    check_op("_to_copy", lambda x: aten._to_copy(x, dtype=torch.uint8), [x], dtype=torch.uint8)
    check_op("_to_copy", lambda x: aten._to_copy(x), [make((2, 3), torch.bfloat16)])
    check_op("_to_copy", lambda x: aten._to_copy(x, dtype=torch.float16), [make((0, 3), torch.float32)],
             dtype=torch.float16, layout=None, device=None, memory_format=None)


# --- symbolic sizes -------------------------------------------------------------------------------

def sym_expr(g, op, a, b):
    """a op b as a size expression of graph g (0 add, 1 sub, 2 mul, 3 floordiv, 4 mod)."""
    f = lib.tc_graph_sym_expr
    f.restype, f.argtypes = ctypes.c_int, [ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_int64,
                                           ctypes.POINTER(ctypes.c_int64)]
    out = ctypes.c_int64()
    assert f(g.ptr, op, a, b, ctypes.byref(out)) == 0
    return int(out.value)


def run_at(g, inputs, wants):
    got = g.run(*inputs)
    assert len(got) == len(wants)
    for i, (a, b) in enumerate(zip(got, wants)):
        assert_matches(a, b, msg=f"output {i}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_symbolic_view_round_trip(dtype):
    g = Graph()
    s0 = g.symbol("s0", 1, 4, 16)
    x = g.input("x", dtype, [s0, 3, 4])
    a = g.node("view", x, [-1, 12])
    assert a.shape == ["s0", 12]
    b = g.node("view", a, [sym_expr(g, 2, s0, 3), 4])
    assert b.shape == ["3*s0", 4]
    c = g.node("view", b, [-1, 4])
    assert c.shape == ["3*s0", 4]
    d = g.node("view", x, [s0, -1])
    assert d.shape == ["s0", 12]
    e = g.node("view", x, [2, -1, 6])
    assert e.shape[0] == 2 and e.shape[2] == 6
    g.output(a, b, c, d)
    for n in (2, 5):
        t = make((n, 3, 4), dtype)
        run_at(g, [t], [t.view(-1, 12), t.view(n * 3, 4), t.view(n * 3, 4), t.view(n, 12)])


def test_symbolic_cat():
    g = Graph()
    s0, s1 = g.symbol("s0", 1, 4, 16), g.symbol("s1", 0, 4, 16)
    a, b = g.input("a", torch.float32, [s0, 2]), g.input("b", torch.float32, [s0, 3])
    c = g.input("c", torch.float32, [s1, 2])
    y1 = g.node("cat", [a, b], 1)
    assert y1.shape == ["s0", 5]
    y2 = g.node("cat", [a, c], 0)
    assert y2.shape == ["s0 + s1", 2]
    y3 = g.node("cat", [a, c, a], -2)
    assert y3.shape == ["2*s0 + s1", 2]
    g.output(y1, y2, y3)
    for n, m in ((2, 3), (5, 0)):
        ta, tb, tc = make((n, 2), torch.float32), make((n, 3), torch.float32, 1), make((m, 2), torch.float32, 2)
        run_at(g, [ta, tb, tc], [torch.cat([ta, tb], 1), torch.cat([ta, tc]), torch.cat([ta, tc, ta])])


def test_symbolic_expand_permute_repeat():
    g = Graph()
    s0 = g.symbol("s0", 1, 4, 16)
    x = g.input("x", torch.float32, [s0, 1, 3])
    y = g.input("y", torch.float32, [1, 3])
    e1 = g.node("expand", x, [2, -1, 4, 3])
    assert e1.shape == [2, "s0", 4, 3]
    e2 = g.node("expand", y, [s0, -1])
    assert e2.shape == ["s0", 3]
    p = g.node("permute", x, [2, 0, 1])
    assert p.shape == [3, "s0", 1]
    r = g.node("repeat", x, [2, 1, 2])
    assert r.shape == ["2*s0", 1, 6]
    g.output(e1, e2, p, r)
    for n in (1, 6):
        tx, ty = make((n, 1, 3), torch.float32), make((1, 3), torch.float32, 1)
        run_at(g, [tx, ty], [tx.expand(2, -1, 4, 3), ty.expand(n, -1), tx.permute(2, 0, 1), tx.repeat(2, 1, 2)])


def test_symbolic_slice_select_split():
    g = Graph()
    s0 = g.symbol("s0", 2, 4, 6)
    x = g.input("x", torch.float32, [s0, 6])
    a = g.node("slice.Tensor", x, 0, 1, INT64_MAX)
    assert a.shape == ["s0 - 1", 6]
    b = g.node("slice.Tensor", x, 1, 0, s0)  # symbolic end, inside the dim for every s0 in range
    assert b.shape == ["s0", "s0"]
    c = g.node("slice.Tensor", x, 0, 0, -1, 1)
    assert c.shape == ["s0 - 1", 6]
    d = g.node("slice.Tensor", x, 0, None, None, 2)
    assert d.shape == ["((s0 + 1) // 2)", 6]
    e = g.node("select.int", x, 0, -1)
    assert e.shape == [6]
    f = g.node("split_with_sizes", x, [1, sym_expr(g, 1, s0, 1)], 0)
    assert [v.shape for v in f] == [[1, 6], ["s0 - 1", 6]]
    h = g.node("cat", [f[1], f[0]], 0)
    assert h.shape == ["s0", 6]
    g.output(a, b, c, d, e, f[0], f[1], h)
    for n in (2, 5):
        t = make((n, 6), torch.float32)
        run_at(g, [t], [t[1:], t[:, :n], t[:-1], t[::2], t[-1], t[:1], t[1:], torch.cat([t[1:], t[:1]])])


def test_symbolic_squeeze_keeps_symbolic_dims():
    g = Graph()
    s0 = g.symbol("s0", 2, 4, 8)
    x = g.input("x", torch.float32, [s0, 1, 3])
    y = g.node("squeeze.dims", x, [0, 1])
    assert y.shape == ["s0", 3]
    z = g.node("unsqueeze", y, -1)
    assert z.shape == ["s0", 3, 1]
    g.output(y, z)
    for n in (2, 7):
        t = make((n, 1, 3), torch.float32)
        run_at(g, [t], [t.squeeze(1), t.squeeze(1).unsqueeze(-1)])


def test_symbolic_runtime_check_fails_cleanly():
    # s0 must be 1 or 4 at run time; 3 is caught by the kernel with the node named
    g = Graph()
    s0 = g.symbol("s0", 1, 4, 8)
    x = g.input("x", torch.float32, [s0])
    g.output(g.node("expand", x, [2, 4], name="bcast"))
    assert g.run(torch.ones(4))[0].shape == (2, 4)
    assert g.run(torch.ones(1))[0].shape == (2, 4)
    with pytest.raises(TcError) as e:
        g.run(torch.ones(3))
    assert "node 'bcast'" in e.value.message and "expand" in e.value.message


# --- invalid graphs -------------------------------------------------------------------------------

def fails(build, *words):
    with pytest.raises(TcError) as e:
        build(Graph())
    msg = e.value.message
    assert "node '" in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


def test_invalid_graphs_name_node_and_op():
    def inp(g, shape, dtype=torch.float32):
        return g.input("x", dtype, list(shape))
    fails(lambda g: g.node("view", inp(g, (2, 3)), [4, 2], name="v"), "node 'v'", "view", "6")
    fails(lambda g: g.node("view", inp(g, (2, 3)), [-1, 4], name="v"), "view", "invalid")
    fails(lambda g: g.node("view", inp(g, (2, 3)), [-1, -1], name="v"), "view", "-1")
    fails(lambda g: g.node("view", inp(g, (0, 3)), [-1, 0], name="v"), "view", "-1")
    fails(lambda g: g.node("cat", [inp(g, (2, 3)), g.input("y", torch.float32, [3, 4])], 0, name="c"), "node 'c'",
          "cat", "dim 1")
    fails(lambda g: g.node("cat", [inp(g, (2, 3)), g.input("y", torch.float32, [2])], 0, name="c"), "cat", "rank")
    fails(lambda g: g.node("select.int", inp(g, (2, 3)), 1, 3, name="s"), "node 's'", "select.int", "out of range")
    fails(lambda g: g.node("select.int", inp(g, (2, 3)), 0, -3, name="s"), "select.int", "out of range")
    fails(lambda g: g.node("permute", inp(g, (2, 3, 4)), [0, 2, 0], name="p"), "node 'p'", "permute", "more than once")
    fails(lambda g: g.node("permute", inp(g, (2, 3, 4)), [0, 1], name="p"), "permute")
    fails(lambda g: g.node("permute", inp(g, (2, 3)), [0, 2], name="p"), "permute", "out of range")
    fails(lambda g: g.node("expand", inp(g, (2, 3)), [4, 3], name="e"), "expand", "cannot expand")
    fails(lambda g: g.node("expand", inp(g, (2, 3)), [3], name="e"), "expand", "fewer")
    fails(lambda g: g.node("expand", inp(g, (3,)), [-1, 3], name="e"), "expand", "-1")
    fails(lambda g: g.node("slice.Tensor", inp(g, (2, 3)), 0, 0, 2, 0, name="s"), "slice.Tensor", "step")
    fails(lambda g: g.node("split_with_sizes", inp(g, (5, 3)), [2, 2], name="s"), "split_with_sizes", "add up")
    fails(lambda g: g.node("split.Tensor", inp(g, (5, 3)), 0, name="s"), "split.Tensor", "split_size")
    fails(lambda g: g.node("squeeze.dims", inp(g, (1, 3)), [0, -2], name="q"), "squeeze.dims", "more than once")
    fails(lambda g: g.node("unsqueeze", inp(g, (1, 3)), 3, name="u"), "unsqueeze", "out of range")
    fails(lambda g: g.node("repeat", inp(g, (1, 3)), [2], name="r"), "repeat", "fewer")
    fails(lambda g: g.node("t", inp(g, (1, 3, 2)), name="t"), "node 't'", "rank")
    fails(lambda g: g.node("flatten.using_ints", inp(g, (1, 3, 2)), 2, 1, name="f"), "flatten", "start_dim")


def tc_dims(v):
    dims = lib.tc_value_dims(v.ptr)
    return [int(dims[i]) for i in range(lib.tc_value_rank(v.ptr))]


def test_view_divisibility_of_symbolic_sizes_is_checked_at_run_time():
    g = Graph()
    s0 = g.symbol("s0", 1, 4, 8)
    x = g.input("x", torch.float32, [s0, 3])
    y = g.node("view", x, [-1, 2], name="halve")
    assert y.shape == ["(3*s0 // 2)", 2]
    g.output(y)
    t = make((4, 3), torch.float32)
    run_at(g, [t], [t.view(-1, 2)])
    with pytest.raises(TcError) as e:
        g.run(make((3, 3), torch.float32))
    assert "node 'halve'" in e.value.message and "view" in e.value.message


def test_invalid_symbolic_graphs():
    def sym_input(g, shape):
        return g.input("x", torch.float32, [g.symbol("s0", 1, 4, 8) if d == "s0" else d for d in shape])
    fails(lambda g: g.node("view", sym_input(g, ("s0", 3)), [4, -1, 2, 0], name="v"), "view", "-1")
    def wrong_numel(g):
        x = sym_input(g, ("s0", 3))
        return g.node("view", x, [tc_dims(x)[0], 4], name="v")
    fails(wrong_numel, "view", "invalid", "3*s0")
    fails(lambda g: g.node("split.Tensor", sym_input(g, ("s0", 3)), 2, name="s"), "split.Tensor", "depend")
    fails(lambda g: g.node("select.int", sym_input(g, ("s0", 3)), 0, 8, name="s"), "select.int", "out of range")
