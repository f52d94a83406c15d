"""Conformance of scaled_dot_product_attention on the CPU backend against PyTorch: shapes and
broadcast batch dims, bool and additive masks, causal masking, custom scale, grouped-query heads,
and the inputs it must reject."""
import math

import pytest
import torch

from conformance import FLOAT_DTYPES, assert_matches, check_op, randn
from tensorc_ct import Graph, TcError

aten = torch.ops.aten
OP = "scaled_dot_product_attention"

# (q shape, k shape, v shape)
SHAPES = [
    ((2, 3, 7, 8), (2, 3, 9, 8), (2, 3, 9, 5)),
    ((1, 2, 1, 16), (1, 2, 33, 16), (1, 2, 33, 16)),      # one query row (decoding)
    ((1, 2, 130, 8), (1, 2, 70, 8), (1, 2, 70, 8)),       # more rows than one query tile
    ((3, 5, 4), (3, 6, 4), (3, 6, 4)),                    # rank 3
    ((5, 4), (6, 4), (6, 3)),                             # rank 2
    ((2, 3, 4, 8), (1, 3, 5, 8), (1, 3, 5, 6)),           # broadcast batch
    ((2, 1, 4, 8), (2, 3, 5, 8), (1, 3, 5, 8)),           # broadcast query heads and value batch
    ((2, 4, 197, 64), (2, 4, 197, 64), (2, 4, 197, 64)),  # a ViT layer's heads (cuDNN's fused attention on a GPU)
    ((1, 2, 77, 128), (1, 2, 77, 128), (1, 2, 77, 128)),  # the widest head cuDNN's path takes
]


def qkv(shapes, dtype, scale=1.0):
    return [randn(*s, dtype=dtype, seed=i, scale=scale) for i, s in enumerate(shapes)]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shapes", SHAPES)
def test_sdpa_plain(shapes, dtype):
    check_op(OP, aten.scaled_dot_product_attention, qkv(shapes, dtype))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shapes", [SHAPES[0], SHAPES[2], ((1, 2, 9, 8), (1, 2, 4, 8), (1, 2, 4, 8)), SHAPES[4]])
def test_sdpa_causal(shapes, dtype):
    # L < S, L > S and L = S: the mask is aligned to the top left, as in PyTorch
    check_op(OP, lambda q, k, v: aten.scaled_dot_product_attention(q, k, v, is_causal=True), qkv(shapes, dtype),
             is_causal=True)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_sdpa_scale(dtype):
    check_op(OP, lambda q, k, v: aten.scaled_dot_product_attention(q, k, v, scale=0.37), qkv(SHAPES[0], dtype),
             scale=0.37)


MASK_SHAPES = [(7, 9), (2, 1, 7, 9), (2, 3, 7, 9), (1, 9), (3, 1, 9), (1, 1, 7, 1)]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("mask_shape", MASK_SHAPES)
@pytest.mark.parametrize("kind", ["bool", "f32", "query"])
def test_sdpa_masks(kind, mask_shape, dtype):
    q, k, v = qkv(SHAPES[0], dtype)
    gen = torch.Generator().manual_seed(5)
    if kind == "bool":
        mask = torch.rand(mask_shape, generator=gen) > 0.3
    else:
        mask = torch.randn(mask_shape, generator=gen).to(torch.float32 if kind == "f32" else dtype)
    check_op(OP, aten.scaled_dot_product_attention, [q, k, v, mask])


def test_sdpa_one_dim_mask_broadcasts_over_rows():
    # PyTorch's CPU kernel refuses a 1-D mask; it means the same as the [1, S] mask
    q, k, v = qkv(SHAPES[0], torch.float32)
    mask = torch.randn(9, generator=torch.Generator().manual_seed(3))
    check_op(OP, lambda q, k, v, m: aten.scaled_dot_product_attention(q, k, v, m[None]), [q, k, v, mask])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_sdpa_fully_masked_rows_give_zeros(dtype):
    q, k, v = qkv(((1, 2, 3, 8), (1, 2, 5, 8), (1, 2, 5, 8)), dtype)
    mb = torch.ones(3, 5, dtype=torch.bool)
    mb[1] = False
    mf = torch.zeros(3, 5)
    mf[2] = -math.inf
    mf[0, :2] = -math.inf
    for m in (mb, mf):
        got = check_op(OP, aten.scaled_dot_product_attention, [q, k, v, m])[0]
    assert torch.count_nonzero(got[:, :, 2]) == 0


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shapes", [((1, 6, 3, 8), (1, 2, 5, 8), (1, 2, 5, 8)),
                                    ((2, 6, 4, 8), (1, 2, 5, 8), (1, 3, 5, 4)),
                                    ((2, 4, 3, 8), (2, 1, 5, 8), (2, 1, 5, 8)),
                                    ((6, 3, 8), (2, 5, 8), (2, 5, 8))])
