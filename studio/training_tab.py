"""The Models & training tab: start a retraining run, watch it, cancel it, compare, promote, roll back.

Shown only to admins (a page-load hook) and every handler checks the role again on the server.
The run is a separate process (:mod:`studio.training`); this tab only reads its progress file
every 2 seconds (a ``gr.Timer``), so the rest of the app stays responsive and a page reload
simply reattaches. JSON endpoints for scripts: ``/training_status``, ``/start_training``,
``/cancel_training``, ``/resume_training``, ``/promote_version``, ``/rollback_version``. The
cross-validation and report sections: :mod:`studio.report_tab`.
"""
from __future__ import annotations

import gradio as gr

from care_model.stats.compare import MIN_SESSIONS, too_small_message
from care_model.inference.model_files import SMOLLM2_ID
from care_model.stats.review_quality import review_quality, review_quality_markdown
from care_model.text.snapshot import describe_learned_from, learned_from

from . import quality_notice, render, ui, validate
from .access import active_model_version
from .metric_labels import metric_label
from .report_tab import build_section, loss_html
from .training import TrainingManager

VERSION_HEADERS = ["Version", "Status", "Run", "Data hash", "Learned from", "Val. loss before", "Val. loss after",
                   "Created"]
HEADLINE_ORDER = ["experts.exact", "experts.within_one", "experts.qwk", "experts.mae", "goal.pearson", "task.pearson",
                  "bond.pearson", "goal.mse", "task.mse", "bond.mse", "goal.pearson_expected", "task.pearson_expected",
                  "bond.pearson_expected", "goal.mse_expected", "task.mse_expected", "bond.mse_expected"]


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _duration(s) -> str:
    if s is None:
        return "–"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def review_quality_md(repo) -> str:
    """The review-quality table of the Models tab, with what it counts."""
    preds = (p for sid in repo.session_ids() for p in repo.predictions(sid, history=True))
    stats = review_quality(repo.labels(), preds)
    return ("Share of reviewed items whose rationale the expert saved as the model's text unchanged (one at a time "
            "or through Accept all), edited lightly (edit distance under half the model text), or rewrote; mean "
            "characters changed per item. Labels saved before this was recorded count as unknown.\n\n"
            + review_quality_markdown(stats))


def readiness_html(st: dict, notice: str = "") -> str:
    """Readiness to retrain, under the one-line quality notice of the model that makes suggestions."""
    r = st["readiness"]
    kind = "ok" if r["ready"] else "idle"
    since = f" since {render.esc(r['since'][:19].replace('T', ' '))}" if r.get("since") else ""
    return (quality_notice.notice_html(notice, "care-quality-notice care-models-notice")
            + f'<div class="care-train-ready" data-ready="{str(r["ready"]).lower()}">'
            + render.status_html(f"{r['new_sessions']} newly curated session(s){since}; retraining needs "
                                 f"{r['min_new_sessions']}. Active version: "
                                 f"{st['active'] or 'the default base model'}.",
                                 kind) + "</div>")


def learned_from_html(info: dict | None) -> str:
    """What a run or version learns from (score sources, rationales); flagged when it is not the
    paper's target (client self-reports with curated rationales)."""
    info = info or {}
    paper = info.get("score_sources") == ["client_self_report"] and info.get("rationales") == "curated"
    kind = "care-muted" if paper else "care-warn"
    return (f'<div class="{kind}" id="care-train-sources" '
            f'data-sources="{render.esc(",".join(info.get("score_sources") or []))}"'
            f' data-rationales="{render.esc(info.get("rationales") or "")}">Learns from: '
            f'{render.esc(describe_learned_from(info))}.</div>')


def progress_html(st: dict) -> str:
    run, p = st.get("run"), st.get("progress")
    if run is None:
        return '<div class="care-muted">No retraining run yet.</div>'
    status = run.get("status", "")
    head = f'Run <b>{render.esc(run["id"])}</b> ({render.esc(status)}; data {render.esc(run.get("data_hash") or "")})'
    head = learned_from_html(run.get("learned_from") or learned_from(run.get("snapshot"))) + head
    if not p:
        return f'<div id="care-train-state" data-status="{render.esc(status)}">{head}: preparing…</div>'
    pct = int(round(100 * p["step"] / p["total_steps"])) if p["total_steps"] else 0
    bits = [f"step {p['step']}/{p['total_steps']}", f"loss {_fmt(p['loss'], 4)}", f"lr {_fmt(p['lr'], 6)}",
            f"elapsed {_duration(p['elapsed_s'])}", f"ETA {_duration(p['eta_s'])}"]
    extra = ""
    if status == "registered":
        extra = f' Candidate <b>{render.esc(run.get("version_id") or "")}</b> registered.'
    elif status in ("failed",):
        extra = f' <span class="care-error">{render.esc(run.get("error") or p.get("message") or "")}</span>'
    elif p.get("message") and status in ("running", "prepared"):
        extra = f" {render.esc(p['message'])}"
    return (f'<div id="care-train-state" data-status="{render.esc(status)}" data-step="{p["step"]}">{head}: '
            f'{render.esc(", ".join(bits))}.{extra}'
            f'<div class="care-jobbar"><span style="width:{pct}%"></span></div></div>')


