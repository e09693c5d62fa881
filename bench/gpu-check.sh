#!/usr/bin/env bash
# Everything issue 4 measures on a lent GPU, in one device call: correctness first (the kernel
# tests against the float64 reference, on this adapter), then PyTorch/cuDNN, bandwidth and our
# whole bench suite (with TF.js) in the same call; a short table last, full logs under $OUT.
#
# On the device machine, from the repository root, with .gpu carried (see ../shared/gpu/README.md):
#   bash bench/gpu-check.sh
# Smaller settings (e.g. a smoke test on lavapipe):
#   BATCH=4 MLPCONV_BATCHES=4 REPS=2 STEPS=2 OUT=/tmp/gpu-check bash bench/gpu-check.sh
set -uo pipefail
OUT=${OUT:-bench/out}
BATCH=${BATCH:-128}
MLPCONV_BATCHES=${MLPCONV_BATCHES:-32,128,256}
REPS=${REPS:-20}
STEPS=${STEPS:-10}
mkdir -p "$OUT"
if [ -f .gpu/setup.sh ]; then source .gpu/setup.sh; elif [ -f /opt/gpu/env.sh ]; then source /opt/gpu/env.sh; fi

node --import tsx engine/info.ts | tee "$OUT/gpu-info.txt" || exit 1

echo "== correctness: kernel tests on this adapter"
node node_modules/vitest/vitest.mjs run test/conv2d.test.ts test/mlpconv.test.ts test/gap.test.ts \
  test/pool2d.test.ts test/dropout.test.ts test/softmax-cross-entropy.test.ts test/sgd.test.ts \
  test/nin-end-to-end.test.ts > "$OUT/tests.txt" 2>&1
tests=$?
grep -E "Test Files|Tests  " "$OUT/tests.txt"
if [ $tests -ne 0 ]; then echo "kernel tests FAILED on this adapter: no timings (see $OUT/tests.txt)"; exit 1; fi

echo "== PyTorch + cuDNN, same card"
if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  python3 bench/pytorch_nin.py --batch "$BATCH" --json "$OUT/pytorch.json" > "$OUT/pytorch.txt" 2>&1 || echo "PyTorch side failed: see $OUT/pytorch.txt"
else
  echo "no CUDA PyTorch here: skipped" | tee "$OUT/pytorch.txt"
fi

echo "== bandwidth"
node --import tsx bench/bandwidth.ts --batch "$BATCH" > "$OUT/bandwidth.txt" 2>&1 || echo "bandwidth bench failed: see $OUT/bandwidth.txt"

echo "== bench suite (fused vs unfused, training step, TF.js)"
node --import tsx bench/run-all.ts --batch "$BATCH" --mlpconv-batches "$MLPCONV_BATCHES" --reps "$REPS" --steps "$STEPS" --out "$OUT" \
  > "$OUT/run-all.md" 2> "$OUT/run-all.log" || echo "bench suite failed: see $OUT/run-all.log"

echo "== summary"
tail -n 8 "$OUT/bandwidth.txt"
cat "$OUT/pytorch.txt"
tail -n 30 "$OUT/run-all.md"
