"""Damaged and unsupported .pt2 archives and bad command lines: `tensorc check` / `tensorc run` must
say what is wrong and exit 1 (or 2 for bad usage), never crash. Archives are made with
torch.export.save from a tiny model and then damaged with zipfile."""
import io
import json
import subprocess
import zipfile

import numpy as np
import pytest
import torch

import export_models
from test_pt2_models import CLI

pytestmark = pytest.mark.skipif(CLI is None, reason="tensorc CLI not found: build it or set TENSORC_CLI")


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return torch.relu(self.fc(x))


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    torch.manual_seed(0)
    ep = torch.export.export(_Tiny().eval(), (torch.randn(2, 4),)).run_decompositions(export_models.decomp_table())
    path = tmp_path_factory.mktemp("pt2") / "tiny.pt2"
    torch.export.save(ep, str(path))
    return path


def tc(*args):
    r = subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, timeout=120)
    assert r.returncode >= 0, f"tensorc died from signal {-r.returncode}:\n{r.stderr}"
    return r


def rewrite(src, dst, drop=(), edit=None, add=None):
    """Copies archive src to dst (stored entries), dropping entries whose name ends with any of drop,
    passing each entry's bytes through edit(name, data), and appending add {suffix: bytes}."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        prefix = zin.namelist()[0].split("/")[0] + "/"
        for info in zin.infolist():
            if any(info.filename.endswith(d) for d in drop):
                continue
            data = zin.read(info.filename)
            if edit:
                data = edit(info.filename, data)
            zout.writestr(info.filename, data)
        for suffix, data in (add or {}).items():
            zout.writestr(prefix + suffix, data)
    return dst


def edit_model_json(fn):
    def edit(name, data):
        if name.endswith("models/model.json"):
            return fn(data)
        return data
    return edit


def assert_fails(r, *phrases, rc=1):
    assert r.returncode == rc, f"exit {r.returncode}, want {rc}:\n{r.stderr}"
    for p in phrases:
        assert p in r.stderr, f"{p!r} not in:\n{r.stderr}"


def test_good_archive_runs_and_matches_pytorch(good, tmp_path):
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = tc("run", good, "--input", f"x={tmp_path / 'x.npy'}", "--output-dir", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    ep = torch.export.load(str(good))
    want = ep.module()(torch.from_numpy(x)).detach().numpy()
    got = np.load(tmp_path / "out" / "relu.npy")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_rewritten_unaligned_archive_still_imports(good, tmp_path):
    # Python's zipfile does not 64-byte align entries: weights must be copied instead of borrowed
    r = tc("check", rewrite(good, tmp_path / "u.pt2"))
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("cmd", ["check", "run"])
@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
def test_truncated_archive(good, tmp_path, cmd, keep):
    data = good.read_bytes()
    p = tmp_path / "t.pt2"
    p.write_bytes(data[: int(len(data) * keep)])
    assert_fails(tc(cmd, p), "not a readable archive")


def test_not_a_file(tmp_path):
    assert_fails(tc("check", tmp_path / "missing.pt2"), "cannot open")


def test_missing_weights_file(good, tmp_path):
    p = rewrite(good, tmp_path / "m.pt2", drop=["data/weights/weight_0"])
    assert_fails(tc("run", p), "the data of parameter 'fc.weight' is missing", "weight_0")


def test_weights_file_too_short(good, tmp_path):
    p = rewrite(good, tmp_path / "s.pt2", edit=lambda n, d: d[:8] if n.endswith("weights/weight_0") else d)
    assert_fails(tc("check", p), "parameter 'fc.weight' needs 48 bytes", "truncated")


def test_wrong_schema_version(good, tmp_path):
    def bump(data):
        m = json.loads(data)
        m["schema_version"]["major"] = 9
        return json.dumps(m).encode()
    p = rewrite(good, tmp_path / "v.pt2", edit=edit_model_json(bump))
    assert_fails(tc("check", p), "schema version 9.", "not supported", "schema 8")


def test_wrong_archive_version(good, tmp_path):
    p = rewrite(good, tmp_path / "a.pt2", edit=lambda n, d: b"1" if n.endswith("/archive_version") else d)
    assert_fails(tc("run", p), "archive version '1' is not supported")


def test_legacy_pickled_weights_layout(good, tmp_path):
    p = rewrite(good, tmp_path / "l.pt2", add={"data/weights/model.pt": b"PK\x03\x04legacy"})
    assert_fails(tc("check", p), "legacy pickled layout", "re-export with torch >= 2.9")


@pytest.mark.parametrize("cut", [0.3, 0.7])
def test_corrupted_model_json(good, tmp_path, cut):
    p = rewrite(good, tmp_path / "j.pt2", edit=edit_model_json(lambda d: d[: int(len(d) * cut)]))
    assert_fails(tc("check", p), "models/model.json is not valid JSON", "line")


def test_corrupted_weights_config(good, tmp_path):
    p = rewrite(good, tmp_path / "c.pt2",
                edit=lambda n, d: d.replace(b'"config"', b'"config" ::') if n.endswith("_weights_config.json") else d)
    assert_fails(tc("check", p), "model_weights_config.json is not valid JSON")


def test_tensor_values_disagreeing_with_inference_names_node_and_op(good, tmp_path):
    def lie(data):
        m = json.loads(data)
        tv = m["graph_module"]["graph"]["tensor_values"]
        tv["linear"]["sizes"][1] = {"as_int": 5}
        return json.dumps(m).encode()
    p = rewrite(good, tmp_path / "tv.pt2", edit=edit_model_json(lie))
    assert_fails(tc("check", p), "node 'linear' (linear)", "f32[2, 3]", "f32[2, 5]")


def test_symbolic_max_is_rejected_clearly(good, tmp_path):
    def sym(data):
        m = json.loads(data)
        tv = m["graph_module"]["graph"]["tensor_values"]
        tv["x"]["sizes"][0] = {"as_expr": {"expr_str": "Max(Symbol('s0', integer=True), Integer(2))", "hint": None}}
        return json.dumps(m).encode()
    p = rewrite(good, tmp_path / "mx.pt2", edit=edit_model_json(sym))
    assert_fails(tc("check", p), "uses Max")


@pytest.mark.parametrize("arr,phrase", [
    (np.zeros((3, 4), np.float32), "is f32[3, 4], but the model expects f32[2, 4]"),
    (np.zeros((2, 4), np.int64), "is i64[2, 4], but the model expects f32[2, 4]"),
    (np.zeros((2, 4), np.float16), "is f16[2, 4], but the model expects f32[2, 4]"),
    (np.zeros((8,), np.float32), "is f32[8], but the model expects f32[2, 4]"),
])
def test_input_npy_of_wrong_shape_or_dtype(good, tmp_path, arr, phrase):
    np.save(tmp_path / "x.npy", arr)
    assert_fails(tc("run", good, "--input", f"x={tmp_path / 'x.npy'}"), "input 'x'", phrase)


def test_input_npy_damaged(good, tmp_path):
    (tmp_path / "x.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    assert_fails(tc("run", good, "--input", f"x={tmp_path / 'x.npy'}"), "input 'x' from")


def test_input_npy_missing(good, tmp_path):
    assert_fails(tc("run", good, "--input", f"x={tmp_path / 'nope.npy'}"), "input 'x' from")


@pytest.mark.parametrize("args,phrase", [
    (["run"], "no model given"),
    (["check"], "no model given"),
    (["run", "M", "--bogus"], "unknown or incomplete option '--bogus'"),
    (["run", "M", "--device", "tpu"], "--device wants cpu or cuda, got 'tpu'"),
    (["run", "M", "--input", "x"], "--input wants NAME=FILE.npy"),
    (["run", "M", "--seed", "abc"], "--seed wants an integer"),
    (["check", "M", "--backend", "gpu"], "unknown backend 'gpu'"),
    (["run", "M", "--input"], "unknown or incomplete option '--input'"),
])
def test_bad_usage_exits_2(good, args, phrase):
    args = [str(good) if a == "M" else a for a in args]
    assert_fails(tc(*args), phrase, rc=2)


def test_unknown_input_name_exits_2(good, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 4), np.float32))
    assert_fails(tc("run", good, "--input", f"y={tmp_path / 'x.npy'}"), "no input named 'y'", "x", rc=2)


def test_help(good):
    for cmd in ("run", "check"):
        r = tc(cmd, "--help")
        assert r.returncode == 0 and f"usage: tensorc {cmd}" in r.stdout


def test_op_outside_the_table_is_reported_by_check(tmp_path):
    class Odd(torch.nn.Module):
        def forward(self, x):
            return torch.special.bessel_j0(torch.relu(x))
    ep = torch.export.export(Odd(), (torch.randn(3),)).run_decompositions()
    p = tmp_path / "odd.pt2"
    torch.export.save(ep, str(p))
    r = tc("check", p)
    assert r.returncode == 1, r.stderr + r.stdout
    assert "node 'special_bessel_j0' (special_bessel_j0): not in the op table" in r.stdout
    assert tc("check", p, "--allow-unsupported").returncode == 0
    rep = json.loads(tc("check", p, "--json", "--allow-unsupported").stdout)
    assert [(u["node"], u["op"]) for u in rep["unsupported"]] == [("special_bessel_j0", "special_bessel_j0")]
    r = tc("run", p)
    assert_fails(r, "cannot build an engine", "special_bessel_j0")
