"""tensorc against eager PyTorch and torch.compile on one GPU (issue 6): for each row (model, batch; fp16)
it times eager, torch.compile (mode reduce-overhead; max-autotune with --max-autotune) and tensorc
(tensorc.compile in this process, and the CLI engine through `tensorc bench --json`), checks tensorc's
outputs against eager, counts each model's FLOPs, measures the card's bf16 matmul peak, and writes
RESULTS.md and results.json (after every row, so a killed run keeps what it measured).

    python3 bench/run_bench.py [--rows resnet50:1,32 --rows bert_base] [--max-autotune] [--out DIR]
    python3 bench/run_bench.py --from-json A.json [B.json ...] --out DIR    # report only, no GPU

Rows (default: all): resnet50:1,32,256 mobilenet_v3_large:1,32 vit_b_16:1,32 bert_base:1,32.
The method follows shared/notes/peers-h100.md: median of 5 blocks of 100 back-to-back calls timed with
CUDA events after 10 warm-up calls; all systems of a row run in one process on one card.
"""
import argparse
import datetime
import gc
import json
import math
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))

DEFAULT_ROWS = [("resnet50", 1), ("resnet50", 32), ("resnet50", 256), ("mobilenet_v3_large", 1),
                ("mobilenet_v3_large", 32), ("vit_b_16", 1), ("vit_b_16", 32), ("bert_base", 1), ("bert_base", 32)]
MODELS = ("resnet50", "mobilenet_v3_large", "vit_b_16", "bert_base")
DEFAULT_BATCHES = {m: [b for mm, b in DEFAULT_ROWS if mm == m] for m in MODELS}
# systems in the order they run and appear in the tables
SYSTEMS = ("eager", "reduce-overhead", "max-autotune", "tensorc", "tensorc-cli")
COMPILE_MODES = ("reduce-overhead", "max-autotune")
MIN_COS, MAX_REL = 0.999, 1e-2  # DESIGN section 9 for f16 at model level
PEAK_N = 8192


# ---- options -----------------------------------------------------------------------------------

def parse_rows(specs, models=None):
    """Rows [(model, batch)] from specs like "resnet50:1,32", "bert_base" (its default batches),
    "all", several per string separated by ';' or spaces; `models` (comma-separated) adds the
    default rows of those models. No spec and no models: every default row. Order kept, no repeats."""
    rows = []

    def add(model, batch):
        if (model, batch) not in rows:
            rows.append((model, batch))

    items = [it for s in (specs or []) for it in re.split(r"[;\s]+", s.strip()) if it]
    for m in (models or "").split(","):
        if m.strip():
            items.append(m.strip())
    if not items:
        items = ["all"]
    for it in items:
        if it == "all":
            for r in DEFAULT_ROWS:
                add(*r)
            continue
        model, _, batches = it.partition(":")
        if model not in MODELS:
            raise ValueError(f"unknown model '{model}' in '{it}' (one of {', '.join(MODELS)})")
        if not batches:
            for b in DEFAULT_BATCHES[model]:
                add(model, b)
            continue
        for b in batches.split(","):
            if not b.strip().isdigit() or int(b) < 1:
                raise ValueError(f"bad batch '{b}' in '{it}': want positive integers, e.g. {model}:1,32")
            add(model, int(b))
    return rows


def parse_systems(text, max_autotune):
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    for s in wanted:
        if s not in SYSTEMS:
            raise ValueError(f"unknown system '{s}' (one of {', '.join(SYSTEMS)})")
    if max_autotune and "max-autotune" not in wanted:
        wanted.append("max-autotune")
    return [s for s in SYSTEMS if s in wanted]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", action="append", default=[], metavar="SPEC",
                   help="rows to run: MODEL:B1,B2 or MODEL (its default batches) or all; repeatable")
    p.add_argument("--models", default="", help="comma-separated models whose default rows to run")
    p.add_argument("--systems", default="eager,reduce-overhead,tensorc,tensorc-cli",
                   help=f"comma-separated systems to time (of {', '.join(SYSTEMS)})")
    p.add_argument("--max-autotune", action="store_true",
                   help="also torch.compile mode max-autotune (minutes of compilation per row)")
    p.add_argument("--out", type=Path, default=ROOT / "bench",
                   help="folder for RESULTS.md and results.json (default bench/)")
    p.add_argument("--build-dir", type=Path, default=None,
                   help="tensorc build folder holding the CLI and python/ (default $BUILD_DIR, build-gpu, build)")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="where the .pt2, .tce and .npy files go (default: tensorc-bench-work in the temp folder)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--iters", type=int, default=100, help="calls per timed block")
    p.add_argument("--blocks", type=int, default=5, help="timed blocks; the median block is reported")
    p.add_argument("--time-budget", type=float, default=0,
                   help="seconds; rows not started when it is spent are reported as not run (0: no limit)")
    p.add_argument("--no-peak", action="store_true", help="skip the bf16 matmul peak measurement")
    p.add_argument("--merge", nargs="+", type=Path, default=[], metavar="JSON",
                   help="results.json files of earlier runs to merge with this run's rows")
    p.add_argument("--from-json", nargs="+", type=Path, default=[], metavar="JSON",
                   help="measure nothing: merge these results.json files and write the report")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                   help="cpu only smoke-tests this script (no peak, no torch.compile)")
    p.add_argument("--child-json", type=Path, default=None, help=argparse.SUPPRESS)
    ns = p.parse_args(argv)
    try:
        ns.row_list = parse_rows(ns.rows, ns.models)
        ns.system_list = parse_systems(ns.systems, ns.max_autotune)
    except ValueError as e:
        p.error(str(e))
    for k in ("warmup", "iters", "blocks"):
        if getattr(ns, k) < (0 if k == "warmup" else 1):
            p.error(f"--{k} must be {'>= 0' if k == 'warmup' else '>= 1'}")
    return ns


