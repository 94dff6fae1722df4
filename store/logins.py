"""Login throttling records of :class:`store.repository.Repository` (a mixin): failed logins per
account and per address with exponential back-off, kept in ``logins.json`` so a restart does not
reset them, and an audit entry per failure, lockout, success and unlock (table ``audit``).

A key is ``user:<name>`` (the name compared as :func:`care_model.core.textcheck.username_key`,
whether or not such a user exists, so a lock tells nothing about which names exist) or
``addr:<client address>``. After ``free`` failures (:class:`LoginPolicy`: 5 per account, 20 per
address) each further failure locks the key for ``base_s`` seconds doubling up to ``max_s``
(1 s ... 15 min). A success clears the account's count (not the address's); a count whose last
failure is older than ``forget_s`` starts again. An admin lifts a lock with :meth:`unlock_login`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from tinydb import Query

from care_model.core.records import now_iso
from care_model.core.textcheck import username_key

Q = Query()


@dataclass(frozen=True)
class LoginPolicy:
    """How many failures are free and how long the locks after them last (seconds)."""

    free_per_user: int = 5
    free_per_address: int = 20
    base_s: float = 1.0
    max_s: float = 15 * 60.0
    forget_s: float = 24 * 3600.0

    def lock_s(self, failures: int, free: int) -> float:
        """How long a key is locked after its ``failures``-th failure (0: not locked)."""
        if failures <= free:
            return 0.0
        return min(self.max_s, self.base_s * 2 ** min(failures - free - 1, 40))


def user_key(username: str) -> str:
    return "user:" + username_key(username)[:64]


def address_key(address: str) -> str:
    return "addr:" + str(address or "unknown")[:64]


class LoginsMixin:
    def _logins(self):
        return self.files.db("logins.json")

    def _login_audit(self, who: str, entity_id: str, action: str, after: dict | None = None) -> None:
        self._logins().table("audit").insert({"at": now_iso(), "who": who, "entity": "login", "entity_id": entity_id,
                                              "action": action, "before": None, "after": after})

    def login_locked_until(self, username: str, address: str) -> float:
        """The time (epoch seconds) until which a login for ``username`` from ``address`` is
        refused; 0 when neither is locked."""
        now = time.time()
        with self._lock:
            table = self._logins().table("throttle")
            until = [float(d.get("locked_until", 0)) for k in (user_key(username), address_key(address))
                     if (d := table.get(Q.key == k)) is not None]
        return max([u for u in until if u > now], default=0.0)

    def record_login_failure(self, username: str, address: str, policy: LoginPolicy) -> float:
        """Count a failed login for the account and the address (audited); returns the time until
        which the login is now locked (0: not locked)."""
        now = time.time()
        name = username_key(username)[:64]
        locked = 0.0
        with self._lock, self.files.transaction():
            table = self._logins().table("throttle")
            for key, free in ((user_key(username), policy.free_per_user), (address_key(address),
                                                                             policy.free_per_address)):
                doc = table.get(Q.key == key)
                failures = 1 if doc is None or now - float(doc.get("last_failure", 0)) > policy.forget_s \
                    else int(doc["failures"]) + 1
                lock_s = policy.lock_s(failures, free)
                until = now + lock_s if lock_s else 0.0
                new = {"key": key, "failures": failures, "last_failure": now, "locked_until": until}
                if doc is None:
                    table.insert(new)
                else:
                    table.update(new, doc_ids=[doc.doc_id])
                if until:
                    locked = max(locked, until)
                    self._login_audit(address, key, "lock", {"failures": failures, "seconds": lock_s})
            self._login_audit(address, name, "login_failed", None)
        return locked

    def record_login_success(self, username: str, address: str) -> None:
        """A successful login: the account's failure count starts again (audited)."""
        with self._lock, self.files.transaction():
            self._logins().table("throttle").remove(Q.key == user_key(username))
            self._login_audit(address, username, "login", None)

    def login_locks(self) -> list[dict]:
        """Current locks: key, failures, locked_until (epoch seconds), for the Admin tab."""
        now = time.time()
        with self._lock:
            return [{"key": d["key"], "failures": d["failures"], "locked_until": d["locked_until"]}
                    for d in self._logins().table("throttle").all() if float(d.get("locked_until", 0)) > now]

    def unlock_login(self, who: str, *, actor: str) -> int:
        """Lift the lock and failure count of a user name (or ``addr:ADDRESS``); audited. Returns
        how many records were cleared."""
        key = who if who.startswith("addr:") else user_key(who)
        with self._lock, self.files.transaction():
            removed = self._logins().table("throttle").remove(Q.key == key)
            self._login_audit(actor, key, "unlock", {"cleared": len(removed)})
        return len(removed)
