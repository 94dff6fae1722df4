"""What the Models & training tab shows about retraining, pure (no Gradio, no handlers): readiness, what a
run learns from, progress, the versions table, the candidate comparison, the sentence before retraining
about curated labels a recipe will not use, and the promote confirmation's verdict."""
from __future__ import annotations

from care_model.stats.compare import MIN_SESSIONS, too_small_message
from care_model.stats.review_quality import review_quality, review_quality_markdown
from care_model.text.snapshot import SOURCE_NAMES, describe_learned_from, learned_from

from . import quality_notice, render
from .messages import minute
from .metric_labels import metric_label

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
    since = f" since {minute(r['since'])}" if r.get("since") else ""
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
                     minute(d.get("created_at"))])
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


UNUSED_NAMES = {"expert": "expert-judged", "adjudicated": "adjudicated", "client_self_report": "client self-reported"}


def unused_labels_html(info: dict) -> str:
    """The plain sentence before retraining when curated labels will not be used, and why
    (``info``: :meth:`studio.training.TrainingManager.unused_labels`)."""
    learns = " and ".join(SOURCE_NAMES.get(s, s) for s in info["score_sources"]) or "nothing"
    lines = [f"{n} {UNUSED_NAMES.get(src, src)} label{'s are' if n != 1 else ' is'} not used: this recipe learns "
             f"{learns}; choose a recipe with score_sources: [{src}] to include them."
             for src, n in sorted(info["unused"].items()) if n]
    if not lines:
        return ""
    return ('<div class="care-warn" id="care-train-unused" data-unused="'
            + render.esc(",".join(f"{k}:{v}" for k, v in sorted(info["unused"].items())))
            + '">' + "<br>".join(render.esc(x) for x in lines) + "</div>")


def promote_verdict(st: dict, version_id: str) -> tuple[str, str]:
    """(the comparison's verdict in one sentence, its kind: ok / warn) for the promote confirmation."""
    doc = next((d for d in st["versions"] if d["id"] == version_id), None)
    if doc is None:
        return f"{version_id} is not a known model version.", "warn"
    ev = doc.get("evaluation") or {}
    comp = ev.get("comparison") or {}
    base = ((ev.get("versions") or {}).get("baseline") or {}).get("version_id") or doc.get("parent") or "its parent"
    if not comp:
        return f"No comparison with another version is recorded for {version_id}.", "warn"
    n = comp.get("n_sessions", len(ev.get("sessions") or []))
    if comp.get("too_small") or n < MIN_SESSIONS:
        return (f"Compared with {base} on {n} held-out session(s): too small to decide (fewer than {MIN_SESSIONS}); "
                "the difference is not known.", "warn")
    primary = next((r for r in comp.get("rows") or [] if r.get("role") == "primary"), None)
    counts = ", ".join(f"{v} {k}" for k, v in (comp.get("counts") or {}).items() if v) or "no metrics"
    head = f"Compared with {base} on {n} held-out session(s): "
    if primary:
        head += f"primary metric (item MAE) {primary.get('verdict')}; "
    return head + f"all metrics: {counts}.", ("ok" if primary and primary.get("verdict") == "better" else "warn")
