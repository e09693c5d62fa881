#!/usr/bin/env bash
# Everything issue 4 measures on a lent GPU, in one device call, most important first: correctness
# (the kernel tests against the float64 reference, on this adapter), PyTorch/cuDNN, the full network
# against PyTorch in float64 (bench/crosscheck.ts), our whole bench suite (fused vs unfused mlpconv,
# training step, TF.js), bandwidth, the autotuner, a per-kernel profile, then the subgroup-matrix
# GEMM where Dawn offers it (NIN_MATRIX; its tests, step time and crosscheck); a short table last.
# Each stage has its own time limit, cut to what is left of BUDGET (seconds for the whole script;
# a session has 15 device minutes, machine start included, and issue 3's training runs come after
# it: bench/gpu-train.sh lists the calls), so one slow stage cannot eat the call and the last
# stages are the ones skipped.
# Logs go to one archive, $OUT/logs.tgz (the device tool returns at most 8 files).
#
# On the device machine, from the repository root, with .gpu carried (see ../shared/gpu/README.md):
#   BUDGET=360 bash bench/gpu-check.sh
# Smaller settings (e.g. a smoke test on lavapipe):
#   BATCH=4 MLPCONV_BATCHES=4 REPS=2 STEPS=2 TUNE_MODELS=mnist-small OUT=/tmp/gpu-check bash bench/gpu-check.sh
set -uo pipefail
BUDGET=${BUDGET:-400}
END=$((SECONDS + BUDGET))
OUT=${OUT:-bench/out}
BATCH=${BATCH:-128}
MLPCONV_BATCHES=${MLPCONV_BATCHES:-32,128,256}
REPS=${REPS:-20}
STEPS=${STEPS:-10}
TUNE_MODELS=${TUNE_MODELS:-cifar10}
LOGS=$(mktemp -d)
mkdir -p "$OUT"
if [ -f .gpu/setup.sh ]; then source .gpu/setup.sh; elif [ -f /opt/gpu/env.sh ]; then source /opt/gpu/env.sh; fi
# Kernel times in µs need unquantized timestamps (engine/profiler.ts).
export NIN_DAWN_FLAGS=${NIN_DAWN_FLAGS:-disable-dawn-features=timestamp_quantization}

# Seconds left of BUDGET, keeping 5 for the summary.
left() { echo $((END - SECONDS - 5)); }

# stage NAME SECONDS CMD...: runs CMD with a time limit (at most what is left of BUDGET), its
# output in $LOGS/NAME.txt; skipped (exit 125) when under 10 s are left.
stage() {
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  echo "== $name"
  if [ "$(left)" -lt 10 ]; then
    echo "   $name: skipped, $(left) s left of BUDGET=$BUDGET" | tee "$LOGS/$name.txt"
    return 125
  fi
  [ "$limit" -gt "$(left)" ] && limit=$(left)
  timeout "$limit" "$@" > "$LOGS/$name.txt" 2>&1
  local rc=$?
  echo "   $name: exit $rc after $((SECONDS - t0)) s$([ $rc -eq 124 ] && echo " (time limit $limit s)")"
  tar -czf "$OUT/logs.tgz" -C "$LOGS" .
  return $rc
}

stage gpu-info 20 node --import tsx engine/info.ts; cat "$LOGS/gpu-info.txt"
# What tensor-core shapes Dawn would offer WGSL (the TF32 stretch target needs this list).
NIN_DAWN_FLAGS="$NIN_DAWN_FLAGS enable-dawn-features=allow_unsafe_apis" stage gpu-info-unsafe 20 node --import tsx engine/info.ts
grep -E "subgroup-matrix|adapter features" "$LOGS/gpu-info-unsafe.txt"

# (test/tuning.test.ts, which compiles every tile candidate, is left to the autotuner's own check:
# a table is only written if it leaves a training step's losses unchanged.)
stage tests 60 node node_modules/vitest/vitest.mjs run test/conv2d.test.ts test/mlpconv.test.ts test/gap.test.ts \
  test/pool2d.test.ts test/dropout.test.ts test/softmax-cross-entropy.test.ts test/sgd.test.ts \
  test/nin-end-to-end.test.ts
tests=$?
grep -E "Test Files|Tests  |FAIL" "$LOGS/tests.txt" | head -20
[ $tests -ne 0 ] && echo "KERNEL TESTS FAILED on this adapter: the timings below are not trustworthy"

python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null && CUDA_TORCH=yes || CUDA_TORCH=no
if [ $CUDA_TORCH = yes ]; then
  stage pytorch 50 python3 bench/pytorch_nin.py --batch "$BATCH" --json "$LOGS/pytorch.json"
else
  echo "no CUDA PyTorch here: skipped" | tee "$LOGS/pytorch.txt"
fi