def rows_spec(rows):
    """The --rows text that selects exactly `rows`."""
    by = {}
    for m, b in rows:
        by.setdefault(m, []).append(str(b))
    return ";".join(f"{m}:{','.join(bs)}" for m, bs in by.items())


# ---- the row loop (no GPU in here: measure, context_ok and rerun are given) ---------------------

def new_row(model, batch):
    return {"model": model, "batch": batch, "dtype": "fp16", "gflop": None, "systems": {}, "errors": []}


def error_text(e):
    msg = str(e).strip().replace("\n", " | ")
    return f"{type(e).__name__}: {msg[:600]}"


def row_failed(row):
    return bool(row["errors"]) or any(s.get("error") for s in row["systems"].values())


def run_rows(rows, measure, deadline=None, after_row=None, context_ok=None, rerun=None, clock=time.monotonic):
    """Measures rows one by one with measure(model, batch) -> row dict. A row that raises becomes a
    failed row; after a failure, context_ok() says whether this process can go on (a CUDA fault
    poisons the context), and if not the remaining rows go to rerun(rows) (a fresh process) or are
    reported as not run. Rows not started before `deadline` are reported as not run."""
    results = []
    for i, (model, batch) in enumerate(rows):
        if deadline is not None and clock() > deadline:
            row = new_row(model, batch)
            row["errors"].append("not run: the time budget (--time-budget) was spent")
            row["not_run"] = True
            results.append(row)
            if after_row:
                after_row(results)
            continue
        try:
            row = measure(model, batch)
        except Exception as e:  # noqa: BLE001 - one row failing must not stop the others
            row = new_row(model, batch)
            row["errors"].append(error_text(e))
            row["traceback"] = traceback.format_exc()[-3000:]
        results.append(row)
        if after_row:
            after_row(results)
        if row_failed(row) and context_ok is not None and not context_ok():
            rest = rows[i + 1:]
            if rest and rerun is not None:
                results.extend(rerun(rest))
            else:
                for m, b in rest:
                    r = new_row(m, b)
                    r["errors"].append(f"not run: the GPU context broke during {model} batch {batch}")
                    r["not_run"] = True
                    results.append(r)
            if after_row:
                after_row(results)
            break
    return results


# ---- merging and the report (no GPU) ------------------------------------------------------------

def merge_results(results):
    """One result from several (earlier first): rows keyed by (model, batch), systems of later runs
    replacing earlier ones; every system keeps the id of the run that measured it."""
    out = {"runs": {}, "rows": []}
    index = {}
    for res in results:
        for rid, run in (res.get("runs") or {}).items():
            out["runs"][rid] = run
        for row in res.get("rows", []):
            key = (row["model"], row["batch"])
            if key not in index:
                index[key] = {k: v for k, v in row.items() if k not in ("systems", "errors")}
                index[key]["systems"] = {}
                index[key]["errors"] = []
                out["rows"].append(index[key])
            dst = index[key]
            if row.get("not_run") and (dst["systems"] or not dst.get("not_run")):
                continue  # a later "not run" does not erase what an earlier run measured
            for k, v in row.items():
                if k not in ("systems", "errors") and v is not None:
                    dst[k] = v
            if not row.get("not_run"):
                dst.pop("not_run", None)
            dst["systems"].update(row.get("systems", {}))
            dst["errors"] = list(row.get("errors", []))
    return out


def fmt_ms(s):
    if s is None:
        return "—"
    if s.get("error"):
        return "FAILED"
    return f"{s['ms']:.3f}" if s.get("ms") is not None else "—"


def tensorc_ms(row):
    """(ms, source) of tensorc for a row: the in-process tensorc.compile time (the peers' method),
    else the CLI engine's time."""
    for name in ("tensorc", "tensorc-cli"):
        s = row["systems"].get(name)
        if s and not s.get("error") and s.get("ms") is not None:
            return s["ms"], name
    return None, None


def best_compile(row):
    best = None
    for mode in COMPILE_MODES:
        s = row["systems"].get(mode)
        if s and not s.get("error") and s.get("ms") is not None and (best is None or s["ms"] < best[0]):
            best = (s["ms"], mode)
    return best


