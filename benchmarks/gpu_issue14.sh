#!/usr/bin/env bash
# Issue 14 on one GPU machine, from the repository root: GPU tests, then the 30B shape at 64K and 1M.
# Logs and JSON records go to $OUT (or ./gpu_out). No install: the package is put on the path by symlinks.
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
mkdir -p /tmp/shim/superlinear && for d in core kernels adapters storage plugins frontends; do
  ln -sfn "$PWD/$d" /tmp/shim/superlinear/$d; done
export PYTHONPATH=/tmp/shim PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
STEPS=${STEPS:-tests 64k 1m}
for step in $STEPS; do
  case $step in
    tests) timeout 240 python3 -m pytest -q -m gpu -s -p no:cacheprovider tests/adapters/test_moe_grouped.py \
             tests/adapters/test_graphed_decode.py tests/adapters/test_mamba_decode_kernels.py ${PYTEST_ARGS:-} 2>&1 | tail -40 | tee "$OUT/tests.log" ;;
    64k) timeout 200 python3 benchmarks/full_size_shape.py --context 65536 --decode 64 --anatomy --budget-s 180 \
           --decode-reserve-s 40 --out "$OUT/ctx64k.json" 2>&1 | tail -45 | tee "$OUT/ctx64k.log" ;;
    1m) timeout 300 python3 benchmarks/full_size_shape.py --context 1048576 --decode 64 --anatomy --budget-s 280 \
          --decode-reserve-s 50 --out "$OUT/ctx1m.json" 2>&1 | tail -45 | tee "$OUT/ctx1m.log" ;;
  esac
done
