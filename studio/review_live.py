"""The Review page's live part (a mixin of :class:`studio.review_ui.ReviewUI`): the 2-second timer
that autosaves typed rationales and follows the session's predict job, the redraws it triggers,
starting a prediction, and the choice in a save conflict (use theirs / keep mine).

The mixin uses the page's ``ctx``, ``c``, ``card``, ``_access``, ``_item``, ``_save``, ``_frame``, ``_show``,
``_all_cards`` and ``_nothing``.
"""
import gradio as gr

from care_model.core.errors import CareError

from . import quality_notice, render, review, ui
from .accept import readable
from .access import require_session
from .review_state import ReviewState, draft_of, evidence_text, now


class LiveHandlers:
    # ----- the timer: autosave and predict progress --------------------------------------
    @ui.guard
    def tick(self, rs, cards_token, models_token, request: gr.Request):
        """Save typed rationales, follow the session's predict job. Outputs only the job line,
        two tokens (a raised token makes the page redraw the card and the list, or the suggestion) and the
        timer itself, which stops once nothing is pending: an idle page sends no requests."""
        if rs is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.Timer(active=False)
        access = self._access(request)
        saved = False
        if rs.editable:
            with rs.lock:
                todo = [i for i,
                        d in rs.pending.items() if i not in rs.conflicts and rs.drafted.get(i) != d["rationale"]]
            for item in todo:
                with rs.lock:  # the typed rationale on top of what is saved now (a field may have saved meanwhile)
                    if item not in rs.pending or item in rs.conflicts:
                        continue
                    self._save(rs, access, item, {**rs.items[item]["saved"],
                                                  "rationale": rs.pending[item]["rationale"]})
                saved = True
        job_html, models, running = gr.skip(), False, False
        if self.ctx.jobs is not None:
            job = self.ctx.jobs.latest(rs.sid)
            if job is not None:
                job_html = render.job_html(job)
                running = job["state"] in ("queued", "running")
                if job["state"] == "done":
                    with rs.lock:
                        fresh, rs.job_seen = job["id"] != rs.job_seen, job["id"]
                    if fresh:
                        self._new_predictions(rs, access)
                        models = True
        with rs.lock:
            busy = running or any(i not in rs.conflicts and rs.drafted.get(i) != d["rationale"] for i,
                                  d in rs.pending.items())
        # the last tick of an editing burst redraws once: replies of overlapping events (a typed
        # rationale's note and a field's save) may reach the page in either order
        redraw = saved or (not busy and rs.editable)
        return (job_html, (cards_token or 0) + 1 if redraw and not models else gr.skip(),
                (models_token or 0) + 1 if models else gr.skip(), gr.skip() if busy else gr.Timer(active=False))

    def _new_predictions(self, rs: ReviewState, access) -> None:
        view = review.open_view(self.ctx.repo, access, rs.sid, predictor=self.ctx.predictor)
        with rs.lock:
            for it in view["items"]:
                mine = rs.items[it["item"]]
                old = mine["pred"]
                mine["pred"] = it["prediction"]
                if mine["state"] == "unreviewed" and it["item"] not in rs.pending and \
                        mine["saved"] == review.draft_of(None, old):
                    mine["saved"] = dict(it["draft"])
                    rs.prefills[it["item"]] = dict(it["draft"])
            rs.message = (f"New predictions from {view['model_version']} loaded ({now()}).", "ok")

    @ui.guard
    def redraw_cards(self, rs, request: gr.Request):
        self._access(request)
        return self._all_cards(rs) if rs is not None else self._nothing()

    @ui.guard
    def redraw_models(self, rs, request: gr.Request):
        """New predictions: the frame and the shown item's suggestion (and the new draft of an
        untouched item: the others show theirs when shown)."""
        self._access(request)
        if rs is None:
            return self._nothing()
        up = self._all_cards(rs)
        k = self.card
        with rs.lock:
            prefills, rs.prefills = rs.prefills, {}
            item = rs.current
            if item is None:
                return up
            pred = rs.items[item]["pred"]
            up[k.model] = render.model_html(pred, rs.scale, quality_notice.notices_for(self.ctx.repo, [pred]))
            up[k.accept] = gr.update(interactive=rs.editable and not rs.locked and readable(pred))
            if item in prefills:
                up.update({k.rationale: prefills[item]["rationale"],
                           k.evidence: evidence_text(prefills[item]["evidence"])})
        return up

    @ui.guard
    def predict(self, rs, request: gr.Request):
        access = self._access(request)
        if rs is None:
            raise CareError("Open a session first.", "Pick one in the queue.")
        if self.ctx.jobs is None:
            raise CareError("No model is loaded in this app.", "Start it with a model (the default is SmolLM2).")
        require_session(self.ctx.repo, access, rs.sid)
        return render.job_html(self.ctx.jobs.submit(rs.sid, actor=access.username)), gr.Timer(active=True)

    # ----- conflicts ---------------------------------------------------------------------
    @ui.guard
    def use_theirs(self, rs, request: gr.Request):
        self._access(request)
        if rs is None or not rs.conflicts:
            return self._nothing()
        with rs.lock:
            item, res = next(iter(rs.conflicts.items()))
            cur = res["current"] or {}
            draft = {"score": cur.get("score"), "rationale": cur.get("rationale") or "",
                     "evidence": list(cur.get("evidence") or []),
                     "change_reasons": list(cur.get("change_reasons") or [])}
            it = rs.items[item]
            it.update(version=cur.get("version", 0), saved=draft, label=cur or None,
                      state="unreviewed" if not cur else ("submitted" if cur.get("status") == "submitted" else "draft"))
            rs.conflicts.pop(item)
            rs.pending.pop(item, None)
            rs.message = (f"Item {item}: took their version.", "ok")
        return self._frame(rs) | self._show(rs, item)

    @ui.guard
    def keep_mine(self, rs, item, score, rationale, evidence, reasons, request: gr.Request):
        """Save the unsaved version over theirs: the card's fields if it shows the item (the expert
        may have merged by hand), else the version kept with the conflict; the card shows the item."""
        access = self._access(request)
        if rs is None or not rs.conflicts:
            return self._nothing()
        item_shown = self._item(rs, item)
        with rs.lock:
            item, res = next(iter(rs.conflicts.items()))
            yours = draft_of((score, rationale, evidence, reasons)) if item == item_shown else dict(res["yours"])
        self._save(rs, access, item, yours, expected=(res["current"] or {}).get("version", 0))
        return self._frame(rs) | self._show(rs, item)
