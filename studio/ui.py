"""Gradio glue shared by the tabs: role checks, error translation, theme, CSS and keyboard JS.

* :func:`require_role` is called at the top of every handler: it reads the logged-in user from
  the request, looks up their *current* role in the store and raises ``gr.Error`` if it is not
  allowed. Hiding a button is never the protection.
* :func:`guard` turns the project's :class:`~care_model.core.errors.CareError` (problem + fix) into a
  ``gr.Error`` that the browser shows and that ``gradio_client`` raises as ``AppError``.
* Messages (:mod:`studio.messages`, re-exported here): :func:`message_html` for a status line
  beside the buttons, :func:`time_token` / :func:`when_html` for times the browser shows to the
  minute in the user's locale, :func:`public_text` to drop server paths, :func:`minute` for table
  cells; errors raised through :func:`ui_error` appear as a toast beside the button pressed.
"""
import functools
import html

import gradio as gr

from care_model.core.errors import AuthError, CareError, PermissionDenied

from . import messages, review_assets
from .access import Access, access_of
from .messages import HELP_MARK, message_html, minute, public_text, time_token, when_html  # noqa: F401 (for every tab)
from .review_assets import KEYS_HELP, SHOW_SESSION_JS  # noqa: F401 (the review page's script: re-exported)

# The page's script: the review keys and the messages' (times in the user's locale, anchored toasts).
JS = "() => {\n(" + review_assets.JS.strip() + ")();\n(" + messages.JS.strip() + ")();\n}"

ALL_ROLES = ("annotator", "adjudicator", "admin")


def ui_error(err: Exception) -> gr.Error:
    """The error as a toast (and the client's AppError). Gradio renders a toast's message as
    HTML, and messages quote what users typed (names, ids, values), so it is escaped: markup
    shows as text (``<`` ``>`` ``&``; quotes stay readable)."""
    return gr.Error(html.escape(messages.plain(err), quote=False), print_exception=False)


def require_role(repo, request: gr.Request | None, *roles: str) -> Access:
    """The request's user as an :class:`Access`, if their role is one of ``roles``; else gr.Error."""
    username = getattr(request, "username", None) if request is not None else None
    if not username:
        raise ui_error(AuthError("Not logged in.", "Log in again."))
    try:
        access = access_of(repo, username)
    except CareError as err:
        raise ui_error(err) from None
    if roles and access.role not in roles:
        raise ui_error(PermissionDenied(f"{username} ({access.role}) may not do this; it needs the role "
                                        f"{' or '.join(roles)}.", "Ask an admin if you need it."))
    return access


def guard(fn):
    """Decorator: CareError -> gr.Error with the problem and the fix."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CareError as err:
            raise ui_error(err) from None
    return wrapper


def theme():
    # System fonts only: the default theme would fetch Google Fonts (no outside requests here).
    return gr.themes.Default(primary_hue="blue", neutral_hue="slate",
                             font=["Inter", "ui-sans-serif", "system-ui", "Segoe UI", "Arial", "Noto Sans CJK SC",
                                   "PingFang SC", "Microsoft YaHei", "sans-serif"],
                             font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"])


CSS = """
.gradio-container {max-width: 100% !important;}
#care-topbar {display:flex; gap:1rem; align-items:center; justify-content:space-between; padding:.2rem .4rem;}
#care-topbar .care-brand {font-weight:700; font-size:1.05rem;}
.care-banner {background:#fff4d6; border:1px solid #e8c36a; color:#5c4300; padding:.5rem .8rem; border-radius:6px;
  font-weight:600;}