def ratio(row):
    t, _ = tensorc_ms(row)
    b = best_compile(row)
    return t / b[0] if t is not None and b else None


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def _tflops(row, ms):
    return row["gflop"] / ms if row.get("gflop") and ms else None


def _pct(tf, peak):
    if not tf:
        return "—"
    num = f"{tf:.1f}" if tf >= 10 else f"{tf:.3g}"
    return f"{num} ({100 * tf / peak:.1f}%)" if peak else num


def _run_line(rid, run):
    env = run.get("env", {})
    peak = run.get("peak") or {}
    bits = [f"- run `{rid}`: {env.get('time', '?')} on {env.get('hostname', '?')}"]
    card = env.get("card")
    if card:
        bits.append(f"  - card: {card}, driver {env.get('driver', '?')}")
    sw = [f"torch {env.get('torch', '?')}"]
    libs = [f"{k} {env[k]}" for k in ("cuda", "cudnn", "cublaslt") if env.get(k)]
    if libs:
        sw[0] += f" ({', '.join(libs)})"
    sw += [f"{k} {env[k]}" for k in ("torchvision", "transformers", "python") if env.get(k)]
    bits.append(f"  - software: {', '.join(sw)}")
    if env.get("tensorc"):
        bits.append(f"  - tensorc: {env['tensorc']}, commit {env.get('commit', '?')}")
    tgt = env.get("tensorc_target")
    if tgt:
        bits.append("  - tensorc engines built for: " + ", ".join(f"{k} {tgt[k]}" for k in
                    ("device", "compute_capability", "cuda", "cudnn", "cublaslt", "nvrtc", "driver") if tgt.get(k)))
    if peak.get("tflops"):
        bits.append(f"  - peak: bf16 {PEAK_N}x{PEAK_N}x{PEAK_N} matmul {peak['tflops']:.1f} TFLOP/s "
                    f"({peak.get('ms', 0):.3f} ms per product, median of {peak.get('blocks', '?')} blocks)")
    elif peak.get("error"):
        bits.append(f"  - peak: FAILED ({peak['error']})")
    else:
        bits.append("  - peak: not measured")
    if env.get("command"):
        bits.append(f"  - command: `{env['command']}`")
    if env.get("method"):
        bits.append(f"  - method: {env['method']}")
    return "\n".join(bits)


