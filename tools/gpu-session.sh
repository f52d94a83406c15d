#!/usr/bin/env bash
# One call on the GPU machine: builds from source, runs the GPU tests (tools/gpu-check.sh), then the
# benchmark rows (tools/bench-gpu.sh), then optional A/B timings of settings (tools/ab-env.sh) on the
# benchmark's exported models, inside one time budget. Writes into the folder given (default $OUT):
# summary.txt (gpu-check's), RESULTS.md and results.json (the benchmark's), ab.txt, and logs.tgz with
# every log (the device tool returns at most 8 files).
#   bash tools/gpu-session.sh [OUT_DIR]
# Environment: SESSION_BUDGET (seconds in all, default 570), CHECK_BUDGET (seconds for gpu-check,
# default 330; 0 skips it), BENCH_ROWS (run_bench.py --rows spec, e.g. "resnet50:1,32;bert_base:1";
# empty skips the benchmark), BENCH_ARGS (more run_bench.py options), BENCH_SECONDS (its share;
# default all that is left, or 2/5 of it when A/B or profiles follow), AB_VARIANTS (space-separated
# ab-env.sh variants, e.g. "TENSORC_CUDA_NHWC=0 TENSORC_CUDNN_SDPA=0"; empty skips A/B), AB_MODELS
# (the benchmark's .pt2 stems to A/B, e.g. "resnet50_b32 bert_base_b32"; default all), PROFILE
# (.pt2 stems whose f16 engines tools/kernel-profile.sh and `tensorc bench --profile` profile, into
# profile.txt), ROUNDTRIP (a
# .pt2 stem: build an f16 engine file, bench it, run it in two new processes and compare the outputs
# byte for byte, into roundtrip.txt),
# BUILD_DIR (default /tmp/tensorc-gpu-build), TENSORC_COMMIT (the commit to record: the device copy's
# .git may not match its files, so write the hash of the local checkout itself; a $(git rev-parse)
# in the device command runs on the device and records its stale base).
set -uo pipefail
cd "$(dirname "$0")/.."
OUTDIR=${1:-${OUT:-gpu-session}}
mkdir -p "$OUTDIR" && OUTDIR=$(cd "$OUTDIR" && pwd)
WORK=$(mktemp -d)
START=$(date +%s)
BUDGET=${SESSION_BUDGET:-570}
left() { echo $((START + BUDGET - $(date +%s))); }
export BUILD_DIR=${BUILD_DIR:-/tmp/tensorc-gpu-build}
BENCH_WORK=${BENCH_WORK_DIR:-/tmp/tensorc-bench-work}

if [ "${CHECK_BUDGET:-330}" != 0 ]; then
  GPU_CHECK_JOBS=${GPU_CHECK_JOBS:-4} XDIST_WORKERS=${XDIST_WORKERS:-4} GPU_CHECK_BUDGET=${CHECK_BUDGET:-330} \
    bash tools/gpu-check.sh "$WORK/gpu" >"$WORK/gpu-check.out" 2>&1
  cp "$WORK/gpu/summary.txt" "$OUTDIR/summary.txt" 2>/dev/null
  tail -n 45 "$WORK/gpu/summary.txt" 2>/dev/null || tail -n 30 "$WORK/gpu-check.out"
fi
if [ -n "${BENCH_ROWS:-}" ] && [ "$(left)" -gt 60 ]; then
  rem=$(left)
  [ -n "${AB_VARIANTS:-}${PROFILE:-}" ] && rem=$((rem * 2 / 5))
  rem=${BENCH_SECONDS:-$rem}
  # shellcheck disable=SC2086
  BENCH_BUDGET=$rem BENCH_WORK_DIR=$BENCH_WORK bash tools/bench-gpu.sh "$WORK/bench" --rows "$BENCH_ROWS" \
    ${BENCH_ARGS:-} >"$WORK/bench-gpu.out" 2>&1
  cp "$WORK/bench/RESULTS.md" "$WORK/bench/results.json" "$OUTDIR/" 2>/dev/null
  grep -E "^\[bench\]|^bench:|^build:" "$WORK/bench-gpu.out" | tail -n 20
  sed -n '/^| model | batch/,/^$/p' "$WORK/bench/RESULTS.md" 2>/dev/null
  grep -E "^\*\*Geometric" "$WORK/bench/RESULTS.md" 2>/dev/null
