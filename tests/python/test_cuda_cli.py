"""CUDA engines through the command line: `tensorc build --device cuda` records the GPU and library
versions that PyTorch reports for the same device; `tensorc run` on a CUDA engine matches eager
PyTorch and is bit-identical across processes and against the engine built in-process; `tensorc bench`
reports GPU time from CUDA events; engines patched to another compute capability or another cuDNN
major version are rejected with the rebuild command; an f16-exported ResNet-50 builds, benches and
matches PyTorch (issue 5). GPU tests skip with the reason on a machine without a GPU or a CUDA build;
the checks that CUDA paths fail loudly there run instead."""
import json
import re
import struct
import subprocess

import numpy as np
import pytest
import torch

from test_engine_files import hash64, sections, with_checksum
from test_pt2_models import CLI, ROOT

pytestmark = pytest.mark.skipif(CLI is None, reason="tensorc CLI not found: build it or set TENSORC_CLI")

MODEL = ROOT / "examples" / "model.pt2"
INPUT = ROOT / "examples" / "input.npy"


def tc(*args, timeout=600):
    r = subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, timeout=timeout)
    assert r.returncode >= 0, f"tensorc died from signal {-r.returncode}:\n{r.stderr}"
    return r


def _cuda_build():
    return CLI is not None and "cuda" in tc("version").stdout


def _gpu_reason():
    if CLI is None:
        return "tensorc CLI not found"
    if not _cuda_build():
        return "tensorc was built without the CUDA backend (configure with -DTENSORC_CUDA=ON)"
    if not torch.cuda.is_available():
        return "no GPU: torch sees no CUDA device"
    return None


GPU_REASON = _gpu_reason()
needs_gpu = pytest.mark.skipif(GPU_REASON is not None, reason=f"CUDA CLI test: {GPU_REASON}")


# ---- no GPU: the CUDA paths fail loudly ---------------------------------------------------------

@pytest.mark.skipif(CLI is None or _cuda_build(), reason="only for a build without the CUDA backend")
@pytest.mark.parametrize("cmd", ["run", "bench"])
def test_device_cuda_without_cuda_backend_says_so(cmd):
    r = tc(cmd, MODEL, "--device", "cuda")
    assert r.returncode == 1 and "no CUDA backend" in r.stderr and "TENSORC_CUDA=ON" in r.stderr, r.stderr


@pytest.mark.skipif(CLI is None or not _cuda_build() or torch.cuda.is_available(),
                    reason="only for a CUDA build on a machine without a GPU")
@pytest.mark.parametrize("cmd", ["run", "bench", "build"])
def test_device_cuda_without_gpu_says_so(cmd, tmp_path):
    extra = ["-o", tmp_path / "x.tce"] if cmd == "build" else []
    r = tc(cmd, MODEL, "--device", "cuda", *extra)
    assert r.returncode == 1 and "no usable CUDA device" in r.stderr, r.stderr
    assert not (tmp_path / "x.tce").exists()


# ---- engines on the GPU -------------------------------------------------------------------------

def build(path, *opts, model=MODEL):
    r = tc("build", model, "-o", path, "--device", "cuda", *opts)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"built {path}: cuda engine for cuda:0 "), r.stdout
    return path


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """Default options (TF32 allowed): the same options `tensorc run MODEL --device cuda` builds with."""
    if GPU_REASON:
        pytest.skip(GPU_REASON)
    return build(tmp_path_factory.mktemp("cuda") / "model.tce")


@pytest.fixture(scope="module")
def engine_heuristic(tmp_path_factory):
    # the libraries' first choices, as an in-process engine makes them: comparable bit for bit
    if GPU_REASON:
        pytest.skip(GPU_REASON)
    return build(tmp_path_factory.mktemp("cudah") / "model.tce", "--no-autotune")


@pytest.fixture(scope="module")
def engine_f32(tmp_path_factory):
    if GPU_REASON:
        pytest.skip(GPU_REASON)
    return build(tmp_path_factory.mktemp("cuda32") / "model.tce", "--no-tf32")


