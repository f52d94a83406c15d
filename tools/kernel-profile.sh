#!/usr/bin/env bash
# On the GPU machine: where one execution of an engine spends its GPU time, kernel by kernel.
# Runs `tensorc run ENGINE` once without CUDA graphs under Nsight Compute (ncu, GPU time of every
# kernel, clocks as found) and prints the kernels grouped by name: launches, total microseconds and
# share, largest first, plus the sum. The first run of an engine file uses its stored plans, so no
# tuning kernels are counted; a model (.pt2) is built first and its plan-building launches count.
#   bash tools/kernel-profile.sh ENGINE.tce [TOP (default 25)] [CSV_OUT]
# Environment: TENSORC_CLI (default build-gpu/tensorc), NCU (default: ncu on the PATH or under
# /opt/nvidia/nsight-compute).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ]; then
  echo "usage: bash tools/kernel-profile.sh ENGINE.tce [TOP] [CSV_OUT]" >&2
  exit 2
fi
ENGINE=$1
TOP=${2:-25}
CLI=${TENSORC_CLI:-build-gpu/tensorc}
PY=${PYTHON:-python3}
NCU=${NCU:-$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -n 1)}
if [ -z "$NCU" ] || [ ! -x "$NCU" ]; then
  echo "kernel-profile: ncu (Nsight Compute) not found; set NCU" >&2
  exit 1
fi
CSV=${3:-$(mktemp)}
TENSORC_CUDA_GRAPHS=0 "$NCU" --metrics gpu__time_duration.sum --clock-control none --csv --print-units base \
  "$CLI" run "$ENGINE" --seed 1 --output-dir "$(mktemp -d)" >"$CSV" 2>"$CSV.err"
rc=$?
if [ $rc -ne 0 ]; then
  echo "kernel-profile: ncu exited with $rc" >&2
  tail -n 5 "$CSV.err" >&2
  exit 1
fi
"$PY" - "$CSV" "$TOP" <<'PYEOF'
import csv, collections, sys
path, top = sys.argv[1], int(sys.argv[2])
rows = [l for l in open(path, errors="replace") if l.startswith('"')]
agg = collections.defaultdict(lambda: [0, 0.0])
for r in csv.DictReader(rows):
    if r.get("Metric Name") != "gpu__time_duration.sum":
        continue
    name = r["Kernel Name"]
    name = name if len(name) <= 90 else name[:87] + "..."
    agg[name][0] += 1
    agg[name][1] += float(r["Metric Value"].replace(",", "")) / 1e3  # ns -> us
total = sum(v[1] for v in agg.values())
launches = sum(v[0] for v in agg.values())
print(f"{launches} kernel launches, {total:.1f} us of GPU time in one execution (no CUDA graph, kernels timed one by one)")
print(f"{'us':>9} {'share':>6} {'launches':>8}  kernel")
for name, (n, us) in sorted(agg.items(), key=lambda kv: -kv[1][1])[:top]:
    print(f"{us:9.1f} {100 * us / max(total, 1e-9):5.1f}% {n:8d}  {name}")
PYEOF
