"""The review page's CSS and browser script (keys, the item list, evidence from the transcript).

The page has one item card (``#care-card``), which the server fills for the item shown (issue 20:
twelve copies made the first paint about a second slower). The card's head carries ``data-item``
(the item shown) and ``data-req`` (the page's request it answers); from it the script sets
``#care-card[data-item]`` and ``body[data-care-item]``, by which CSS highlights the item's row in
the compact list (``#care-list``) and its evidence turns, so a server redraw of the list never
loses which item is open. A head that names another item than the card's item field (a save's
reply that arrived after the reply showing the next item) makes the script ask for the whole card
again (the hidden ``#care-resync`` button). The script:

* opens an item: a click (or Enter) on its row, j/k, n/p, Alt+Down/Up or ``window.careOpenItem(n)``
  write ``N:seq`` into the hidden ``#care-want`` field and press the hidden ``#care-show`` button:
  one request saves the shown item's unsaved rationale and evidence, then fills the card. Item keys
  pressed while it is pending (j/k, 1-5, a, c, ...) and turns clicked for evidence are queued and
  replayed, in order, once the card shows the answer (or after 15 s without one);
* scores and accepts the open item: 1-5, a; Shift+A asks to accept all passing suggestions; c
  confirms the shown rationale of a client-anchored card ("Confirm this rationale");
* picks evidence in the transcript: a click on a turn (or Enter/Space on a focused turn) adds it
  to the open item's evidence, a second one removes it; selecting text in a turn offers "Quote"
  (key q: inserts the selection, quoted, into the rationale at the cursor and adds the turn) and
  "Evidence" (key e); t focuses the transcript, then Up/Down move between turns. It writes the
  card's evidence field (a hidden textbox) and the rationale like typing would, then presses the
  card's hidden ``care-evsave`` / ``care-note`` button (also pressed on every ``input`` event of a
  rationale: typing, pasting, dictation), so the save and the checks run for the user's edits only;
* Ctrl+S saves, Ctrl+Enter submits (it asks first: Ctrl+Enter again says yes); evidence chips scroll the
  transcript to their turn.
"""

MAX_ITEMS = 60  # CSS rules are generated for items 1..MAX_ITEMS (WAI-SR has 12)

_PER_ITEM = "\n".join(
    f'body[data-care-item="{n}"] #care-list .care-row[data-item="{n}"] '
    '{background:#dbeafe; box-shadow: inset 3px 0 0 #2563eb;}'
    for n in range(1, MAX_ITEMS + 1))

