"""Conformance of the activation ops on the CPU backend against PyTorch."""
import math

import pytest
import torch

from conformance import FLOAT_DTYPES, assert_matches, check_op, randn, run_op
from tensorc_ct import Engine, Graph, TcError

aten = torch.ops.aten

# (op, tensorc args, reference)
CASES = [
    ("relu", (), {}, aten.relu),
    ("sigmoid", (), {}, aten.sigmoid),
    ("gelu", (), {}, aten.gelu),
    ("gelu", (), {"approximate": "tanh"}, lambda x: aten.gelu(x, approximate="tanh")),
    ("gelu", (), {"approximate": "none"}, lambda x: aten.gelu(x, approximate="none")),
    ("hardtanh", (), {}, aten.hardtanh),
    ("hardtanh", (0.0, 6.0), {}, lambda x: aten.hardtanh(x, 0.0, 6.0)),
    ("hardtanh", (-2, 3), {}, lambda x: aten.hardtanh(x, -2, 3)),
    ("leaky_relu", (), {}, aten.leaky_relu),
    ("leaky_relu", (0.2,), {}, lambda x: aten.leaky_relu(x, 0.2)),
    ("leaky_relu", (-1.5,), {}, lambda x: aten.leaky_relu(x, -1.5)),
    ("elu", (), {}, aten.elu),
    ("elu", (1.6732632423543772, 1.0507009873554805), {}, lambda x: aten.elu(x, 1.6732632423543772, 1.0507009873554805)),
    ("elu", (0.5, 2.0, 1.5), {}, lambda x: aten.elu(x, 0.5, 2.0, 1.5)),
    ("silu", (), {}, aten.silu),
    ("hardswish", (), {}, aten.hardswish),
    ("hardsigmoid", (), {}, aten.hardsigmoid),
]
IDS = [f"{op}{args}{kw}" for op, args, kw, _ in CASES]
SHAPES = [(7,), (3, 5), (2, 3, 4, 5), (), (0, 3), (1, 1, 9), (64, 1031)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_activation_float(case, dtype, shape):
    op, args, kw, ref = case
    x = randn(*shape, scale=4.0).to(dtype)  # covers the kinks at -3, 0, 3 and the saturated tails
    check_op(op, ref, [x], *args, **kw)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_activation_special_values(case):
    op, args, kw, ref = case
    x = torch.tensor([0.0, -0.0, math.inf, -math.inf, math.nan, -3.0, 3.0, -1.0, 1.0, 1e-30, -100.0, 100.0])
    for dtype in FLOAT_DTYPES:
        if op == "gelu" and kw.get("approximate", "none") == "none":
            # PyTorch's vectorized CPU kernel gives NaN for gelu(+inf) while its scalar path, its f64
            # kernel and the formula give +inf, which tensorc returns for every dtype
            check_op(op, ref, [x[3:].to(dtype)], *args, **kw)
            assert run_op(op, [x[2:3].to(dtype)], *args, **kw)[0].item() == math.inf
            continue
        check_op(op, ref, [x.to(dtype)], *args, **kw)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_activation_integer_inputs_follow_pytorch(case, dtype):
    """relu and hardtanh run on integers, sigmoid promotes them to f32; the others refuse them,
    as PyTorch does."""
    op, args, kw, ref = case
    x = torch.tensor([[-7, -1, 0], [1, 2, 9]]).to(dtype)
    try:
        want = ref(x)
    except (RuntimeError, NotImplementedError):
        with pytest.raises(TcError) as e:
            run_op(op, [x], *args, **kw)
        assert "node '" in e.value.message and op in e.value.message
        return
    assert_matches(run_op(op, [x], *args, **kw)[0], want, msg=f"{op} {dtype}")


def test_activation_float64():
    x = randn(5, 6, scale=3.0).double()
    for op, args, kw, ref in CASES:
        check_op(op, ref, [x], *args, **kw)


def test_gelu_rejects_unknown_approximation():
    g = Graph()
    x = g.input("x", torch.float32, [3])
    with pytest.raises(TcError) as e:
        g.node("gelu", x, approximate="fast", name="act0")
    assert "node 'act0'" in e.value.message and "gelu" in e.value.message and "approximate" in e.value.message


def test_activation_rejects_integer_input_at_build_time():
    g = Graph()
    x = g.input("x", torch.int64, [3])
    with pytest.raises(TcError) as e:
        g.node("silu", x, name="act1")
    assert "node 'act1'" in e.value.message and "silu" in e.value.message and "i64" in e.value.message


def test_activation_symbolic_chain():
    g = Graph()
    s = g.symbol("s0", 1, 4, 16)
    x = g.input("x", torch.bfloat16, [2, s, 3])
    y = g.node("hardswish", g.node("gelu", x, approximate="tanh"))
    z = g.node("leaky_relu", y, 0.1)
    assert z.shape == [2, "s0", 3] and z.dtype == torch.bfloat16
    g.output(z)
    eng = Engine(g)
    for n in (1, 11):
        xv = randn(2, n, 3, seed=n, scale=3.0).to(torch.bfloat16)
        want = aten.leaky_relu(aten.hardswish(aten.gelu(xv, approximate="tanh")), 0.1)
        assert_matches(eng.run(xv)[0], want, msg=f"s0={n}")
