"""tensorc.compile end to end on the CPU backend: real models compared with eager PyTorch, partitioning
(unsupported op in the middle, torch_executed_ops, min_block_size, require_full_compilation), dynamic
batch, torch.compile(backend="tensorc"), TorchScript and fx inputs, save -> load in a new process,
and input errors. Uses the tensorc package from the CMake build (build/python, next to
$TENSORC_LIB) or an installed one."""
import os
import pathlib
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _package_dir():
    cands = []
    if os.environ.get("TENSORC_PYTHONPATH"):
        cands.append(pathlib.Path(os.environ["TENSORC_PYTHONPATH"]))
    if os.environ.get("TENSORC_LIB"):
        cands.append(pathlib.Path(os.environ["TENSORC_LIB"]).resolve().parent / "python")
    cands.append(ROOT / "build" / "python")
    for c in cands:
        if (c / "tensorc" / "__init__.py").exists() and list((c / "tensorc").glob("_C*")):
            return c
    return None


PKG_DIR = _package_dir()
if PKG_DIR is not None:
    sys.path.insert(0, str(PKG_DIR))
tensorc = pytest.importorskip(
    "tensorc", reason="the tensorc Python extension is neither built (build/python, target tensorc_python; "
                      "needs the CPython headers) nor installed (pip install .)")

torch.manual_seed(0)
F32_RTOL = 1e-4


def assert_close_f32(got, want):
    """Max error relative to the largest reference magnitude <= 1e-4 (DESIGN section 9)."""
    if isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(want)
        for g, w in zip(got, want):
            assert_close_f32(g, w)
        return
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, got.dtype, want.shape, want.dtype)
    scale = want.abs().max().item() or 1.0
    err = (got.double() - want.double()).abs().max().item() / scale
    assert err <= F32_RTOL, f"relative error {err:.3g} > {F32_RTOL}"


def engines_of(gm):
    return [n for n, m in gm.named_modules() if isinstance(m, tensorc.EngineModule)]


def torch_nodes(gm):
    """Compute nodes of the parent graph that stay in PyTorch (not engine calls or plumbing)."""
    out = []
    for n in gm.graph.nodes:
        if n.op != "call_function" or n.target.__module__ == "_operator":
            continue
        if n.target is torch.ops.aten.sym_size.int:
            continue
        out.append(n)
    return out


def eager(model, *args):
    with torch.no_grad():
        return model(*args)


# ---- models ------------------------------------------------------------------------------------

@torch.library.custom_op("tensorc_test::scale_shift", mutates_args=())
def scale_shift(x: torch.Tensor) -> torch.Tensor:
    """An op outside tensorc's op table."""
    return x * 1.5 - 0.25


@scale_shift.register_fake
def _scale_shift_fake(x):
    return torch.empty_like(x)


class ConvBlock(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU())


class SplitByCustomOp(nn.Module):
    """Two convolution blocks with an op tensorc does not know between them."""

    def __init__(self):
        super().__init__()
        self.a, self.b = ConvBlock(3, 8), ConvBlock(8, 8)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        y = torch.ops.tensorc_test.scale_shift(self.a(x))
        return self.head(self.b(y).mean((2, 3)))


class SmallThenBig(nn.Module):
    """Two ops, the unknown op, then a longer chain: a min_block_size case."""

    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv2d(3, 4, 1)
        self.b = ConvBlock(4, 4)

    def forward(self, x):
        y = torch.relu(self.c0(x))
        return torch.sigmoid(self.b(torch.ops.tensorc_test.scale_shift(y)))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1, self.l2 = nn.Linear(16, 32), nn.Linear(32, 8)

    def forward(self, x):
        h = torch.relu(self.l1(x))
        return torch.softmax(self.l2(h) * 2.0 + 1.0, dim=-1)


def _eval(m):
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


# ---- real models -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_torchvision_model_compiles_to_one_engine_and_matches_eager(name):
    torchvision = pytest.importorskip("torchvision")
    model = _eval(getattr(torchvision.models, name)(num_classes=10))
    x = torch.randn(1, 3, 64, 64)
    cm = tensorc.compile(model, [x])
    assert len(engines_of(cm)) == 1, cm._tensorc_report
    assert torch_nodes(cm) == [], cm._tensorc_report
    assert_close_f32(cm(x), eager(model, x))


