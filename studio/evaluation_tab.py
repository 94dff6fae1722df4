"""The Human evaluation tabs: raters rate rationales blind; admins create campaigns and read results.

* **Human evaluation** (everyone): pick a campaign you rate, then one task at a time: the
  transcript, the item and either one rationale to score on Faithfulness, Relevance and
  Informativeness (1-5, definitions and anchors on screen, optional comment) or two rationales
  side by side (A/B, positions randomised per rater) to compare. Every click is saved at once
  (versioned, audited); the comment on blur, by the 2-second timer and on Save & next. Keys:
  1-5 score the current criterion and move to the next, j/k or ↓/↑ move between criteria, A/B/T/X
  choose in a comparison, Enter or Ctrl+S save and go on, P previous. System names are never sent
  to the page before a comparison is submitted (then they are shown for that comparison only).
* **Campaigns** (admins only): create a campaign, follow the raters' progress, results with
  plots, export CSV/JSON, close or reopen.

Every handler checks the role on the server; the pure functions live in :mod:`studio.campaigns`
and :mod:`studio.campaign_results`.
Endpoints (``gr.api``): ``/eval_campaigns``, ``/eval_task``, ``/eval_save``, ``/eval_systems``,
``/eval_create``, ``/eval_results``, ``/eval_set_status``; the export button is ``/eval_export``.
"""
import threading
import time
from types import SimpleNamespace

import gradio as gr

from care_model.core.errors import CareError

from . import campaign_results as cr, validate
from . import campaigns as cp
from . import admin, render, ui
from .evaluation_render import (CSS, KEYS_HELP, KEYS_JS, anchors_html, head_html, output_html, plots,
                                results_html, reveal_html, transcript_html)

ADMIN = ("admin",)
CAMPAIGN_HEADERS = ["Campaign", "Id", "Mode", "Status", "Targets", "Systems", "Raters (done/total)", "Created"]


# ----------------------------------------------------------------------------- state
class EvalState:
    """One page's open task: the blind view and the version its rating was loaded at."""

    def __init__(self, view: dict):
        self.lock = threading.RLock()
        self.view = view
        self.pending_comment: str | None = None
        self.superseded = False  # the page moved on to another task: late events save but do not redraw

    def __deepcopy__(self, memo):  # shared by the page's events on purpose (see review_tab.ReviewState)
        return self

    @property
    def version(self) -> int:
        return self.view["rating"]["version"]