CSS = """
/* An open session fills the viewport (SHOW_SESSION_JS scrolls it to the top): the transcript on the
   left and, on the right, the buttons over the item list beside the open card; each pane scrolls
   on its own (issue 20: 1440x900, usable at 1280x720). */
#care-session {height: calc(100vh - 10px); min-height: 520px; flex-wrap: nowrap !important;
  align-items: stretch !important;}
#care-left, #care-work {height: 100% !important; min-height: 0; flex-wrap: nowrap !important; overflow: hidden;}
#care-left {gap: .3rem !important;}
#care-session #care-transcript {flex: 1 1 0 !important; height: auto !important; min-height: 0 !important;}
#care-work {gap: .35rem !important;}
#care-work-body {flex: 1 1 0 !important; min-height: 0; flex-wrap: nowrap !important; align-items: stretch !important;
  gap: .5rem !important;}
#care-side {flex: 0 0 19rem !important; min-width: 16rem !important; height: 100%; overflow-y: auto !important;
  flex-wrap: nowrap !important;}
#care-editor {flex: 1 1 0 !important; min-width: 0 !important; height: 100%; overflow-y: auto !important;
  padding-right:.3rem; flex-wrap: nowrap;}
#care-editor .care-card {gap: .3rem !important; margin-top: 0 !important;}
#care-editor .care-card .html-container {padding: 0 !important; min-height: 0 !important;}
.care-ev-box, .care-triggers {display: none !important;}
/* a long transcript (AnnoMI: 598 turns) is laid out and painted only where it is scrolled to */
#care-transcript .care-turn {content-visibility: auto; contain-intrinsic-size: auto 3.2em;}
#care-list {flex: 0 0 auto;}
/* the list beside the card: number, scores, state and checks (the item's text is in its tooltip and on the card) */
.care-list th:nth-child(2), .care-list td.c-text, .care-list th:nth-child(3), .care-list td.c-dim {display: none;}
table.care-list {width:100%; border-collapse:collapse; table-layout:fixed; font-size:.8rem; background:#fff;}
.care-list th {text-align:left; color:#475569; font-weight:600; border-bottom:2px solid #cbd5e1; padding:.1rem .3rem;}
.care-list th, .care-list td {border-width:0 0 1px 0 !important; border-style:solid; border-color:#e2e8f0;}
.care-list td {padding:.08rem .3rem; white-space:nowrap; overflow:hidden;
  text-overflow:ellipsis;}
.care-list th:nth-child(1) {width:2.2rem;} .care-list th:nth-child(4) {width:3.1rem;}
.care-list th:nth-child(5) {width:2.5rem;} .care-list th:nth-child(6) {width:5.2rem;}
.care-list .c-no {font-weight:700; color:#1e293b;}
.care-list .c-acc {color:#15803d; font-size:.75rem;}
.care-list .c-prov {color:#475569; font-size:.7rem; white-space:nowrap;}
.care-list .c-dim {color:#64748b; font-size:.72rem; text-transform:uppercase;}
.care-list .care-badge {font-size:.7rem; padding:0 .4rem;}
.care-row {cursor:pointer;}
.care-row:hover {background:#f1f5f9;}
.care-row:focus {outline:2px solid #93c5fd; outline-offset:-2px;}
.chk-n.chk-block {color:#b91c1c;} .chk-n.chk-warn {color:#b45309;}
.st-unsaved {color:#6d28d9; border-color:#c4b5fd; background:#f5f3ff;}
.st-conflict {color:#92400e; border-color:#f59e0b; background:#fffbeb;}
#care-session .care-turn {cursor:pointer;}
#care-session .care-turn:hover {box-shadow: inset 4px 0 0 #cbd5e1;}
#care-session .care-turn:focus {outline:2px solid #93c5fd; outline-offset:-2px;}
#care-seltool {position:fixed; z-index:1000; display:none; gap:.3rem; background:#0f172a; padding:.25rem;
  border-radius:6px; box-shadow:0 4px 14px rgba(0,0,0,.25);}
#care-seltool button {background:#fff; color:#0f172a; border:0; border-radius:4px; padding:.15rem .5rem;
  font-size:.8rem;
  cursor:pointer;}
#care-editor .care-probs {display:flex; flex-wrap:wrap; gap:.2rem .55rem; min-width:0; align-items:center;}
#care-editor .pb-row {grid-template-columns: .7em 1.7rem 2em; gap:.2rem;}
#care-editor .care-score label {padding: .15rem .45rem !important; font-size: .82rem !important;}
#care-editor .care-score .wrap {gap: .25rem !important;}
#care-summary {overflow-x: auto;}
#care-side .care-summary {font-size: .74rem;}
#care-side .care-summary th, #care-side .care-summary td {padding: .1rem .3rem;}
#care-editor .care-model-top {align-items:center;}
#care-editor .care-model-version {display:inline; margin-left:.4rem;}
.care-bulk {border:2px solid #2563eb; background:#eff6ff; border-radius:8px; padding:.4rem .6rem; font-size:.88rem;}
.care-bulk-title {font-weight:600;}
.care-bulk-list {margin:.25rem 0 0; padding:0; list-style:none; display:grid; grid-template-columns:1fr 1fr;
  gap:0 1rem; max-height:8.5rem; overflow-y:auto;}
.care-bulk-list li {white-space:nowrap; overflow:hidden; text-overflow:ellipsis;}
#care-bulk:not(:has(.care-bulk)), #care-bulk-actions:not(:has(button)) {display:none !important;}
""" + _PER_ITEM

