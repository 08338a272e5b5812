#!/usr/bin/env bash
# The last training run on the lent GPU, then the GPU needle-in-a-haystack table of the exported model.
# Usage: training/gpu_final.sh BUDGET_S PLANNED_S RESUME_DIR NIAH_SECONDS
set -uo pipefail
source training/gpu_env.sh
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/train.log"
python3 training/train.py --out "$OUT/ckpt" --resume "$3" --budget "$1" --planned "$2" --seq-len 16384 \
    --workers 8 2>&1 | tee -a "$OUT/train.log"
python3 training/export.py "$OUT/ckpt" --out /tmp/model && cp adapters/default_model/tokenizer* \
    adapters/default_model/chat_template.jinja /tmp/model/
timeout $(( $4 + 60 )) python3 benchmarks/niah.py --model /tmp/model --device cuda --dtype bfloat16 \
    --lengths 65536 262144 1048576 --depths 3 --trials 1 --chunk 65536 --deadline "$4" 2>&1 | tee "$OUT/niah_gpu.log"
