#!/usr/bin/env bash
# On the GPU test machine: builds tensorc with the CUDA backend (cuDNN from PyTorch's pip package
# there), runs the C tests (test_cuda_exec alone, since it measures device memory) and every Python
# test file with TENSORC_TEST_BACKEND=cuda, each file in its own process (a device fault in one
# file cannot fail the rest). Writes logs and summary.txt (card, build, counts per test file) to
# the folder given (default: $OUT or ./gpu-logs). Stays within GPU_CHECK_BUDGET seconds (530).
#   bash tools/gpu-check.sh [LOG_DIR]
# Environment: GPU_CHECK_BUDGET (seconds), GPU_CHECK_JOBS (test files run at once, default 1),
# GPU_CHECK_FILES (space-separated test files instead of all), XDIST_WORKERS (when pytest-xdist is
# installed, workers per file; default 4), BUILD_DIR (default build-gpu), GPU_CHECK_SWITCHES (0: skip the
# last stage, the GPU model tests with the default-on lowerings turned off).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LOG=${1:-${OUT:-gpu-logs}}
mkdir -p "$LOG/pytest"
LOG=$(cd "$LOG" && pwd)
SUMMARY="$LOG/summary.txt"
: >"$SUMMARY"
BUILD=${BUILD_DIR:-build-gpu}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
START=$(date +%s)
DEADLINE=$((START + ${GPU_CHECK_BUDGET:-530}))
PY=${PYTHON:-python3}
note() { echo "$*" | tee -a "$SUMMARY"; }
left() { echo $((DEADLINE - $(date +%s))); }
elapsed() { echo "$(($(date +%s) - $1))s"; }