def run_outputs(target, out_dir, *extra):
    r = tc("run", target, "--output-dir", out_dir, *extra)
    assert r.returncode == 0, r.stderr
    files = {p.name: p.read_bytes() for p in out_dir.glob("*.npy")}
    assert files, r.stdout
    return r, files


def nodes_after_bn_folding(path):
    """The nodes an engine of the archive at `path` has: its ATen compute nodes (not getitem or
    sym_size), less the batch norms right after a convolution, which the build's passes fold into the
    convolution's weights."""
    ep = torch.export.load(str(path))
    bn = torch.ops.aten._native_batch_norm_legit_no_training.default
    nodes = [n for n in ep.graph.nodes if n.op == "call_function" and isinstance(n.target, torch._ops.OpOverload)
             and n.target is not torch.ops.aten.sym_size.int]
    folded = [n for n in nodes if n.target is bn and n.args[0].target is torch.ops.aten.convolution.default
              and len(n.args[0].users) == 1]
    return len(nodes) - len(folded)


def test_nodes_after_bn_folding_is_what_a_cpu_build_keeps(tmp_path):
    # the count the GPU test below expects, checked where every machine can: a CPU engine runs the same passes
    r = tc("build", MODEL, "-o", tmp_path / "m.tce")
    assert r.returncode == 0, r.stderr
    info = json.loads(tc("inspect", tmp_path / "m.tce", "--json").stdout)
    assert len(info["steps"]) == nodes_after_bn_folding(MODEL)
    assert "_native_batch_norm_legit_no_training" not in {s["op"] for s in info["steps"]}


@needs_gpu
def test_build_records_the_gpu_pytorch_sees(engine):
    info = json.loads(tc("inspect", engine, "--json").stdout)
    t = info["target"]
    props = torch.cuda.get_device_properties(0)
    assert t["backend"] == "cuda" and t["device"] == torch.cuda.get_device_name(0)
    assert t["compute_capability"] == "%d.%d" % torch.cuda.get_device_capability(0)
    assert t["sm_count"] == props.multi_processor_count
    assert t["cuda"].split(".")[0] == torch.version.cuda.split(".")[0]
    assert int(t["cudnn"].split(".")[0]) == torch.backends.cudnn.version() // 10000
    assert t["cublaslt"] and t["nvrtc"] and t["driver"] not in ("", "none")
    assert info["loadable_here"] is True and info["load_error"] is None
    impl = {s["op"]: s["implementation"] for s in info["steps"]}
    assert impl["convolution"].startswith("cuda:cudnn") and impl["linear"].startswith("cuda:cublaslt")
    prec = {s["op"]: s["precision"] for s in info["steps"]}
    assert prec["convolution"] == "tf32" and prec["relu"] == "f32"
    cs = info["cuda_steps"]
    want = nodes_after_bn_folding(MODEL)
    assert cs["steps"] + cs["fused_nodes"] == len(info["steps"]) == want and len(cs["lines"]) == cs["steps"]
    assert "_native_batch_norm_legit_no_training" not in {s["op"] for s in info["steps"]}
    text = tc("inspect", engine).stdout
    assert f"target: cuda, {torch.cuda.get_device_name(0)} (compute capability" in text


def step_records(data):
    """(step, kind, key, description, payload) of every record in the step table of engine bytes."""
    off, size = sections(data)[4]
    n = struct.unpack_from("<I", data, off)[0]
    pos, out = off + 4, []
    for _ in range(n):
        step, kind, rsize = struct.unpack_from("<IIQ", data, pos)
        body = data[pos + 16:pos + 16 + rsize]
        kl, dl = struct.unpack_from("<II", body, 0)
        out.append((step, kind, body[8:8 + kl], body[8 + kl:8 + kl + dl].decode(), body[8 + kl + dl:]))
        pos += 16 + (rsize + 7) // 8 * 8
    return out, (off, size)


