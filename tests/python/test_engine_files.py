"""Engine files (.tce) through the CLI: an engine built from examples/model.pt2 and run in a new process
gives bit-identical outputs to the model itself and matches eager PyTorch; the file's envelope
(magic, version, size, section table, 64-byte aligned weights, checksum) is checked with an
independent Python implementation of the format's hash; damaged files (truncated, corrupted, newer
version, CUDA engine without CUDA, unknown op, bad magic) are rejected with exit status 1 and a message
that says what to do; --shape changes the recorded ranges; inspect reports the weights PyTorch has."""
import json
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from test_pt2_models import CLI, ROOT

pytestmark = pytest.mark.skipif(CLI is None, reason="tensorc CLI not found: build it or set TENSORC_CLI")

MODEL = ROOT / "examples" / "model.pt2"
INPUT = ROOT / "examples" / "input.npy"

# ---- the format's hash, written from docs/engine-format.md ---------------------------------------
_M = (1 << 64) - 1
_K1, _K2, _K3 = 0x9E3779B97F4A7C15, 0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & _M


def hash64(b, seed=0):
    lanes = [(seed + _K1 * (i + 1)) & _M for i in range(4)]
    n, p = len(b), 0
    words = np.frombuffer(b[: n - n % 32], dtype="<u8").reshape(-1, 4) if n >= 32 else np.zeros((0, 4), "<u8")
    for row in words.tolist():
        for i in range(4):
            lanes[i] = (_rotl(lanes[i] ^ ((row[i] * _K2) & _M), 29) * _K1) & _M
    p = n - n % 32
    h = (seed ^ ((n * _K3) & _M)) & _M
    for i in range(4):
        h = (_rotl(h ^ ((lanes[i] * _K2) & _M), 31) * _K1) & _M
    while n - p >= 8:
        h = (_rotl(h ^ ((int.from_bytes(b[p:p + 8], "little") * _K2) & _M), 31) * _K1) & _M
        p += 8
    while p < n:
        h = ((h ^ b[p]) * _K1) & _M
        p += 1
    h ^= h >> 33
    h = (h * _K3) & _M
    h ^= h >> 29
    h = (h * _K2) & _M
    h ^= h >> 32
    return h


def sections(data):
    n = struct.unpack_from("<I", data, 24)[0]
    out = {}
    for i in range(n):
        kind, _flags, off, size = struct.unpack_from("<IIQQ", data, 32 + 24 * i)
        out[kind] = (off, size)
    return out


def with_checksum(data):
    data = bytearray(data)
    struct.pack_into("<Q", data, len(data) - 8, hash64(bytes(data[:-8])))
    return bytes(data)


def tc(*args):
    r = subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, timeout=300)
    assert r.returncode >= 0, f"tensorc died from signal {-r.returncode}:\n{r.stderr}"
    return r


