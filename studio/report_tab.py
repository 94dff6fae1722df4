"""The Models & training tab's cross-validation and report sections (built inside that tab).

* **Cross-validation**: start a K-fold run with the chosen recipe (a separate process,
  :mod:`studio.crossval_runs`), watch it fold by fold (bar, stage, the fold's training step and
  loss, log tail), cancel it, resume a cancelled or failed run (finished folds are kept). Its
  folds' adapters are never model versions.
* **Report**: the same report as ``care report`` (:func:`care_model.jobs.report.build_report`)
  for the active version, a candidate or a finished cross-validation run: Table 2, the four plots,
  candidate vs active with intervals and verdicts. Held-out sessions only unless the admin ticks
  "include training sessions" (the titles then say so). It is shown in an isolated frame
  (``<iframe srcdoc>``, sandboxed, no scripts) so its CSS cannot restyle the app; its tables
  scroll horizontally inside their box.
* A finished cross-validation run's results are a table (:func:`crossval_table_html`): one row per
  fold, the pooled held-out estimate with its interval, mean ± SD over folds, and the base model and
  counselor baselines on the same sessions; "Show this run's report" opens the report on it.

Also the loss curve of the retraining section (:func:`loss_html`): a PNG with numeric axes.
JSON endpoints: ``/crossval_status``, ``/start_crossval``, ``/cancel_crossval``, ``/resume_crossval``, ``/report_html``.
"""
from __future__ import annotations

import base64
import functools
import html

import gradio as gr

from care_model.core.errors import CareError

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


CV_METRICS = (("pearson", "r"), ("spearman", "ρ"), ("mse", "MSE"))
CV_BASELINES = (("base", "Baseline: base model, same folds"),
                ("counselor", "Baseline: counselor's ratings vs client's"),
                # the trivial baselines, fitted on each fold's training sessions (a constant has no correlation)
                ("mean", "Baseline: training mean per item (a constant)"),
                ("mode", "Baseline: most frequent training score per item (a constant)"))
CONSTANTS = ("mean", "mode")
CONSTANT_CELL = '<span title="A constant has no correlation: only its MSE means something.">–</span>'
FRAME_CSS = ("body{max-width:none;margin:.6em} table{display:block;overflow-x:auto;max-width:100%}"
             ".plots img{max-width:100%}")
FRAME_FIT = "this.style.height=(this.contentDocument.documentElement.scrollHeight+24)+'px'"


