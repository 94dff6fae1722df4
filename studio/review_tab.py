"""The Review tab: queue, transcript, the 12 item cards, autosave, conflicts, submit, predict.

Layout: the queue (an accordion that folds away when a session opens); then the transcript on
the left (its own scroll) and the cards on the right (their own scroll), grouped by the form's
dimensions (Goal, Task, Bond), each card showing the model's suggestion and the expert's editor.

Saving: a score, evidence or change-reason change saves the item at once; typing (or pasting) in
a rationale updates the checks and the diff live (no write) and is saved when the field loses
focus, on Ctrl+S / the Save button, and by the 2-second timer, so nothing typed is lost for long. Every
save names the version the card was loaded at; if someone saved the item in between, the
conflict panel shows their version and the unsaved one, and nothing is written until the expert
chooses ("Use theirs" / "Keep mine", after merging by hand if they like).

Per-browser state lives in a :class:`ReviewState` in ``gr.State`` (mutated under its own lock,
so overlapping events of one page cannot lose a version update); nothing is shared between
users except the repository and the predict queue.
"""
import threading
import time
from types import SimpleNamespace

import gradio as gr

from care_model.errors import CareError
from care_model.records import CHANGE_REASONS

from . import render, review, ui
from .access import active_model_version

QUEUE_HEADERS = ["Session", "Language", "Turns", "Status", "Reviewed", "Uncertainty", "Model", "Assigned"]


class ReviewState:
    """One page's open session: per item the prediction, the saved version and the unsaved edit."""

    def __init__(self, view: dict):
        self.lock = threading.RLock()
        self.sid = view["session"]["id"]
        self.slot, self.editable = view["slot"], view["editable"]
        self.session = SimpleNamespace(language=view["session"]["language"],
                                       ratings={r: {int(k): v for k, v in rs.items()}
                                                for r, rs in view["session"]["ratings"].items()})
        self.scale = view["scale"]
        self.dim_names = {d["key"]: d["name"] for d in view["dimensions"]}
        self.items = {it["item"]: {"pred": it["prediction"], "version": it["version"], "saved": dict(it["draft"]),
                                   "state": it["state"], "label": it["label"], "text": it["text"],
                                   "dimension": it["dimension"]} for it in view["items"]}
        self.pending: dict[int, dict] = {}
        self.conflicts: dict[int, dict] = {}
        self.job_seen: str | None = None

    def __deepcopy__(self, memo):  # gr.State may copy values; this one is shared by the page on purpose
        return self

    def head(self, item: int) -> str:
        it = self.items[item]
        return render.card_head_html({"item": item, "text": it["text"], "state": it["state"], "label": it["label"]},
                                     self.dim_names.get(it["dimension"], it["dimension"]))

    def summary(self, form) -> str:
        items = [{"item": i, "prediction": it["pred"],
                  "label": {"score": it["saved"]["score"]} if it["state"] != "unreviewed" else None}
                 for i, it in self.items.items()]
        return render.summary_html(review.summary(form, items, self.session))


def _draft(values) -> dict:
    score, rationale, evidence, reasons = values
    return {"score": score, "rationale": rationale or "", "evidence": list(evidence or []),
            "change_reasons": list(reasons or [])}


def _now() -> str:
    return time.strftime("%H:%M:%S")