def has_cuda():
    return "cuda" in tc("version").stdout


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    path = tmp_path_factory.mktemp("tce") / "model.tce"
    r = tc("build", MODEL, "-o", path, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert path.stat().st_size > 90_000
    return path


def run_outputs(target, out_dir, *extra):
    r = tc("run", target, "--output-dir", out_dir, *extra)
    assert r.returncode == 0, r.stderr
    return {p.name: p.read_bytes() for p in Path(out_dir).glob("*.npy")}


def test_engine_in_new_process_is_bit_identical_to_model(engine, tmp_path):
    from_engine = run_outputs(engine, tmp_path / "e", "--input", f"x={INPUT}")
    from_model = run_outputs(MODEL, tmp_path / "m", "--input", f"x={INPUT}")
    assert from_engine.keys() == from_model.keys() and from_engine
    for name in from_engine:
        assert from_engine[name] == from_model[name], f"{name} differs"


def test_engine_matches_eager_pytorch(engine, tmp_path):
    out = run_outputs(engine, tmp_path, "--input", f"x={INPUT}")
    got = np.load(tmp_path / next(iter(out)))
    ep = torch.export.load(str(MODEL))
    with torch.no_grad():
        want = ep.module()(torch.from_numpy(np.load(INPUT))).numpy()
    assert got.shape == want.shape == (2, 10)
    assert np.abs(got - want).max() / np.abs(want).max() <= 1e-4


def test_dynamic_batch_bit_identical_at_other_sizes(engine, tmp_path):
    for b in (1, 5):
        shape = f"x={b},3,32,32"
        e = run_outputs(engine, tmp_path / f"e{b}", "--shape", shape, "--seed", "3")
        m = run_outputs(MODEL, tmp_path / f"m{b}", "--shape", shape, "--seed", "3")
        assert e == m
        assert np.load(tmp_path / f"e{b}" / next(iter(e))).shape == (b, 10)


def test_envelope_and_checksum_follow_the_spec(engine):
    data = engine.read_bytes()
    assert data[:8] == b"TCENGINE"
    version, flags, file_size, n_sections = struct.unpack_from("<IIQI", data, 8)
    assert (version, flags, file_size) == (1, 0, len(data)) and len(data) % 8 == 0
    assert struct.unpack_from("<Q", data, len(data) - 8)[0] == hash64(data[:-8])
    secs = sections(data)
    assert set(secs) == {1, 2, 3, 4, 5} and n_sections == 5
    woff, wsize = secs[5]
    assert woff % 64 == 0 and wsize >= 96936  # the example's weights after batch-norm folding
    # the target section starts with backend 0 and the device name "cpu"
    toff, _ = secs[1]
    backend, name_len = struct.unpack_from("<II", data, toff)
    assert backend == 0 and data[toff + 8:toff + 8 + name_len] == b"cpu"
    # CPU engines carry no step records
    assert struct.unpack_from("<I", data, secs[4][0])[0] == 0


def bad_file(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return p


@pytest.mark.parametrize("cut", [0, 7, 39, 200, -9, -1])
def test_truncated_engine_is_rejected(engine, tmp_path, cut):
    data = engine.read_bytes()
    p = bad_file(tmp_path, "cut.tce", data[:cut] if cut >= 0 else data[:len(data) + cut])
    r = tc("run", p)
    assert r.returncode == 1
    assert ("truncated" in r.stderr or "not a tensorc engine" in r.stderr) and "tensorc build" in r.stderr, r.stderr


def test_corrupted_engine_is_rejected_by_checksum(engine, tmp_path):
    data = bytearray(engine.read_bytes())
    for pos in (40, len(data) // 2, len(data) - 20):
        d = bytearray(data)
        d[pos] ^= 0x10
        r = tc("run", bad_file(tmp_path, "c.tce", bytes(d)))
        assert r.returncode == 1 and "corrupted" in r.stderr and "tensorc build" in r.stderr, r.stderr


def test_newer_format_version_is_rejected(engine, tmp_path):
    d = bytearray(engine.read_bytes())
    struct.pack_into("<I", d, 8, 7)
    r = tc("run", bad_file(tmp_path, "v.tce", with_checksum(d)))
    assert r.returncode == 1 and "format version 7" in r.stderr and "newer" in r.stderr, r.stderr


def test_bad_magic_is_rejected(engine, tmp_path):
    d = b"NOTANENG" + engine.read_bytes()[8:]
    r = tc("run", bad_file(tmp_path, "m.tce", d))
    assert r.returncode == 1 and "not a tensorc engine" in r.stderr, r.stderr


def cuda_target(data):
    """The engine with its target set to CUDA on a GPU of compute capability 1.0."""
    d = bytearray(data)
    toff, _ = sections(data)[1]
    struct.pack_into("<I", d, toff, 1)
    p = toff + 4
    p += 4 + struct.unpack_from("<I", d, p)[0]   # device name
    struct.pack_into("<III", d, p, 1, 0, 1)      # cc 1.0, 1 SM
    p += 12
    for _ in range(6):                           # 5 library versions, tensorc version
        p += 4 + struct.unpack_from("<I", d, p)[0]
    struct.pack_into("<I", d, p, 1)              # options.backend
    return with_checksum(d)


def test_cuda_engine_without_cuda_or_on_other_gpu_is_rejected(engine, tmp_path):
    p = bad_file(tmp_path, "cuda.tce", cuda_target(engine.read_bytes()))
    r = tc("run", p)
    assert r.returncode == 1
    if not has_cuda():
        assert "no CUDA backend" in r.stderr and "--device cpu" in r.stderr, r.stderr
    else:
        assert "compute capability" in r.stderr or "CUDA" in r.stderr, r.stderr
    # its graph still runs on the CPU when asked
    r = tc("run", p, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    if not has_cuda():  # inspect still shows it, through its graph
        r = tc("inspect", p)
        assert r.returncode == 0 and "target: cuda" in r.stdout and "cuda:?" in r.stdout, r.stdout + r.stderr


def test_unknown_op_is_rejected_with_rebuild_command(engine, tmp_path):
    data = engine.read_bytes()
    goff, gsize = sections(data)[3]
    at = data.index(b"\x04\x00\x00\x00relu", goff, goff + gsize)
    d = bytearray(data)
    d[at + 7] = ord("x")
    r = tc("run", bad_file(tmp_path, "op.tce", with_checksum(d)))
    assert r.returncode == 1 and "'relx'" in r.stderr and "rebuild it with: tensorc build" in r.stderr, r.stderr


def test_shape_override_is_recorded(tmp_path):
    p = tmp_path / "s.tce"
    r = tc("build", MODEL, "-o", p, "--device", "cpu", "--shape", "x=2:4:16")
    assert r.returncode == 0, r.stderr
    info = json.loads(tc("inspect", p, "--json").stdout)
    dim0 = info["inputs"][0]["shape"][0]
    assert (dim0["min"], dim0["opt"], dim0["max"]) == (2, 4, 16)
    assert info["build"]["shapes"] == "x=2:4:16"
    r = tc("run", p, "--shape", "x=17,3,32,32")
    assert r.returncode == 1 and "outside the range [2, 16]" in r.stderr, r.stderr


def test_inspect_reports_steps_and_pytorch_weight_bytes(engine, tmp_path):
    info = json.loads(tc("inspect", engine, "--json", "--dot", tmp_path / "g.dot").stdout)
    ep = torch.export.load(str(MODEL))
    # both batch norms follow convolutions with a bias, so folding removes exactly their tensors
    bn = ("features.1.", "features.5.")
    weights = sum(t.numel() * t.element_size() for k, t in ep.state_dict.items() if not k.startswith(bn))
    assert info["memory"]["weights_bytes"] == weights
    assert info["target"]["backend"] == "cpu" and info["format_version"] == 1
    ops = [s["op"] for s in info["steps"]]
    assert ops.count("convolution") == 3 and "linear" in ops and "_native_batch_norm_legit_no_training" not in ops
    assert {s["implementation"] for s in info["steps"] if s["op"] == "convolution"} == {"cpu:im2col+gemm"}
    assert all(s["precision"] == "f32" for s in info["steps"])
    assert info["source_model"]["name"] == "model.pt2"
    assert int(info["source_model"]["hash"], 16) == hash64(MODEL.read_bytes())
    dot = (tmp_path / "g.dot").read_text()
    assert dot.startswith("digraph") and dot.count("[label=\"#") == len(info["steps"])
