#!/usr/bin/env bash
# One GPU loan, in four device calls: issue 4's checks and timings (bench/gpu-check.sh), then
# issue 3's training runs (bench/gpu-train.sh: CIFAR-10, then the paper's MNIST net).
# A session has 15 device minutes: the machine's start (a minute or more), each call with its
# transfers, and each idle wait count. A warm machine goes back 30 s after a call, so issue each
# call as soon as the previous one returns; read the outputs afterwards.
#
# Here, first (no device time):
#   npm ci && ../shared/gpu/pack                                      # .gpu: node, node_modules, loaders
#     (npm ci also drops an unsaved onnxruntime-node, 300 MB, as .ci/run installs it: no room in a call)
#   mkdir -p .gpudata && cp -r ../shared/data/mnist .gpudata/
#   ../shared/gpu/pack-data ../shared/data/cifar-10-batches-bin cifar10  # .gpu-cifar10-1, -2, -3
#   bash bench/gpu-session.sh preflight                               # all there, each call ≤ 64 MiB
# The calls (device tool `run`, from the project root):
#   A. carry [".gpu", ".gpudata"], timeout_s 90:  source .gpu/setup.sh && bash bench/gpu-session.sh prepare
#      It names the adapter: if that is no GPU, stop here and give_back.
#   B. carry [".gpu-cifar10-1"], timeout_s 60:    bash bench/gpu-session.sh part
#   C. carry [".gpu-cifar10-2"], timeout_s 60:    bash bench/gpu-session.sh part
#   D. carry [".gpu-cifar10-3"], timeout_s T = min(600, budget_left_s − 45), budget_left_s from call
#      C's reply (its lease), not a `status` call: the machine goes back 30 s after C.
#      TOTAL=<T − 20> bash bench/gpu-session.sh run
#   Then give_back at once. $OUT holds logs.tgz and tuned.json (gpu-check), for each data set
#   <dataset>-train.txt and <dataset>-run.tgz (its metrics and checkpoint), and session.txt (all of
#   the call's output: the reply keeps only its last 12,000 characters): seven files of the eight
#   the tool returns.
set -uo pipefail
step=${1:?usage: gpu-session.sh preflight|prepare|part|run}

warm() {
  [ -f /opt/gpu/env.sh ] || { echo "gpu-session: /opt/gpu/env.sh is missing: the machine went cold after call A; start again from call A" >&2; exit 3; }
  source /opt/gpu/env.sh
  export NIN_GPU_ENV=1 # gpu-check.sh and gpu-train.sh then skip it (each sourcing copies the carried parts again)
}

case $step in
  preflight)
    ok=1
    # What travels in every call: tracked files and untracked ones git does not ignore.
    tree=$(git ls-files -z -co --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -n 1 | cut -f1)
    for carried in ".gpu .gpudata" .gpu-cifar10-1 .gpu-cifar10-2 .gpu-cifar10-3; do
      for d in $carried; do
        [ -e "$d" ] || { echo "missing: $d"; ok=0; }
        [ -e "$d" ] && ! git check-ignore -q "$d" && { echo "not ignored by git (it would travel in every call): $d"; ok=0; }
      done
      size=$(( tree + $(du -cb $carried 2>/dev/null | tail -n 1 | cut -f1) ))
      echo "call carrying $carried: $((size >> 20)) MiB of 64 (as there now)"
      [ "$size" -le $((64 << 20)) ] || { echo "  over the device tool's 64 MiB"; ok=0; }
    done
    # The parts as gpu-join will check them on the machine (a bad part would show only in call D).
    if ls .gpu-cifar10-*/part-* > /dev/null 2>&1; then
      sum=$(cat .gpu-cifar10-*/part-* 2>/dev/null | sha256sum | cut -c1-64)
      [ "$sum" = "$(cat .gpu-cifar10-1/sha256 2>/dev/null)" ] || { echo "the CIFAR-10 parts do not match .gpu-cifar10-1/sha256: pack them again"; ok=0; }
    fi
    for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
      ls .gpudata/mnist/$f* > /dev/null 2>&1 || { echo "missing: .gpudata/mnist/$f(.gz)"; ok=0; }
    done
    [ $ok = 1 ] && echo "preflight: ready" || { echo "preflight: not ready (the packs are built as this script's header says, with no device time)"; exit 1; }
    ;;
  prepare)
    warm
    if mkdir -p /opt/gpu/data && cp -r .gpudata/mnist /opt/gpu/data/; then echo "MNIST in /opt/gpu/data/mnist"; else echo "MNIST NOT COPIED: gpu-train.sh mnist will fail"; fi
    # (into a file: a pipe into head would end node with EPIPE and fail the call)
    timeout -k 5 40 node --import tsx engine/info.ts > /tmp/gpu-info.txt 2>&1
    rc=$?
    sed -n 1,6p /tmp/gpu-info.txt
    exit $rc
    ;;
  part)
    warm
    ;;
  run)
    TOTAL=${TOTAL:?set TOTAL: the seconds this call may use, its timeout_s less 20}
    END=$((SECONDS + TOTAL))
    # Everything this call prints also goes to a file that comes back whole.
    # (at exit, tee is given its end of file and waited for, so the file is whole when the call ends)
    if [ -n "${OUT:-}" ]; then
      exec > >(tee "$OUT/session.txt") 2>&1
      TEE=$!
      trap 'exec >&- 2>&-; wait $TEE' EXIT
    fi
    warm
    # Half for gpu-check (its stages are cut to its BUDGET, the last ones first), then the two
    # training runs share what is left; each run keeps 25 s for its stop, save and archive.
    BUDGET=$((TOTAL / 2)) bash bench/gpu-check.sh
    [ $? -eq 3 ] && exit 3 # no GPU adapter: nothing else would be worth its time
    LIMIT=$(( (END - SECONDS - 50) / 2 )) bash bench/gpu-train.sh cifar10
    LIMIT=$(( END - SECONDS - 25 )) bash bench/gpu-train.sh mnist
    echo "gpu-session: $SECONDS s of TOTAL=$TOTAL; results in ${OUT:-bench/out}"
    ;;
  *) echo "gpu-session.sh: unknown step '$step'" >&2; exit 2 ;;
esac
