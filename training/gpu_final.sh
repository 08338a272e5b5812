#!/usr/bin/env bash
# The last training run on the lent GPU, then the GPU needle-in-a-haystack table of the exported model.
# Usage: training/gpu_final.sh NIAH_SECONDS TRAIN_ARGS...   (train.py's arguments, less --out and --workers)
set -uo pipefail
niah_seconds=$1
shift
source training/gpu_env.sh
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/train.log"
python3 training/train.py --out "$OUT/ckpt" --workers 8 "$@" 2>&1 | tee -a "$OUT/train.log"
python3 training/export.py "$OUT/ckpt" --out /tmp/model && cp adapters/default_model/tokenizer* \
    adapters/default_model/chat_template.jinja /tmp/model/
timeout $(( niah_seconds + 60 )) python3 benchmarks/niah.py --model /tmp/model --device cuda --dtype bfloat16 \
    --lengths 65536 262144 1048576 --depths 3 --trials 1 --chunk 65536 --deadline "$niah_seconds" 2>&1 \
    | tee "$OUT/niah_gpu.log"
