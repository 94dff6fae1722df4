"""The HTTP API: one stable ``api_name`` per action, JSON in and out, login required.

Registered with ``gr.api`` (no components); call it with ``gradio_client``::

    from gradio_client import Client
    c = Client("http://127.0.0.1:7860/", auth=("ann", "password"))
    view = c.predict("s1", api_name="/open_session")

Every endpoint checks the caller's role and access on the server (:mod:`studio.access`); a
refused call raises ``gradio_client.exceptions.AppError`` with the problem and the fix, and
changes nothing. ``studio/API.md`` documents each endpoint. Two more endpoints live with their
UI because they move files: ``/export_store`` and ``/import_sessions`` (Admin tab).
"""
import gradio as gr

from . import admin, audit_trail, curation_modes, review, review_draft, review_queue, ui, validate
from .submitted import reopen_session
from .access import active_model_version, require_session, set_review_settings

ADMIN = ("admin",)


class Api:
    def __init__(self, ctx):
        self.ctx = ctx

    def _who(self, request, *roles):
        return ui.require_role(self.ctx.repo, request, *(roles or ui.ALL_ROLES))

    @ui.guard
    def whoami(self, request: gr.Request = None) -> dict:
        """The logged-in user, their role and the active model version."""
        a = self._who(request)
        return {"username": a.username, "role": a.role,
                "model_version": active_model_version(self.ctx.repo, self.ctx.predictor)}

    @ui.guard
    def list_queue(self, scope: str = "mine", search: str = "", order: str = "id", request: gr.Request = None) -> dict:
        """Sessions assigned to me ("mine") or all I may see ("all"), with status and counts."""
        return review_queue.queue_rows(self.ctx.repo, self._who(request), scope=scope, search=search, order=order,
                                 model_version=active_model_version(self.ctx.repo, self.ctx.predictor))

    @ui.guard
    def open_session(self, session_id: str, request: gr.Request = None) -> dict:
        """The transcript, the 12 items (prediction, saved label, draft, checks, version) and the summary."""
        return review.open_view(self.ctx.repo, self._who(request), session_id, predictor=self.ctx.predictor)

    @ui.guard
    def save_draft(self, session_id: str, item: int, score: int | None = None, rationale: str = "",
                   evidence: list[int] | None = None, change_reasons: list[str] | None = None,
                   expected_version: int = 0, request: gr.Request = None) -> dict:
        """Save one item as a draft on top of ``expected_version``; a stale version returns both
        versions (status "conflict") and writes nothing."""
        draft = {"score": score, "rationale": rationale, "evidence": evidence or [],
                 "change_reasons": change_reasons or []}
        return review.save_item(self.ctx.repo, self._who(request), session_id, item, draft,
                                expected_version=expected_version, predictor=self.ctx.predictor)

    @ui.guard
    def submit_session(self, session_id: str, expected_versions: dict | None = None,
                       request: gr.Request = None) -> dict:
        """Submit all items of the session at once, only if every item is saved and valid."""
        return review.submit_session(self.ctx.repo, self._who(request), session_id, expected_versions or None,
                                     predictor=self.ctx.predictor)

    @ui.guard
    def reopen_session(self, session_id: str, request: gr.Request = None) -> dict:
        """Make a submitted session editable again (its submitter or an admin; audited)."""
        return reopen_session(self.ctx.repo, self._who(request), session_id)

    @ui.guard
    def predict_session(self, session_id: str, scores_only: bool = False, request: gr.Request = None) -> dict:
        """Queue a (re)prediction of the session with the active model; returns the job."""
        access = self._who(request)
        require_session(self.ctx.repo, access, session_id)
        if self.ctx.jobs is None:
            raise gr.Error("No model is loaded in this app. Fix: start it with a model.", print_exception=False)
        return self.ctx.jobs.submit(session_id.strip(), actor=access.username, scores_only=scores_only)

    @ui.guard
    def predict_status(self, job_id: str = "", session_id: str = "", request: gr.Request = None) -> dict:
        """One job (``job_id``), the jobs of a session, or all jobs you may see, newest first."""
        access = self._who(request)
        if session_id:
            require_session(self.ctx.repo, access, session_id)
        jobs = admin.jobs_table(self.ctx.jobs, self.ctx.repo, access)
        jobs = [j for j in jobs
                if (not job_id or j["id"] == job_id) and (not session_id or j["session_id"] == session_id)]
        return {"jobs": jobs}

    @ui.guard
    def draft_rationale(self, session_id: str, item: int, score: int | None = None, source: str = "",
                        request: gr.Request = None) -> dict:
        """Queue a draft of the item's rationale for ``score`` (``source`` "expert", "client": the
        client's self-report, or "": the session's curation mode decides); returns the job. No label is written."""
        return review_draft.start_draft(self.ctx.repo, self._who(request), self.ctx.jobs, session_id.strip(), item,
                                        score, source=source)

    @ui.guard
    def draft_status(self, job_id: str, request: gr.Request = None) -> dict:
        """A draft job: state, progress and, once done, ``result`` (item, score, rationale, evidence)."""
        return review_draft.draft_result(self.ctx.repo, self._who(request), self.ctx.jobs, job_id)

    @ui.guard
    def set_setting(self, name: str, value: bool, request: gr.Request = None) -> dict:
        """Admin: change a review setting (``unassigned_visible``, ``show_ratings``; ``grounded_decoding``:
        the app's predictions quote the transcript verbatim)."""
        return set_review_settings(self.ctx.repo, self._who(request, *ADMIN), **{name: value})

    @ui.guard
    def assign_sessions(self, session_ids: list[str], usernames: list[str], mode: str = "shared",
                        request: gr.Request = None) -> dict:
        """Admin: assign sessions to experts ("shared": one label set; "independent": one each)."""
        return admin.assign_sessions(self.ctx.repo, self._who(request, *ADMIN), session_ids, usernames, mode)

    @ui.guard
    def set_curation_mode(self, session_ids: list[str], mode: str = "default", show_ratings: bool | None = None,
                          request: gr.Request = None) -> dict:
        """Admin: curate sessions "client_anchored" (score = the client's self-report) or "expert_judged"
        ("default": by whether the session has a self-report); ``show_ratings``: annotators see the
        client's and counselor's ratings (None: the store's ``show_ratings`` setting)."""
        return curation_modes.set_curation_mode(self.ctx.repo, self._who(request, *ADMIN), session_ids, mode,
                                                show_ratings)

    @ui.guard
    def list_curation_modes(self, request: gr.Request = None) -> list:
        """Admin: every session's curation mode (chosen or default) and whether annotators see ratings."""
        return curation_modes.list_curation_modes(self.ctx.repo, self._who(request, *ADMIN))

    @ui.guard
    def add_user(self, username: str, password: str, role: str, request: gr.Request = None) -> dict:
        """Admin: add a user (the store keeps a salted hash only)."""
        return admin.add_user(self.ctx.repo, self._who(request, *ADMIN), username, password, role)

    @ui.guard
    def set_role(self, username: str, role: str, request: gr.Request = None) -> dict:
        """Admin: change a user's role."""
        return admin.set_role(self.ctx.repo, self._who(request, *ADMIN), username, role)

    @ui.guard
    def set_active(self, username: str, active: bool, request: gr.Request = None) -> dict:
        """Admin: deactivate (``active`` false) or reactivate a user; audited."""
        return admin.set_active(self.ctx.repo, self._who(request, *ADMIN), username, active)

    @ui.guard
    def reset_password(self, username: str, password: str, request: gr.Request = None) -> dict:
        """Admin: give a user a new password; audited (never the password itself)."""
        return admin.reset_password(self.ctx.repo, self._who(request, *ADMIN), username, password)

    @ui.guard
    def audit_trail(self, session_id: str = "", user: str = "", action: str = "", limit: int = 500,
                    request: gr.Request = None) -> dict:
        """Admin: the audit trail, newest first, filtered by session, user and action."""
        return audit_trail.rows(self.ctx.repo, self._who(request, *ADMIN), session_id=session_id, user=user,
                                action=action, limit=limit)

    @ui.guard
    def list_users(self, request: gr.Request = None) -> list:
        """Admin: users and roles."""
        return admin.list_users(self.ctx.repo, self._who(request, *ADMIN))


ENDPOINTS = ("whoami", "list_queue", "open_session", "save_draft", "submit_session", "reopen_session",
             "predict_session",
             "predict_status", "draft_rationale", "draft_status", "set_setting", "assign_sessions", "set_curation_mode",
             "list_curation_modes", "add_user",
             "set_role", "set_active", "reset_password", "list_users", "audit_trail")


def build_tab(ctx):
    """Registers the endpoints (no visible tab)."""
    api = Api(ctx)
    for name in ENDPOINTS:
        validate.register(getattr(api, name), name)
    return api
