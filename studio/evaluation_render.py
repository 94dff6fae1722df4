"""What the evaluation and campaign tabs show: HTML (every model and label text escaped), the
results plots' data, the page's CSS and key handling (shared with the adjudication tab).
Pure: no handlers, no repository."""
from __future__ import annotations

import pandas as pd

from . import campaigns as cp
from . import render
from .render import esc

KEYS_HELP = ('<div class="care-keys">Keys: <kbd>1</kbd>–<kbd>5</kbd> score the highlighted criterion (the '
             'highlight stays) · <kbd>j</kbd>/<kbd>k</kbd> or <kbd>↓</kbd>/<kbd>↑</kbd> next/previous criterion, so '
             '<kbd>4</kbd> <kbd>j</kbd> <kbd>4</kbd> <kbd>j</kbd> <kbd>4</kbd> <kbd>Enter</kbd> scores all three · '
             '<kbd>A</kbd> <kbd>B</kbd> <kbd>T</kbd> tie <kbd>X</kbd> both bad · <kbd>Enter</kbd> or '
             '<kbd>Ctrl</kbd>+<kbd>S</kbd> save &amp; next · <kbd>P</kbd> previous. Keys typed while a save is '
             'under way wait for it, in order.</div>')
CSS = """<style>
body[data-eval-moving] #eval-rubric, body[data-eval-moving] #eval-pairwise {pointer-events: none;}
body[data-eval-moving] #eval-task-area {cursor: progress;}
.eval-scroll {height: calc(100vh - 260px) !important; min-height: 380px; overflow-y:auto !important;
  border:1px solid #e2e8f0; border-radius:8px; background:#fff; padding:.3rem;}
.eval-chip {border:1px solid #93c5fd; background:#eff6ff; color:#1d4ed8; border-radius:5px; padding:0 .4rem;
  margin:0 .15rem;
  font-size:.8rem; cursor:pointer;}
.eval-out {border:1px solid #d6dde6; border-radius:10px; padding:.55rem .7rem; background:#fbfcfe; margin:.3rem 0;}
.eval-out-title {font-weight:700; font-size:1.05rem;} .eval-out .care-rationale {font-size:.95rem;}
.eval-pair {display:grid; grid-template-columns:1fr 1fr; gap:.6rem;}
body[data-eval-cur="faithfulness"] #eval-crit-faithfulness, body[data-eval-cur="relevance"] #eval-crit-relevance,
body[data-eval-cur="informativeness"] #eval-crit-informativeness {box-shadow:inset 0 0 0 3px #2563eb !important;
  background:#eff6ff !important; border-radius:8px;}
body[data-eval-cur="faithfulness"] #eval-crit-faithfulness [data-testid="block-info"]::before,
body[data-eval-cur="relevance"] #eval-crit-relevance [data-testid="block-info"]::before,
body[data-eval-cur="informativeness"] #eval-crit-informativeness [data-testid="block-info"]::before {
  content:"▶ "; color:#2563eb;}
.eval-anchors {display:grid; grid-template-columns:repeat(5,1fr); gap:.25rem; font-size:.74rem; color:#475569;
  margin:-.2rem 0 .3rem;}
.eval-anchors span {background:#f8fafc; border:1px solid #e2e8f0; border-radius:4px; padding:.1rem .25rem;}
.eval-anchors b {color:#0f172a;}
.eval-bar {display:inline-block; width:12rem; height:.55rem; background:#e2e8f0; border-radius:3px; overflow:hidden;
  vertical-align:middle;}
.eval-bar span {display:block; height:100%; background:#16a34a;}
.eval-reveal {border:2px solid #16a34a; background:#f0fdf4; border-radius:8px; padding:.4rem .6rem; font-weight:600;}
.eval-table {border-collapse:collapse; font-size:.88rem; margin:.3rem 0 .8rem;}
.eval-table th, .eval-table td {border:1px solid #e2e8f0; padding:.2rem .5rem; text-align:center;}
.eval-table td.l, .eval-table th.l {text-align:left;}
</style>"""
KEYS_JS = r"""
if (!window.__careEvalKeys) {
  window.__careEvalKeys = true;
  const crits = ['faithfulness', 'relevance', 'informativeness'];
  let cur = 0, task = null, busy = null;
  const queue = [];  // keys wait here while a save is under way, then apply in order
  const $ = id => document.getElementById(id);
  const shown = el => !!el && el.offsetParent !== null;
  // the highlight lives on <body> (Gradio re-renders the radios' class attribute on every update)
  const mark = () => { document.body.dataset.evalCur = crits[cur];
    crits.forEach((c, i) => { const e = $('eval-crit-' + c);
      if (e) e.setAttribute('aria-current', String(i === cur)); });
    const e = $('eval-crit-' + crits[cur]); if (e && shown(e)) e.scrollIntoView({block: 'nearest'}); };
  const click = sel => { const b = document.querySelector(sel); if (b) b.click(); };
  const status = () => { const s = $('eval-status'); return s ? s.innerHTML : ''; };
  const taskNow = () => { const p = $('eval-pos'); return p && p.dataset.task; };
  const wait = (ms, changed) => { busy = {until: Date.now() + ms, changed}; };
  // A move (Save & next, Previous, Start) lasts until Gradio has applied all of its reply and run the js chained
  // after it (reset on success, idle on failure), often a second after the new task shows on a loaded machine.
  // Keys wait for that: typed into the gap they were undone by the move's late updates (scores shown cleared,
  // the highlight sent back to the first criterion) and an Enter was dropped (the button's trigger_mode "once"
  // ignores a click while its last event is open). 30 s: a move whose chained js never runs does not lock keys.
  // While a move lasts the scores and choices take no clicks either (body[data-eval-moving], CSS above): a click in
  // that gap was undone by the move's late updates (the radios shown cleared), so it waits, as keys do.
  let moving = 0;
  const inMove = () => moving && Date.now() - moving < 30000;
  const setMoving = t => { moving = t; if (t) document.body.dataset.evalMoving = '1';
    else delete document.body.dataset.evalMoving; };
  const moved = () => { setMoving(0); pump(); };
  window.__careEvalReset = () => { task = taskNow(); cur = 0; mark(); moved(); };
  window.__careEvalIdle = moved;  // the move failed (e.g. a criterion not scored): the task and highlight stay
  const pick = c => { task = taskNow(); cur = Math.max(0, crits.indexOf(c.id.replace('eval-crit-', ''))); mark(); };
  document.addEventListener('focusin', e => { const c = e.target.closest && e.target.closest('.eval-crit');
    if (c) pick(c); });
  document.addEventListener('click', e => {
    if (e.target.closest && e.target.closest('#eval-next, #eval-prev, #eval-start')) {
      setMoving(Date.now()); setTimeout(() => { if (!inMove()) moved(); }, 30100); }
    const chip = e.target.closest && e.target.closest('.eval-chip');
    if (chip) { const t = $(chip.dataset.turnId); if (t) {
      document.querySelectorAll('.eval-scroll .care-hl').forEach(x => x.classList.remove('care-hl'));
      t.classList.add('care-hl'); t.scrollIntoView({block: 'center', behavior: 'smooth'}); } }
    const c = e.target.closest && e.target.closest('.eval-crit');
    if (c && e.isTrusted) pick(c);
  }, true);
  const apply = key => {
    if (!shown($('eval-task-area'))) return;
    const now = taskNow();
    if (now !== task) { task = now; cur = 0; mark(); }  // a new task starts at the first criterion
    const before = status();
    if (key === 'enter' || key === 'p') {
      click(key === 'p' ? '#eval-prev' : '#eval-next');  // sets moving (the click listener above)
    } else if (shown($('eval-rubric'))) {
      if (/^[1-5]$/.test(key)) {
        const r = document.querySelector('#eval-crit-' + crits[cur] + ' input[type=radio][value="' + key + '"]');
        if (r && !r.checked) { r.click(); wait(8000, () => status() !== before); }
      } else if (key === 'j') { cur = Math.min(crits.length - 1, cur + 1); mark(); }
      else if (key === 'k') { cur = Math.max(0, cur - 1); mark(); }
    } else if (shown($('eval-pairwise'))) {
      const v = {a: 'a', b: 'b', t: 'tie', x: 'both_bad'}[key];
      const r = v && document.querySelector('#eval-choice input[type=radio][value="' + v + '"]');
      if (r && !r.checked) { r.click(); wait(8000, () => status() !== before); }
    }
  };
  let pumping = false;  // one polling timer at a time
  const pump = () => {
    if (busy && (busy.changed() || Date.now() > busy.until)) busy = null;
    while (!busy && !inMove() && queue.length) apply(queue.shift());
    if ((busy || queue.length) && !pumping) { pumping = true; setTimeout(() => { pumping = false; pump(); }, 30); }
  };
  // a save's reply applied after the next task's: its state line names the old task, so it is hidden
  const guardState = () => { const line = document.querySelector('#eval-state .eval-state-line'), p = $('eval-pos');
    if (line && p) line.style.display = line.dataset.task === p.dataset.task ? '' : 'none'; };
  let guardQueued = false;
  new MutationObserver(() => { if (!guardQueued) { guardQueued = true;
    requestAnimationFrame(() => { guardQueued = false; guardState(); }); } }).observe(document.body,
    {childList: true, subtree: true, characterData: true});
  window.__careEvalPending = () => queue.length + (busy ? 1 : 0) + (inMove() ? 1 : 0);
  window.addEventListener('keydown', e => {
    if (!shown($('eval-task-area'))) return;
    const mod = e.ctrlKey || e.metaKey, t = e.target;
    const typing = t && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName))
      && t.type !== 'radio' && t.type !== 'checkbox';
    const take = key => { e.preventDefault(); e.stopImmediatePropagation(); queue.push(key); pump(); };
    if (mod && (e.key === 's' || e.key === 'S' || e.key === 'Enter')) { if (t && t.blur) t.blur(); take('enter');
      return; }
    if (typing || mod || e.altKey) return;
    const key = {Enter: 'enter', ArrowDown: 'j', ArrowUp: 'k'}[e.key] || e.key.toLowerCase();
    const rubric = shown($('eval-rubric')), pair = shown($('eval-pairwise'));
    if (key === 'enter' || key === 'p' || (rubric && /^[1-5jk]$/.test(key)) || (pair && 'abtx'.includes(key)
        && key.length === 1)) take(key);
  }, true);
  mark();
}
"""