.care-muted {color:#64748b; font-size:.85em;}
.care-note {color:#92400e; font-size:.9em;}
#care-transcript {overflow-y: auto !important;
  border:1px solid #e2e8f0 !important; border-radius:8px; background:#fff; padding:.3rem !important;}
body:not([data-care-session="open"]) #care-session {display: none !important;}
#care-actions {align-items: center; flex-wrap: wrap !important; row-gap: .3rem !important;}
#care-actions button {flex: 0 0 auto;}
/* the status line beside the buttons; below a readable width it takes its own line above them */
#care-status {flex: 1 1 18rem !important; min-width: 18rem !important;}
#care-job:not(:has(.care-job)), #care-conflict:not(:has(.care-conflict)),
#care-conflict-actions:not(:has(button)) {display: none !important;}
.care-turn {display:grid; grid-template-columns: 2.6em 6.5em 1fr; gap:.35rem; padding:.35rem .4rem; border-radius:6px;
  line-height:1.45; font-size:.93rem; scroll-margin: 2rem;}
.care-turn.sp-client {background:#f1f7ff;}
.care-turn .tn {color:#94a3b8; text-align:right; font-variant-numeric: tabular-nums;}
.care-turn .sp {font-weight:600; color:#334155;}
.care-turn.sp-client .sp {color:#1d4ed8;}
.care-turn .tx {white-space: pre-wrap; overflow-wrap:anywhere;}
.care-turn.care-hl {background:#fde68a !important; box-shadow: inset 4px 0 0 #d97706;}
.care-sess-head {font-size:.95rem; padding:.2rem 0;}
.care-dim-title {margin:.6rem 0 .1rem; font-size:1.05rem; font-weight:700; color:#0f172a;
  border-bottom:2px solid #cbd5e1;}
.care-card {border:1px solid #d6dde6 !important; border-radius:10px !important; margin:.45rem 0 !important;
  padding:.55rem .65rem !important; background:#fbfcfe !important;}
.care-card-head {display:flex; gap:.5rem; align-items:baseline; flex-wrap:wrap;}
.care-item-no {background:#1e293b; color:#fff; border-radius:5px; padding:0 .45rem; font-weight:700;}
.care-item-text {font-weight:600; flex:1 1 20rem;}
.care-dim {color:#475569; font-size:.8rem; text-transform:uppercase; letter-spacing:.04em;}
.care-badge {font-size:.78rem; border-radius:999px; padding:.05rem .55rem; border:1px solid;}
.st-unreviewed {color:#9a3412; border-color:#fdba74; background:#fff7ed;}
.st-draft {color:#1e40af; border-color:#93c5fd; background:#eff6ff;}
.st-submitted {color:#166534; border-color:#86efac; background:#f0fdf4;}
.care-model {border-left:3px solid #94a3b8; padding:.3rem .6rem; margin:.35rem 0; background:#f8fafc;
  border-radius:4px;}
.care-model-top {display:flex; gap:1rem; justify-content:space-between; align-items:flex-start; flex-wrap:wrap;}
.care-model-score b {font-size:1.15rem;}
.care-rationale {white-space:pre-wrap; overflow-wrap:anywhere; margin:.3rem 0; font-size:.92rem;}
.care-probs {min-width: 11rem; font-size:.72rem; color:#475569;}
.pb-row {display:grid; grid-template-columns: 1em 7rem 2.4em; gap:.3rem; align-items:center;}
.pb-bar {height:.5rem; background:#e2e8f0; border-radius:3px; overflow:hidden; display:block;}
.pb-bar span {display:block; height:100%; background:#94a3b8;}
.pb-top .pb-bar span {background:#2563eb;}
.ev-chip {border:1px solid #93c5fd; background:#eff6ff; color:#1d4ed8; border-radius:5px; padding:0 .4rem;
  margin:0 .15rem;
  font-size:.8rem; cursor:pointer;}
.ev-chip:hover {background:#dbeafe;}
.care-warn {color:#b45309; font-size:.85rem;}
.care-feedback {font-size:.87rem;}
.care-checks {margin:.2rem 0; padding-left:1.1rem;}
.care-checks .chk-block {color:#b91c1c;}
.care-checks .chk-warn {color:#b45309;}
.care-ok {color:#15803d;}
.care-pending {color:#7c3aed; font-weight:600; font-size:.8rem;}
.care-diff del {background:#fee2e2; color:#991b1b;}
.care-diff ins {background:#dcfce7; color:#166534; text-decoration:none;}
.care-diff {white-space:pre-wrap; overflow-wrap:anywhere; font-size:.88rem;}
.care-save {font-size:.9rem; padding:.35rem .6rem; border-radius:6px; border:1px solid #e2e8f0;}
.care-save-ok {color:#166534; background:#f0fdf4; border-color:#bbf7d0;}
.care-save-busy {color:#6d28d9; background:#f5f3ff; border-color:#ddd6fe;}
.care-save-warn {color:#92400e; background:#fffbeb; border-color:#fde68a;}
.care-save-error {color:#991b1b; background:#fef2f2; border-color:#fecaca;}
.care-save-idle {color:#475569;}
.care-summary {border-collapse:collapse; font-size:.88rem; margin:.2rem 0;}
.care-summary th, .care-summary td {border:1px solid #e2e8f0; padding:.15rem .55rem; text-align:center;}
.care-conflict {border:2px solid #f59e0b; background:#fffbeb; border-radius:8px; padding:.5rem .7rem;}
.care-conflict-title {font-weight:700; margin-bottom:.3rem;}
.care-sides {display:grid; grid-template-columns:1fr 1fr; gap:.6rem;}
.care-side {background:#fff; border:1px solid #e5e7eb; border-radius:6px; padding:.4rem .5rem;}
.care-side-title {font-weight:600;}
.care-job {display:flex; gap:.6rem; align-items:center; font-size:.88rem;}
.care-jobbar {display:inline-block; width:10rem; height:.55rem; background:#e2e8f0; border-radius:3px; overflow:hidden;}
.care-jobbar span {display:block; height:100%; background:#7c3aed;}
.care-job-failed {color:#991b1b;}
.care-job-done {color:#166534;}
.care-keys {font-size:.8rem; color:#64748b;}
.care-score label {padding: .25rem .55rem !important; font-size: .88rem !important;}
.care-score .wrap {gap: .35rem !important;}
.care-card .block {padding: .35rem .5rem !important;}
.care-card textarea {font-size: .92rem !important; line-height: 1.4 !important;}
#care-actions .html-container, #care-actions > div:first-child {flex: 1 1 auto;}
.care-keys kbd {border:1px solid #cbd5e1; border-bottom-width:2px; border-radius:4px; padding:0 .3rem;
  background:#f8fafc;}
""" + review_assets.CSS + messages.CSS
