"""The curated set: one expert label per (session, item), by one rule (``CURATION_RULE``).

Frozen as a hashed snapshot for training by :mod:`care_model.text.snapshot`.

Which label counts (``CURATION_RULE``)
--------------------------------------
Only labels with status ``submitted`` are curated; drafts and discarded labels never are. For
each (session, item):

1. the :data:`~care_model.core.records.ADJUDICATED` slot's label, when it is submitted (an
   adjudicator settled the item: that is final);
2. else the :data:`~care_model.core.records.SHARED` slot's submitted label (the paper's workflow:
   the assigned experts edit one label set together);
3. else the independently coded labels (slots named by an expert, double coding): the score is
   the **lower median** of their submitted scores (``statistics.median_low``), so it is always a
   score some expert chose and, when two experts disagree, the more conservative of the two; the
   rationale and evidence come from the most recently submitted label with that score.

An item without a submitted label is not curated; a session enters the set when at least one
of its items is. ``CuratedLabel.source`` records which rule chose the label and ``label_ids``
the labels it came from. :func:`curated_labels` / :func:`resolve_unresolved` give the same
choice as :class:`~care_model.core.records.Label` records for the evaluation
(the evaluation imports them from here: the rule lives in this module only).

Score sources and curation modes
--------------------------------
Every label records where its score came from (``score_source``, :data:`SCORE_SOURCES`):

* ``client_self_report``: **client-anchored** curation (:data:`CLIENT_ANCHORED`, the paper's
  mode, section 4.2) of a session with the client's own WAI-SR: the score is the client's rating
  and cannot be changed; the expert's work is the rationale (fidelity to the dialogue,
  consistency with that score) and its evidence. The store refuses such a label whose score is
  not the client's (:func:`care_model.core.records.check_score_source`).
* ``expert``: **expert-judged** curation (:data:`EXPERT_JUDGED`) of a session without a
  self-report: the expert's own score (they code blind to the client's and counselor's ratings
  unless an admin shows them).
* ``adjudicated``: the final label an adjudicator settled.

:func:`default_curation_mode` picks the mode from whether the session has a client self-report;
:func:`score_source_for` says which source a label saved in a mode and slot records. A curated
label carries the ``score_source`` of the label it came from (for the lower median of
independent experts, the label whose score and rationale were chosen).

Pure: no torch, no storage.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field, replace
from typing import Iterable

from care_model.core.errors import ValidationError
from care_model.core.records import ADJUDICATED, SHARED, Label, Session

CURATION_RULE = "adjudicated > shared > median_low(independent); submitted only; v1"
CLIENT_ANCHORED, EXPERT_JUDGED = "client_anchored", "expert_judged"
CURATION_MODES = (CLIENT_ANCHORED, EXPERT_JUDGED)


def default_curation_mode(session: Session) -> str:
    """Client-anchored when the session has the client's self-report, else expert-judged."""
    return CLIENT_ANCHORED if session.ratings.get("client") else EXPERT_JUDGED


def score_source_for(mode: str, slot: str) -> str:
    """The ``score_source`` of a label saved in coding ``slot`` of a session curated in ``mode``."""
    if mode not in CURATION_MODES:
        raise ValidationError(f"Unknown curation mode {mode!r}.", f"Use one of {', '.join(CURATION_MODES)}.")
    if slot == ADJUDICATED:
        return "adjudicated"
    return "client_self_report" if mode == CLIENT_ANCHORED else "expert"



@dataclass
class CuratedLabel:
    session_id: str
    item: int
    score: int
    rationale: str = ""
    evidence: list[int] = field(default_factory=list)
    source: str = "shared"          # adjudicated | shared | median_of_<n> | self_report_no_rationale
    label_ids: list[str] = field(default_factory=list)
    curated_at: str = ""            # the latest updated_at of the labels it came from
    score_source: str = "expert"    # client_self_report | expert | adjudicated (records.SCORE_SOURCES)
    rationale_source: str = "unknown"  # the rationale's provenance (core.provenance.RATIONALE_SOURCES)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "CuratedLabel":
        names = set(cls.__dataclass_fields__)
        if "score_source" not in data and data.get("source") == "self_report":  # a version-1 demo snapshot
            data = {**data, "score_source": "client_self_report"}
        return cls(**{k: v for k, v in data.items() if k in names})



# ----------------------------------------------------------------------------- the rule
def _latest(labels: list[Label]) -> Label:
    return max(labels, key=lambda lab: (lab.updated_at, lab.annotator))