class EvalUI:
    def __init__(self, ctx, c: SimpleNamespace):
        self.ctx, self.c = ctx, c

    def _who(self, request, *roles):
        return ui.require_role(self.ctx.repo, request, *(roles or ui.ALL_ROLES))

    # ----- rater ------------------------------------------------------------------------
    def _choices(self, access):
        rows = [r for r in cp.list_campaigns(self.ctx.repo, access) if "total" in r]
        return [(f'{r["name"]} ({r["done"]}/{r["total"]} done{", closed" if r["status"] != "open" else ""})', r["id"])
                for r in rows]

    def on_load(self, request: gr.Request):
        access = self._who(request)
        choices = self._choices(access)
        return gr.update(choices=choices, value=choices[0][1] if choices else None), (
            "" if choices else render.status_html("You are not a rater in any evaluation campaign yet.", "idle"))

    def refresh_campaigns(self, current, request: gr.Request):
        """On visiting the tab: campaigns created since the page loaded, keeping the one chosen."""
        choices = self._choices(self._who(request))
        ids = [cid for _, cid in choices]
        return gr.update(choices=choices, value=current if current in ids else (ids[0] if ids else None)), (
            "" if choices else render.status_html("You are not a rater in any evaluation campaign yet.", "idle"))

    def _show(self, view: dict, message: str = "", kind: str = "idle", old: EvalState | None = None) -> dict:
        c, r = self.c, view["rating"]
        if old is not None:
            with old.lock:
                old.superseded = True
        rubric = view["kind"] == "rubric"
        up = {c.st: EvalState(view), c.key: view["task_id"], c.area: gr.update(visible=True), c.head: head_html(view),
              c.transcript: transcript_html(view["session"]), c.rubric: gr.update(visible=rubric),
              c.pairwise: gr.update(visible=not rubric), c.comment: gr.update(value=r["comment"]),
              c.prev_btn: gr.update(interactive=bool(view["prev_task"])),
              c.status: render.status_html(message or f"Task {view['position']} of {view['total']} ({time.strftime('%H:%M:%S')}).", kind)}
        if rubric:
            up[c.output] = output_html("The rationale", view["output"])
            for crit in cp.CRITERIA:
                up[c.crit[crit]] = gr.update(value=r["scores"].get(crit))
        else:
            up[c.pair] = f'<div class="eval-pair">{output_html("A", view["a"])}{output_html("B", view["b"])}</div>'
            up[c.choice] = gr.update(value=r["choice"], interactive=r["status"] != "submitted")
            up[c.reveal] = reveal_html(view)
        return up

    @ui.guard
    def start(self, campaign_id, st, request: gr.Request):
        access = self._who(request)
        if not campaign_id:
            raise CareError("No campaign chosen.", "Pick one of your campaigns.")
        view = cp.rater_task(self.ctx.repo, access, campaign_id)
        return self._show(view, old=st)

    def _save(self, st: EvalState, access, full: bool = False, **fields) -> dict:
        """Save on top of the version the page loaded. On a conflict (the same task saved from
        another window) nothing is written; ``full`` (moves) reload the task, small saves say so."""
        with st.lock:
            v = st.view
            res = cp.save_rating(self.ctx.repo, access, v["campaign_id"], v["task_id"], expected_version=st.version, **fields)
            if res["status"] == "conflict":
                if st.superseded or not full:
                    return {"conflict": {self.c.status: render.status_html(
                        "This task was saved in another window; nothing was overwritten. Press “Start / continue” "
                        "to load the saved version.", "warn")}}
                view = cp.rater_task(self.ctx.repo, access, v["campaign_id"], v["task_id"])
                return {"conflict": self._show(view, "This task was saved in another window; its saved version is "
                                                     "shown now. Nothing was overwritten.", "warn", old=st)}
            v["rating"], v["done"] = res["rating"], res["done"]
            if "reveal" in res:
                v["reveal"] = res["reveal"]
            if fields.get("comment") is not None and st.pending_comment == fields["comment"]:
                st.pending_comment = None
        return res

    def _saved_updates(self, st: EvalState, res: dict, what: str) -> dict:
        if "conflict" in res:
            return res["conflict"]
        if st.superseded:
            return {self.c.status: gr.skip()}
        msg = (f"{what} saved (version {res['version']}) at {time.strftime('%H:%M:%S')}." if not res["unchanged"]
               else f"{what} is saved.")
        return {self.c.status: render.status_html(msg, "ok")}

    # Events carry the task id the page showed (``key``): gr.State is read when an event is
    # processed, so a score clicked just before "Save & next" may be handled after the page moved
    # on; such a late event is dropped (the move itself saved every field of the task it left).
    @staticmethod
    def _current(st, key) -> bool:
        return st is not None and not st.superseded and key == st.view["task_id"]

    def crit_save(self, crit: str):
        @ui.guard
        def save(st, key, value, request: gr.Request):
            access = self._who(request)
            if not self._current(st, key) or value is None:
                return {self.c.status: gr.skip()}
            res = self._save(st, access, scores={crit: value})
            return self._saved_updates(st, res, cp.CRITERION_INFO[crit]["name"])
        save.__name__ = f"eval_score_{crit}"
        return save

    @ui.guard
    def choice_save(self, st, key, value, request: gr.Request):
        access = self._who(request)
        if not self._current(st, key) or not value or st.view["rating"]["status"] == "submitted":
            return {self.c.status: gr.skip()}
        return self._saved_updates(st, self._save(st, access, choice=value), "Choice")

    @ui.guard
    def comment_note(self, st, key, text, request: gr.Request):
        self._who(request)
        if not self._current(st, key):
            return {self.c.status: gr.skip(), self.c.timer: gr.skip()}
        with st.lock:
            st.pending_comment = None if (text or "") == st.view["rating"]["comment"] else (text or "")
        return {self.c.status: render.status_html("Unsaved comment (saving in a moment)…", "busy")
                if st.pending_comment is not None else gr.skip(), self.c.timer: gr.update(active=True)}

    @ui.guard
    def comment_save(self, st, key, text, request: gr.Request):
        access = self._who(request)
        if not self._current(st, key) or (text or "") == st.view["rating"]["comment"] or not self._editable(st):
            return {self.c.status: gr.skip()}
        return self._saved_updates(st, self._save(st, access, comment=text or ""), "Comment")

    @ui.guard
    def tick(self, st, request: gr.Request):
        """Autosave of a comment being typed; the timer runs only while one is pending."""
        if st is None or st.pending_comment is None or not self._editable(st):
            return {self.c.status: gr.skip(), self.c.timer: gr.update(active=False)}
        access = self._who(request)
        return {**self._saved_updates(st, self._save(st, access, comment=st.pending_comment), "Comment"),
                self.c.timer: gr.update(active=False)}

    @staticmethod
    def _editable(st) -> bool:
        v = st.view
        return v["campaign_status"] == "open" and not (v["kind"] == "pairwise" and v["rating"]["status"] == "submitted")

    @staticmethod
    def _fields(v, f, r, i, choice, comment) -> dict:
        fields = ({"scores": {"faithfulness": f, "relevance": r, "informativeness": i}} if v["kind"] == "rubric"
                  else {"choice": choice or None})
        return {**fields, "comment": comment or ""}

    @ui.guard
    def next(self, st, key, f, r, i, choice, comment, request: gr.Request):
        """Save & next: submit this task (a comparison: submit and reveal, then next on the second press)."""
        access = self._who(request)
        if not self._current(st, key):
            return {self.c.status: gr.skip()}
        v = st.view
        if self._editable(st):
            res = self._save(st, access, full=True, submit=True, **self._fields(v, f, r, i, choice, comment))
            if "conflict" in res:
                return res["conflict"]
            if v["kind"] == "pairwise":
                return self._show(v, "Submitted; the systems are revealed above.", "ok", old=st)
        nxt = v["next_task"]
        if nxt is None or v["done"] >= v["total"]:
            first_open = cp.rater_task(self.ctx.repo, access, v["campaign_id"])
            if first_open["rating"]["status"] == "submitted":
                return self._show(first_open, f"All {v['total']} tasks are done. Thank you!", "ok", old=st)
            nxt = first_open["task_id"] if nxt is None else nxt
        return self._show(cp.rater_task(self.ctx.repo, access, v["campaign_id"], nxt), "Saved.", "ok", old=st)

    @ui.guard
    def prev(self, st, key, f, r, i, choice, comment, request: gr.Request):
        """Previous task; what was entered here is saved first (not submitted)."""
        access = self._who(request)
        if not self._current(st, key) or not st.view["prev_task"]:
            return {self.c.status: gr.skip()}
        if self._editable(st):
            fields = self._fields(st.view, f, r, i, choice, comment)
            fields["scores"] = {k: x for k, x in (fields.get("scores") or {}).items() if x is not None} or None
            res = self._save(st, access, full=True, **fields)
            if "conflict" in res:
                return res["conflict"]
        return self._show(cp.rater_task(self.ctx.repo, access, st.view["campaign_id"], st.view["prev_task"]), old=st)

    # ----- admin ------------------------------------------------------------------------
    def _table(self, access):
        rows = [[r["name"], r["id"], r["mode"], r["status"], r["targets"], ", ".join(r["systems"]),
                 ", ".join(f'{u} {p["done"]}/{p["total"]}' for u, p in r["progress"].items()), r["created_at"][:16]]
                for r in cp.list_campaigns(self.ctx.repo, access)]
        return {"data": rows, "headers": CAMPAIGN_HEADERS}

    def admin_load(self, request: gr.Request):
        access = self._who(request)
        if access.role != "admin":
            return (gr.update(visible=False),) + (gr.skip(),) * 3
        return (gr.update(visible=True), *self.admin_refresh(None, request))

    def admin_refresh(self, current, request: gr.Request):
        """The campaign table and choices and the raters (on load, and on visiting the Campaigns
        tab: users added and campaigns created since the page loaded appear without a reload)."""
        access = self._who(request)
        if access.role != "admin":
            return (gr.skip(),) * 3
        ids = [(f'{r["name"]} ({r["id"]})', r["id"]) for r in cp.list_campaigns(self.ctx.repo, access)]
        keep = current if current in [i for _, i in ids] else (ids[0][1] if ids else None)
        users = sorted(u["username"] for u in admin.list_users(self.ctx.repo, access) if u["active"])
        return self._table(access), gr.update(choices=ids, value=keep), gr.update(choices=users)

    @ui.guard
    def find_systems(self, session_ids, request: gr.Request):
        access = self._who(request, *ADMIN)
        rows = cp.available_systems(self.ctx.repo, access, session_ids)
        note = " · ".join(f'{r["system"]}: {r["targets"]} items' for r in rows) or "No system has rationales there."
        return gr.update(choices=[r["system"] for r in rows]), render.status_html("Systems with rationales: " + note, "idle")

    @ui.guard
    def create(self, name, systems, mode, n, raters, overlap, sampling, strata, sessions, items, seed, self_ok,
               request: gr.Request):
        access = self._who(request, *ADMIN)
        doc = cp.create_campaign(self.ctx.repo, access, name=name, systems=systems, mode=mode, n_targets=int(n or 0),
                                 raters=raters, overlap=int(overlap or 1), sampling=sampling, strata=strata,
                                 session_ids=sessions, items=items, seed=int(seed or 0), allow_self_rating=bool(self_ok))
        ids = [(f'{r["name"]} ({r["id"]})', r["id"]) for r in cp.list_campaigns(self.ctx.repo, access)]
        own = sorted({r for names in doc["self_rating"].values() for r in names})
        warn = (f' Warning (recorded): {", ".join(own)} rate rationales they wrote on {len(doc["self_rating"])} '
                f'target(s).' if own else "")
        return (render.status_html(f'Created campaign {doc["name"]} ({doc["id"]}): {len(doc["targets"])} targets, '
                                   f'{len(doc["tasks"])} tasks for {", ".join(doc["raters"])}.{warn}',
                                   "warn" if own else "ok"),
                self._table(access), gr.update(choices=ids, value=doc["id"]))

    @ui.guard
    def results(self, campaign_id, request: gr.Request):
        access = self._who(request, *ADMIN)
        if not campaign_id:
            raise CareError("No campaign chosen.", "Pick a campaign.")
        res = cr.campaign_results(self.ctx.repo, campaign_id, access)
        means, wins = plots(res)
        return (results_html(res), gr.update(value=means, visible=not means.empty),
                gr.update(value=wins, visible=not wins.empty), self._table(access))

    @ui.guard
    def export(self, campaign_id, request: gr.Request):
        access = self._who(request, *ADMIN)
        if not campaign_id:
            raise CareError("No campaign chosen.", "Pick a campaign.")
        return gr.update(value=list(cr.export_campaign(self.ctx.repo, access, campaign_id).values()), visible=True)

    def set_status(self, status: str):
        @ui.guard
        def handler(campaign_id, request: gr.Request):
            access = self._who(request, *ADMIN)
            s = cp.set_campaign_status(self.ctx.repo, access, campaign_id, status)
            return render.status_html(f'Campaign {s["name"]} is now {s["status"]}.', "ok"), self._table(access)
        handler.__name__ = f"eval_{status}"
        return handler


