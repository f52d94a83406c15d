"""Helpers for the op conformance suite: run one op through the C library (on the backend that
$TENSORC_TEST_BACKEND names, the CPU by default) and compare with PyTorch under the tolerances of
DESIGN §9."""
import torch

from tensorc_ct import Graph

FLOAT_DTYPES = [torch.float32, torch.float16, torch.bfloat16]

TOL = {
    torch.float32: dict(rtol=1e-4, atol=1e-5),
    torch.float64: dict(rtol=1e-7, atol=1e-9),
    torch.float16: dict(rtol=1e-2, atol=1e-2),
    torch.bfloat16: dict(rtol=1e-2, atol=2e-2),
}


def assert_matches(got, want, *, rtol=None, atol=None, msg=""):
    """Same dtype, same shape, values within the dtype's tolerance (exact for ints and bools);
    NaN must match NaN and infinities must match."""
    assert got.dtype == want.dtype, f"{msg}: dtype {got.dtype} != {want.dtype}"
    assert tuple(got.shape) == tuple(want.shape), f"{msg}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    if want.dtype in TOL:
        tol = dict(TOL[want.dtype])
        if rtol is not None:
            tol["rtol"] = rtol
        if atol is not None:
            tol["atol"] = atol
        # Inf or NaN where the reference is finite (or the reverse) fails on its own, with where it is,
        # before any tolerance arithmetic can hide it.
        fin_got, fin_want = torch.isfinite(got.float()), torch.isfinite(want.float())
        if not torch.equal(fin_got, fin_want):
            where = (fin_got != fin_want).nonzero()
            first = tuple(int(i) for i in where[0])
            raise AssertionError(f"{msg}: {where.shape[0]} element(s) differ in finiteness, first at {first}: "
                                 f"got {got[first].item()}, want {want[first].item()}")
        torch.testing.assert_close(got.float(), want.float(), equal_nan=True, msg=lambda m: f"{msg}: {m}", **tol)
    else:
        assert torch.equal(got, want), f"{msg}: {got} != {want}"


def run_op(op, tensors, *args, **kwargs):
    """Builds a graph whose inputs are `tensors` (positional tensor arguments first, in order),
    applies op with the remaining args, and runs it. Returns the list of outputs."""
    g = Graph()
    vals = [g.input(f"in{i}", t.dtype, list(t.shape)) for i, t in enumerate(tensors)]
    out = g.node(op, *vals, *args, **kwargs)
    outs = out if isinstance(out, list) else [out]
    g.output(*outs)
    return g.run(*tensors)


def check_op(op, torch_fn, tensors, *args, rtol=None, atol=None, **kwargs):
    """Runs op on tensors and compares every output with torch_fn(*tensors)."""
    got = run_op(op, tensors, *args, **kwargs)
    want = torch_fn(*tensors)
    if not isinstance(want, (list, tuple)):
        want = [want]
    assert len(got) == len(want), f"{op}: {len(got)} outputs, PyTorch has {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert_matches(g, w, rtol=rtol, atol=atol, msg=f"{op} output {i} for inputs "
                       f"{[(tuple(t.shape), t.dtype) for t in tensors]}")
    return got


def randn(*shape, dtype=torch.float32, seed=0, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(tuple(shape), generator=gen) * scale).to(dtype)
