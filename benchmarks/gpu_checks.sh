#!/usr/bin/env bash
# The GPU measurements the open issues still lack, prepared as two device calls of under 5 minutes
# each on one H100/H200 (a lent machine gives a session 15 minutes in all, its start included,
# and one command at most 10):
#
#   OUT=results DATA=dir-with-cifar-10-python.tar.gz PARTS="throughput bench" bash benchmarks/gpu_checks.sh
#   OUT=results DATA=dir-with-cifar-10-python.tar.gz PARTS=proof bash benchmarks/gpu_checks.sh
#
# 1. benchmarks/throughput.py on CUDA: images/s of every search phase against xautodl's GDAS and
#    RSPS (when importable), with and without `--capture cuda-graphs` (issues 8 and 12).
# 2. The bench preset's search (nb201 C=16 N=5, 50 epochs of 25k CIFAR-10 images), eager and with
#    `--capture cuda-graphs`, each cut at BENCH_S seconds: metrics.jsonl's per-epoch seconds give
#    the full search's time, to set against the 15-minute target (issue 12).
# 3. The CIFAR-10 proof with the found cell chosen by `sample --fine-tune-steps FT_STEPS` (100;
#    issue 8).
# Each step has its own time limit and writes under OUT, so a step that fails or runs out of
# time leaves the others' figures. DEVICE=cpu with SMOKE=1 checks the script itself on a CPU.
set -u
OUT=${OUT:?set OUT to the results folder}
DATA=${DATA:?set DATA to a folder holding cifar-10-python.tar.gz}
DEVICE=${DEVICE:-cuda}
PARTS=${PARTS:-throughput bench proof}
BENCH_S=${BENCH_S:-75}
PROOF_S=${PROOF_S:-280}
FT_STEPS=${FT_STEPS:-100}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
tiny=()
if [ "${SMOKE:-0}" = 1 ]; then  # a few steps of everything, to check the script on a CPU
  tiny=(--train-size 256 --val-size 256 --eval-size 256 --epochs 2)
fi

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
  python3 -c "import torch, pyro; print('torch', torch.__version__, 'pyro', pyro.__version__)"
  git rev-parse --short HEAD 2>/dev/null
} > "$OUT/machine.txt" 2>&1

wants() { [[ " $PARTS " == *" $1 "* ]]; }

size=(--steps 20)
[ "${SMOKE:-0}" = 1 ] && size=(--steps 1 --channels 4 --cells 1 --batch-size 16 --capture none)
if wants throughput; then
  timeout 150 python3 benchmarks/throughput.py --device "$DEVICE" --data-root "$DATA" \
    "${size[@]}" > "$OUT/throughput.txt" 2>&1
  echo "throughput: exit $?" >> "$OUT/steps.txt"
fi

for capture in none cuda-graphs; do
  wants bench || break
  [ "$DEVICE" = cpu ] && [ "$capture" = cuda-graphs ] && continue
  run=/tmp/gpu-checks/bench-$capture
  rm -rf "$run"
  timeout "$BENCH_S" python3 -m bayesnas search --dataset cifar10 --preset bench \
    --data-root "$DATA" --device "$DEVICE" --capture "$capture" --out "$run" --no-progress \
    "${tiny[@]}" > "$OUT/bench-$capture.txt" 2>&1
  echo "bench search, capture $capture: exit $? (124: cut at ${BENCH_S} s, as planned)" \
    >> "$OUT/steps.txt"
  cp "$run/metrics.jsonl" "$OUT/bench-$capture-metrics.jsonl" 2>/dev/null
done

proof=(--out /tmp/gpu-checks/proof --data-root "$DATA" --device "$DEVICE" --jobs 8
  --sample-arg=--fine-tune-steps "--sample-arg=$FT_STEPS")
if [ "${SMOKE:-0}" = 1 ]; then
  proof+=(--seeds 0 --uniform 1 --kendall 2 --jobs 1)
  for flag in "${tiny[@]}"; do proof+=("--search-arg=$flag"); done
  proof+=(--train-arg=--epochs --train-arg=1 --train-arg=--train-size --train-arg=512)
fi
if wants proof; then
  timeout "$PROOF_S" python3 benchmarks/cifar10_proof.py "${proof[@]}" > "$OUT/proof.txt" 2>&1
  echo "proof with fine-tune scoring: exit $?" >> "$OUT/steps.txt"
  cp /tmp/gpu-checks/proof/results.json "$OUT/proof-results.json" 2>/dev/null
fi
cat "$OUT/steps.txt"
