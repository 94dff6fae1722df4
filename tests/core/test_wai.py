"""care_model.core.wai: the WAI-SR as data, validation with messages that name the fix, new forms without code."""
from __future__ import annotations

import json

import pytest

from care_model.core import wai
from care_model.core.errors import ValidationError


def test_the_wai_sr_has_the_papers_items_and_dimensions():
    form = wai.wai_sr()
    assert form.item_ids == list(range(1, 13))
    assert {d.key: list(d.item_ids) for d in form.dimensions} == {
        "goal": [4, 6, 8, 11], "task": [1, 2, 10, 12], "bond": [3, 5, 7, 9]}
    assert form.scale_labels() == {1: "Seldom", 2: "Sometimes", 3: "Fairly often", 4: "Very often", 5: "Always"}
    assert form.item_text(3) == "I believe my counselor likes me."
    # the counselor form swaps the subject; Chinese wording is there too
    assert "client" in form.item_text(1, perspective="counselor") and form.item_text(1, language="zh")


def test_dimension_scores_are_item_means_and_need_all_items_when_asked():
    form = wai.wai_sr()
    ratings = {i: (5 if form.dimension_of(i) == "bond" else 2) for i in form.item_ids}
    ratings[4] = 4
    assert form.dimension_scores(ratings) == {"goal": (4 + 2 + 2 + 2) / 4, "task": 2.0, "bond": 5.0}
    partial = {3: 5, 5: 4}
    assert form.dimension_scores(partial) == {"goal": None, "task": None, "bond": 4.5}
    assert form.dimension_scores(partial, require_all=True)["bond"] is None


@pytest.mark.parametrize("bad", [0, 6, 2.5, "x", None, True, [3]])
def test_a_score_off_the_scale_is_refused_with_the_fix(bad):
    with pytest.raises(ValidationError) as err:
        wai.wai_sr().check_score(bad, item_id=7)
    assert "item 7" in str(err.value) and "Use a whole number from 1 to 5" in str(err.value)


def test_whole_numbers_in_other_types_are_accepted():
    form = wai.wai_sr()
    assert [form.check_score(v) for v in (3, 3.0, "3", " 4 ")] == [3, 3, 3, 4]
    assert form.check_item("12") == 12
    with pytest.raises(ValidationError, match="Items are numbered 1 to 12"):
        form.check_item(13)
    with pytest.raises(ValidationError, match=r"Missing items \[12\]"):
        form.check_ratings({i: 3 for i in range(1, 12)})


def test_unknown_wording_names_what_exists():
    with pytest.raises(ValidationError, match="Use one of client, counselor"):
        wai.wai_sr().item_text(1, perspective="observer")
    with pytest.raises(ValidationError, match="add the translation"):
        wai.wai_sr().item_text(1, language="fr")


def test_a_new_form_is_a_json_file_not_code(tmp_path, monkeypatch):
    """An observer form with two dimensions and a 1-7 scale, dropped into CARE_FORMS_DIR."""
    doc = {"id": "obs-test", "name": "Observer test form", "perspectives": ["observer"], "languages": ["en"],
           "scale": {"min": 1, "max": 7, "labels": {"en": {str(k): f"level {k}" for k in range(1, 8)}}},
           "dimensions": [{"key": "a", "name": {"en": "A"}, "items": [1, 2]},
                          {"key": "b", "name": {"en": "B"}, "items": [3]}],
           "items": [{"id": i, "text": {"observer": {"en": f"The pair shows sign {i}."}}} for i in (1, 2, 3)]}
    (tmp_path / "obs-test.json").write_text(json.dumps(doc), encoding="utf-8")
    monkeypatch.setenv("CARE_FORMS_DIR", str(tmp_path))
    assert "obs-test" in wai.available_forms()
    form = wai.load_form("obs-test")
    assert form.check_score(7) == 7 and form.dimension_scores({1: 7, 2: 5, 3: 1}) == {"a": 6.0, "b": 1.0}
    assert form.item_text(2, perspective="observer") == "The pair shows sign 2."
    # a form with an item in no dimension is refused with the fix
    doc["items"].append({"id": 4, "text": {"observer": {"en": "Stray."}}})
    (tmp_path / "obs-bad.json").write_text(json.dumps({**doc, "id": "obs-bad"}), encoding="utf-8")
    with pytest.raises(ValidationError, match="item 4 is in no dimension"):
        wai.load_form("obs-bad")
    with pytest.raises(ValidationError, match="add nope.json to care_model/core/forms/ or CARE_FORMS_DIR"):
        wai.load_form("nope")