def test_transformer_encoder_block_matches_eager():
    layer = _eval(nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64, dropout=0.0,
                                             batch_first=True))
    x = torch.randn(2, 10, 32)
    cm = tensorc.compile(layer, [x])
    assert len(engines_of(cm)) >= 1, cm._tensorc_report
    assert_close_f32(cm(x), eager(layer, x))


# ---- partitioning ------------------------------------------------------------------------------

def test_unknown_op_in_the_middle_gives_two_engines_with_pytorch_between():
    model = _eval(SplitByCustomOp())
    x = torch.randn(2, 3, 16, 16)
    cm = tensorc.compile(model, [x])
    assert engines_of(cm) == ["_run_on_acc_0", "_run_on_acc_1"], cm._tensorc_report
    order = [n.target if n.op == "call_module" else n.target for n in cm.graph.nodes
             if n.op == "call_module" or n.target is torch.ops.tensorc_test.scale_shift.default]
    assert order == ["_run_on_acc_0", torch.ops.tensorc_test.scale_shift.default, "_run_on_acc_1"]
    assert "tensorc_test.scale_shift" in cm._tensorc_report and "not in the op table" in cm._tensorc_report
    assert_close_f32(cm(x), eager(model, x))


@pytest.mark.parametrize("ops", [["torch.ops.aten.relu.default"], ["aten.relu"], [torch.ops.aten.relu.default]])
def test_torch_executed_ops_forces_relu_to_pytorch(ops):
    model = _eval(MLP())
    x = torch.randn(4, 16)
    cm = tensorc.compile(model, [x], torch_executed_ops=ops, min_block_size=1)
    fallback = [n.target for n in torch_nodes(cm)]
    assert fallback == [torch.ops.aten.relu.default], cm._tensorc_report
    assert len(engines_of(cm)) == 2
    assert "forced to fall back by torch_executed_ops" in cm._tensorc_report
    assert_close_f32(cm(x), eager(model, x))


def test_min_block_size_drops_small_blocks_back_to_pytorch():
    model = _eval(SmallThenBig())
    x = torch.randn(1, 3, 12, 12)
    every = tensorc.compile(model, [x], min_block_size=1)
    assert len(engines_of(every)) == 2, every._tensorc_report
    merged = tensorc.compile(model, [x], min_block_size=3)
    assert len(engines_of(merged)) == 1, merged._tensorc_report
    kept = {n.target for n in torch_nodes(merged)}
    assert {torch.ops.aten.convolution.default, torch.ops.aten.relu.default} <= kept
    assert "fewer than min_block_size 3" in merged._tensorc_report
    for cm in (every, merged):
        assert_close_f32(cm(x), eager(model, x))


def test_require_full_compilation_lists_unsupported_nodes():
    model = _eval(SplitByCustomOp())
    with pytest.raises(tensorc.UnsupportedError) as e:
        tensorc.compile(model, [torch.randn(1, 3, 8, 8)], require_full_compilation=True)
    msg = str(e.value)
    assert "node 'scale_shift' (tensorc_test.scale_shift)" in msg and "not in the op table" in msg


def test_dryrun_prints_the_report_and_returns_the_module(capsys):
    model = _eval(SplitByCustomOp())
    out = tensorc.compile(model, [torch.randn(1, 3, 8, 8)], dryrun=True)
    assert out is model
    text = capsys.readouterr().out
    assert "engine _run_on_acc_0" in text and "engine _run_on_acc_1" in text
    assert "PyTorch: op 'tensorc_test.scale_shift' is not in the op table" in text


def _small_vit():
    torchvision = pytest.importorskip("torchvision")
    from torchvision.models.vision_transformer import VisionTransformer
    torch.manual_seed(0)
    m = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64,
                          num_classes=10)
    with torch.no_grad():  # torchvision zero-initializes these: the logits would be all zeros
        for p in (m.heads.head.weight, m.heads.head.bias, m.class_token):
            p.normal_(0, 0.5)
    return _eval(m), torch.randn(2, 3, 32, 32)


