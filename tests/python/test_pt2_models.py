"""Real models through the .pt2 importer and the CPU backend: each model of export_models.py is
exported with torch.export (random weights), run with `tensorc run` on the saved inputs, and compared
with eager PyTorch. f32: max|got - want| / max|want| <= 1e-4; f16/bf16: the same measure <= 1e-2 and
cosine similarity >= 0.999 (DESIGN section 9). Exported models are cached (see export_models.py)."""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import torch
import pytest

import export_models

ROOT = Path(__file__).resolve().parents[2]


def _find_cli():
    if os.environ.get("TENSORC_CLI"):
        return Path(os.environ["TENSORC_CLI"])
    cands = []
    if os.environ.get("TENSORC_LIB"):
        cands.append(Path(os.environ["TENSORC_LIB"]).parent / "tensorc")
    cands.append(ROOT / "build" / "tensorc")
    for c in cands:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    return None


CLI = _find_cli()
pytestmark = pytest.mark.skipif(CLI is None, reason="tensorc CLI not found: build it or set TENSORC_CLI")

@pytest.fixture(scope="session")
def model_dir():
    return export_models.default_out_dir()


def _load(path):
    return export_models.from_numpy(np.load(path)).float().numpy().astype(np.float64)


def run_case(man, case, tmp_path):
    d = Path(man["dir"])
    out_dir = tmp_path / "out"
    cmd = [str(CLI), "run", str(d / man["model"]), "--device", "cpu", "--output-dir", str(out_dir)]
    for name, f in case["inputs"].items():
        cmd += ["--input", f"{name}={d / f}"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"tensorc run failed ({r.returncode}):\n{r.stderr}\n{r.stdout}"
    return r, out_dir


def compare(man, case, out_dir, stdout):
    d = Path(man["dir"])
    # outputs are written as <output name>.npy in output order; the summary lines give that order
    names = [ln.split(":")[0][len("output "):] for ln in stdout.splitlines() if ln.startswith("output ")]
    assert len(names) == len(case["outputs"]), stdout
    for name, want_spec in zip(names, case["outputs"]):
        got_raw = np.load(out_dir / f"{name}.npy")
        want_raw = np.load(d / want_spec["file"])
        assert got_raw.dtype == want_raw.dtype, f"output {name}: dtype {got_raw.dtype}, want {want_raw.dtype}"
        assert list(got_raw.shape) == want_spec["shape"], f"output {name}: shape {got_raw.shape}, want {want_spec['shape']}"
        got, want = _load(out_dir / f"{name}.npy"), _load(d / want_spec["file"])
        scale = np.abs(want).max()
        assert scale > 0, f"output {name}: the reference is all zeros, which would prove nothing"
        rel = np.abs(got - want).max() / scale
        if want_spec["dtype"] in ("float16", "bfloat16"):
            cos = float((got * want).sum() / max(np.linalg.norm(got) * np.linalg.norm(want), 1e-30))
            assert rel <= 1e-2 and cos >= 0.999, f"output {name}: max rel err {rel:.3g}, cosine {cos:.6f}"
        else:
            assert rel <= 1e-4, f"output {name}: max rel err {rel:.3g} > 1e-4"


@pytest.mark.parametrize("name", [n for n in export_models.MODELS if n != "cnn_dynamic_batch"])
def test_model_matches_eager_pytorch(name, model_dir, tmp_path):
    man = export_models.export_one(name, model_dir)
    case = man["cases"][0]
    r, out_dir = run_case(man, case, tmp_path)
    compare(man, case, out_dir, r.stdout)


def test_dynamic_batch_model_at_three_batch_sizes(model_dir, tmp_path):
    man = export_models.export_one("cnn_dynamic_batch", model_dir)
    sizes = []
    for i, case in enumerate(man["cases"][1:]):
        r, out_dir = run_case(man, case, tmp_path / f"b{i}")
        compare(man, case, out_dir, r.stdout)
        sizes.append(case["outputs"][0]["shape"][0])
    assert sizes == [1, 3, 5]


def test_check_reports_every_node_supported_for_resnet18(model_dir):
    man = export_models.export_one("resnet18", model_dir)
    r = subprocess.run([str(CLI), "check", str(Path(man["dir"]) / man["model"]), "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr + r.stdout
    rep = json.loads(r.stdout)
    assert rep["unsupported"] == []
    # torch's own count of call_function nodes, minus the getitems the serializer folds into outputs
    assert rep["backends"]["cpu"]["supported"] == rep["nodes"] > 0
    convs = [o for o in rep["ops"] if o["op"] == "convolution"]
    assert convs and convs[0]["count"] == 20  # resnet18: stem + 16 block convs + 3 downsample convs


def test_run_with_random_inputs_is_deterministic_and_summarized(model_dir, tmp_path):
    man = export_models.export_one("cnn_dynamic_batch", model_dir)
    model = str(Path(man["dir"]) / man["model"])
    outs = []
    for k in range(2):
        r = subprocess.run([str(CLI), "run", model, "--seed", "7", "--output-dir", str(tmp_path / str(k))],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        outs.append(np.load(tmp_path / str(k) / "linear.npy"))
        # symbolic batch at its export-time value (2)
        assert "output linear: f32[2, 10] mean" in r.stdout and "max|x|" in r.stdout
    np.testing.assert_array_equal(outs[0], outs[1])
    r = subprocess.run([str(CLI), "run", model, "--shape", "x=4,3,32,32", "--output-dir", str(tmp_path / "s")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "s" / "linear.npy").shape == (4, 10)


class _SymExprs(torch.nn.Module):
    """Sizes 2*s, 4*s and s+1 from sym_size.int and _operator mul/add nodes, and a scalar in a
    Tensor slot (mul.Tensor(x, 2))."""

    def forward(self, x):
        y = torch.cat([x, x * 2], 0)
        z = y.reshape(y.shape[0] * 2, -1)
        return z[: x.shape[0] + 1], y.sum(0)


def test_symbolic_size_arithmetic_matches_pytorch_at_two_sizes(tmp_path):
    b = torch.export.Dim("b", min=2, max=32)
    ep = torch.export.export(_SymExprs(), (torch.randn(4, 6),), dynamic_shapes=({0: b},))
    ep = ep.run_decompositions(export_models.decomp_table())
    path = tmp_path / "sym.pt2"
    torch.export.save(ep, str(path))
    r = subprocess.run([str(CLI), "check", str(path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "symbol s" in r.stdout and "in [2, 32], opt 4" in r.stdout
    for n in (3, 7):
        x = torch.randn(n, 6)
        np.save(tmp_path / "x.npy", x.numpy())
        out = tmp_path / f"o{n}"
        r = subprocess.run([str(CLI), "run", str(path), "--input", f"x={tmp_path / 'x.npy'}", "--output-dir", str(out)],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        want = _SymExprs()(x)
        names = [ln.split(":")[0][len("output "):] for ln in r.stdout.splitlines() if ln.startswith("output ")]
        for name, w in zip(names, want):
            np.testing.assert_allclose(np.load(out / f"{name}.npy"), w.numpy(), rtol=1e-6, atol=1e-6)
        assert np.load(out / f"{names[0]}.npy").shape == (n + 1, 3)
