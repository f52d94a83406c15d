#!/usr/bin/env bash
# The main job on a bundled example: builds tensorc and runs the example graph through the C API
# on the best available device (the CUDA backend is not there yet, so the CPU for now).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTENSORC_CUDA="${TENSORC_CUDA:-AUTO}" >/dev/null
cmake --build "$BUILD" -j "$(nproc)" >/dev/null
"$BUILD/tensorc" version
"$BUILD/example_graph"
