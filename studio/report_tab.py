"""The Models & training tab's cross-validation and report sections (built inside that tab).

* **Cross-validation**: start a K-fold run with the chosen recipe (a separate process,
  :mod:`studio.crossval_runs`), watch it fold by fold (bar, stage, the fold's training step and
  loss, log tail), cancel it, resume a cancelled or failed run (finished folds are kept). Its
  folds' adapters are never model versions.
* **Report**: the same report as ``care report`` (:func:`care_model.jobs.report.build_report`)
  for the active version, a candidate or a finished cross-validation run: Table 2, the four plots,
  candidate vs active with intervals and verdicts. Held-out sessions only unless the admin ticks
  "include training sessions" (the titles then say so).

Also the loss curve of the retraining section (:func:`loss_html`): a PNG with numeric axes.
JSON endpoints: ``/crossval_status``, ``/start_crossval``, ``/cancel_crossval``, ``/resume_crossval``, ``/report_html``.
"""
from __future__ import annotations

import base64
import functools

import gradio as gr

from . import render, ui, validate
from .crossval_runs import CrossvalManager


@functools.lru_cache(maxsize=8)
def _loss_png(training: tuple, validation: tuple) -> str:
    from care_model.report.plots import loss_plot

    png = loss_plot({"training": list(training), "validation": list(validation)}, "Training loss")
    return base64.b64encode(png).decode()


def loss_html(st: dict) -> str:
    """The retraining run's loss curve (training and validation) as an embedded PNG, numeric axes."""
    p = st.get("progress") or {}
    tr = tuple((int(s), float(v)) for s, v in p.get("losses") or [])
    va = tuple((int(s), float(v)) for s, v in p.get("validation_losses") or [])
    if not tr and not va:
        return '<div class="care-muted" id="care-train-loss-empty">No training steps yet.</div>'
    return (f'<img id="care-train-loss-img" alt="training loss by step" style="max-width:100%" '
            f'src="data:image/png;base64,{_loss_png(tr, va)}">')


def crossval_html(st: dict) -> str:
    run, p = st.get("run"), st.get("progress")
    if run is None:
        return '<div class="care-muted">No cross-validation run yet.</div>'
    status = run.get("status", "")
    head = (f'Cross-validation <b>{render.esc(run["id"])}</b> ({render.esc(status)}; {run.get("k")} folds by client, '
            f'{run.get("n_sessions")} sessions, {run.get("n_clients")} clients, '
            f'{run.get("sessions_without_client", 0)} without a client id)')
    if not p:
        return f'<div id="care-cv-state" data-status="{render.esc(status)}">{head}: preparing…</div>'
    pct = int(round(100 * p["fraction"]))
    bits = [f"{p['folds_done']}/{p['k'] or run.get('k')} folds done"]
    if p["fold"] is not None and p["status"] == "running":
        bits.append(f"fold {p['fold'] + 1}: {p['stage']}")
        if p["stage"] == "training" and p["total_steps"]:
            loss = "–" if p["loss"] is None else f"{p['loss']:.4f}"
            bits.append(f"step {p['step']}/{p['total_steps']}, loss {loss}")
    if status == "failed" or p["status"] == "error":
        bits.append(f'error: {run.get("error") or p["message"]}')
    return (f'<div id="care-cv-state" data-status="{render.esc(status)}" data-folds="{p["folds_done"]}">{head}: '
            f'{render.esc("; ".join(bits))}.<div class="care-jobbar"><span style="width:{pct}%"></span></div></div>')


