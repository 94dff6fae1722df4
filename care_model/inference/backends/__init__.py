"""Prediction backends: one interface, session in, 12 predictions out.

* ``engine`` -- our shared-prefix engine (:mod:`care_model.inference.engine`) in this process: the embedded
  default, best for one session at a time on a laptop and for the app.
* ``vllm`` -- vLLM in a worker process that runs in its own venv (``make setup-vllm``;
  :mod:`care_model.inference.backends.vllm_backend`): automatic prefix caching, continuous batching, LoRA
  adapters next to the base model, tensor and data parallelism; for whole archives on GPUs.
* ``openai`` -- a model served on another machine by any OpenAI-compatible server (``vllm serve``,
  TGI, llama.cpp's server), over HTTP (:mod:`care_model.inference.backends.openai_backend`): scores from
  the log-probabilities at the score position, rationales free with the quote check (grounded on a
  vLLM server started with the project's logits processor).

All build the prompt with :func:`care_model.inference.backends.common.build_prompt` (the project's own
:mod:`care_model.text.prompt`) and turn raw outputs into :class:`~care_model.core.records.Prediction` with
:func:`care_model.inference.backends.common.to_predictions` (parsing, evidence linking, option
probabilities -> expected score), so parsing, grounding checks and calibration are the same.

Importing this package is cheap (no torch, no vllm).
"""
from __future__ import annotations

from care_model.core.errors import ConfigError

BACKENDS = ("engine", "vllm", "openai")


def check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise ConfigError(f"Unknown prediction backend {name!r}.", f"Use one of {', '.join(BACKENDS)}.")
    return name
