"""The Review tab's handlers and per-page state (the layout and the wiring are in review_tab).

Each handler checks the user's role first (:func:`studio.ui.require_role`), calls the pure review
functions (:mod:`studio.review`) and returns updates for as few components as it can: every
component an event lists as an output costs the browser work on each call, so frequent events
(keystrokes, the 2-second timer) name one or two, and a timer that saved something raises a
token (a ``gr.State`` whose ``.change`` redraws the cards) instead of listing every card.
"""
from types import SimpleNamespace

import gradio as gr

from care_model.core.errors import CareError

from . import curation_modes, quality_notice, render, review, review_checks, review_queue, ui
from .accept import accepted_draft, readable
from .access import active_model_version
from .metric_labels import UNCERTAINTY
from .review_speed import SpeedHandlers
from .review_live import LiveHandlers
from .review_state import ReviewState, draft_of, evidence_list, evidence_text, now
from .submitted import reopen_session

QUEUE_HEADERS = ["Session", "Topic", "Lang", "Turns", "Curation", "Status", "Reviewed", "Model uncertainty (SD)",
                 "Model",
                 "Assigned"]


class ReviewUI(SpeedHandlers, LiveHandlers):
    """The handlers. ``c`` holds the tab's components; ``cards[item]`` those of one card."""

    def __init__(self, ctx, c: SimpleNamespace, cards: dict):
        self.ctx, self.c, self.cards = ctx, c, cards
        self.items = sorted(cards)

    # ----- helpers -----------------------------------------------------------------------
    def _nothing(self) -> dict:
        return {self.c.status: gr.skip()}

    def _access(self, request):
        return ui.require_role(self.ctx.repo, request, *ui.ALL_ROLES)

    def _values(self, values) -> dict[int, dict]:
        return {item: draft_of(values[4 * k:4 * k + 4]) for k, item in enumerate(self.items)}

    def _feedback(self, rs: ReviewState, item: int) -> str:
        it = rs.items[item]
        pending = item in rs.pending
        draft = rs.pending.get(item) or (rs.conflicts[item]["yours"] if item in rs.conflicts else it["saved"])
        chk = review_checks.checks(draft, it["pred"], review.transcript_index(self.ctx.repo, rs.sid),
                                   saved=pending or it["state"] != "unreviewed", score_locked=rs.locked)
        return render.feedback_html(chk, it["pred"], draft, pending=pending)

    def _card(self, rs: ReviewState, item: int) -> dict:
        card = self.cards[item]
        return {card.head: rs.head(item), card.feedback: self._feedback(rs, item)}

    def _frame(self, rs: ReviewState) -> dict:
        """Status line, summary and the conflict panel (the first open conflict)."""
        c = self.c
        up = {c.status: render.status_html(*rs.message) if rs.message else gr.skip(),
              c.summary: rs.summary(self.ctx.form),
              c.items_list: self._list(rs)}
        if not rs.conflicts:
            return up | {c.use_theirs: gr.update(visible=False), c.keep_mine: gr.update(visible=False),
                         c.conflict_html: ""}
        item, res = next(iter(rs.conflicts.items()))
        return up | {c.use_theirs: gr.update(visible=True), c.keep_mine: gr.update(visible=True),
                     c.conflict_html: render.conflict_html(item, rs.items[item]["text"], res["current"], res["yours"],
                                                           rs.scale)}

    @staticmethod
    def _conflict_message(rs: ReviewState, item: int) -> tuple[str, str]:
        who = (rs.conflicts[item].get("current") or {}).get("updated_by", "someone")
        return (f"Item {item} was changed by {who}: choose a version in the panel above. Nothing was overwritten.",
                "warn")

    def _save(self, rs: ReviewState, access, item: int, draft: dict, expected: int | None = None,
              bulk: bool = False) -> bool:
        """Save one item on top of the version the page holds (or ``expected``); updates ``rs``
        (version, state, conflicts, message). True if it was saved. ``bulk``: through Accept all."""
        with rs.lock:  # held throughout: one page's saves run one after the other, in order
            version = rs.items[item]["version"] if expected is None else expected
            res = review.save_item(self.ctx.repo, access, rs.sid, item, draft, expected_version=version,
                                   predictor=self.ctx.predictor, bulk=bulk)
            it = rs.items[item]
            if res["status"] != "saved":
                rs.conflicts[item] = res
                rs.pending.pop(item, None)
                rs.message = self._conflict_message(rs, item)
                return False
            lab = res["label"]
            it.update(version=res["version"], state=res["state"], label=lab,
                      saved={k: lab[k] for k in review.FIELDS})
            if expected is not None or (rs.pending.get(item) or {}).get("rationale") == draft["rationale"]:
                rs.pending.pop(item, None)
            rs.conflicts.pop(item, None)
            rs.message = ((f"Saved item {item} (version {res['version']}) at {now()}." if not res["unchanged"]
                           else f"Item {item} is saved (version {res['version']})."), "ok")
            return True

    def _flush(self, rs: ReviewState, access, values) -> int:
        """Save every card whose fields differ from what is saved (a conflicted card waits)."""
        n = 0
        for item, draft in self._values(values).items():
            with rs.lock:
                if item in rs.conflicts:
                    continue
                same = review_checks.same_content(rs.items[item]["saved"], review_checks.clean_draft(draft))
            if not same:
                self._save(rs, access, item, draft)
                n += 1
        return n

    def _all_cards(self, rs: ReviewState) -> dict:
        up = self._frame(rs)
        for item in self.items:
            up.update(self._card(rs, item))
        return up

    # ----- queue -------------------------------------------------------------------------
    @ui.guard
    def queue(self, scope: str, search: str, order: str, request: gr.Request):
        access = self._access(request)
        q = review_queue.queue_rows(self.ctx.repo, access, scope=scope or "mine", search=search or "",
                                    order=order or "id",
                              model_version=active_model_version(self.ctx.repo, self.ctx.predictor))
        n = q["counts"]
        counts = (f'<div class="care-muted"><b>{n["total"]}</b> sessions · {n["not started"]} not started · '
                  f'{n["in progress"]} in progress · {n["submitted"]} submitted · '
                  f'{n["items_reviewed"]}/{n["items_total"]} items reviewed · '
                  f'<span class="care-help" id="care-uncertainty-help" title="{render.esc(UNCERTAINTY)}">'
                  f'Model uncertainty (SD): 0 = sure, 1+ = hesitant{ui.HELP_MARK}</span></div>')
        rows = [[r["id"], r["topic"], r["language"], r["turns"], r["curation"], r["status"],
                 f'{r["reviewed"]}/{r["items"]}',
                 "" if r["uncertainty"] is None else f'{r["uncertainty"]:.2f}', r["model_version"] or "",
                 r["assigned"] or ("—" if r["mode"] == "unassigned" else "")] for r in q["rows"]]
        return counts, {"data": rows, "headers": QUEUE_HEADERS}

    @ui.guard
    def on_load(self, last: str, rs, request: gr.Request):
        """Page load: the queue, and in the same reply the session this browser had open (one
        request), silently skipping one the user may not see (another account on this browser)."""
        access = self._access(request)
        scope = "all" if access.is_staff else "mine"
        counts, table = self.queue(scope, "", "id", request)
        up = {self.c.scope: scope, self.c.counts: counts, self.c.table: table,
              self.c.open_id: last or gr.skip()}   # never wipe what the user typed meanwhile
        if last:
            try:
                up |= self._open(access, last.strip(), rs)
            except CareError:
                pass
        return up

    @ui.guard
    def open_row(self, rs, evt: gr.SelectData, request: gr.Request):
        """A click on a queue row opens its session in the same request (and names it in the box)."""
        row = evt.row_value or []
        if not row or not row[0]:
            return self._nothing()
        access = self._access(request)
        return self._open(access, str(row[0]), rs) | {self.c.open_id: str(row[0])}

    # ----- open --------------------------------------------------------------------------
    @ui.guard
    def open(self, session_id: str, rs, request: gr.Request):
        access = self._access(request)
        session_id = (session_id or "").strip()
        if not session_id:
            return self._nothing()
        return self._open(access, session_id, rs)

    def _open(self, access, session_id: str, before: ReviewState | None = None) -> dict:
        """Every update an open needs, in one reply. ``before``: the page's previous state; what is
        the same on the page already (a card's score scale and label, its buttons' states) is
        skipped, so the browser redraws only what changes."""
        view = review.open_view(self.ctx.repo, access, session_id, predictor=self.ctx.predictor)
        rs = ReviewState(view)
        latest = self.ctx.jobs.latest(rs.sid) if self.ctx.jobs else None
        rs.job_seen = latest["id"] if latest and latest["state"] not in ("queued", "running") else None
        ed = view["editable"]
        rs.message = ((f"Opened {rs.sid}: {view['reviewed']}/12 items reviewed, status {view['status']}."
                       if ed else f"Opened {rs.sid} read-only. {view['note']}"), "idle")
        c = self.c
        scale_choices = [(f"{k} {label}", int(k)) for k, label in view["scale"].items()]
        locked = view["curation"]["score_locked"]  # client-anchored: the score is the client's own rating
        score_label = "Client's self-reported score (fixed)" if locked else "Your score"
        same = before is not None and getattr(before, "shown", None) is not None
        shown = {"scale": view["scale"], "editable": ed, "locked": locked}
        rs.shown = shown
        kept = same and before.shown == shown  # the cards' frames (scale, labels, enabled) stay as they are
        up = self._frame(rs) | {
            c.st: rs, c.last: rs.sid,
            c.head: render.session_header_html(view) + curation_modes.mode_html(view),
            c.transcript: render.transcript_html(view["session"]),
            c.job: render.job_html(latest) if latest else "",
            c.timer: gr.Timer(active=bool(latest) and latest["state"] in ("queued", "running")),
            c.save_btn: gr.update(interactive=ed), c.submit_btn: gr.update(interactive=ed),
            c.reopen_btn: gr.update(visible=bool(view.get("reopenable"))),
            c.accept_all: gr.update(interactive=ed)} | self._bulk_panel()  # anchored: it says why it fills nothing
        notices = quality_notice.notices_for(self.ctx.repo, [it["prediction"] for it in view["items"]])
        for it in view["items"]:
            card, d = self.cards[it["item"]], it["draft"]
            can_accept = ed and not locked and readable(it["prediction"])
            up.update({card.head: rs.head(it["item"]),
                       card.model: render.model_html(it["prediction"], view["scale"], notices),
                       card.score: (gr.update(value=d["score"]) if kept else
                                    gr.update(value=d["score"], interactive=ed and not locked, choices=scale_choices,
                                              label=score_label)),
                       card.rationale: gr.update(value=d["rationale"]) if kept else
                       gr.update(value=d["rationale"], interactive=ed),
                       card.evidence: gr.update(value=evidence_text(d["evidence"])) if kept else
                       gr.update(value=evidence_text(d["evidence"]), interactive=ed),
                       card.reasons: gr.update(value=d["change_reasons"]) if kept else
                       gr.update(value=d["change_reasons"], interactive=ed),
                       card.feedback: render.feedback_html(it["checks"], it["prediction"], d),
                       card.accept: gr.update(interactive=can_accept, visible=not locked),
                       card.confirm: gr.skip() if kept else gr.update(visible=locked, interactive=ed)})
        return up

    # ----- one card ----------------------------------------------------------------------
    def card_save(self, item: int, field: str):
        """One field changed (a score, evidence or reason change, or the rationale losing focus):
        save this item with that field on top of what is saved (and the typed, unsaved rationale).
        Saving one field at a time under the page's lock makes quick edits of different fields
        (a rationale typed, then a turn clicked) land in any order without losing one."""
        @ui.guard
        def save(rs, value, request: gr.Request):
            access = self._access(request)
            if rs is None or not rs.editable:
                return self._nothing()
            with rs.lock:
                if item in rs.conflicts:  # keep the edit with the conflict; the expert chooses first
                    rs.conflicts[item]["yours"] = review_checks.clean_draft({**rs.conflicts[item]["yours"],
                                                                             field: value})
                    rs.message = self._conflict_message(rs, item)
                    return self._frame(rs) | self._card(rs, item)
                draft = dict(rs.items[item]["saved"])
                if item in rs.pending and field != "rationale":
                    draft["rationale"] = rs.pending[item]["rationale"]
                draft = draft_of((draft["score"], draft["rationale"], draft["evidence"], draft["change_reasons"]))
                draft[field] = (evidence_list(value) if field == "evidence"
                                else list(value or []) if field == "change_reasons"
                                else (value or "") if field == "rationale" else value)
                if review_checks.same_content(rs.items[item]["saved"], review_checks.clean_draft(draft)):
                    rs.pending.pop(item, None)
                    return self._card(rs, item)
                self._save(rs, access, item, draft)
            return self._frame(rs) | self._card(rs, item)
        save.__name__ = f"save_item_{item}_{field}"
        return save

    def card_note(self, item: int):
        """A rationale changed (typing, pasting, or an update from the server): live checks and
        diff, and the edit is remembered for the autosave. Only the rationale is read from the
        event: the other fields save on their own events, and reading them here could pick up
        values from before a session switch finished rendering."""
        @ui.guard
        def note(rs, rationale, request: gr.Request):
            self._access(request)
            if rs is None or not rs.editable:
                return self._nothing()
            with rs.lock:
                saved = rs.items[item]["saved"]
                if item in rs.conflicts:
                    rs.conflicts[item]["yours"] = {**rs.conflicts[item]["yours"], "rationale": rationale or ""}
                    pending = False
                elif (rationale or "") != (saved["rationale"] or ""):
                    rs.pending[item] = {**saved, "rationale": rationale or ""}
                    pending = rs.drafted.get(item) != (rationale or "")  # a fresh draft waits for the expert
                else:
                    rs.pending.pop(item, None)
                    pending = False
            return {self.cards[item].feedback: self._feedback(rs, item),
                    self.c.status: render.status_html("Unsaved changes (saving in a moment)…",
                                                      "busy") if pending else gr.skip(),
                    self.c.timer: gr.Timer(active=True) if pending else gr.skip()}
        note.__name__ = f"note_item_{item}"
        return note

    def card_accept(self, item: int):
        """The model's suggestion as the expert's answer (score, rationale, evidence)."""
        @ui.guard
        def accept(rs, request: gr.Request):
            access = self._access(request)
            if rs is None or not rs.editable:
                return self._nothing()
            draft = accepted_draft(rs.items[item]["pred"])
            with rs.lock:
                rs.pending.pop(item, None)  # accepting replaces what was typed
                self._save(rs, access, item, draft)
            card = self.cards[item]
            return self._frame(rs) | self._card(rs, item) | {
                card.score: draft["score"], card.rationale: draft["rationale"],
                                                             card.evidence: evidence_text(draft["evidence"]),
                card.reasons: draft["change_reasons"]}
        accept.__name__ = f"accept_item_{item}"
        return accept

    def card_confirm(self, item: int):
        """Client-anchored cards: save the rationale shown (the draft written for the client's
        score, or the expert's edit of it) as the expert's label; the item is done. An unchanged
        draft is recorded with provenance ``accepted`` (:func:`studio.review.save_item`)."""
        @ui.guard
        def confirm(rs, rationale, request: gr.Request):
            access = self._access(request)
            if rs is None or not rs.editable:
                return self._nothing()
            with rs.lock:
                if item in rs.conflicts:
                    rs.message = self._conflict_message(rs, item)
                    return self._frame(rs) | self._card(rs, item)
                draft = {**rs.items[item]["saved"], "rationale": rationale if rationale is not None
                         else (rs.pending.get(item) or rs.items[item]["saved"])["rationale"]}
                rs.pending.pop(item, None)
                if self._save(rs, access, item, draft):
                    lab = rs.items[item]["label"] or {}
                    how = {"accepted": "the draft, unchanged (provenance: accepted)",
                           "edited": f"your edit of the draft ({lab.get('rationale_edit_distance')} characters "
                                     "changed; provenance: edited)"}.get(lab.get("rationale_source"),
                                                                         "your rationale (provenance: expert)")
                    rs.message = (f"Confirmed item {item}: saved {how} at {now()}.", "ok")
            return self._frame(rs) | self._card(rs, item)
        confirm.__name__ = f"confirm_item_{item}"
        return confirm

    # ----- whole session -----------------------------------------------------------------
    @ui.guard
    def save_all(self, request: gr.Request, rs, *values):
        access = self._access(request)
        if rs is None or not rs.editable:
            return self._nothing()
        if not self._flush(rs, access, values) and not rs.conflicts:
            todo = sorted(i for i, it in rs.items.items() if it["state"] == "unreviewed")
            rs.message = (f"Everything is saved ({now()})." + (
                f" Still to do: item(s) {', '.join(map(str, todo))}: confirm each shown rationale (button "
                "“Confirm this rationale” or key c) or edit it." if rs.locked and todo else ""), "ok")
        return self._all_cards(rs)

    @ui.guard
    def submit(self, request: gr.Request, rs, *values):
        access = self._access(request)
        if rs is None or not rs.editable:
            return self._nothing()
        if rs.submit_asked != rs.sid:  # "Yes, submit" answers the question about this session
            rs.message = ("The session on screen changed since Submit asked; nothing was submitted. Press Submit "
                          "session again.", "error")
            return self._all_cards(rs)
        rs.submit_asked = None
        self._flush(rs, access, values)
        if rs.conflicts:
            rs.message = ("Resolve the conflicts first; nothing was submitted.", "error")
            return self._all_cards(rs)
        with rs.lock:
            expected = {str(i): it["version"] for i, it in rs.items.items() if it["version"]}
        res = review.submit_session(self.ctx.repo, access, rs.sid, expected, predictor=self.ctx.predictor)
        with rs.lock:
            if res["status"] == "submitted":
                for i, it in rs.items.items():
                    it.update(state="submitted", version=res["versions"].get(str(i), it["version"]))
                    if it["label"]:
                        it["label"] = {**it["label"], "status": "submitted", "version": it["version"],
                                       "updated_by": access.username}
                rs.message = (res["message"] + f" ({now()})", "ok")
                rs.editable = False  # read-only until reopened (studio.submitted)
            else:
                rs.message = (res["message"] + " Nothing was submitted.", "error")
        return self._all_cards(rs)

    @ui.guard
    def reload_if_read_only(self, rs, request: gr.Request):
        """After a submit: show the session read-only (cards locked, Reopen offered)."""
        access = self._access(request)
        if rs is None or rs.editable:
            return self._nothing()
        up = self._open(access, rs.sid)
        up[self.c.status] = render.status_html(*rs.message) if rs.message else gr.skip()
        return up

    @ui.guard
    def reopen(self, rs, request: gr.Request):
        access = self._access(request)
        if rs is None:
            raise CareError("Open a session first.", "Pick one in the queue.")
        res = reopen_session(self.ctx.repo, access, rs.sid)
        up = self._open(access, rs.sid)
        up[self.c.status] = render.status_html(res["message"], "ok")
        return up
