"""The calibration decision rule (care_model.stats.calibration_rule): refuses a calibration that only
recentres, accepts one that informs, and says so when there are too few held-out sessions."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from care_model.core.records import Prediction, Session
from care_model.stats.calibration_rule import MIN_CLIENTS, RULE, TOO_FEW, choose_calibration, format_choice
from factories import make_session

ROOT = Path(__file__).resolve().parents[2]
ITEMS = range(1, 13)


def peaked(option: int, mass: float) -> list[float]:
    """Probability ``mass`` on ``option`` (1..5), the rest spread evenly."""
    return [mass if k == option else (1 - mass) / 4 for k in range(1, 6)]


def self_reports(n: int, seed: int = 0) -> list[dict]:
    """Varied self-reports, mostly high as in the samples: a session level from 2 to 5 plus item noise."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        level = 2 + (i % 4)
        out.append({it: int(np.clip(level + rng.integers(-1, 2), 1, 5)) for it in ITEMS})
    return out


def fixture(n_sessions: int, calibrated, raw, *, clients: int | None = None, seed: int = 0):
    """Sessions (one client each unless ``clients``) and predictions with ``raw(truth, rng)`` and
    ``calibrated(truth, rng)`` distributions per item."""
    rng = np.random.default_rng(seed + 1)
    sessions, preds = [], []
    for i, ratings in enumerate(self_reports(n_sessions, seed)):
        client = f"c{i % clients if clients else i}"
        s = make_session(f"s{i:02d}", client=client, ratings=ratings)
        sessions.append(s)
        for it in ITEMS:
            p, q = raw(ratings[it], rng), calibrated(ratings[it], rng)
            preds.append(Prediction(id=f"{s.id}|{it}", session_id=s.id, item=it, model_version="m", score=1,
                                    probs=p, probs_calibrated=q, calibration="content-free", mode="scores_only"))
    return sessions, preds


def stuck_on_one(truth, rng):
    return peaked(1, float(rng.uniform(0.75, 0.9)))


def recentred(truth, rng):
    """Every item moved to the middle option, with noise that says nothing about the client."""
    up = float(rng.uniform(0, 0.4))
    return [0.0, 0.4 - up, 0.6, up, 0.0]


def informed(truth, rng):
    return peaked(truth, 0.8)


def biased_but_informative(truth, rng):
    """Argmax always 1, but the client's own option carries real mass."""
    p = np.array(peaked(1, 0.9)) * 0.7
    p[truth - 1] += 0.3
    return list(p / p.sum())


def test_recentring_only_calibration_is_refused():
    sessions, preds = fixture(20, recentred, stuck_on_one)
    raw_argmax = {int(np.argmax(p.probs)) + 1 for p in preds}
    cal_argmax = {int(np.argmax(p.probs_calibrated)) + 1 for p in preds}
    assert raw_argmax == {1} and cal_argmax == {3}  # the shape of the shipped samples
    out = choose_calibration(sessions, preds, n_boot=200)
    assert out["choice"] == "none", out["reason"]
    checks = out["measurement"]["checks"]
    # it does lower the MSE (recentring always does): refused because a constant does as well
    assert checks["lowers_mse"] is True
    assert checks["beats_mean_baseline"] is False
    assert "mean baseline" in out["reason"]
    assert out["measurement"]["content-free"]["mean_mse"] < out["measurement"]["none"]["mean_mse"]
    assert out["rule"] == RULE
    assert out["measurement"]["unit"] == "clients"


def test_informative_calibration_is_accepted():
    sessions, preds = fixture(20, informed, biased_but_informative)
    assert {int(np.argmax(p.probs)) + 1 for p in preds} == {1}
    out = choose_calibration(sessions, preds, n_boot=200)
    assert out["choice"] == "content-free", out["reason"]
    m = out["measurement"]
    assert all(m["checks"][k] is True for k in ("lowers_mse", "keeps_pearson", "beats_mean_baseline"))
    assert m["content-free"]["mean_mse"] < m["mean_baseline"]["mean_mse"] < m["none"]["mean_mse"]
    assert "content-free" in format_choice(out)


def test_calibration_that_destroys_correlation_is_refused_even_with_lower_mse():
    """Raw tracks the client, calibrated tracks the reverse: MSE may fall, Pearson falls beyond its interval."""
    def reversed_(truth, rng):
        return peaked(6 - truth, 0.5)

    def raw_tracking_low(truth, rng):
        p = np.array(peaked(1, 0.9)) * 0.7
        p[truth - 1] += 0.3
        return list(p / p.sum())

    sessions, preds = fixture(20, reversed_, raw_tracking_low)
    out = choose_calibration(sessions, preds, n_boot=200)
    assert out["choice"] == "none"
    assert out["measurement"]["checks"]["keeps_pearson"] is False
    assert "Pearson lowered beyond its interval" in out["reason"]


@pytest.mark.parametrize("n_sessions,clients", [(9, None), (12, MIN_CLIENTS - 1)])
def test_too_few_sessions_or_clients_choose_none_and_say_so(n_sessions, clients):
    sessions, preds = fixture(n_sessions, informed, biased_but_informative, clients=clients)
    out = choose_calibration(sessions, preds, n_boot=50)
    assert out["choice"] == "none"
    assert out["reason"].startswith(TOO_FEW)


def test_without_calibrated_distributions_the_choice_is_none_with_the_fix():
    sessions, preds = fixture(12, informed, biased_but_informative)
    for p in preds:
        p.probs_calibrated = None
    out = choose_calibration(sessions, preds, n_boot=50)
    assert out["choice"] == "none" and "calibration content-free" in out["reason"]


def test_sessions_without_self_reports_do_not_count():
    sessions, preds = fixture(12, informed, biased_but_informative)
    for s in sessions[:4]:
        s.ratings = {}
    out = choose_calibration(sessions, preds, n_boot=50)
    assert out["choice"] == "none" and out["measurement"]["sessions"] == 8


def test_shipped_samples_are_not_calibrated():
    """The SmolLM2 samples: calibration lowers MSE but not below the mean baseline's -> none."""
    sessions = [Session.from_dict(json.loads(line)) for line in open(ROOT / "data" / "sessions.jsonl")]
    preds = [Prediction.from_dict(json.loads(line)) for line in open(ROOT / "data" / "sample_predictions.jsonl")]
    out = choose_calibration(sessions, preds, n_boot=200)
    m = out["measurement"]
    assert (m["sessions"], m["clients"]) == (23, 21)
    assert out["choice"] == "none"
    assert m["checks"]["lowers_mse"] and not m["checks"]["beats_mean_baseline"]
    assert m["content-free"]["mean_mse"] > m["mean_baseline"]["mean_mse"]
    assert all(m["content-free"][d]["pearson"]["value"] < 0 < m["none"][d]["pearson"]["value"]
               for d in ("goal", "task", "bond"))
