"""The page load (studio.app._wire_loads): at most three requests whatever the number of tabs, the
first screen's first, the staff tabs' last (issue 20: nine load requests, each reply applied by the
browser before the queue showed). An annotator's page makes two (tests/studio/test_role_view.py)."""
from __future__ import annotations

import gradio as gr
import pytest

from store import Repository
from studio.app import DEFAULT_TABS, build_app, merge_loads


def load_requests(demo) -> list[list[str]]:
    """The chains of server requests the page load starts: [[fn name, ...], ...]."""
    fns = demo.fns
    chains = []
    for fn in fns.values():
        if any(event == "load" for _, event in fn.targets):
            chain, todo = [], [fn]
            while todo:
                cur = todo.pop()
                if cur.fn is not None:
                    chain.append(cur.name)
                todo += [f for f in fns.values() if f.trigger_after == cur._id]
            chains.append(chain)
    return chains


@pytest.mark.parametrize("tabs,n", [(DEFAULT_TABS, 3), (DEFAULT_TABS[:2], 3), (DEFAULT_TABS[:1], 1),
                                    (DEFAULT_TABS[:1] + DEFAULT_TABS[2:], 2)])
def test_the_page_load_is_at_most_three_requests_whatever_the_tabs(tmp_path, tabs, n):
    repo = Repository(tmp_path / "store")
    try:
        chains = load_requests(build_app(repo, None, tabs=tabs))
    finally:
        repo.close()
    assert len(chains) == 1, chains                  # one load event ...
    assert len(chains[0]) == n, chains  # ... first screen, every other tab at once, the staff tabs at once


def test_merged_loads_return_every_hooks_updates_and_a_failing_hook_leaves_the_others(tmp_path):
    with gr.Blocks():
        a, b, c, d = gr.Textbox(), gr.Textbox(), gr.Textbox(), gr.Textbox()
        seen = []

        def one(x, request=None):
            seen.append(("one", x, request))
            return {a: f"a{x}"}

        def two(request=None):
            return "b", "c"

        def broken(request=None):
            raise gr.Error("no way. Fix: none")

        def single(y, request=None):
            return f"d{y}"

        fn, inputs, outputs = merge_loads([(one, [a], [a], {}), (two, [], [b, c], {}), (broken, [], [c], {}),
                                           (single, [b], [d], {})])
    assert inputs == [a, b] and outputs == [a, b, c, d]       # c once, although two hooks name it
    up = fn("REQ", "1", "2")
    assert up == {a: "a1", b: "b", c: "c", d: "d2"}            # the broken hook's output keeps the other's update
    assert seen == [("one", "1", "REQ")]                        # each hook gets its inputs and the request
