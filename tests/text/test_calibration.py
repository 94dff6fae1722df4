"""Contextual calibration (care_model.text.calibration): the math, the cache, and the Predictor wiring
on the tiny random Llama (a real transformers model)."""
from __future__ import annotations

import json
from fractions import Fraction

import pytest

from care_model.text.calibration import (CalibrationCache, calibrate, check_calibration, content_free_session,
    expected_score)
from care_model.core.errors import ConfigError
from care_model.inference.models import ModelSpec
from care_model.inference.predictor import PredictConfig, Predictor
from care_model.inference.modes import content_free_probs
from care_model.core.records import Prediction
from care_model.core.wai import load_form

from factories import make_session

POINTS = [1, 2, 3, 4, 5]


def test_a_prior_favouring_option_1_is_divided_out_and_the_expected_score_rises():
    raw = [0.6, 0.1, 0.1, 0.1, 0.1]           # the model says "1" for this transcript ...
    prior = [0.8, 0.05, 0.05, 0.05, 0.05]     # ... but says "1" even more for an empty one
    cal = calibrate(raw, prior)
    # independently: ratios p/q = 3/4, 2, 2, 2, 2 -> sum 35/4
    ratios = [Fraction(3, 4), Fraction(2), Fraction(2), Fraction(2), Fraction(2)]
    want = [r / sum(ratios) for r in ratios]
    assert cal == pytest.approx([float(w) for w in want], abs=1e-12)
    want_expected = sum(k * w for k, w in zip(POINTS, want))  # = 115/35 = 3.2857...
    assert expected_score(cal, POINTS) == pytest.approx(float(want_expected), abs=1e-12)
    assert expected_score(raw, POINTS) == pytest.approx(2.0)
    assert expected_score(cal, POINTS) > 3.2 and cal[0] < raw[0]


def test_a_uniform_prior_changes_nothing_and_bad_shapes_are_refused():
    raw = [0.1, 0.2, 0.3, 0.25, 0.15]
    assert calibrate(raw, [0.2] * 5) == pytest.approx(raw)
    with pytest.raises(ConfigError, match="content-free"):
        calibrate(raw, [0.5, 0.5])
    with pytest.raises(ConfigError, match="version, none, content-free"):
        check_calibration("platt")
    with pytest.raises(ConfigError):
        PredictConfig(calibration="platt")


def test_no_global_default_is_stamped_on_model_versions_and_predictors_follow_the_version(tiny_model_dir):
    """Calibration is each version's own recorded choice (care_model.training.calibration_choice): no
    measurement of one model is copied into another's version info, and without a choice it is none."""
    from care_model.inference.models import model_version_info
    from care_model.training.config import RetrainConfig
    from care_model.training.evaluation import predictor_config

    info = model_version_info(ModelSpec(base=str(tiny_model_dir)))
    assert not [k for k in info if "calibration" in k]
    assert PredictConfig().calibration == "version"
    spec = ModelSpec(base=str(tiny_model_dir))
    assert Predictor(spec).calibration == "none"                                   # no recorded choice
    assert Predictor(spec, version_calibration="content-free").calibration == "content-free"
    assert Predictor(spec, PredictConfig(calibration="none"), version_calibration="content-free").calibration == "none"
    # a run's evaluation stores both distributions so the candidate's choice can be measured
    assert RetrainConfig().calibration == "content-free"
    assert predictor_config(RetrainConfig(calibration="none")).calibration == "none"
    with pytest.raises(ConfigError, match="none, content-free"):
        RetrainConfig(calibration="version")
    with pytest.raises(ConfigError, match="Use one of none, content-free"):
        Predictor(spec, version_calibration="platt")


def test_the_content_free_session_has_no_content():
    s = content_free_session("wai-sr", "zh").validate()
    assert [t.text for t in s.turns] == ["N/A", "N/A"] and s.language == "zh"


def test_cache_computes_once_and_survives_a_new_process(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {1: [0.5, 0.2, 0.1, 0.1, 0.1]}

    path = tmp_path / "cal.json"
    cache = CalibrationCache(path)
    assert cache.get("k", compute) == cache.get("k", compute) == {1: [0.5, 0.2, 0.1, 0.1, 0.1]}
    assert len(calls) == 1 and cache.computed == 1
    again = CalibrationCache(path)  # as another process would
    assert again.get("k", compute) == {1: [0.5, 0.2, 0.1, 0.1, 0.1]} and len(calls) == 1 and again.computed == 0
    path.write_text("{not json", encoding="utf-8")  # a damaged file is recomputed, not trusted
    assert CalibrationCache(path).get("k", compute) and len(calls) == 2
    assert json.loads(path.read_text(encoding="utf-8"))["k"]["1"][0] == 0.5


@pytest.fixture(scope="module")
def predictors(tiny_model_dir):
    spec = ModelSpec(base=str(tiny_model_dir))
    return (Predictor(spec, PredictConfig(max_new_tokens=4, calibration="none")),
            Predictor(spec, PredictConfig(max_new_tokens=4, calibration="content-free")))


def test_calibrated_predictions_divide_out_the_content_free_distribution(predictors, tmp_path):
    plain, calibrated = predictors
    session = make_session("cal", n_turns=8)
    form = load_form()
    # the content-free distribution, computed here as an ordinary prediction of the N/A session
    prior = {p.item: p.probs for p in plain.predict_session(content_free_session("wai-sr", "en"), scores_only=True)}
    raw = {p.item: p for p in plain.predict_session(session, scores_only=True)}
    preds = calibrated.predict_session(session, scores_only=True)
    changed = 0
    for p in preds:
        assert p.calibration == "content-free" and p.probs == pytest.approx(raw[p.item].probs, abs=1e-5)
        ratios = [a / b for a, b in zip(raw[p.item].probs, prior[p.item])]
        want = [r / sum(ratios) for r in ratios]
        assert p.probs_calibrated == pytest.approx(want, abs=1e-4)
        assert p.expected_score == pytest.approx(sum(k * w for k, w in zip(form.scale.points, want)), abs=1e-3)
        assert p.score_probs is p.probs_calibrated
        changed += abs(p.expected_score - raw[p.item].expected_score) > 1e-3
    assert changed >= 6, "the correction changes the expected scores"
    assert all(p.calibration == "none" and p.probs_calibrated is None for p in raw.values())
    back = Prediction.from_dict(json.loads(json.dumps(preds[0].to_dict())))
    assert back.probs_calibrated == preds[0].probs_calibrated and back.calibration == "content-free"


def test_content_free_distributions_are_cached_per_language(predictors):
    _, calibrated = predictors
    cache = CalibrationCache()
    form = load_form()
    en = content_free_probs(calibrated, form, "en", cache)
    assert content_free_probs(calibrated, form, "en", cache) is en and cache.computed == 1
    zh = content_free_probs(calibrated, form, "zh", cache)
    assert cache.computed == 2 and sorted(zh) == form.item_ids and zh[1] != en[1]