# ----------------------------------------------------------------------------- HTML
def _num(v, digits=2) -> str:
    if v is None:
        return "–"
    s = f"{float(v):.{digits}f}"
    return s[1:] if s.startswith("-") and not s.strip("-0.") else s  # no "-0.00"


def transcript_html(session: dict, prefix: str = "eval") -> str:
    """Numbered turns with ids ``<prefix>-turn-<n>`` (not the review tab's, so both can be on the page)."""
    lang = session.get("language", "en")
    return "".join(f'<div class="care-turn sp-{esc(t["speaker"])}" id="{prefix}-turn-{int(t["index"])}">'
                   f'<span class="tn">{int(t["index"])}</span><span '
                   f'class="sp">{esc(render.speaker(t["speaker"], lang))}</span>'
                   f'<span class="tx">{esc(t["text"])}</span></div>' for t in session["turns"])


def chips_html(turns, prefix: str = "eval") -> str:
    return "".join(f'<button type="button" class="eval-chip" data-turn-id="{prefix}-turn-{int(t)}">{int(t)}</button>'
                   for t in turns or [])


def output_html(title: str, o: dict) -> str:
    chips = chips_html(o.get("evidence"))
    return (f'<div class="eval-out"><div class="eval-out-title">{esc(title)} · score {int(o["score"])} '
            f'<span class="care-muted">{esc(o["score_label"])}</span></div>'
            f'<div class="care-rationale">{esc(o["rationale"])}</div>'
            f'<div class="care-muted">Evidence turns: {chips or "none"}</div></div>')


