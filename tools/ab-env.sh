#!/usr/bin/env bash
# On the GPU machine: A/B timing of an environment setting on engine files, e.g. whether
# channels-last activations should become the default:
#   bash tools/ab-env.sh TENSORC_CUDA_NHWC=1 /tmp/tensorc-bench-work/*.pt2
# For each .pt2 (exported by bench/run_bench.py into its --work-dir, f16 models), builds an f16
# engine without and with the setting (the setting also applies when the engine is loaded), checks
# that both give outputs within f16 tolerance of each other, and prints the GPU time per execution
# from `tensorc bench --json` with the ratio B/A. Environment: TENSORC_CLI (default build-gpu/tensorc).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ] || [ "${1#*=}" = "$1" ]; then
  echo "usage: bash tools/ab-env.sh NAME=VALUE MODEL.pt2..." >&2
  exit 2
fi
SETTING=$1
shift
CLI=${TENSORC_CLI:-build-gpu/tensorc}
PY=${PYTHON:-python3}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
printf '%-40s %10s %10s %8s  %s\n' model "A (ms)" "B (ms)" "B/A" "outputs"
for m in "$@"; do
  name=$(basename "$m" .pt2)
  ms=()
  for side in A B; do
    envs=()
    [ "$side" = B ] && envs=("$SETTING")
    if ! env "${envs[@]}" "$CLI" build "$m" --fp16 -o "$TMP/$side.tce" >"$TMP/$side.build" 2>&1; then
      ms+=("FAIL")
      sed 's/^/   build: /' "$TMP/$side.build" | tail -n 3
      continue
    fi
    j=$(env "${envs[@]}" "$CLI" bench "$TMP/$side.tce" --json 2>"$TMP/$side.err") || { ms+=("FAIL"); tail -n 3 "$TMP/$side.err"; continue; }
    ms+=("$(echo "$j" | "$PY" -c 'import json,sys; j=json.load(sys.stdin); print("%.4f" % (j.get("gpu_time_ms") or j["latency_ms"])["mean"])')")
    rm -rf "$TMP/out_$side"
    env "${envs[@]}" "$CLI" run "$TMP/$side.tce" --seed 7 --output-dir "$TMP/out_$side" >/dev/null 2>&1
  done
  agree=$("$PY" - "$TMP/out_A" "$TMP/out_B" <<'PYEOF'
import sys, pathlib
import numpy as np
a, b = (sorted(pathlib.Path(d).glob("*.npy")) for d in sys.argv[1:3])
if not a or len(a) != len(b):
    print("not compared"); sys.exit()
worst = 0.0
for x, y in zip(a, b):
    x, y = np.load(x).astype(np.float64), np.load(y).astype(np.float64)
    worst = max(worst, float(np.abs(x - y).max() / max(np.abs(x).max(), 1e-30)))
print(("agree" if worst <= 1e-2 else "DIFFER") + f" (max rel {worst:.2e})")
PYEOF
)
  ratio=$("$PY" -c "import sys; a,b=sys.argv[1:3]; print('%.3f' % (float(b)/float(a)) if 'FAIL' not in (a,b) else '-')" "${ms[0]:-FAIL}" "${ms[1]:-FAIL}")
  printf '%-40s %10s %10s %8s  %s\n' "$name" "${ms[0]:-FAIL}" "${ms[1]:-FAIL}" "$ratio" "$agree"
done