def render_markdown(result):
    """RESULTS.md text for a (merged) result."""
    runs = result.get("runs") or {}
    rows = result.get("rows") or []
    L = ["# tensorc benchmark results", ""]
    if not rows:
        L += ["No rows were measured.", ""]
    L += ["Systems: eager PyTorch, torch.compile (`reduce-overhead`; `max-autotune` where run) and tensorc "
          "(`tensorc` = `tensorc.compile(...)` called from PyTorch, timed like the others; `tensorc CLI` = the "
          "engine built by `tensorc build --device cuda --fp16`, GPU time per execution from "
          "`tensorc bench --json`). All fp16. The ratio is tensorc over the best torch.compile mode of the "
          "same row (below 1: tensorc is faster); it uses the `tensorc` time, or the CLI's where marked (CLI).",
          "", "## Runs", ""]
    L += [_run_line(rid, run) for rid, run in runs.items()] or ["(no run information)"]
    L.append("")

    peak_of = {rid: (run.get("peak") or {}).get("tflops") for rid, run in runs.items()}
    ratios, mixed = [], False
    L += ["## Latency (ms per call, lower is better)", "",
          "| model | batch | GFLOP | eager | reduce-overhead | max-autotune | tensorc | tensorc CLI | "
          "tensorc / best compile | tensorc TFLOP/s (% of peak) | best compile TFLOP/s (% of peak) |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        sy = row["systems"]
        run_ids = {s.get("run") for s in sy.values() if s.get("run")}
        mark = ""
        if len(run_ids) > 1:
            mark, mixed = " †", True
        peak = row.get("peak_tflops") or (peak_of.get(next(iter(run_ids))) if len(run_ids) == 1 else None)
        t, src = tensorc_ms(row)
        b = best_compile(row)
        r = ratio(row)
        if r is not None:
            ratios.append(r)
        gf = f"{row['gflop']:.1f}" if row.get("gflop") else "—"
        cells = [row["model"] + mark, str(row["batch"]), gf] + [fmt_ms(sy.get(s)) for s in SYSTEMS]
        cells.append((f"**{r:.2f}**" + (" (CLI)" if src == "tensorc-cli" else "")) if r is not None else "n/a")
        cells.append(_pct(_tflops(row, t), peak))
        cells.append(_pct(_tflops(row, b[0]) if b else None, peak))
        L.append("| " + " | ".join(cells) + " |")
    L.append("")
    if mixed:
        L += ["† systems of this row come from different runs (see Runs); its ratio compares numbers from "
              "different processes.", ""]
    gm = geomean(ratios)
    if gm is not None:
        at_most_1 = sum(1 for x in ratios if x <= 1.0)
        L.append(f"**Geometric mean of tensorc / best torch.compile over {len(ratios)} row(s): {gm:.3f}** "
                 f"(goal: <= 0.8, and <= 1 on every row: {at_most_1} of {len(ratios)} rows are).")
    else:
        L.append("**No row has both a tensorc and a torch.compile time: no ratio.**")
    missing = [f"{r['model']} b{r['batch']}" for r in rows if ratio(r) is None]
    if missing:
        L.append(f"Rows without a ratio: {', '.join(missing)}.")
    L.append("")

    L += ["## Outputs against eager (fp16; DESIGN §9: cosine >= 0.999 and max rel err <= 1e-2)", "",
          "| model | batch | tensorc cosine | tensorc max rel err | tensorc CLI cosine | tensorc CLI max rel err | "
          "reduce-overhead cosine | verdict |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        sy = row["systems"]

        def acc(name, key):
            s = sy.get(name)
            if not s or s.get(key) is None:
                return "—"
            return f"{s[key]:.6f}" if key == "cos" else f"{s[key]:.3g}"

        checked = [sy[n] for n in ("tensorc", "tensorc-cli") if n in sy and sy[n].get("cos") is not None]
        if not checked:
            verdict = "not checked"
        elif all(s["cos"] >= MIN_COS and s["rel"] <= MAX_REL for s in checked):
            verdict = "ok"
        else:
            verdict = "**MISMATCH**"
        L.append(f"| {row['model']} | {row['batch']} | {acc('tensorc', 'cos')} | {acc('tensorc', 'rel')} | "
                 f"{acc('tensorc-cli', 'cos')} | {acc('tensorc-cli', 'rel')} | {acc('reduce-overhead', 'cos')} | "
                 f"{verdict} |")
    L.append("")

    L += ["## Build and compile times (s)", "",
          "From the eager module (tensorc CLI: from the .pt2 file) to the second output: torch.compile's "
          "compilation, or tensorc's export, engine build, library plans (first run) and graph capture "
          "(second run).", "",
          "| model | batch | reduce-overhead | max-autotune | tensorc.compile | tensorc build (CLI) | "
          "tensorc partition | CLI engine steps |", "|---|---:|---:|---:|---:|---:|---|---:|"]
    for row in rows:
        sy = row["systems"]

        def cs(name):
            s = sy.get(name)
            return f"{s['compile_s']:.1f}" if s and s.get("compile_s") is not None else "—"

        part = (sy.get("tensorc") or {}).get("partition") or "—"
        steps = (sy.get("tensorc-cli") or {}).get("steps")
        L.append(f"| {row['model']} | {row['batch']} | {cs('reduce-overhead')} | {cs('max-autotune')} | "
                 f"{cs('tensorc')} | {cs('tensorc-cli')} | {part} | {steps if steps is not None else '—'} |")
    L.append("")

    L += ["## Failures and notes", ""]
    fails = []
    for row in rows:
        for e in row.get("errors", []):
            fails.append(f"- {row['model']} batch {row['batch']}: {e}")
        for name in SYSTEMS:
            s = row["systems"].get(name)
            if s and s.get("error"):
                fails.append(f"- {row['model']} batch {row['batch']}, {name}: {s['error']}")
            if s and s.get("note"):
                fails.append(f"- {row['model']} batch {row['batch']}, {name} (note): {s['note']}")
    L += fails or ["None: every requested system of every row ran."]
    L.append("")
    return "\n".join(L)


def write_outputs(result, out_dir, child_json=None):
    if child_json is not None:
        Path(child_json).write_text(json.dumps(result, indent=1))
        return
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / "results.json.tmp"
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, out_dir / "results.json")
    (out_dir / "RESULTS.md").write_text(render_markdown(result))


def load_json(paths):
    return [json.loads(Path(p).read_text()) for p in paths]


# ---- measuring (needs torch; the GPU for everything but --device cpu) ---------------------------

class Bench:
    """Everything that touches torch and the GPU for one run."""

    def __init__(self, ns, run_id):
        import torch
        self.torch = torch
        self.ns = ns
        self.run_id = run_id
        self.cuda = ns.device == "cuda"
        if self.cuda and not torch.cuda.is_available():
            raise RuntimeError("torch sees no CUDA device (use --device cpu only to smoke-test this script)")
        torch.backends.cudnn.benchmark = True
        self.build_dir = self._build_dir()
        self.cli = self._find_cli()
        self.work = Path(ns.work_dir or (Path(tempfile.gettempdir()) / "tensorc-bench-work"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.tensorc, self.tensorc_why = self._import_tensorc()
        self.target = None

    # -- setup
    def _build_dir(self):
        cands = [self.ns.build_dir] if self.ns.build_dir else []
        if os.environ.get("BUILD_DIR"):
            cands.append(Path(os.environ["BUILD_DIR"]))
        cands += [ROOT / "build-gpu", ROOT / "build"]
        for c in cands:
            c = c if c.is_absolute() else ROOT / c
            if (c / "tensorc").exists() or (c / "python" / "tensorc").exists():
                return c
        return None

    def _find_cli(self):
        if os.environ.get("TENSORC_CLI"):
            return Path(os.environ["TENSORC_CLI"])
        if self.build_dir and (self.build_dir / "tensorc").is_file():
            return self.build_dir / "tensorc"
        return None

    def _import_tensorc(self):
        cands = [Path(os.environ["TENSORC_PYTHONPATH"])] if os.environ.get("TENSORC_PYTHONPATH") else []
        if self.build_dir:
            cands.append(self.build_dir / "python")
        for c in cands:
            if (c / "tensorc" / "__init__.py").exists():
                sys.path.insert(0, str(c))
                break
        try:
            import tensorc
        except Exception as e:  # noqa: BLE001 - reported per row
            return None, f"the tensorc Python package cannot be imported: {error_text(e)}"
        if self.cuda and not tensorc._C.has_cuda():
            return None, f"the tensorc Python package has no CUDA backend ({tensorc.version()})"
        return tensorc, None

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def context_ok(self):
        if not self.cuda:
            return True
        try:
            self.torch.cuda.synchronize()
            x = self.torch.ones(4, device="cuda") + 1
            return float(x.sum().item()) == 8.0
        except Exception:  # noqa: BLE001 - a sticky CUDA error lands here
            return False

    def env(self):
        torch = self.torch
        e = {"time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "hostname": socket.gethostname(), "python": platform.python_version(), "torch": torch.__version__,
             "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
             "method": (f"median of {self.ns.blocks} blocks of {self.ns.iters} back-to-back calls timed with "
                        f"{'CUDA events' if self.cuda else 'a host clock'} after {self.ns.warmup} warm-up calls; "
                        "fp16 weights and inputs, eval(), torch.inference_mode(), cudnn.benchmark = True")}
        for mod in ("torchvision", "transformers"):
            try:
                e[mod] = __import__(mod).__version__
            except Exception:  # noqa: BLE001
                pass
        e["commit"] = _git_commit()
        if self.tensorc is not None:
            e["tensorc"] = self.tensorc.version()
        elif self.cli is not None:
            r = subprocess.run([str(self.cli), "version"], capture_output=True, text=True)
            e["tensorc"] = r.stdout.strip()
        if self.cuda:
            p = torch.cuda.get_device_properties(0)
            e["card"] = (f"{p.name} ({p.multi_processor_count} SMs, compute capability {p.major}.{p.minor}, "
                         f"{p.total_memory / 2**30:.1f} GiB)")
            e["cuda"] = torch.version.cuda
            v = torch.backends.cudnn.version()
            if v:
                e["cudnn"] = f"{v // 10000}.{v % 10000 // 100}.{v % 100} ({v})"
            torch.ones(8, 8, device="cuda", dtype=torch.float16) @ torch.ones(8, 8, device="cuda", dtype=torch.float16)
            e["cublaslt"] = _cublaslt_version()  # loaded by the matmul above at the latest
            try:
                r = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,power.limit",
                                    "--format=csv,noheader", "-i", "0"], capture_output=True, text=True, timeout=30)
                f = [x.strip() for x in r.stdout.strip().split(",")]
                e["driver"] = f[0] + (f" (max SM clock {f[1]}, power limit {f[2]})" if len(f) >= 3 else "")
            except Exception:  # noqa: BLE001
                e["driver"] = "?"
        return e

    def time_ms(self, fn):
        """Median over blocks of the mean ms per call, and every block's value."""
        torch = self.torch
        for _ in range(self.ns.warmup):
            fn()
        self.sync()
        blocks = []
        for _ in range(self.ns.blocks):
            if self.cuda:
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                s.record()
                for _ in range(self.ns.iters):
                    fn()
                e.record()
                torch.cuda.synchronize()
                blocks.append(s.elapsed_time(e) / self.ns.iters)
            else:
                t0 = time.perf_counter()
                for _ in range(self.ns.iters):
                    fn()
                blocks.append((time.perf_counter() - t0) * 1e3 / self.ns.iters)
        return sorted(blocks)[len(blocks) // 2], blocks

    def peak(self):
        """bf16 PEAK_N^3 matrix product through torch.matmul (cuBLAS): TFLOP/s of the median block."""
        torch = self.torch
        a = torch.randn(PEAK_N, PEAK_N, dtype=torch.bfloat16, device="cuda")
        b = torch.randn(PEAK_N, PEAK_N, dtype=torch.bfloat16, device="cuda")
        c = torch.empty(PEAK_N, PEAK_N, dtype=torch.bfloat16, device="cuda")
        fn = lambda: torch.matmul(a, b, out=c)  # noqa: E731
        for _ in range(5):
            fn()
        torch.cuda.synchronize()
        blocks = []
        for _ in range(5):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            for _ in range(20):
                fn()
            e.record()
            torch.cuda.synchronize()
            blocks.append(s.elapsed_time(e) / 20)
        ms = sorted(blocks)[2]
        del a, b, c
        torch.cuda.empty_cache()
        return {"ms": ms, "tflops": 2 * PEAK_N ** 3 / (ms * 1e-3) / 1e12, "blocks": len(blocks),
                "best_tflops": 2 * PEAK_N ** 3 / (min(blocks) * 1e-3) / 1e12}

    # -- one row
    def measure_row(self, model, batch):
        try:
            return self._measure_row(model, batch)
        finally:
            gc.collect()
            if self.cuda and self.context_ok():
                self.torch.cuda.empty_cache()

    def _measure_row(self, model, batch):
        import export_models
        torch = self.torch
        row = new_row(model, batch)
        row["peak_tflops"] = getattr(self, "peak_tflops", None)
        dev = "cuda" if self.cuda else "cpu"
        mod, args = export_models.full_size_model(model, batch, torch.float16)
        pt2 = None
        if "tensorc-cli" in self.ns.system_list:
            try:
                pt2 = self._export_cpu(mod, args, f"{model}_b{batch}")  # (path, input names)
            except Exception as e:  # noqa: BLE001
                row["systems"]["tensorc-cli"] = {"error": f"export to .pt2: {error_text(e)}", "run": self.run_id}
        mod = mod.to(dev)
        args = tuple(a.to(dev) for a in args)
        with torch.inference_mode():
            ref = [o.clone() for o in _flatten(mod(*args))]
            self.sync()
            row["gflop"] = self._gflop(mod, args)
        for name in self.ns.system_list:
            if name in row["systems"]:
                continue
            t0 = time.monotonic()
            try:
                if name == "tensorc-cli":
                    s = self._tensorc_cli(pt2, args, ref, f"{model}_b{batch}")
                else:
                    s = self._in_process(name, mod, args, ref)
            except Exception as e:  # noqa: BLE001 - the other systems still run
                s = {"error": error_text(e), "traceback": traceback.format_exc()[-3000:]}
                if not self.context_ok():
                    s["run"] = self.run_id
                    row["systems"][name] = s
                    row["errors"].append("the GPU context broke; the rest of this row was not run")
                    return row
            s["run"] = self.run_id
            s["wall_s"] = round(time.monotonic() - t0, 1)
            row["systems"][name] = s
            self._print(model, batch, name, s)
            if name in COMPILE_MODES:
                torch._dynamo.reset()
            gc.collect()
            if self.cuda:
                torch.cuda.empty_cache()
        return row

    def _print(self, model, batch, name, s):
        if s.get("error"):
            msg = f"FAILED {s['error']}"
        else:
            msg = f"{s['ms']:.3f} ms" + (f", cosine {s['cos']:.6f}" if s.get("cos") is not None else "")
            if s.get("compile_s") is not None:
                msg += f", build {s['compile_s']:.1f} s"
        print(f"[bench] {model} b{batch} {name}: {msg}", flush=True)

    def _gflop(self, mod, args):
        """GFLOP of one call (2 per multiply-add of convolutions, matrix products and attention).
        nn.MultiheadAttention's inference fast path is one fused op the counter does not know (ViT's
        projections and attention would go uncounted), so it is off while counting."""
        from torch.utils.flop_counter import FlopCounterMode
        mha = getattr(self.torch.backends, "mha", None)
        saved = mha.get_fastpath_enabled() if mha else None
        try:
            if mha:
                mha.set_fastpath_enabled(False)
            with FlopCounterMode(display=False) as fc:
                mod(*args)
        finally:
            if mha:
                mha.set_fastpath_enabled(saved)
        return fc.get_total_flops() / 1e9

    def _compare(self, got, ref):
        got = _flatten(got)
        if len(got) != len(ref):
            raise RuntimeError(f"{len(got)} outputs, eager has {len(ref)}")
        worst_cos, worst_rel = 1.0, 0.0
        for i, (g, w) in enumerate(zip(got, ref)):
            if tuple(g.shape) != tuple(w.shape):
                raise RuntimeError(f"output {i} has shape {tuple(g.shape)}, eager {tuple(w.shape)}")
            rel, cos = cos_rel(g.to(w.device), w)
            worst_cos = min(worst_cos, cos if cos == cos else -1.0)
            worst_rel = max(worst_rel, rel if rel == rel else float("inf"))
        return worst_cos, worst_rel

    def _in_process(self, name, mod, args, ref):
        torch = self.torch
        s = {}
        if name == "eager":
            fn = mod
        elif name in COMPILE_MODES:
            if not self.cuda:
                raise RuntimeError("torch.compile is timed on the GPU only")
            torch._dynamo.reset()
            t0 = time.perf_counter()
            fn = torch.compile(mod, mode=name)
            with torch.inference_mode():
                fn(*args)
                fn(*args)
            self.sync()
            s["compile_s"] = time.perf_counter() - t0
        else:  # tensorc
            if self.tensorc is None:
                raise RuntimeError(self.tensorc_why)
            t0 = time.perf_counter()
            fn = self.tensorc.compile(mod, list(args), device=args[0].device,
                                      enabled_precisions={torch.float16})
            s["compile_only_s"] = time.perf_counter() - t0
            s["partition"] = fn._tensorc_report.splitlines()[0].split(": ", 1)[-1]
            # like torch.compile's: the build time runs to the second output (CUDA engines choose
            # library plans in their first run and capture their graph in the second)
            with torch.inference_mode():
                first = fn(*args)
                fn(*args)
            self.sync()
            s["compile_s"] = time.perf_counter() - t0
        with torch.inference_mode():
            out = fn(*args) if name != "tensorc" else first
            # cudagraph outputs are overwritten by the next call: compare before timing
            s["cos"], s["rel"] = self._compare(out, ref)
            del out
            s["ms"], s["blocks_ms"] = self.time_ms(lambda: fn(*args))
        return s

    def _export_cpu(self, mod, args, stem):
        import export_models
        torch = self.torch
        with torch.no_grad():
            ep = torch.export.export(mod, args).run_decompositions(export_models.decomp_table())
        path = self.work / f"{stem}.pt2"
        torch.export.save(ep, str(path))
        names = [s.arg.name for s in ep.graph_signature.input_specs
                 if s.kind == torch.export.graph_signature.InputKind.USER_INPUT]
        return path, names

    def _cli(self, *argv, timeout=1200):
        return subprocess.run([str(self.cli), *map(str, argv)], capture_output=True, text=True, timeout=timeout)

    def _tensorc_cli(self, exported, args, ref, stem):
        import numpy as np
        import export_models
        if self.cli is None:
            raise RuntimeError("tensorc CLI not found (--build-dir or TENSORC_CLI)")
        pt2, in_names = exported
        tce = self.work / f"{stem}.tce"
        s = {}
        t0 = time.perf_counter()
        precision = ["--fp16"] if self.cuda else []
        r = self._cli("build", pt2, "-o", tce, "--device", self.ns.device, *precision)
        s["compile_s"] = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(f"tensorc build failed (exit {r.returncode}): {_tail(r.stderr)}")
        ri = self._cli("inspect", tce, "--json", timeout=120)
        try:
            j = json.loads(ri.stdout)
            self.target = self.target or j.get("target")
            cs = j.get("cuda_steps")
            s["steps"] = cs["steps"] if isinstance(cs, dict) and "steps" in cs else len(j.get("steps", []))
        except (ValueError, TypeError, KeyError):
            pass
        r = self._cli("bench", tce, "--json", "--warmup", self.ns.warmup,
                      "--iterations", self.ns.iters * self.ns.blocks)
        if r.returncode != 0:  # keep the build time
            s["error"] = f"tensorc bench failed (exit {r.returncode}): {_tail(r.stderr)}"
            return s
        j = json.loads(r.stdout)
        # the first two runs belong to the build (library plans, then graph capture)
        s["compile_only_s"] = s["compile_s"]
        s["compile_s"] += (j.get("first_run_ms") or 0) / 1e3 + (j.get("second_run_ms") or 0) / 1e3
        if j.get("gpu_time_ms"):
            s["ms"] = j["gpu_time_ms"]["mean"]
        else:
            s["ms"] = j["latency_ms"]["p50"]
            s["note"] = "tensorc bench gave no GPU time: host latency p50 (one synchronized execution) instead"
        s["host_p50_ms"] = j["latency_ms"]["p50"]
        # outputs on the row's inputs: tensorc run with the inputs as .npy
        out_dir = self.work / f"{stem}_out"
        cmd = ["run", tce, "--output-dir", out_dir]
        for name, a in zip(in_names, args):
            f = self.work / f"{stem}_in_{name}.npy"
            np.save(f, export_models.to_numpy(a))
            cmd += ["--input", f"{name}={f}"]
        r = self._cli(*cmd)
        if r.returncode != 0:
            s["note"] = (s.get("note", "") + "; " if s.get("note") else "") + \
                f"outputs not checked: tensorc run failed (exit {r.returncode}): {_tail(r.stderr, 300)}"
            return s
        outs = [ln.split(":")[0][len("output "):] for ln in r.stdout.splitlines() if ln.startswith("output ")]
        got = [export_models.from_numpy(np.load(out_dir / _npy_name(n))) for n in outs]
        s["cos"], s["rel"] = self._compare(got, [w.cpu() for w in ref])
        return s


# ---- small helpers -----------------------------------------------------------------------------

def _flatten(out):
    import torch
    if isinstance(out, torch.Tensor):
        return [out]
    if hasattr(out, "to_tuple"):
        out = out.to_tuple()
    flat = []
    for o in out:
        flat.extend(_flatten(o))
    return flat


def cos_rel(got, want):
    """(max|got - want| / max|want|, cosine similarity) in float64."""
    g, w = got.detach().double().flatten(), want.detach().double().flatten()
    scale = w.abs().max().item() if w.numel() else 0.0
    rel = (g - w).abs().max().item() / scale if scale > 0 else float("inf")
    den = (g.norm() * w.norm()).item()
    cos = (g @ w).item() / den if den > 0 else float("nan")
    return rel, cos


def _npy_name(output_name):
    # tensorc run's file naming: characters outside [A-Za-z0-9_.-] become '_'
    return (re.sub(r"[^A-Za-z0-9_.\-]", "_", output_name) or "_") + ".npy"


def _tail(text, n=800):
    t = (text or "").strip().replace("\n", " | ")
    return t[-n:]


def _git_commit():
    # a copy of the tree without its own history (the GPU machine's) is told its commit in TENSORC_COMMIT
    if os.environ.get("TENSORC_COMMIT"):
        return os.environ["TENSORC_COMMIT"]
    try:
        c = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                           text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet"], timeout=10).returncode != 0
        return (c or "?") + (" (+ uncommitted changes)" if dirty else "")
    except Exception:  # noqa: BLE001
        return "?"


def _cublaslt_version():
    """The version of the cuBLASLt this process loaded (after a matmul), from cublasLtGetVersion."""
    import ctypes
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({ln.split()[-1] for ln in f if "libcublasLt.so" in ln})
        if not paths:
            return None
        lib = ctypes.CDLL(paths[0])
        lib.cublasLtGetVersion.restype = ctypes.c_size_t
        v = lib.cublasLtGetVersion()
        return f"{v // 10000}.{v % 10000 // 100}.{v % 100} ({v})"
    except Exception:  # noqa: BLE001
        return None


def _child_argv(ns, rows, json_path, budget=None):
    argv = [sys.executable, str(Path(__file__).resolve()), "--rows", rows_spec(rows),
            "--systems", ",".join(ns.system_list), "--out", str(ns.out), "--warmup", str(ns.warmup),
            "--iters", str(ns.iters), "--blocks", str(ns.blocks), "--device", ns.device,
            "--child-json", str(json_path), "--no-peak"]
    if ns.build_dir:
        argv += ["--build-dir", str(ns.build_dir)]
    if ns.work_dir:
        argv += ["--work-dir", str(ns.work_dir)]
    if budget:
        argv += ["--time-budget", f"{max(budget, 1):.0f}"]
    return argv


# ---- main --------------------------------------------------------------------------------------

def main(argv=None):
    ns = parse_args(argv)
    if ns.from_json:
        merged = merge_results(load_json(ns.from_json))
        write_outputs(merged, ns.out)
        print((Path(ns.out) / "RESULTS.md").read_text())
        return 0
    start = time.monotonic()
    deadline = start + ns.time_budget if ns.time_budget > 0 else None
    run_id = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + f"-{os.getpid()}"
    earlier = load_json(ns.merge) if ns.merge else []
    bench = Bench(ns, run_id)
    peak = None
    if not ns.no_peak and bench.cuda:
        try:
            peak = bench.peak()
            bench.peak_tflops = peak["tflops"]
            print(f"[bench] peak: bf16 {PEAK_N}^3 matmul {peak['tflops']:.1f} TFLOP/s", flush=True)
        except Exception as e:  # noqa: BLE001
            peak = {"error": error_text(e)}
    run = {"env": bench.env(), "peak": peak, "systems": ns.system_list}
    if bench.tensorc_why:
        print(f"[bench] tensorc package: {bench.tensorc_why}", flush=True)

    child_runs = {}

    def current(results):
        res = {"runs": {run_id: run, **child_runs}, "rows": results}
        if bench.target:
            run["env"]["tensorc_target"] = bench.target
        return merge_results(earlier + [res]) if earlier else res

    def after_row(results):
        write_outputs(current(results), ns.out, ns.child_json)

    def rerun(rest):
        path = Path(ns.out) / f"child-{run_id}.json"
        budget = (deadline - time.monotonic()) if deadline else None
        print(f"[bench] the GPU context broke; running {rows_spec(rest)} in a fresh process", flush=True)
        try:
            # rows still start until the deadline; a row running past it gets 5 more minutes
            r = subprocess.run(_child_argv(ns, rest, path, budget), timeout=budget + 300 if budget else None)
            rc = r.returncode
        except subprocess.TimeoutExpired:
            rc = "killed at the time budget"
        rows = []
        if path.exists():
            child = json.loads(path.read_text())
            path.unlink()
            child_runs.update(child.get("runs") or {})
            rows = child.get("rows", [])
            for row in rows:
                if row.get("peak_tflops") is None and peak and peak.get("tflops"):
                    row["peak_tflops"] = peak["tflops"]  # same card, measured by this process
        done = {(row["model"], row["batch"]) for row in rows}
        for m, b in rest:
            if (m, b) not in done:
                row = new_row(m, b)
                row["errors"].append(f"the fresh process for the remaining rows did not finish this row (exit {rc})")
                rows.append(row)
        return rows

    results = run_rows(ns.row_list, bench.measure_row, deadline=deadline, after_row=after_row,
                       context_ok=bench.context_ok, rerun=rerun)
    write_outputs(current(results), ns.out, ns.child_json)
    if ns.child_json is None:
        print((Path(ns.out) / "RESULTS.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