def head_html(v: dict) -> str:
    """The task's header: its position, kind, progress and item. Only moves redraw it; the rating's state
    ("draft saved") is :func:`state_html`, redrawn by every save too."""
    pct = int(round(100 * v["done"] / max(1, v["total"])))
    kind = "Rate this rationale" if v["kind"] == "rubric" else "Compare two rationales"
    return (f'<div class="care-sess-head"><b id="eval-pos" data-task="{esc(v["task_id"])}">Task {v["position"]} of '
            f'{v["total"]}</b> · {esc(kind)} · <span id="eval-done">{v["done"]} of {v["total"]} '
            'done</span> '
            f'<span class="eval-bar"><span style="width:{pct}%"></span></span></div>'
            f'<div class="care-card-head"><span class="care-item-no">{int(v["item"])}</span>'
            f'<span class="care-item-text">{esc(v["item_text"])}</span><span '
            f'class="care-dim">{esc(v["dimension"])}</span></div>'
            f'<div class="care-muted">Session {esc(v["session"]["id"])} · rate as the client would answer this '
            'item.</div>')


def state_html(v: dict) -> str:
    """The rating's state ("not rated yet", "draft saved", "submitted"), for the task it names: a save's reply
    that the browser applies after the next task's (seen under load) is hidden by KEYS_JS, never shown as the
    new task's state. Small saves redraw this, never the header, so they cannot put an old task's header back."""
    state = {"submitted": "submitted", "draft": "draft saved", "new": "not rated yet"}[v["rating"]["status"]]
    return f'<div class="care-muted eval-state-line" data-task="{esc(v["task_id"])}">{esc(state)}</div>'