def curate_item(labels: Iterable[Label]) -> CuratedLabel | None:
    """The curated label of one (session, item) from all its labels, by ``CURATION_RULE``."""
    submitted = [lab for lab in labels if lab.status == "submitted" and lab.score is not None]
    if not submitted:
        return None
    by_slot = {lab.annotator: lab for lab in submitted}
    for slot, source in ((ADJUDICATED, "adjudicated"), (SHARED, "shared")):
        if slot in by_slot:
            lab = by_slot[slot]
            return CuratedLabel(lab.session_id, int(lab.item), int(lab.score), lab.rationale, list(lab.evidence),
                                source, [lab.id], lab.updated_at, lab.score_source, lab.rationale_source)
    experts = [lab for lab in submitted if lab.annotator not in (ADJUDICATED, SHARED)]
    score = int(statistics.median_low(sorted(int(lab.score) for lab in experts)))
    chosen = _latest([lab for lab in experts if int(lab.score) == score])
    return CuratedLabel(chosen.session_id, int(chosen.item), score, chosen.rationale, list(chosen.evidence),
                        f"median_of_{len(experts)}", sorted(lab.id for lab in experts),
                        max(lab.updated_at for lab in experts), chosen.score_source, chosen.rationale_source)


def submitted_by_item(labels: Iterable) -> dict[tuple[str, int], list[Label]]:
    grouped: dict[tuple[str, int], list[Label]] = {}
    for lab in labels:
        lab = lab if isinstance(lab, Label) else Label.from_dict(lab)
        if lab.status == "submitted":
            grouped.setdefault((lab.session_id, int(lab.item)), []).append(lab)
    return grouped


def reference_rationale(label: Label, rationale_provenance: Iterable[str] | None) -> Label:
    """The label as an evaluation reference: its rationale blanked (its score kept) when its
    provenance is not in ``rationale_provenance`` (None: every rationale is a reference), so model
    text saved unchanged is never the reference a model's rationale is compared with."""
    if rationale_provenance is None or label.rationale_source in set(rationale_provenance):
        return label
    return replace(label, rationale="")


def curated_labels(labels: Iterable, *, score_sources: Iterable[str] | None = None,
                   rationale_provenance: Iterable[str] | None = None
                   ) -> tuple[list[Label], list[tuple[str, int]]]:
    """The curated label per (session, item) as the :class:`Label` it is (by ``CURATION_RULE``),
    for the evaluation. Items that several experts coded independently, with no adjudicated or
    shared label, are returned apart as *unresolved* ``(session_id, item)``: their curated label
    is the lower median of the experts' scores, which no single label holds
    (:func:`resolve_unresolved` makes it). ``score_sources``: keep only curated labels whose
    score came from one of these (None: all). ``rationale_provenance``: see :func:`reference_rationale`."""
    wanted = None if score_sources is None else set(score_sources)
    chosen, unresolved = [], []
    for key, labs in submitted_by_item(labels).items():
        cur = curate_item(labs)
        if cur is None:
            continue
        if len(cur.label_ids) > 1:
            unresolved.append(key)
        elif wanted is None or cur.score_source in wanted:
            chosen.append(reference_rationale(next(lab for lab in labs if lab.id == cur.label_ids[0]),
                                              rationale_provenance))
    return chosen, unresolved


def resolve_unresolved(labels: Iterable, unresolved: Iterable[tuple[str, int]], *,
                       score_sources: Iterable[str] | None = None,
                       rationale_provenance: Iterable[str] | None = None) -> list[Label]:
    """The curated label of the ``unresolved`` items (see :func:`curated_labels`) as new
    :class:`Label` records (``annotator`` = the rule that chose it, e.g. ``median_of_2``), by the
    rule the training snapshot uses, so evaluation and training read one curated set."""
    wanted = set(unresolved)
    keep = None if score_sources is None else set(score_sources)
    out = []
    for (sid, item), labs in sorted(submitted_by_item(labels).items()):
        cur = curate_item(labs) if (sid, item) in wanted else None
        if cur is not None and (keep is None or cur.score_source in keep):
            out.append(reference_rationale(Label(
                session_id=sid, item=item, annotator=cur.source, score=cur.score, rationale=cur.rationale,
                evidence=list(cur.evidence), status="submitted", score_source=cur.score_source,
                rationale_source=cur.rationale_source), rationale_provenance))
    return out