class ReviewUI:
    """The tab's handlers. ``c`` holds the components; ``cards[item]`` those of one card."""

    def __init__(self, ctx, c: SimpleNamespace, cards: dict):
        self.ctx, self.c, self.cards = ctx, c, cards
        self.items = sorted(cards)

    # ----- helpers -----------------------------------------------------------------------
    def _nothing(self) -> dict:
        return {self.c.status: gr.skip()}

    def _access(self, request):
        return ui.require_role(self.ctx.repo, request, *ui.ALL_ROLES)

    def _values(self, values) -> dict[int, dict]:
        return {item: _draft(values[4 * k:4 * k + 4]) for k, item in enumerate(self.items)}

    def _feedback(self, rs: ReviewState, item: int, draft: dict, pending: bool) -> str:
        it = self.items_of(rs)[item]
        index = review.transcript_index(self.ctx.repo, rs.sid)
        chk = review.checks(draft, it["pred"], index, saved=pending or it["state"] != "unreviewed")
        return render.feedback_html(chk, it["pred"], draft, pending=pending)

    @staticmethod
    def items_of(rs):
        return rs.items

    def _conflict_updates(self, rs: ReviewState) -> dict:
        c = self.c
        if not rs.conflicts:
            return {c.use_theirs: gr.update(visible=False), c.keep_mine: gr.update(visible=False), c.conflict_html: ""}
        item, res = next(iter(rs.conflicts.items()))
        return {c.use_theirs: gr.update(visible=True), c.keep_mine: gr.update(visible=True),
                c.conflict_html: render.conflict_html(item, rs.items[item]["text"], res["current"], res["yours"], rs.scale)}

    def _conflict_status(self, rs: ReviewState, item: int) -> str:
        who = (rs.conflicts[item].get("current") or {}).get("updated_by", "someone")
        return render.status_html(f"Item {item} was changed by {who}: choose a version in the panel above. "
                                  "Nothing was overwritten.", "warn")

    def _save(self, rs: ReviewState, access, item: int, draft: dict, expected: int | None = None) -> dict:
        """Save one item; returns the component updates (card head and feedback, status, conflicts)."""
        with rs.lock:
            it = rs.items[item]
            version = it["version"] if expected is None else expected
        res = review.save_item(self.ctx.repo, access, rs.sid, item, draft, expected_version=version,
                               predictor=self.ctx.predictor)
        card, up = self.cards[item], {}
        with rs.lock:
            if res["status"] == "saved":
                lab = res["label"]
                it.update(version=res["version"], state=res["state"], label=lab,
                          saved={k: lab[k] for k in ("score", "rationale", "evidence", "change_reasons")})
                if expected is not None or (rs.pending.get(item) or {}).get("rationale") == draft["rationale"]:
                    rs.pending.pop(item, None)
                rs.conflicts.pop(item, None)
                up[card.head] = rs.head(item)
                up[card.feedback] = render.feedback_html(res["checks"], it["pred"], draft, pending=item in rs.pending)
                up[self.c.status] = render.status_html(
                    f"Saved item {item} (version {res['version']}) at {_now()}." if not res["unchanged"]
                    else f"Item {item} is saved (version {res['version']}).", "ok")
            else:
                rs.conflicts[item] = res
                up[self.c.status] = self._conflict_status(rs, item)
            up.update(self._conflict_updates(rs))
            up[self.c.summary] = rs.summary(self.ctx.form)
        return up

    def _flush(self, rs: ReviewState, access, values) -> tuple[dict, int]:
        """Save every card whose fields differ from what is saved (conflicted cards wait)."""
        up, n = {}, 0
        for item, draft in self._values(values).items():
            with rs.lock:
                it = rs.items[item]
                skip = item in rs.conflicts or review.same_content(it["saved"], review.clean_draft(draft))
                if skip and item in rs.conflicts:
                    rs.pending[item] = draft
            if not skip:
                up.update(self._save(rs, access, item, draft))
                n += 1
        return up, n

    # ----- queue -------------------------------------------------------------------------
    @ui.guard
    def queue(self, scope: str, search: str, order: str, request: gr.Request):
        access = self._access(request)
        q = review.queue_rows(self.ctx.repo, access, scope=scope or "mine", search=search or "", order=order or "id",
                              model_version=active_model_version(self.ctx.repo, self.ctx.predictor))
        n = q["counts"]
        counts = (f'<div class="care-muted"><b>{n["total"]}</b> sessions · {n["not started"]} not started · '
                  f'{n["in progress"]} in progress · {n["submitted"]} submitted · '
                  f'{n["items_reviewed"]}/{n["items_total"]} items reviewed</div>')
        rows = [[r["id"], r["language"], r["turns"], r["status"], f'{r["reviewed"]}/{r["items"]}',
                 "" if r["uncertainty"] is None else f'{r["uncertainty"]:.2f}', r["model_version"] or "",
                 r["assigned"] or ("—" if r["mode"] == "unassigned" else "")] for r in q["rows"]]
        return counts, {"data": rows, "headers": QUEUE_HEADERS}

    @ui.guard
    def on_load(self, last: str, request: gr.Request):
        access = self._access(request)
        scope = "all" if access.is_staff else "mine"
        counts, table = self.queue(scope, "", "id", request)
        return {self.c.scope: scope, self.c.counts: counts, self.c.table: table, self.c.open_id: last or ""}

    def pick(self, evt: gr.SelectData):
        row = evt.row_value or []
        return row[0] if row and row[0] else gr.skip()

    # ----- open --------------------------------------------------------------------------
    @ui.guard
    def open(self, session_id: str, rs, request: gr.Request):
        access = self._access(request)
        session_id = (session_id or "").strip()
        if not session_id:
            return self._nothing()
        return self._open(access, session_id)

    def restore(self, session_id: str, rs, request: gr.Request):
        """Page load: reopen the session this browser had open, silently skipping one the user
        may not see (another account on the same browser)."""
        try:
            return self.open(session_id, rs, request)
        except gr.Error:
            return self._nothing()

    def _open(self, access, session_id: str) -> dict:
        view = review.open_view(self.ctx.repo, access, session_id, predictor=self.ctx.predictor)
        rs = ReviewState(view)
        latest = self.ctx.jobs.latest(rs.sid) if self.ctx.jobs else None
        rs.job_seen = latest["id"] if latest and latest["state"] not in ("queued", "running") else None
        c, ed = self.c, view["editable"]
        turns = view["session"]["turns"]
        lang = view["session"]["language"]
        choices = [(f'{t["index"]} {render.speaker(t["speaker"], lang)}: '
                    f'{t["text"][:36]}{"…" if len(t["text"]) > 36 else ""}', t["index"]) for t in turns]
        up = {c.st: rs, c.last: rs.sid, c.queue_acc: gr.update(open=False), c.session_area: gr.update(visible=True),
              c.head: render.session_header_html(view), c.transcript: render.transcript_html(view["session"]),
              c.summary: rs.summary(self.ctx.form), c.job: render.job_html(latest) if latest else "",
              c.status: render.status_html(
                  f"Opened {rs.sid} at {_now()}: {view['reviewed']}/12 items reviewed, status {view['status']}."
                  if ed else f"Opened {rs.sid} read-only. {view['note']}", "idle"),
              c.save_btn: gr.update(interactive=ed), c.submit_btn: gr.update(interactive=ed)}
        up.update(self._conflict_updates(rs))
        for it in view["items"]:
            card, d = self.cards[it["item"]], it["draft"]
            up.update({card.head: rs.head(it["item"]), card.model: render.model_html(it["prediction"], view["scale"]),
                       card.score: gr.update(value=d["score"], interactive=ed),
                       card.rationale: gr.update(value=d["rationale"], interactive=ed),
                       card.evidence: gr.update(choices=choices, value=d["evidence"], interactive=ed),
                       card.reasons: gr.update(value=d["change_reasons"], interactive=ed),
                       card.feedback: render.feedback_html(it["checks"], it["prediction"], d),
                       card.accept: gr.update(interactive=ed and it["prediction"] is not None
                                              and it["prediction"].get("score") is not None)})
        return up

    # ----- edits -------------------------------------------------------------------------
    def card_save(self, item: int):
        @ui.guard
        def save(rs, score, rationale, evidence, reasons, request: gr.Request):
            access = self._access(request)
            if rs is None or not rs.editable:
                return self._nothing()
            draft = _draft((score, rationale, evidence, reasons))
            with rs.lock:
                if item in rs.conflicts:
                    rs.pending[item] = draft
                    return {self.c.status: self._conflict_status(rs, item)}
                if review.same_content(rs.items[item]["saved"], review.clean_draft(draft)):
                    rs.pending.pop(item, None)
                    return {self.cards[item].feedback: self._feedback(rs, item, draft, False)}
            return self._save(rs, access, item, draft)
        save.__name__ = f"save_item_{item}"
        return save

    def card_note(self, item: int):
        """A rationale changed (typing, pasting, or an update from the server): live checks and
        diff, and the edit is remembered for the autosave. Only the rationale is taken from the
        event: the other fields save on their own events, and reading them here could pick up
        values from before a session switch finished rendering."""
        @ui.guard
        def note(rs, rationale, request: gr.Request):
            self._access(request)
            if rs is None or not rs.editable:
                return self._nothing()
            with rs.lock:
                saved = rs.items[item]["saved"]
                draft = {**saved, "rationale": rationale or ""}
                pending = draft["rationale"] != (saved["rationale"] or "")
                if pending:
                    rs.pending[item] = draft
                else:
                    rs.pending.pop(item, None)
            return {self.cards[item].feedback: self._feedback(rs, item, draft, pending),
                    self.c.status: render.status_html("Unsaved changes (saving in a moment)…", "busy") if pending else gr.skip()}
        note.__name__ = f"note_item_{item}"
        return note

    def card_accept(self, item: int):
        @ui.guard
        def accept(rs, request: gr.Request):
            access = self._access(request)
            if rs is None or not rs.editable:
                return self._nothing()
            draft = review.accepted_draft(rs.items[item]["pred"])
            up = self._save(rs, access, item, draft)
            card = self.cards[item]
            up.update({card.score: draft["score"], card.rationale: draft["rationale"], card.evidence: draft["evidence"],
                       card.reasons: draft["change_reasons"]})
            return up
        accept.__name__ = f"accept_item_{item}"
        return accept

    @ui.guard
    def save_all(self, request: gr.Request, rs, *values):
        access = self._access(request)
        if rs is None or not rs.editable:
            return self._nothing()
        up, n = self._flush(rs, access, values)
        if not n and not rs.conflicts:
            up[self.c.status] = render.status_html(f"Everything is saved ({_now()}).", "ok")
        return up or self._nothing()

    @ui.guard
    def submit(self, request: gr.Request, rs, *values):
        access = self._access(request)
        if rs is None or not rs.editable:
            return self._nothing()
        up, _ = self._flush(rs, access, values)
        if rs.conflicts:
            up[self.c.status] = render.status_html("Resolve the conflicts first; nothing was submitted.", "error")
            return up
        with rs.lock:
            expected = {str(i): it["version"] for i, it in rs.items.items() if it["version"]}
        res = review.submit_session(self.ctx.repo, access, rs.sid, expected, predictor=self.ctx.predictor)
        if res["status"] == "submitted":
            with rs.lock:
                for i, it in rs.items.items():
                    it.update(state="submitted", version=res["versions"].get(str(i), it["version"]))
                    if it["label"]:
                        it["label"] = {**it["label"], "status": "submitted", "version": it["version"],
                                       "updated_by": access.username}
                    up[self.cards[i].head] = rs.head(i)
            up[self.c.status] = render.status_html(res["message"] + f" ({_now()})", "ok")
        else:
            up[self.c.status] = render.status_html(res["message"] + " Nothing was submitted.", "error")
        return up

    # ----- conflicts ---------------------------------------------------------------------
    @ui.guard
    def use_theirs(self, rs, request: gr.Request):
        self._access(request)
        if rs is None or not rs.conflicts:
            return self._nothing()
        with rs.lock:
            item, res = next(iter(rs.conflicts.items()))
            cur = res["current"] or {}
            draft = {k: cur.get(k, [] if k in ("evidence", "change_reasons") else None) for k in review.FIELDS}
            draft["rationale"] = draft["rationale"] or ""
            it = rs.items[item]
            it.update(version=cur.get("version", 0), saved=draft, label=cur or None,
                      state="unreviewed" if not cur else ("submitted" if cur.get("status") == "submitted" else "draft"))
            rs.conflicts.pop(item)
            rs.pending.pop(item, None)
            card = self.cards[item]
            up = {card.score: draft["score"], card.rationale: draft["rationale"], card.evidence: draft["evidence"],
                  card.reasons: draft["change_reasons"], card.head: rs.head(item),
                  card.feedback: self._feedback(rs, item, draft, False),
                  self.c.status: render.status_html(f"Item {item}: took their version.", "ok"),
                  self.c.summary: rs.summary(self.ctx.form)}
            up.update(self._conflict_updates(rs))
        return up

    @ui.guard
    def keep_mine(self, request: gr.Request, rs, *values):
        access = self._access(request)
        if rs is None or not rs.conflicts:
            return self._nothing()
        item, res = next(iter(rs.conflicts.items()))
        draft = self._values(values)[item]
        return self._save(rs, access, item, draft, expected=(res["current"] or {}).get("version", 0))

    # ----- timer: autosave and predict progress ------------------------------------------
    @ui.guard
    def tick(self, rs, request: gr.Request):
        if rs is None:
            return self._nothing()
        access = self._access(request)
        up = {}
        if rs.editable:
            with rs.lock:
                todo = {i: d for i, d in rs.pending.items() if i not in rs.conflicts}
            for item, draft in todo.items():
                up.update(self._save(rs, access, item, draft))
        if self.ctx.jobs is not None:
            job = self.ctx.jobs.latest(rs.sid)
            if job is not None:
                up[self.c.job] = render.job_html(job)
                if job["state"] == "done":
                    with rs.lock:
                        fresh, rs.job_seen = job["id"] != rs.job_seen, job["id"]
                    if fresh:
                        up.update(self._refresh_predictions(rs, access))
        return up or self._nothing()

    def _refresh_predictions(self, rs: ReviewState, access) -> dict:
        view = review.open_view(self.ctx.repo, access, rs.sid, predictor=self.ctx.predictor)
        up = {}
        with rs.lock:
            for it in view["items"]:
                i, card = it["item"], self.cards[it["item"]]
                mine = rs.items[i]
                old_pred = mine["pred"]
                mine["pred"] = it["prediction"]
                up[card.model] = render.model_html(it["prediction"], rs.scale)
                up[card.accept] = gr.update(interactive=rs.editable and bool(it["prediction"]))
                if mine["state"] == "unreviewed" and i not in rs.pending and mine["saved"] == review.draft_of(None, old_pred):
                    mine["saved"] = dict(it["draft"])
                    up.update({card.rationale: it["draft"]["rationale"], card.evidence: it["draft"]["evidence"],
                               card.feedback: render.feedback_html(it["checks"], it["prediction"], it["draft"])})
            up[self.c.summary] = rs.summary(self.ctx.form)
        up[self.c.status] = render.status_html(f"New predictions from {view['model_version']} loaded ({_now()}).", "ok")
        return up

    @ui.guard
    def predict(self, rs, request: gr.Request):
        access = self._access(request)
        if rs is None:
            raise CareError("Open a session first.", "Pick one in the queue.")
        if self.ctx.jobs is None:
            raise CareError("No model is loaded in this app.", "Start it with a model (the default is SmolLM2).")
        review.require_session(self.ctx.repo, access, rs.sid)
        job = self.ctx.jobs.submit(rs.sid, actor=access.username)
        return render.job_html(job)


