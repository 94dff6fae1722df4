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

from care_model.core.errors import CareError
from care_model.inference.model_files import SMOLLM2_ID

from . import quality_notice, render, ui, validate
from .access import active_model_version
from .report_tab import POLL_RUNNING_S, build_section, inline, loss_html, poll_timer
from .training import TrainingManager
from .training_render import (HEADLINE_ORDER, VERSION_HEADERS, compare_html, progress_html, promote_verdict,  # noqa: F401
                              readiness_html, review_quality_md, unused_labels_html, versions_value)



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
                st["log"], compare_html(st, version_id), versions_value(st), gr.update(choices=choices),
                poll_timer(running))

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
        return (gr.update(visible=True), poll_timer(st["running"]), st["settings"]["min_new_sessions"],
                gr.update(choices=self.mgr.recipes(), value=st["settings"]["recipe"]),
                readiness_html(st, self._notice()))

    def refresh(self, version_id: str | None, request: gr.Request):
        access = ui.require_role(self.ctx.repo, request, *ui.ALL_ROLES)
        if access.role != "admin":
            return tuple(gr.skip() for _ in range(11))
        return self._view(self.mgr.status(), version_id)

    @inline(0)
    def unused(self, recipe: str, overrides: str, request: gr.Request):
        """The sentence before retraining: curated labels the chosen recipe will not learn."""
        access = ui.require_role(self.ctx.repo, request, *ui.ALL_ROLES)
        if access.role != "admin":
            return gr.skip()
        return unused_labels_html(self.mgr.unused_labels(recipe or None, overrides))

    @inline(3)
    def ask_promote(self, version_id: str, request: gr.Request):
        """Promote asks first: the confirmation shows the comparison's verdict."""
        self._admin(request)
        if not version_id:
            raise CareError("Choose a version first.", "Pick one in the Version list.")
        text, kind = promote_verdict(self.mgr.status(), version_id)
        html = (f'<div id="care-promote-verdict" data-version="{render.esc(version_id)}" data-kind="{kind}">'
                f'<b>Promote {render.esc(version_id)} to active?</b> It will make the suggestions every reviewer '
                f'sees.{render.status_html(text, kind)}</div>')
        return "", gr.update(visible=True), html, version_id

    def cancel_promote(self, version_id: str, request: gr.Request):
        self._admin(request)
        return (render.status_html(f"Not promoted: {version_id or 'no version'} stays as it is.", "idle"),
                gr.update(visible=False))

    @inline(12)
    def promote(self, version_id: str, reason: str, request: gr.Request):
        if not version_id:
            raise CareError("Choose a version first.", "Pick one in the Version list.")
        doc = self.mgr.promote(self._admin(request), version_id, reason)
        return (render.status_html(f"{doc['id']} is now the active version.", "ok"), gr.update(visible=False),
                *self._view(self.mgr.status(), version_id))

    @inline(11)
    def start(self, recipe: str, overrides: str, version_id, request: gr.Request):
        run = self.mgr.start(self._admin(request), recipe, overrides)
        return (render.status_html(f"Started run {run['id']} (data {run['data_hash']}).", "ok"),
                *self._view(self.mgr.status(), version_id))

    @inline(11)
    def resume(self, version_id, request: gr.Request):
        run = self.mgr.resume(self._admin(request))
        return (render.status_html(f"Resuming run {run['id']} from its last checkpoint.", "ok"),
                *self._view(self.mgr.status(), version_id))

    @inline(11)
    def cancel(self, version_id, request: gr.Request):
        run = self.mgr.cancel(self._admin(request))
        return (render.status_html(f"Cancelling run {run['id']}: it stops after the current step.", "busy"),
                *self._view(self.mgr.status(), version_id))

    @inline(0)
    def save_threshold(self, n, request: gr.Request):
        s = self.mgr.set_settings(self._admin(request), min_new_sessions=int(n or 0))
        return render.status_html(f"Retraining now needs {s['min_new_sessions']} newly curated session(s).", "ok")

    @inline(11)
    def rollback(self, version_id: str, reason: str, request: gr.Request):
        doc = self.mgr.rollback(self._admin(request), version_id or None, reason)
        return (render.status_html(f"Rolled back: {doc['id']} is the active version again.", "ok"),
                *self._view(self.mgr.status(), version_id))

    @inline(11)
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
        ctx.staff_only(tab)  # not in an annotator's page (studio.role_view)
        for name, fn in (("training_status", h.api_status), ("start_training", h.api_start),
                         ("cancel_training", h.api_cancel), ("resume_training", h.api_resume),
                         ("promote_version", h.api_promote),
                         ("rollback_version", h.api_rollback)):
            validate.register(fn, name)
        with gr.Row():
            with gr.Column(scale=2):
                gr.Markdown("### Retraining (LoRA on the curated labels)")
                ready = gr.HTML(js_on_load=None, elem_id="care-train-ready-box")
                recipe = gr.Dropdown(mgr.recipes(), label="Recipe", elem_id="care-train-recipe")
                overrides = gr.Textbox(label="Overrides (one 'key: value' per line, e.g. max_steps: 20)", lines=3,
                                       elem_id="care-train-overrides")
                unused = gr.HTML(js_on_load=None, elem_id="care-train-unused-box")  # labels this recipe leaves out
                with gr.Row(equal_height=True):
                    start = gr.Button("Start retraining", variant="primary", interactive=False,
                                      elem_id="care-train-start")
                    cancel = gr.Button("Cancel run", variant="stop", interactive=False, elem_id="care-train-cancel")
                    resume = gr.Button("Resume run", interactive=False, elem_id="care-train-resume")
                msg = gr.HTML(js_on_load=None, elem_id="care-train-msg", elem_classes=["care-msg-line"])
                with gr.Row(equal_height=True):
                    threshold = gr.Number(label="Newly curated sessions needed to retrain", precision=0,
                                          elem_id="care-train-threshold")
                    save_t = gr.Button("Save threshold", elem_id="care-train-save-threshold")
                    t_msg = gr.HTML(js_on_load=None, elem_id="care-threshold-msg", elem_classes=["care-msg-line"])
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
        with gr.Row(equal_height=True):
            promote = gr.Button("Promote to active…", variant="primary", elem_id="care-promote", scale=1)
            rollback = gr.Button("Roll back to this version", elem_id="care-rollback", scale=1)
            reject = gr.Button("Reject candidate", elem_id="care-reject", scale=1)
            v_msg = gr.HTML(js_on_load=None, elem_id="care-version-msg", elem_classes=["care-msg-line"], scale=2)
        with gr.Column(visible=False, elem_id="care-promote-confirm", variant="panel") as confirm:
            confirm_html = gr.HTML(js_on_load=None, elem_id="care-promote-question")
            with gr.Row():
                yes = gr.Button("Yes, promote", variant="primary", elem_id="care-promote-yes", scale=0, min_width=140)
                no = gr.Button("Cancel", elem_id="care-promote-no", scale=0, min_width=100)
        pending = gr.State("")
        timer = gr.Timer(POLL_RUNNING_S, active=False)
        build_section(ctx, mgr, recipe, overrides)
    view = [ready, start, cancel, resume, progress, plot, log, compare, versions, version, timer]
    timer.tick(h.refresh, [version], view, **quiet)
    version.change(h.refresh, [version], view, **quiet)
    start.click(h.start, [recipe, overrides, version], [msg, *view], **quiet)
    cancel.click(h.cancel, [version], [msg, *view], **quiet)
    resume.click(h.resume, [version], [msg, *view], **quiet)
    save_t.click(h.save_threshold, [threshold], [t_msg], **quiet).then(h.refresh, [version], view, **quiet)
    for event in (recipe.change, overrides.blur, tab.select):
        event(h.unused, [recipe, overrides], [unused], **quiet)
    promote.click(h.ask_promote, [version], [v_msg, confirm, confirm_html, pending], **quiet).then(
        None, js="() => { const e = document.getElementById('care-promote-confirm'); "
                 "if (e) e.scrollIntoView({block: 'nearest'}); }")
    no.click(h.cancel_promote, [pending], [v_msg, confirm], **quiet)
    deps = [yes.click(h.promote, [pending, reason], [v_msg, confirm, *view], **quiet)]
    deps += [button.click(fn, [version, reason], [v_msg, *view], **quiet)
             for button, fn in ((rollback, h.rollback), (reject, h.reject))]
    if "topbar" in ctx.components:  # the header names the active model: refresh it
        for dep in deps:
            dep.then(ctx.components["topbar"], [], [ctx.components["user_html"]], **quiet)
    ctx.on_load(h.on_load, [], [tab, timer, threshold, recipe, ready])
    quality_btn.click(h.review_quality, [], [quality], **quiet)
    tab.select(h.review_quality, [], [quality], **quiet)
    return h
