"""Defect 6 of issue 11: a rubric mean's interval never leaves the 1-5 scale; below the minimum
number of ratings there is none, and the results say which (data and page)."""
from __future__ import annotations

import pytest

from care_model.stats import human_eval as he
from studio.evaluation_render import _ci


def rows(scores, system="care", criterion="faithfulness"):
    return [{"system": system, "criterion": criterion, "score": s} for s in scores]


def test_two_ratings_give_no_interval_but_say_too_few():
    row = he.rubric_summary(rows([1, 5])).get("care", "faithfulness")  # the t interval was [-8.71, 16.71]
    assert row.mean.value == 3.0 and row.mean.low is None and row.mean.high is None
    assert "too few ratings" in row.mean.reason and "n=2" in row.mean.reason
    assert "too few ratings" in _ci(row.mean.to_dict())


def test_intervals_are_bounded_to_the_scale_and_say_so():
    row = he.rubric_summary(rows([1, 5, 5])).get("care", "faithfulness")
    assert 1.0 <= row.mean.low < row.mean.value < row.mean.high <= 5.0
    assert row.mean.high == 5.0 and row.mean.low == 1.0 and "bounded to 1-5" in row.mean.method
    assert "bounded to the scale" in _ci(row.mean.to_dict())
    wide = he.rubric_summary(rows([3, 3, 4, 4, 3, 4] * 5)).get("care", "faithfulness")
    assert "bounded" not in wide.mean.method and 3 < wide.mean.low < wide.mean.high < 4


@pytest.mark.parametrize("scores", [[1, 1, 5], [5, 5, 1, 5], [1, 2, 5, 5], [4, 5, 5]])
def test_no_interval_leaves_the_scale(scores):
    mean = he.rubric_summary(rows(scores)).get("care", "faithfulness").mean
    assert 1.0 <= mean.low <= mean.value <= mean.high <= 5.0
