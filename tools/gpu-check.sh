#!/usr/bin/env bash
# On the GPU test machine: builds tensorc from source with the CUDA backend (cuDNN from PyTorch's
# pip package there), runs the C tests (the CUDA ones run on the GPU) and the Python suites, and
# writes logs and a short summary to the folder given (default: $OUT or ./gpu-logs).
#   bash tools/gpu-check.sh [LOG_DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
LOG=${1:-${OUT:-gpu-logs}}
mkdir -p "$LOG"
SUMMARY="$LOG/summary.txt"
: >"$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }

note "== $(date -u +%FT%TZ) on $(hostname)"
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 | tee -a "$SUMMARY"
note "python: $(python3 --version 2>&1), torch: $(python3 -c 'import torch; print(torch.__version__)' 2>&1)"
note "nvcc: $(nvcc --version 2>/dev/null | tail -n 1)"

cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DTENSORC_CUDA=ON >"$LOG/configure.log" 2>&1
rc=$?; note "configure: rc=$rc"; [ $rc -eq 0 ] || { tail -n 30 "$LOG/configure.log"; exit 1; }
cmake --build build-gpu -j "$(nproc)" >"$LOG/build.log" 2>&1
rc=$?; note "build: rc=$rc"; [ $rc -eq 0 ] || { tail -n 40 "$LOG/build.log"; exit 1; }

ctest --test-dir build-gpu --output-on-failure -j 8 >"$LOG/ctest.log" 2>&1
rc=$?; note "ctest: rc=$rc $(grep -E 'tests passed|tests failed' "$LOG/ctest.log" | tail -n 1)"
grep -E "passed|SKIP" build-gpu/Testing/Temporary/LastTest.log 2>/dev/null | grep -i cuda | head -n 5 | tee -a "$SUMMARY"

export TENSORC_LIB="$PWD/build-gpu/libtensorc.so" TENSORC_CLI="$PWD/build-gpu/tensorc"
python3 -m pytest -q -ra tests/python -x --timeout=0 -p no:cacheprovider >"$LOG/pytest.log" 2>&1 ||
  python3 -m pytest -q -ra tests/python -p no:cacheprovider >"$LOG/pytest.log" 2>&1
rc=$?; note "pytest: rc=$rc $(tail -n 1 "$LOG/pytest.log")"
exit 0