def _num(v, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


@functools.lru_cache(maxsize=16)
def _fold_sizes(run_dir: str) -> tuple[int, ...]:
    try:
        from care_model.training.crossval import load_crossval

        return tuple(len(f) for f in load_crossval(run_dir)["folds"])
    except Exception:  # the run folder was removed: the table goes without the fold sizes
        return ()


def crossval_table_html(run: dict | None, sizes=None) -> str:
    """A finished run's results: per dimension and metric, one row per fold (the fold adapters'
    held-out value), the pooled estimate with its bootstrap interval (clients resampled), mean ± SD over
    folds, then the baselines (base model on the same folds, the counselor's own ratings, and the two
    constants fitted on each fold's training sessions: MSE only) pooled and mean ± SD. Empty until the
    run is done."""
    if not run or run.get("status") != "done" or not run.get("rows"):
        return ""
    rows = [r for r in run["rows"] if r.get("score_field") in ("score", "-")]
    dims = list(dict.fromkeys(r["dimension"] for r in rows))
    cell = {(r["system"], r["dimension"], r["metric"]): r for r in rows}
    k = max((len(r.get("fold_values") or []) for r in rows), default=0)
    sizes = list(sizes if sizes is not None else _fold_sizes(run.get("run_dir") or ""))
    head = "".join(f'<th colspan="{len(CV_METRICS)}">{html.escape(d.capitalize())}</th>' for d in dims)
    sub = "".join(f"<th>{m}</th>" for _d in dims for _k, m in CV_METRICS)

    def line(label, kind, values, attrs=""):
        return (f'<tr class="care-cv-{kind}"{attrs}><td class="l">{html.escape(label)}</td>'
                + "".join(f"<td>{v}</td>" for v in values) + "</tr>")

    def pooled(r):
        if not r or r.get("pooled") is None:
            return f'<span title="{html.escape((r or {}).get("reason") or "")}">–</span>'
        ci = (f' <span class="ci">[{_num(r.get("low"))}, {_num(r.get("high"))}]</span>'
              if r.get("low") is not None else "")
        return _num(r["pooled"]) + ci

    def mean_sd(r):
        if not r or r.get("fold_mean") is None:
            return "–"
        return _num(r["fold_mean"]) + ("" if r.get("fold_sd") is None else f" ± {_num(r['fold_sd'])}")

    grid = [(d, m) for d in dims for m, _ in CV_METRICS]
    body = [line(f"Fold {i + 1}" + (f" ({sizes[i]} sessions)" if i < len(sizes) else ""), "fold",
                 [_num(((cell.get(("crossval", d, m)) or {}).get("fold_values") or [None] * k)[i]) for d, m in grid],
                 f' data-fold="{i + 1}"') for i in range(k)]
    n = next((r.get("n") for r in rows if r["system"] == "crossval" and r.get("n")), None)
    body.append(line(f"Pooled held-out{f' ({n} sessions)' if n else ''} [95% CI, clients resampled]", "pooled",
                     [pooled(cell.get(("crossval", d, m))) for d, m in grid]))
    body.append(line(f"Mean ± SD over {k} folds", "mean", [mean_sd(cell.get(("crossval", d, m))) for d, m in grid]))
    for system, label in CV_BASELINES:
        if not any(s == system for s, _d, _m in cell):
            continue

        def shown(fmt, d, m, system=system):  # a constant's correlation across folds is an artefact: MSE only
            return CONSTANT_CELL if system in CONSTANTS and m != "mse" else fmt(cell.get((system, d, m)))

        body.append(line(f"{label}: pooled", "baseline", [shown(pooled, d, m) for d, m in grid],
                         f' data-system="{system}"'))
        body.append(line(f"{label}: mean ± SD", "baseline", [shown(mean_sd, d, m) for d, m in grid],
                         f' data-system="{system}"'))
    return (f'<div class="care-cv-results" id="care-cv-results" data-run="{html.escape(run["id"])}">'
            f'<b>Results of {html.escape(run["id"])}</b>: the fold adapters\' parsed scores against the clients\' '
            "self-reports on held-out folds (split by client). r, ρ: higher is better; MSE: lower is better."
            '<div class="care-cv-scroll"><table class="care-summary care-cv-table" id="care-cv-table">'
            f'<tr><th rowspan="2" class="l">Fold / estimate</th>{head}</tr><tr>{sub}</tr>{"".join(body)}</table></div>'
            "</div>")


def report_frame(body: str) -> str:
    """The report page in a sandboxed ``<iframe srcdoc>``: its CSS stays inside the frame."""
    from care_model.report.page import page

    doc = page(body).replace("</head>", f"<style>{FRAME_CSS}</style></head>", 1)
    return (f'<iframe id="care-report-frame" title="Evaluation report" sandbox="allow-same-origin" '
            f'style="width:100%;min-height:70vh;border:1px solid #e2e8f0;border-radius:8px" onload="{FRAME_FIT}" '
            f'srcdoc="{html.escape(doc, quote=True)}"></iframe>')


# The Models & training tab's progress timers: every 2 s while a run (retraining or cross-validation)
# is running; every 15 s otherwise, to notice a run started by another admin or the command line.
# Each tick is an event the browser handles for the whole app (about 0.25 CPU-s in Chromium here,
# whatever it updates), so an admin's idle page ticking every 2 s cost a quarter of a core.
POLL_RUNNING_S = 2.0
POLL_IDLE_S = 15.0


def poll_timer(running: bool) -> gr.Timer:
    """The timer's update for a status: fast while something runs, slow otherwise."""
    return gr.Timer(POLL_RUNNING_S if running else POLL_IDLE_S, active=True)


def inline(extra: int):
    """Handler decorator: a CareError becomes an error line in the handler's first output (the
    status line beside the buttons), the other ``extra`` outputs stay as they are."""
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except CareError as err:
                line = render.status_html(str(err), "error")
                return (line, *(gr.skip(),) * extra) if extra else line
        return wrapper
    return deco


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
            return (gr.skip(),) * 8
        st = self.cv.status()
        return (crossval_html(st), st["log"], *self._buttons(st), *self._results(st))

    @staticmethod
    def _results(st: dict):
        """(results table, its report button) for the last run, and the progress timer's pace."""
        table = crossval_table_html(st.get("run"))
        return table, gr.update(visible=bool(table)), poll_timer(st["running"])

    def on_load(self, request: gr.Request):
        access = ui.require_role(self.ctx.repo, request, *ui.ALL_ROLES)
        if access.role != "admin":
            return gr.update(active=False), gr.skip()
        return poll_timer(self.cv.poll() is not None), gr.update(choices=self._choices(), value="active")

    @inline(8)
    def start(self, recipe: str, overrides: str, folds, request: gr.Request):
        access = self._admin(request)
        run = self.cv.start(access, self.training.recipe_path(recipe or self.training.settings()["recipe"]),
                            int(folds or 5), overrides)
        st = self.cv.status()
        return (render.status_html(f"Started cross-validation {run['id']} ({run['k']} folds).", "ok"),
                crossval_html(st), st["log"], *self._buttons(st), *self._results(st))

    @inline(8)
    def cancel(self, request: gr.Request):
        run = self.cv.cancel(self._admin(request))
        st = self.cv.status()
        return (render.status_html(f"Cancelling cross-validation {run['id']}.", "busy"), crossval_html(st), st["log"],
                gr.update(), gr.update(), gr.update(interactive=False), *self._results(st))

    @inline(8)
    def resume(self, request: gr.Request):
        run = self.cv.resume(self._admin(request))
        st = self.cv.status()
        return (render.status_html(f"Resumed cross-validation {run['id']}: finished folds are kept.", "ok"),
                crossval_html(st), st["log"], *self._buttons(st), *self._results(st))

    @inline(1)
    def show_report(self, subject: str, include_training: bool, request: gr.Request):
        from care_model.jobs.report import build_report

        self._admin(request)
        body, _pngs, _meta = build_report(self.ctx.repo, subject or "active", include_training=bool(include_training))
        return report_frame(body), gr.update(choices=self._choices(), value=subject or "active")

    @inline(1)
    def show_run_report(self, include_training: bool, request: gr.Request):
        """The report on the last finished cross-validation run (the results table's button)."""
        self._admin(request)
        run = next((r for r in self.cv.runs() if r.get("status") == "done"), None)
        if run is None:
            raise CareError("No finished cross-validation run yet.", "Start one above and wait for it to finish.")
        return self.show_report(run["id"], include_training, request)

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


def build_section(ctx, training, recipe, overrides):
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
        msg = gr.HTML(js_on_load=None, elem_id="care-cv-msg", elem_classes=["care-msg-line"])  # beside its buttons
    state = gr.HTML(js_on_load=None, elem_id="care-cv-progress")
    with gr.Row():
        results = gr.HTML(js_on_load=None, elem_id="care-cv-results-box")
    run_report = gr.Button("Show this run's report", size="sm", visible=False, elem_id="care-cv-report")
    with gr.Accordion("Cross-validation log", open=False):
        log = gr.Textbox(label="Cross-validation log", lines=6, max_lines=6, interactive=False, autoscroll=True,
                         elem_id="care-cv-log")
    gr.Markdown("### Report")
    with gr.Row():
        subject = gr.Dropdown([], label="Report on", elem_id="care-report-subject", scale=3)
        include = gr.Checkbox(label="Include training sessions (contaminated)", value=False,
                              elem_id="care-report-include", scale=1)
        show = gr.Button("Show report", variant="primary", elem_id="care-report-show", scale=1)
    report = gr.HTML(js_on_load=None, elem_id="care-report-box")
    timer = gr.Timer(POLL_RUNNING_S, active=False)
    view = [state, log, start, cancel, resume, results, run_report, timer]
    timer.tick(h.refresh, [], view, **quiet)
    start.click(h.start, [recipe, overrides, folds], [msg, *view], **quiet)
    cancel.click(h.cancel, [], [msg, *view], **quiet)
    resume.click(h.resume, [], [msg, *view], **quiet)
    show.click(h.show_report, [subject, include], [report, subject], show_progress="minimal",
               api_visibility="private")
    run_report.click(h.show_run_report, [include], [report, subject], show_progress="minimal",
                     api_visibility="private").then(
        None, js="() => { const e = document.getElementById('care-report-box'); if (e) e.scrollIntoView(); }")
    ctx.on_load(h.on_load, [], [timer, subject])
    return h
