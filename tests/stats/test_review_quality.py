"""care_model.stats.review_quality: per model version, how experts treated its suggestions."""
from __future__ import annotations

import pytest

from care_model.core.records import ADJUDICATED, Label, Prediction
from care_model.stats.review_quality import review_quality, review_quality_markdown


def pred(version, item):
    return Prediction(id=f"s|{version}|{item}", session_id="s", item=item, model_version=version, score=3)


def lab(version, item, source, dist, annotator="@shared", status="draft"):
    return Label(session_id="s", item=item, annotator=annotator, score=3, prediction_id=f"s|{version}|{item}",
                 rationale_source=source, rationale_edit_distance=dist, status=status)


def test_rates_and_mean_edit_per_version_and_dimension():
    preds = [pred(v, i) for v in ("m1", "m2") for i in range(1, 13)]
    labels = [lab("m1", 1, "accepted", 0), lab("m1", 2, "bulk_accepted", 0), lab("m1", 3, "edited", 10),
              lab("m1", 4, "expert", 50), lab("m1", 5, "unknown", None), lab("m1", 6, "expert", None),
              lab("m1", 7, "accepted", 0, annotator=ADJUDICATED),               # not a review of a suggestion
              lab("m1", 8, "accepted", 0, status="discarded"),
              lab("m2", 1, "edited", 4).to_dict()]                                # dicts work too
    got = review_quality(labels, preds)
    m1 = got["m1"]
    assert (m1["n"], m1["unknown"]) == (5, 1)
    assert m1["acceptance_rate"] == pytest.approx(2 / 5) and m1["bulk_rate"] == pytest.approx(1 / 5)
    assert m1["edit_rate"] == pytest.approx(1 / 5) and m1["rewrite_rate"] == pytest.approx(2 / 5)
    assert m1["mean_edit"] == pytest.approx((0 + 0 + 10 + 50) / 4)             # no model text: left out
    dims = {k: v["n"] for k, v in m1["dimensions"].items()}
    assert sum(dims.values()) == 5 and set(dims) <= {"goal", "task", "bond"}
    assert got["m2"]["n"] == 1 and got["m2"]["edit_rate"] == 1.0 and got["m2"]["mean_edit"] == 4
    table = review_quality_markdown(got)
    assert "| m1 | all | 5 (+1 unknown) | 40% (20%) | 20% | 40% | 15.0 |" in table
    assert review_quality([], preds) == {} and "No expert" in review_quality_markdown({})
