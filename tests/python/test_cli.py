"""The build, run, bench and inspect commands: --help for each, exit status 2 and a message naming the
problem for bad usage (unknown option, bad --shape syntax, bad numbers, missing arguments), 1 for
files that cannot be used (missing file, --device cuda on a build without CUDA, unwritable output),
and the bench report (text and JSON) on an engine and on a model."""
import json
import subprocess

import pytest

from test_pt2_models import CLI, ROOT

pytestmark = pytest.mark.skipif(CLI is None, reason="tensorc CLI not found: build it or set TENSORC_CLI")

MODEL = ROOT / "examples" / "model.pt2"


def tc(*args):
    r = subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, timeout=300)
    assert r.returncode >= 0, f"tensorc died from signal {-r.returncode}:\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "model.tce"
    r = tc("build", MODEL, "-o", path, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"built {path}: cpu engine, 11 steps"), r.stdout
    return path


@pytest.mark.parametrize("cmd", ["build", "run", "bench", "inspect"])
def test_help(cmd):
    r = tc(cmd, "--help")
    assert r.returncode == 0 and r.stdout.startswith(f"usage: tensorc {cmd}") and "Exit status" in r.stdout


def test_top_level_lists_new_commands():
    r = tc("--help")
    assert r.returncode == 0
    for cmd in ("build", "run", "bench", "inspect"):
        assert f"\n  {cmd} " in r.stdout


@pytest.mark.parametrize("cmd", ["build", "run", "bench", "inspect"])
def test_unknown_option_is_usage_error(cmd):
    r = tc(cmd, MODEL, "--bogus")
    assert r.returncode == 2 and "unknown or incomplete option '--bogus'" in r.stderr, r.stderr


@pytest.mark.parametrize("cmd", ["build", "bench", "inspect"])
def test_missing_positional_is_usage_error(cmd):
    r = tc(cmd)
    assert r.returncode == 2 and "no " in r.stderr and "usage:" in r.stderr, r.stderr


@pytest.mark.parametrize("cmd", ["run", "bench", "inspect"])
def test_missing_file(cmd, tmp_path):
    r = tc(cmd, tmp_path / "missing.tce")
    assert r.returncode == 1 and "missing.tce" in r.stderr, r.stderr


def test_build_no_autotune_is_accepted_and_changes_nothing_on_the_cpu(engine, tmp_path):
    path = tmp_path / "m.tce"
    r = tc("build", MODEL, "-o", path, "--device", "cpu", "--no-autotune")
    assert r.returncode == 0, r.stderr
    a, b = (json.loads(tc("inspect", p, "--json").stdout) for p in (engine, path))
    assert a["steps"] == b["steps"] and b["memory"]["step_records"] == 0
    assert "--no-autotune" in tc("build", "--help").stdout


def test_build_timing_cache_on_the_cpu_is_a_note(tmp_path):
    cache = tmp_path / "c.tcc"
    r = tc("build", MODEL, "-o", tmp_path / "m.tce", "--device", "cpu", "--timing-cache", cache)
    assert r.returncode == 0 and "CUDA engines only" in r.stderr, r.stderr
    assert not cache.exists()


def test_build_missing_model(tmp_path):
    r = tc("build", tmp_path / "missing.pt2", "-o", tmp_path / "x.tce")
    assert r.returncode == 1 and "cannot import" in r.stderr and "missing.pt2" in r.stderr, r.stderr
    assert not (tmp_path / "x.tce").exists()


def test_build_without_output_is_usage_error():
    r = tc("build", MODEL)
    assert r.returncode == 2 and "-o MODEL.tce" in r.stderr, r.stderr


@pytest.mark.parametrize("shape", ["x=1:2", "x=1:2:3:4", "x", "=1:2:3", "x=a:b:c", "x=4:2:8", "x=-1:2:3", "x=1:2:3x"])
def test_build_bad_shape_syntax(shape, tmp_path):
    r = tc("build", MODEL, "-o", tmp_path / "x.tce", "--device", "cpu", "--shape", shape)
    assert r.returncode == 2 and "NAME=MIN:OPT:MAX" in r.stderr, r.stderr


def test_build_shape_for_unknown_name(tmp_path):
    r = tc("build", MODEL, "-o", tmp_path / "x.tce", "--device", "cpu", "--shape", "batch=1:2:3")
    assert r.returncode == 2 and "no symbolic size or input named 'batch'" in r.stderr and "s77" in r.stderr, r.stderr


def test_build_shape_by_symbol_name(tmp_path):
    r = tc("build", MODEL, "-o", tmp_path / "x.tce", "--device", "cpu", "--shape", "s77=1:1:4")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("args,msg", [
    (["--device", "tpu"], "--device wants cpu or cuda"),
    (["--fp16", "--bf16"], "at most one of"),
    (["--min-block-size", "0"], "--min-block-size wants"),
    (["--workspace", "lots"], "--workspace wants"),
    (["--threads", "-3"], "--threads wants"),
])
def test_build_bad_values(args, msg, tmp_path):
    r = tc("build", MODEL, "-o", tmp_path / "x.tce", *args)
    assert r.returncode == 2 and msg in r.stderr, r.stderr


