"""The CUDA engine through the test harness: results against the CPU backend and PyTorch, dynamic
shapes, errors, torch side streams; and the harness's own checks (guard bytes, non-finite values,
the build-options struct), which need no GPU."""
import ctypes

import pytest
import torch

import tensorc_ct
from conformance import assert_matches, randn
from tensorc_ct import GUARD_BYTES, Engine, Graph, TcError

_why = tensorc_ct.cuda_unavailable_reason()
needs_cuda = pytest.mark.skipif(_why is not None, reason=f"CUDA engine tests: {_why}")


# --- harness checks (no GPU) ------------------------------------------------------------------

def test_guard_check_catches_writes_before_and_after():
    buf = tensorc_ct.guarded_buffer(16, device="cpu")
    tensorc_ct.check_guards(buf, 16, "clean")
    assert bool((buf[GUARD_BYTES:GUARD_BYTES + 16] == tensorc_ct.POISON_BYTE).all())
    buf[GUARD_BYTES - 3] = 0
    with pytest.raises(AssertionError, match="before it .first at offset -3"):
        tensorc_ct.check_guards(buf, 16, "head")
    buf[GUARD_BYTES - 3] = tensorc_ct.GUARD_BYTE
    buf[GUARD_BYTES + 16] = 1
    with pytest.raises(AssertionError, match=r"after it .first at offset \+0"):
        tensorc_ct.check_guards(buf, 16, "tail")


def test_inf_where_the_reference_is_finite_fails():
    want = torch.tensor([1.0, 2.0, 3.0])
    with pytest.raises(AssertionError, match="finiteness"):
        assert_matches(torch.tensor([1.0, float("inf"), 3.0]), want, msg="inf")
    with pytest.raises(AssertionError):
        assert_matches(torch.tensor([1.0, float("nan"), 3.0]), want, msg="nan")
    assert_matches(torch.tensor([1.0, float("inf")]), torch.tensor([1.0, float("inf")]), msg="same inf")


def test_build_options_struct_is_not_smaller_than_the_c_one():
    # tc_build_options_init writes the whole C struct: bytes past the ctypes struct must stay intact
    class Padded(ctypes.Structure):
        _fields_ = [("opts", tensorc_ct._BuildOptions), ("tail", ctypes.c_uint8 * 64)]
    p = Padded()
    ctypes.memset(ctypes.byref(p), 0x5A, ctypes.sizeof(p))
    tensorc_ct.lib.tc_build_options_init(ctypes.byref(p.opts))
    assert bytes(p.tail) == b"\x5a" * 64
    assert p.opts.backend == tensorc_ct.BACKEND_CPU and p.opts.device == 0 and not p.opts.disable_tf32


def test_unknown_backend_is_rejected():
    g = Graph()
    g.output(g.node("relu", g.input("x", torch.float32, [2])))
    with pytest.raises(ValueError, match="backend"):
        Engine(g, backend="tpu")


# --- the CUDA engine --------------------------------------------------------------------------

def _chain(dtype, batch=None):
    """x [b, 8] (+) w [8] -> t; t * x -> u; u + t -> v; outputs v and t."""
    g = Graph()
    b = g.symbol("b", 1, 4, 32) if batch is None else batch
    x = g.input("x", dtype, [b, 8])
    w = g.constant("w", randn(8, seed=7).to(dtype))
    t = g.node("add.Tensor", x, w, name="t")
    u = g.node("mul.Tensor", t, x, name="u")
    v = g.node("add.Tensor", u, t, name="v")
    g.output(v, t)
    return g, randn(8, seed=7).to(dtype)


def _chain_ref(x, w):
    t = torch.ops.aten.add.Tensor(x, w)
    return [torch.ops.aten.add.Tensor(torch.ops.aten.mul.Tensor(t, x), t), t]


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_chain_matches_cpu_backend_and_pytorch(dtype):
    g, w = _chain(dtype, batch=5)
    x = randn(5, 8, seed=1).to(dtype)
    got = g.run(x, backend="cuda")
    cpu = g.run(x, backend="cpu")
    for i, (a, c, want) in enumerate(zip(got, cpu, _chain_ref(x, w))):
        assert_matches(a, c, msg=f"output {i} cuda vs cpu backend")
        assert_matches(a, want, msg=f"output {i} cuda vs PyTorch")


@needs_cuda
def test_dynamic_batch_back_and_forth():
    g, w = _chain(torch.float32)
    eng = Engine(g, backend="cuda")
    for step, n in enumerate([3, 17, 3, 17, 32, 1, 3]):
        x = randn(n, 8, seed=step)
        for i, (a, want) in enumerate(zip(eng.run(x), _chain_ref(x, w))):
            assert_matches(a, want, msg=f"batch {n}, output {i}")


@needs_cuda
def test_wrong_input_dtype_is_reported():
    g, _ = _chain(torch.float32)  # batch symbolic in [1, 32]
    eng = Engine(g, backend="cuda")
    with pytest.raises(TcError) as e:
        eng.run(randn(2, 8).half())
    assert e.value.status == 4 and "input 'x' must be f32, got f16" in e.value.message  # TC_ERR_DTYPE
    with pytest.raises(TcError) as e:
        eng.run(randn(33, 8))
    assert "outside the range [1, 32]" in e.value.message
    x = randn(2, 8)
    assert_matches(eng.run(x)[0], _chain_ref(x, _chain(torch.float32)[1])[0], msg="after errors")


@needs_cuda
def test_runs_on_a_torch_side_stream():
    g, w = _chain(torch.float32, batch=64)
    eng = Engine(g, backend="cuda")
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        for k in range(3):  # warm-up, capture, replays: inputs made on the side stream just before
            x = torch.full((64, 8), float(k + 1), device="cuda") * torch.arange(8, device="cuda")
            got = eng.run(x)
            for i, (a, want) in enumerate(zip(got, _chain_ref(x.cpu(), w))):
                assert_matches(a, want, msg=f"side stream run {k}, output {i}")