JS = r"""
() => {
  if (window.__careKeys) return;
  window.__careKeys = true;
  const q = s => document.querySelector(s);
  const openItem = () => parseInt(document.body.dataset.careItem || '0', 10);
  const rows = () => Array.from(document.querySelectorAll('#care-list .care-row'));
  const card = () => document.getElementById('care-card');
  const click = sel => { const b = q(sel); if (b) b.click(); };
  // Another item: one request (#care-show) with "N:seq" in #care-want; the reply's card head
  // says data-req="seq". Item keys pressed meanwhile wait in keyQueue (see sync, flushKeys).
  let seq = 0, pendingReq = null, pendingAt = 0;
  const keyQueue = [];
  const pending = () => {
    if (pendingReq && Date.now() - pendingAt > 15000) { pendingReq = null; setTimeout(flushKeys, 0); }
    return !!pendingReq;
  };
  const setItem = n => {
    const w = q('#care-want textarea, #care-want input');
    if (!n || !w || (n === openItem() && !pendingReq)) return;
    seq += 1; pendingReq = String(seq); pendingAt = Date.now();
    // a reply that never names this request must not hold the queued keys and clicks for ever: pending()
    // gives up after 15 s (and replays them), but only when asked, so ask once more then
    const mine = pendingReq;
    setTimeout(() => { if (pendingReq === mine) pending(); }, 15100);
    setText(w, n + ':' + seq);
    press('care-show');
  };
  // The card's head names the item shown and the request it answers: mirror it on the card and
  // the body (CSS marks the item's row and turns), then replay the keys that waited for it.
  let resyncAt = 0;
  const sync = () => {
    const h = q('#care-card .care-card-top[data-item]'), c = card();
    const n = h ? h.dataset.item : '';
    if (c && n && c.dataset.item !== n) c.dataset.item = n;
    if (n && document.body.dataset.careItem !== n) { document.body.dataset.careItem = n; shownItem(parseInt(n, 10)); }
    if (pendingReq && h && h.dataset.req === pendingReq) { pendingReq = null; flushKeys(); }
    // A head naming another item than the card's item field is a late reply for the item shown
    // before (the server answers events concurrently): the card would show one item's question over
    // another's fields. Ask for the whole card of the session's item again (at most every 2 s).
    const f = q('#care-card-item textarea, #care-card-item input');
    if (n && f && f.value && f.value !== n && !pending() && Date.now() - resyncAt > 2000) {
      resyncAt = Date.now(); press('care-resync');
    }
  };
  let syncQueued = false;
  new MutationObserver(() => { if (!syncQueued) { syncQueued = true;
    requestAnimationFrame(() => { syncQueued = false; sync(); }); } }).observe(document.body,
    {childList: true, subtree: true});
  const shownItem = n => {
    const r = q('#care-list .care-row[data-item="' + n + '"]'); if (r) r.scrollIntoView({block: 'nearest'});
    const cs = q('#care-editor'); if (cs) cs.scrollTop = 0;
    // bring the item's first evidence turn into view (its turns are marked)
    const ev = r && (r.dataset.evidence || '').split(',').filter(Boolean)[0];
    const t = ev && document.getElementById('care-turn-' + ev); if (t) scrollTurn(t);
  };
  // Scroll the transcript (only it, not the page) so that turn t is in view.
  const scrollTurn = t => {
    const box = q('#care-transcript'); if (!box) return;
    const b = box.getBoundingClientRect(), r = t.getBoundingClientRect();
    if (r.top < b.top || r.bottom > b.bottom) box.scrollTop += r.top - b.top - 40;
  };
  const visibleTurn = () => {
    const box = q('#care-transcript'); if (!box) return null;
    const top = box.getBoundingClientRect().top;
    return Array.from(box.querySelectorAll('.care-turn')).find(t => t.getBoundingClientRect().bottom > top + 4);
  };
  const step = d => {
    const ns = rows().map(r => parseInt(r.dataset.item, 10)); if (!ns.length) return;
    const k = ns.indexOf(openItem());
    setItem(ns[k < 0 ? 0 : Math.max(0, Math.min(ns.length - 1, k + d))]);
  };
  window.careOpenItem = setItem;
  const showTurn = n => {
    const t = document.getElementById('care-turn-' + n); if (!t) return;
    document.querySelectorAll('.care-turn.care-hl').forEach(x => x.classList.remove('care-hl'));
    t.classList.add('care-hl');
    t.scrollIntoView({block: 'center', behavior: 'smooth'});
  };
  window.careShowTurn = showTurn;
  // Writing a field as typing would: Gradio's value follows, and its change event fires.
  const setText = (el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); };
  const evBox = () => q('#care-evidence textarea, #care-evidence input');
  const rationale = () => q('#care-rationale textarea');
  // The user's own edits reach the server through hidden buttons (care-note: the rationale changed;
  // care-evsave: the evidence changed), pressed after Gradio took the new value; the values the
  // server sends into the fields fire nothing (no request storm after an open).
  function press(id) { setTimeout(() => { const b = document.getElementById(id); if (b) b.click(); }, 0); }
  let noteTimer = null;
  document.addEventListener('input', e => {
    const t = e.target;
    if (!t.matches || !t.matches('#care-rationale textarea')) return;
    clearTimeout(noteTimer);
    noteTimer = setTimeout(() => press('care-note'), 120);
  });
  const toggleTurn = (n, addOnly) => {
    if (pending()) { keyQueue.push(() => toggleTurn(n, addOnly)); return; }  // for the item being shown
    const b = evBox(); if (!b || b.disabled) return;
    let ev = b.value.split(/[,;\s]+/).filter(Boolean).map(Number);
    if (ev.includes(n)) { if (addOnly) return; ev = ev.filter(x => x !== n); } else ev.push(n);
    setText(b, ev.sort((x, y) => x - y).join(', '));
    press('care-evsave');
  };
  const carets = new WeakMap();
  document.addEventListener('focusout', e => {
    if (e.target.matches &&
      e.target.matches('#care-rationale textarea')) carets.set(e.target, e.target.selectionStart);
  });
  // The selection inside one transcript turn, if any: {turn, text}, widened to whole words (a
  // quote cut inside a word would not be found in the transcript) and with its double quotes
  // made single (they would end the quote early).
  const WORD = /[A-Za-z0-9\u00C0-\u024F'’]/;
  const picked = () => {
    const s = window.getSelection(); if (!s || s.isCollapsed || !s.rangeCount) return null;
    const el = n => (n && n.nodeType === 3 ? n.parentElement : n);
    const a = el(s.anchorNode) && el(s.anchorNode).closest('.care-turn');
    const f = el(s.focusNode) && el(s.focusNode).closest('.care-turn');
    if (!a || a !== f) return null;
    const tx = a.querySelector('.tx'); if (!tx) return null;
    const r = s.getRangeAt(0), full = tx.textContent;
    const offset = (node, off, dflt) => {
      if (!tx.contains(node)) return dflt;
      const p = document.createRange(); p.selectNodeContents(tx); p.setEnd(node, off); return p.toString().length;
    };
    let st = offset(r.startContainer, r.startOffset, 0), en = offset(r.endContainer, r.endOffset, full.length);
    while (st > 0 && WORD.test(full[st - 1]) && WORD.test(full[st])) st--;
    while (en < full.length && en > 0 && WORD.test(full[en - 1]) && WORD.test(full[en])) en++;
    const text = full.slice(st, en).replace(/\s+/g, ' ').replace(/["“”]/g, "'").trim().replace(/^'+|'+$/g, '').trim();
    return text ? {turn: parseInt(a.dataset.idx, 10), text} : null;
  };
  const quote = () => {
    const p = picked(); const t = rationale(); if (!p || !t || t.disabled) return;
    const pos = carets.has(t) ? Math.min(carets.get(t), t.value.length) : t.value.length;
    const before = t.value.slice(0, pos), after = t.value.slice(pos);
    const ins = (before && !/\s$/.test(before) ? ' ' : '') + '"' + p.text + '"' + (after &&
      !/^\s/.test(after) ? ' ' : '');
    setText(t, before + ins + after);
    carets.set(t, (before + ins).length);
    toggleTurn(p.turn, true);
    window.getSelection().removeAllRanges(); hideTool();
  };
  const addPicked = () => { const p = picked(); if (!p) return; toggleTurn(p.turn, true);
    window.getSelection().removeAllRanges(); hideTool(); };
  const tool = document.createElement('div');
  tool.id = 'care-seltool';
  tool.innerHTML =
    '<button type="button" data-act="quote" title="Insert the selection, quoted, into the rationale (q)">' +
    'Quote into rationale</button>' +
    '<button type="button" data-act="ev" title="Add this turn to the evidence (e)">Add as evidence</button>';
  document.body.appendChild(tool);
  tool.addEventListener('mousedown', e => e.preventDefault());  // keep the selection
  tool.addEventListener('click', e => { const b = e.target.closest('button'); if (!b) return;
    if (b.dataset.act === 'quote') quote(); else addPicked(); });
  const hideTool = () => { tool.style.display = 'none'; };
  const showTool = () => {
    const p = picked(); if (!p || !card()) { hideTool(); return; }
    const r = window.getSelection().getRangeAt(0).getBoundingClientRect();
    tool.style.display = 'flex';
    tool.style.left = Math.max(4, Math.min(window.innerWidth - tool.offsetWidth - 4, r.left)) + 'px';
    tool.style.top = Math.max(4, r.top - tool.offsetHeight - 6) + 'px';
  };
  document.addEventListener('mouseup', e => { if (!tool.contains(e.target)) setTimeout(showTool, 0); });
  document.addEventListener('click', e => {
    const chip = e.target.closest('.ev-chip');
    if (chip) { e.preventDefault(); showTurn(chip.dataset.turn); return; }
    const row = e.target.closest('#care-list .care-row');
    if (row) { setItem(parseInt(row.dataset.item, 10)); return; }
    const turn = e.target.closest('#care-session #care-transcript .care-turn');
    if (turn && !picked()) toggleTurn(parseInt(turn.dataset.idx, 10), false);
  }, true);
  // Leaving with an unsaved edit: send it (blur saves) and let the browser ask first.
  window.addEventListener('beforeunload', e => {
    if (!q('#care-status .care-save-busy')) return;
    if (document.activeElement) document.activeElement.blur();
    e.preventDefault(); e.returnValue = '';
  });
  document.addEventListener('keydown', e => {
    const mod = e.ctrlKey || e.metaKey;
    if (mod && (e.key === 's' || e.key === 'S')) { e.preventDefault(); click('#care-save'); return; }
    if (mod && e.key === 'Enter') {  // Submit asks first; Ctrl+Enter again answers "Yes, submit"
      e.preventDefault(); const yes = q('#care-submit-yes');
      click(yes && yes.offsetParent ? '#care-submit-yes' : '#care-submit'); return; }
    if (e.altKey && (e.key === 'ArrowDown' || e.key === 'ArrowUp')) {
      e.preventDefault(); if (document.activeElement) document.activeElement.blur();
      const d = e.key === 'ArrowDown' ? 1 : -1;
      if (pending()) keyQueue.push(() => step(d)); else step(d);
      return;
    }
    const t = e.target;
    const typing = t && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName)) &&
      t.type !== 'radio' && t.type !== 'checkbox';
    if (typing || mod || e.altKey) return;
    if (picked() && (e.key === 'q' || e.key === 'e')) { e.preventDefault(); if (e.key === 'q') quote();
      else addPicked(); return; }
    const turn = t && t.closest && t.closest('#care-session #care-transcript .care-turn');
    if (turn && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault();
      toggleTurn(parseInt(turn.dataset.idx, 10), false); return; }
    if (turn && (e.key === 'ArrowDown' || e.key === 'ArrowUp')) {
      const next = e.key === 'ArrowDown' ? turn.nextElementSibling : turn.previousElementSibling;
      if (next) { e.preventDefault(); next.focus({preventScroll: true}); scrollTurn(next); } return;
    }
    if (e.key === 't' && openItem()) { const v = visibleTurn(); if (v) { e.preventDefault();
      v.focus({preventScroll: true}); } return; }
    const row = t && t.closest && t.closest('#care-list .care-row');
    if (row && e.key === 'Enter') { e.preventDefault(); setItem(parseInt(row.dataset.item, 10)); return; }
    if (!openItem()) return;
    const key = row && e.key === 'ArrowDown' ? 'j' : row && e.key === 'ArrowUp' ? 'k' : e.key;
    if (!/^[jknpacA1-5]$/.test(key)) return;
    e.preventDefault();
    if (pending()) keyQueue.push(() => itemKey(key)); else itemKey(key);
  });
  // One item key on the card shown (replayed from keyQueue when it waited for a switch).
  function itemKey(key) {
    const c = card();
    if (key === 'j' || key === 'n') step(1);
    else if (key === 'k' || key === 'p') step(-1);
    else if (/^[1-5]$/.test(key)) {
      const radios = c ? c.querySelectorAll('.care-score input[type=radio]') : [];
      const r = radios[parseInt(key, 10) - 1]; if (r) r.click();
    } else if (key === 'a' || key === 'c') {
      const b = c && c.querySelector(key === 'a' ? '.care-accept' : '.care-confirm'); if (b) b.click();
    } else if (key === 'A') click('#care-accept-all');
  }
  function flushKeys() { while (keyQueue.length && !pending()) keyQueue.shift()(); }
}
"""

