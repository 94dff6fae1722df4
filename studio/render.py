"""HTML for the review screen. Every piece of user or model text goes through :func:`esc`.

Transcripts, rationales, quotes, item texts, user names and session ids can all contain markup
(a transcript may quote ``<script>``); nothing here builds HTML from them without
``html.escape``. Only the fixed markup written in this module is trusted. Numbers are formatted,
never interpolated raw.
"""
from __future__ import annotations

import difflib
import html
import re

from care_model.core.records import CHANGE_REASONS

from . import quality_notice

SPEAKER_NAMES = {"en": {"counselor": "Counselor", "client": "Client"},
                 "zh": {"counselor": "咨询师", "client": "来访者"}}
STATE_BADGES = {"unreviewed": ("Unreviewed", "st-unreviewed"), "draft": ("Draft saved", "st-draft"),
                "submitted": ("Submitted", "st-submitted")}


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value, digits: int = 2) -> str:
    return "–" if value is None else f"{float(value):.{digits}f}"


def speaker(name: str, language: str = "en") -> str:
    return SPEAKER_NAMES.get(language, SPEAKER_NAMES["en"]).get(name, name)


def transcript_html(session: dict) -> str:
    """Numbered, speaker-marked turns; each turn is ``#care-turn-<index>`` for evidence links and
    focusable (the page's script makes a click, Enter or a text selection pick evidence)."""
    lang = session.get("language", "en")
    rows = []
    for t in session["turns"]:
        i = int(t["index"])
        rows.append(f'<div class="care-turn sp-{esc(t["speaker"])}" id="care-turn-{i}" data-idx="{i}" tabindex="0">'
                    f'<span class="tn">{i}</span><span class="sp">{esc(speaker(t["speaker"], lang))}</span>'
                    f'<span class="tx">{esc(t["text"])}</span></div>')
    return f'<div class="care-transcript-inner" lang="{esc(lang)}">{"".join(rows)}</div>'


def session_header_html(view: dict) -> str:
    s = view["session"]
    bits = [f'<b>{esc(s["id"])}</b>', esc(s["language"]), f'{len(s["turns"])} turns']
    if s.get("client_id"):
        bits.append(f'client {esc(s["client_id"])}')
    bits.append(f'model {esc(view["model_version"] or "none")}')
    mode = {"shared": "shared coding", "independent": "independent coding", "unassigned": "not assigned"}[view["mode"]]
    bits.append(mode + (f' ({esc(", ".join(view["annotators"]))})' if view["annotators"] else ""))
    note = f'<div class="care-note">{esc(view["note"])}</div>' if view.get("note") else ""
    return (f'<div class="care-sess-head">{" · ".join(bits)} · '
            f'<span class="care-status">{esc(view["status"])}</span></div>{note}')


def evidence_chips(turns: list[int], label: str = "Evidence") -> str:
    if not turns:
        return f'<span class="care-muted">{esc(label)}: none</span>'
    chips = "".join(f'<button type="button" class="ev-chip" data-turn="{int(t)}" title="Show turn {int(t)}">'
                    f'{int(t)}</button>' for t in turns)
    return f'<span class="care-muted">{esc(label)}:</span> {chips}'


def card_head_html(item: dict, dimension_name: str, saved_by: str = "") -> str:
    text, cls = STATE_BADGES[item["state"]]
    lab = item.get("label")
    who = f' v{int(lab["version"])} by {esc(lab["updated_by"])}' if lab else ""
    return (f'<div class="care-card-head"><span class="care-item-no">{int(item["item"])}</span>'
            f'<span class="care-item-text">{esc(item["text"])}</span>'
            f'<span class="care-dim">{esc(dimension_name)}</span>'
            f'<span class="care-badge {cls}">{esc(text)}{who}</span></div>')


def probs_html(probs: list[float], scale: dict, title: str = "P(option) at the score position") -> str:
    if not probs:
        return ""
    top = max(probs)
    cells = []
    for k, p in enumerate(probs, start=1):
        width = int(round(100 * float(p)))
        cells.append(f'<div class="pb-row{" pb-top" if p == top else ""}"><span class="pb-k">{k}</span>'
                     f'<span class="pb-bar"><span style="width:{width}%"></span></span>'
                     f'<span class="pb-v">{float(p):.2f}</span></div>')
    return f'<div class="care-probs" title="{esc(title)}">{"".join(cells)}</div>'


def _shown_probs(pred: dict) -> tuple[list[float], str]:
    """The distribution the score and expected score come from: calibrated when calibration is on."""
    calibrated = pred.get("probs_calibrated") or []
    raw = pred.get("probs") or []
    if calibrated:
        raw_txt = ", ".join(f"{k}: {float(p):.2f}" for k, p in enumerate(raw, start=1))
        return list(calibrated), ("P(option) after content-free calibration (the score and expected score use it); "
                                  f"the model's raw probabilities were {raw_txt}")
    return list(raw), "P(option) at the score position"