# TENSORC_COMMIT names the commit of a copy whose .git does not match its files (the GPU machine's)
COMMIT=${TENSORC_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')}
note "== gpu-check $(date -u +%FT%TZ) on $(hostname), commit $COMMIT"
note "card: $(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 | head -n 4 | paste -sd';')"
note "python: $($PY --version 2>&1), torch: $($PY -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "available:", torch.cuda.is_available())' 2>&1 | tail -n 1)"
note "nvcc: $(nvcc --version 2>/dev/null | tail -n 1)"

# ---- build -------------------------------------------------------------------------------------
t=$(date +%s)
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTENSORC_CUDA=ON \
  -DPython3_EXECUTABLE="$(command -v "$PY")" >"$LOG/configure.log" 2>&1
rc=$?
note "configure: rc=$rc ($(elapsed "$t")); $(grep -E 'CUDA backend: ' "$LOG/configure.log" | tail -n 1 | sed 's/^-- //')"
grep -E "tensorc CUDA: (cuDNN|cuBLASLt|cudart)" "$LOG/configure.log" | sed 's/^-- /   /' >>"$SUMMARY"
if [ $rc -ne 0 ]; then tail -n 30 "$LOG/configure.log" | tee -a "$SUMMARY"; exit 1; fi
t=$(date +%s)
timeout "$(left)" cmake --build "$BUILD" -j "$(nproc)" >"$LOG/build.log" 2>&1
rc=$?
warnings=$(grep -c "warning:" "$LOG/build.log")
note "build: rc=$rc ($(elapsed "$t"), $warnings compiler warning lines, see build.log)"
if [ $rc -ne 0 ]; then grep -E "error|FAILED" "$LOG/build.log" | head -n 30 | tee -a "$SUMMARY"; exit 1; fi

# ---- C tests -----------------------------------------------------------------------------------
t=$(date +%s)
timeout "$(left)" ctest --test-dir "$BUILD" --output-on-failure -j 8 -E '^test_cuda_exec$' >"$LOG/ctest.log" 2>&1
rc=$?
note "ctest (all but test_cuda_exec): rc=$rc ($(elapsed "$t")) $(grep -E 'tests passed|tests failed' "$LOG/ctest.log" | tail -n 1)"
grep -E "^\s*[0-9]+/[0-9]+ Test.*(Failed|Timeout|Exception)" "$LOG/ctest.log" | sed 's/^/   /' | tee -a "$SUMMARY"
t=$(date +%s)
timeout "$(left)" "$BUILD/test_cuda_exec" >"$LOG/test_cuda_exec.log" 2>&1
rc=$?
note "test_cuda_exec: rc=$rc ($(elapsed "$t")) $(tail -n 1 "$LOG/test_cuda_exec.log")"
grep -E "SKIP|executions|cycles|graphs|arena|check failed" "$LOG/test_cuda_exec.log" | head -n 20 | sed 's/^/   /' >>"$SUMMARY"

# ---- Python tests, one process per file --------------------------------------------------------
export TENSORC_LIB="$BUILD/libtensorc.so" TENSORC_CLI="$BUILD/tensorc" TENSORC_TEST_BACKEND=cuda
# the GPU model tests append each model's errors against eager PyTorch here (copied into the summary)
export TENSORC_GPU_MODEL_REPORT="$LOG/models.txt"
: >"$TENSORC_GPU_MODEL_REPORT"
export PYTHONDONTWRITEBYTECODE=1
XDIST=()
if $PY -c 'import xdist' 2>/dev/null; then XDIST=(-n "${XDIST_WORKERS:-4}"); fi
note "pytest: TENSORC_TEST_BACKEND=cuda, ${GPU_CHECK_JOBS:-1} file(s) at a time, xdist: ${XDIST[*]:-not installed}"
if [ -n "${GPU_CHECK_FILES:-}" ]; then
  FILES=$GPU_CHECK_FILES
else
  FILES=$(ls -S tests/python/test_*.py) # largest first: the long ones do not end up last
fi

run_file() {
  local f=$1 name rem t0 rc
  name=$(basename "$f" .py)
  rem=$((DEADLINE - $(date +%s)))
  if [ "$rem" -le 5 ]; then
    echo "NOT RUN (time budget spent)" >"$LOG/pytest/$name.log"
    return 0
  fi
  t0=$(date +%s)
  timeout "$rem" $PY -m pytest -q -ra -p no:cacheprovider --maxfail=100000 "${XDIST[@]}" \
    --junitxml="$LOG/pytest/$name.xml" -o junit_family=xunit1 "$f" >"$LOG/pytest/$name.log" 2>&1
  rc=$?
  [ $rc -eq 124 ] && echo "TIMEOUT after ${rem}s (time budget spent)" >>"$LOG/pytest/$name.log"
  echo "rc=$rc seconds=$(($(date +%s) - t0))" >"$LOG/pytest/$name.rc"
}
export -f run_file
export LOG DEADLINE PY
export XDIST_ARGS="${XDIST[*]:-}"
t=$(date +%s)
# arrays do not cross `export`; rebuild XDIST inside the child shell
printf '%s\n' $FILES | xargs -P "${GPU_CHECK_JOBS:-1}" -I{} bash -c 'XDIST=($XDIST_ARGS); run_file "$1"' _ {}
note "pytest: all files done ($(elapsed "$t"))"

# Per-file counts from the JUnit files (the last log line when the run died before writing one).
$PY - "$LOG" $FILES <<'EOF' | tee -a "$SUMMARY"
import os, re, sys, xml.etree.ElementTree as ET
log, files = sys.argv[1], sys.argv[2:]
tot = dict(passed=0, failed=0, errors=0, skipped=0)
print(f"{'file':34} {'passed':>7} {'failed':>7} {'errors':>7} {'skipped':>8}  seconds  note")
for f in files:
    name = os.path.basename(f)[:-3]
    xml, lg, rcf = (os.path.join(log, "pytest", name + ext) for ext in (".xml", ".log", ".rc"))
    c = dict(passed=0, failed=0, errors=0, skipped=0)
    note = ""
    rc = open(rcf).read().split() if os.path.exists(rcf) else ["rc=?", "seconds=?"]
    if os.path.exists(xml):
        for s in ET.parse(xml).getroot().iter("testsuite"):
            n, fl, er, sk = (int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
            c["failed"] += fl; c["errors"] += er; c["skipped"] += sk; c["passed"] += n - fl - er - sk
    else:
        note = open(lg).read().strip().splitlines()[-1][:60] if os.path.exists(lg) else "no log"
    if rc[0] not in ("rc=0", "rc=1") and not note:
        note = rc[0] + (" (timeout)" if rc[0] == "rc=124" else " (crash or collection error: see log)")
    for k in tot:
        tot[k] += c[k]
    print(f"{name:34} {c['passed']:7} {c['failed']:7} {c['errors']:7} {c['skipped']:8}  {rc[1].split('=')[1]:>7}  {note}")
print(f"{'TOTAL':34} {tot['passed']:7} {tot['failed']:7} {tot['errors']:7} {tot['skipped']:8}")
if tot["passed"] == 0:
    import glob
    reasons = [l.strip() for g in sorted(glob.glob(os.path.join(log, "pytest", "*.log")))
               for l in open(g) if l.startswith("SKIPPED")][:3]
    print("WARNING: no Python test passed" + (": " + " | ".join(reasons) if reasons else ""))
EOF
if [ -s "$TENSORC_GPU_MODEL_REPORT" ]; then
  note "GPU model tests, errors against eager PyTorch on the GPU:"
  sort "$TENSORC_GPU_MODEL_REPORT" | cut -c1-400 | sed 's/^/   /' | tee -a "$SUMMARY"
fi
# Every failing test in one file, with pytest's one-line reason.
grep -hE "^(FAILED|ERROR) " "$LOG"/pytest/*.log >"$LOG/failures.txt" 2>/dev/null
note "failures: $(wc -l <"$LOG/failures.txt") line(s) in failures.txt; first ones:"
head -n 15 "$LOG/failures.txt" | cut -c1-300 | sed 's/^/   /' | tee -a "$SUMMARY"

# ---- the switched-off lowerings on whole models -------------------------------------------------
# Channels-last convolution chains, generated elementwise kernels, cuDNN's fused attention and
# zero-copy views are on by default; the GPU model tests, the layout tests and the attention
# conformance run once more with all four off (TENSORC_CUDA_NHWC=0 TENSORC_CUDA_NVRTC=0
# TENSORC_CUDNN_SDPA=0 TENSORC_CUDA_VIEWS=0), so that the paths they fall back to stay tested
# (GPU_CHECK_SWITCHES=0 skips this), when time is left.
if [ "${GPU_CHECK_SWITCHES:-1}" != 0 ] && [ "$(left)" -gt 60 ] && [ -f tests/python/test_cuda_models.py ]; then
  t=$(date +%s)
  TENSORC_GPU_MODEL_REPORT= TENSORC_CUDA_NHWC=0 TENSORC_CUDA_NVRTC=0 TENSORC_CUDNN_SDPA=0 TENSORC_CUDA_VIEWS=0 timeout "$(left)" $PY -m pytest -q -ra \
    -p no:cacheprovider "${XDIST[@]}" tests/python/test_cuda_models.py tests/python/test_cuda_layout.py \
    tests/python/test_ops_attention.py >"$LOG/pytest/switched_models.log" 2>&1
  rc=$?
  note "model, layout and attention tests with TENSORC_CUDA_NHWC=0 TENSORC_CUDA_NVRTC=0 TENSORC_CUDNN_SDPA=0 TENSORC_CUDA_VIEWS=0: rc=$rc ($(elapsed "$t")) $(tail -n 1 "$LOG/pytest/switched_models.log")"
  grep -hE "^(FAILED|ERROR) " "$LOG/pytest/switched_models.log" | head -n 10 | cut -c1-300 | sed 's/^/   /' | tee -a "$SUMMARY"
fi
note "== done in $(elapsed "$START")"
exit 0