def versions_value(st: dict) -> dict:
    rows = []
    for d in reversed(st["versions"]):
        m = d.get("metrics") or {}
        rows.append([d["id"], d["status"], d.get("run_id") or "", d.get("data_hash") or "",
                     describe_learned_from(d.get("learned_from")) if d.get("kind") == "lora" else "",
                     _fmt(m.get("validation_loss_before"), 4), _fmt(m.get("validation_loss_after"), 4),
                     (d.get("created_at") or "")[:19].replace("T", " ")])
    return {"data": rows or [[""] * len(VERSION_HEADERS)], "headers": VERSION_HEADERS}


def compare_html(st: dict, version_id: str | None = None) -> str:
    """The chosen (default: newest) candidate's metrics next to the version it was compared with."""
    cands = [d for d in st["versions"] if d.get("kind") == "lora"]
    doc = next((d for d in cands if d["id"] == version_id), None) or next(
        (d for d in reversed(cands) if d["status"] == "candidate"), None) or (cands[-1] if cands else None)
    if doc is None:
        return '<div class="care-muted">No candidate to compare yet.</div>'
    ev = doc.get("evaluation") or {}
    vers = ev.get("versions") or {}
    cand, base = (vers.get("candidate") or {}).get("headline", {}), (vers.get("baseline") or {}).get("headline", {})
    base_id = (vers.get("baseline") or {}).get("version_id") or doc.get("parent") or "–"
    m = doc.get("metrics") or {}
    rows = [("validation_loss", m.get("validation_loss_after"), m.get("validation_loss_before"))]
    rows += [(k, cand.get(k), base.get(k)) for k in HEADLINE_ORDER if k in cand or k in base]
    def better(key):
        return "lower" if any(w in key for w in ("mse", "mae", "loss")) else "higher"

    body = "".join(f"<tr><td>{metric_label(k)}</td><td>{better(k)}</td><td>{_fmt(c)}</td><td>{_fmt(b)}</td></tr>"
                   for k, c, b in rows)
    counts = (ev.get("comparison") or {}).get("counts") or {}
    verdict = ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "no comparison"
    base_doc = next((d for d in st["versions"] if d["id"] == base_id), {})
    same = base_id == st.get("active") or (st.get("active") is None and base_doc.get("kind") == "base")
    note = "" if same else (
        f'<div class="care-muted">Compared with {render.esc(base_id)}, the version active when the run started; '
        f'the active version is now {render.esc(st.get("active") or "the base model")}.</div>')
    n = len(ev.get("sessions") or [])
    if n < MIN_SESSIONS:
        note += (f'<div class="care-warn" id="care-compare-small">{render.esc(too_small_message(n))} '
                 "Show the report on this candidate (below) for the differences and their intervals.</div>")
    return (f'<div id="care-compare" data-version="{render.esc(doc["id"])}"><b>{render.esc(doc["id"])}</b> '
            f'({render.esc(doc["status"])}) vs <b>{render.esc(base_id)}</b> on {n} held-out session(s)'
            f'{" (scores only)" if ev.get("scores_only") else ""}. Metrics: {render.esc(verdict)}.'
            '<table class="care-summary"><tr><th>Metric</th><th>Better</th><th>Candidate</th><th>Compared '
            'with</th></tr>'
            f'{body}</table>'
            f'{note}</div>')


