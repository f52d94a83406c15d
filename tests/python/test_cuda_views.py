"""Zero-copy views in the CUDA executor (TENSORC_CUDA_VIEWS, default on; src/backend/cuda/views.c):
chains of view-like nodes run as aliases, strided views read by attention, or one gather from the
start of the chain. Every graph here is checked on the GPU against PyTorch applying the same ops
(view chains over 0, 1, 2, ... are exact) or against the CPU backend (attention), with the
switch on and off, and with graph outputs, several readers and dynamic shapes in the chain."""
import ctypes

import pytest
import torch
import torch.nn.functional as F

import tensorc_ct
from conformance import assert_matches, randn
from tensorc_ct import Graph, lib
from test_ops_shape import sym_expr

_why = tensorc_ct.cuda_unavailable_reason()
needs_cuda = pytest.mark.skipif(_why is not None, reason=f"CUDA view tests: {_why}")
_has_plan = hasattr(lib, "tc_cuda_describe_views")
needs_plan = pytest.mark.skipif(not _has_plan, reason="libtensorc was built without the CUDA backend "
                                "(no tc_cuda_describe_views)")
if _has_plan:
    lib.tc_cuda_describe_views.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                                           ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]
    lib.tc_cuda_describe_views.restype = ctypes.c_int


def describe_views(g):
    """{step name: what the executor does with it} for the view-like steps of g, and the number of
    gathers (tc_cuda_describe_views: no GPU needed)."""
    buf = ctypes.create_string_buffer(65536)
    skipped, gathers = ctypes.c_int(), ctypes.c_int()
    st = lib.tc_cuda_describe_views(g.ptr, buf, len(buf), ctypes.byref(skipped), ctypes.byref(gathers))
    assert st == 0, buf.value.decode()
    lines = [line.split(": ", 1) for line in buf.value.decode().splitlines()]
    return {name: what for name, what in lines}, gathers.value


@pytest.fixture(params=["on", "off"])
def views(request, monkeypatch):
    monkeypatch.setenv("TENSORC_CUDA_VIEWS", "1" if request.param == "on" else "0")
    return request.param


def mha_in_proj_chain(g, qkv, L, B, E):
    """nn.MultiheadAttention's split of the packed projection [L, B, 3E] into q, k, v [B, H, L, D]
    (H = 2, as torch.export writes it for batch_first=False)."""
    H, D = 2, E // 2
    v1 = g.node("view", qkv, [L, B, 3, E])
    v2 = g.node("unsqueeze", v1, 0)
    v3 = g.node("permute", v2, [3, 1, 2, 0, 4])
    v4 = g.node("squeeze.dims", v3, [-2])
    v5 = g.node("clone", v4, name="packed")
    parts = []
    for i in range(3):
        s = g.node("select.int", v5, 0, i)
        p = g.node("permute", g.node("view", s, [L, B * H, D]), [1, 0, 2])
        parts.append(g.node("view", p, [B, H, L, D]))
    return parts, v5


def mha_reference(qkv, L, B, E):
    H, D = 2, E // 2
    x = qkv.view(L, B, 3, E).unsqueeze(0).permute(3, 1, 2, 0, 4).squeeze(-2).contiguous()
    return [x[i].view(L, B * H, D).permute(1, 0, 2).reshape(B, H, L, D) for i in range(3)], x


def mha_graph(L, B, E, packed_output=False):
    g = Graph()
    qkv = g.input("qkv", torch.float16, [L, B, 3 * E])
    (q, k, v), packed = mha_in_proj_chain(g, qkv, L, B, E)
    o = g.node("scaled_dot_product_attention", q, k, v, name="attn")
    back = g.node("permute", o, [2, 0, 1, 3], name="back")
    w = g.constant("w", randn(E, E, seed=2, scale=0.3).half())
    g.output(g.node("mm", g.node("view", back, [L * B, E], name="rows"), w, name="proj"))
    if packed_output:
        g.output(packed)
    return g


@needs_plan
def test_the_attention_pattern_is_planned_without_copies_but_one():
    """MultiheadAttention's export at batch 3: the packed projection is gathered once, at the
    model's clone (merging the batch with the heads across its stride needs memory); q, k and v
    are aliases and strided views of it that attention reads in place; attention writes the
    permute after it; the view into the out-projection is an alias."""
    plan, gathers = describe_views(mha_graph(7, 3, 16))
    assert gathers == 1, plan
    assert plan["packed"] == "gather", plan
    assert plan["attn"] == "writes the permute after it" and plan["back"] == "written by the step before", plan
    assert plan["rows"] == "alias", plan
    # every other view-like step (the split's 4 nodes, and select, view, permute, view per part)
    # runs nothing: all 20 are listed, none runs its own kernel
    assert len(plan) == 20, plan
    assert all(what in ("alias", "strided view") for name, what in plan.items() if name.startswith("n")), plan
    # at batch 1 nothing needs memory: the heads split and merge without crossing a stride
    plan, gathers = describe_views(mha_graph(7, 1, 16))
    assert gathers == 0 and plan["packed"] == "strided view", plan
    # a graph output is gathered into its own buffer
    plan, gathers = describe_views(mha_graph(7, 1, 16, packed_output=True))
    assert plan["packed"] == "gather" and gathers == 1, plan