@needs_gpu
def test_engine_file_stores_the_chosen_plans(engine):
    data = engine.read_bytes()
    recs, _ = step_records(data)
    kinds = {k for _, k, _, _, _ in recs}
    assert kinds == {1, 2}, recs  # cuDNN plans for the convolutions, cuBLASLt algorithms for linear
    for step, kind, key, desc, payload in recs:
        if kind == 1:
            assert payload[0] in (0, 1) and payload[2:4] == b"\0\0" and payload[4:5] == b"{", payload[:16]
            assert desc.startswith("cudnn engine ")
        else:
            assert len(payload) == 64 and desc.startswith("cublaslt algo ")
    info = json.loads(tc("inspect", engine, "--json").stdout)
    assert info["memory"]["step_records"] == len(recs)
    by_step = {i: s["implementation"] for i, s in enumerate(info["steps"])}
    for step, kind, _, desc, _ in recs:
        assert by_step[step] == "cuda:" + desc[:58], (step, by_step[step], desc)


@needs_gpu
def test_tuned_engine_is_bit_identical_across_loads(tmp_path):
    # tactic timing may pick other plans in another process; the stored plans make loads agree
    import os
    env = dict(os.environ, TENSORC_AUTOTUNE="1")
    path = tmp_path / "tuned.tce"
    r = subprocess.run([str(CLI), "build", MODEL, "-o", path, "--device", "cuda"], capture_output=True, text=True,
                       timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    outs = [run_outputs(path, tmp_path / f"o{i}", "--input", f"x={INPUT}")[1] for i in range(3)]
    assert outs[0] == outs[1] == outs[2]


@needs_gpu
def test_a_damaged_plan_record_is_chosen_again(engine_f32, tmp_path):
    engine = engine_f32  # full f32: a plan chosen again computes within rounding of the stored one
    data = bytearray(engine.read_bytes())
    recs, (off, _) = step_records(bytes(data))
    # break the JSON text of every cuDNN plan: the loader must choose those plans again and still run
    n = struct.unpack_from("<I", data, off)[0]
    pos = off + 4
    broken = 0
    for _ in range(n):
        _, kind, rsize = struct.unpack_from("<IIQ", data, pos)
        kl, dl = struct.unpack_from("<II", data, pos + 16)
        if kind == 1:
            data[pos + 16 + 8 + kl + dl + 4] = ord("#")
            broken += 1
        pos += 16 + (rsize + 7) // 8 * 8
    assert broken
    bad = tmp_path / "bad.tce"
    bad.write_bytes(with_checksum(bytes(data)))
    _, good_out = run_outputs(engine, tmp_path / "g", "--input", f"x={INPUT}")
    _, bad_out = run_outputs(bad, tmp_path / "b", "--input", f"x={INPUT}")
    a = np.load(tmp_path / "g" / next(iter(good_out)))
    b = np.load(tmp_path / "b" / next(iter(bad_out)))
    assert np.abs(a - b).max() <= 1e-3 * np.abs(a).max()
    # lengths that do not add up are a damaged file
    data = bytearray(engine.read_bytes())
    struct.pack_into("<I", data, off + 4 + 16, 1 << 30)
    bad.write_bytes(with_checksum(bytes(data)))
    r = tc("run", bad, "--input", f"x={INPUT}")
    assert r.returncode != 0 and "record" in r.stderr and "malformed" in r.stderr, r.stderr


@needs_gpu
def test_timing_cache_is_created_reused_and_replaced_when_damaged(tmp_path):
    cache = tmp_path / "plans.tcc"
    r1 = tc("build", MODEL, "-o", tmp_path / "a.tce", "--device", "cuda", "--timing-cache", cache)
    assert r1.returncode == 0 and "does not exist yet" in r1.stderr, r1.stderr
    assert "plan choice(s) read" in r1.stdout and cache.read_bytes()[:8] == b"TCTCACHE", r1.stdout
    written = int(r1.stdout.split("read, ")[1].split(" written")[0])
    assert written > 0
    # the second build takes every choice from the cache: the same records, the same bits
    r2 = tc("build", MODEL, "-o", tmp_path / "b.tce", "--device", "cuda", "--timing-cache", cache)
    assert r2.returncode == 0, r2.stderr
    assert f"timing cache {cache}: {written} plan choice(s) read, {written} written" in r2.stdout, r2.stdout
    ra, _ = step_records((tmp_path / "a.tce").read_bytes())
    rb, _ = step_records((tmp_path / "b.tce").read_bytes())
    assert sorted((k, key, p) for _, k, key, _, p in ra) == sorted((k, key, p) for _, k, key, _, p in rb)
    _, a = run_outputs(tmp_path / "a.tce", tmp_path / "oa", "--input", f"x={INPUT}")
    _, b = run_outputs(tmp_path / "b.tce", tmp_path / "ob", "--input", f"x={INPUT}")
    assert a == b
    # damaged: noted, not used, replaced by a good one
    data = bytearray(cache.read_bytes())
    data[20] ^= 0xFF
    cache.write_bytes(bytes(data))
    r3 = tc("build", MODEL, "-o", tmp_path / "c.tce", "--device", "cuda", "--timing-cache", cache)
    assert r3.returncode == 0 and "damaged" in r3.stderr and "will be replaced" in r3.stderr, r3.stderr
    assert ": 0 plan choice(s) read" in r3.stdout
    r4 = tc("build", MODEL, "-o", tmp_path / "d.tce", "--device", "cuda", "--timing-cache", cache)
    assert f"{written} plan choice(s) read" in r4.stdout, r4.stdout


@needs_gpu
def test_run_matches_eager_pytorch(engine_f32, tmp_path):
    r, files = run_outputs(engine_f32, tmp_path, "--input", f"x={INPUT}")
    got = np.load(tmp_path / next(iter(files)))
    ep = torch.export.load(str(MODEL))
    with torch.no_grad():
        want = ep.module()(torch.from_numpy(np.load(INPUT))).numpy()
    assert got.shape == want.shape == (2, 10) and got.dtype == np.float32
    assert np.abs(got - want).max() / np.abs(want).max() <= 1e-4
    assert r.stdout.startswith("output linear: f32[2, 10] mean ")


@needs_gpu
def test_round_trip_is_bit_identical_across_processes(engine_heuristic, tmp_path):
    engine = engine_heuristic
    _, first = run_outputs(engine, tmp_path / "a", "--input", f"x={INPUT}")
    _, second = run_outputs(engine, tmp_path / "b", "--input", f"x={INPUT}")
    _, in_process = run_outputs(MODEL, tmp_path / "m", "--device", "cuda", "--input", f"x={INPUT}")
    assert first == second, "two loads of the same CUDA engine gave different bytes"
    assert first == in_process, "the loaded CUDA engine differs from the one built in-process"


@needs_gpu
def test_random_inputs_at_other_batch_sizes_are_bit_identical(engine_heuristic, tmp_path):
    engine = engine_heuristic
    for b in (1, 5):
        args = ("--shape", f"x={b},3,32,32", "--seed", "3")
        _, e = run_outputs(engine, tmp_path / f"e{b}", *args)
        _, m = run_outputs(MODEL, tmp_path / f"m{b}", "--device", "cuda", *args)
        assert e == m
        assert np.load(tmp_path / f"e{b}" / next(iter(e))).shape == (b, 10)


@needs_gpu
def test_cuda_engine_graph_on_cpu_matches_the_gpu(engine_f32, tmp_path):
    _, gpu = run_outputs(engine_f32, tmp_path / "g", "--input", f"x={INPUT}")
    _, cpu = run_outputs(engine_f32, tmp_path / "c", "--device", "cpu", "--input", f"x={INPUT}")
    a = np.load(tmp_path / "g" / next(iter(gpu)))
    b = np.load(tmp_path / "c" / next(iter(cpu)))
    assert np.abs(a - b).max() / np.abs(b).max() <= 1e-4


@needs_gpu
def test_bench_json_reports_gpu_time(engine):
    r = tc("bench", engine, "--warmup", "2", "--iterations", "50", "--batch", "4", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["backend"] == "cuda" and j["device"].startswith("cuda:0 " + torch.cuda.get_device_name(0))
    assert j["inputs"] == "x=4x3x32x32" and j["batch"] == 4 and j["iterations"] == 50
    lat, gpu = j["latency_ms"], j["gpu_time_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert j["first_run_ms"] > 0 and j["second_run_ms"] > 0
    assert gpu["iterations"] == 50 and gpu["mean"] > 0
    assert gpu["mean"] == pytest.approx(gpu["total"] / 50, rel=1e-3)
    # enqueued back to back, a run costs the GPU less than a synchronous round trip costs the host
    assert gpu["mean"] < lat["max"]
    assert j["throughput"]["inferences_per_s"] == pytest.approx(4 * j["throughput"]["executions_per_s"])


@needs_gpu
def test_bench_text_and_model_on_the_fly(engine):
    r = tc("bench", MODEL, "--device", "cuda", "--warmup", "1", "--iterations", "5")
    assert r.returncode == 0, r.stderr
    for key in ("device: cuda:0 ", "first run: ", "captures the CUDA graph", "host latency (ms): min",
                "gpu time (ms): mean", "throughput:"):
        assert key in r.stdout, r.stdout


@needs_gpu
def test_bench_profile_times_every_step(engine):
    r = tc("bench", engine, "--profile", "--warmup", "1", "--iterations", "5")
    assert r.returncode == 0, r.stderr
    m = re.search(r"tensorc profile: (\d+) run\(s\), (\d+) steps, ([0-9.]+) us of GPU time per run", r.stderr)
    assert m, r.stderr
    runs, steps, total = int(m.group(1)), int(m.group(2)), float(m.group(3))
    assert runs >= 5 and steps > 0 and total > 0, m.group(0)
    rows = re.findall(r"^\s*([0-9.]+)\s+([0-9.]+)%\s+(\d+)\s+node '", r.stderr, re.M)
    assert len(rows) == steps, r.stderr
    assert sorted(int(i) for _, _, i in rows) == list(range(steps))  # every step once
    us = [float(u) for u, _, _ in rows]
    # each row is rounded to 0.1 us
    assert us == sorted(us, reverse=True) and sum(us) == pytest.approx(total, rel=0.01, abs=0.06 * steps + 0.1)
    assert sum(float(p) for _, p, _ in rows) == pytest.approx(100, abs=0.1 * steps + 0.5)


def patched_target(data, cc=None, cudnn_major_digit=False):
    """The engine with its target's compute capability replaced, or the first digit of its cuDNN version
    changed (same length, so offsets stay), and the checksum recomputed."""
    d = bytearray(data)
    toff, _ = sections(data)[1]
    assert struct.unpack_from("<I", d, toff)[0] == 1
    p = toff + 4
    p += 4 + struct.unpack_from("<I", d, p)[0]  # device name
    if cc:
        struct.pack_into("<II", d, p, *cc)
    p += 12
    p += 4 + struct.unpack_from("<I", d, p)[0]  # CUDA runtime version
    n = struct.unpack_from("<I", d, p)[0]       # cuDNN version
    if cudnn_major_digit:
        assert n > 0 and chr(d[p + 4]).isdigit()
        d[p + 4] = ord("8") if d[p + 4] != ord("8") else ord("7")
    out = with_checksum(d)
    assert struct.unpack_from("<Q", out, len(out) - 8)[0] == hash64(out[:-8])
    return out


@needs_gpu
def test_other_compute_capability_is_rejected_with_rebuild_command(engine, tmp_path):
    p = tmp_path / "cc.tce"
    p.write_bytes(patched_target(engine.read_bytes(), cc=(1, 0)))
    here = "%d.%d" % torch.cuda.get_device_capability(0)
    for cmd in ("run", "bench"):
        r = tc(cmd, p)
        assert r.returncode == 1, r.stderr
        assert "compute capability 1.0" in r.stderr and f"compute capability {here}" in r.stderr, r.stderr
        assert "Rebuild the engine on this machine with: tensorc build" in r.stderr and "--device cuda" in r.stderr
    r = tc("run", p, "--device", "cpu", "--input", f"x={INPUT}")
    assert r.returncode == 0, r.stderr
    info = json.loads(tc("inspect", p, "--json").stdout)
    assert info["loadable_here"] is False and "compute capability 1.0" in info["load_error"]
    assert {s["implementation"] for s in info["steps"] if s["op"] == "convolution"} == {"cuda:cudnn"}


@needs_gpu
def test_other_cudnn_major_version_is_rejected_with_rebuild_command(engine, tmp_path):
    p = tmp_path / "dnn.tce"
    p.write_bytes(patched_target(engine.read_bytes(), cudnn_major_digit=True))
    r = tc("run", p)
    assert r.returncode == 1, r.stderr
    assert "built with cuDNN" in r.stderr and "another major version" in r.stderr, r.stderr
    assert "Rebuild the engine on this machine with: tensorc build" in r.stderr


@needs_gpu
def test_fp16_on_an_f32_model_is_lowered_or_refused_clearly(tmp_path):
    out = tmp_path / "x.tce"
    r = tc("build", MODEL, "-o", out, "--device", "cuda", "--fp16")
    if r.returncode == 0:  # the precision pass is in this build: the engine computes in f16
        info = json.loads(tc("inspect", out, "--json").stdout)
        assert "f16" in {s["precision"] for s in info["steps"]}
    else:
        assert r.returncode == 1 and "nothing of it was lowered to f16" in r.stderr and "model.half()" in r.stderr
        assert not out.exists()


# ---- issue 5: an f16 ResNet-50 builds, benches and round-trips ---------------------------------

@pytest.fixture(scope="module")
def resnet50_f16(tmp_path_factory):
    if GPU_REASON:
        pytest.skip(GPU_REASON)
    torchvision = pytest.importorskip("torchvision")
    import export_models
    d = tmp_path_factory.mktemp("r50")
    torch.manual_seed(0)
    model = torchvision.models.resnet50(num_classes=1000).eval().half()
    x = torch.randn(1, 3, 224, 224).half()
    with torch.no_grad():
        ep = torch.export.export(model, (x,)).run_decompositions(export_models.decomp_table())
    torch.export.save(ep, str(d / "resnet50.pt2"))
    np.save(d / "x.npy", x.numpy())
    with torch.no_grad():
        want = model.cuda()(x.cuda()).float().cpu().numpy()
    return d, want


@needs_gpu
def test_resnet50_fp16_builds_benches_and_round_trips(resnet50_f16, tmp_path):
    d, want = resnet50_f16
    engine = tmp_path / "r.tce"
    r = tc("build", d / "resnet50.pt2", "--fp16", "-o", engine, "--device", "cuda")
    assert r.returncode == 0, r.stderr
    r = tc("bench", engine)
    assert r.returncode == 0, r.stderr
    print(r.stdout)
    assert "gpu time (ms): mean" in r.stdout
    _, a = run_outputs(engine, tmp_path / "a", "--input", f"x={d / 'x.npy'}")
    _, b = run_outputs(engine, tmp_path / "b", "--input", f"x={d / 'x.npy'}")
    assert a == b, "reloaded f16 engine is not bit-identical"
    got = np.load(tmp_path / "a" / next(iter(a))).astype(np.float64)
    ref = want.astype(np.float64).reshape(got.shape)
    cos = float((got * ref).sum() / np.sqrt((got * got).sum() * (ref * ref).sum()))
    assert cos >= 0.999 and np.abs(got - ref).max() / np.abs(ref).max() <= 1e-2, cos