# After a session opened: show the session area (hidden by CSS until then), fold the queue away,
# scroll both panes to the top, mark the item the card shows.
SHOW_SESSION_JS = """() => {
  if (!document.querySelector('#care-sess-head .care-sess-head')) return;
  document.body.dataset.careSession = 'open';
  const acc = document.querySelector('#care-queue > button.label-wrap.open'); if (acc) acc.click();
  const sess = document.getElementById('care-session');
  if (sess) requestAnimationFrame(() => sess.scrollIntoView({block: 'start'}));
  for (const id of ['care-editor', 'care-transcript']) { const e = document.getElementById(id); if (e) e.scrollTop = 0;
    }
  document.querySelectorAll('.care-turn.care-hl').forEach(x => x.classList.remove('care-hl'));
  // the item shown (the server picks the first unreviewed one): the card's head names it
  const top = document.querySelector('#care-card .care-card-top[data-item]');
  if (top) { document.body.dataset.careItem = top.dataset.item;
    document.getElementById('care-card').dataset.item = top.dataset.item; }
}"""

KEYS_HELP = ('<div class="care-keys">Click a row (or <kbd>j</kbd>/<kbd>k</kbd>) to open an item · '
             '<kbd>1</kbd>–<kbd>5</kbd> score · <kbd>a</kbd> accept · <kbd>Shift</kbd>+<kbd>A</kbd> accept all · '
             '<kbd>c</kbd> confirm the rationale (client-anchored) · '
             'evidence: click a turn (or <kbd>t</kbd>, <kbd>↓</kbd>/<kbd>↑</kbd>, <kbd>Enter</kbd>), again to remove · '
             'select text: '
             '<kbd>q</kbd> quote it, <kbd>e</kbd> evidence · <kbd>Ctrl</kbd>+<kbd>S</kbd> save · '
             '<kbd>Ctrl</kbd>+<kbd>Enter</kbd> submit (twice: it asks first)</div>')
