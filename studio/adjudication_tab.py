"""The Adjudication tab (adjudicators and admins): double-coded sessions, expert agreement, final labels.

The queue lists sessions whose items were submitted by two or more experts (assign them in mode
"independent"), unresolved disagreements first. Opening one shows the transcript and, one item at
a time, the experts' labels side by side with the model's suggestion and the final label, if
any. "Choose" copies the picked label (an expert's or the model's) as the final label; "Save final
label" saves what is in the editor (start from a label and edit it, or write one). Final labels
go to the ``@adjudicated`` slot with who adjudicated in the audit trail, and the curated set and
the next retraining snapshot use them. "Expert agreement" shows quadratic-weighted kappa and
ICC(2,1) per item and dimension between experts and between each expert and the model.

Endpoints (``gr.api``): ``/adjudication_queue``, ``/adjudication_view``, ``/adjudicate``,
``/expert_agreement``. Pure functions: :mod:`studio.adjudication`.
"""
import threading
from types import SimpleNamespace

import gradio as gr

from care_model.core.errors import CareError

from . import adjudication as adj, validate
from . import render, ui
from .evaluation_render import CSS, KEYS_JS, chips_html, transcript_html
from .messages import time_token, when_html  # to the minute, in the user's locale
from .render import esc, provenance_text

STAFF = adj.STAFF
QUEUE_HEADERS = ["Session", "Coders", "Double-coded items", "Disagreements", "Open disagreements", "Adjudicated",
                 "To do"]


def _num(v, digits=2) -> str:
    return "–" if v is None else f"{float(v):.{digits}f}"


def _card(title: str, d: dict | None, scale: dict, cls: str = "") -> str:
    if not d:
        return (f'<div class="eval-out {cls}"><div class="eval-out-title">{esc(title)}</div>'
                '<span class="care-muted">none</span></div>')
    score = d.get("score")
    meta = (f' <span class="care-muted">v{int(d["version"])} by {esc(d.get("updated_by", ""))}, '
            f'{when_html(d["updated_at"]) if d.get("updated_at") else ""}</span>') if d.get("version") else ""
    if d.get("rationale_source"):  # where the rationale came from (care_model.core.provenance)
        meta += (f' <span class="care-muted adj-prov" data-provenance="{esc(d["rationale_source"])}">rationale: '
                 f'{esc(provenance_text(d["rationale_source"], d.get("rationale_edit_distance")))}</span>')
    return (f'<div class="eval-out {cls}" data-who="{esc(title)}"><div class="eval-out-title">{esc(title)} · score '
            f'{"–" if score is None else int(score)} <span '
            f'class="care-muted">{esc(scale.get(str(score), ""))}</span>{meta}</div>'
            f'<div class="care-rationale">{esc(d.get("rationale") or "")}</div>'
            f'<div class="care-muted">Evidence turns: {chips_html(d.get("evidence"), "adj") or "none"}</div></div>')


def item_html(view: dict, item: int) -> str:
    it = next(x for x in view["items"] if x["item"] == item)
    sc = view["scale"]
    cards = [_card(e["annotator"], e, sc) for e in it["experts"]] + [_card("model", it["model"], sc, "adj-model")]
    flag = ('<span class="care-badge st-unreviewed">experts disagree</span>' if it["disagree"]
            else '<span class="care-badge st-submitted">experts agree</span>' if it["ready"] else "")
    pending = (f'<div class="care-note">Still coding (not submitted): {esc(", ".join(it["pending"]))}</div>'
               if it["pending"] else "")
    final = _card("Final (adjudicated)", it["final"], sc, "adj-final") if it["final"] else \
        '<div class="care-muted">No final label yet.</div>'
    cols = max(1, len(cards))
    return (f'<div class="care-card-head"><span class="care-item-no">{item}</span><span class="care-item-text">'
            f'{esc(it["text"])}</span><span class="care-dim">{esc(it["dimension"])}</span>{flag}</div>{pending}'
            f'<div class="eval-pair" style="grid-template-columns:repeat({cols},1fr)">{"".join(cards)}</div>'
            f'<div id="adj-final-box">{final}</div>')


def item_choices(view: dict) -> list:
    out = []
    for it in view["items"]:
        mark = " ✓" if it["final"] else (" ≠" if it["disagree"] else "") if it["ready"] else " ·"
        out.append((f'{it["item"]}{mark}', it["item"]))
    return out


