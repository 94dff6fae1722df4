"""The Insights tab (admins and adjudicators): the same views as ``care insights``.

Counselor profiles, interaction patterns (Table 8), client trajectories and known-groups validity
(:func:`care_model.jobs.insights.build_insights`: plots beside tables with the exact numbers),
and the low-alliance drill-down for a counselor or a client, whose session ids open the session in
the Review tab with one click.

Blinding: annotators never see this tab or its content. It is hidden for them on page load and
every handler refuses any role but admin and adjudicator, because its views show clients' and
counselors' ratings and the model's scores that expert-judged sessions keep from annotators.
No JSON endpoint: the events are private to the page.
"""
from __future__ import annotations

import gradio as gr

from care_model.insights.build import Options
from care_model.insights.table import SOURCES

from . import render, ui

STAFF = ("admin", "adjudicator")
SOURCE_CHOICES = [("Model predictions", "model"), ("Client self-report", "self-report"),
                  ("Counselor self-rating", "counselor")]
# One click on a session id: switch to the Review tab, put the id in its "Session id" box, press Open.
# (gr.HTML's js_on_load takes statements; they run once the tab is mounted, i.e. for staff only.)
OPEN_IN_REVIEW_JS = """if (!window.careInsightsLinks) {
  window.careInsightsLinks = true;
  document.addEventListener('click', (ev) => {
    const a = ev.target.closest('#ins-tab a.ins-open'); if (!a) return;
    ev.preventDefault();
    const sid = a.dataset.session;
    const tab = [...document.querySelectorAll('#care-tabs button[role=tab]')]
      .find(b => b.textContent.trim() === 'Review');
    if (tab) tab.click();
    setTimeout(() => {
      const box = document.querySelector('#care-open-id textarea, #care-open-id input'); if (!box) return;
      box.value = sid; box.dispatchEvent(new Event('input', {bubbles: true}));
      setTimeout(() => document.querySelector('#care-open')?.click(), 150);
    }, 250);
  });
}"""


class InsightsUI:
    def __init__(self, ctx):
        self.ctx = ctx

    def _staff(self, request):
        return ui.require_role(self.ctx.repo, request, *STAFF)

    def _versions(self) -> list[str]:
        repo, found = self.ctx.repo, {}
        for sid in repo.session_ids():
            for v, n in repo.predicted_versions(sid).items():
                found[v] = found.get(v, 0) + 1
        return sorted(found, key=lambda v: (-found[v], v))

    def on_load(self, request: gr.Request):
        access = ui.require_role(self.ctx.repo, request, *ui.ALL_ROLES)
        if access.role not in STAFF:
            return gr.update(visible=False), gr.skip()
        versions = self._versions()
        return gr.update(visible=True), gr.update(choices=versions, value=versions[0] if versions else None)

    def _opts(self, source, version, score_field, group_field, min_sessions, drop, n_boot) -> Options:
        if source not in SOURCES:
            source = "model"
        return Options(source=source, model_version=(version or None) if source == "model" else None,
                       score_field=score_field if score_field in ("score", "expected_score") else "score",
                       group_field=(group_field or "").strip() or None,
                       min_counselor_sessions=max(1, int(min_sessions or 5)), rupture_drop=float(drop or 1.0),
                       n_boot=min(5000, max(0, int(n_boot or 0))))

    @ui.guard
    def compute(self, source, version, score_field, group_field, min_sessions, drop, n_boot, request: gr.Request):
        from care_model.insights.page import CSS
        from care_model.jobs.insights import build_insights

        self._staff(request)
        data, _pngs, body = build_insights(self.ctx.repo, self._opts(source, version, score_field, group_field,
                                                                     min_sessions, drop, n_boot))
        fields = (data["groups"].get("candidates") or []) if "refusal" not in data["groups"] else []
        note = render.status_html(f"Insights for {data['n_scored']} scored sessions ({data['source']}).", "ok")
        return f"<style>{CSS}</style>{body}", note, gr.update(choices=[""] + fields)

    @ui.guard
    def drill(self, source, version, score_field, who, ident, dim, threshold, request: gr.Request):
        from care_model.insights.page import CSS
        from care_model.jobs.insights import drilldown

        self._staff(request)
        ident = (ident or "").strip()
        if not ident:
            return "", render.status_html("Enter a counselor id or a client id for the drill-down.", "warn")
        opts = self._opts(source, version, score_field, "", 5, 1.0, 0)
        kw = {"counselor": ident} if who == "counselor" else {"client": ident}
        d, html = drilldown(self.ctx.repo, opts, dim=dim or "bond", threshold=float(threshold or 2.0), **kw)
        return f"<style>{CSS}</style>{html}", render.status_html(
            f"{len(d['sessions'])} of {d['n_sessions']} sessions of {d['who']} at or below the threshold.", "ok")


