"""The CPU side of bench/run_bench.py: row and option parsing, the row loop's robustness (a failing row,
a spent time budget, a broken GPU context), merging runs, and RESULTS.md written from hand-made results
whose ratios, geometric mean and TFLOP/s are worked out by hand here. Needs no GPU and no tensorc build."""
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("run_bench", ROOT / "bench" / "run_bench.py")
rb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rb)


# ---- options -----------------------------------------------------------------------------------

def test_no_rows_given_means_the_nine_rows_of_the_issue():
    assert rb.parse_rows([]) == [("resnet50", 1), ("resnet50", 32), ("resnet50", 256),
                                 ("mobilenet_v3_large", 1), ("mobilenet_v3_large", 32),
                                 ("vit_b_16", 1), ("vit_b_16", 32), ("bert_base", 1), ("bert_base", 32)]


def test_row_specs_select_models_and_batches_in_order_without_repeats():
    assert rb.parse_rows(["resnet50:1,32"]) == [("resnet50", 1), ("resnet50", 32)]
    assert rb.parse_rows(["bert_base;resnet50:256", "bert_base:1"]) == [
        ("bert_base", 1), ("bert_base", 32), ("resnet50", 256)]
    assert rb.parse_rows(["vit_b_16:32 mobilenet_v3_large:1"]) == [("vit_b_16", 32), ("mobilenet_v3_large", 1)]
    assert rb.parse_rows([], models="vit_b_16,bert_base") == [
        ("vit_b_16", 1), ("vit_b_16", 32), ("bert_base", 1), ("bert_base", 32)]
    assert rb.parse_rows(["resnet50:64"]) == [("resnet50", 64)]


@pytest.mark.parametrize("spec,msg", [("resnet51:1", "unknown model 'resnet51'"),
                                      ("resnet50:0", "bad batch '0'"),
                                      ("resnet50:1,x", "bad batch 'x'"),
                                      ("resnet50:1,,2", "bad batch ''")])
def test_bad_row_specs_are_rejected_with_the_reason(spec, msg):
    with pytest.raises(ValueError, match=msg):
        rb.parse_rows([spec])


def test_systems_default_and_max_autotune_only_when_asked():
    ns = rb.parse_args([])
    assert ns.system_list == ["eager", "reduce-overhead", "tensorc", "tensorc-cli"]
    ns = rb.parse_args(["--max-autotune", "--systems", "tensorc,eager"])
    assert ns.system_list == ["eager", "max-autotune", "tensorc"]


@pytest.mark.parametrize("argv", [["--systems", "eager,tensorrt"], ["--rows", "foo:1"], ["--iters", "0"],
                                  ["--blocks", "0"], ["--warmup", "-1"]])
def test_bad_options_exit_with_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as e:
        rb.parse_args(argv)
    assert e.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_rows_spec_round_trips_through_the_parser():
    rows = [("resnet50", 32), ("bert_base", 1), ("resnet50", 256)]
    assert sorted(rb.parse_rows([rb.rows_spec(rows)])) == sorted(rows)


def test_child_command_line_parses_back_to_the_same_selection(tmp_path):
    ns = rb.parse_args(["--systems", "eager,tensorc", "--max-autotune", "--iters", "7", "--blocks", "3",
                        "--out", str(tmp_path)])
    argv = rb._child_argv(ns, [("vit_b_16", 32), ("bert_base", 1)], tmp_path / "c.json")
    child = rb.parse_args(argv[2:])
    assert child.row_list == [("vit_b_16", 32), ("bert_base", 1)]
    assert child.system_list == ns.system_list
    assert (child.iters, child.blocks, child.no_peak) == (7, 3, True)
    assert child.child_json == tmp_path / "c.json"


def test_script_imports_and_prints_help_without_a_gpu():
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "run_bench.py"), "--help"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--rows" in r.stdout and "--max-autotune" in r.stdout


# ---- the row loop ------------------------------------------------------------------------------

def _fake_measure(fail=()):
    calls = []

    def measure(model, batch):
        calls.append((model, batch))
        if (model, batch) in fail:
            raise RuntimeError(f"boom in {model}")
        row = rb.new_row(model, batch)
        row["systems"]["eager"] = {"ms": 1.0}
        return row
    return measure, calls


def test_a_failing_row_does_not_stop_the_others():
    rows = [("resnet50", 1), ("vit_b_16", 1), ("bert_base", 1)]
    measure, calls = _fake_measure(fail={("vit_b_16", 1)})
    written = []
    out = rb.run_rows(rows, measure, after_row=lambda r: written.append(len(r)), context_ok=lambda: True)
    assert calls == rows
    assert [r["model"] for r in out] == ["resnet50", "vit_b_16", "bert_base"]
    assert out[1]["errors"] == ["RuntimeError: boom in vit_b_16"] and "Traceback" in out[1]["traceback"]
    assert out[0]["systems"] and out[2]["systems"]
    assert written == [1, 2, 3]  # results are written after every row