@needs_plan
def test_selects_slices_and_a_dropout_clone_are_views(monkeypatch):
    g = Graph()
    x = g.input("x", torch.float16, [4, 6, 8])
    s = g.node("select.int", x, 0, 1, name="sel")                   # contiguous: an alias
    sl = g.node("slice.Tensor", x, 2, 0, 8, 2, name="every_other")  # strided
    t = g.node("permute", x, [1, 0, 2], name="batch_first")
    c = g.node("clone", t, name="dropout")                          # read by an add: stays strided
    r = g.input("r", torch.float16, [6, 4, 8])
    g.output(g.node("neg", s), g.node("mul.Scalar", sl, 2.0), g.node("add.Tensor", r, c))
    plan, gathers = describe_views(g)
    assert plan == {"sel": "alias", "every_other": "strided view", "batch_first": "strided view",
                    "dropout": "strided view"}, plan
    assert gathers == 0
    monkeypatch.setenv("TENSORC_CUDA_VIEWS", "0")
    assert describe_views(g) == ({}, 0)


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_attention_over_views_matches_cpu(views, dtype):
    """The exported MultiheadAttention pattern: q, k, v are strided views of one gathered buffer,
    the output goes back through permute and view into a matrix product."""
    L, B, E = 7, 3, 16
    g = Graph()
    qkv = g.input("qkv", dtype, [L, B, 3 * E])
    (q, k, v), packed = mha_in_proj_chain(g, qkv, L, B, E)
    o = g.node("scaled_dot_product_attention", q, k, v)
    o2 = g.node("view", g.node("permute", o, [2, 0, 1, 3]), [L * B, E])
    w = g.constant("w", randn(E, E, seed=2, scale=0.3).to(dtype))
    g.output(g.node("mm", o2, w), packed)
    x = randn(L, B, 3 * E, seed=1).to(dtype)
    got = g.run(x, backend="cuda")
    want = g.run(x, backend="cpu")
    assert_matches(got[0], want[0], msg=f"attention over views ({dtype}, views {views})")
    assert torch.equal(got[1], mha_reference(x, L, B, E)[1]), "the clone, a graph output, is a plain copy"


@needs_cuda
def test_view_chains_are_exact(views):
    """Chains of every view-like op over 0, 1, 2, ...: each graph output equals PyTorch's result
    exactly, whether the executor aliases it, keeps it strided or gathers it."""
    g = Graph()
    x = g.input("x", torch.float32, [2, 3, 4, 5])
    a = g.node("transpose.int", x, 1, 3)                 # [2, 5, 4, 3], strided
    b = g.node("slice.Tensor", a, 1, 1, 5, 2)            # [2, 2, 4, 3]
    s = g.node("select.int", b, 2, -1)                   # [2, 2, 3]
    u = g.node("unsqueeze", s, 1)                        # [2, 1, 2, 3]
    e = g.node("expand", u, [2, 4, 2, 3])                # broadcast: stride 0
    r = g.node("view", g.node("clone", e), [16, 3])      # clone gathers, then a contiguous view
    f = g.node("flatten.using_ints", x, 0, 2)            # [24, 5]: an alias of the input
    t = g.node("t", g.node("slice.Tensor", f, 0, 2, 6, 1))  # [5, 4], strided
    m = g.node("add.Scalar", t, 1.0)                     # a dense reader: t is gathered first
    tt = g.node("view", g.node("permute", x, [0, 2, 1, 3]), [2, 4, 15])  # a merge across a jump: gathered
    g.output(r, f, m, tt, s)
    xv = torch.arange(120, dtype=torch.float32).view(2, 3, 4, 5)
    got = g.run(xv, backend="cuda")
    a_ = xv.transpose(1, 3)[:, 1:5:2].select(2, -1)
    want = [a_.unsqueeze(1).expand(2, 4, 2, 3).contiguous().view(16, 3),
            xv.flatten(0, 2),
            xv.flatten(0, 2)[2:6].t() + 1.0,
            xv.permute(0, 2, 1, 3).reshape(2, 4, 15),
            a_]
    for i, (gt, w) in enumerate(zip(got, want)):
        assert torch.equal(gt, w.contiguous()), f"output {i}: {gt} != {w}"


