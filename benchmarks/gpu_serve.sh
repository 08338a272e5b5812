#!/usr/bin/env bash
# Issue 14's last point on one GPU machine, from the repository root: the 30B shape (random weights) served by
# the real spl-server through the graphed path, a streamed openai SDK request against the in-process decode.
# Logs and gpu_serve.json go to $OUT (or ./gpu_out). No install: the package is put on the path by symlinks;
# packages the machine lacks (falcon, gunicorn, cattrs, openai and its needs) come as wheels from $WHL.
#   WHL=.whl CONTEXTS=65536,1048576 DECODE=256 BUDGET_S=330 bash benchmarks/gpu_serve.sh
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
WHL=${WHL:-.whl}
if ls "$WHL"/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$WHL"/*.whl >"$OUT/pip.log" 2>&1 || { tail -20 "$OUT/pip.log"; exit 1; }
  export PYTHONPATH=/tmp/site
fi
mkdir -p /tmp/shim/superlinear && for d in core kernels adapters storage plugins frontends; do
  ln -sfn "$PWD/$d" /tmp/shim/superlinear/$d; done
for d in attention search span common runtime; do ln -sfn "$PWD/shortpaths/$d" /tmp/shim/superlinear/$d; done
# Autotuning results cached on disk: the server process reuses the bench's choices (and skips re-tuning).
export PYTHONPATH=/tmp/shim${PYTHONPATH:+:$PYTHONPATH} PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True PYTHONUNBUFFERED=1 \
  TRITON_CACHE_AUTOTUNING=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/gpu.txt" 2>&1
python3 -c "import torch, triton, falcon, gunicorn, cattrs, openai; print('torch', torch.__version__, 'triton', \
triton.__version__, 'openai', openai.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/gpu.txt"
BUDGET_S=${BUDGET_S:-330}
timeout $((BUDGET_S + 30)) python3 benchmarks/gpu_serve.py --device "${DEVICE:-cuda}" --preset "${PRESET:-nano30b}" \
  --contexts "${CONTEXTS:-65536,1048576}" --decode "${DECODE:-256}" --budget-s "$BUDGET_S" --out "$OUT" \
  ${GPU_SERVE_ARGS:-} 2>&1 | tee "$OUT/run.log"
