#!/usr/bin/env bash
# The main job, in one command on a fresh machine: builds tensorc, builds an engine from the example
# model examples/model.pt2 (on the GPU when there is one and tensorc was built with CUDA, else on the
# CPU), runs it on examples/input.npy and benchmarks it.
#   bash tools/demo.sh [build-dir]        (DEVICE=cpu|cuda to choose; ENGINE=path for the .tce)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
ENGINE=${ENGINE:-/tmp/model.tce}
echo "== build tensorc ($BUILD, TENSORC_CUDA=${TENSORC_CUDA:-AUTO})"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTENSORC_CUDA="${TENSORC_CUDA:-AUTO}" >/dev/null
cmake --build "$BUILD" -j "$(nproc)" >/dev/null
TC="$BUILD/tensorc"
"$TC" version

if [ -z "${DEVICE:-}" ]; then
  DEVICE=cpu
  if "$TC" version | grep -q cuda && command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    DEVICE=cuda
  fi
fi

echo "== tensorc build examples/model.pt2 -o $ENGINE --device $DEVICE"
if ! "$TC" build examples/model.pt2 -o "$ENGINE" --device "$DEVICE"; then
  if [ "$DEVICE" = cuda ]; then
    echo "(the CUDA backend could not build this model; building for the CPU instead)"
    DEVICE=cpu
    "$TC" build examples/model.pt2 -o "$ENGINE" --device cpu
  else
    exit 1
  fi
fi
RUN_DEVICE=()
if [ "$DEVICE" = cuda ] && ! "$TC" run "$ENGINE" >/dev/null 2>&1; then
  echo "(CUDA engines cannot execute from the CLI yet; running the engine's graph on the CPU)"
  RUN_DEVICE=(--device cpu)
fi

echo "== tensorc inspect $ENGINE"
"$TC" inspect "$ENGINE" | sed -n '1,12p'
echo "== tensorc run $ENGINE --input x=examples/input.npy"
"$TC" run "$ENGINE" "${RUN_DEVICE[@]}" --input x=examples/input.npy --output-dir /tmp/tensorc-demo
python3 - <<'PY' 2>/dev/null || true
import numpy as np
got, want = np.load("/tmp/tensorc-demo/linear.npy"), np.load("examples/expected_output.npy")
print(f"max |tensorc - PyTorch| / max |PyTorch| = {abs(got - want).max() / abs(want).max():.2e}")
PY
echo "== tensorc bench $ENGINE --batch 8"
"$TC" bench "$ENGINE" "${RUN_DEVICE[@]}" --batch 8
echo "== the runtime-only library: $BUILD/run_engine"
"$BUILD/run_engine" "$ENGINE" examples/input.npy examples/expected_output.npy
