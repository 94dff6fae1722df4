"""The page an annotator's browser is sent: the studio without the staff tabs.

Five tabs (Campaigns, Adjudication, Models & training, Insights, Admin) are for adjudicators and
admins; an annotator never sees them (their page-load hooks hide them, their handlers refuse the
role). They hold 325 of the app's 536 components and 97 of its 176 events, and a browser spends
most of the first paint building components (issue 20: 1.58 s after login, 1.32-1.37 s without them).
So the page served to an annotator (``GET /``) carries a config without them: a tab registered
with :meth:`studio.app.AppContext.staff_only` is left out with everything inside it, and so is
every event that reads, writes or is triggered by what is left out (and what such an event chains).

Only the page is filtered. ``/config`` (what ``gradio_client`` reads) and the server's own
bookkeeping keep the whole app, so an annotator's API call to a staff endpoint is still answered
by the handler's own refusal, not by a missing endpoint. Adjudicators and admins get the whole
page, as before. The role comes from the login (:class:`studio.login_guard.LoginGuard` sets
:data:`VIEW_ROLE` for the page request only).

:func:`annotator_config` is pure (a config dict in, a smaller one out); :func:`check_annotator_view`
says which kept triggers would lose an event (a programming error: an annotator's button wired to
a staff component), and ``tests/studio/test_role_view.py`` asserts there is none.
"""
from __future__ import annotations

import copy
from contextvars import ContextVar

VIEW_ROLE: ContextVar[str | None] = ContextVar("care_view_role", default=None)
FILTERED_ROLES = ("annotator",)  # roles served the page without the staff tabs


def descendant_ids(layout: dict, roots: set[int]) -> set[int]:
    """The ids of the layout nodes in ``roots`` and everything below them."""
    out: set[int] = set()

    def walk(node, inside):
        inside = inside or node.get("id") in roots
        if inside:
            out.add(node["id"])
        for child in node.get("children", []) or []:
            walk(child, inside)

    walk(layout, False)
    return out


def _prune(layout: dict, drop: set[int]) -> dict:
    node = {k: v for k, v in layout.items() if k != "children"}
    if "children" in layout:
        node["children"] = [_prune(c, drop) for c in layout["children"] if c.get("id") not in drop]
    return node


def dropped_dependencies(deps: list[dict], drop: set[int]) -> set[int]:
    """Ids of the events that touch a left-out component, or chain from (or cancel into) a left-out event."""
    gone = {d["id"] for d in deps
            if any(t[0] in drop for t in d.get("targets") or [] if t and t[0] is not None)
            or any(i in drop for i in d.get("inputs") or [])
            or any(o in drop for o in d.get("outputs") or [])
            or any(p[0] in drop for p in d.get("component_prop_inputs") or [] if isinstance(p, (list, tuple)))}
    return with_chained(deps, gone)


def with_chained(deps: list[dict], ids: set[int]) -> set[int]:
    """``ids`` and every event chained after one of them (``.then``), however deep."""
    out, grew = set(ids), True
    while grew:
        grew = False
        for d in deps:
            if d["id"] not in out and d.get("trigger_after") in out:
                out.add(d["id"])
                grew = True
    return out


def annotator_config(config: dict, staff_ids: set[int]) -> dict:
    """``config`` (Gradio's, of the whole app) without the blocks ``staff_ids``, all they contain,
    and the events that touch them. The input is not changed."""
    drop = descendant_ids(config["layout"], staff_ids)
    deps = config.get("dependencies", [])
    gone = dropped_dependencies(deps, drop)
    out = {k: v for k, v in config.items() if k not in ("components", "dependencies", "layout", "page")}
    out = copy.deepcopy(out)
    out["components"] = copy.deepcopy([c for c in config["components"] if c["id"] not in drop])
    kept = []
    for d in deps:
        if d["id"] in gone:
            continue
        d = copy.deepcopy(d)
        d["cancels"] = [i for i in d.get("cancels") or [] if i not in gone]
        kept.append(d)
    out["dependencies"] = kept
    out["layout"] = _prune(config["layout"], drop)
    pages = {}
    for name, page in (config.get("page") or {}).items():
        pages[name] = {"layout": _prune(page["layout"], drop),
                       "components": [i for i in page["components"] if i not in drop],
                       "dependencies": [i for i in page["dependencies"] if i not in gone]}
    out["page"] = pages
    return out


def check_annotator_view(config: dict, staff_ids: set[int]) -> list[str]:
    """Events an annotator's page would lose although they update what it shows: triggered from
    the kept page (a kept component or a kept event) and reading or writing both kept and staff
    components. Each is an annotator's screen wired to a staff component (split the event, or move
    the component); an event wholly about staff components may chain from a kept one."""
    drop = descendant_ids(config["layout"], staff_ids)
    deps = config.get("dependencies", [])
    gone = dropped_dependencies(deps, drop)
    # the events an annotator's page starts: triggered by a kept component (or the page's load), and
    # whatever they chain, however deep (a step left out takes every later step with it)
    started = with_chained(deps, {d["id"] for d in deps
                                  if any(t and t[0] is not None and t[0] not in drop for t in d.get("targets") or [])})
    problems = []
    for d in deps:
        kept_io = [i for i in (d.get("inputs") or []) + (d.get("outputs") or []) if i not in drop]
        if d["id"] in gone and d["id"] in started and kept_io:
            problems.append(f"event {d['id']} ({d.get('api_name') or '?'}): started from the annotator's page, "
                            f"touches kept components {kept_io} but is left out with a staff component "
                            "or an earlier step")
    return problems


class RoleViews:
    """The filtered configs of one app, made once per config (Gradio rebuilds it at launch)."""

    def __init__(self):
        self.staff_blocks: list = []
        self._cache: tuple[dict, dict] | None = None

    @property
    def staff_ids(self) -> set[int]:
        return {b._id for b in self.staff_blocks}

    def config_for(self, full: dict | None, role: str | None):
        if full is None or role not in FILTERED_ROLES or not self.staff_blocks:
            return full
        if self._cache is None or self._cache[0] is not full:
            self._cache = (full, annotator_config(full, self.staff_ids))
        return self._cache[1]
