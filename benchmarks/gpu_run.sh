#!/usr/bin/env bash
# All GPU benchmarks in one short run on a lent GPU machine (device tool) or any CUDA box.
# Uses the machine's own python3 (torch, transformers, peft preinstalled); writes JSON and logs
# to ${OUT:-gpu-results}. About 4-6 minutes on one H100/H200 (INF_ARGS: gpu_inference flags, default --decoding grounded).
#   bash benchmarks/gpu_run.sh
set -uo pipefail
OUT=${OUT:-gpu-results}; mkdir -p "$OUT"
PY=${PY:-python3}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  $PY -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, torch.cuda.get_device_name())"
} > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"
timeout ${INF_TIMEOUT:-240} $PY -m benchmarks.gpu_inference --json ${INF_ARGS:---decoding grounded} > "$OUT/gpu_inference.json" 2> "$OUT/gpu_inference.log"
echo "gpu_inference rc=$?"; cat "$OUT/gpu_inference.json"; tail -5 "$OUT/gpu_inference.log"
timeout ${TRAIN_TIMEOUT:-200} $PY -m benchmarks.gpu_train --seq-lens 4096 8192 --steps 5 --json > "$OUT/gpu_train.json" 2> "$OUT/gpu_train.log"
echo "gpu_train rc=$?"; cat "$OUT/gpu_train.json"; tail -5 "$OUT/gpu_train.log"
