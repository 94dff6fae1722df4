"""The review page's compact item list and "Accept all" (a mixin of :class:`studio.review_ui.ReviewUI`).

* :meth:`SpeedHandlers._list` renders the 12 items at a glance (model score, expert score,
  state, check warnings) and the CSS that marks the open item's evidence turns in the transcript.
* "Accept all" first lists the unreviewed items whose readable suggestion passes the checks
  (:func:`studio.accept.candidates`) and accepts them only after "Confirm"; an item typed into
  (unsaved) or in conflict is never in the list.
"""
from __future__ import annotations

import gradio as gr

from . import accept, render, review, review_checks, ui


class SpeedHandlers:
    """Needs ``self.ctx``, ``self.c``, ``_access``, ``_save``, ``_frame``, ``_show``, ``_nothing``
    (provided by ReviewUI)."""

    def _item_now(self, rs, item: int, index) -> tuple[dict, list[dict], bool]:
        """(draft shown, its checks, unsaved?) of one item, as its card shows them."""
        it = rs.items[item]
        pending = item in rs.pending
        draft = rs.pending.get(item) or (rs.conflicts[item]["yours"] if item in rs.conflicts else it["saved"])
        chk = review_checks.checks(draft, it["pred"], index, saved=pending or it["state"] != "unreviewed",
                                   score_locked=rs.locked)
        return draft, chk, pending

    def _list(self, rs) -> str:
        index = review.transcript_index(self.ctx.repo, rs.sid)
        rows = []
        with rs.lock:
            for item in sorted(rs.items):
                it = rs.items[item]
                draft, chk, pending = self._item_now(rs, item, index)
                pred = it["pred"]
                state = "conflict" if item in rs.conflicts else ("unsaved" if pending else it["state"])
                if it["state"] == "unreviewed" and not pending and rs.locked:  # how the shown draft fares
                    chk = [dict(c, message="draft: " + c["message"])
                           for c in review_checks.checks(it["saved"], pred, index, saved=True, score_locked=True)]
                elif it["state"] == "unreviewed" and not pending:  # nothing of the expert's: how the suggestion fares
                    chk = ([dict(c, message="suggestion: " + c["message"])
                            for c in review_checks.checks(accept.accepted_draft(pred), pred, index, saved=True)]
                           if accept.readable(pred) else [])
                rows.append({"item": item, "text": it["text"], "dimension": rs.dim_names.get(it["dimension"],
                                                                                             it["dimension"]),
                             "model": pred.get("score") if accept.readable(pred) else None,
                             "model_note": "" if accept.readable(pred) else ("no answer" if pred else "not predicted"),
                             "accepted": bool(it["state"] != "unreviewed" and accept.equals_suggestion(draft, pred)),
                             "provenance": (it["label"] or {}).get("rationale_source")
                             if it["state"] != "unreviewed" and not pending else None,
                             "edit_distance": (it["label"] or {}).get("rationale_edit_distance"),
                             "passes": "draft passes" if rs.locked else "suggestion passes",
                             "expert": draft.get("score") if it["state"] != "unreviewed" or pending else None,
                             "state": state, "evidence": list(draft.get("evidence") or []),
                             "checks": [c for c in chk if c["code"] != "unreviewed"]})
        return render.item_list_html(rows)

    def _candidates(self, rs) -> list[dict]:
        index = review.transcript_index(self.ctx.repo, rs.sid)
        with rs.lock:
            items = [{"item": i, "state": it["state"], "prediction": it["pred"]} for i, it in rs.items.items()
                     if i not in rs.pending and i not in rs.conflicts]
        return accept.candidates(items, lambda d, p: review_checks.checks(d, p, index, saved=True))

    def _bulk_panel(self, html: str = "", show: bool = False) -> dict:
        c = self.c
        return {c.bulk_html: html, c.bulk_yes: gr.update(visible=show), c.bulk_no: gr.update(visible=show)}

    def _submit_panel(self, html: str = "", show: bool = False) -> dict:
        c = self.c
        return {c.submit_html: html, c.submit_yes: gr.update(visible=show), c.submit_no: gr.update(visible=show)}

    @ui.guard
    def submit_ask(self, rs, request: gr.Request):
        """First step of "Submit session": say what submitting does, and ask (issue 20: it acted at once)."""
        self._access(request)
        if rs is None or not rs.editable:
            return self._submit_panel()
        with rs.lock:
            states = [it["state"] for it in rs.items.values()]
            unsaved = len(rs.pending)
        done = sum(s != "unreviewed" for s in states)
        rs.submit_asked = rs.sid
        html = render.status_html(
            f"Submit session {rs.sid} for the record? {done} of {len(states)} items have a label"
            + (f"; {unsaved} unsaved edit(s) on this screen are saved first" if unsaved else "")
            + ". A submitted session is read-only until it is reopened.", "warn")
        return self._submit_panel(html, True)

    @ui.guard
    def submit_cancel(self, request: gr.Request):
        self._access(request)
        return self._submit_panel()

    @ui.guard
    def accept_all_ask(self, rs, item=None, rationale=None, request: gr.Request = None):
        """First step of "Accept all": list what would be accepted, and ask. The card's rationale comes
        with the click, so an edit typed just before (its own event still on the way) is not listed."""
        self._access(request)
        if rs is None or not rs.editable:
            return self._nothing()
        shown = self._editable_item(rs, item)
        if shown is not None and rationale is not None:
            with rs.lock:
                self._note_rationale(rs, shown, rationale)
        if getattr(rs, "locked", False):  # client-anchored: the scores are the client's, not the model's
            rs.message = ("Accept all does nothing here: this session is client-anchored, so every score is the "
                          "client's own (none is the expert's to fill) and Accept all never takes a rationale. "
                          "Read each item's rationale and confirm it (button “Confirm this rationale” or key c) "
                          "or edit it.", "warn")
            return self._bulk_panel() | {self.c.status: render.status_html(*rs.message)}
        todo = self._candidates(rs)
        with rs.lock:
            rs.bulk = [t["item"] for t in todo]
            if not todo:
                rs.message = ("No unreviewed item has a readable model suggestion that passes the checks: "
                              "nothing to accept.", "warn")
        if not todo:
            return self._bulk_panel() | {self.c.status: render.status_html(*rs.message)}
        texts = {i: rs.items[i]["text"] for i in rs.bulk}
        return self._bulk_panel(render.bulk_confirm_html(todo, texts), True)

    @ui.guard
    def accept_all_do(self, rs, request: gr.Request):
        """"Confirm": accept the listed items that still qualify (re-checked now)."""
        access = self._access(request)
        if rs is None or not rs.editable:
            return self._nothing()
        asked = set(getattr(rs, "bulk", None) or []) if not getattr(rs, "locked", False) else set()
        todo = [t for t in self._candidates(rs) if t["item"] in asked]
        done = [t for t in todo if self._save(rs, access, t["item"], t["draft"], bulk=True)]
        with rs.lock:
            rs.bulk = []
            skipped = sorted(asked - {t["item"] for t in done})
            if not rs.conflicts:
                rs.message = (f"Accepted the model's suggestion for {len(done)} item(s): "
                              + (", ".join(str(t["item"]) for t in done) or "none")
                              + (f"; left alone (changed meanwhile): {', '.join(map(str, skipped))}" if skipped else "")
                              + f" ({review_time()}).", "ok")
        up = self._frame(rs) | self._bulk_panel()
        return up | (self._show(rs, rs.current) if rs.current is not None else {})

    @ui.guard
    def accept_all_cancel(self, rs, request: gr.Request):
        self._access(request)
        if rs is not None:
            rs.bulk = []
        return self._bulk_panel()


def review_time() -> str:
    from .review_state import now

    return now()
