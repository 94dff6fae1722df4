"""Admin tab sections for issue 19: the de-identification review, and logins (locks, log out everywhere).

De-identification: scan sessions (:mod:`care_model.jobs.deid`), list the findings per session
with the matched text, record the review (cleared) or redact to typed placeholders (the original
kept in the store only if the admin ticks it). Every action is audited and admin-only (checked
on the server). NER is off (:data:`care_model.text.deid.NER_NOTE` is shown).

API (admin only): ``/deid_status``, ``/deid_scan``, ``/deid_findings``, ``/deid_review``,
``/deid_redact``, ``/login_locks``, ``/unlock_login``, ``/end_sessions``.
"""
from __future__ import annotations

import gradio as gr

from care_model.text.deid import NER_NOTE

from . import admin, render, ui, validate

STATUS_HEADERS = ["Session", "Findings", "Types", "Status"]
LOCK_HEADERS = ["Who", "Failures", "Locked until"]


def _status(repo, sid: str) -> dict:
    doc = repo.deid_record(sid)
    current = repo.transcript_fingerprint(sid)
    if doc is None:
        state = "not scanned"
    elif doc.get("fingerprint") != current:
        state = "transcript changed since the scan"
    elif not doc.get("findings"):
        state = "clean"
    elif (doc.get("review") or {}).get("fingerprint") == current:
        r = doc["review"]
        state = f"{r['decision']} by {r['by']} at {ui.minute(r['at'])}"
    else:
        state = "findings to review"
    found = (doc or {}).get("findings") or []
    return {"session_id": sid, "findings": len(found), "types": sorted({f["entity"] for f in found}), "status": state}


class DeidUI:
    def __init__(self, ctx):
        self.ctx = ctx

    def _admin(self, request):
        return ui.require_role(self.ctx.repo, request, "admin")

    # ----- API + UI handlers ------------------------------------------------------------
    @ui.guard
    def deid_status(self, request: gr.Request = None) -> list:
        """Admin: every session's de-identification state (not scanned, clean, to review, cleared, redacted)."""
        self._admin(request)
        return [_status(self.ctx.repo, sid) for sid in self.ctx.repo.session_ids()]

    @ui.guard
    def deid_scan(self, session_ids: str = "", request: gr.Request = None) -> list:
        """Admin: scan sessions (ids separated by commas or spaces; empty: all); returns their states."""
        access = self._admin(request)
        from care_model.jobs.deid import scan_sessions

        ids = admin.parse_ids(session_ids) or self.ctx.repo.session_ids()
        for sid in ids:
            self.ctx.repo.get_session(sid)  # unknown ids: NotFoundError before anything is written
        scan_sessions(self.ctx.repo, ids, actor=access.username)
        return [_status(self.ctx.repo, sid) for sid in ids]

    @ui.guard
    def deid_findings(self, session_id: str, request: gr.Request = None) -> list:
        """Admin: a session's findings: turn, entity, the matched text, its placeholder."""
        self._admin(request)
        from care_model.jobs.deid import findings

        self.ctx.repo.get_session(session_id)
        return findings(self.ctx.repo, session_id)

    @ui.guard
    def deid_review(self, session_id: str, decision: str, note: str = "", request: gr.Request = None) -> dict:
        """Admin: record the review of a session's current scan (``cleared`` or ``redacted``); audited."""
        access = self._admin(request)
        from care_model.jobs.deid import record_review

        record_review(self.ctx.repo, session_id, reviewer=access.username, decision=decision, note=note)
        return _status(self.ctx.repo, session_id)

    @ui.guard
    def deid_redact(self, session_id: str, keep_original: bool, request: gr.Request = None) -> dict:
        """Admin: replace the findings with typed placeholders ([PHONE]); the original is kept only if asked."""
        access = self._admin(request)
        from care_model.jobs.deid import redact_session

        return redact_session(self.ctx.repo, session_id, actor=access.username, keep_original=keep_original)

    @ui.guard
    def login_locks(self, request: gr.Request = None) -> list:
        """Admin: current login locks."""
        return admin.login_locks(self.ctx.repo, self._admin(request))

    @ui.guard
    def unlock_login(self, who: str, request: gr.Request = None) -> dict:
        """Admin: lift a login lock (a user name, or addr:ADDRESS); audited."""
        return admin.unlock_login(self.ctx.repo, self._admin(request), who)

    @ui.guard
    def end_sessions(self, username: str, request: gr.Request = None) -> dict:
        """Admin: log a user out everywhere (``*``: everyone but you); audited."""
        return admin.end_sessions(self.ctx.repo, self._admin(request), username)

    # ----- UI-only wrappers ------------------------------------------------------------
    def _table(self, rows):
        return {"data": [[r["session_id"], r["findings"], ", ".join(r["types"]), r["status"]] for r in rows],
                "headers": STATUS_HEADERS}

    @ui.guard
    def ui_scan(self, ids: str, request: gr.Request):
        return self._table(self.deid_scan(ids, request))

    @ui.guard
    def ui_status(self, request: gr.Request):
        return self._table([r for r in self.deid_status(request) if r["status"] != "clean"])

    @ui.guard
    def ui_findings(self, sid: str, request: gr.Request):
        found = self.deid_findings(sid, request)
        if not found:
            return render.status_html(f"No recorded findings for {sid} (scan it first if it was never scanned).",
                                      "ok")
        rows = "".join(f"<tr><td>{f['turn']}</td><td>{render.esc(f['entity'])}</td><td><mark>{render.esc(f['text'])}"
                       f"</mark></td><td>{render.esc(f['placeholder'])}</td></tr>" for f in found)
        return (f'<table class="care-deid-findings"><tr><th>Turn</th><th>Type</th><th>Found</th>'
                f'<th>Redacts to</th></tr>{rows}</table>')

    @ui.guard
    def ui_clear(self, sid: str, note: str, request: gr.Request):
        r = self.deid_review(sid, "cleared", note, request)
        return render.status_html(f"{sid}: {r['status']}.", "ok")

    @ui.guard
    def ui_redact(self, sid: str, keep: bool, request: gr.Request):
        r = self.deid_redact(sid, bool(keep), request)
        kept = "the original is kept in the store" if r["kept_original"] else "the original is gone from the store"
        return render.status_html(f"{sid}: {r['findings_replaced']} findings replaced in {r['turns_changed']} turns; "
                                  f"{kept}.", "ok")

    @ui.guard
    def ui_locks(self, request: gr.Request):
        # /login_locks says "until" as "YYYY-MM-DD HH:MM:SS" in UTC; the table: to the minute, rounded up
        return {"data": [[d["who"], d["failures"], ui.minute(d["until"].replace(" ", "T") + "+00:00", up=True)]
                         for d in self.login_locks(request)],
                "headers": LOCK_HEADERS}

    @ui.guard
    def ui_unlock(self, who: str, request: gr.Request):
        r = self.unlock_login(who, request)
        return render.status_html(f"Unlocked {r['who']} ({r['cleared']} record(s) cleared).", "ok")

    @ui.guard
    def ui_end(self, who: str, request: gr.Request):
        r = self.end_sessions(who, request)
        return render.status_html("Logged out everywhere: " + (", ".join(r["logged_out"]) or "nobody") + ".", "ok")