def test_rows_after_the_time_budget_are_reported_as_not_run():
    now = [0.0]

    def measure(model, batch):
        now[0] += 100  # every row takes 100 s of the fake clock
        return _fake_measure()[0](model, batch)

    rows = [("resnet50", 1), ("resnet50", 32), ("resnet50", 256)]
    out = rb.run_rows(rows, measure, deadline=150, clock=lambda: now[0])
    assert [bool(r["systems"]) for r in out] == [True, True, False]
    assert out[2]["not_run"] and "time budget" in out[2]["errors"][0]


def test_a_broken_context_sends_the_remaining_rows_to_a_fresh_process():
    rows = [("resnet50", 1), ("vit_b_16", 1), ("bert_base", 1), ("bert_base", 32)]
    measure, calls = _fake_measure(fail={("vit_b_16", 1)})
    handed = []

    def rerun(rest):
        handed.append(list(rest))
        return [dict(rb.new_row(m, b), systems={"eager": {"ms": 2.0}}) for m, b in rest]

    out = rb.run_rows(rows, measure, context_ok=lambda: False, rerun=rerun)
    assert calls == rows[:2]
    assert handed == [rows[2:]]
    assert [(r["model"], r["batch"]) for r in out] == rows
    assert out[3]["systems"]["eager"]["ms"] == 2.0


def test_a_broken_context_without_rerun_reports_the_rest_as_not_run():
    rows = [("resnet50", 1), ("vit_b_16", 1)]
    measure, _ = _fake_measure(fail={("resnet50", 1)})
    out = rb.run_rows(rows, measure, context_ok=lambda: False)
    assert out[1]["not_run"] and "context broke during resnet50 batch 1" in out[1]["errors"][0]


# ---- the report --------------------------------------------------------------------------------

def _sys(ms, run="r1", **kw):
    return dict(ms=ms, run=run, **kw)


def _fake_result():
    env = {"time": "2026-11-26T00:00:00Z", "hostname": "gpu1", "card": "NVIDIA H100 80GB HBM3 (132 SMs)",
           "driver": "580.1", "torch": "2.11.0", "cuda": "13.0", "cudnn": "9.19.0 (91900)",
           "cublaslt": "13.1.0 (130100)", "tensorc": "0.1.0 (backends: cpu, cuda)", "commit": "abc1234"}
    rows = [
        {"model": "resnet50", "batch": 32, "dtype": "fp16", "gflop": 100.0, "peak_tflops": 500.0, "errors": [],
         "systems": {"eager": _sys(2.0, cos=1.0, rel=0.0), "reduce-overhead": _sys(0.5, cos=0.99999, rel=1e-3),
                     "max-autotune": _sys(0.45, compile_s=200.0), "tensorc": _sys(0.4, cos=0.9999, rel=2e-3,
                                                                                 compile_s=12.5),
                     "tensorc-cli": _sys(0.38, cos=0.9999, rel=2e-3, compile_s=10.0, steps=176)}},
        {"model": "bert_base", "batch": 1, "dtype": "fp16", "gflop": 20.0, "peak_tflops": 500.0, "errors": [],
         "systems": {"eager": _sys(4.0), "reduce-overhead": _sys(2.0, compile_s=30.0),
                     "tensorc": _sys(1.0, cos=0.99, rel=0.05)}},
        {"model": "vit_b_16", "batch": 32, "dtype": "fp16", "gflop": 560.0, "peak_tflops": 500.0, "errors": [],
         "systems": {"eager": _sys(3.6), "reduce-overhead": _sys(3.5),
                     "tensorc": {"error": "Error: cuDNN graph did not finalize", "run": "r1"}}},
        {"model": "resnet50", "batch": 256, "dtype": "fp16", "gflop": None, "systems": {}, "not_run": True,
         "errors": ["not run: the time budget (--time-budget) was spent"]},
    ]
    return {"runs": {"r1": {"env": env, "peak": {"ms": 1.4, "tflops": 785.4, "blocks": 5}}}, "rows": rows}


