"""Defects 5 and 10 of issue 11: actions refresh what they change (the header's model after a
promotion or rollback, new users and campaigns without a reload, the comparison table after a
rollback), and the numbers come with plain-language names."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

from studio import campaign_setup as cs
from studio.access import ACTIVE_MODEL, SETTINGS, Access
from studio.app import AppContext, build_app
from studio.metric_labels import describe
from studio_testing import make_store
from studio.training_tab import HEADLINE_ORDER, compare_html

ADMIN = SimpleNamespace(username="admin")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    r = make_store(tmp_path_factory.mktemp("stale") / "store")
    yield r
    r.close()


def handlers(repo, module):
    with gr.Blocks():
        return module.build_tab(AppContext(repo=repo))


def chained_after(demo, elem_id: str) -> list[str]:
    """Names of the handlers that run after a click on the button ``elem_id``."""
    by_elem = {c._id: getattr(c, "elem_id", None) for c in demo.blocks.values()}
    fns = list(demo.fns.values())
    first = [f for f in fns if any(by_elem.get(t[0]) == elem_id for t in f.targets)]
    assert first, elem_id
    ids = {k for k, f in demo.fns.items() if f in first}
    return [f.name for k, f in demo.fns.items() if f.trigger_after in ids]


def test_the_header_is_refreshed_after_promote_rollback_and_reject(repo):
    demo = build_app(repo, None)
    for button in ("care-promote-yes", "care-rollback", "care-reject"):  # Promote asks first: its Yes promotes
        assert "topbar" in chained_after(demo, button), button
    topbar = demo.studio_ctx.components["topbar"]
    repo.collection(SETTINGS).put({"id": ACTIVE_MODEL, "model_version": "lora-new-1"}, actor="admin")
    assert "model lora-new-1" in topbar(ADMIN)


def test_new_users_and_campaigns_appear_without_a_reload(repo):
    from studio import evaluation_tab

    h = handlers(repo, evaluation_tab)
    assert h.refresh_campaigns(None, SimpleNamespace(username="ann"))[0]["choices"] == []
    repo.add_user("newbie", "newbie-pass-1", "annotator", actor="admin")
    table, ids, raters = h.admin_refresh(None, ADMIN)
    assert "newbie" in raters["choices"]
    doc = cs.create_campaign(repo, Access("admin", "admin"), name="Fresh", systems=["test-model"], mode="rubric",
                             n_targets=2, raters=["ann"], overlap=1, session_ids=["sample-en-01"])
    choices, _ = h.refresh_campaigns(None, SimpleNamespace(username="ann"))
    assert [cid for _, cid in choices["choices"]] == [doc["id"]] and choices["value"] == doc["id"]
    table, ids, raters = h.admin_refresh(None, ADMIN)
    assert doc["id"] in [cid for _, cid in ids["choices"]] and any(doc["id"] in row for row in table["data"])
    demo = build_app(repo, None)
    names = {f.name for f in demo.fns.values()}
    assert {"refresh_campaigns", "admin_refresh"} <= names  # wired to the tabs' select events


def version_docs(lora_status: str) -> dict:
    head = {"experts.exact": 0.5, "goal.pearson": 0.3}
    return {"active": "base-1", "versions": [
        {"id": "base-1", "kind": "base", "status": "active"},
        {"id": "lora-1", "kind": "lora", "status": lora_status, "parent": "base-1",
         "metrics": {"validation_loss_before": 2.0, "validation_loss_after": 1.5},
         "evaluation": {"versions": {"candidate": {"headline": head}, "baseline": {"headline": head,
                                                                                   "version_id": "base-1"}},
                        "comparison": {"counts": {"better": 1}}, "sessions": ["s1"]}}]}


@pytest.mark.parametrize("status", ["rolled_back", "retired", "rejected", "candidate"])
def test_the_comparison_table_stays_after_a_rollback(status):
    html = compare_html(version_docs(status), "base-1")  # the rollback target is picked in the dropdown
    assert 'id="care-compare"' in html and "lora-1" in html and "No candidate" not in html


def test_every_metric_key_has_a_plain_name_and_an_explanation():
    html = compare_html(version_docs("candidate"))
    for key in HEADLINE_ORDER + ["validation_loss"]:
        name, text = describe(key)
        assert name != key and len(text) > 30, key
    assert 'title="Share of items where the model' in html and "Exact agreement with experts" in html


def test_the_queue_explains_uncertainty(repo):
    from studio import review_tab

    h = handlers(repo, review_tab)
    counts, table = h.queue("all", "", "id", ADMIN)
    assert 'id="care-uncertainty-help"' in counts and "standard deviation" in counts
    assert "Model uncertainty (SD)" in table["headers"]
    col = table["headers"].index("Curation")  # how each session's scores are curated
    assert table["data"] and all(row[col] in ("client-anchored", "expert-judged") for row in table["data"])


def test_a_rating_refreshes_the_campaign_count_and_the_task_header(repo):
    """Issue 20: the dropdown said "(0/2 done)" after the campaign was finished, the header "not rated yet"
    after a score was saved."""
    from studio import evaluation_tab

    h, bob = handlers(repo, evaluation_tab), SimpleNamespace(username="bob")
    c = h.c
    doc = cs.create_campaign(repo, Access("admin", "admin"), name="Count", systems=["test-model"], mode="rubric",
                             n_targets=2, raters=["bob"], overlap=1, session_ids=["sample-en-02"])
    up = h.start(doc["id"], None, bob)
    assert up[c.campaign] == {"__type__": "update", "choices": [("Count (0/2 done)", doc["id"])]}  # value: as chosen
    assert "not rated yet" in up[c.state] and "Task 1 of 2" in up[c.head]
    saved = h.crit_save("faithfulness")(up[c.st], up[c.key], 4, bob)
    assert "draft saved" in saved[c.state] and "not rated yet" not in saved[c.state]
    assert c.head not in saved  # a save never redraws the header: only moves name the task (a late reply could not)
    assert f'data-task="{up[c.key]}"' in saved[c.state]  # the state line names its task (KEYS_JS hides a stale one)
    first = up
    up = h.next(up[c.st], up[c.key], 4, 3, 2, None, "", bob)
    assert up[c.campaign]["choices"] == [("Count (1/2 done)", doc["id"])] and "value" not in up[c.campaign]
    assert "Task 2 of 2" in up[c.head] and "1 of 2 done" in up[c.head] and "not rated yet" in up[c.state]
    late = h.crit_save("relevance")(first[c.st], first[c.key], 5, bob)  # the page moved on: state line left alone
    assert c.head not in late and (c.state not in late or late[c.state] == gr.skip())
    up = h.next(up[c.st], up[c.key], 5, 5, 5, None, "", bob)
    assert up[c.campaign]["choices"] == [("Count (all 2 done)", doc["id"])] and "All 2 tasks are done" in up[c.status]
    assert "submitted" in up[c.state] and "2 of 2 done" in up[c.head]


def test_tables_show_times_to_the_minute_and_the_import_report_no_server_paths(repo, tmp_path):
    import json

    from store.logins import LoginPolicy
    from studio import admin_tab, deid_ui
    from studio_testing import make_store

    admin_ui, locks = admin_tab.AdminUI(AppContext(repo=repo)), deid_ui.DeidUI(AppContext(repo=repo))
    table, _ = admin_ui.audit("", "", "", ADMIN)
    assert table["data"] and table["headers"][0] == "When"
    for row in table["data"]:
        assert len(row[0]) == len("2026-12-06 22:41 UTC") and row[0].endswith(" UTC"), row[0]
    repo.record_login_failure("locky", "10.0.0.9", LoginPolicy(free_per_user=0, free_per_address=0, base_s=100))
    rows = locks.ui_locks(ADMIN)["data"]
    assert rows and all(len(r[2]) == len("2026-12-06 22:41 UTC") and r[2].endswith(" UTC") for r in rows), rows
    upload = tmp_path / "gradio" / "4f2a9c0e1b" / "new.jsonl"  # where Gradio keeps an upload
    upload.parent.mkdir(parents=True)
    upload.write_text(json.dumps({"id": "imp-1", "language": "en", "client_id": "c", "extra": 1, "turns": [
        {"speaker": "counselor", "text": "Hi."}, {"speaker": "client", "text": "Hello there."}]}) + "\n")
    fresh = make_store(tmp_path / "store", sessions=[], predictions=False)
    line, report = admin_tab.AdminUI(AppContext(repo=fresh)).import_files([str(upload)], "jsonl", False, ADMIN)
    fresh.close()
    assert report["added"] == 1 and report["warnings"] == ["new.jsonl:1: ignored unknown field 'extra'."]
    assert str(tmp_path) not in line + json.dumps(report)


def test_a_raters_saves_and_moves_run_one_at_a_time_in_the_order_sent(tmp_path):
    """A score's reply must not arrive after the "Save & next" sent after it (it put the old task's
    header back over the new task under load): every rater save and move shares one queue slot."""
    from store import Repository
    from studio.app import build_app

    repo = Repository(tmp_path / "store")
    try:
        fns = build_app(repo, None).fns.values()
    finally:
        repo.close()
    def is_rater_fn(f) -> bool:
        name = getattr(f.fn, "__name__", "")
        owner = type(getattr(f.fn, "__self__", None)).__name__
        return name.startswith("eval_score_") or (owner == "EvalUI" and name in (
            "start", "next", "prev", "choice_save", "comment_save", "tick"))

    rater = [f for f in fns if is_rater_fn(f)]
    assert sorted(f.fn.__name__ for f in rater) == sorted(
        ["start", "next", "prev", "choice_save", "comment_save", "tick", "eval_score_faithfulness",
         "eval_score_relevance", "eval_score_informativeness"])
    assert {(f.concurrency_id, f.concurrency_limit) for f in rater} == {("eval-rater", 1)}