def reveal_html(v: dict) -> str:
    r = v.get("reveal")
    if not r:
        return ""
    after = ("You have finished this campaign." if v.get("done", 0) >= v.get("total", 1)
             else "Press Enter for the next task.")
    return (f'<div class="eval-reveal" id="eval-revealed">Submitted. A was <b>{esc(r["a"])}</b>, B was '
            f'<b>{esc(r["b"])}</b>. {after}</div>')


def anchors_html(c: str) -> str:
    a = cp.CRITERION_INFO[c]["anchors"]
    return '<div class="eval-anchors">' + "".join(f"<span><b>{k}</b> {esc(t)}</span>" for k, t in a.items()) + "</div>"


def _ci(e: dict, digits=2) -> str:
    if e["value"] is None:
        return f'<span class="care-muted">– ({esc(e.get("reason", ""))})</span>'
    if e["low"] is not None:
        bounded = " (bounded to the scale)" if "bounded" in (e.get("method") or "") else ""
        ci = f' <span class="care-muted">[{_num(e["low"], digits)}, {_num(e["high"], digits)}]{bounded}</span>'
    else:
        ci = f' <span class="care-muted">({esc(e["reason"])})</span>' if e.get("reason") else ""
    return f"{_num(e['value'], digits)}{ci}"


def _ci_svg(e: dict, lo=1.0, hi=5.0) -> str:
    if e["value"] is None:
        return ""
    x = lambda v: 4 + 152 * (min(hi, max(lo, float(v))) - lo) / (hi - lo)  # noqa: E731
    pas = x(cp.PASS)
    whisker = (f'<line x1="{x(e["low"]):.1f}" x2="{x(e["high"]):.1f}" y1="8" y2="8" stroke="#1d4ed8" stroke-width="2"/>'
               if e["low"] is not None else "")
    return (f'<svg width="160" height="16" role="img" aria-label="mean with 95% CI on 1-5">'
            f'<line x1="4" x2="156" y1="8" y2="8" stroke="#e2e8f0" stroke-width="6"/>'
            f'<line x1="{pas:.1f}" x2="{pas:.1f}" y1="1" y2="15" stroke="#94a3b8" stroke-dasharray="2,2"/>{whisker}'
            f'<circle cx="{x(e["value"]):.1f}" cy="8" r="4" fill="#1d4ed8"/></svg>')