def model_html(pred: dict | None, scale: dict, notices: dict | None = None) -> str:
    """The model's suggestion for one item: score, expected score, probabilities, rationale, evidence;
    ``notices``: version id -> its one-line quality notice (:mod:`studio.quality_notice`)."""
    if not pred:
        return '<div class="care-model care-empty">No model suggestion for this item yet (use Predict).</div>'
    score = pred.get("score")
    label = scale.get(str(score), "") if score is not None else ""
    head = (f'<div class="care-model-score"><span class="care-muted">Model</span> '
            f'<b>{"–" if score is None else int(score)}</b> {esc(label)} '
            f'<span class="care-muted">· expected {_num(pred.get("expected_score"))}</span>'
            f'<div class="care-muted care-model-version">{esc(pred.get("model_version") or "")}</div></div>')
    warn = ""
    if pred.get("parse_status") == "failed":
        warn = f'<div class="care-warn">The model\'s answer could not be read: {esc(pred.get("parse_error"))}</div>'
    unsupported = ""
    if pred.get("unsupported_quotes"):
        unsupported = ('<div class="care-warn">Quotes not found in the transcript: '
                       + "; ".join(f"\u201c{esc(q)}\u201d" for q in pred["unsupported_quotes"]) + "</div>")
    rationale = esc(pred.get("rationale") or "") or '<span class="care-muted">(no rationale)</span>'
    shown, title = _shown_probs(pred)
    notice = quality_notice.notice_html((notices or {}).get(pred.get("model_version") or "", ""))
    return (f'<div class="care-model"><div class="care-model-top">{head}{probs_html(shown, scale, title)}</div>'
            f'{notice}<div class="care-rationale">{rationale}</div>'
            f'<div class="care-evidence">{evidence_chips(pred.get("evidence") or [], "Model evidence")}</div>'
            f'{unsupported}{warn}</div>')


_TOKEN = re.compile(r"^\s+|\S+\s*")


