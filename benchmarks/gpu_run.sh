#!/usr/bin/env bash
# All GPU benchmarks in one short run on a lent GPU machine (device tool) or any CUDA box:
#   inference (8B shapes, 6,000-token session): 12-item times, decode step dynamic vs CUDA graph with its
#     fraction of the memory bandwidth, grounded vs free, a cross-session batch vs one session at a time;
#   LoRA training MFU at 4,096 and 8,192 tokens, with gradient checkpointing and without (no recomputation).
# Uses the machine's own python3 (torch, transformers, peft preinstalled); writes JSON and logs to ${OUT:-gpu-results}.
# About 6-8 minutes on one H100/H200 (INF_ARGS: gpu_inference flags, default --decoding grounded).
#   bash benchmarks/gpu_run.sh            # on the GPU
#   bash benchmarks/gpu_run.sh --small    # CPU smoke of the same script (small shapes, float32; PY=.venv/bin/python)
set -uo pipefail
SMALL=""; INF_DEFAULT="--decoding grounded"; TRAIN_SMALL=""
if [ "${1:-}" = "--small" ]; then  # short everything: it checks the script, not the speed
  SMALL="--small"; INF_DEFAULT="--decoding grounded --rounds 1 --prompt-tokens 300 --max-new-tokens 12 --cross-sessions 2"
  TRAIN_SMALL="--warmup 1"
fi
OUT=${OUT:-gpu-results}; mkdir -p "$OUT"
PY=${PY:-python3}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi (CPU)"
  $PY -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')"
} > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"
timeout ${INF_TIMEOUT:-300} $PY -m benchmarks.gpu_inference --json $SMALL ${INF_ARGS:-$INF_DEFAULT} > "$OUT/gpu_inference.json" 2> "$OUT/gpu_inference.log"
echo "gpu_inference rc=$?"; cat "$OUT/gpu_inference.json"; tail -5 "$OUT/gpu_inference.log"
LENS="--seq-lens 4096 8192"; [ -n "$SMALL" ] && LENS="--seq-lens 1536"
timeout ${TRAIN_TIMEOUT:-200} $PY -m benchmarks.gpu_train $SMALL $TRAIN_SMALL $LENS --steps ${TRAIN_STEPS:-5} --json > "$OUT/gpu_train.json" 2> "$OUT/gpu_train.log"
echo "gpu_train rc=$?"; cat "$OUT/gpu_train.json"; tail -5 "$OUT/gpu_train.log"
timeout ${TRAIN_TIMEOUT:-200} $PY -m benchmarks.gpu_train $SMALL $TRAIN_SMALL $LENS --steps ${TRAIN_STEPS:-5} --no-checkpointing --json > "$OUT/gpu_train_nockpt.json" 2> "$OUT/gpu_train_nockpt.log"
echo "gpu_train --no-checkpointing rc=$?"; cat "$OUT/gpu_train_nockpt.json"; tail -5 "$OUT/gpu_train_nockpt.log"