def agreement_html(rep: dict) -> str:
    if not rep["rows"]:
        return '<div class="care-muted">No session has been submitted by two or more experts yet.</div>'
    rows = "".join(
        f'<tr data-a="{esc(r["rater_a"])}" data-b="{esc(r["rater_b"])}" data-target="{esc(r["target"])}">'
        f'<td class="l">{esc(r["rater_a"])}</td><td class="l">{esc(r["rater_b"])}</td><td '
                   f'class="l">{esc(r["target"])}</td>'
        f'<td>{r["n"]}</td><td>{_num(r["exact"])}</td><td data-stat="qwk">{_num(r["qwk"], 3)}</td>'
        f'<td data-stat="icc">{_num(r["icc"], 3)}</td><td class="l '
                   f'care-muted">{esc(r["qwk_reason"] or r["icc_reason"])}</td></tr>'
        for r in rep["rows"] if r["n"] or r["target"] == "overall")
    alpha = " · ".join(f'{esc(k)} {_num(v["alpha"], 3)}' for k, v in rep["alpha"].items())
    return (f'<div class="care-muted">{len(rep["sessions"])} double-coded sessions; experts '
            f'{esc(", ".join(rep["experts"]))}. '
            f'{esc(rep["note"])}</div><div>Krippendorff\'s alpha (ordinal, experts): {alpha}</div>'
            '<table class="eval-table" id="adj-agree-table"><tr><th class="l">A</th><th class="l">B</th><th '
            'class="l">Target</th>'
            f'<th>n</th><th>Exact</th><th>QW kappa</th><th>ICC(2,1)</th><th class="l"></th></tr>{rows}</table>')


class AdjState:
    def __init__(self, view: dict):
        self.lock = threading.RLock()
        self.view = view
        self.item = next((x["item"] for x in view["items"] if x["ready"] and x["disagree"] and not x["final"]),
                         next((x["item"] for x in view["items"] if x["ready"]), 1))

    def __deepcopy__(self, memo):
        return self

    def it(self, item=None) -> dict:
        return next(x for x in self.view["items"] if x["item"] == (item or self.item))


