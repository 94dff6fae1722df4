"""One line that says how far a model version's suggestions can be trusted.

Shown on review cards, in the demo and at the top of the Models tab wherever a suggestion comes
from a version without a held-out evaluation that beats the constant baselines
(:func:`care_model.stats.baselines.quality_against_baselines`):

* the embedded default (SmolLM2-135M): "a 135M demonstration model; its suggestions are not
  clinically meaningful", followed by its recorded verdict when there is one;
* any other version: its recorded verdict ("this model's scores are not better than a constant on
  N held-out sessions (C clients)"), or "no held-out evaluation against the baselines yet";
* a version whose recorded evaluation beats both baselines: no line.

The wording (:func:`notice_line`) is pure; :func:`notice_for` and :func:`notices_for` read the
version document from the store (its ``quality`` record).
"""
from __future__ import annotations

from html import escape

from care_model.inference.model_files import SMOLLM2_ID
from care_model.stats.baselines import NOT_BETTER

DEMO_MODEL = "a 135M demonstration model; its suggestions are not clinically meaningful"
NO_EVALUATION = "no held-out evaluation against the baselines yet"


def is_embedded_default(version_id: str | None) -> bool:
    """The embedded SmolLM2-135M default (its version id, with no adapter)."""
    return (version_id or "") == SMOLLM2_ID


def version_quality(doc: dict | None) -> dict | None:
    """The ``quality`` record of a version document (through the training layer when it has the reader)."""
    if not doc:
        return None
    try:
        from care_model.training.versions import version_quality as read
    except ImportError:
        return doc.get("quality") or None
    return read(doc) or None


def verdict_phrase(quality: dict | None) -> str:
    """What the recorded evaluation says, as a clause about "this model's scores"."""
    if not quality:
        return NO_EVALUATION
    verdict = str(quality.get("verdict") or "").strip()
    if not verdict:
        n = quality.get("n_sessions")
        return (f"this model's scores are not better than a constant on {n} held-out sessions" if n is not None
                else NO_EVALUATION)
    if verdict.startswith(NOT_BETTER):
        return f"this model's scores are {verdict}"
    return f"held-out evaluation: {verdict}"


def notice_line(version_id: str | None, quality: dict | None) -> str:
    """The line for suggestions of ``version_id`` with its recorded ``quality`` ('' when none is needed)."""
    beats = bool(quality and quality.get("beats_baselines"))
    if is_embedded_default(version_id):
        return f"{DEMO_MODEL}; {verdict_phrase(quality)}." if quality else f"{DEMO_MODEL}."
    if beats:
        return ""
    return f"{verdict_phrase(quality)}."


def notice_html(line: str, elem_class: str = "care-quality-notice") -> str:
    """The line as one muted, marked block ('' for no line)."""
    if not line:
        return ""
    text = line[0].upper() + line[1:]
    return (f'<div class="{elem_class}" style="font-size:.85em;color:#92400e;margin:.2rem 0" '
            f'data-notice="quality">{escape(text)}</div>')


def notice_for(repo, version_id: str | None) -> str:
    """The line for ``version_id`` from its document in ``repo`` (no document: no evaluation)."""
    if not version_id:
        return ""
    doc = None
    if repo is not None:
        from care_model.training.versions import VERSIONS

        doc = repo.collection(VERSIONS).get(version_id)
    return notice_line(version_id, version_quality(doc))


def notices_for(repo, predictions) -> dict[str, str]:
    """Version id -> its line, for the versions of ``predictions`` (Prediction objects or dicts, None skipped)."""
    versions = {(p.get("model_version") if isinstance(p, dict) else p.model_version) for p in predictions if p}
    return {v: notice_for(repo, v) for v in versions if v}