fi
if [ -n "${ROUNDTRIP:-}" ] && [ "$(left)" -gt 30 ]; then
  # the deployment path: build an f16 engine file, bench it, load it in two new processes and
  # compare their outputs byte for byte
  m=$BENCH_WORK/$ROUNDTRIP.pt2
  {
    echo "\$ tensorc build $ROUNDTRIP.pt2 --fp16 -o r.tce"
    "$BUILD_DIR/tensorc" build "$m" --fp16 -o "$WORK/r.tce" 2>&1
    echo "\$ tensorc bench r.tce"
    "$BUILD_DIR/tensorc" bench "$WORK/r.tce" 2>&1
    for k in 1 2; do "$BUILD_DIR/tensorc" run "$WORK/r.tce" --seed 5 --output-dir "$WORK/rt$k" >/dev/null 2>&1; done
    same=1
    for f in "$WORK"/rt1/*.npy; do cmp -s "$f" "$WORK/rt2/$(basename "$f")" || same=0; done
    n=$(ls "$WORK"/rt1/*.npy 2>/dev/null | wc -l)
    echo "two loads of r.tce in new processes, same inputs: $n output file(s), bit-identical: $([ "$same" = 1 ] && [ "$n" -gt 0 ] && echo yes || echo NO)"
  } >"$OUTDIR/roundtrip.txt" 2>&1
  cat "$OUTDIR/roundtrip.txt"
  rm -f "$WORK/r.tce"
fi
if [ -n "${PROFILE:-}" ] && [ "$(left)" -gt 30 ]; then
  for m in $PROFILE; do
    [ "$(left)" -gt 20 ] || break
    echo "== $m" >>"$OUTDIR/profile.txt"
    if "$BUILD_DIR/tensorc" build "$BENCH_WORK/$m.pt2" --fp16 -o "$WORK/$m.tce" >>"$WORK/profile-build.log" 2>&1; then
      TENSORC_CLI=$BUILD_DIR/tensorc timeout "$(left)" bash tools/kernel-profile.sh "$WORK/$m.tce" 30 \
        "$WORK/$m.ncu.csv" >>"$OUTDIR/profile.txt" 2>&1
      # the steps' own times (events around each step), largest first
      timeout "$(left)" "$BUILD_DIR/tensorc" bench "$WORK/$m.tce" --profile --warmup 2 --iterations 20 \
        2>&1 >/dev/null | head -n 40 >>"$OUTDIR/profile.txt"
    else
      tail -n 3 "$WORK/profile-build.log" >>"$OUTDIR/profile.txt"
    fi
    rm -f "$WORK/$m.tce"
  done
  head -n 40 "$OUTDIR/profile.txt"
fi
if [ -n "${AB_VARIANTS:-}" ] && [ "$(left)" -gt 30 ]; then
  models=()
  if [ -n "${AB_MODELS:-}" ]; then
    for m in $AB_MODELS; do models+=("$BENCH_WORK/$m.pt2"); done
  else
    models=("$BENCH_WORK"/*.pt2)
  fi
  # shellcheck disable=SC2086
  TENSORC_CLI=$BUILD_DIR/tensorc timeout "$(left)" bash tools/ab-env.sh $AB_VARIANTS "${models[@]}" \
    >"$OUTDIR/ab.txt" 2>&1
  echo "ab-env rc=$?"
  cat "$OUTDIR/ab.txt"
fi
tar -czf "$OUTDIR/logs.tgz" -C "$WORK" . 2>/dev/null
echo "== gpu-session done in $(($(date +%s) - START))s"
