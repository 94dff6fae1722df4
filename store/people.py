"""The people methods of :class:`store.repository.Repository` (a mixin): users (salted password
hashes only, roles, active flag; every change audited in ``users.json``) and assignments (who
reviews which session, shared or independent coding; ``assignments.json``).

User names are stored NFKC-normalised and compared casefolded (:mod:`care_model.core.textcheck`):
``ANN1`` is refused beside ``ann1`` and logs in as ``ann1``. Each user carries ``sessions_epoch``,
raised by a password reset, a role change, a deactivation or :meth:`PeopleMixin.end_sessions`: the
app's logins remember the epoch they started in and end when it moves (studio.login_guard).

The mixin uses the repository's ``_lock``, ``files``, ``_keys`` and ``_rel``.
"""
from __future__ import annotations

import re
from typing import Iterable

from tinydb import Query

from care_model.core.errors import AuthError, NotFoundError, ValidationError
from care_model.core.records import ROLES, now_iso
from care_model.core.textcheck import normalise_username, username_key

from .passwords import dummy_hash, hash_password, verify_password

Q = Query()


class PeopleMixin:
    # ================================================================== users
    def _users(self):
        return self.files.db("users.json")

    def add_user(self, username: str, password: str, role: str, *, actor: str = "system") -> dict:
        username = normalise_username(username)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._@-]{1,63}", username):
            raise ValidationError(f"Bad user name {username!r}.", "Use 2-64 letters, digits, '.', '_', '-' or '@'.")
        if role not in ROLES:
            raise ValidationError(f"Unknown role {role!r}.", f"Use one of {', '.join(ROLES)}.")
        if len(password or "") < 8:
            raise ValidationError("The password is shorter than 8 characters.", "Choose a longer password.")
        with self._lock:
            same = self._find_user(username)
            if same is not None:
                also = "" if same["username"] == username else f" as {same['username']!r} (names ignore case)"
                raise ValidationError(f"User {username!r} already exists{also}.",
                                      "Pick another name, or set the role with set-role.")
            doc = {"username": username, "role": role, "password": hash_password(password), "active": True,
                   "created_at": now_iso(), "created_by": actor, "sessions_epoch": 0}
            with self.files.transaction():
                self._users().table("users").insert(doc)
                self._audit_user(actor, username, "create", None, doc)
            return self._public_user(doc)

    def _audit_user(self, actor, username, action, before, after):
        def strip(d):
            return {k: v for k, v in d.items() if k != "password"} if d else None

        self._users().table("audit").insert({"at": now_iso(), "who": actor, "entity": "user", "entity_id": username,
                                             "action": action, "before": strip(before), "after": strip(after)})

    @staticmethod
    def _public_user(doc) -> dict:
        return {k: v for k, v in dict(doc).items() if k != "password"}

    def _find_user(self, username: str):
        """The stored user whose name matches ``username`` ignoring case and Unicode form, or None."""
        key = username_key(username or "")
        table = self._users().table("users")
        doc = table.get(Q.username == username)
        if doc is None and key:
            doc = next((d for d in table.all() if username_key(d["username"]) == key), None)
        return doc

    def canonical_username(self, username: str) -> str | None:
        """The stored spelling of ``username`` (``ADMIN`` -> ``admin``), or None if there is no such user."""
        with self._lock:
            doc = self._find_user(username)
            return doc["username"] if doc is not None else None

    def _user_doc(self, username: str):
        doc = self._find_user(username)
        if doc is None:
            raise NotFoundError(f"No user {username!r}.", "Add the user first (care store add-user ...).")
        return doc

    def get_user(self, username: str) -> dict:
        with self._lock:
            return self._public_user(self._user_doc(username))

    def users(self) -> list[dict]:
        with self._lock:
            return [self._public_user(d) for d in self._users().table("users").all()]

    def has_users(self) -> bool:
        with self._lock:
            return len(self._users().table("users")) > 0

    def _update_user(self, username, changes: dict, actor: str, action: str, *, end_sessions: bool = False) -> dict:
        with self._lock:
            before = dict(self._user_doc(username))
            if end_sessions:
                changes = {**changes, "sessions_epoch": int(before.get("sessions_epoch", 0)) + 1}
            after = {**before, **changes}
            with self.files.transaction():
                self._users().table("users").update(changes, Q.username == before["username"])
                self._audit_user(actor, username, action, before, after)
            return self._public_user(after)

    def set_role(self, username: str, role: str, *, actor: str) -> dict:
        if role not in ROLES:
            raise ValidationError(f"Unknown role {role!r}.", f"Use one of {', '.join(ROLES)}.")
        return self._update_user(username, {"role": role}, actor, "set_role", end_sessions=True)

    def set_password(self, username: str, password: str, *, actor: str) -> dict:
        if len(password or "") < 8:
            raise ValidationError("The password is shorter than 8 characters.", "Choose a longer password.")
        return self._update_user(username, {"password": hash_password(password)}, actor, "set_password",
                                 end_sessions=True)

    def set_active(self, username: str, active: bool, *, actor: str) -> dict:
        return self._update_user(username, {"active": bool(active)}, actor, "activate" if active else "deactivate",
                                 end_sessions=not active)

    def end_sessions(self, username: str, *, actor: str) -> dict:
        """Log the user out everywhere: every app login made before now ends at its next request."""
        return self._update_user(username, {}, actor, "end_sessions", end_sessions=True)

    def sessions_epoch(self, username: str) -> int | None:
        """The user's session epoch, or None when the user is unknown or inactive (no session is valid)."""
        with self._lock:
            doc = self._users().table("users").get(Q.username == (username or ""))
            if doc is None or not doc.get("active", True):
                return None
            return int(doc.get("sessions_epoch", 0))

    def check_password(self, username: str, password: str) -> bool:
        """Whether the password is right for an active user. Unknown and inactive users cost one
        scrypt check too (a dummy hash), so the answer takes the same time either way."""
        with self._lock:
            doc = self._find_user(username)
            stored = doc["password"] if doc and doc.get("active", True) else None
        ok = verify_password(password or "", stored or dummy_hash())
        return bool(stored) and ok

    def role_of(self, username: str) -> str:
        with self._lock:
            doc = self._users().table("users").get(Q.username == (username or ""))
            if doc is None or not doc.get("active", True):
                raise AuthError(f"Unknown or inactive user {username!r}.", "Log in again with an active account.")
            return doc["role"]

    # ================================================================== assignments
    def _assignments(self):
        return self.files.db("assignments.json").table("assignments")

    def assign(self, session_ids: Iterable[str], annotators: Iterable[str], *, actor: str,
               mode: str = "shared") -> int:
        """Assign sessions to experts. ``mode`` "shared": they edit one label set together;
        "independent": each codes alone (double coding, for agreement)."""
        if mode not in ("shared", "independent"):
            raise ValidationError(f"Unknown assignment mode {mode!r}.", "Use 'shared' or 'independent'.")
        with self._lock:
            names = list(annotators)
            for n in names:
                self._user_doc(n)
            n_new = 0
            with self.files.transaction():
                for sid in session_ids:
                    self._rel(sid, "session")
                    doc = self._assignments().get(Q.session_id == sid)
                    before = dict(doc) if doc else None
                    who = sorted(set((doc or {}).get("annotators", [])) | set(names))
                    after = {"session_id": sid, "annotators": who, "mode": mode, "updated_at": now_iso(),
                             "updated_by": actor}
                    if doc is None:
                        self._assignments().insert(after)
                    else:
                        self._assignments().update(after, doc_ids=[doc.doc_id])
                    n_new += len(set(who) - set((before or {}).get("annotators", [])))
                    self.files.db("assignments.json").table("audit").insert(
                        {"at": after["updated_at"], "who": actor, "entity": "assignment", "entity_id": sid,
                         "action": "assign", "before": before, "after": after})
            return n_new

    def unassign(self, session_id: str, annotator: str, *, actor: str) -> None:
        with self._lock:
            doc = self._assignments().get(Q.session_id == session_id)
            if not doc or annotator not in doc["annotators"]:
                return
            after = {**doc, "annotators": [a for a in doc["annotators"] if a != annotator], "updated_at": now_iso(),
                     "updated_by": actor}
            with self.files.transaction():
                self._assignments().update(after, doc_ids=[doc.doc_id])
                self.files.db("assignments.json").table("audit").insert(
                    {"at": after["updated_at"], "who": actor, "entity": "assignment", "entity_id": session_id,
                     "action": "unassign", "before": dict(doc), "after": after})

    def assignments(self) -> dict[str, dict]:
        """session id -> {"annotators": [...], "mode": "shared" | "independent"}"""
        with self._lock:
            return {d["session_id"]: {"annotators": list(d["annotators"]), "mode": d.get("mode", "shared")}
                    for d in self._assignments().all()}