def test_views_left_in_pytorch_run_as_reshape():
    # torchvision's attention views the permuted SDPA output: the .contiguous() between them recorded no
    # copy because the traced SDPA output made the permute contiguous. An engine's SDPA output is
    # contiguous, so the permute after it, run in PyTorch, is not, and a view of it would fail.
    model, x = _small_vit()
    cm = tensorc.compile(model, [x], torch_executed_ops=["aten.permute", "aten.view"], min_block_size=1)
    targets = [n.target for n in torch_nodes(cm)]
    assert torch.ops.aten.permute.default in targets and torch.ops.aten.reshape.default in targets
    assert torch.ops.aten.view.default not in targets, cm._tensorc_report
    assert_close_f32(cm(x), eager(model, x))


def test_program_moved_to_another_device_is_retraced_with_a_copy_where_a_view_would_fail():
    # what tensorc.compile does with an ExportedProgram exported on the CPU and moved to the GPU:
    # the retrace to core ATen runs the moved device's meta functions, whose SDPA layout differs from the
    # CPU kernel's (here the meta device stands in for CUDA)
    import importlib

    import torch.export.passes
    compile_mod = importlib.import_module("tensorc.compile")
    model, x = _small_vit()
    with torch.no_grad():
        ep = torch.export.export(model, (x,)).run_decompositions(tensorc.decomposition_table())
    ep = torch.export.passes.move_to_device_pass(ep, "meta")
    before = [(n.name, n.target) for n in ep.graph.nodes]
    gm = compile_mod._decomposed_module(ep)
    assert [(n.name, n.target) for n in ep.graph.nodes] == before, "the caller's program was changed"
    sdpa = next(n for n in gm.graph.nodes if n.target is torch.ops.aten.scaled_dot_product_attention.default)
    permute = next(iter(sdpa.users))
    assert permute.target is torch.ops.aten.permute.default
    assert [u.target for u in permute.users] == [torch.ops.aten.clone.default]


class MaskedLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.l = nn.Linear(8, 8)

    def forward(self, x, mask):
        return torch.relu(self.l(x)) * mask.to(torch.float32)


@pytest.mark.parametrize("device", ["cpu:0", "meta"])
def test_export_metadata_checks_are_dropped(device):
    # torch.export checks the input of .to() with _assert_tensor_metadata; move_to_device_pass rewrites
    # its device to one a tensor's device need not equal ("cuda" for cuda:0), so it fails in the retrace
    # or at run time. It computes nothing: compile drops it, as the .pt2 importer does.
    model = _eval(MaskedLinear())
    x, mask = torch.randn(2, 8), (torch.rand(2, 8) > 0.5).to(torch.int64)
    with torch.no_grad():
        ep = torch.export.export(model, (x, mask))
    checks = [n for n in ep.graph.nodes if n.target is torch.ops.aten._assert_tensor_metadata.default]
    assert checks, "torch.export no longer checks the input of .to(): the test proves nothing"
    for n in checks:
        n.kwargs = {**n.kwargs, "device": torch.device(device)}
    cm = tensorc.compile(ep, min_block_size=1)
    assert torch_nodes(cm) == [], cm._tensorc_report
    assert [n.target for n in ep.graph.nodes if n in checks] == [torch.ops.aten._assert_tensor_metadata.default] * len(checks)
    assert_close_f32(cm(x, mask), eager(model, x, mask))


# ---- dynamic shapes ----------------------------------------------------------------------------

def test_dynamic_batch_runs_at_three_sizes_and_rejects_out_of_range():
    model = _eval(SplitByCustomOp())
    spec = tensorc.Input(min_shape=(1, 3, 16, 16), opt_shape=(4, 3, 16, 16), max_shape=(8, 3, 16, 16), name="x")
    cm = tensorc.compile(model, [spec])
    assert len(engines_of(cm)) == 2
    for b in (1, 3, 8):
        x = torch.randn(b, 3, 16, 16)
        assert_close_f32(cm(x), eager(model, x))
    with pytest.raises(tensorc.InputError, match=r"input 'x' \(#0\) dim 0 is 9, outside the range \[1, 8\]"):
        cm(torch.randn(9, 3, 16, 16))


# ---- front ends ----------------------------------------------------------------------------------

