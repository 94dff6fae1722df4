"""First run of a store: import the bundled sample sessions and their predictions, create the
first admin account; plus the lazily loaded default predictor.

* Samples: ``data/sessions.jsonl`` (sessions, ``jsonl`` format) and
  ``data/sample_predictions.jsonl`` (one ``Prediction.to_dict()`` per line, made by the
  embedded default through the project's predict command; see data/README.md) are imported
  into an empty store, all or nothing, so the first screen shows predictions at once.
* Admin: if the store has no users, one admin is created from ``--admin-user`` /
  ``--admin-password`` (or ``CARE_ADMIN_USER`` / ``CARE_ADMIN_PASSWORD``); without a password a
  random one is generated and printed once. Only its salted hash is stored.
"""
from __future__ import annotations

import json
import secrets
import threading
from dataclasses import replace
from pathlib import Path

from care_model.core.errors import CareError, ImportFormatError
from care_model.core.records import Prediction

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
SESSIONS_FILE = "sessions.jsonl"
PREDICTIONS_FILE = "sample_predictions.jsonl"


def read_predictions(path: Path) -> list[Prediction]:
    preds = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as err:
                raise ImportFormatError(f"{path}:{lineno}: not valid JSON ({err.msg}).",
                                        "Regenerate the file with the command in data/README.md.") from None
            preds.append(Prediction.from_dict(data))
    return preds


def import_samples(repo, data_dir: Path | str = DATA_DIR, *, actor: str = "system:first-run") -> dict | None:
    """Import the sample sessions (and their predictions and drafts, if present) into an empty store;
    the import report, with ``drafts_added`` (how many of ``predictions_added`` are drafts)."""
    data_dir = Path(data_dir)
    sessions = data_dir / SESSIONS_FILE
    if repo.session_ids() or not sessions.is_file():
        return None
    from store.formats import read_files

    batch = read_files([sessions], "jsonl")
    preds_file = data_dir / PREDICTIONS_FILE
    if preds_file.is_file():
        ids = {s.id for s in batch.sessions}
        batch.predictions.extend(p for p in read_predictions(preds_file) if p.session_id in ids)
    report = repo.import_batch(batch, actor=actor).to_dict()
    report["drafts_added"] = sum(p.is_draft for p in batch.predictions)  # an empty store: all of them are added
    versions = sorted({p.model_version for p in batch.predictions if not p.is_draft})
    report["quality"] = {v: record_base_quality(repo, v, actor=actor) for v in versions}
    return report


def record_base_quality(repo, version_id: str, *, actor: str = "system:first-run") -> dict | None:
    """Register the sample predictions' base version and record its verdict against the constant baselines,
    so every card of a sample suggestion says whether the model beats a constant.

    Uses :func:`care_model.jobs.quality.evaluate_version_quality` (held out by client: the base
    model was trained on none of them, so the baselines leave one client out). None when the
    predictions are not of the embedded default, or when the evaluation is refused."""
    from care_model.inference.model_files import SMOLLM2, SMOLLM2_ID
    from care_model.training.versions import register_base_version

    if version_id != SMOLLM2_ID:
        return None
    from care_model.jobs.quality import evaluate_version_quality

    from care_model.training.calibration_choice import choose_for_version

    register_base_version(repo, SMOLLM2, actor=actor)
    try:
        quality = evaluate_version_quality(repo, version_id, actor=actor)
    except CareError:  # the samples still import; the cards then say "no held-out evaluation ... yet"
        return None
    # the base version's calibration, chosen by the fixed rule on the same held-out sessions
    sessions = [repo.get_session(sid) for sid in repo.session_ids()]
    predictions = [p for s in sessions for p in repo.predictions(s.id) if not p.is_draft]
    try:
        choose_for_version(repo, version_id, predictions, sessions, actor=actor)
    except CareError:
        pass  # no recorded choice is "none", which the Models tab says
    return quality


def ensure_admin(repo, username: str | None = None, password: str | None = None) -> tuple[str, str | None] | None:
    """Create the first admin if the store has no users: (name, generated password or None)."""
    if repo.has_users():
        return None
    username = username or "admin"
    generated = None
    if not password:
        password = generated = secrets.token_urlsafe(12)
    repo.add_user(username, password, "admin", actor="system:first-run")
    return username, generated


class ActivePredictor:
    """Predicts with the store's active model version when one was promoted (the retraining
    tab records it; :func:`care_model.jobs.predict.active_spec`), else with ``spec`` (``--model``).
    With ``pinned`` the given spec is always used. Decoding follows the admin setting
    ``grounded_decoding`` (default on). Predictors are cheap to make and load their
    model on the first prediction, so the app starts at once."""

    def __init__(self, repo, spec=None, *, pinned: bool = False, config=None):
        self.repo, self.spec, self.pinned, self.config = repo, spec, pinned, config
        self._cache: dict = {}
        self._lock = threading.Lock()

    def current(self):
        from care_model.inference.models import ModelSpec, model_version_id
        from care_model.inference.predictor import PredictConfig, Predictor
        from care_model.jobs.predict import active_spec
        from care_model.training.calibration_choice import version_calibration

        from .access import review_settings

        spec = (None if self.pinned else active_spec(self.repo)) or self.spec or ModelSpec()
        decoding = "grounded" if review_settings(self.repo)["grounded_decoding"] else "free"
        if self.config is not None and self.config.backend == "openai" and self.config.decoding == "free":
            decoding = "free"  # a server without the project's logits processor (no --server-grounding)
        calibration = version_calibration(self.repo, model_version_id(spec))  # the version's own recorded choice
        key = (spec, decoding, calibration)
        with self._lock:
            if key not in self._cache:
                config = replace(self.config or PredictConfig(), decoding=decoding)
                self._cache[key] = Predictor(spec, config, version_calibration=calibration)
            return self._cache[key]

    @property
    def model_version(self) -> str:
        return self.current().model_version

    def predict_session(self, session, *, scores_only: bool = False, items=None, progress=None):
        return self.current().predict_session(session, scores_only=scores_only, items=items, progress=progress)

    def draft(self, session, targets, *, source: str = "client", progress=None):
        """Rationales for given scores (care_model.inference.predictor.Predictor.draft) with the active model."""
        return self.current().draft(session, targets, source=source, progress=progress)