API = ("deid_status", "deid_scan", "deid_findings", "deid_review", "deid_redact", "login_locks", "unlock_login",
       "end_sessions")


def build_section(ctx) -> DeidUI:
    """The two accordions (inside the open Admin tab) and the admin-only endpoints."""
    h = DeidUI(ctx)
    for name in API:
        validate.register(getattr(h, name), name)
    quiet = dict(api_visibility="private", show_progress="hidden")
    with gr.Accordion("De-identification (before export, publish or a shared demo)", open=False,
                      elem_id="care-deid"):
        gr.Markdown("Pattern recognizers (Presidio): e-mail, phone, URL, dates, IDs, street addresses. " + NER_NOTE)
        msg = gr.HTML(js_on_load=None, elem_id="care-deid-msg")
        with gr.Row():
            ids = gr.Textbox(label="Session ids to scan (empty: all)", elem_id="care-deid-ids")
            scan = gr.Button("Scan", variant="primary", elem_id="care-deid-scan")
            show = gr.Button("Sessions not clean", elem_id="care-deid-status")
        table = gr.Dataframe(headers=STATUS_HEADERS, interactive=False, elem_id="care-deid-table", max_height=320)
        with gr.Row():
            sid = gr.Textbox(label="Session id", elem_id="care-deid-sid")
            note = gr.Textbox(label="Review note", elem_id="care-deid-note")
            keep = gr.Checkbox(label="Keep the original transcript in the store when redacting", value=False)
        with gr.Row():
            find = gr.Button("Show findings", elem_id="care-deid-show")
            clear = gr.Button("Mark reviewed: cleared", elem_id="care-deid-clear")
            redact = gr.Button("Redact to placeholders", variant="stop", elem_id="care-deid-redact")
        found = gr.HTML(js_on_load=None, elem_id="care-deid-findings")
    scan.click(h.ui_scan, [ids], [table], **quiet)
    show.click(h.ui_status, [], [table], **quiet)
    find.click(h.ui_findings, [sid], [found], **quiet)
    clear.click(h.ui_clear, [sid, note], [msg], **quiet)
    redact.click(h.ui_redact, [sid, keep], [msg], **quiet)
    with gr.Accordion("Logins: locks and sessions", open=False, elem_id="care-logins"):
        lmsg = gr.HTML(js_on_load=None, elem_id="care-logins-msg")
        locks = gr.Dataframe(headers=LOCK_HEADERS, interactive=False, elem_id="care-locks")
        with gr.Row():
            who = gr.Textbox(label="User name (or addr:ADDRESS; * logs out everyone but you)", elem_id="care-who")
            refresh = gr.Button("Show locks", elem_id="care-locks-show")
            unlock = gr.Button("Unlock", elem_id="care-unlock")
            end = gr.Button("Log out everywhere", variant="stop", elem_id="care-end-sessions")
    refresh.click(h.ui_locks, [], [locks], **quiet)
    unlock.click(h.ui_unlock, [who], [lmsg], **quiet)
    end.click(h.ui_end, [who], [lmsg], **quiet)
    return h
