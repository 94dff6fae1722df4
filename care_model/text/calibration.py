"""Contextual calibration of the option probabilities (Zhao et al. 2021, "Calibrate Before Use").

A small model's option probabilities carry a prior toward some options whatever the transcript
says. Contextual calibration estimates that prior per item from a *content-free* input -- the
same prompt with every turn's text replaced by ``N/A`` (:func:`content_free_session`: one
counselor and one client turn) -- and divides it out::

    p_cal(k) = (p(k) / p_cf(k)) / sum_j (p(j) / p_cf(j))

This is the paper's diagonal correction ``W = diag(p_cf)^-1, b = 0`` applied to probabilities and
renormalised (the paper's softmax over ``W p`` is replaced by renormalisation, so a uniform
``p_cf`` leaves ``p`` unchanged). An option the content-free prompt favours is pushed down, one it
neglects is pushed up.

The content-free distributions depend on the model version, the form, the language, the
perspective and the prompt template, and on nothing in a session: :class:`CalibrationCache`
keeps them per that key, in memory and (optionally) in a JSON file, so they are computed once
(one scores-only pass over a two-turn transcript) per model version.

Predictions keep both: ``probs`` (raw, what the model decodes) and ``probs_calibrated``;
``expected_score`` and the review queue's uncertainty use the calibrated one when calibration
is on; with grounded decoding the score line is the calibrated argmax (care_model.inference.predictor's
``calibrated_score_rule``), with free decoding the score is what the model wrote.

Whether a model version is calibrated is that version's own choice, made when it is evaluated, on
its held-out sessions, by the rule in :mod:`care_model.stats.calibration_rule` (fixed before any
measurement) and recorded in its version document (care_model.training.calibration_choice).
There is no global default: a Predictor set to :data:`VERSION` ("version", the default) applies
the choice its caller read from the version, and ``none`` when the version has none recorded;
``none`` and ``content-free`` force a setting (``care predict --calibration``).

Pure module: no torch, no tinydb.
"""
from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path
from typing import Sequence

from care_model.core.errors import ConfigError
from care_model.core.records import Session, Turn

CALIBRATIONS = ("none", "content-free")
VERSION = "version"  # a Predictor setting: the model version's recorded choice (none when it has none)
SETTINGS = (VERSION,) + CALIBRATIONS
CONTENT_FREE_TEXT = "N/A"
_FLOOR = 1e-12


def check_calibration(name: str, allowed: Sequence[str] = SETTINGS) -> str:
    if name not in allowed:
        raise ConfigError(f"Unknown calibration {name!r}.", f"Use one of {', '.join(allowed)}.")
    return name


def content_free_session(form_id: str = "wai-sr", language: str = "en") -> Session:
    """A two-turn session whose turns say only ``N/A`` (the content-free input)."""
    return Session(id=f"content-free-{language}", language=language, form=form_id, source="content-free",
                   turns=[Turn(0, "counselor", CONTENT_FREE_TEXT), Turn(1, "client", CONTENT_FREE_TEXT)])


def calibrate(probs: Sequence[float], content_free: Sequence[float]) -> list[float]:
    """``probs`` with the content-free prior ``content_free`` divided out, renormalised."""
    if len(probs) != len(content_free):
        raise ConfigError(f"{len(probs)} option probabilities but {len(content_free)} content-free ones.",
                          "Compute the content-free distribution with the same options (recompute the cache).")
    ratios = [max(float(p), 0.0) / max(float(q), _FLOOR) for p, q in zip(probs, content_free)]
    total = sum(ratios)
    if not math.isfinite(total) or total <= 0:
        return [float(p) for p in probs]
    return [r / total for r in ratios]


class CalibratedArgmax:
    """A grounded row's score rule: the option with the highest *calibrated* probability.

    ``rule(raw_probs) -> option point``. Plain data (``spec()`` / ``from_spec``), so a backend in
    another process (the vLLM engine core) applies the same rule.
    """

    def __init__(self, content_free: Sequence[float], points: Sequence[int]):
        self.content_free = [float(x) for x in content_free]
        self.points = [int(x) for x in points]

    def __call__(self, probs: Sequence[float]) -> int:
        cal = calibrate(probs, self.content_free)
        return self.points[max(range(len(cal)), key=cal.__getitem__)]

    def spec(self) -> dict:
        return {"kind": "calibrated_argmax", "content_free": self.content_free, "points": self.points}

    @classmethod
    def from_spec(cls, spec: dict) -> "CalibratedArgmax":
        if spec.get("kind") != "calibrated_argmax":
            raise ConfigError(f"Unknown score rule {spec.get('kind')!r}.", "Send a calibrated_argmax rule or none.")
        return cls(spec["content_free"], spec["points"])


def expected_score(probs: Sequence[float], points: Sequence[int]) -> float:
    total = sum(probs)
    return sum(k * p for k, p in zip(points, probs)) / total if total > 0 else float("nan")


CACHE_VERSION = "cf-v1"  # bump when the way option probabilities are computed changes


def cache_key(model_version: str, form_id: str, language: str, perspective: str, prompt_digest: str) -> str:
    """The cache key: model version, form, language, perspective and a digest of the exact
    content-free prompt (so a changed template or chat template is never served a stale entry)."""
    return "|".join([CACHE_VERSION, model_version, form_id, language, perspective, prompt_digest])


class CalibrationCache:
    """Content-free distributions ``{item: [p1..p5]}`` per :func:`cache_key`; thread-safe. With
    ``path`` the entries are also kept in a JSON file (written atomically), so another process or a
    restart does not recompute them."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._mem: dict[str, dict[int, list[float]]] = {}
        self.computed = 0  # how many entries this cache computed (tests: "computed once")

    def _load_file(self) -> dict:
        if self.path is None or not self.path.exists():
            return {}
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # a damaged cache file is recomputed, never trusted

    def get(self, key: str, compute) -> dict[int, list[float]]:
        """The entry for ``key``; ``compute()`` -> ``{item: probs}`` runs only when it is missing."""
        with self._lock:
            if key in self._mem:
                return self._mem[key]
            stored = self._load_file().get(key)
            if stored:
                self._mem[key] = {int(i): [float(x) for x in p] for i, p in stored.items()}
                return self._mem[key]
            value = {int(i): [float(x) for x in p] for i, p in compute().items()}
            self._mem[key] = value
            self.computed += 1
            if self.path is not None:
                data = self._load_file()
                data[key] = {str(i): p for i, p in value.items()}
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
                tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
                tmp.replace(self.path)
            return value