class _Counter:
    def __init__(self, monkeypatch):
        self.names = []
        orig = tensorc.runtime.EngineRunner.run

        def run(runner, inputs):
            self.names.append(runner.name)
            return orig(runner, inputs)

        monkeypatch.setattr(tensorc.runtime.EngineRunner, "run", run)


def test_torch_compile_backend_runs_engines(monkeypatch):
    torch._dynamo.reset()
    calls = _Counter(monkeypatch)
    model = _eval(SplitByCustomOp())
    x = torch.randn(2, 3, 16, 16)
    compiled = torch.compile(model, backend="tensorc")
    assert_close_f32(compiled(x), eager(model, x))
    assert len(calls.names) >= 2
    calls.names.clear()
    via_ir = tensorc.compile(model, [x], ir="torch_compile", min_block_size=1)
    assert_close_f32(via_ir(x), eager(model, x))
    assert calls.names


def test_torchscript_module_through_ts2ep():
    model = _eval(MLP())
    x = torch.randn(3, 16)
    cm = tensorc.compile(torch.jit.script(model), [x], ir="ts", min_block_size=1)
    assert len(engines_of(cm)) == 1
    assert_close_f32(cm(x), eager(model, x))


def test_timing_cache_path_is_ignored_by_cpu_engines(tmp_path):
    model, x = _eval(MLP()), torch.randn(4, 16)
    cache = tmp_path / "plans.tcc"
    trt = tensorc.compile(model, [x], device="cpu", min_block_size=1, timing_cache_path=cache)
    assert_close_f32(trt(x), eager(model, x))
    assert not cache.exists()


_CUDA_WHY = None if torch.cuda.is_available() and "cuda" in tensorc._C.version() else \
    "needs a GPU and a CUDA build of tensorc"


@pytest.mark.skipif(_CUDA_WHY is not None, reason=f"timing cache on the GPU: {_CUDA_WHY}")
def test_timing_cache_path_is_written_and_reused_on_the_gpu(tmp_path):
    model, x = _eval(MLP()).cuda(), torch.randn(4, 16, device="cuda")
    cache = tmp_path / "plans.tcc"
    first = tensorc.compile(model, [x], device="cuda", min_block_size=1, disable_tf32=True, timing_cache_path=cache)
    a = first(x)
    data = cache.read_bytes()
    assert data[:8] == b"TCTCACHE" and len(data) > 100
    second = tensorc.compile(model, [x], device="cuda", min_block_size=1, disable_tf32=True, timing_cache_path=cache)
    assert torch.equal(second(x), a)  # the same plans, from the cache
    assert_close_f32(a.cpu(), eager(model.cpu(), x.cpu()))


def test_fx_graph_module():
    model = _eval(MLP())
    gm = torch.fx.symbolic_trace(model)
    x = torch.randn(3, 16)
    cm = tensorc.compile(gm, [x], ir="fx")
    assert len(engines_of(cm)) == 1
    assert_close_f32(cm(x), eager(model, x))


# ---- save and load -----------------------------------------------------------------------------

LOAD_AND_RUN = """
import sys, torch
sys.path[:0] = [p for p in {paths!r} if p]
import tensorc

@torch.library.custom_op("tensorc_test::scale_shift", mutates_args=())
def scale_shift(x: torch.Tensor) -> torch.Tensor:
    return x * 1.5 - 0.25

@scale_shift.register_fake
def _fake(x):
    return torch.empty_like(x)

m = tensorc.load({model!r})
out = m(*torch.load({inputs!r}))
torch.save(out, {out!r})
"""


