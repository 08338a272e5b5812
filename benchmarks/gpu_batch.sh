#!/usr/bin/env bash
# Issue 15 on one GPU machine, in one device call, from the repository root: the GPU-marked tests of the
# batched paths, then benchmarks/gpu_batch.py on the 30B shape (random bf16 weights): decode tok/s at batch
# 1/8/32 with 32 sessions at 16K context, and a stream's gaps while another session prefills 256K.
# Logs, gpu_batch.json and gpu_batch.md go to $OUT (or ./gpu_out). No install: the package is put on the
# path by symlinks (as gpu_issue14.sh).   STEPS="tests bench" BUDGET_S=360 bash benchmarks/gpu_batch.sh
# CPU rehearsal of the whole script:  SHIM=/tmp/my-shim OUT=/tmp/out GPU_BATCH_ARGS=--smoke bash benchmarks/gpu_batch.sh
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
SHIM=${SHIM:-/tmp/shim}  # another folder for a CPU rehearsal on a shared machine
mkdir -p "$SHIM/superlinear" && for d in core kernels adapters storage plugins frontends; do
  ln -sfn "$PWD/$d" "$SHIM/superlinear/$d"; done
for d in attention search span common runtime; do ln -sfn "$PWD/shortpaths/$d" "$SHIM/superlinear/$d"; done
export PYTHONPATH=$SHIM PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True PYTHONUNBUFFERED=1 \
  TRITON_CACHE_AUTOTUNING=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/gpu.txt" 2>&1
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, \
'cuda', torch.cuda.is_available())" | tee -a "$OUT/gpu.txt"
BUDGET_S=${BUDGET_S:-360}
for step in ${STEPS:-tests bench}; do
  case $step in
    tests) timeout ${TESTS_S:-150} python3 -m pytest -q -m gpu -s -p no:cacheprovider \
             tests/adapters/test_batch_graphs.py tests/adapters/test_prompt_batch_devices.py \
             "tests/adapters/test_graphed_decode.py::test_graph_replays_equal_eager_steps_on_cuda" \
             ${PYTEST_ARGS:-} 2>&1 | tail -40 | tee "$OUT/tests.log" ;;
    bench) timeout $((BUDGET_S + 40)) python3 benchmarks/gpu_batch.py --budget-s "$BUDGET_S" --out "$OUT" \
             ${GPU_BATCH_ARGS:-} 2>&1 | tee "$OUT/run.log" | tail -60 ;;
  esac
done