class EvalApi:
    """JSON endpoints (``gr.api``); the same pure functions as the tabs."""

    def __init__(self, ctx):
        self.ctx = ctx

    def _who(self, request, *roles):
        return ui.require_role(self.ctx.repo, request, *(roles or ui.ALL_ROLES))

    @ui.guard
    def eval_campaigns(self, request: gr.Request = None) -> list:
        """Campaigns I rate (with my progress); admins: all, with systems and everyone's progress."""
        return cp.list_campaigns(self.ctx.repo, self._who(request))

    @ui.guard
    def eval_task(self, campaign_id: str, task_id: str = "", request: gr.Request = None) -> dict:
        """One of my tasks (default: the next one not submitted), blind: no system names."""
        return cp.rater_task(self.ctx.repo, self._who(request), campaign_id, task_id or None)

    @ui.guard
    def eval_save(self, campaign_id: str, task_id: str, scores: dict | None = None, comment: str | None = None,
                  choice: str | None = None, submit: bool = False, expected_version: int = 0,
                  request: gr.Request = None) -> dict:
        """Save (and with ``submit`` finish) my rating of a task on top of ``expected_version``."""
        return cp.save_rating(self.ctx.repo, self._who(request), campaign_id, task_id, scores=scores, comment=comment,
                              choice=choice or None, submit=bool(submit), expected_version=int(expected_version or 0))

    @ui.guard
    def eval_systems(self, session_ids: list[str] | None = None, request: gr.Request = None) -> list:
        """Admin: systems that can be rated on the sessions (all if none given), with coverage."""
        return cp.available_systems(self.ctx.repo, self._who(request, *ADMIN), session_ids)

    @ui.guard
    def eval_create(self, name: str, systems: list[str], raters: list[str], mode: str = "both", n_targets: int = 20,
                    overlap: int = 2, sampling: str = "random", strata: str = "dimension",
                    session_ids: list[str] | None = None, items: list[int] | None = None, seed: int = 0,
                    allow_self_rating: bool = False, request: gr.Request = None) -> dict:
        """Admin: create a campaign; returns its id and size. Raters never rate a curated rationale
        they wrote unless ``allow_self_rating`` (then listed in ``self_rating``)."""
        doc = cp.create_campaign(self.ctx.repo, self._who(request, *ADMIN), name=name, systems=systems, mode=mode,
                                 n_targets=int(n_targets), raters=raters, overlap=int(overlap), sampling=sampling,
                                 strata=strata, session_ids=session_ids, items=[str(i) for i in items or []], seed=int(seed),
                                 allow_self_rating=allow_self_rating)
        return {"id": doc["id"], "targets": len(doc["targets"]), "tasks": len(doc["tasks"]),
                "self_rating": doc["self_rating"],
                "per_rater": {r: len(t) for r, t in doc["assignments"].items()}}

    @ui.guard
    def eval_results(self, campaign_id: str, request: gr.Request = None) -> dict:
        """Admin: rubric means and pass rates, win rates, Bradley-Terry, alpha and ICC(2,k)."""
        return cr.campaign_results(self.ctx.repo, campaign_id, self._who(request, *ADMIN))

    @ui.guard
    def eval_set_status(self, campaign_id: str, status: str, request: gr.Request = None) -> dict:
        """Admin: "open" or "closed" (closed campaigns take no more ratings)."""
        return cp.set_campaign_status(self.ctx.repo, self._who(request, *ADMIN), campaign_id, status)


