"""The evaluation report: the paper's Table 2 for everything in a store, plots, candidate vs active.

Writes ``report.html`` (self-contained: inline CSS, the plots embedded as data URIs, opens offline)
and the same plots as PNG files next to it (``dimensions.png``, ``calibration.png``,
``item_mae.png``, ``loss.png``). The Models & training tab shows the same HTML
(:func:`build_report`) for the active version, a candidate or a cross-validation run.

Contents (:mod:`care_model.report.data` gathers them):

* Table 2 layout: rows for the counselor baseline, each model version (held-out sessions only,
  with 95% session-bootstrap intervals), each cross-validation run (mean +- SD over folds); columns
  Goal, Task, Bond by Pearson, Spearman and MSE; the paper's published rows apart, marked
  "published, different corpus".
* For the subject: predicted vs self-reported dimension scores, calibration of the expected
  score, per-item MAE, the training loss curve; the rationale metrics under their real names;
  for a candidate, each metric against the active version with the better direction, the
  difference, its interval and a verdict (:mod:`care_model.stats.compare`).


The command line: ``care report`` (:mod:`care_model.jobs.report`).
"""
from __future__ import annotations

import html

from care_model.report.data import METRICS, PUBLISHED, PUBLISHED_NOTE, plot_inputs
from care_model.stats.compare import too_small_message
from care_model.stats.heldout import CONTAMINATED_TITLE

