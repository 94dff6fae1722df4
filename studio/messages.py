"""Messages where the eye is (issue 20): the one mechanism every tab uses for what it tells the user.

Two places, both next to what caused the message:

* **an inline status line beside the buttons** (``gr.HTML`` next to them, updated by the handler):
  :func:`message_html` makes its content (``kind``: ok, busy, warn, error, idle); a handler
  returns it for the line, and a later state replaces it (an edit, the next save), so a line is
  never left saying something that stopped being true;
* **a toast anchored to the action**: errors raised as ``gr.Error`` (``studio.ui.ui_error``) and
  ``gr.Info``/``gr.Warning`` appear next to the button that was pressed (the page script
  :data:`JS` moves Gradio's toast beside the last button clicked) instead of the page's top corner.

Text goes through :func:`public_text`: server paths (Gradio's upload folder ``/tmp/gradio/<hash>/``,
the temp folder, the store's folder) are cut to the file's name. Times are written with
:func:`time_token` (now) or :func:`when_html` (any time): the browser shows them to the minute in
the user's locale and time zone (``<time class="care-time">``, rewritten by :data:`JS`); without
script they read ``HH:MM UTC``. For table cells (plain text, no script), :func:`minute` shortens an
ISO timestamp to the minute ("2026-12-06 22:41 UTC").

The help mark (:data:`HELP_MARK`) is drawn by CSS: the ⓘ character is missing from many system
fonts and showed as an empty box.

Usage in a tab::

    from studio.messages import message_html, time_token
    status = gr.HTML(message_html("Nothing imported yet.", "idle"), elem_classes=["care-msg-line"])
    ...
    return message_html(f"Imported {n} sessions from {name} at {time_token()}.", "ok")
"""
from __future__ import annotations

import html
import re
import time
from datetime import datetime, timedelta, timezone

KINDS = ("ok", "busy", "warn", "error", "idle")
_TOKEN = re.compile(r"\u27e8t:(\d+)\u27e9")  # ⟨t:EPOCH⟩, written by time_token()
# a path a user's message should not show: Gradio's uploads, temp folders, absolute paths deeper than 2 folders
_PATH = re.compile(r"(?<![\w.:/])(?:/(?:tmp|var|private|home|root|work|srv|mnt|Users)(?:/[^\s/'\"`<>|,;:()]+)+/)"
                   r"(?=[^\s/'\"`<>|,;:()]+)")
HELP_MARK = '<span class="care-help-mark" aria-hidden="true">i</span>'


def public_text(text) -> str:
    """``text`` with server folders removed from paths ("/tmp/gradio/ab12/x.csv" -> "x.csv")."""
    return _PATH.sub("", "" if text is None else str(text))


def time_token(ts: float | None = None) -> str:
    """A marker for "now" (or ``ts``) inside a message's text; :func:`message_html` shows it as a time."""
    return f"\u27e8t:{int(time.time() if ts is None else ts)}\u27e9"


def when_html(ts: float | str | None = None) -> str:
    """``<time>`` for ``ts`` (epoch seconds, an ISO string, None: now), shown to the minute in the
    user's locale by the page script; ``HH:MM UTC`` without it."""
    if isinstance(ts, str):
        try:
            dt = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        except ValueError:  # not a time: shown as it is
            return html.escape(ts)
        dt = dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
    else:
        dt = datetime.fromtimestamp(time.time() if ts is None else ts, timezone.utc)
    dt = dt.astimezone(timezone.utc)
    return (f'<time class="care-time" datetime="{dt.isoformat(timespec="seconds")}">'
            f'{dt.strftime("%H:%M")} UTC</time>')


def minute(iso: str | None, *, up: bool = False) -> str:
    """An ISO timestamp to the minute, for table cells: "2026-12-06T22:41:07.123+00:00" -> "2026-12-06 22:41 UTC".
    ``up`` rounds up to the next minute: a deadline ("locked until") is never shown as passed early."""
    if not iso:
        return ""
    try:
        dt = datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except ValueError:
        return str(iso)
    if up and (dt.second or dt.microsecond):
        dt = dt.replace(second=0, microsecond=0) + timedelta(minutes=1)
    if dt.tzinfo is not None:
        return dt.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return dt.strftime("%Y-%m-%d %H:%M")