def test_sdpa_grouped_query_heads(shapes, dtype):
    ins = qkv(shapes, dtype)
    check_op(OP, lambda q, k, v: aten.scaled_dot_product_attention(q, k, v, enable_gqa=True), ins, enable_gqa=True)
    check_op(OP, lambda q, k, v: aten.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True), ins,
             is_causal=True, enable_gqa=True)


def test_sdpa_large_scores_are_stable():
    q, k, v = qkv(((1, 1, 4, 8), (1, 1, 6, 8), (1, 1, 6, 8)), torch.float32, scale=30.0)
    check_op(OP, aten.scaled_dot_product_attention, [q, k, v])


def test_sdpa_long_keys_f16():
    q, k, v = qkv(((1, 2, 5, 32), (1, 2, 10000, 32), (1, 2, 10000, 32)), torch.float16)
    check_op(OP, aten.scaled_dot_product_attention, [q, k, v])


# --- invalid graphs ---

def _node_error(shapes, *args, dtypes=None, **kwargs):
    g = Graph()
    dtypes = dtypes or [torch.float32] * len(shapes)
    vals = [g.input(f"in{i}", dt, list(s)) for i, (s, dt) in enumerate(zip(shapes, dtypes))]
    with pytest.raises(TcError) as e:
        g.node(OP, *vals, *args, name="attn", **kwargs)
    msg = e.value.message
    assert "node 'attn'" in msg and OP in msg, msg
    return msg


def test_invalid_attention_names_node_and_op():
    q, k, v = (2, 3, 7, 8), (2, 3, 9, 8), (2, 3, 9, 5)
    msg = _node_error([q, k, v], None, 0.1)
    assert "dropout_p must be 0" in msg
    assert "last dim" in _node_error([q, (2, 3, 9, 4), v])
    assert "sequence length" in _node_error([q, k, (2, 3, 8, 5)])
    assert "one dtype" in _node_error([q, k, v], dtypes=[torch.float32, torch.float16, torch.float32])
    assert "attn_mask" in _node_error([q, k, v, (7, 8)])
    assert "attn_mask" in _node_error([q, k, v, (4, 3, 7, 9)])
    assert "attn_mask" in _node_error([q, k, v, (7, 9)], dtypes=[torch.float32] * 3 + [torch.int64])
    assert "is_causal" in _node_error([q, k, v, (7, 9)], 0.0, True)
    assert "multiple" in _node_error([(1, 6, 3, 8), (1, 4, 5, 8), (1, 4, 5, 8)], enable_gqa=True)
    assert "broadcast" in _node_error([(1, 6, 3, 8), (1, 2, 5, 8), (1, 2, 5, 8)])
    assert "rank" in _node_error([(8,), k, v])


def test_symbolic_batch_and_sequence():
    g = Graph()
    b = g.symbol("b", 1, 2, 8)
    s = g.symbol("s", 1, 16, 128)
    q = g.input("q", torch.float16, [b, 4, s, 16])
    k = g.input("k", torch.float16, [b, 2, s, 16])
    v = g.input("v", torch.float16, [b, 2, s, 16])
    o = g.node(OP, q, k, v, is_causal=True, enable_gqa=True)
    assert o.shape == ["b", 4, "s", 16]
    g.output(o)
    for nb, ns in [(1, 3), (3, 70)]:
        ins = [randn(nb, 4, ns, 16, dtype=torch.float16, seed=1), randn(nb, 2, ns, 16, dtype=torch.float16, seed=2),
               randn(nb, 2, ns, 16, dtype=torch.float16, seed=3)]
        got = g.run(*ins)[0]
        want = aten.scaled_dot_product_attention(*ins, is_causal=True, enable_gqa=True)
        assert_matches(got, want, msg=f"b={nb} s={ns}")
