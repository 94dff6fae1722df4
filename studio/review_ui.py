"""The Review tab's handlers and per-page state (the layout and the wiring are in review_tab).

Each handler checks the user's role first (:func:`studio.ui.require_role`), calls the pure review
functions (:mod:`studio.review`) and returns updates for as few components as it can: every
component an event lists as an output costs the browser work on each call, so frequent events
(keystrokes, the 2-second timer) name one or two, and a timer that saved something raises a
token (a ``gr.State`` whose ``.change`` redraws the card and the item list) instead of listing them.
"""
from types import SimpleNamespace

import gradio as gr

from care_model.core.errors import CareError

from . import curation_modes, quality_notice, render, review, review_checks, review_queue, ui
from .accept import readable
from .access import active_model_version
from .metric_labels import UNCERTAINTY
from .review_card import CardHandlers
from .review_speed import SpeedHandlers
from .review_live import LiveHandlers
from .review_state import ReviewState, draft_of, evidence_text, now
from .submitted import reopen_session

QUEUE_HEADERS = ["Session", "Topic", "Lang", "Turns", "Curation", "Status", "Reviewed", "Model uncertainty (SD)",
                 "Model",
                 "Assigned"]


class ReviewUI(CardHandlers, SpeedHandlers, LiveHandlers):
    """The handlers. ``c`` holds the tab's components; ``card`` those of the item card."""

    def __init__(self, ctx, c: SimpleNamespace, card: SimpleNamespace):
        self.ctx, self.c, self.card = ctx, c, card

    # ----- helpers -----------------------------------------------------------------------
    def _nothing(self) -> dict:
        return {self.c.status: gr.skip()}

    def _access(self, request):
        return ui.require_role(self.ctx.repo, request, *ui.ALL_ROLES)

    @staticmethod
    def _item(rs: ReviewState, value) -> int | None:
        """The card's hidden item field ("4") as an item of the session, else None."""
        try:
            item = int(str(value or "").strip())
        except ValueError:
            return None
        return item if item in rs.items else None

    def card_outputs(self) -> list:
        k = self.card
        return [k.head, k.model, k.score, k.rationale, k.evidence, k.reasons, k.feedback, k.accept, k.confirm,
                k.draft_note, k.item]

    @staticmethod
    def _shown_draft(rs: ReviewState, item: int) -> dict:
        it = rs.items[item]
        return rs.pending.get(item) or (rs.conflicts[item]["yours"] if item in rs.conflicts else it["saved"])

    def _feedback(self, rs: ReviewState, item: int) -> str:
        it = rs.items[item]
        pending = item in rs.pending
        draft = self._shown_draft(rs, item)
        chk = review_checks.checks(draft, it["pred"], review.transcript_index(self.ctx.repo, rs.sid),
                                   saved=pending or it["state"] != "unreviewed", score_locked=rs.locked)
        return render.feedback_html(chk, it["pred"], draft, pending=pending)

    @staticmethod
    def _head(rs: ReviewState, item: int) -> str:
        """The card's head; ``data-item`` names the item the card shows and ``data-req`` the page's
        request it answers (the page's script reads both: review_assets.JS)."""
        return (f'<div class="care-card-top" data-item="{int(item)}" data-req="{render.esc(rs.req)}">'
                f'{rs.head(item)}</div>')

    def _card(self, rs: ReviewState, item: int | None) -> dict:
        """The head and checks of ``item`` after a save, if the card shows it (else nothing). Read
        under the page's lock: the head names the item and the request together (see :meth:`_show`).
        A reply made here can still reach the page after a later "show another item" reply (the
        server answers a page's events concurrently); the page's script finds such a head by its
        item, which differs from the card's item field, and asks again (``resync``)."""
        with rs.lock:
            if item is None or item != rs.current:
                return {}
            return {self.card.head: self._head(rs, item), self.card.feedback: self._feedback(rs, item)}

    def _show(self, rs: ReviewState, item: int, frame: bool = False, req: str | None = None) -> dict:
        """Every value of the card for ``item`` (which the card shows from now on). ``frame``: also
        the score's scale and label and the fields' enabled state (an open that changed them).
        ``req``: the page's request this answers (the item and the request change together)."""
        k = self.card
        with rs.lock:
            rs.current = item
            if req is not None:
                rs.req = req
            it, d = rs.items[item], self._shown_draft(rs, item)
            ed, locked = rs.editable, rs.locked
            notices = quality_notice.notices_for(self.ctx.repo, [it["pred"]])
            up = {k.head: self._head(rs, item), k.model: render.model_html(it["pred"], rs.scale, notices),
                  k.feedback: self._feedback(rs, item), k.draft_note: "", k.item: str(item),
                  k.accept: gr.update(interactive=ed and not locked and readable(it["pred"]), visible=not locked)}
            values = {k.score: d["score"], k.rationale: d["rationale"], k.evidence: evidence_text(d["evidence"]),
                      k.reasons: list(d["change_reasons"] or [])}
        if not frame:
            return up | values | {k.confirm: gr.skip()}
        choices = [(f"{n} {label}", int(n)) for n, label in rs.scale.items()]
        return up | {k.score: gr.update(value=values[k.score], interactive=ed and not locked, choices=choices,
                                        label="Client's self-reported score (fixed)" if locked else "Your score"),
                     k.rationale: gr.update(value=values[k.rationale], interactive=ed),
                     k.evidence: gr.update(value=values[k.evidence], interactive=ed),
                     k.reasons: gr.update(value=values[k.reasons], interactive=ed),
                     k.confirm: gr.update(visible=locked, interactive=ed)}

    def _frame(self, rs: ReviewState) -> dict:
        """Status line, summary, the item list and the conflict panel (the first open conflict)."""
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

    def _flush(self, rs: ReviewState, access, item, values) -> int:
        """Save the card's fields (``values``: score, rationale, evidence, reasons of ``item``) if they
        differ from what is saved, and every other item's unsaved rationale; a conflicted item waits."""
        item = self._item(rs, item)
        with rs.lock:
            todo = {i: {**rs.items[i]["saved"], "rationale": d["rationale"]} for i, d in rs.pending.items()}
        if item is not None:
            todo[item] = draft_of(values)
        n = 0
        for i, draft in sorted(todo.items()):
            with rs.lock:
                if i in rs.conflicts:
                    continue
                same = review_checks.same_content(rs.items[i]["saved"], review_checks.clean_draft(draft))
                if same:
                    rs.pending.pop(i, None)
            if not same:
                self._save(rs, access, i, draft)
                n += 1
        return n

    def _all_cards(self, rs: ReviewState) -> dict:
        """The frame and the shown item's head and checks (after saves of several items)."""
        return self._frame(rs) | self._card(rs, rs.current)

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

    def _open(self, access, session_id: str, before: ReviewState | None = None, item: int | None = None) -> dict:
        """Every update an open needs, in one reply: the session's frame and the card, showing
        ``item`` (else the first unreviewed item, else the first). ``before``: the page's previous
        state; what is the same on the page already (the score's scale and label, the buttons'
        states) is skipped, so the browser redraws only what changes."""
        view = review.open_view(self.ctx.repo, access, session_id, predictor=self.ctx.predictor)
        rs = ReviewState(view)
        latest = self.ctx.jobs.latest(rs.sid) if self.ctx.jobs else None
        rs.job_seen = latest["id"] if latest and latest["state"] not in ("queued", "running") else None
        ed = view["editable"]
        rs.message = ((f"Opened {rs.sid}: {view['reviewed']}/12 items reviewed, status {view['status']}."
                       if ed else f"Opened {rs.sid} read-only. {view['note']}"), "idle")
        c = self.c
        shown = {"scale": view["scale"], "editable": ed, "locked": view["curation"]["score_locked"]}
        kept = before is not None and getattr(before, "shown", None) == shown  # the card's frame stays as it is
        rs.shown = shown
        if item not in rs.items:
            item = next((i for i in sorted(rs.items) if rs.items[i]["state"] == "unreviewed"), min(rs.items))
        return self._frame(rs) | self._show(rs, item, frame=not kept) | {
            c.st: rs, c.last: rs.sid,
            c.head: render.session_header_html(view) + curation_modes.mode_html(view),
            c.transcript: render.transcript_html(view["session"]),
            c.job: render.job_html(latest) if latest else "",
            c.timer: gr.Timer(active=bool(latest) and latest["state"] in ("queued", "running")),
            c.save_btn: gr.update(interactive=ed), c.submit_btn: gr.update(interactive=ed),
            c.reopen_btn: gr.update(visible=bool(view.get("reopenable"))),
            c.accept_all: gr.update(interactive=ed)} | self._bulk_panel()  # anchored: it says why it fills nothing

    # ----- whole session -----------------------------------------------------------------
    @ui.guard
    def save_all(self, rs, item, score, rationale, evidence, reasons, request: gr.Request):
        access = self._access(request)
        if rs is None or not rs.editable:
            return self._nothing()
        if not self._flush(rs, access, item, (score, rationale, evidence, reasons)) and not rs.conflicts:
            todo = sorted(i for i, it in rs.items.items() if it["state"] == "unreviewed")
            rs.message = (f"Everything is saved ({now()})." + (
                f" Still to do: item(s) {', '.join(map(str, todo))}: confirm each shown rationale (button "
                "“Confirm this rationale” or key c) or edit it." if rs.locked and todo else ""), "ok")
        return self._all_cards(rs)

    @ui.guard
    def submit(self, rs, item, score, rationale, evidence, reasons, request: gr.Request):
        access = self._access(request)
        if rs is None or not rs.editable:
            return self._nothing()
        if rs.submit_asked != rs.sid:  # "Yes, submit" answers the question about this session
            rs.message = ("The session on screen changed since Submit asked; nothing was submitted. Press Submit "
                          "session again.", "error")
            return self._all_cards(rs)
        rs.submit_asked = None
        self._flush(rs, access, item, (score, rationale, evidence, reasons))
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
        """After a submit: show the session read-only (the card locked, Reopen offered)."""
        access = self._access(request)
        if rs is None or rs.editable:
            return self._nothing()
        up = self._open(access, rs.sid, item=rs.current)
        up[self.c.status] = render.status_html(*rs.message) if rs.message else gr.skip()
        return up

    @ui.guard
    def reopen(self, rs, request: gr.Request):
        access = self._access(request)
        if rs is None:
            raise CareError("Open a session first.", "Pick one in the queue.")
        res = reopen_session(self.ctx.repo, access, rs.sid)
        up = self._open(access, rs.sid, item=rs.current)
        up[self.c.status] = render.status_html(res["message"], "ok")
        return up