def results_html(res: dict) -> str:
    c = res["campaign"]
    prog = " · ".join(f'{esc(r)} {p["done"]}/{p["total"]}' for r, p in res["progress"].items())
    out = [f'<div class="care-sess-head"><b>{esc(c["name"])}</b> ({esc(c["id"])}) · {esc(c["mode"])} · '
           f'{res["n_targets"]} targets · systems {esc(", ".join(c["systems"]))} · {esc(c["status"])} · progress: '
           f'{prog}</div>']
    rub = res.get("rubric")
    if rub:
        rows = "".join(
            f'<tr data-system="{esc(r["system"])}" data-criterion="{esc(r["criterion"])}"><td '
                       f'class="l">{esc(r["system"])}</td>'
            f'<td class="l">{esc(cp.CRITERION_INFO.get(r["criterion"], {}).get("name", r["criterion"]))}</td>'
            f'<td>{r["n"]}</td>'
            f'<td data-stat="mean">{_ci(r["mean"])}</td><td>{_ci_svg(r["mean"])}</td>'
            f'<td data-stat="pass">{_ci(r["pass_rate"])}</td></tr>' for r in rub["rows"])
        out.append('<h4>Rubric ratings (1-5): mean with 95% t interval, pass rate (score ≥ 3) with Wilson interval</h4>'
                   '<table class="eval-table" id="eval-rubric-table"><tr><th class="l">System</th><th '
                   'class="l">Criterion</th>'
                   '<th>n</th><th>Mean [95% CI]</th><th>1 ··· 5 (dashed: pass)</th><th>Pass rate [95% '
                   f'CI]</th></tr>{rows}</table>')
    pw = res.get("pairwise")
    if pw:
        rows = "".join(
            f'<tr data-a="{esc(p["system_a"])}" data-b="{esc(p["system_b"])}"><td class="l">{esc(p["system_a"])}</td>'
            f'<td class="l">{esc(p["system_b"])}</td><td>{p["n"]}</td><td>{p["wins_a"]}</td><td>{p["wins_b"]}</td>'
            f'<td>{p["ties"]}</td><td>{p["both_bad"]}</td><td data-stat="win">{_ci(p["win_rate_a"])}</td></tr>'
            for p in pw["pairs"])
        out.append('<h4>Pairwise: win rate of the first system (ties count half; “both bad” apart), Wilson 95% '
                   'interval</h4>'
                   '<table class="eval-table" id="eval-pair-table"><tr><th class="l">System A</th><th class="l">System '
                   'B</th>'
                   '<th>n</th><th>A wins</th><th>B wins</th><th>Ties</th><th>Both bad</th><th>Win rate of '
                   f'A</th></tr>{rows}</table>')
        bt = pw.get("bradley_terry")
        if bt:
            cells = ("".join(f'<tr><td class="l">{esc(s)}</td><td>{_num((bt["strength"] or {}).get(s), 3)}</td></tr>'
                             for s in bt["systems"]) if bt["strength"]
                     else f'<tr><td colspan="2">{esc(bt["reason"])}</td></tr>')
            out.append('<h4>Bradley-Terry strengths (sum to 1)</h4><table class="eval-table" '
                       f'id="eval-bt-table">{cells}</table>')
    if res["agreement"]:
        rows = ""
        for crit, a in res["agreement"].items():
            al, icc = a["alpha"], a.get("icc")
            name = cp.CRITERION_INFO.get(crit, {}).get("name", "Pairwise choice" if crit == "pairwise" else crit)
            icc_cell = (f'{_ci(icc)} <span class="care-muted">k={icc["k"]}, {icc["n_targets"]} units, '
                        f'{icc["n_left_out"]} left out</span>' if icc and icc["value"] is not None
                        else f'<span class="care-muted">{esc(icc["reason"]) if icc else "–"}</span>')
            rows += (f'<tr data-criterion="{esc(crit)}"><td class="l">{esc(name)}</td>'
                     f'<td data-stat="alpha">'
                     f'{_num(al["alpha"], 3) if al["alpha"] is not None else "– " + esc(al["reason"])}</td>'
                     f'<td>{esc(al["level"])}, {al["n_units"]} units</td><td data-stat="icc">{icc_cell}</td></tr>')
        out.append("<h4>Inter-rater agreement</h4><table class=\"eval-table\" id=\"eval-agree-table\"><tr><th "
                   "class=\"l\">"
                   f"Criterion</th><th>Krippendorff's alpha</th><th></th><th>ICC(2,k) [95% CI]</th></tr>{rows}</table>"
                   f'<div class="care-muted">{esc(res["missing"])}</div>')
    if not rub and not pw:
        out.append('<div class="care-muted">No submitted ratings yet.</div>')
    return "".join(out)


def plots(res: dict):
    rub = (res.get("rubric") or {}).get("rows", [])
    means = pd.DataFrame([{"bar": f'{cp.CRITERION_INFO[r["criterion"]]["name"]} · {r["system"]}', "system": r["system"],
                           "mean": r["mean"]["value"]} for r in rub if r["mean"]["value"] is not None],
                         columns=["bar", "system", "mean"])
    pairs = (res.get("pairwise") or {}).get("pairs", [])
    wins = pd.DataFrame([{"pair": f'{p["system_a"]} vs {p["system_b"]}',
                          "win rate of the first": p["win_rate_a"]["value"]}
                         for p in pairs if p["win_rate_a"]["value"] is not None], columns=["pair",
                                                                                           "win rate of the first"])
    return means, wins