def build_tab(ctx):
    form = ctx.form
    scale = form.scale_labels("en")
    c = SimpleNamespace()
    cards = {}
    with gr.Tab("Review", id="review", elem_id="care-review-tab"):
        c.st = gr.State(None)
        c.last = gr.BrowserState("", storage_key="care-last-session")
        with gr.Accordion("Queue", open=True, elem_id="care-queue") as c.queue_acc:
            with gr.Row():
                c.scope = gr.Radio([("Assigned to me", "mine"), ("All I can see", "all")], value="mine", label="Sessions",
                                   elem_id="care-scope", scale=2)
                c.search = gr.Textbox(label="Search (id, client, metadata)", elem_id="care-search", scale=3)
                c.order = gr.Dropdown([("Session id", "id"), ("Model uncertainty (most uncertain first)", "uncertainty")],
                                      value="id", label="Order", elem_id="care-order", scale=2)
                c.refresh = gr.Button("Refresh", elem_id="care-refresh", scale=1)
            c.counts = gr.HTML(js_on_load=None, elem_id="care-counts")
            c.table = gr.Dataframe(headers=QUEUE_HEADERS, interactive=False, elem_id="care-table", max_height=360,
                                   wrap=False)
            with gr.Row():
                c.open_id = gr.Textbox(label="Session id", elem_id="care-open-id", scale=4)
                c.open_btn = gr.Button("Open", variant="primary", elem_id="care-open", scale=1)
        with gr.Row(visible=False, elem_id="care-session", equal_height=False) as c.session_area:
            with gr.Column(scale=5, min_width=380):
                c.head = gr.HTML(js_on_load=None, elem_id="care-sess-head")
                c.transcript = gr.HTML(js_on_load=None, elem_id="care-transcript")
            with gr.Column(scale=7, min_width=480, elem_id="care-cards"):
                with gr.Row(equal_height=False, elem_id="care-actions"):
                    c.status = gr.HTML(render.status_html("No session open.", "idle"), js_on_load=None,
                                       elem_id="care-status")
                    c.save_btn = gr.Button("Save", elem_id="care-save", size="sm", scale=0, min_width=80)
                    c.submit_btn = gr.Button("Submit session", variant="primary", elem_id="care-submit", size="sm",
                                             scale=0, min_width=140)
                    c.predict_btn = gr.Button("Predict", elem_id="care-predict", size="sm", scale=0, min_width=90)
                c.job = gr.HTML(js_on_load=None, elem_id="care-job")
                c.conflict_html = gr.HTML(js_on_load=None, elem_id="care-conflict")
                with gr.Row():
                    c.use_theirs = gr.Button("Use theirs", elem_id="care-use-theirs", size="sm", visible=False)
                    c.keep_mine = gr.Button("Keep mine", variant="primary", elem_id="care-keep-mine", size="sm",
                                            visible=False)
                c.summary = gr.HTML(js_on_load=None, elem_id="care-summary")
                gr.HTML(ui.KEYS_HELP, js_on_load=None)
                for dim in form.dimensions:
                    gr.HTML(f'<div class="care-dim-title">{render.esc(dim.name("en"))}</div>', js_on_load=None)
                    for item in dim.item_ids:
                        with gr.Column(elem_id=f"card-{item}", elem_classes=["care-card"]):
                            card = SimpleNamespace(item=item)
                            card.head = gr.HTML(js_on_load=None)
                            card.model = gr.HTML(js_on_load=None)
                            with gr.Row(equal_height=False):
                                card.score = gr.Radio([(f"{k} {v}", k) for k, v in scale.items()], label="Your score",
                                                      elem_id=f"score-{item}", elem_classes=["care-score"], scale=4)
                                card.accept = gr.Button("Accept model", size="sm", elem_id=f"accept-{item}",
                                                        elem_classes=["care-accept"], scale=0, min_width=120)
                            card.rationale = gr.Textbox(label="Your rationale", lines=3, max_lines=14,
                                                        elem_id=f"rationale-{item}")
                            with gr.Row():
                                card.evidence = gr.Dropdown([], multiselect=True, label="Evidence turns",
                                                            elem_id=f"evidence-{item}", scale=3)
                                card.reasons = gr.CheckboxGroup([(v, k) for k, v in CHANGE_REASONS.items()],
                                                                label="Why changed", elem_id=f"reasons-{item}", scale=4)
                            card.feedback = gr.HTML(js_on_load=None, elem_id=f"feedback-{item}")
                        cards[item] = card
        c.timer = gr.Timer(2.0)

    h = ReviewUI(ctx, c, cards)
    fields = [comp for item in sorted(cards) for comp in (cards[item].score, cards[item].rationale,
                                                          cards[item].evidence, cards[item].reasons)]
    card_outs = [getattr(cd, f) for cd in cards.values()
                 for f in ("head", "model", "score", "rationale", "evidence", "reasons", "feedback", "accept")]
    frame = [c.status, c.summary, c.use_theirs, c.keep_mine, c.conflict_html, c.job]
    open_out = [c.st, c.last, c.queue_acc, c.session_area, c.head, c.transcript, c.save_btn, c.submit_btn] + frame + card_outs
    edit_out = frame + card_outs
    quiet = dict(api_visibility="private", show_progress="hidden")

    q_in = [c.scope, c.search, c.order]
    for trigger in (c.refresh.click, c.scope.input, c.order.input, c.search.submit):
        trigger(h.queue, q_in, [c.counts, c.table], **quiet)
    ctx.on_load(h.on_load, [c.last], [c.scope, c.counts, c.table, c.open_id], then=(h.restore, [c.open_id, c.st], open_out))
    c.open_btn.click(h.open, [c.open_id, c.st], open_out, api_visibility="private").then(None, js=ui.SCROLL_TOP_JS)
    c.open_id.submit(h.open, [c.open_id, c.st], open_out, api_visibility="private").then(None, js=ui.SCROLL_TOP_JS)
    c.table.select(h.pick, None, [c.open_id], **quiet).then(
        h.open, [c.open_id, c.st], open_out, api_visibility="private").then(None, js=ui.SCROLL_TOP_JS)
    for item, card in cards.items():
        inputs = [c.st, card.score, card.rationale, card.evidence, card.reasons]
        save = h.card_save(item)
        for trigger in (card.score.input, card.evidence.input, card.reasons.input, card.rationale.blur):
            trigger(save, inputs, edit_out, **quiet)
        # .change, not .input: Gradio's textbox sends "input" on key events only, so a paste or
        # dictation would not count; programmatic updates reach note() too and are recognised as saved.
        card.rationale.change(h.card_note(item), [c.st, card.rationale], [card.feedback, c.status],
                              trigger_mode="always_last", **quiet)
        card.accept.click(h.card_accept(item), [c.st], edit_out, **quiet)
    c.save_btn.click(h.save_all, [c.st] + fields, edit_out, **quiet)
    c.submit_btn.click(h.submit, [c.st] + fields, edit_out, api_visibility="private")
    c.use_theirs.click(h.use_theirs, [c.st], edit_out, **quiet)
    c.keep_mine.click(h.keep_mine, [c.st] + fields, edit_out, **quiet)
    c.predict_btn.click(h.predict, [c.st], [c.job], **quiet)
    c.timer.tick(h.tick, [c.st], edit_out, **quiet)
    return h
