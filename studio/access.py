"""Who may see and edit what: roles, assignments, coding slots and the review settings.

Pure functions over the :class:`store.Repository` public API (no Gradio). The Gradio handlers
turn the :class:`~care_model.core.errors.CareError` raised here into ``gr.Error`` (see
:func:`studio.ui.require_role`).

Rules
-----
* **admin** and **adjudicator** see every session; an **annotator** sees the sessions assigned
  to them, plus the sessions that have no assignment at all when the admin setting
  ``unassigned_visible`` is on. Its default is **off**: transcripts are health data, so an
  annotator sees nothing until an admin assigns it or turns the setting on (Admin tab, or the
  ``set_setting`` endpoint).
* **Coding slot** (whose label set an edit goes to): a session assigned in mode ``shared`` (the
  default, the paper's workflow) or not assigned at all has one label set in slot
  :data:`~care_model.core.records.SHARED` that everyone who may edit it edits together (conflicts are
  caught by label versions). A session assigned in mode ``independent`` (double coding) gives each
  assigned expert their own slot, their user name; an admin or adjudicator who is not one of its
  coders sees it read-only (adjudication is its own workflow).
* An annotator asking for a session outside their queue gets the same
  :class:`~care_model.core.errors.PermissionDenied` whether or not it exists (no id probing).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from care_model.core.errors import NotFoundError, PermissionDenied, ValidationError
from care_model.core.records import ROLES, SHARED

SETTINGS = "settings"
REVIEW_SETTINGS = "review"
ACTIVE_MODEL = "active_model"
# show_ratings: see studio.curation_modes. grounded_decoding: the app's predictions quote the transcript
# verbatim (care_model.text.grounding); off: the model's free answer. Read by studio.bootstrap.ActivePredictor.
DEFAULT_SETTINGS = {"unassigned_visible": False, "show_ratings": False, "grounded_decoding": True}
STAFF = ("adjudicator", "admin")


@dataclass(frozen=True)
class Access:
    """The person behind a request."""

    username: str
    role: str

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF

    def require(self, *roles: str, action: str = "this") -> "Access":
        if self.role not in roles:
            raise PermissionDenied(
                f"{self.username} ({self.role}) may not do {action}; it needs the role {' or '.join(roles)}.",
                "Ask an admin to change your role if you need it.")
        return self


def access_of(repo, username: str | None) -> Access:
    """The user's current role from the store (raises AuthError for unknown or inactive users)."""
    role = repo.role_of(username or "")
    assert role in ROLES
    return Access(username, role)


# ----- settings --------------------------------------------------------------------------
def review_settings(repo) -> dict:
    doc = repo.collection(SETTINGS).get(REVIEW_SETTINGS) or {}
    return {k: doc.get(k, v) for k, v in DEFAULT_SETTINGS.items()}


def set_review_settings(repo, access: Access, **changes) -> dict:
    access.require("admin", action="changing review settings")
    unknown = sorted(set(changes) - set(DEFAULT_SETTINGS))
    if unknown:
        raise ValidationError(f"Unknown setting(s) {unknown}.", f"Use {', '.join(DEFAULT_SETTINGS)}.")
    coll = repo.collection(SETTINGS)
    doc = coll.get(REVIEW_SETTINGS) or {"id": REVIEW_SETTINGS}
    doc.update({k: type(DEFAULT_SETTINGS[k])(v) for k, v in changes.items()})
    coll.put(doc, actor=access.username)
    return review_settings(repo)


def active_model_version(repo, predictor=None) -> str | None:
    """The model version that makes predictions: the retraining tab's choice, else the predictor's."""
    doc = repo.collection(SETTINGS).get(ACTIVE_MODEL)
    if doc and doc.get("model_version"):
        return str(doc["model_version"])
    return getattr(predictor, "model_version", None) if predictor is not None else None


# ----- sessions --------------------------------------------------------------------------
@dataclass
class SessionAccess:
    session_id: str
    visible: bool
    editable: bool
    slot: str | None  # the coding slot this user edits (None: read-only)
    mode: str  # "shared" | "independent" | "unassigned"
    annotators: list[str] = field(default_factory=list)
    note: str = ""


def session_access(access: Access, session_id: str, assignment: dict | None, settings: dict) -> SessionAccess:
    """What ``access`` may do with a session given its assignment (None: not assigned)."""
    annotators = list((assignment or {}).get("annotators") or [])
    mode = (assignment or {}).get("mode", "shared") if annotators else "unassigned"
    mine = access.username in annotators
    if access.is_staff or mine:
        visible = True
    else:
        visible = mode == "unassigned" and bool(settings.get("unassigned_visible"))
    note = ""
    if mode == "independent":
        slot = access.username if mine else None
        if visible and slot is None:
            note = "Coded independently by " + ", ".join(annotators) + "; you see it read-only."
    else:
        slot = SHARED
    return SessionAccess(session_id, visible, visible and slot is not None, slot if visible else None, mode,
                         annotators, note)


def _denied(session_id: str) -> PermissionDenied:
    return PermissionDenied(f"Session {session_id!r} is not in your queue.",
                            "Pick a session from your queue, or ask an admin to assign this one to you.")


def require_session(repo, access: Access, session_id: str, *, edit: bool = False) -> SessionAccess:
    """Check that the user may see (or edit) a session; returns its :class:`SessionAccess`."""
    session_id = str(session_id or "").strip()
    if not repo.has_session(session_id):
        if access.is_staff:
            raise NotFoundError(f"No session {session_id!r} in the store.", "Check the id in the queue.")
        raise _denied(session_id)
    sa = session_access(access, session_id, repo.assignments().get(session_id), review_settings(repo))
    if not sa.visible:
        raise _denied(session_id)
    if edit and not sa.editable:
        raise PermissionDenied(f"You cannot edit session {session_id!r}: {sa.note or 'read-only.'}",
                               "Open it as one of its coders, or ask an admin to assign it to you.")
    return sa


def visible_sessions(repo, access: Access) -> dict[str, SessionAccess]:
    """session id -> access, for every session the user may see (in id order)."""
    assignments = repo.assignments()
    settings = review_settings(repo)
    out = {}
    for sid in repo.session_ids():
        sa = session_access(access, sid, assignments.get(sid), settings)
        if sa.visible:
            out[sid] = sa
    return out