ENDPOINTS = ("eval_campaigns", "eval_task", "eval_save", "eval_systems", "eval_create", "eval_results", "eval_set_status")


def build_tab(ctx):
    api = EvalApi(ctx)
    c = SimpleNamespace(crit={})
    quiet = dict(api_visibility="private", show_progress="hidden")
    with gr.Tab("Human evaluation", id="evaluation", elem_id="eval-tab") as rater_tab:
        for name in ENDPOINTS:  # inside a Tab: gr.Tabs accepts only tabs as children
            validate.register(getattr(api, name), name)
        gr.HTML(CSS, js_on_load=KEYS_JS, elem_id="eval-keys")
        c.st = gr.State(None)
        c.key = gr.Textbox(visible=False, elem_id="eval-key")  # the task the page shows (see EvalUI._current)
        with gr.Row():
            c.campaign = gr.Dropdown([], label="Campaign", elem_id="eval-campaign", scale=4)
            c.start = gr.Button("Start / continue", variant="primary", elem_id="eval-start", scale=1)
        c.note = gr.HTML(js_on_load=None, elem_id="eval-note")
        with gr.Row(visible=False, elem_id="eval-task-area", equal_height=False) as c.area:
            with gr.Column(scale=5, min_width=360):
                c.transcript = gr.HTML(js_on_load=None, elem_id="eval-transcript", elem_classes=["eval-scroll"])
            with gr.Column(scale=6, min_width=460):
                c.head = gr.HTML(js_on_load=None, elem_id="eval-head")
                with gr.Column(visible=False, elem_id="eval-rubric") as c.rubric:
                    c.output = gr.HTML(js_on_load=None, elem_id="eval-output")
                    for crit in cp.CRITERIA:
                        info = cp.CRITERION_INFO[crit]
                        c.crit[crit] = gr.Radio([(str(k), k) for k in range(1, 6)], label=info["name"],
                                                info=info["definition"], elem_id=f"eval-crit-{crit}",
                                                elem_classes=["eval-crit", "care-score"])
                        gr.HTML(anchors_html(crit), js_on_load=None)
                with gr.Column(visible=False, elem_id="eval-pairwise") as c.pairwise:
                    c.pair = gr.HTML(js_on_load=None, elem_id="eval-pair")
                    c.choice = gr.Radio([(f"{label} ({key})", v) for (v, label), key in
                                         zip(cp.CHOICE_NAMES.items(), ("A", "B", "T", "X"))],
                                        label="Which rationale is better for this item?", elem_id="eval-choice")
                    c.reveal = gr.HTML(js_on_load=None, elem_id="eval-reveal")
                c.comment = gr.Textbox(label="Comment (optional)", lines=2, elem_id="eval-comment")
                with gr.Row():
                    c.status = gr.HTML(render.status_html("Pick a campaign and press Start.", "idle"), js_on_load=None,
                                       elem_id="eval-status")
                    c.prev_btn = gr.Button("Previous", elem_id="eval-prev", size="sm", scale=0, min_width=90)
                    c.next_btn = gr.Button("Save & next", variant="primary", elem_id="eval-next", size="sm", scale=0,
                                           min_width=120)
                gr.HTML(KEYS_HELP, js_on_load=None)
        c.timer = gr.Timer(2.0, active=False)

    with gr.Tab("Campaigns", id="campaigns", visible=False, elem_id="eval-admin-tab") as admin_tab:
        a = SimpleNamespace()
        a.msg = gr.HTML(js_on_load=None, elem_id="eval-admin-msg")
        with gr.Accordion("New campaign", open=True, elem_id="eval-new"):
            with gr.Row():
                a.name = gr.Textbox(label="Name", elem_id="eval-name", scale=2)
                a.mode = gr.Radio([("Rubric", "rubric"), ("Pairwise", "pairwise"), ("Both", "both")], value="both",
                                  label="Mode", elem_id="eval-mode", scale=2)
                a.n = gr.Number(20, label="Targets (session × item)", precision=0, elem_id="eval-n", scale=1)
                a.seed = gr.Number(0, label="Seed", precision=0, elem_id="eval-seed", scale=1)
                a.self_ok = gr.Checkbox(False, label="Let raters rate rationales they wrote (recorded)",
                                        elem_id="eval-self-ok", scale=1)
            with gr.Row():
                a.sessions = gr.Textbox(label="Sessions (blank: all)", elem_id="eval-sessions", scale=3)
                a.items = gr.Textbox(label="Items (blank: all 12)", elem_id="eval-items", scale=1)
                a.sampling = gr.Radio([("Random", "random"), ("Stratified", "stratified")], value="random",
                                      label="Sampling", elem_id="eval-sampling", scale=1)
                a.strata = gr.Dropdown([("Dimension", "dimension"), ("Model score band", "score_band"),
                                        ("Dimension × score band", "dimension+score_band")], value="dimension",
                                       label="Strata", elem_id="eval-strata", scale=1)
            with gr.Row():
                a.systems = gr.CheckboxGroup([], label="Systems (model versions; expert = curated labels)",
                                             elem_id="eval-systems", scale=3)
                a.find = gr.Button("Find systems for these sessions", size="sm", elem_id="eval-find", scale=1)
            with gr.Row():
                a.raters = gr.CheckboxGroup([], label="Raters", elem_id="eval-raters", scale=3)
                a.overlap = gr.Number(2, label="Raters per target (overlap)", precision=0, elem_id="eval-overlap", scale=1)
            a.create = gr.Button("Create campaign", variant="primary", elem_id="eval-create")
        a.table = gr.Dataframe(headers=CAMPAIGN_HEADERS, interactive=False, elem_id="eval-campaigns", wrap=True)
        with gr.Row():
            a.res_id = gr.Dropdown([], label="Campaign", elem_id="eval-res-campaign", scale=3, allow_custom_value=True)
            a.show = gr.Button("Show results", variant="primary", elem_id="eval-show", scale=1)
            a.export = gr.Button("Export CSV + JSON", elem_id="eval-export", scale=1)
            a.close = gr.Button("Close", elem_id="eval-close", scale=0, min_width=80)
            a.reopen = gr.Button("Reopen", elem_id="eval-reopen", scale=0, min_width=100)
        a.files = gr.File(file_count="multiple", label="Export", elem_id="eval-export-files", visible=False)
        a.results = gr.HTML(js_on_load=None, elem_id="eval-results")
        with gr.Row():
            a.plot_means = gr.BarPlot(x="bar", y="mean", color="system", y_lim=[0, 5], title="Mean rating per criterion",
                                      x_title="criterion · system", y_title="mean (1-5)", x_label_angle=-30,
                                      sort=None, visible=False, elem_id="eval-plot-means")
            a.plot_wins = gr.BarPlot(x="pair", y="win rate of the first", y_lim=[0, 1], title="Pairwise win rate",
                                     visible=False, elem_id="eval-plot-wins")

    h = EvalUI(ctx, c)
    task_out = [c.st, c.key, c.area, c.head, c.transcript, c.rubric, c.pairwise, c.comment, c.prev_btn, c.status, c.output,
                c.pair, c.choice, c.reveal] + list(c.crit.values())
    edit_out = [c.status]  # small saves touch only the status line: their replies may arrive after a move
    ctx.on_load(h.on_load, [], [c.campaign, c.note])
    rater_tab.select(h.refresh_campaigns, [c.campaign], [c.campaign, c.note], **quiet)  # new campaigns, no reload
    reset = "() => { if (window.__careEvalReset) window.__careEvalReset(); }"
    c.start.click(h.start, [c.campaign, c.st], task_out, **quiet).then(None, js=reset)
    for crit, radio in c.crit.items():
        radio.input(h.crit_save(crit), [c.st, c.key, radio], edit_out, **quiet)
    c.choice.input(h.choice_save, [c.st, c.key, c.choice], edit_out, **quiet)
    c.comment.input(h.comment_note, [c.st, c.key, c.comment], [c.status, c.timer], trigger_mode="always_last", **quiet)
    c.comment.blur(h.comment_save, [c.st, c.key, c.comment], edit_out, **quiet)
    c.timer.tick(h.tick, [c.st], [c.status, c.timer], **quiet)
    form_in = [c.st, c.key] + list(c.crit.values()) + [c.choice, c.comment]
    c.next_btn.click(h.next, form_in, task_out, **quiet).then(None, js=reset)
    c.prev_btn.click(h.prev, form_in, task_out, **quiet).then(None, js=reset)

    ctx.on_load(h.admin_load, [], [admin_tab, a.table, a.res_id, a.raters])
    admin_tab.select(h.find_systems, [a.sessions], [a.systems, a.msg], **quiet)  # reads predictions: on visit, not on load
    admin_tab.select(h.admin_refresh, [a.res_id], [a.table, a.res_id, a.raters], **quiet)  # new users and campaigns
    a.find.click(h.find_systems, [a.sessions], [a.systems, a.msg], **quiet)
    a.create.click(h.create, [a.name, a.systems, a.mode, a.n, a.raters, a.overlap, a.sampling, a.strata, a.sessions,
                              a.items, a.seed, a.self_ok], [a.msg, a.table, a.res_id], **quiet)
    a.show.click(h.results, [a.res_id], [a.results, a.plot_means, a.plot_wins, a.table], **quiet)
    a.export.click(h.export, [a.res_id], [a.files], api_name="eval_export")
    a.close.click(h.set_status("closed"), [a.res_id], [a.msg, a.table], **quiet)
    a.reopen.click(h.set_status("open"), [a.res_id], [a.msg, a.table], **quiet)
    return h
