#!/usr/bin/env bash
# Builds tensorc and runs every test: the C tests through ctest and the Python suites (op
# conformance against PyTorch, model tests) through pytest. Installs the Python test packages
# when they are missing. Usage: bash tools/test.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
case "$BUILD" in /*) BUILD_ABS=$BUILD ;; *) BUILD_ABS=$PWD/$BUILD ;; esac
PY=${PYTHON:-python3}

if ! "$PY" -c 'import torch, torchvision, numpy, pytest' 2>/dev/null; then
  echo "== installing the Python test packages (tests/requirements.txt)"
  "$PY" -m pip install -q -r tests/requirements.txt
fi

echo "== configure ($BUILD, TENSORC_CUDA=${TENSORC_CUDA:-AUTO})"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTENSORC_CUDA="${TENSORC_CUDA:-AUTO}" \
  -DTENSORC_PYTHON=ON -DPython3_EXECUTABLE="$(command -v "$PY")"
echo "== build"
cmake --build "$BUILD" -j "$(nproc)"

echo "== C tests (ctest)"
ctest --test-dir "$BUILD" --output-on-failure -j "$(nproc)"

echo "== Python tests (pytest)"
export TENSORC_LIB="$BUILD_ABS/libtensorc.so"
export TENSORC_CLI="$BUILD_ABS/tensorc"
export TENSORC_PYTHONPATH="$BUILD_ABS/python"
set +e
"$PY" -m pytest -q -ra tests/python
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$rc"
