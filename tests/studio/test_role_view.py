"""The page an annotator is sent (studio.role_view): the staff tabs left out, everything an
annotator uses kept; adjudicators and admins, and /config (the API), get the whole app."""
from __future__ import annotations

import json

import gradio as gr
import httpx

from store import Repository
from studio.app import AppContext, build_app
from studio.role_view import annotator_config, check_annotator_view, descendant_ids
from studio_testing import password

STAFF_TABS = {"adj-tab", "care-admin-tab", "eval-admin-tab", "ins-tab", "care-training-tab"}
KEPT_TABS = {"care-review-tab", "eval-tab", "care-tabs", "care-topbar-box"}


def elem_ids(config) -> set[str]:
    return {c["props"].get("elem_id") for c in config["components"]} - {None}


def backend_load_chain(config) -> list[int]:
    """The server requests the page load makes, in order (dependency ids)."""
    deps = {d["id"]: d for d in config["dependencies"]}
    chain, todo = [], [d for d in deps.values() if any(t[1] == "load" for t in d["targets"])]
    while todo:
        cur = todo.pop()
        if cur["backend_fn"]:
            chain.append(cur["id"])
        todo += [d for d in deps.values() if d.get("trigger_after") == cur["id"]]
    return chain


def test_the_annotator_page_leaves_out_the_staff_tabs_and_keeps_every_event_of_the_others(tmp_path):
    repo = Repository(tmp_path / "store")
    try:
        demo = build_app(repo, None)
        full = demo.get_config_file()
        staff = demo.studio_ctx.views.staff_ids
    finally:
        repo.close()
    view = annotator_config(full, staff)
    assert STAFF_TABS <= elem_ids(full) and not STAFF_TABS & elem_ids(view)
    assert KEPT_TABS <= elem_ids(view)
    left_out = descendant_ids(full["layout"], staff)
    kept = {c["id"] for c in view["components"]}
    assert kept == {c["id"] for c in full["components"]} - left_out
    assert len(view["components"]) * 2 < len(full["components"])  # most of the page is staff screens
    # what stays refers only to what stays
    dep_ids = {d["id"] for d in view["dependencies"]}
    for d in view["dependencies"]:
        assert {t[0] for t in d["targets"] if t[0] is not None} <= kept | {full["layout"]["id"]}, d  # the page
        assert set(d["inputs"]) <= kept and set(d["outputs"]) <= kept, d
        assert d["trigger_after"] is None or d["trigger_after"] in dep_ids, d
        assert set(d["cancels"]) <= dep_ids, d
    assert set(view["page"][""]["components"]) == kept and set(view["page"][""]["dependencies"]) == dep_ids
    # every event an annotator's screens trigger is kept: none wired from them into a staff tab
    assert check_annotator_view(full, staff) == []
    triggered_from_kept = {d["id"] for d in full["dependencies"]
                           if any(t[0] in kept for t in d["targets"] if t[0] is not None and t[1] != "load")}
    assert triggered_from_kept <= dep_ids
    # the page load: first screen, then the other kept tabs; the staff tabs' load is the admin's third
    assert len(backend_load_chain(full)) == 3 and len(backend_load_chain(view)) == 2
    assert full["components"] and full is not view and len(full["dependencies"]) > len(view["dependencies"])


def test_an_annotator_button_wired_to_a_staff_tab_is_reported(tmp_path):
    ctx = AppContext(repo=None)
    with gr.Blocks() as demo:
        with gr.Tabs():
            with gr.Tab("Review"):
                status, go = gr.HTML(), gr.Button("go")
            with gr.Tab("Admin") as admin:
                ctx.staff_only(admin)
                table = gr.HTML()
                refresh = gr.Button("refresh")
        go.click(lambda: ("a", "b"), None, [status, table])         # kept trigger, kept + staff outputs
        refresh.click(lambda: "x", None, [table]).then(lambda: "y", None, [status])  # staff only: fine
        go.click(lambda: "z", None, [status]).then(lambda: "t", None, [table])  # a staff step after: fine
    full = demo.get_config_file()
    problems = check_annotator_view(full, ctx.views.staff_ids)
    assert len(problems) == 1 and "started from the annotator's page" in problems[0], problems
    view = annotator_config(full, ctx.views.staff_ids)
    assert len(view["dependencies"]) == 1                            # go -> status alone
    assert view["dependencies"][0]["outputs"] == [status._id]


def page_config(h: httpx.Client) -> dict:
    html = h.get("/").text
    start = html.index("window.gradio_config = ") + len("window.gradio_config = ")
    return json.loads(html[start:html.index(";</script>", start)])


def test_the_served_page_follows_the_login_role_and_the_api_config_stays_whole(studio_server):
    pages, configs = {}, {}
    for user in ("ann", "adj", "admin"):
        with httpx.Client(base_url=studio_server.url, timeout=30) as h:
            assert h.post("/login", data={"username": user, "password": password(user)}).status_code in (200, 302, 303)
            pages[user] = page_config(h)
            configs[user] = h.get("/config").json()
    assert not STAFF_TABS & elem_ids(pages["ann"]) and KEPT_TABS <= elem_ids(pages["ann"])
    for user in ("adj", "admin"):
        assert STAFF_TABS <= elem_ids(pages[user])
    assert len(pages["ann"]["components"]) * 2 < len(pages["admin"]["components"])
    # the JSON endpoints (studio/api.py) stay in every page: the footer's "Use via API" panel lists them from the
    # page's config (left out, it said "No API Routes found"; they would have saved ~80 ms of an annotator's first
    # paint). The staff tabs' own endpoints are not in an annotator's panel (their handlers refuse annotators).
    ann_api = {d["api_name"] for d in pages["ann"]["dependencies"] if d["api_visibility"] == "public"}
    assert {"whoami", "list_queue", "open_session", "submit_session", "add_user"} <= ann_api, ann_api
    for user in ("ann", "adj", "admin"):  # the API's view (gradio_client) is the whole app for everyone
        assert len(configs[user]["dependencies"]) == len(pages["admin"]["dependencies"])
    # the filtered view was made for that request only: the app's own config is whole
    assert len(studio_server.demo.config["components"]) == len(pages["admin"]["components"])