def test_report_ratios_geometric_mean_and_throughput_are_right():
    md = rb.render_markdown(_fake_result())
    # resnet50 b32: tensorc 0.4 over the best compile mode (max-autotune 0.45) = 0.889
    # bert_base b1: 1.0 over 2.0 = 0.5; geometric mean sqrt(0.889 * 0.5) = 0.667
    assert "| resnet50 | 32 | 100.0 | 2.000 | 0.500 | 0.450 | 0.400 | 0.380 | **0.89** |" in md
    assert "| bert_base | 1 | 20.0 | 4.000 | 2.000 | — | 1.000 | — | **0.50** |" in md
    assert f"{math.sqrt(0.4 / 0.45 * 0.5):.3f}" == "0.667"
    assert "over 2 row(s): 0.667** (goal: <= 0.8, and <= 1 on every row: 2 of 2 rows are)" in md
    # 100 GFLOP in 0.4 ms = 250 TFLOP/s = 50% of the row's 500 TFLOP/s; best compile 100/0.45 = 222.2
    assert "250.0 (50.0%)" in md and "222.2 (44.4%)" in md
    assert "Rows without a ratio: vit_b_16 b32, resnet50 b256." in md
    assert "785.4 TFLOP/s" in md and "NVIDIA H100 80GB HBM3" in md and "cuDNN" not in md.split("## Runs")[0]
    assert "cudnn 9.19.0 (91900)" in md and "cublaslt 13.1.0 (130100)" in md


def test_report_marks_accuracy_failures_and_lists_every_error():
    md = rb.render_markdown(_fake_result())
    acc = md.split("## Outputs against eager")[1].split("##")[0]
    assert "| resnet50 | 32 | 0.999900 | 0.002 | 0.999900 | 0.002 | 0.999990 | ok |" in acc
    assert "| bert_base | 1 | 0.990000 | 0.05 |" in acc and "**MISMATCH**" in acc
    assert "| vit_b_16 | 32 | — | — | — | — | — | not checked |" in acc
    fails = md.split("## Failures and notes")[1]
    assert "- vit_b_16 batch 32, tensorc: Error: cuDNN graph did not finalize" in fails
    assert "- resnet50 batch 256: not run: the time budget" in fails
    assert "| vit_b_16 | 32 | 560.0 | 3.600 | 3.500 | — | FAILED |" in md


def test_report_build_times_table():
    md = rb.render_markdown(_fake_result())
    assert "| resnet50 | 32 | — | 200.0 | 12.5 | 10.0 | — | 176 |" in md
    assert "| bert_base | 1 | 30.0 | — | — | — |" in md


def test_report_uses_the_cli_time_when_the_python_path_failed():
    res = _fake_result()
    row = res["rows"][0]
    row["systems"]["tensorc"] = {"error": "x", "run": "r1"}
    md = rb.render_markdown(res)
    # 0.38 / 0.45 = 0.844
    assert "**0.84** (CLI)" in md


def test_report_with_no_rows_says_so():
    md = rb.render_markdown({"runs": {}, "rows": []})
    assert "No rows were measured." in md and "no ratio" in md


def test_merging_runs_keeps_the_newest_system_and_flags_mixed_rows():
    a = _fake_result()
    b = {"runs": {"r2": {"env": {"time": "later"}, "peak": {"tflops": 790.0}}},
         "rows": [{"model": "bert_base", "batch": 1, "dtype": "fp16", "gflop": 20.0, "errors": [],
                   "systems": {"tensorc": _sys(0.8, run="r2")}},
                  {"model": "resnet50", "batch": 32, "gflop": None, "systems": {}, "not_run": True,
                   "errors": ["not run: the time budget (--time-budget) was spent"]}]}
    m = rb.merge_results([a, b])
    assert set(m["runs"]) == {"r1", "r2"}
    bert = next(r for r in m["rows"] if r["model"] == "bert_base")
    assert bert["systems"]["tensorc"]["ms"] == 0.8 and bert["systems"]["reduce-overhead"]["ms"] == 2.0
    res = next(r for r in m["rows"] if (r["model"], r["batch"]) == ("resnet50", 32))
    assert res["systems"]["tensorc"]["ms"] == 0.4 and res["errors"] == [] and not res.get("not_run")
    md = rb.render_markdown(m)
    assert "| bert_base † | 1 |" in md and "different runs" in md


def test_from_json_writes_results_md_and_json(tmp_path, capsys):
    src = tmp_path / "a.json"
    src.write_text(json.dumps(_fake_result()))
    out = tmp_path / "out"
    assert rb.main(["--from-json", str(src), "--out", str(out)]) == 0
    md = (out / "RESULTS.md").read_text()
    assert md.startswith("# tensorc benchmark results") and "**0.89**" in md
    assert json.loads((out / "results.json").read_text())["rows"][0]["model"] == "resnet50"
    assert "# tensorc benchmark results" in capsys.readouterr().out


def test_cosine_and_relative_error_helper():
    import torch
    want = torch.tensor([1.0, 2.0, -4.0])
    got = torch.tensor([1.0, 2.5, -4.0])
    rel, cos = rb.cos_rel(got, want)
    # max|got - want| = 0.5, max|want| = 4; cosine = 22 / (sqrt(21) * sqrt(23.25))
    assert rel == pytest.approx(0.125)
    assert cos == pytest.approx(22 / math.sqrt(21 * 23.25))
