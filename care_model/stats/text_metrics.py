"""Rationale similarity: a model's rationales against the experts' (pure: numpy, sacrebleu,
rouge_score; embedding similarity only through a ``similarity`` function the caller passes, e.g.
:func:`care_model.inference.embeddings.cosine_similarities`).

Corpus BLEU (sacrebleu; ``13a`` tokenizer for English, ``zh`` for Chinese), mean ROUGE-1 and
ROUGE-L F1 (rouge_score; Chinese through :class:`CharTokenizer`, since rouge_score's default
tokenizer drops non-ASCII text) and mean cosine similarity of all-MiniLM-L6-v2 embeddings. An
empty model rationale scores 0 on every measure. Intervals: percentile bootstrap over sessions;
corpus BLEU is bootstrapped from per-session n-gram statistics.

Public API::

    TextMetrics(n_pairs, languages, bleu, rouge1, rougeL, embedding)  (to_dict(), from_dict())
    CharTokenizer().tokenize(text) -> list[str]        # ROUGE tokens for Chinese
    text_metrics(hypotheses, references, *, languages="en", groups=None, similarity=None,
                 n_boot=0, seed=0, confidence=0.95) -> TextMetrics
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from care_model.core.errors import ModelError, ValidationError
from care_model.stats.estimates import Estimate, boot_method, percentile_interval, ratio_estimate, resample_counts

TEXT_METRICS = ("bleu", "rouge1", "rougeL", "embedding")


@dataclass
class TextMetrics:
    n_pairs: int
    languages: dict[str, int]
    bleu: Estimate  # corpus BLEU, 0-100
    rouge1: Estimate  # mean F1, 0-1
    rougeL: Estimate  # mean F1, 0-1
    embedding: Estimate  # mean cosine, -1..1

    def to_dict(self) -> dict:
        return {"n_pairs": self.n_pairs, "languages": dict(self.languages),
                **{m: getattr(self, m).to_dict() for m in TEXT_METRICS}}

    @classmethod
    def from_dict(cls, d: Mapping) -> "TextMetrics":
        return cls(d["n_pairs"], dict(d.get("languages", {})), *(Estimate.from_dict(d[m]) for m in TEXT_METRICS))


class CharTokenizer:
    """ROUGE tokenizer for Chinese: each CJK character is a token, ASCII letter/digit runs are
    words (lower-cased), punctuation and spaces are dropped."""

    _pattern = re.compile(r"[A-Za-z0-9]+|\S")

    def tokenize(self, text: str) -> list[str]:
        return [t for t in self._pattern.findall(text.lower()) if len(t) > 1 or t.isalnum()]


_SCORERS: dict[str, Any] = {}


def _bleu(language: str):
    key = f"bleu-{language}"
    if key not in _SCORERS:
        from sacrebleu.metrics import BLEU
        _SCORERS[key] = BLEU(tokenize="zh" if language == "zh" else "13a")
    return _SCORERS[key]


def _rouge(language: str):
    key = f"rouge-{language}"
    if key not in _SCORERS:
        from rouge_score import rouge_scorer
        _SCORERS[key] = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=False,
                                                  tokenizer=CharTokenizer() if language == "zh" else None)
    return _SCORERS[key]


def _bleu_score(stats_row: np.ndarray) -> float:
    from sacrebleu.metrics import BLEU
    correct, total = [int(v) for v in stats_row[:4]], [int(v) for v in stats_row[4:8]]
    if stats_row[9] == 0:
        return float("nan")
    return float(BLEU.compute_bleu(correct, total, int(stats_row[8]), int(stats_row[9]), smooth_method="exp").score)


def text_metrics(hypotheses: Sequence[str], references: Sequence[str], *, languages: str | Sequence[str] = "en",
                 groups: Sequence | None = None,
                 similarity: Callable[[Sequence[str], Sequence[str]], Sequence[float]] | None = None,
                 n_boot: int = 0, seed: int = 0, confidence: float = 0.95) -> TextMetrics:
    """BLEU, ROUGE-1/L F1 and embedding cosine of model rationales against expert rationales.

    ``languages``: one code for all pairs or one per pair ("zh" switches BLEU to sacrebleu's zh
    tokenizer and ROUGE to :class:`CharTokenizer`). ``groups`` (session ids) define the bootstrap
    clusters. ``similarity(hyps, refs) -> cosines`` scores the embedding metric (callers pass
    :func:`care_model.inference.embeddings.cosine_similarities`); without it the embedding metric
    is None ("not requested"), and if it raises ModelError (model not installed) None with the reason.
    """
    hyps = ["" if h is None else str(h) for h in hypotheses]
    refs = ["" if r is None else str(r) for r in references]
    if len(hyps) != len(refs):
        raise ValidationError(f"{len(hyps)} hypotheses but {len(refs)} references.", "Pass aligned pairs.")
    n = len(hyps)
    langs = [languages] * n if isinstance(languages, str) else list(languages)
    if len(langs) != n:
        raise ValidationError("languages must be one code or one per pair.", "Pass e.g. 'zh' or a list.")
    if n == 0:
        miss = Estimate.missing("no rationale pairs (no expert rationales to compare with)")
        return TextMetrics(0, {}, miss, miss, miss, miss)
    groups = list(range(n)) if groups is None else list(groups)
    gid = {g: i for i, g in enumerate(dict.fromkeys(groups))}
    g_idx = np.array([gid[g] for g in groups])
    n_groups = len(gid)

    bleu_stats = np.zeros((n, 10))  # correct[4], total[4], sys_len, ref_len
    r1 = np.zeros(n)
    rl = np.zeros(n)
    for i, (h, r, lang) in enumerate(zip(hyps, refs, langs)):
        s = _bleu(lang).corpus_score([h], [[r]])
        bleu_stats[i] = [*s.counts, *s.totals, s.sys_len, s.ref_len]
        if h.strip():
            sc = _rouge(lang).score(r, h)  # rouge_score: score(target, prediction)
            r1[i], rl[i] = sc["rouge1"].fmeasure, sc["rougeL"].fmeasure

    emb: np.ndarray | None = None
    emb_reason = ""
    if similarity is None:
        emb_reason = "embedding similarity not requested"
    else:
        nonempty = [i for i in range(n) if hyps[i].strip()]
        try:
            emb = np.zeros(n)
            if nonempty:
                emb[nonempty] = np.asarray(similarity([hyps[i] for i in nonempty], [refs[i] for i in nonempty]), float)
        except ModelError as exc:
            emb, emb_reason = None, str(exc)

    counts = resample_counts(n_groups, n_boot, seed) if n_boot > 0 and n_groups >= 2 else None
    per_group_pairs = np.bincount(g_idx, minlength=n_groups).astype(float)

    def mean_metric(values):
        return ratio_estimate(np.bincount(g_idx, weights=values, minlength=n_groups), per_group_pairs, counts,
                               confidence, n, n_boot)

    group_bleu = np.zeros((n_groups, 10))
    np.add.at(group_bleu, g_idx, bleu_stats)
    bleu_value = _bleu_score(group_bleu.sum(axis=0))
    if counts is None:
        bleu = Estimate(bleu_value, n=n)
    else:
        samples = [_bleu_score(row) for row in counts @ group_bleu]
        low, high, n_valid = percentile_interval(samples, confidence)
        bleu = (Estimate(bleu_value, low, high, n, boot_method(n_boot, confidence)) if low is not None
                else Estimate(bleu_value, n=n, reason=f"only {n_valid} of {n_boot} resamples defined: no interval"))
    lang_counts: dict[str, int] = {}
    for lang in langs:
        lang_counts[lang] = lang_counts.get(lang, 0) + 1
    return TextMetrics(n, lang_counts, bleu, mean_metric(r1), mean_metric(rl),
                       mean_metric(emb) if emb is not None else Estimate.missing(emb_reason, n))
