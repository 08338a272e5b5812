#!/usr/bin/env bash
# One training run on the lent GPU machine, then the quick evaluation of its checkpoint.
# Usage: training/gpu_run.sh NIAH_LENGTHS TRAIN_ARGS...   (train.py's arguments, less --out and --workers)
# e.g.   training/gpu_run.sh 4096,16384 --resume ckpt --budget 450 --planned 1400 --seq-len 32768
set -euo pipefail
lengths=$1
shift
source training/gpu_env.sh
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/train.log"
python3 training/train.py --out "$OUT/ckpt" --workers 8 "$@" 2>&1 | tee -a "$OUT/train.log"
python3 training/evaluate.py "$OUT/ckpt" --niah "$lengths" --samples 6 2>&1 | tee "$OUT/eval.log"