class AdjUI:
    def __init__(self, ctx, c):
        self.ctx, self.c = ctx, c

    def _who(self, request):
        return ui.require_role(self.ctx.repo, request, *STAFF)

    def on_load(self, request: gr.Request):
        access = ui.require_role(self.ctx.repo, request, *ui.ALL_ROLES)
        if access.role not in STAFF:
            return gr.update(visible=False), gr.skip()
        return gr.update(visible=True), self._queue(access)

    def _queue(self, access):
        rows = [[r["session_id"], ", ".join(r["coders"]), r["double_coded"], r["disagreements"],
                 r["open_disagreements"],
                 r["adjudicated"], r["to_do"]] for r in adj.adjudication_queue(self.ctx.repo, access)]
        return {"data": rows, "headers": QUEUE_HEADERS}

    @ui.guard
    def refresh(self, request: gr.Request):
        return self._queue(self._who(request))

    def pick(self, evt: gr.SelectData):
        row = evt.row_value or []
        return row[0] if row and row[0] else gr.skip()

    def _item_updates(self, st: AdjState, message: str = "", kind: str = "idle") -> dict:
        c, it = self.c, st.it()
        base = it["final"] or (it["experts"][0] if it["experts"] else None) or {}
        sources = [(f'{e["annotator"]} ({e["score"]})', e["annotator"]) for e in it["experts"]]
        if it["model"] and it["model"].get("score") is not None:
            sources.append((f'model ({it["model"]["score"]})', "model"))
        return {c.st: st, c.item: gr.update(choices=item_choices(st.view), value=st.item),
                c.sides: item_html(st.view, st.item), c.source: gr.update(choices=sources, value=None),
                c.score: gr.update(value=base.get("score")), c.rationale: base.get("rationale", ""),
                c.evidence: ", ".join(str(e) for e in base.get("evidence") or []),
                c.comment: (it["final"] or {}).get("comment", ""),
                c.status: render.status_html(message or f"Item {st.item}: {len(it['experts'])} expert labels.", kind)}

    @ui.guard
    def open(self, session_id, request: gr.Request):
        access = self._who(request)
        view = adj.adjudication_view(self.ctx.repo, access, session_id, predictor=self.ctx.predictor)
        st = AdjState(view)
        up = self._item_updates(st, f"Opened {view['session']['id']} at {time_token()}.")
        up.update({self.c.area: gr.update(visible=True), self.c.transcript: transcript_html(view["session"], "adj")})
        return up

    @ui.guard
    def select_item(self, st, item, request: gr.Request):
        self._who(request)
        if st is None or item is None:
            return {self.c.status: gr.skip()}
        st.item = int(item)
        return self._item_updates(st)

    @ui.guard
    def next_disagreement(self, st, request: gr.Request):
        self._who(request)
        if st is None:
            return {self.c.status: gr.skip()}
        todo = [x["item"] for x in st.view["items"] if x["ready"] and not x["final"]]
        todo.sort(key=lambda i: (not st.it(i)["disagree"], (i - st.item - 1) % 12))
        if not todo:
            return {self.c.status: render.status_html("Every double-coded item of this session has a final label.",
                                                      "ok")}
        st.item = todo[0]
        return self._item_updates(st)

    @ui.guard
    def start_from(self, st, item, source, request: gr.Request):
        self._who(request)
        if st is None or not source or item != st.item:
            return {self.c.status: gr.skip()}
        it = st.it()
        d = it["model"] if source == "model" else next(e for e in it["experts"] if e["annotator"] == source)
        return {self.c.score: d["score"], self.c.rationale: d["rationale"],
                self.c.evidence: ", ".join(str(e) for e in d["evidence"]),
                self.c.status: render.status_html(f"Editor filled from {source}; edit it and save, or press Choose.",
                                                  "idle")}

    def _save(self, st, item, access, **kw) -> dict:
        with st.lock:
            if item is None:
                raise CareError("No item chosen.", "Pick an item.")
            st.item = int(item)  # the item the page showed when the button was pressed
            it = st.it()
            res = adj.adjudicate(self.ctx.repo, access, st.view["session"]["id"], st.item,
                                 expected_version=it["version"], predictor=self.ctx.predictor, **kw)
            st.view = adj.adjudication_view(self.ctx.repo, access, st.view["session"]["id"],
                                            predictor=self.ctx.predictor)
        if res["status"] == "conflict":
            cur = res["current"] or {}
            return self._item_updates(st, f"{cur.get('updated_by', 'Someone')} saved a final label for item {st.item} "
                                          "meanwhile; it is shown now. Nothing was overwritten.", "warn")
        up = self._item_updates(st, f"Final label of item {st.item} saved (version {res['version']}) at "
                                    f"{time_token()}.", "ok")
        up[self.c.table] = self._queue(access)
        return up

    @ui.guard
    def choose(self, st, item, source, comment, request: gr.Request):
        access = self._who(request)
        if st is None:
            raise CareError("Open a session first.", "Pick one in the queue.")
        if not source:
            raise CareError("No label chosen.", "Pick an expert's label or the model's under “Start from”.")
        return self._save(st, item, access, source=source, comment=comment or "")

    @ui.guard
    def write(self, st, item, source, score, rationale, evidence, comment, request: gr.Request):
        access = self._who(request)
        if st is None:
            raise CareError("Open a session first.", "Pick one in the queue.")
        from .admin import parse_ids

        try:
            turns = [int(x) for x in parse_ids(evidence or "")]
        except ValueError:
            raise CareError(f"Evidence {evidence!r} is not a list of turn numbers.",
                            "Write turn numbers like 3, 7.") from None
        return self._save(st, item, access, source=source or None, score=score, rationale=rationale or "",
                          evidence=turns,
                          comment=comment or "")

    @ui.guard
    def agreement(self, request: gr.Request):
        return agreement_html(adj.expert_agreement_report(self.ctx.repo, self._who(request),
                                                          predictor=self.ctx.predictor))


class AdjApi:
    def __init__(self, ctx):
        self.ctx = ctx

    def _who(self, request):
        return ui.require_role(self.ctx.repo, request, *STAFF)

    @ui.guard
    def adjudication_queue(self, request: gr.Request = None) -> list:
        """Sessions with items submitted by 2+ experts, unresolved disagreements first."""
        return adj.adjudication_queue(self.ctx.repo, self._who(request))

    @ui.guard
    def adjudication_view(self, session_id: str, request: gr.Request = None) -> dict:
        """Per item: the experts' labels, the model's suggestion, the final label and its version."""
        return adj.adjudication_view(self.ctx.repo, self._who(request), session_id, predictor=self.ctx.predictor)

    @ui.guard
    def adjudicate(self, session_id: str, item: int, source: str = "", score: int | None = None,
                   rationale: str | None = None, evidence: list[int] | None = None, comment: str = "",
                   expected_version: int = 0, request: gr.Request = None) -> dict:
        """Save the final label: copy ``source`` (an expert or "model") and/or the given fields."""
        return adj.adjudicate(self.ctx.repo, self._who(request), session_id, int(item), source=source or None,
                              score=score, rationale=rationale, evidence=evidence, comment=comment or "",
                              expected_version=int(expected_version or 0), predictor=self.ctx.predictor)

    @ui.guard
    def expert_agreement(self, request: gr.Request = None) -> dict:
        """Kappa and ICC(2,1) per item/dimension between experts and with the model; alpha across experts."""
        return adj.expert_agreement_report(self.ctx.repo, self._who(request), predictor=self.ctx.predictor)