def build_tab(ctx):
    h = InsightsUI(ctx)
    quiet = dict(api_visibility="private", show_progress="minimal")
    with gr.Tab("Insights", id="insights", visible=False, elem_id="ins-tab") as tab:
        ctx.staff_only(tab)  # not in an annotator's page (studio.role_view)
        gr.HTML("", js_on_load=OPEN_IN_REVIEW_JS, elem_id="ins-js")
        gr.Markdown("Counselor profiles, interaction patterns, client trajectories and known-groups validity, "
                    "from the scores you choose. Every title names its source.")
        with gr.Row():
            source = gr.Radio(SOURCE_CHOICES, value="model", label="Scores", elem_id="ins-source", scale=3)
            version = gr.Dropdown([], label="Model version", elem_id="ins-version", scale=2)
            score_field = gr.Radio([("Predicted score", "score"), ("Expected score", "expected_score")],
                                   value="score", label="Predicted value", elem_id="ins-score-field", scale=2)
        with gr.Row():
            group = gr.Dropdown([""], value="", label="Known-groups field (empty: mi_quality, arm, site, ...)",
                                allow_custom_value=True, elem_id="ins-group", scale=2)
            min_sessions = gr.Number(5, precision=0, minimum=1, label="Sessions per counselor profile",
                                     elem_id="ins-min", scale=1)
            drop = gr.Number(1.0, minimum=0.25, label="Rupture: drop of at least", elem_id="ins-drop", scale=1)
            n_boot = gr.Number(500, precision=0, minimum=0, maximum=5000, label="Bootstrap resamples",
                               elem_id="ins-nboot", scale=1)
            go = gr.Button("Compute insights", variant="primary", elem_id="ins-go", scale=1)
        status = gr.HTML(js_on_load=None, elem_id="ins-status")
        box = gr.HTML(js_on_load=None, elem_id="ins-box")
        gr.Markdown("### Low-alliance drill-down (session ids open in Review)")
        with gr.Row():
            who = gr.Radio([("Counselor", "counselor"), ("Client", "client")], value="counselor", label="Who",
                           elem_id="ins-who", scale=1)
            ident = gr.Textbox(label="Counselor or client id", elem_id="ins-ident", scale=2)
            dim = gr.Dropdown([(d.name("en"), d.key) for d in ctx.form.dimensions], value="bond", label="Dimension",
                              elem_id="ins-dim", scale=1)
            threshold = gr.Number(2.0, label="At or below", elem_id="ins-threshold", scale=1)
            show = gr.Button("Show sessions", elem_id="ins-drill-go", scale=1)
        drill_box = gr.HTML(js_on_load=None, elem_id="ins-drill-box")
    go.click(h.compute, [source, version, score_field, group, min_sessions, drop, n_boot], [box, status, group],
             **quiet)
    show.click(h.drill, [source, version, score_field, who, ident, dim, threshold], [drill_box, status], **quiet)
    ctx.on_load(h.on_load, [], [tab, version])
    return h