class TrainingUI:
    def __init__(self, ctx, manager: TrainingManager):
        self.ctx, self.mgr = ctx, manager

    def _admin(self, request):
        return ui.require_role(self.ctx.repo, request, "admin")

    def _notice(self) -> str:
        """The quality notice of the version that makes suggestions (the active one, else the default)."""
        version = active_model_version(self.ctx.repo, self.ctx.predictor) or SMOLLM2_ID
        from care_model.training.versions import VERSIONS

        line = quality_notice.notice_for(self.ctx.repo, version)
        calib = ((self.ctx.repo.collection(VERSIONS).get(version) or {}).get("calibration") or {})
        said = (f"Calibration of {version}: {calib['choice']} ({calib.get('reason') or 'by the fixed rule'})."
                if calib.get("choice") else f"Calibration of {version}: none (no held-out measurement recorded).")
        return (f"Suggestions of {version}: {line} " if line else "") + said

    def _view(self, st, version_id=None):
        running = st["running"]
        choices = [d["id"] for d in reversed(st["versions"])]
        resumable = not running and (st.get("run") or {}).get("status") in ("cancelled", "failed")
        return (readiness_html(st, self._notice()), gr.update(interactive=st["readiness"]["ready"] and not running),
                gr.update(interactive=running), gr.update(interactive=resumable), progress_html(st), loss_html(st),
                st["log"], compare_html(st, version_id), versions_value(st), gr.update(choices=choices))

    def review_quality(self, request: gr.Request):
        """Per model version: acceptance, edit and rewrite rates and mean edit size of the experts'
        rationales (care_model.stats.review_quality)."""
        self._admin(request)
        return review_quality_md(self.ctx.repo)

    def on_load(self, request: gr.Request):
        access = ui.require_role(self.ctx.repo, request, *ui.ALL_ROLES)
        if access.role != "admin":
            return (gr.update(visible=False), gr.update(active=False), gr.skip(), gr.skip(), gr.skip())
        st = self.mgr.status()
        return (gr.update(visible=True), gr.update(active=True), st["settings"]["min_new_sessions"],
                gr.update(choices=self.mgr.recipes(), value=st["settings"]["recipe"]),
                readiness_html(st, self._notice()))

    def refresh(self, version_id: str | None, request: gr.Request):
        access = ui.require_role(self.ctx.repo, request, *ui.ALL_ROLES)
        if access.role != "admin":
            return tuple(gr.skip() for _ in range(10))
        return self._view(self.mgr.status(), version_id)

    @ui.guard
    def start(self, recipe: str, overrides: str, version_id, request: gr.Request):
        run = self.mgr.start(self._admin(request), recipe, overrides)
        return (render.status_html(f"Started run {run['id']} (data {run['data_hash']}).", "ok"),
                *self._view(self.mgr.status(), version_id))

    @ui.guard
    def resume(self, version_id, request: gr.Request):
        run = self.mgr.resume(self._admin(request))
        return (render.status_html(f"Resuming run {run['id']} from its last checkpoint.", "ok"),
                *self._view(self.mgr.status(), version_id))

    @ui.guard
    def cancel(self, version_id, request: gr.Request):
        run = self.mgr.cancel(self._admin(request))
        return (render.status_html(f"Cancelling run {run['id']}: it stops after the current step.", "busy"),
                *self._view(self.mgr.status(), version_id))

    @ui.guard
    def save_threshold(self, n, request: gr.Request):
        s = self.mgr.set_settings(self._admin(request), min_new_sessions=int(n or 0))
        return render.status_html(f"Retraining now needs {s['min_new_sessions']} newly curated session(s).", "ok")

    @ui.guard
    def promote(self, version_id: str, reason: str, request: gr.Request):
        if not version_id:
            raise ui.ui_error(ValueError("Choose a version first."))
        doc = self.mgr.promote(self._admin(request), version_id, reason)
        return (render.status_html(f"{doc['id']} is now the active version.", "ok"), *self._view(self.mgr.status(),
                                                                                                 version_id))

    @ui.guard
    def rollback(self, version_id: str, reason: str, request: gr.Request):
        doc = self.mgr.rollback(self._admin(request), version_id or None, reason)
        return (render.status_html(f"Rolled back: {doc['id']} is the active version again.", "ok"),
                *self._view(self.mgr.status(), version_id))

    @ui.guard
    def reject(self, version_id: str, reason: str, request: gr.Request):
        doc = self.mgr.reject(self._admin(request), version_id, reason)
        return (render.status_html(f"{doc['id']} was rejected.", "ok"), *self._view(self.mgr.status(), version_id))

    # ---- JSON endpoints
    @ui.guard
    def api_status(self, request: gr.Request = None) -> dict:
        """The current (or last) run with its progress and log tail, readiness, versions, active version."""
        self._admin(request)
        return self.mgr.status()

    @ui.guard
    def api_start(self, recipe: str = "", overrides: str = "", request: gr.Request = None) -> dict:
        """Snapshot the curated set and start a run (``overrides``: ``key: value`` lines)."""
        return self.mgr.start(self._admin(request), recipe or None, overrides)

    @ui.guard
    def api_cancel(self, request: gr.Request = None) -> dict:
        """Cancel the running run (it saves a checkpoint and stops)."""
        return self.mgr.cancel(self._admin(request))

    @ui.guard
    def api_resume(self, run_id: str = "", request: gr.Request = None) -> dict:
        """Continue the last (or the named) cancelled or failed run from its last checkpoint."""
        return self.mgr.resume(self._admin(request), run_id or None)

    @ui.guard
    def api_promote(self, version_id: str, reason: str = "", request: gr.Request = None) -> dict:
        """Make a candidate the active version."""
        return self.mgr.promote(self._admin(request), version_id, reason)

    @ui.guard
    def api_rollback(self, version_id: str = "", reason: str = "", request: gr.Request = None) -> dict:
        """Make an earlier version active again (empty: the previous active version)."""
        return self.mgr.rollback(self._admin(request), version_id or None, reason)