def _run_in_new_process(path, inputs, tmp_path):
    torch.save(inputs, tmp_path / "in.pt")
    code = LOAD_AND_RUN.format(paths=[str(PKG_DIR) if PKG_DIR else ""], model=str(path),
                               inputs=str(tmp_path / "in.pt"), out=str(tmp_path / "out.pt"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    return torch.load(tmp_path / "out.pt")


@pytest.mark.parametrize("fmt", ["exported_program", "torchscript"])
def test_save_then_load_in_a_new_process_gives_the_same_outputs(fmt, tmp_path):
    model = _eval(SplitByCustomOp())
    x = torch.randn(2, 3, 16, 16)
    cm = tensorc.compile(model, [x])
    path = tmp_path / ("model.pt2" if fmt == "exported_program" else "model.ts")
    tensorc.save(cm, path, output_format=fmt)
    # the child registers tensorc_test::scale_shift as this file does: the PyTorch part between
    # the engines calls it by name
    out = _run_in_new_process(path, [x], tmp_path)
    assert_close_f32(out[0] if isinstance(out, (list, tuple)) else out, eager(model, x))


def test_save_engine_format_round_trips_a_fully_compiled_model(tmp_path):
    model = _eval(MLP())
    x = torch.randn(5, 16)
    cm = tensorc.compile(model, [x], require_full_compilation=True)
    path = tmp_path / "model.tce"
    tensorc.save(cm, path, output_format="engine")
    assert path.read_bytes()[:8] == b"TCENGINE"
    out = _run_in_new_process(path, [x], tmp_path)
    assert_close_f32(out, eager(model, x))
    with pytest.raises(ValueError, match="needs the whole model in one engine"):
        tensorc.save(tensorc.compile(_eval(SplitByCustomOp()), [torch.randn(1, 3, 8, 8)]), tmp_path / "x.tce",
                     output_format="engine")


# ---- errors ------------------------------------------------------------------------------------

def test_wrong_dtype_and_shape_raise_errors_naming_the_input():
    model = _eval(MLP())
    cm = tensorc.compile(model, [tensorc.Input(shape=(4, 16))])
    with pytest.raises(tensorc.InputError, match=r"input 'x' \(#0\) must be torch.float32, got torch.float16"):
        cm(torch.randn(4, 16, dtype=torch.float16))
    with pytest.raises(tensorc.InputError, match=r"input 'x' \(#0\) must have shape \[4, 16\], got \[4, 15\]"):
        cm(torch.randn(4, 15))


def test_c_errors_carry_node_name_and_op():
    g = tensorc._C.Graph()
    x = g.add_input("x", 0, [2, 3])
    y = g.add_input("y", 0, [4, 5])
    with pytest.raises(tensorc.Error) as e:
        g.add_node("add.Tensor", "my_add", [(None, 1, x), (None, 1, y)])
    assert "node 'my_add'" in e.value.message and "add" in e.value.message


# ---- the C partitioner through the extension -----------------------------------------------------

def test_partitioner_never_puts_both_ends_of_a_fallback_path_in_one_block():
    g = tensorc._C.Graph()
    x = g.add_input("x", 0, [4])
    (a,) = g.add_node("relu", "A", [(None, 1, x)])
    (f,) = g.add_opaque_node("mystery", "F", [a], [(0, [4])])
    (b,) = g.add_node("add.Tensor", "B", [(None, 1, a), (None, 1, f)])
    (c,) = g.add_node("neg", "C", [(None, 1, x)])  # independent of F: joins A's block
    n_blocks, rows, report = g.partition(0, 1, [], False)
    block = {name: blk for blk, _reason, _msg, name, _op in rows}
    assert n_blocks == 2 and block == {"A": 0, "F": -1, "B": 1, "C": 0}
    assert "op 'mystery' is not in the op table" in report


def test_forced_op_patterns_name_an_overload_or_every_overload():
    g = tensorc._C.Graph()
    x = g.add_input("x", 0, [2, 2])
    (y,) = g.add_node("add.Tensor", "add1", [(None, 1, x), (None, 1, x)])
    g.add_node("mm", "mm1", [(None, 1, y), (None, 1, y)])
    for pattern, forced in [("aten.add", {"add1"}), ("torch.ops.aten.add.Tensor", {"add1"}),
                            ("add.Scalar", set()), ("aten.mm.default", {"mm1"}), ("ad", set())]:
        _n, rows, _r = g.partition(0, 1, [pattern], False)
        assert {name for blk, reason, _m, name, _op in rows if reason == 4} == forced, pattern


def test_one_engine_called_from_several_threads_gives_each_its_own_result():
    import threading
    model = _eval(MLP())
    cm = tensorc.compile(model, [torch.randn(4, 16)], min_block_size=1)
    xs = [torch.randn(4, 16) for _ in range(4)]
    want = [eager(model, x) for x in xs]
    errors = []

    def work(i):
        try:
            for _ in range(20):
                assert_close_f32(cm(xs[i]), want[i])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
