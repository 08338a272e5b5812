#!/usr/bin/env bash
# Issue 19 on a machine with 2-4 GPUs, from the repository root: the sharded-model tests, then the target
# table (RESULTS.md) with benchmarks/gpu_parallel.py. Logs and JSON records go to $OUT (or ./gpu_out).
# No install: the package is put on the path by symlinks (as in gpu_issue14.sh).
#   STEPS="tests 1m 10m sessions" bash benchmarks/gpu_parallel.sh       # 10m needs 2 GPUs, sessions 4
#   bash benchmarks/gpu_parallel.sh --smoke                              # CPU, gloo, tiny sizes
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
mkdir -p /tmp/shim/superlinear && for d in core kernels adapters storage plugins frontends; do
  ln -sfn "$PWD/$d" /tmp/shim/superlinear/$d; done
export PYTHONPATH=/tmp/shim PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True PYTHONUNBUFFERED=1
if [ "${1:-}" = "--smoke" ]; then
  python3 benchmarks/gpu_parallel.py --smoke --out "$OUT/smoke.json" 2>&1 | tee "$OUT/smoke.log"
  python3 benchmarks/gpu_parallel.py --smoke --fill random --out "$OUT/smoke_random.json" 2>&1 | tee -a "$OUT/smoke.log"
  exit 0
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
GPUS=$(nvidia-smi -L | wc -l)
STEPS=${STEPS:-tests nccl1 load 1m 10m sessions}
for step in $STEPS; do
  case $step in
    # The gloo tests, then the same checks would need NCCL ranks: the bench's own runs compare worlds.
    tests) timeout 300 python3 -m pytest -q -p no:cacheprovider tests/distributed 2>&1 | tail -20 | tee "$OUT/tests.log"
           # The CUDA checks of the sharded Triton paths (one rank) and the kernels they call.
           timeout 600 python3 -m pytest -q -p no:cacheprovider -m gpu tests/distributed tests/kernels/test_triton_attention.py \
             2>&1 | tail -20 | tee -a "$OUT/tests.log" ;;
    # One GPU: the plain model against the sharded path with one NCCL rank (the path's own overhead).
    nccl1) timeout 900 python3 benchmarks/gpu_parallel.py --worlds 1 --context 65536 --decode 32 \
             --out "$OUT/ctx64k_plain.json" 2>&1 | tee "$OUT/nccl1.log"
           timeout 900 python3 benchmarks/gpu_parallel.py --worlds 1 --shard-single --context 65536 --decode 32 \
             --out "$OUT/ctx64k_nccl1.json" 2>&1 | tee -a "$OUT/nccl1.log" ;;
    # 1M context, batch-1 decode, 2 GPUs vs 1 (target >= 1.3x).
    1m) timeout 1200 python3 benchmarks/gpu_parallel.py --worlds 1,2 --context 1048576 --decode 32 \
          --out "$OUT/ctx1m.json" 2>&1 | tee "$OUT/ctx1m.log" ;;
    # 10M context on 2 GPUs: decode rate (target >= 100 tok/s), then a real prefill of the same length.
    10m) timeout 900 python3 benchmarks/gpu_parallel.py --worlds 2 --context 10485760 --decode 32 \
           --out "$OUT/ctx10m_decode.json" 2>&1 | tee "$OUT/ctx10m.log"
         timeout 3600 python3 benchmarks/gpu_parallel.py --worlds 2 --context 10485760 --decode 8 --fill prefill \
           --chunk 32768 --timeout-s 3500 --out "$OUT/ctx10m_prefill.json" 2>&1 | tee -a "$OUT/ctx10m.log" ;;
    # Peak host and GPU memory per rank: each rank reading only its share vs the whole checkpoint.
    load) timeout 900 python3 benchmarks/gpu_parallel_load.py --world 2 --device cuda --dtype bf16 \
            --out "$OUT/load.json" 2>&1 | tee "$OUT/load.log" ;;
    # 32 sessions at 64K, aggregate decode, 4 GPUs vs 1 (target >= 3x).
    sessions) [ "$GPUS" -ge 4 ] || { echo "sessions: needs 4 GPUs, found $GPUS" | tee "$OUT/sessions.log"; continue; }
      timeout 1800 python3 benchmarks/gpu_parallel.py --worlds 1,4 --context 65536 --sessions 32 --decode 16 \
        --timeout-s 850 --out "$OUT/sessions64k.json" 2>&1 | tee "$OUT/sessions.log" ;;
  esac
done
