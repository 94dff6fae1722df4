"""Defect 2 of issue 11: strict input types and sizes on the API (no coercion, no traceback,
nothing stored), and the same rules in the pure review functions the UI uses."""
from __future__ import annotations

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from care_model.core.errors import ValidationError
from studio import review_checks
from studio_testing import password
from studio.validate import RATIONALE_LIMIT, TEXT_LIMITS, check_argument

SID = "sample-en-04"


@pytest.fixture(scope="module")
def admin(studio_server):
    return Client(studio_server.url, auth=("admin", password("admin")), verbose=False)


def labels_bytes(repo, sid=SID) -> dict:
    """Every file of the store folder (the labels file appears on the first save)."""
    return {p: p.read_bytes() for p in sorted(repo.root.rglob("*.json"))}


@pytest.mark.parametrize("field, value, named", [
    ("score", 3.5, "'score' must be an integer or null"), ("score", True, "'score' must be an integer or null"),
    ("score", "4", "'score' must be an integer or null"), ("score", 0, "Score 0"), ("score", 6, "Score 6"),
    ("item", "x", "'item' must be an integer"), ("item", 13, "Unknown item 13"), ("item", True,
                                                                                  "'item' must be an integer"),
    ("expected_version", "abc", "'expected_version' must be an integer"),
    ("expected_version", 1.0, "'expected_version' must be an integer"),
    ("rationale", None, "'rationale' must be a string"), ("rationale", "x" * 5_000_000, "the limit is 4,000"),
    ("evidence", ["3"], "'evidence' must be a list of integers or null"),
    ("change_reasons", "style", "'change_reasons' must be a list of strings or null"),
])
def test_save_draft_refuses_loose_types_and_stores_nothing(studio_server, admin, capfd, field, value, named):
    repo = studio_server.repo
    before = labels_bytes(repo)
    args = {"session_id": SID, "item": 2, "score": 4, "rationale": "She says it helps.", "evidence": [1],
            "change_reasons": [], "expected_version": 0} | {field: value}
    with pytest.raises(AppError) as err:
        admin.predict(*args.values(), api_name="/save_draft")
    msg = str(err.value)
    assert named in msg and "Fix:" in msg and "invalid literal" not in msg, msg
    assert labels_bytes(repo) == before and repo.get_label(SID, 2, "@shared") is None
    log = capfd.readouterr()
    assert "Traceback" not in log.out + log.err


def test_a_valid_save_still_works_and_is_exactly_what_was_sent(studio_server, admin):
    res = admin.predict(SID, 3, 5, "Fine.", [1, 1], [], 0, api_name="/save_draft")
    assert res["status"] == "saved" and res["label"]["score"] == 5 and res["label"]["evidence"] == [1]


def test_clean_draft_is_strict_for_the_ui_too():
    ok = {"score": 4, "rationale": "r", "evidence": [2, 1], "change_reasons": ["style"]}
    assert review_checks.clean_draft(ok) == {"score": 4, "rationale": "r", "evidence": [1, 2],
                                             "change_reasons": ["style"]}
    for bad in ({"score": 3.5}, {"score": True}, {"score": "4"}, {"score": 9}, {"rationale": None},
                {"rationale": "x" * (RATIONALE_LIMIT + 1)}, {"evidence": ["1"]}, {"change_reasons": [["style"]]}):
        with pytest.raises(ValidationError, match="Fix:"):
            review_checks.clean_draft(ok | bad)


def test_argument_caps_are_the_documented_ones():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "studio" / "API.md").read_text(encoding="utf-8")
    for name, limit in TEXT_LIMITS.items():
        assert f"`{name}` {limit:,}" in doc, name
        check_argument("x", name, "y" * limit, str)
        with pytest.raises(ValidationError, match=f"the limit is {limit:,}"):
            check_argument("x", name, "y" * (limit + 1), str)
