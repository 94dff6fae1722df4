"""care_model.stats.agreement: kappa (by hand, against sklearn), pair, rater and expert agreement."""
from __future__ import annotations

import json

import numpy as np
import pytest

from care_model.stats import agreement as ag
from care_model.core.errors import ValidationError
from care_model.core.records import ADJUDICATED, SHARED, Label, Prediction
from care_model.core.wai import load_form


def test_quadratic_kappa_hand_computed():
    # two raters, 4 units, scale 1..3 (k=3): a = 1,2,3,3 ; b = 1,3,3,2
    # O (rows a, cols b): (1,1)=1, (2,3)=1, (3,3)=1, (3,2)=1 ; w = (i-j)^2 -> sum w*O = 0+1+0+1 = 2
    # rows = (1,1,2), cols = (1,1,2); E = outer/4 ; sum w*E = (1*1*1 + 1*2*4 + 1*1*1 + 1*2*1 + 2*1*4 + 2*1*1)/4
    expected_disagreement = (1 * 1 * 1 + 1 * 2 * 4 + 1 * 1 * 1 + 1 * 2 * 1 + 2 * 1 * 4 + 2 * 1 * 1) / 4
    kappa = 1 - 2 / expected_disagreement
    assert ag.weighted_kappa([1, 2, 3, 3], [1, 3, 3, 2], labels=[1, 2, 3]) == pytest.approx(kappa)
    # unweighted 2x2: a = yes,yes,no,no,yes ; b = yes,no,no,no,yes -> po = 4/5, pe = (3*2 + 2*3)/25
    po, pe = 4 / 5, (3 * 2 + 2 * 3) / 25
    assert ag.weighted_kappa([1, 1, 0, 0, 1], [1, 0, 0, 0, 1], labels=[0, 1],
                             weights=None) == pytest.approx((po - pe) / (1 - pe))
    # undefined: both raters use one identical category
    assert ag.weighted_kappa([3, 3, 3], [3, 3, 3]) is None


def test_kappa_from_confusion_matches_sklearn_on_random_data():
    rng = np.random.default_rng(3)
    for _ in range(20):
        a = rng.integers(1, 6, 30)
        b = np.clip(a + rng.integers(-2, 3, 30), 1, 5)
        conf = np.zeros((5, 5))
        np.add.at(conf, (a - 1, b - 1), 1)
        for w in (None, "linear", "quadratic"):
            assert ag.kappa_from_confusion(conf, w) == pytest.approx(ag.weighted_kappa(a, b, weights=w))


def test_score_agreement_by_hand_and_bootstrap():
    a = [1, 2, 3, 4, 5, 3, 2]
    b = [1, 3, 3, 2, 5, 4, 2]
    res = ag.score_agreement(a, b)
    assert res.n == 7
    assert res.exact.value == pytest.approx(4 / 7)  # pairs 1, 3, 5, 7
    assert res.within_one.value == pytest.approx(6 / 7)  # all but (4, 2)
    assert res.mae.value == pytest.approx((0 + 1 + 0 + 2 + 0 + 1 + 0) / 7)
    assert res.qwk.value == pytest.approx(ag.weighted_kappa(a, b))
    boot = ag.score_agreement(a * 5, b * 5, groups=[i // 3 for i in range(35)], n_boot=500, seed=1)
    for m in ag.PairAgreement.METRICS:
        est = getattr(boot, m)
        assert est.low <= est.value <= est.high, m
    with pytest.raises(ValidationError):
        ag.score_agreement([1, 9], [1, 2])


def _labels(annotator, scores, status="submitted"):
    return [Label(session_id=sid, item=item, annotator=annotator, score=s, status=status)
            for (sid, item), s in scores.items()]


def test_rater_and_expert_agreement_per_item_and_dimension():
    form = load_form()
    rng = np.random.default_rng(5)
    e1, e2 = {}, {}
    for s in range(8):
        for item in form.item_ids:
            v = int(rng.integers(1, 6))
            e1[(f"s{s}", item)] = v
            e2[(f"s{s}", item)] = int(np.clip(v + rng.integers(-1, 2), 1, 5))
    res = ag.rater_agreement(e1, e2, form=form, names=("e1", "e2"), n_boot=200)
    assert set(res.items) == set(form.item_ids) and set(res.dimensions) == set(form.dimension_keys)
    assert res.overall.n == 96 and res.items[1].n == 8 and res.dimensions["goal"].n == 32
    keys = [k for k in e1 if k[1] in form.dimension("bond").item_ids]
    assert res.dimensions["bond"].qwk.value == pytest.approx(
        ag.weighted_kappa([e1[k] for k in keys], [e2[k] for k in keys]))
    assert res.overall.within_one.value == 1.0
    assert res.overall.qwk.low <= res.overall.qwk.value <= res.overall.qwk.high

    labels = _labels("e1", e1) + _labels("e2", e2) + _labels(SHARED, e1) + _labels(ADJUDICATED, e2)
    labels += _labels("e3", {("s0", 1): 2}, status="draft")  # drafts are not counted
    preds = [Prediction(id=f"{sid}|{i}", session_id=sid, item=i, model_version="m", score=e1[(sid, i)])
             for (sid, i) in e1]
    rep = ag.expert_agreement(labels, form=form, predictions=preds)
    assert rep.raters == ["e1", "e2"]
    assert [(p.rater_a, p.rater_b) for p in rep.pairs] == [("e1", "e2"), ("e1", "model"), ("e2", "model")]
    assert rep.pairs[1].overall.exact.value == 1.0
    alpha_all = ag.krippendorff_alpha([[e1[k] for k in sorted(e1)], [e2[k] for k in sorted(e1)]],
                                      level="ordinal", value_domain=[1, 2, 3, 4, 5])
    assert rep.alpha["overall"].alpha == pytest.approx(alpha_all.alpha)
    assert set(rep.alpha) == {"overall", *form.dimension_keys}
    json.dumps(rep.to_dict())
    rows = rep.to_rows()
    assert any(r["metric"] == "krippendorff_alpha_ordinal" for r in rows)
