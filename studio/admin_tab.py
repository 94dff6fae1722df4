"""The Admin tab: settings, users, assignments, import (predicted in the background), export.

Shown only to admins (a page-load hook), and every handler checks the role again on the server.
``/export_store`` and ``/import_sessions`` are the API names of the two file-moving actions.
"""
import gradio as gr

from care_model.core.records import ROLES

from . import admin, audit_trail, curation_modes, render, ui, validate
from .access import review_settings, set_review_settings
from store.formats import FORMATS

USER_HEADERS = ["User", "Role", "Active"]
AUDIT_HEADERS = ["When", "Who", "What", "Id", "Action", "Changed fields"]


def _jobs_html(jobs: list[dict]) -> str:
    if not jobs:
        return '<div class="care-muted">No predict jobs since the app started.</div>'
    return "".join(render.job_html(j) for j in jobs[:30])


class AdminUI:
    def __init__(self, ctx):
        self.ctx = ctx

    def _admin(self, request):
        return ui.require_role(self.ctx.repo, request, "admin")

    def on_load(self, request: gr.Request):
        access = ui.require_role(self.ctx.repo, request, *ui.ALL_ROLES)
        is_admin = access.role == "admin"
        if not is_admin:
            return gr.update(visible=False), gr.Timer(active=False), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        s = review_settings(self.ctx.repo)
        busy = bool(self.ctx.jobs and self.ctx.jobs.jobs(active_only=True))
        return (gr.update(visible=True), gr.Timer(active=busy), s["unassigned_visible"], self._users_value(access),
                s["show_ratings"], s["grounded_decoding"])

    def _users_value(self, access):
        rows = [[u["username"], u["role"], "yes" if u["active"] else "no"] for u in admin.list_users(self.ctx.repo,
                                                                                                     access)]
        return {"data": rows, "headers": USER_HEADERS}

    @ui.guard
    def save_settings(self, unassigned_visible: bool, show_ratings: bool, grounded: bool, request: gr.Request):
        s = set_review_settings(self.ctx.repo, self._admin(request), unassigned_visible=bool(unassigned_visible),
                                show_ratings=bool(show_ratings), grounded_decoding=bool(grounded))
        visible = "visible to all annotators" if s["unassigned_visible"] else "hidden from annotators"
        decoding = ("grounded decoding (verbatim quotes)." if s["grounded_decoding"]
                    else "free decoding (the model's own answer).")
        return render.status_html("Unassigned sessions are now " + visible
                                  + "; annotators " + ("see" if s["show_ratings"] else "do not see")
                                  + " the client's and counselor's ratings while coding (unless set per session)."
                                  + " New predictions use " + decoding, "ok")

    @ui.guard
    def set_mode(self, session_ids: str, mode: str, show: str, request: gr.Request):
        show_ratings = {"store": None, "show": True, "hide": False}[show or "store"]
        r = curation_modes.set_curation_mode(self.ctx.repo, self._admin(request), session_ids, mode, show_ratings)
        modes = ", ".join(f"{sid}: {curation_modes.MODE_NAMES[m]}" for sid, m in r["modes"].items())
        return render.status_html(f"Curation mode set for {r['sessions']} session(s): {modes}.", "ok")

    @ui.guard
    def add_user(self, username: str, password: str, role: str, request: gr.Request):
        access = self._admin(request)
        u = admin.add_user(self.ctx.repo, access, username, password, role)
        return render.status_html(f"Added {u['username']} ({u['role']}).", "ok"), self._users_value(access), ""

    @ui.guard
    def set_role(self, username: str, role: str, request: gr.Request):
        access = self._admin(request)
        u = admin.set_role(self.ctx.repo, access, username, role)
        return render.status_html(f"{u['username']} is now {u['role']}.", "ok"), self._users_value(access)

    @ui.guard
    def set_active(self, username: str, active: bool, request: gr.Request):
        access = self._admin(request)
        u = admin.set_active(self.ctx.repo, access, (username or "").strip(), active)
        state = "active again" if u["active"] else "deactivated: they can no longer log in or call the API"
        return render.status_html(f"{u['username']} is {state}.", "ok"), self._users_value(access)

    def deactivate(self, username: str, request: gr.Request):
        return self.set_active(username, False, request)

    def reactivate(self, username: str, request: gr.Request):
        return self.set_active(username, True, request)

    @ui.guard
    def reset_password(self, username: str, password: str, request: gr.Request):
        access = self._admin(request)
        u = admin.reset_password(self.ctx.repo, access, (username or "").strip(), password or "")
        return render.status_html(f"New password set for {u['username']}.", "ok"), ""

    @ui.guard
    def audit(self, session_id: str, user: str, action: str, request: gr.Request):
        r = audit_trail.rows(self.ctx.repo, self._admin(request), session_id=session_id or "", user=user or "",
                             action=action or "")
        note = f"{r['total']} {'entry' if r['total'] == 1 else 'entries'}"
        if r["total"] > len(r["rows"]):
            note += f" (newest {len(r['rows'])} shown)"
        table = [[ui.minute(row["at"]), *(row[k] for k in audit_trail.COLUMNS[1:])] for row in r["rows"]]
        return ({"data": table, "headers": AUDIT_HEADERS},
                render.status_html(note, "idle"))

    @ui.guard
    def export_audit(self, session_id: str, user: str, action: str, request: gr.Request) -> str:
        return audit_trail.export(self.ctx.repo, self._admin(request), session_id=session_id or "", user=user or "",
                                  action=action or "")

    @ui.guard
    def assign(self, session_ids: str, usernames: str, mode: str, request: gr.Request):
        r = admin.assign_sessions(self.ctx.repo, self._admin(request), session_ids, usernames, mode)
        return render.status_html(f"Assigned {r['sessions']} sessions to {', '.join(r['users'])} ({r['mode']}); "
                                  f"{r['new_assignments']} new assignments.", "ok")

    @ui.guard
    @validate.checked("import_sessions")
    def import_files(self, files, fmt: str, predict: bool, request: gr.Request):
        access = self._admin(request)
        paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in (files or [])]
        r = admin.import_files(self.ctx.repo, access, self.ctx.jobs, paths, fmt, predict=bool(predict))
        r["warnings"] = [ui.public_text(w) for w in r["warnings"]]  # the report too: no /tmp/gradio/... paths
        msg = (f"Imported {r['added']} new sessions ({r['skipped']} already stored), {r['ratings_set']} ratings, "
               f"{r['predictions_added']} predictions, {r['labels_added']} labels; "
               f"{len(r['predict_jobs'])} queued for prediction.")
        if r.get("deid_findings"):
            msg += (f" De-identification: {len(r['deid_findings'])} new session(s) have findings to review "
                    "(De-identification, below).")
        return render.status_html(msg + "".join(f" Warning: {w}" for w in r["warnings"][:5]), "ok"), r

    def follow_jobs(self, request: gr.Request):
        """After an import: poll the predict jobs while any is waiting or running."""
        access = ui.require_role(self.ctx.repo, request, *ui.ALL_ROLES)
        busy = access.role == "admin" and bool(self.ctx.jobs and self.ctx.jobs.jobs(active_only=True))
        return gr.Timer(active=busy)

    @ui.guard
    def export(self, request: gr.Request) -> str:
        return admin.export_store(self.ctx.repo, self._admin(request))

    @ui.guard
    def export_override(self, request: gr.Request) -> str:
        """Export although some sessions are not cleared by the de-identification check (audited)."""
        return admin.export_store(self.ctx.repo, self._admin(request), override=True)

    def jobs(self, request: gr.Request):
        """Timer: the predict jobs list; the timer stops once no job is waiting or running."""
        access = ui.require_role(self.ctx.repo, request, *ui.ALL_ROLES)
        if access.role != "admin":
            return gr.skip(), gr.Timer(active=False)
        jobs = admin.jobs_table(self.ctx.jobs, self.ctx.repo, access)
        busy = any(j["state"] in ("queued", "running") for j in jobs)
        return _jobs_html(jobs), gr.skip() if busy else gr.Timer(active=False)