def test_build_device_cuda_without_cuda(tmp_path):
    if "cuda" in tc("version").stdout:
        pytest.skip("this build has the CUDA backend")
    r = tc("build", MODEL, "-o", tmp_path / "x.tce", "--device", "cuda")
    assert r.returncode == 1 and "no CUDA backend" in r.stderr and "--device cpu" in r.stderr, r.stderr
    assert not (tmp_path / "x.tce").exists()


def test_build_unwritable_output(tmp_path):
    r = tc("build", MODEL, "-o", tmp_path / "no" / "such" / "dir.tce")
    assert r.returncode == 1 and "cannot create" in r.stderr, r.stderr


def test_build_records_settings(tmp_path):
    p = tmp_path / "x.tce"
    r = tc("build", MODEL, "-o", p, "--device", "cpu", "--fp16", "--no-tf32", "--workspace", "64", "--min-block-size", "3")
    assert r.returncode == 0, r.stderr
    info = json.loads(tc("inspect", p, "--json").stdout)
    b = info["build"]
    assert b["allow_fp16"] is True and b["disable_tf32"] is True and b["workspace_bytes"] == 64 << 20
    assert b["min_block_size"] == "3" and b["precision"] == "fp16"
    assert info["build_command"].startswith("tensorc build ") and "--fp16" in info["build_command"]


@pytest.mark.parametrize("args,msg", [
    (["--iterations", "0"], "--iterations wants"),
    (["--warmup", "x"], "--warmup wants"),
    (["--batch", "0"], "--batch wants"),
])
def test_bench_bad_values(args, msg, engine):
    r = tc("bench", engine, *args)
    assert r.returncode == 2 and msg in r.stderr, r.stderr


def test_bench_batch_outside_range(engine):
    r = tc("bench", engine, "--batch", "65", "--iterations", "1")
    assert r.returncode == 2 and "outside the engine's range [1, 64]" in r.stderr, r.stderr


def test_bench_profile_is_for_cuda_engines(engine):
    r = tc("bench", engine, "--profile", "--warmup", "0", "--iterations", "2")
    assert r.returncode == 0, r.stderr
    assert "--profile times the steps of CUDA engines" in r.stderr and "tensorc profile:" not in r.stderr


def test_bench_text(engine):
    r = tc("bench", engine, "--warmup", "1", "--iterations", "5")
    assert r.returncode == 0, r.stderr
    for key in ("device: cpu", "host latency (ms): min", "p50", "p90", "p99", "throughput:"):
        assert key in r.stdout


@pytest.mark.parametrize("target", ["engine", "model"])
def test_bench_json(target, engine):
    r = tc("bench", engine if target == "engine" else MODEL, "--warmup", "1", "--iterations", "7", "--batch", "3", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    lat = j["latency_ms"]
    assert j["iterations"] == 7 and j["batch"] == 3 and j["inputs"] == "x=3x3x32x32"
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["min"] <= lat["mean"] <= lat["max"]
    tp = j["throughput"]
    # both printed with 3 decimals: each rounds by up to 0.0005
    assert tp["inferences_per_s"] == pytest.approx(3 * tp["executions_per_s"], abs=0.002)
    assert j["device"].startswith("cpu") and j["gpu_time_ms"] is None


def test_inspect_model_is_not_an_engine():
    r = tc("inspect", MODEL)
    assert r.returncode == 1 and "not an engine file" in r.stderr and "tensorc build" in r.stderr, r.stderr


def test_inspect_text(engine):
    r = tc("inspect", engine)
    assert r.returncode == 0, r.stderr
    assert "target: cpu" in r.stdout and "steps (11):" in r.stdout and "x " in r.stdout
    assert "dim 0 = s77 in [1, 64] opt 2" in r.stdout and "memory: weights 96936 bytes" in r.stdout


def test_run_accepts_engine_by_magic_whatever_its_name(engine, tmp_path):
    other = tmp_path / "engine.bin"
    other.write_bytes(engine.read_bytes())
    r = tc("run", other)
    assert r.returncode == 0 and r.stdout.startswith("output linear: f32[2, 10]"), r.stderr


def _plan(*args):
    r = tc("check", *args, "--plan")
    if r.returncode == 1 and "lacks" in r.stderr:
        pytest.skip("this build has no CUDA backend: " + r.stderr.strip())
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_check_plan_prints_the_cuda_steps_without_a_gpu():
    out = _plan(MODEL)
    assert "cuda steps (3 nodes fused into others)" in out, out
    assert "convolution + relu: convolution, bias, relu" in out, out
    # the example's batch is symbolic: views are planned at its opt size; the flatten is an alias
    assert "view-like steps: 1 run nothing, 0 gather" in out and "\nview: alias" in out, out
    assert tc("check", MODEL, "--fp16").returncode == 2  # --fp16 goes with --plan


def test_check_plan_of_a_transformer_lists_its_views():
    import export_models
    man = export_models.export_one("vit_small", export_models.default_out_dir())
    out = _plan(f"{man['dir']}/{man['model']}", "--fp16")
    assert "(f16)" in out.splitlines()[0], out
    views = out.split("view-like steps: ", 1)[1]
    assert views.split(" ", 1)[0].isdigit(), views
    assert "convolution.patches: gather" in views  # the patch-embedding pass's one copy
    assert ": strided view" in views and ": alias" in views, views