ENDPOINTS = ("adjudication_queue", "adjudication_view", "adjudicate", "expert_agreement")


def build_tab(ctx):
    api = AdjApi(ctx)
    c = SimpleNamespace()
    quiet = dict(api_visibility="private", show_progress="hidden")
    with gr.Tab("Adjudication", id="adjudication", visible=False, elem_id="adj-tab") as tab:
        ctx.staff_only(tab)  # not in an annotator's page (studio.role_view)
        for name in ENDPOINTS:  # inside a Tab: gr.Tabs accepts only tabs as children
            validate.register(getattr(api, name), name)
        gr.HTML(CSS, js_on_load=KEYS_JS)
        c.st = gr.State(None)
        with gr.Accordion("Queue", open=True):
            with gr.Row():
                c.refresh = gr.Button("Refresh", size="sm", elem_id="adj-refresh", scale=0, min_width=90)
                c.agree_btn = gr.Button("Expert agreement", size="sm", elem_id="adj-agree-btn", scale=0, min_width=160)
            c.table = gr.Dataframe(headers=QUEUE_HEADERS, interactive=False, elem_id="adj-table", max_height=300)
            c.agree = gr.HTML(js_on_load=None, elem_id="adj-agreement")
            with gr.Row():
                c.sid = gr.Textbox(label="Session id", elem_id="adj-sid", scale=4)
                c.open_btn = gr.Button("Open", variant="primary", elem_id="adj-open", scale=1)
        with gr.Row(visible=False, equal_height=False, elem_id="adj-area") as c.area:
            with gr.Column(scale=5, min_width=360):
                c.transcript = gr.HTML(js_on_load=None, elem_id="adj-transcript", elem_classes=["eval-scroll"])
            with gr.Column(scale=7, min_width=480):
                with gr.Row():
                    c.item = gr.Radio([], label="Item (≠ disagree, ✓ adjudicated, · not double-coded)",
                                      elem_id="adj-item", scale=5)
                    c.next_btn = gr.Button("Next to adjudicate", size="sm", elem_id="adj-next", scale=0, min_width=150)
                c.sides = gr.HTML(js_on_load=None, elem_id="adj-sides")
                with gr.Row():
                    c.source = gr.Radio([], label="Start from", elem_id="adj-source", scale=4)
                    c.choose_btn = gr.Button("Choose this label", variant="primary", elem_id="adj-choose", scale=1)
                c.score = gr.Radio([(str(k), k) for k in range(1, 6)], label="Final score", elem_id="adj-score",
                                   elem_classes=["care-score"])
                c.rationale = gr.Textbox(label="Final rationale", lines=3, elem_id="adj-rationale")
                with gr.Row():
                    c.evidence = gr.Textbox(label="Evidence turns (e.g. 3, 7)", elem_id="adj-evidence", scale=2)
                    c.comment = gr.Textbox(label="Adjudication note (optional)", elem_id="adj-comment", scale=3)
                with gr.Row():
                    c.status = gr.HTML(render.status_html("Open a session from the queue.", "idle"), js_on_load=None,
                                       elem_id="adj-status")
                    c.save_btn = gr.Button("Save final label", variant="primary", elem_id="adj-save", scale=0,
                                           min_width=150)
    h = AdjUI(ctx, c)
    item_out = [c.st, c.item, c.sides, c.source, c.score, c.rationale, c.evidence, c.comment, c.status]
    ctx.on_load(h.on_load, [], [tab, c.table])
    c.refresh.click(h.refresh, [], [c.table], **quiet)
    c.agree_btn.click(h.agreement, [], [c.agree], **quiet)
    c.table.select(h.pick, None, [c.sid], **quiet).then(h.open, [c.sid], item_out + [c.area, c.transcript], **quiet)
    c.open_btn.click(h.open, [c.sid], item_out + [c.area, c.transcript], **quiet)
    c.sid.submit(h.open, [c.sid], item_out + [c.area, c.transcript], **quiet)
    c.item.input(h.select_item, [c.st, c.item], item_out, **quiet)
    c.next_btn.click(h.next_disagreement, [c.st], item_out, **quiet)
    c.source.input(h.start_from, [c.st, c.item, c.source], [c.score, c.rationale, c.evidence, c.status], **quiet)
    c.choose_btn.click(h.choose, [c.st, c.item, c.source, c.comment], item_out + [c.table], **quiet)
    c.save_btn.click(h.write, [c.st, c.item, c.source, c.score, c.rationale, c.evidence, c.comment],
                     item_out + [c.table],
                     **quiet)
    return h