def build_tab(ctx):
    h = AdminUI(ctx)
    quiet = dict(api_visibility="private", show_progress="hidden")
    with gr.Tab("Admin", id="admin", visible=False, elem_id="care-admin-tab") as tab:
        ctx.staff_only(tab)  # not in an annotator's page (studio.role_view)
        msg = gr.HTML(js_on_load=None, elem_id="care-admin-msg")
        with gr.Row():
            with gr.Column():
                gr.Markdown("### Review settings")
                unassigned = gr.Checkbox(label="Sessions with no assignment are visible to all annotators",
                                         value=False, elem_id="care-unassigned")
                show_ratings = gr.Checkbox(label="Annotators see the client's and counselor's ratings while coding "
                                                 "(off: expert-judged sessions are coded blind)", value=False,
                                           elem_id="care-show-ratings")
                grounded = gr.Checkbox(label="Grounded decoding: the score is the model's most probable option and "
                                       "every "
                                             "quote is verbatim from the item's most relevant client turns (off: the "
                                             "model's free answer)", value=True, elem_id="care-grounded")
                gr.Button("Save settings", elem_id="care-save-setting").click(h.save_settings,
                                                                              [unassigned, show_ratings, grounded],
                                                                              [msg], **quiet)
                gr.Markdown("### Assign sessions")
                a_ids = gr.Textbox(label="Session ids (comma or space separated)", elem_id="care-assign-ids")
                a_users = gr.Textbox(label="User names", elem_id="care-assign-users")
                a_mode = gr.Radio([("Shared (one label set)", "shared"), ("Independent (double coding)",
                                                                          "independent")],
                                  value="shared", label="Mode")
                gr.Button("Assign", elem_id="care-assign").click(h.assign, [a_ids, a_users, a_mode], [msg], **quiet)
                c_mode = gr.Radio([("Default (client-anchored when the session has the client's self-report)",
                                    "default"),
                                   ("Client-anchored (score = the client's self-report; the expert writes the "
                                    "rationale)",
                                    "client_anchored"),
                                   ("Expert-judged (the expert's own score)", "expert_judged")],
                                  value="default", label="Curation mode of these sessions",
                                  elem_id="care-curation-mode-pick")
                c_show = gr.Radio([("As the store setting", "store"), ("Show", "show"), ("Hide", "hide")],
                                  value="store",
                                  label="Ratings visible to their annotators", elem_id="care-curation-show")
                gr.Button("Set curation mode", elem_id="care-set-mode").click(h.set_mode, [a_ids, c_mode, c_show],
                                                                              [msg],
                                                                              **quiet)
            with gr.Column():
                gr.Markdown("### Users")
                users = gr.Dataframe(headers=USER_HEADERS, interactive=False, elem_id="care-users")
                with gr.Row():
                    u_name = gr.Textbox(label="User name")
                    u_pw = gr.Textbox(label="Password (8+ characters)", type="password")
                    u_role = gr.Dropdown(list(ROLES), value="annotator", label="Role")
                with gr.Row():
                    gr.Button("Add user", elem_id="care-add-user").click(h.add_user, [u_name, u_pw, u_role],
                                                                         [msg, users, u_pw], **quiet)
                    gr.Button("Set role", elem_id="care-set-role").click(h.set_role, [u_name, u_role], [msg, users],
                                                                         **quiet)
                with gr.Row():
                    gr.Button("Deactivate", variant="stop", elem_id="care-deactivate").click(
                        h.deactivate, [u_name], [msg, users], **quiet)
                    gr.Button("Reactivate", elem_id="care-reactivate").click(h.reactivate, [u_name], [msg, users],
                                                                             **quiet)
                    gr.Button("Reset password", elem_id="care-reset-password").click(
                        h.reset_password, [u_name, u_pw], [msg, u_pw], **quiet)
        with gr.Row():
            with gr.Column():
                gr.Markdown("### Import transcripts (new sessions are predicted in the background)")
                files = gr.File(file_count="multiple", label="Files", elem_id="care-import-files")
                fmt = gr.Dropdown(list(FORMATS), value="jsonl", label="Format")
                predict = gr.Checkbox(value=True, label="Predict new sessions with the active model")
                report = gr.JSON(label="Import report", visible=False)
                import_btn = gr.Button("Import", elem_id="care-import")
            with gr.Column():
                gr.Markdown("### Export")
                out = gr.File(label="Export (JSONL: sessions, predictions, labels)", elem_id="care-export-file")
                gr.Button("Export store", elem_id="care-export").click(h.export, [], [out], api_name="export_store")
                gr.Button("Export anyway (override the de-identification check; audited)", size="sm",
                          elem_id="care-export-override").click(h.export_override, [], [out],
                                                                api_name="export_store_override")
                gr.Markdown("### Predict jobs")
                jobs = gr.HTML(js_on_load=None, elem_id="care-jobs")
        from .publish_ui import build_publish_section
        build_publish_section(ctx)  # the curated set as a Hugging Face dataset (issue 22)
        with gr.Accordion("Audit trail", open=False, elem_id="care-audit"):
            with gr.Row():
                au_sid = gr.Textbox(label="Session id", elem_id="care-audit-session")
                au_user = gr.Textbox(label="User (who did it, or whom it concerns)", elem_id="care-audit-user")
                au_action = gr.Textbox(label="Action (e.g. submit, reopen, deactivate)", elem_id="care-audit-action")
            with gr.Row():
                au_show = gr.Button("Show", variant="primary", elem_id="care-audit-show")
                au_export = gr.Button("Export (JSONL)", elem_id="care-audit-export")
            au_note = gr.HTML(js_on_load=None, elem_id="care-audit-note")
            au_table = gr.Dataframe(headers=AUDIT_HEADERS, interactive=False, elem_id="care-audit-table",
                                    max_height=420)
            au_file = gr.File(label="Audit export", elem_id="care-audit-file")
        au_in = [au_sid, au_user, au_action]
        au_show.click(h.audit, au_in, [au_table, au_note], **quiet)
        au_export.click(h.export_audit, au_in, [au_file], **quiet)  # the API reads rows with /audit_trail
        timer = gr.Timer(2.0, active=False)  # runs only while predict jobs are waiting or running
        timer.tick(h.jobs, [], [jobs, timer], **quiet)
        import_btn.click(h.import_files, [files, fmt, predict], [msg, report], api_name="import_sessions",
                         show_progress="minimal").then(h.follow_jobs, [], [timer], **quiet)
        from . import deid_ui

        deid_ui.build_section(ctx)  # de-identification review, locked logins, log out everywhere
    ctx.on_load(h.on_load, [], [tab, timer, unassigned, users, show_ratings, grounded])
    return h
