"""The Human evaluation tabs: raters rate rationales blind; admins create campaigns and read results.

* **Human evaluation** (everyone): pick a campaign you rate, then one task at a time: the
  transcript, the item and either one rationale to score on Faithfulness, Relevance and
  Informativeness (1-5, definitions and anchors on screen, optional comment) or two rationales
  side by side (A/B, positions randomised per rater) to compare. Every click is saved at once
  (versioned, audited); the comment on blur, by the 2-second timer and on Save & next. Keys:
  1-5 score the highlighted criterion (the highlight stays; "4 j 4 j 4 Enter" scores all three and goes on),
  j/k or ↓/↑ move the highlight, keys typed during a save wait for it, in order; A/B/T/X
  choose in a comparison, Enter or Ctrl+S save and go on, P previous. System names are never sent
  to the page before a comparison is submitted (then they are shown for that comparison only).
  Nothing goes stale (issue 20): every move re-reads the campaign dropdown's "(k/N done)" and every
  save redraws the task header ("draft saved", "submitted").
* **Campaigns** (admins only): create a campaign, follow the raters' progress, results with
  plots, export CSV/JSON, close or reopen.

Every handler checks the role on the server. The handlers: :mod:`studio.evaluation_ui`; the endpoints:
:mod:`studio.evaluation_api`; the pure functions: :mod:`studio.campaigns` and its siblings.
Endpoints (``gr.api``): ``/eval_campaigns``, ``/eval_task``, ``/eval_save``, ``/eval_systems``,
``/eval_create``, ``/eval_results``, ``/eval_set_status``; the export button is ``/eval_export``.
"""
from types import SimpleNamespace

import gradio as gr

from . import campaigns as cp
from . import render, validate
from .evaluation_api import ENDPOINTS, EvalApi
from .evaluation_render import CSS, KEYS_HELP, KEYS_JS, anchors_html
from .evaluation_ui import CAMPAIGN_HEADERS, EvalUI


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
                c.state = gr.HTML(js_on_load=None, elem_id="eval-state")  # "draft saved": every save redraws it
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
        ctx.staff_only(admin_tab)  # not in an annotator's page (studio.role_view)
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
                a.reveal_each = gr.Checkbox(False, label="Reveal the systems after each pairwise choice (default: "
                                            "after the rater finishes the campaign)", elem_id="eval-reveal-each",
                                            scale=1)
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
                a.overlap = gr.Number(2, label="Raters per target (overlap)", precision=0, elem_id="eval-overlap",
                                      scale=1)
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
            a.plot_means = gr.BarPlot(x="bar", y="mean", color="system", y_lim=[0, 5],
                                      title="Mean rating per criterion",
                                      x_title="criterion · system", y_title="mean (1-5)", x_label_angle=-30,
                                      sort=None, visible=False, elem_id="eval-plot-means")
            a.plot_wins = gr.BarPlot(x="pair", y="win rate of the first", y_lim=[0, 1], title="Pairwise win rate",
                                     visible=False, elem_id="eval-plot-wins")

    h = EvalUI(ctx, c)
    task_out = [c.st, c.key, c.area, c.head, c.state, c.transcript, c.rubric, c.pairwise, c.comment, c.prev_btn,
                c.status, c.campaign, c.output, c.pair, c.choice, c.reveal] + list(c.crit.values())
    # Small saves touch the status line and the state line ("draft saved"), skipped once the page moved on; never the
    # header: the browser may apply a save's reply after the move's that followed it (seen under load: "Task 3 of 9"
    # back over task 4, the page stuck), so only moves redraw what names the task.
    edit_out = [c.status, c.state]
    # A rater's saves and moves run one at a time, in the order the page sent them, so their replies arrive in
    # that order: a score's reply can never land after the "Save & next" that followed it and put the old task's
    # header back over the new task (seen under load). Each takes milliseconds; raters queue behind each other.
    serial = dict(concurrency_id="eval-rater", concurrency_limit=1)
    ctx.on_load(h.on_load, [], [c.campaign, c.note])
    rater_tab.select(h.refresh_campaigns, [c.campaign], [c.campaign, c.note], **quiet)  # new campaigns, no reload
    # the page's keys wait for a move until one of these runs (evaluation_render.KEYS_JS: after Gradio applied it all)
    reset = "() => { if (window.__careEvalReset) window.__careEvalReset(); }"
    idle = "() => { if (window.__careEvalIdle) window.__careEvalIdle(); }"

    def move(event):
        event.then(None, js=reset)
        event.failure(None, js=idle)

    move(c.start.click(h.start, [c.campaign, c.st], task_out, **quiet, **serial))
    for crit, radio in c.crit.items():
        # always_last: a second score while the first is saving is saved after it, never dropped
        radio.input(h.crit_save(crit), [c.st, c.key, radio], edit_out, trigger_mode="always_last", **quiet,
                    **serial)
    c.choice.input(h.choice_save, [c.st, c.key, c.choice], edit_out, **quiet, **serial)
    c.comment.input(h.comment_note, [c.st, c.key, c.comment], [c.status, c.timer], trigger_mode="always_last", **quiet)
    c.comment.blur(h.comment_save, [c.st, c.key, c.comment], edit_out, **quiet, **serial)
    c.timer.tick(h.tick, [c.st], [c.status, c.state, c.timer], **quiet, **serial)
    form_in = [c.st, c.key] + list(c.crit.values()) + [c.choice, c.comment]
    move(c.next_btn.click(h.next, form_in, task_out, **quiet, **serial))
    move(c.prev_btn.click(h.prev, form_in, task_out, **quiet, **serial))

    ctx.on_load(h.admin_load, [], [admin_tab, a.table, a.res_id, a.raters])
    admin_tab.select(h.find_systems, [a.sessions], [a.systems, a.msg],
                     **quiet)  # reads predictions: on visit, not on load
    admin_tab.select(h.admin_refresh, [a.res_id], [a.table, a.res_id, a.raters], **quiet)  # new users and campaigns
    a.find.click(h.find_systems, [a.sessions], [a.systems, a.msg], **quiet)
    a.create.click(h.create, [a.name, a.systems, a.mode, a.n, a.raters, a.overlap, a.sampling, a.strata, a.sessions,
                              a.items, a.seed, a.self_ok, a.reveal_each], [a.msg, a.table, a.res_id], **quiet)
    a.show.click(h.results, [a.res_id], [a.results, a.plot_means, a.plot_wins, a.table], **quiet)
    a.export.click(h.export, [a.res_id], [a.files], api_name="eval_export")
    a.close.click(h.set_status("closed"), [a.res_id], [a.msg, a.table], **quiet)
    a.reopen.click(h.set_status("open"), [a.res_id], [a.msg, a.table], **quiet)
    return h
