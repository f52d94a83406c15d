#!/usr/bin/env bash
# On the GPU test machine: builds tensorc with the CUDA backend (or reuses the build folder), runs
# bench/run_bench.py (tensorc against eager PyTorch and torch.compile), writes RESULTS.md, results.json
# and logs to the folder given, and prints RESULTS.md.
#   bash tools/bench-gpu.sh OUT_DIR [run_bench.py options, e.g. --rows resnet50:1,32 --max-autotune]
# Environment: BUILD_DIR (default build-gpu), PYTHON (default python3), BENCH_BUDGET (seconds for the
# whole call, default 540: rows not started in time are reported as not run, a hung row is killed),
# BENCH_ROW_RESERVE (seconds before the end after which no row starts, default 90: the longest row
# with torch.compile; tensorc-only rows need about 30).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${1:-}
if [ -z "$OUT" ] || [ "${OUT#-}" != "$OUT" ]; then
  echo "usage: bash tools/bench-gpu.sh OUT_DIR [run_bench.py options]" >&2
  exit 2
fi
shift
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
BUILD=${BUILD_DIR:-build-gpu}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
PY=${PYTHON:-python3}
START=$(date +%s)
BUDGET=${BENCH_BUDGET:-540}
left() { echo $((START + BUDGET - $(date +%s))); }

echo "== bench-gpu $(date -u +%FT%TZ) on $(hostname), commit ${TENSORC_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo '?')}"
echo "card: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n 1)"

# ---- build (configure once per build folder; later calls only rebuild what changed) ------------
if ! grep -q "^TENSORC_CUDA:[A-Z]*=ON" "$BUILD/CMakeCache.txt" 2>/dev/null; then
  GEN=()
  command -v ninja >/dev/null && GEN=(-G Ninja)
  t=$(date +%s)
  cmake -S . -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DTENSORC_CUDA=ON \
    -DPython3_EXECUTABLE="$(command -v "$PY")" >"$OUT/configure.log" 2>&1
  rc=$?
  echo "configure: rc=$rc ($(($(date +%s) - t))s) $(grep -E 'CUDA backend: ' "$OUT/configure.log" | tail -n 1 | sed 's/^-- //')"
  if [ $rc -ne 0 ]; then tail -n 30 "$OUT/configure.log"; exit 1; fi
else
  echo "configure: reusing $BUILD"
fi
t=$(date +%s)
timeout "$(left)" cmake --build "$BUILD" -j "$(nproc)" >"$OUT/build.log" 2>&1
rc=$?
echo "build: rc=$rc ($(($(date +%s) - t))s)"
if [ $rc -ne 0 ]; then grep -E "error|FAILED" "$OUT/build.log" | head -n 30; exit 1; fi

# ---- benchmark ---------------------------------------------------------------------------------
# Rows stop starting 90 s before the end (the longest row, BERT at batch 32 with torch.compile,
# takes about that long); a row still running at the end is killed and RESULTS.md keeps the rows
# written before it.
REM=$(left)
RESERVE=${BENCH_ROW_RESERVE:-90}
ROW_BUDGET=$((REM > RESERVE + 30 ? REM - RESERVE : 30))
export TENSORC_CLI="$BUILD/tensorc" TENSORC_PYTHONPATH="$BUILD/python" PYTHONDONTWRITEBYTECODE=1
echo "bench: ${REM}s left, rows start within ${ROW_BUDGET}s; options: $*"
timeout --kill-after=10 "$REM" "$PY" bench/run_bench.py --build-dir "$BUILD" --out "$OUT" \
  --work-dir "${BENCH_WORK_DIR:-/tmp/tensorc-bench-work}" --time-budget "$ROW_BUDGET" "$@" >"$OUT/bench.log" 2>&1
rc=$?
[ $rc -eq 124 ] || [ $rc -eq 137 ] && echo "bench: killed at the time budget; RESULTS.md holds the rows finished before"
echo "bench: rc=$rc ($(($(date +%s) - START))s in all)"
grep -E "^\[bench\]" "$OUT/bench.log"
if [ ! -f "$OUT/RESULTS.md" ]; then
  echo "bench: no RESULTS.md was written; the end of bench.log:"
  tail -n 40 "$OUT/bench.log"
  exit 1
fi
[ $rc -ne 0 ] && { echo "the end of bench.log:"; tail -n 15 "$OUT/bench.log"; }
echo
cat "$OUT/RESULTS.md"
