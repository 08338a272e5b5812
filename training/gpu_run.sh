#!/usr/bin/env bash
# One training run on the lent GPU machine: train (resuming when a checkpoint is carried in), then the
# quick evaluation. Usage: training/gpu_run.sh BUDGET_S PLANNED_S SEQ_LEN [RESUME_DIR] [NIAH_LENGTHS]
set -euo pipefail
budget=$1 planned=$2 seq_len=$3 resume=${4:-} lengths=${5:-2048,8192,16384}
source training/gpu_env.sh
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/train.log"
args=(--out "$OUT/ckpt" --budget "$budget" --planned "$planned" --seq-len "$seq_len" --workers 8)
if [[ -n "$resume" ]]; then args+=(--resume "$resume"); fi
python3 training/train.py "${args[@]}" 2>&1 | tee -a "$OUT/train.log"
python3 training/evaluate.py "$OUT/ckpt" --niah "$lengths" --samples 6 2>&1 | tee "$OUT/eval.log"
