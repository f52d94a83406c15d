#!/usr/bin/env bash
# On the GPU machine: A/B timing of environment settings on engine files, e.g. whether
# channels-last activations should become the default:
#   bash tools/ab-env.sh TENSORC_CUDA_NHWC=1 [TENSORC_CUDA_NVRTC=1,TENSORC_CUDNN_SDPA=1 ...] MODEL.pt2...
# Each argument holding '=' is one variant B1, B2, ... (commas join several settings into one); the
# rest are .pt2 files (exported by bench/run_bench.py into its --work-dir, f16 models). For each model
# an f16 engine is built without any setting (A) and with each variant (the variant's settings also
# apply when the engine is loaded); each variant's outputs are checked against A's within f16
# tolerance, and the GPU time per execution from `tensorc bench --json` is printed with the ratio
# B/A. Environment: TENSORC_CLI (default build-gpu/tensorc), AB_BUILD_FLAGS (extra `tensorc build`
# flags, e.g. --no-autotune).
set -uo pipefail
cd "$(dirname "$0")/.."
VARIANTS=()
while [ $# -gt 0 ] && [ "${1#*=}" != "$1" ]; do VARIANTS+=("$1"); shift; done
if [ ${#VARIANTS[@]} -eq 0 ] || [ $# -eq 0 ]; then
  echo "usage: bash tools/ab-env.sh NAME=VALUE[,NAME=VALUE...] [more variants...] MODEL.pt2..." >&2
  exit 2
fi
CLI=${TENSORC_CLI:-build-gpu/tensorc}
PY=${PYTHON:-python3}
read -r -a BUILD_FLAGS <<<"${AB_BUILD_FLAGS:-}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for i in "${!VARIANTS[@]}"; do echo "B$((i + 1)): ${VARIANTS[$i]}"; done
printf '%-28s %9s' model "A (ms)"
for i in "${!VARIANTS[@]}"; do printf ' %9s %6s' "B$((i + 1)) (ms)" "B/A"; done
printf '  outputs against A\n'

# time_side SIDE SETTINGS MODEL: builds, benches and runs one engine; prints the mean GPU ms or FAIL
time_side() {
  local side=$1 model=$3 envs=()
  [ -n "$2" ] && IFS=, read -r -a envs <<<"$2"
  if ! env "${envs[@]}" "$CLI" build "$model" --fp16 "${BUILD_FLAGS[@]}" -o "$TMP/$side.tce" >"$TMP/$side.build" 2>&1; then
    sed 's/^/   build: /' "$TMP/$side.build" | tail -n 3 >&2
    echo FAIL
    return
  fi
  local j
  if ! j=$(env "${envs[@]}" "$CLI" bench "$TMP/$side.tce" --json 2>"$TMP/$side.err"); then
    tail -n 3 "$TMP/$side.err" >&2
    echo FAIL
    return
  fi
  rm -rf "$TMP/out_$side"
  env "${envs[@]}" "$CLI" run "$TMP/$side.tce" --seed 7 --output-dir "$TMP/out_$side" >/dev/null 2>&1
  echo "$j" | "$PY" -c 'import json,sys; j=json.load(sys.stdin); print("%.4f" % (j.get("gpu_time_ms") or j["latency_ms"])["mean"])'
}

for m in "$@"; do
  name=$(basename "$m" .pt2)
  a=$(time_side A "" "$m")
  line=$(printf '%-28s %9s' "$name" "$a")
  agree=""
  for i in "${!VARIANTS[@]}"; do
    b=$(time_side "B$i" "${VARIANTS[$i]}" "$m")
    ratio=$("$PY" -c "import sys; a,b=sys.argv[1:3]; print('%.3f' % (float(b)/float(a)) if 'FAIL' not in (a,b) else '-')" "$a" "$b")
    line+=$(printf ' %9s %6s' "$b" "$ratio")
    agree+=" B$((i + 1)):$("$PY" - "$TMP/out_A" "$TMP/out_B$i" <<'PYEOF'
import sys, pathlib
import numpy as np
a, b = (sorted(pathlib.Path(d).glob("*.npy")) for d in sys.argv[1:3])
if not a or len(a) != len(b):
    print("not-compared"); sys.exit()
worst = 0.0
for x, y in zip(a, b):
    x, y = np.load(x).astype(np.float64), np.load(y).astype(np.float64)
    worst = max(worst, float(np.abs(x - y).max() / max(np.abs(x).max(), 1e-30)))
print(("agree" if worst <= 1e-2 else "DIFFER") + f"({worst:.1e})")
PYEOF
)"
  done
  echo "$line $agree"
done