@needs_cuda
def test_elementwise_ops_read_strided_views(views):
    """The broadcasting elementwise ops read permuted, sliced and expanded views in place: the
    residual add after MultiheadAttention's transpose back to batch-first, a where whose condition
    is a transposed view, and a binary op with both operands strided."""
    g = Graph()
    L, B, E = 7, 3, 8
    y = g.input("y", torch.float32, [L * B, E])
    x = g.input("x", torch.float32, [B, L, E])
    back = g.node("permute", g.node("view", y, [L, B, E]), [1, 0, 2])       # [B, L, E], strided
    s = g.node("add.Tensor", x, g.node("clone", back))  # eval-mode dropout: the clone stays a view
    c = g.input("c", torch.bool, [E, L])
    neg = g.constant("neg", torch.full((1,), -1.0))
    w = g.node("where.self", g.node("t", c), g.node("select.int", x, 0, 1), neg)  # [L, E]
    sl = g.node("slice.Tensor", x, 2, 1, 8, 2)                                  # [B, L, 4], step 2
    row = g.node("slice.Tensor", g.node("slice.Tensor", x, 1, 0, 1), 2, 0, 4)  # [B, 1, 4]
    m = g.node("mul.Tensor", sl, g.node("expand", row, [B, L, 4]))
    g.output(s, w, m)
    yv = torch.arange(L * B * E, dtype=torch.float32).view(L * B, E)
    xv = torch.arange(B * L * E, dtype=torch.float32).view(B, L, E) * 0.5
    cv = (torch.arange(E * L) % 3 == 0).view(E, L)
    got = g.run(yv, xv, cv, backend="cuda")
    want = [xv + yv.view(L, B, E).permute(1, 0, 2),
            torch.where(cv.t(), xv[1], torch.tensor(-1.0)),
            xv[:, :, 1:8:2] * xv[:, 0:1, 0:4].expand(B, L, 4)]
    for i, (gt, wt) in enumerate(zip(got, want)):
        assert torch.equal(gt, wt), f"output {i} (views {views})"


@needs_cuda
def test_strided_value_with_a_dense_reader_is_gathered(views):
    """A permuted view read by attention and by an add: the add needs memory, so the view is
    gathered once and attention reads that."""
    B, H, L, D = 2, 2, 5, 8
    g = Graph()
    x = g.input("x", torch.float16, [B, L, H, D])
    q = g.node("permute", x, [0, 2, 1, 3])
    o = g.node("scaled_dot_product_attention", q, q, q)
    g.output(g.node("add.Tensor", o, q))
    xv = randn(B, L, H, D, seed=4).to(torch.float16)
    assert_matches(g.run(xv, backend="cuda")[0], g.run(xv, backend="cpu")[0], msg=f"views {views}")


@needs_cuda
def test_broadcast_key_view_falls_back_to_packed_operands(views):
    """A key expanded over the heads (stride 0) is no operand cuDNN takes: it is gathered into
    scratch for our kernel."""
    B, H, L, D = 2, 4, 6, 16
    g = Graph()
    q = g.input("q", torch.float16, [B, H, L, D])
    k1 = g.input("k", torch.float16, [B, 1, L, D])
    k = g.node("expand", k1, [B, H, L, D])
    g.output(g.node("scaled_dot_product_attention", q, k, k))
    qv, kv = randn(B, H, L, D, seed=5).to(torch.float16), randn(B, 1, L, D, seed=6).to(torch.float16)
    got = g.run(qv, kv, backend="cuda")[0]
    want = F.scaled_dot_product_attention(qv.float(), kv.expand(B, H, L, D).float(), kv.expand(B, H, L, D).float())
    assert_matches(got, want.to(torch.float16), msg=f"views {views}")


@needs_cuda
def test_views_with_a_dynamic_batch(views):
    """One engine, batch 1 (where more views are contiguous) then 3 then 1 again: each shape set
    has its own plan of aliases and gathers. The first attention writes the permute after it
    through; the second's permute is a graph output, which it does not."""
    L, E = 5, 16
    g = Graph()
    b = g.symbol("b", 1, 2, 4)
    qkv = g.input("qkv", torch.float16, [L, b, 3 * E])
    H, D = 2, E // 2
    bh = sym_expr(g, 2, b, H)  # b * H
    v1 = g.node("view", qkv, [L, b, 3, E])
    v5 = g.node("clone", g.node("squeeze.dims", g.node("permute", g.node("unsqueeze", v1, 0), [3, 1, 2, 0, 4]), [-2]))
    parts = []
    for i in range(3):
        s = g.node("select.int", v5, 0, i)
        parts.append(g.node("view", g.node("permute", g.node("view", s, [L, bh, D]), [1, 0, 2]), [b, H, L, D]))
    o = g.node("scaled_dot_product_attention", *parts)
    back = g.node("permute", o, [2, 0, 1, 3])  # attention writes this permute's memory directly
    g.output(g.node("neg", back), g.node("permute", g.node("scaled_dot_product_attention", *parts), [0, 2, 1, 3]))
    eng_cuda = tensorc_ct.Engine(g, backend="cuda")
    eng_cpu = tensorc_ct.Engine(g, backend="cpu")
    for batch, seed in ((1, 7), (3, 8), (1, 9)):
        x = randn(L, batch, 3 * E, seed=seed).to(torch.float16)
        for i, (a, b) in enumerate(zip(eng_cuda.run(x), eng_cpu.run(x))):
            assert_matches(a, b, msg=f"batch {batch}, output {i}, views {views}")