def diff_segments(before: str, after: str) -> list[tuple[str, str, str]]:
    """Word diff as ``(op, old_text, new_text)`` with op "equal" or "change"; a lone equal word
    between two changes joins them, so unrelated sentences read as one change, not confetti."""
    a, b = _TOKEN.findall(before or ""), _TOKEN.findall(after or "")
    segs: list[list] = []
    matcher = difflib.SequenceMatcher(None, [t.strip() for t in a], [t.strip() for t in b], autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        kind = "equal" if op == "equal" else "change"
        segs.append([kind, "".join(a[i1:i2]), "".join(b[j1:j2]), i2 - i1])
    merged: list[list] = []
    for k, seg in enumerate(segs):
        short = seg[0] == "equal" and seg[3] <= 1 and 0 < k < len(segs) - 1
        if short or (merged and merged[-1][0] == "change" and seg[0] == "change"):
            if merged and merged[-1][0] == "change":
                merged[-1][1] += seg[1]
                merged[-1][2] += seg[2]
                continue
            seg = ["change", seg[1], seg[2], seg[3]]
        if merged and merged[-1][0] == "change" and seg[0] == "change":
            merged[-1][1] += seg[1]
            merged[-1][2] += seg[2]
        else:
            merged.append(list(seg))
    return [(op, old, new) for op, old, new, _ in merged]


def diff_html(before: str, after: str) -> str:
    """Word diff of the model's rationale (``before``) against the expert's (``after``)."""
    if (before or "") == (after or ""):
        return '<span class="care-muted">Same as the model\'s rationale.</span>'
    out = []
    for op, old, new in diff_segments(before, after):
        if op == "equal":
            out.append(esc(new))  # the expert's spacing
            continue
        if old:
            out.append(f'<del>{esc(old)}</del>')
        if new:
            out.append(f'<ins>{esc(new)}</ins>')
    return f'<div class="care-diff">{"".join(out)}</div>'


def feedback_html(checks: list[dict], pred: dict | None, draft: dict, *, pending: bool = False) -> str:
    """The card's checks and the diff of the model's rationale against the expert's."""
    rows = []
    for c in checks:
        cls = "chk-block" if c["blocking"] else "chk-warn"
        rows.append(f'<li class="{cls}" data-code="{esc(c["code"])}">{esc(c["message"])}</li>')
    checks_part = (f'<ul class="care-checks">{"".join(rows)}</ul>' if rows
                   else '<div class="care-ok">Ready to submit.</div>')
    mine = evidence_chips(draft.get("evidence") or [], "Your evidence")
    reasons = ", ".join(CHANGE_REASONS.get(r, r) for r in draft.get("change_reasons") or [])
    pend = '<span class="care-pending">unsaved changes</span>' if pending else ""
    diff = ""
    if pred is not None:
        changed = (draft.get("rationale") or "") != (pred.get("rationale") or "")
        diff = (f'<details class="care-diff-box"{" open" if changed else ""}>'
                '<summary>Model rationale → '
                f'yours</summary>{diff_html(pred.get("rationale") or "", draft.get("rationale") or "")}</details>')
    why = f'<div class="care-muted">Why changed: {esc(reasons)}</div>' if reasons else ""
    return f'<div class="care-feedback">{pend}{checks_part}<div class="care-evidence">{mine}</div>{why}{diff}</div>'


def summary_html(summary: dict) -> str:
    """Dimension means of the model, the expert and, where present, the client's self-report."""
    cols = [("Model", summary["model"]), ("Model (expected)", summary["model_expected"]), ("Expert", summary["expert"])]
    if summary.get("client"):
        cols.append(("Client self-report", summary["client"]))
    if summary.get("counselor"):
        cols.append(("Counselor", summary["counselor"]))
    head = "".join(f"<th>{esc(name)}</th>" for name, _ in cols)
    body = "".join(
        f'<tr><th>{esc(d["name"])}</th>' + "".join(f"<td>{_num(vals.get(d['key']))}</td>" for _, vals in cols) + "</tr>"
        for d in summary["dimensions"])
    return f'<table class="care-summary"><tr><th></th>{head}</tr>{body}</table>'


def status_html(message: str, kind: str = "ok") -> str:
    """The review screen's status line (:func:`studio.messages.message_html`: escaped, no server
    paths, times to the minute in the user's locale)."""
    from .messages import message_html

    return message_html(message, kind)


def conflict_html(item: int, item_text: str, theirs: dict | None, yours: dict, scale: dict) -> str:
    """Both versions of an item side by side, for the expert to choose or merge."""
    def side(title, d, meta=""):
        score = d.get("score")
        return (f'<div class="care-side"><div class="care-side-title">{esc(title)}{meta}</div>'
                f'<div><b>Score:</b> {"–" if score is None else int(score)} {esc(scale.get(str(score), ""))}</div>'
                f'<div class="care-rationale">{esc(d.get("rationale") or "")}</div>'
                f'<div>{evidence_chips(d.get("evidence") or [], "Evidence")}</div></div>')

    theirs = theirs or {}
    from .messages import when_html  # to the minute, in the user's locale

    try:
        at = when_html(theirs["updated_at"]) if theirs.get("updated_at") else ""
    except ValueError:
        at = esc(theirs["updated_at"])
    meta = f' <span class="care-muted">(v{int(theirs.get("version", 0))} by {esc(theirs.get("updated_by", "?"))}' \
           f'{", " + at if at else ""})</span>'
    return (f'<div class="care-conflict" data-item="{int(item)}"><div class="care-conflict-title">Item {int(item)} was '
            'saved by '
            f'{esc(theirs.get("updated_by", "someone else"))} while you were editing it: {esc(item_text)}</div>'
            f'<div class="care-sides">{side("Their saved version", theirs, meta)}'
            f'{side("Your unsaved version", yours)}</div>'
            f'<div class="care-muted">Choose one, or edit the card to merge them and press “Keep mine”. '
            f'Nothing was overwritten.</div>'
            '<details><summary>Their rationale → '
            f'yours</summary>{diff_html(theirs.get("rationale") or "", yours.get("rationale") or "")}</details></div>')


def job_html(job: dict | None) -> str:
    if not job:
        return ""
    pct = int(round(100 * float(job.get("progress") or 0)))
    state = job.get("state", "")
    msg = job.get("message") or ""
    if state == "failed":
        from .messages import public_text  # an error may name a model file: no server folders on the page

        why = esc(public_text(job.get("error") or msg))
        return f'<div class="care-job care-job-failed">Prediction failed: {why}</div>'
    if state == "done":
        return (f'<div class="care-job care-job-done">Predicted {esc(job["session_id"])} '
                f'with {esc(job.get("model_version") or "")}.</div>')
    return (f'<div class="care-job"><span>Predicting {esc(job["session_id"])}: {esc(state)} {esc(msg)}</span>'
            f'<span class="care-jobbar"><span style="width:{pct}%"></span></span> {pct}%</div>')


STATE_SHORT = {"unreviewed": ("to do", "st-unreviewed"), "draft": ("saved", "st-draft"),
               "submitted": ("submitted", "st-submitted"), "unsaved": ("unsaved", "st-unsaved"),
               "conflict": ("conflict", "st-conflict")}


PROVENANCE_TIPS = {"expert": "Rationale written (or substantially rewritten) by the expert",
                   "edited": "The model's text with an edit (character edit distance shown)",
                   "accepted": "The model's text (suggestion or draft) saved unchanged, one item at a time",
                   "bulk_accepted": "The model's text saved unchanged through Accept all",
                   "unknown": "Saved before provenance was recorded"}


def provenance_text(source: str | None, distance: int | None = None) -> str:
    """A rationale's provenance in a few words ("edited (12 chars)")."""
    if not source:
        return ""
    text = {"bulk_accepted": "bulk accepted"}.get(source, source)
    return f"{text} ({distance} chars)" if source == "edited" and distance is not None else text


PROVENANCE_SHORT = {"expert": "own", "edited": "ed.", "accepted": "acc.", "bulk_accepted": "bulk", "unknown": "?"}


def item_list_html(rows: list[dict]) -> str:
    """All items at a glance: one row each (``item``, ``text``, ``dimension``, ``model`` score or
    None with ``model_note``, ``accepted`` (marked ✓ by the expert's score), ``expert`` score or
    None, ``state``, ``checks``, ``evidence``, ``provenance`` of the saved rationale with its
    ``edit_distance``: a short tag after the state, in full in its tooltip). A row is
    ``tr.care-row[data-item]``; the page's
    script opens its card. The style block marks each item's evidence turns in the transcript while
    that item is open."""
    body, marks = [], []
    for r in rows:
        i = int(r["item"])
        state, cls = STATE_SHORT.get(r["state"], (r["state"], ""))
        blocking = [c for c in r["checks"] if c["blocking"]]
        warns = [c for c in r["checks"] if not c["blocking"]]
        tip = esc("\n".join(c["message"] for c in r["checks"]))
        if blocking:
            chk = f'<span class="chk-n chk-block" title="{tip}">✗ {esc(blocking[0]["message"])}</span>'
        elif warns:
            chk = f'<span class="chk-n chk-warn" title="{tip}">! {esc(warns[0]["message"])}</span>'
        else:
            chk = ('<span class="chk-n care-ok">✓</span>' if r["state"] != "unreviewed" else
                   f'<span class="chk-n care-ok">{esc(r.get("passes") or "suggestion passes")}</span>'
                   if r["model"] is not None else "")
        model = (f'<b>{int(r["model"])}</b>' if r["model"] is not None
                 else f'<span class="care-muted">{esc(r.get("model_note") or "–")}</span>')
        expert = "–" if r["expert"] is None else f'<b>{int(r["expert"])}</b>'
        if r.get("accepted"):
            expert += ' <span class="c-acc" title="The model\'s suggestion, accepted">✓</span>'
        prov = ""
        if r.get("provenance"):
            p = r["provenance"]
            tip = f'Rationale: {provenance_text(p, r.get("edit_distance"))}. {PROVENANCE_TIPS.get(p, "")}'
            prov = (f' <span class="c-prov" data-provenance="{esc(p)}" title="{esc(tip)}">'
                    f'{esc(PROVENANCE_SHORT.get(p, p))}</span>')
        ev = ",".join(str(int(e)) for e in r.get("evidence") or [])
        body.append(f'<tr class="care-row" data-item="{i}" data-evidence="{esc(ev)}" tabindex="0" '
                    f'title="Item {i}: {esc(r["text"])}"><td class="c-no">{i}</td>'
                    f'<td class="c-text">{esc(r["text"])}</td>'
                    f'<td class="c-dim">{esc(r["dimension"])}</td><td class="c-sc">{model}</td>'
                    f'<td class="c-sc">{expert}</td><td><span class="care-badge {cls}">{esc(state)}</span>{prov}</td>'
                    f'<td class="c-chk">{chk}</td></tr>')
        for e in r.get("evidence") or []:
            marks.append(f'body[data-care-item="{i}"] #care-turn-{int(e)}')
    style = (f'<style>{", ".join(marks)} {{background:#dcfce7 !important; box-shadow: inset 4px 0 0 #16a34a;}}</style>'
             if marks else "")
    return (f'{style}<table class="care-list"><thead><tr><th>#</th><th>Item</th><th>Dim.</th>'
            f'<th title="The model\'s score">Model</th><th title="Your score">You</th><th>State</th>'
            f'<th>Checks</th></tr></thead><tbody>{"".join(body)}</tbody></table>')


def bulk_confirm_html(todo: list[dict], texts: dict) -> str:
    """The confirmation of "Accept all": the items and the scores that would be accepted."""
    lis = "".join(f'<li title="{esc(texts.get(t["item"], ""))}"><b>{int(t["item"])}</b>: score {int(t["score"])} · '
                  f'{esc(texts.get(t["item"], ""))}</li>'
                  for t in todo)
    return (f'<div class="care-bulk"><div class="care-bulk-title">Accept the model\'s suggestion (score, rationale '
            f'and evidence) for these {len(todo)} unreviewed item(s)? Their suggestions pass the checks.</div>'
            f'<ul class="care-bulk-list">{lis}</ul></div>')