class ReportUI:
    def __init__(self, ctx, training, crossval: CrossvalManager):
        self.ctx, self.training, self.cv = ctx, training, crossval

    def _admin(self, request):
        return ui.require_role(self.ctx.repo, request, "admin")

    def _choices(self):
        from care_model.jobs.report import load_store
        from care_model.report.data import subject_choices

        return subject_choices(load_store(self.ctx.repo))

    @staticmethod
    def _resumable(st: dict) -> bool:
        return not st["running"] and bool(st["run"]) and st["run"].get("status") in ("cancelled", "failed")

    def _buttons(self, st: dict):
        """(start, cancel, resume) interactivity for a status."""
        return (gr.update(interactive=not st["running"]), gr.update(interactive=st["running"]),
                gr.update(interactive=self._resumable(st)))

    def refresh(self, request: gr.Request):
        access = ui.require_role(self.ctx.repo, request, *ui.ALL_ROLES)
        if access.role != "admin":
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        st = self.cv.status()
        return (crossval_html(st), st["log"], *self._buttons(st))

    def on_load(self, request: gr.Request):
        access = ui.require_role(self.ctx.repo, request, *ui.ALL_ROLES)
        if access.role != "admin":
            return gr.update(active=False), gr.skip()
        return gr.update(active=True), gr.update(choices=self._choices(), value="active")

    @ui.guard
    def start(self, recipe: str, overrides: str, folds, request: gr.Request):
        access = self._admin(request)
        run = self.cv.start(access, self.training.recipe_path(recipe or self.training.settings()["recipe"]),
                            int(folds or 5), overrides)
        st = self.cv.status()
        return (render.status_html(f"Started cross-validation {run['id']} ({run['k']} folds).", "ok"),
                crossval_html(st), st["log"], *self._buttons(st))

    @ui.guard
    def cancel(self, request: gr.Request):
        run = self.cv.cancel(self._admin(request))
        st = self.cv.status()
        return (render.status_html(f"Cancelling cross-validation {run['id']}.", "busy"), crossval_html(st), st["log"],
                gr.update(), gr.update(), gr.update(interactive=False))

    @ui.guard
    def resume(self, request: gr.Request):
        run = self.cv.resume(self._admin(request))
        st = self.cv.status()
        return (render.status_html(f"Resumed cross-validation {run['id']}: finished folds are kept.", "ok"),
                crossval_html(st), st["log"], *self._buttons(st))

    @ui.guard
    def show_report(self, subject: str, include_training: bool, request: gr.Request):
        from care_model.report.page import CSS
        from care_model.jobs.report import build_report

        self._admin(request)
        body, _pngs, _meta = build_report(self.ctx.repo, subject or "active", include_training=bool(include_training))
        return f"<style>{CSS}</style>{body}", gr.update(choices=self._choices())

    # ---- JSON endpoints
    @ui.guard
    def api_status(self, request: gr.Request = None) -> dict:
        """The current (or last) cross-validation run, its progress and log tail."""
        self._admin(request)
        return self.cv.status()

    @ui.guard
    def api_start(self, recipe: str = "", folds: int = 5, overrides: str = "", request: gr.Request = None) -> dict:
        """Freeze the curated set, split it into ``folds`` folds by client and start the run."""
        access = self._admin(request)
        return self.cv.start(access, self.training.recipe_path(recipe or self.training.settings()["recipe"]),
                             int(folds), overrides)

    @ui.guard
    def api_cancel(self, request: gr.Request = None) -> dict:
        """Cancel the running cross-validation (the current fold saves a checkpoint; resume with --run-dir)."""
        return self.cv.cancel(self._admin(request))

    @ui.guard
    def api_resume(self, cv_id: str = "", request: gr.Request = None) -> dict:
        """Resume a cancelled or failed cross-validation run (the last one, or ``cv_id``)."""
        return self.cv.resume(self._admin(request), cv_id or None)

    @ui.guard
    def api_report(self, subject: str = "active", include_training_sessions: bool = False,
                   request: gr.Request = None) -> str:
        """The report's HTML (self-contained) for 'active', a version id or a cross-validation run id."""
        from care_model.jobs.report import build_report
        from care_model.report.page import page

        self._admin(request)
        return page(build_report(self.ctx.repo, subject or "active",
                                 include_training=bool(include_training_sessions))[0])


def build_section(ctx, training, recipe, overrides, msg):
    """Inside the Models & training tab: cross-validation controls and the report viewer."""
    mgr = CrossvalManager(ctx.repo)
    ctx.components["crossval"] = mgr
    h = ReportUI(ctx, training, mgr)
    quiet = dict(api_visibility="private", show_progress="hidden")
    for name, fn in (("crossval_status", h.api_status), ("start_crossval", h.api_start),
                     ("cancel_crossval", h.api_cancel), ("resume_crossval", h.api_resume),
                     ("report_html", h.api_report)):
        validate.register(fn, name)
    gr.Markdown("### Cross-validation with retraining (K folds by client; uses the recipe above)")
    with gr.Row():
        folds = gr.Number(value=5, precision=0, minimum=2, label="Folds", elem_id="care-cv-folds", scale=1)
        start = gr.Button("Start cross-validation", elem_id="care-cv-start", scale=1)
        cancel = gr.Button("Cancel cross-validation", variant="stop", interactive=False, elem_id="care-cv-cancel",
                           scale=1)
        resume = gr.Button("Resume cross-validation", interactive=False, elem_id="care-cv-resume", scale=1)
    state = gr.HTML(js_on_load=None, elem_id="care-cv-progress")
    log = gr.Textbox(label="Cross-validation log", lines=4, max_lines=4, interactive=False, autoscroll=True,
                     elem_id="care-cv-log")
    gr.Markdown("### Report")
    with gr.Row():
        subject = gr.Dropdown([], label="Report on", elem_id="care-report-subject", scale=3)
        include = gr.Checkbox(label="Include training sessions (contaminated)", value=False,
                              elem_id="care-report-include", scale=1)
        show = gr.Button("Show report", variant="primary", elem_id="care-report-show", scale=1)
    report = gr.HTML(js_on_load=None, elem_id="care-report-box")
    timer = gr.Timer(2.0, active=False)
    timer.tick(h.refresh, [], [state, log, start, cancel, resume], **quiet)
    start.click(h.start, [recipe, overrides, folds], [msg, state, log, start, cancel, resume], **quiet)
    cancel.click(h.cancel, [], [msg, state, log, start, cancel, resume], **quiet)
    resume.click(h.resume, [], [msg, state, log, start, cancel, resume], **quiet)
    show.click(h.show_report, [subject, include], [report, subject], show_progress="minimal",
               api_visibility="private")
    ctx.on_load(h.on_load, [], [timer, subject])
    return h