# crosscheck NAME: the paper's CIFAR-10 net at full size against PyTorch in float64, five training
# steps from the same weights on the same batches (bench/crosscheck.ts, .py; NIN_MATRIX etc. from
# the environment). Once before any timing; again with the matrix units where they run.
crosscheck() {
  stage "$1" 40 bash -c "node --import tsx bench/crosscheck.ts --model cifar10 --batch $BATCH --steps 5 --synthetic --out $LOGS/$1 &&
    python3 bench/crosscheck.py $LOGS/$1/crosscheck.safetensors --json $LOGS/$1.json"
}
if [ $CUDA_TORCH = yes ]; then
  crosscheck crosscheck
  grep -E "^crosscheck:|Error" "$LOGS/crosscheck.txt"
fi

# Untuned first: every comparison the issue asks for, then what the autotuner adds to it.
stage run-all 110 node --import tsx bench/run-all.ts --batch "$BATCH" --mlpconv-batches "$MLPCONV_BATCHES" --reps "$REPS" --steps "$STEPS" --out "$LOGS"

stage bandwidth 15 node --import tsx bench/bandwidth.ts --batch "$BATCH"

# The table comes back in $OUT; if it made the whole training step faster it is also installed
# where the later stages and later calls on this warm machine use it (NIN_TUNED).
mkdir -p /opt/gpu 2>/dev/null
INSTALL=$( [ -w /opt/gpu ] && echo /opt/gpu/tuned.json || echo "$LOGS/tuned-installed.json" )
rm -f "$INSTALL"
# Its search gets the stage's time less 20 s (start-up, loss check), so it ends with a table.
TUNE_S=$(( $(left) < 80 ? $(left) : 80 ))
if [ "$TUNE_S" -gt 30 ]; then
  stage autotune "$TUNE_S" node --import tsx bench/autotune.ts --models "$TUNE_MODELS" --batch "$BATCH" --budget $((TUNE_S - 20)) --out "$OUT/tuned.json" --install "$INSTALL"
else
  echo "== autotune: skipped, $(left) s left of BUDGET=$BUDGET" | tee "$LOGS/autotune.txt"
fi
[ -f "$INSTALL" ] && export NIN_TUNED=$INSTALL
tail -n 5 "$LOGS/autotune.txt" 2>/dev/null

# Per kernel, with the tuned table if it was installed: where the step's time goes now.
stage profile 25 node --import tsx bench/train-step.ts --model cifar10 --batch "$BATCH" --steps 5 --profile

# Subgroup matrices (kernels/gemm-matrix.ts, NIN_MATRIX), where Dawn offers them: the real kernels
# against the float64 reference, then a training step in each mode (the fp32 default, timed above,
# stays the baseline). Last, being the stretch goal: a call cut short loses this first.
if grep -qE "subgroup-matrix configs: [0-9]" "$LOGS/gpu-info-unsafe.txt"; then
  UNSAFE="$NIN_DAWN_FLAGS enable-dawn-features=allow_unsafe_apis"
  NIN_DAWN_FLAGS="$UNSAFE" NIN_MATRIX=f32 stage matrix-tests 40 node node_modules/vitest/vitest.mjs run test/gemm-matrix.test.ts
  grep -E "^real |^skipped: |^(f32|f16): |Tests  |FAIL" "$LOGS/matrix-tests.txt" | head -12
  # Dawn offers no shader-f16 on NVIDIA's Vulkan driver, so f16 runs only where the adapter has it.
  for m in f32 $(grep -q "^features:.*shader-f16" "$LOGS/gpu-info-unsafe.txt" && echo f16); do
    NIN_DAWN_FLAGS="$UNSAFE" NIN_MATRIX=$m stage matrix-step-$m 30 node --import tsx bench/train-step.ts --model cifar10 --batch "$BATCH" --steps 5
    grep -E "^nin-webgpu|train step|back to back|^[A-Za-z]*Error" "$LOGS/matrix-step-$m.txt" | head -4
  done
  # What the matrix units cost in accuracy: the same five steps as the fp32 crosscheck above.
  [ $CUDA_TORCH = yes ] && NIN_DAWN_FLAGS="$UNSAFE" NIN_MATRIX=f32 crosscheck crosscheck-matrix-f32
  grep -sE "^crosscheck:|^ours:|Error" "$LOGS/crosscheck-matrix-f32.txt"
fi

echo "== summary (NIN_TUNED=${NIN_TUNED:-none})"
for f in "$LOGS"/crosscheck*.txt; do [ -f "$f" ] && echo "$(basename "$f" .txt): $(grep -h "^crosscheck:" "$f" | cut -c13- | grep . || echo "no verdict (see the log)")"; done
cat "$LOGS/pytorch.txt" 2>/dev/null
tail -n 8 "$LOGS/bandwidth.txt" 2>/dev/null
grep -B2 -A40 "training step" "$LOGS/profile.txt" 2>/dev/null | head -45
sed -n '/^## /,$p' "$LOGS/run-all.txt" 2>/dev/null | tail -n 45
echo "gpu-check: $SECONDS s of BUDGET=$BUDGET"
tar -czf "$OUT/logs.tgz" -C "$LOGS" .