def build_tab(ctx):
    mgr = TrainingManager(ctx.repo)
    ctx.components["training"] = mgr
    h = TrainingUI(ctx, mgr)
    quiet = dict(api_visibility="private", show_progress="hidden")
    with gr.Tab("Models & training", id="training", visible=False, elem_id="care-training-tab") as tab:
        for name, fn in (("training_status", h.api_status), ("start_training", h.api_start),
                         ("cancel_training", h.api_cancel), ("resume_training", h.api_resume),
                         ("promote_version", h.api_promote),
                         ("rollback_version", h.api_rollback)):
            validate.register(fn, name)
        msg = gr.HTML(js_on_load=None, elem_id="care-train-msg")
        with gr.Row():
            with gr.Column(scale=2):
                gr.Markdown("### Retraining (LoRA on the curated labels)")
                ready = gr.HTML(js_on_load=None, elem_id="care-train-ready-box")
                recipe = gr.Dropdown(mgr.recipes(), label="Recipe", elem_id="care-train-recipe")
                overrides = gr.Textbox(label="Overrides (one 'key: value' per line, e.g. max_steps: 20)", lines=3,
                                       elem_id="care-train-overrides")
                with gr.Row():
                    start = gr.Button("Start retraining", variant="primary", interactive=False,
                                      elem_id="care-train-start")
                    cancel = gr.Button("Cancel run", variant="stop", interactive=False, elem_id="care-train-cancel")
                    resume = gr.Button("Resume run", interactive=False, elem_id="care-train-resume")
                with gr.Row():
                    threshold = gr.Number(label="Newly curated sessions needed to retrain", precision=0,
                                          elem_id="care-train-threshold")
                    save_t = gr.Button("Save threshold", elem_id="care-train-save-threshold")
            with gr.Column(scale=3):
                progress = gr.HTML(js_on_load=None, elem_id="care-train-progress")
                plot = gr.HTML(js_on_load=None, elem_id="care-train-plot")  # a PNG with numeric axes
                log = gr.Textbox(label="Log", lines=8, max_lines=8, interactive=False, autoscroll=True,
                                 elem_id="care-train-log")
        gr.Markdown("### Model versions")
        compare = gr.HTML(js_on_load=None, elem_id="care-train-compare")
        with gr.Accordion("How experts treated each version's suggestions", open=True):
            quality = gr.Markdown(elem_id="care-review-quality")  # studio.training_tab.review_quality_md
            quality_btn = gr.Button("Refresh", size="sm", elem_id="care-review-quality-refresh")
        versions = gr.Dataframe(headers=VERSION_HEADERS, interactive=False, elem_id="care-versions")
        with gr.Row():
            version = gr.Dropdown([], label="Version", allow_custom_value=True, elem_id="care-version-pick")
            reason = gr.Textbox(label="Reason (recorded in the audit trail)", elem_id="care-version-reason")
        with gr.Row():
            promote = gr.Button("Promote to active", variant="primary", elem_id="care-promote")
            rollback = gr.Button("Roll back to this version", elem_id="care-rollback")
            reject = gr.Button("Reject candidate", elem_id="care-reject")
        timer = gr.Timer(2.0, active=False)
        build_section(ctx, mgr, recipe, overrides, msg)
    view = [ready, start, cancel, resume, progress, plot, log, compare, versions, version]
    timer.tick(h.refresh, [version], view, **quiet)
    version.change(h.refresh, [version], view, **quiet)
    start.click(h.start, [recipe, overrides, version], [msg, *view], **quiet)
    cancel.click(h.cancel, [version], [msg, *view], **quiet)
    resume.click(h.resume, [version], [msg, *view], **quiet)
    save_t.click(h.save_threshold, [threshold], [msg], **quiet).then(h.refresh, [version], view, **quiet)
    for button, fn in ((promote, h.promote), (rollback, h.rollback), (reject, h.reject)):
        dep = button.click(fn, [version, reason], [msg, *view], **quiet)
        if "topbar" in ctx.components:  # the header names the active model: refresh it
            dep.then(ctx.components["topbar"], [], [ctx.components["user_html"]], **quiet)
    ctx.on_load(h.on_load, [], [tab, timer, threshold, recipe, ready])
    quality_btn.click(h.review_quality, [], [quality], **quiet)
    tab.select(h.review_quality, [], [quality], **quiet)
    return h