DIMS = ("goal", "task", "bond")
PLOTS = ("dimensions", "calibration", "item_mae", "loss")
TEXT_NAMES = {"bleu": "BLEU (corpus, 0-100)", "rouge1": "ROUGE-1 F1", "rougeL": "ROUGE-L F1",
              "embedding": "embedding similarity (all-MiniLM-L6-v2, in place of the paper's BERTScore, "
                           "whose models are not available offline)"}
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.2em;color:#222;max-width:1200px}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:1.4em;border-bottom:1px solid #ddd}
table.care-t2{border-collapse:collapse;font-size:.86em;margin:.5em 0}
.care-t2 th,.care-t2 td{border:1px solid #ccc;padding:3px 6px;text-align:center}
.care-t2 td.lbl{text-align:left;min-width:14em;max-width:24em} .care-t2 tr.pub
td{background:#f6f6f0;color:#555;font-style:italic}
.care-t2 tr.sep td{background:#eee;font-weight:bold;text-align:left}
.ci{color:#666;font-size:.85em;white-space:nowrap} .note{color:#555;font-size:.85em}
.warn{background:#fff3cd;border:1px solid #e0c36c;padding:.4em .6em;margin:.5em 0}
.v-better{color:#1a7f37;font-weight:bold} .v-worse{color:#c62828;font-weight:bold}
.v-nd{color:#555} .v-small{color:#8a6d00;font-weight:bold}
.plots img{max-width:100%;border:1px solid #eee;margin:.3em 0}
.plots figure{margin:.4em 0} figcaption{font-size:.85em;color:#444}
"""


def _f(v, digits=2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _cell(est: dict | None) -> str:
    if not est:
        return "–"
    if "mean" in est:
        if est["mean"] is None:
            return '<span title="undefined in every fold (e.g. constant predictions)">–</span>'
        k, got = est.get("k"), est.get("n_folds")
        part = f'<br><span class="ci">{got} of {k} folds defined</span>' if k and got is not None and got < k else ""
        return f"{est['mean']:.2f} ± {_f(est.get('sd'))}{part}"
    if est.get("value") is None:
        return f'<span title="{html.escape(est.get("reason") or "")}">–</span>'
    ci = (f'<br><span class="ci">[{_f(est.get("low"))}, {_f(est.get("high"))}]</span>'
          if est.get("low") is not None else "")
    return f"{est['value']:.2f}{ci}"


def table2_html(rows: list[dict], *, contaminated: bool = False) -> str:
    head = ('<tr><th rowspan="2">System</th><th rowspan="2">n</th>'
            + "".join(f'<th colspan="3">{d.capitalize()}</th>' for d in DIMS) + "</tr><tr>"
            + "".join(f"<th>{m.capitalize() if m != 'mse' else 'MSE'}</th>" for _ in DIMS for m in METRICS) + "</tr>")
    body = ['<tr class="sep"><td colspan="11">This store (parsed score vs the client\'s self-report)</td></tr>']
    for r in rows:
        cells = "".join(f"<td>{_cell((r['cells'].get(d) or {}).get(m))}</td>" for d in DIMS for m in METRICS)
        note = f'<br><span class="note">{html.escape(r.get("note") or "")}</span>' if r.get("note") else ""
        flag = (' data-beats-baselines="false"' if r.get("beats_baselines") is False else "")
        body.append(f'<tr data-kind="{r["kind"]}"{flag}><td class="lbl">{html.escape(r["label"])}{note}</td>'
                    f'<td>{r.get("n") or "–"}</td>{cells}</tr>')
    body.append(f'<tr class="sep"><td colspan="11">Reference: the paper\'s Table 2, Pearson r only '
                f'({PUBLISHED_NOTE}; never mixed with ours)</td></tr>')
    for label, vals in PUBLISHED:
        cells = "".join(f"<td>{_f(vals[d]) if m == 'pearson' else '–'}</td>" for d in DIMS for m in METRICS)
        body.append(f'<tr class="pub"><td class="lbl">{html.escape(label)} '
                    f'({PUBLISHED_NOTE})</td><td>–</td>{cells}</tr>')
    title = "Table 2 layout: predicted vs self-reported WAI-SR dimension scores"
    if contaminated:
        title += f" -- {CONTAMINATED_TITLE}"
    return (f'<h2 id="care-table2-title">{html.escape(title)}</h2><table class="care-t2" id="care-table2">'
            f'<thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'
            '<div class="note" id="care-table2-unit">Model versions: 95% percentile bootstrap intervals over '
            '<b>clients</b> in brackets (all of a client\'s sessions resampled together; sessions where there is '
            'one client), on the sessions of clients outside the version\'s training split. Each model row names '
            'the score used (parsed text, raw argmax or calibrated argmax) and the decoding; beside it the two '
            'constant baselines (training mean and most frequent score per item). Primary metric: item MAE against '
            'the self-report; a model is better than a constant only when its item MAE is below both baselines\' '
            '(95% interval of the difference). Cross-validation: mean ± SD of the per-fold statistic.</div>')


def comparison_html(cmp: dict | None) -> str:
    if not cmp:
        return ""
    css = {"better": "v-better", "worse": "v-worse", "not distinguishable": "v-nd"}
    rows = []
    for r in cmp["rows"]:
        ci = f"[{_f(r['low'], 3)}, {_f(r['high'], 3)}]" if r["low"] is not None else "(no interval)"
        field = ("parsed score" if r["score_field"] == "score" else "expected score") + \
            (" [primary]" if r.get("role") == "primary" else " [exploratory]")
        rows.append(f'<tr><td class="lbl">{field}: {r["target"]} {r["metric"].replace("_", " ")}</td>'
                    f'<td>{r["better"]} is better</td><td>{_f(r["candidate"], 3)}</td><td>{_f(r["active"], 3)}</td>'
                    f'<td>{_f(r["difference"], 3)} <span class="ci">{ci}</span></td><td>{_f(r.get("p_holm"), 3)}</td>'
                    f'<td class="{css.get(r["verdict"], "v-small")}">{r["verdict"]}</td></tr>')
    small = f'<div class="warn" id="care-too-small">{html.escape(too_small_message(cmp["n_sessions"]))}</div>' \
        if cmp["too_small"] else ""
    return (f'<h2>{html.escape(cmp["title"])}</h2>{small}<table class="care-t2" id="care-comparison"><thead><tr>'
            '<th>Metric</th><th>Direction</th><th>Candidate</th><th>Active</th><th>Difference [95% interval]</th>'
            f'<th>Holm p</th><th>Verdict</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
            f'<div class="note">{html.escape(cmp["method"])}. Primary (pre-declared): '
            f'{html.escape(cmp.get("primary", ""))}'
            ', decided by its 95% interval; every other row is exploratory and needs a Holm-adjusted p &lt; .05 '
            'across the rows shown.</div>')


def text_html(text: dict | None) -> str:
    if not text:
        return ('<h2>Rationale metrics</h2><div class="note">No expert rationale to compare the model\'s with: '
                + ", ".join(TEXT_NAMES[k] for k in ("bleu", "rougeL", "embedding")) + " not computed.</div>")
    rows = "".join(f'<tr><td class="lbl">{html.escape(TEXT_NAMES[k])}</td><td>{_cell(text.get(k))}</td></tr>'
                   for k in ("bleu", "rouge1", "rougeL", "embedding") if k in text)
    return (f'<h2>Rationale metrics (model vs expert rationale, {text.get("n_pairs", 0)} pairs)</h2>'
            f'<table class="care-t2" id="care-text-metrics">{rows}</table>')


def render_plots(data, subject: dict) -> dict[str, bytes]:
    from care_model.report.plots import calibration_plot, dimension_scatter, item_mae_plot, loss_plot

    inputs = plot_inputs(data, subject)
    name = subject["id"] or "no model"
    return {
        "dimensions": dimension_scatter(inputs["scatter"], f"Predicted vs self-reported dimension scores: {name}"),
        "calibration": calibration_plot(inputs["calibration"], f"Calibration of the expected score: {name}"),
        "item_mae": item_mae_plot(inputs["item_mae"], inputs["item_dims"], f"Per-item MAE vs self-report: {name}"),
        "loss": loss_plot(subject["loss"], f"Training loss: {name}"),
    }


CAPTIONS = {"dimensions": "Predicted against self-reported dimension means, one point per session; dashed: identity.",
            "calibration": "Expected (probability-weighted) item score, binned, against the mean self-reported item "
                           "score; numbers: items per bin; dashed: perfect calibration.",
            "item_mae": "Mean absolute error of the parsed item score against the client's rating, per item.",
            "loss": "Answer-token cross-entropy per optimizer step (numeric axes)."}


def page(body: str, title: str = "CARE evaluation report") -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>')