def text_html(text) -> str:
    """Escaped, path-free text with its time tokens as ``<time>`` elements."""
    safe = html.escape(public_text(text), quote=True)
    return _TOKEN.sub(lambda m: when_html(int(m.group(1))), safe)


def plain(text) -> str:
    """The message as plain text (time tokens as ``HH:MM UTC``), e.g. for a Gradio toast or a log."""
    return _TOKEN.sub(lambda m: time.strftime("%H:%M UTC", time.gmtime(int(m.group(1)))), public_text(text))


def message_html(text, kind: str = "ok") -> str:
    """One status line: ``<div class="care-save care-save-KIND" role="status">``."""
    kind = kind if kind in KINDS else "ok"
    live = "assertive" if kind == "error" else "polite"
    return (f'<div class="care-save care-save-{kind} care-msg" data-kind="{kind}" role="status" aria-live="{live}">'
            f'{text_html(text)}</div>')


CSS = """
.care-help-mark {display:inline-flex; align-items:center; justify-content:center; width:1.05em; height:1.05em;
  border:1.5px solid currentColor; border-radius:50%; font: italic 700 .72em/1 Georgia, 'Times New Roman', serif;
  margin-left:.25em; vertical-align:.1em; opacity:.8;}
.care-msg time {font-variant-numeric: tabular-nums;}
.toast-wrap[data-care-anchor] {transition: none !important;}
"""

# Page script: times to the minute in the user's locale; toasts beside the button that caused them.
JS = r"""
() => {
  if (window.__careMessages) return;
  window.__careMessages = true;
  const fmt = el => {
    const d = new Date(el.getAttribute('datetime')); if (isNaN(d)) return;
    const today = new Date().toDateString() === d.toDateString();
    el.textContent = today ? d.toLocaleTimeString(undefined, {hour: '2-digit', minute: '2-digit'})
      : d.toLocaleString(undefined, {dateStyle: 'medium', timeStyle: 'short'});
    el.title = d.toLocaleString(); el.dataset.local = '1';
  };
  let last = null;
  document.addEventListener('click', e => {
    const b = e.target.closest && e.target.closest('button');
    if (b && !b.closest('.toast-wrap')) last = {el: b, at: Date.now()};
  }, true);
  document.addEventListener('keydown', () => {
    const a = document.activeElement; if (a && a.tagName === 'BUTTON') last = {el: a, at: Date.now()};
  }, true);
  const anchor = wrap => {
    if (!last || !last.el.isConnected || Date.now() - last.at > 60000 || !last.el.offsetParent) {
      wrap.removeAttribute('data-care-anchor'); wrap.style.top = wrap.style.left = wrap.style.right = ''; return;
    }
    const r = last.el.getBoundingClientRect(), w = wrap.offsetWidth || 400, h = wrap.offsetHeight || 80;
    let top = r.bottom + 6; if (top + h > innerHeight - 6) top = Math.max(6, r.top - h - 6);
    const left = Math.max(6, Math.min(innerWidth - w - 6, r.left + r.width / 2 - w / 2));
    wrap.style.top = top + 'px'; wrap.style.left = left + 'px'; wrap.style.right = 'auto';
    wrap.dataset.careAnchor = last.el.id || last.el.textContent.trim().slice(0, 40);
  };
  const scan = () => {
    document.querySelectorAll('time.care-time:not([data-local])').forEach(fmt);
    document.querySelectorAll('.toast-wrap').forEach(w => {
      const n = w.querySelectorAll('.toast-body').length;
      if (n && String(n) !== w.dataset.careCount) anchor(w);
      w.dataset.careCount = String(n);
    });
  };
  let queued = false;
  new MutationObserver(() => { if (!queued) { queued = true; requestAnimationFrame(() => { queued = false; scan(); }); }
  }).observe(document.body, {childList: true, subtree: true});
  scan();
}
"""
