"""Expert agreement and adjudication of double-coded sessions, as pure functions (no Gradio).

Sessions assigned in mode ``independent`` are coded by each expert in their own slot (their user
name). Once two or more experts have *submitted* an item, it can be adjudicated:

* :func:`adjudication_queue`  sessions with items coded by 2+ experts; unresolved disagreements first
* :func:`adjudication_view`   per item the experts' labels side by side with the model's suggestion
                              and the final label if there is one
* :func:`adjudicate`          choose one (an expert's label or the model's suggestion; it is copied)
                              or write the final label; saved in the ``@adjudicated`` slot as
                              submitted, with ``adjudicated_from`` = the experts' label ids (the
                              chosen one first) and the adjudicator as the author, in the audit
                              trail like every label save. The curated set
                              (:mod:`care_model.text.curation`, :func:`care_model.text.curation.curated_labels`)
                              prefers it over everything else.
* :func:`expert_agreement_report`  per item, dimension and overall: quadratic-weighted kappa and
                              ICC(2,1) between every two experts and between each expert and the
                              model (:mod:`care_model.stats.agreement`), plus Krippendorff's alpha across
                              the experts.

The model's suggestion for an item is the prediction an expert's label started from
(``prediction_id``), else the latest prediction of the active model version (the one the session
is shown with in the review tab).

Only adjudicators and admins may use these.
"""
from __future__ import annotations

import itertools

from care_model.stats import agreement
from care_model.core.errors import ConflictError, NotFoundError, ValidationError
from care_model.core.provenance import classify, normalise
from care_model.core.records import ADJUDICATED, Label
from care_model.core.wai import load_form

from .access import Access, active_model_version
from .review import prediction_dict
from .review_queue import latest_predictions

STAFF = ("adjudicator", "admin")


def _staff(access: Access, action: str) -> None:
    access.require(*STAFF, action=action)


def _is_expert_slot(annotator: str) -> bool:
    return not annotator.startswith("@")


def _by_item(labels) -> dict[int, list[Label]]:
    out: dict[int, list[Label]] = {}
    for lab in labels:
        out.setdefault(int(lab.item), []).append(lab)
    return out


def _item_counts(labels) -> dict:
    experts = _by_item(lab for lab in labels if _is_expert_slot(lab.annotator) and lab.status == "submitted"
                       and lab.score is not None)
    final = {int(lab.item) for lab in labels if lab.annotator == ADJUDICATED and lab.status == "submitted"}
    double = {i: labs for i, labs in experts.items() if len(labs) >= 2}
    disagree = {i for i, labs in double.items() if len({lab.score for lab in labs}) > 1}
    return {"double": sorted(double), "disagree": sorted(disagree), "adjudicated": sorted(final & set(double)),
            "open_disagreements": sorted(disagree - final),
            "coders": sorted({lab.annotator for labs in double.values() for lab in labs})}


def adjudication_queue(repo, access: Access) -> list[dict]:
    """Sessions with items submitted by 2+ experts, most unresolved disagreements first."""
    _staff(access, "adjudication")
    rows = []
    for sid in repo.session_ids():
        c = _item_counts(repo.labels(sid))
        if not c["double"]:
            continue
        rows.append({"session_id": sid, "coders": c["coders"], "double_coded": len(c["double"]),
                     "disagreements": len(c["disagree"]), "open_disagreements": len(c["open_disagreements"]),
                     "adjudicated": len(c["adjudicated"]),
                     "to_do": len(set(c["double"]) - set(c["adjudicated"]))})
    rows.sort(key=lambda r: (-r["open_disagreements"], -r["to_do"], -r["disagreements"], r["session_id"]))
    return rows


def model_predictions(repo, session_id: str, labels, predictor=None) -> dict[int, object]:
    """item -> the model's suggestion: the prediction an expert's label started from, else the
    latest of the active model version."""
    out = {}
    for lab in sorted(labels, key=lambda x: x.annotator):
        if lab.prediction_id and int(lab.item) not in out:
            p = repo.get_prediction(session_id, lab.prediction_id)
            if p is not None:
                out[int(lab.item)] = p
    for p in latest_predictions(repo, session_id, active_model_version(repo, predictor)):
        out.setdefault(int(p.item), p)
    return out


def _label_dict(lab: Label, scale: dict) -> dict:
    return {"annotator": lab.annotator, "label_id": lab.id, "score": lab.score,
            "score_label": scale.get(lab.score, "") if lab.score is not None else "", "rationale": lab.rationale,
            "evidence": list(lab.evidence), "status": lab.status, "version": lab.version,
            "updated_at": lab.updated_at, "updated_by": lab.updated_by, "adjudicated_from": list(lab.adjudicated_from),
            "comment": lab.comment, "rationale_source": lab.rationale_source,
            "rationale_edit_distance": lab.rationale_edit_distance}


def adjudication_view(repo, access: Access, session_id: str, *, predictor=None) -> dict:
    """The transcript and, per item, the experts' submitted labels, the model's suggestion and
    the final label (with its version, for the next save)."""
    _staff(access, "adjudication")
    session_id = str(session_id or "").strip()
    if not repo.has_session(session_id):
        raise NotFoundError(f"No session {session_id!r} in the store.", "Pick one from the adjudication queue.")
    session = repo.get_session(session_id)
    form = load_form(session.form)
    lang = session.language if session.language in form.languages else "en"
    scale = form.scale_labels(lang)
    labels = repo.labels(session_id)
    experts = _by_item(lab for lab in labels if _is_expert_slot(lab.annotator))
    finals = {int(lab.item): lab for lab in labels if lab.annotator == ADJUDICATED}
    preds = model_predictions(repo, session_id, labels, predictor)
    items = []
    for item in form.item_ids:
        done = [lab for lab in experts.get(item, []) if lab.status == "submitted" and lab.score is not None]
        pending = sorted(lab.annotator for lab in experts.get(item, []) if lab not in done)
        final = finals.get(item)
        items.append({"item": item, "text": form.item_text(item, "client", lang), "dimension": form.dimension_of(item),
                      "experts": [_label_dict(lab, scale) for lab in sorted(done, key=lambda x: x.annotator)],
                      "pending": pending, "model": prediction_dict(preds.get(item)),
                      "final": _label_dict(final, scale) if final else None, "version": final.version if final else 0,
                      "disagree": len({lab.score for lab in done}) > 1, "ready": len(done) >= 2})
    return {"session": {"id": session.id, "language": session.language, "client_id": session.client_id,
                        "turns": [t.to_dict() for t in session.turns]},
            "scale": {str(k): v for k, v in scale.items()}, "items": items,
            "counts": {k: len(v) if isinstance(v, list) else v for k, v in _item_counts(labels).items()}}


def adjudicate(repo, access: Access, session_id: str, item: int, *, source: str | None = None,
               score: int | None = None, rationale: str | None = None, evidence: list[int] | None = None,
               comment: str = "", expected_version: int = 0, predictor=None) -> dict:
    """Save the final label of one item. ``source`` (an expert's name or ``"model"``) copies that
    label; ``score``/``rationale``/``evidence`` given explicitly override it (or write the final
    label from scratch). Returns ``{"status": "saved", "label", "version"}`` or, if someone saved
    the final label since ``expected_version``, ``{"status": "conflict", "current", "message"}``."""
    _staff(access, "adjudication")
    view = adjudication_view(repo, access, session_id, predictor=predictor)
    it = next((x for x in view["items"] if x["item"] == int(item)), None)
    if it is None:
        raise ValidationError(f"Unknown item {item!r}.", "Items are numbered 1 to 12.")
    if not it["experts"]:
        raise ValidationError(f"No expert has submitted item {item} of {session_id}.",
                              "Adjudicate items that experts have coded and submitted.")
    base: dict = {}
    source = (source or "").strip()
    if source == "model":
        if not it["model"] or it["model"].get("score") is None:
            raise ValidationError("There is no model suggestion to choose for this item.", "Choose an expert's label.")
        base = {"score": it["model"]["score"], "rationale": it["model"]["rationale"],
                "evidence": it["model"]["evidence"]}
    elif source:
        chosen = next((e for e in it["experts"] if e["annotator"] == source), None)
        if chosen is None:
            raise ValidationError(f"{source!r} has no submitted label for item {item}.",
                                  "Choose one of: "
                                  + ", ".join([e["annotator"] for e in it["experts"]] + ["model"]) + ".")
        base = {k: chosen[k] for k in ("score", "rationale", "evidence")}
    if score not in (None, ""):
        base["score"] = int(score)
    if rationale is not None and (rationale.strip() or not source):
        base["rationale"] = rationale
    if evidence is not None and (evidence or not source):
        base["evidence"] = [int(e) for e in evidence]
    if base.get("score") is None:
        raise ValidationError("The final label has no score.", "Choose a label to copy, or set a score from 1 to 5.")
    if not (base.get("rationale") or "").strip():
        raise ValidationError("The final label has no rationale.", "Copy one, or write why this score is right.")
    ids = [e["label_id"] for e in it["experts"]]
    if source and source != "model":
        ids.sort(key=lambda i: i != f"{session_id}|{int(item)}|{source}")
    copied = next((e for e in it["experts"] if normalise(e["rationale"]) == normalise(base["rationale"])), None)
    prov, dist = ((copied["rationale_source"], copied["rationale_edit_distance"]) if copied  # an expert's rationale
                  else classify(base["rationale"], [(it["model"] or {}).get("rationale")]))
    label = Label(session_id=session_id, item=int(item), annotator=ADJUDICATED, score=base["score"],
                  rationale=base["rationale"], evidence=list(base.get("evidence") or []), status="submitted",
                  prediction_id=(it["model"] or {}).get("id"), comment=str(comment or ""), adjudicated_from=ids,
                  rationale_source=prov, rationale_edit_distance=dist)
    action = f"adjudicate:{'choose:' + source if source else 'write'}"
    try:
        saved = repo.save_label(label, actor=access.username, expected_version=int(expected_version), action=action)
    except ConflictError as err:
        return {"status": "conflict", "current": err.current.to_dict() if err.current else None, "message": str(err)}
    return {"status": "saved", "label": saved.to_dict(), "version": saved.version}


# ----------------------------------------------------------------------------- agreement
def _icc21(a: dict, b: dict, keys: list) -> dict:
    if len(keys) < 2:
        return {"value": None, "low": None, "high": None, "n": len(keys), "reason": "fewer than 2 paired ratings"}
    f = agreement.icc([[a[k], b[k]] for k in keys])["ICC(2,1)"].to_dict()
    return {"value": f["value"], "low": f["low"], "high": f["high"], "n": len(keys),
            "reason": "" if f["value"] is not None else "no variance: ICC undefined"}


def pair_rows(name_a: str, a: dict, name_b: str, b: dict, form) -> list[dict]:
    """Per item, dimension and overall: n, exact agreement, quadratic-weighted kappa, ICC(2,1)."""
    common = sorted(set(a) & set(b))
    rows = []
    groups = ([(f"item {i}", {i}) for i in form.item_ids] + [(d.key, set(d.item_ids)) for d in form.dimensions]
              + [("overall", set(form.item_ids))])
    for target, ids in groups:
        keys = [k for k in common if int(k[1]) in ids]
        sa = agreement.score_agreement([a[k] for k in keys], [b[k] for k in keys], labels=form.scale.points)
        icc = _icc21(a, b, keys)
        rows.append({"rater_a": name_a, "rater_b": name_b, "target": target, "n": len(keys),
                     "exact": sa.exact.value, "qwk": sa.qwk.value, "qwk_reason": sa.qwk.reason,
                     "icc": icc["value"], "icc_low": icc["low"], "icc_high": icc["high"], "icc_reason": icc["reason"]})
    return rows


def expert_agreement_report(repo, access: Access, *, predictor=None) -> dict:
    """Agreement on the sessions coded independently by 2+ experts (submitted labels only)."""
    _staff(access, "viewing expert agreement")
    form = load_form()
    labels, preds, sessions = [], [], []
    for sid in repo.session_ids():
        labs = repo.labels(sid)
        experts = [lab for lab in labs if _is_expert_slot(lab.annotator) and lab.status == "submitted"
                   and lab.score is not None]
        if len({lab.annotator for lab in experts}) < 2:
            continue
        sessions.append(sid)
        labels += experts
        preds += [p for p in model_predictions(repo, sid, labs, predictor).values() if p.score is not None]
    by_rater = agreement.scores_by_rater(labels)
    model = {(p.session_id, int(p.item)): int(p.score) for p in preds}
    rows = []
    for x, y in itertools.combinations(sorted(by_rater), 2):
        rows += pair_rows(x, by_rater[x], y, by_rater[y], form)
    for x in sorted(by_rater):
        rows += pair_rows(x, by_rater[x], "model", model, form)
    summary = agreement.expert_agreement(labels, form=form) if labels else None
    return {"sessions": sessions, "experts": sorted(by_rater), "rows": rows,
            "alpha": {k: v.to_dict() for k, v in summary.alpha.items()} if summary else {},
            "note": "Quadratic-weighted kappa (sklearn) and ICC(2,1) (two-way random, absolute agreement, single "
                    "rater) on the (session, item) pairs both sides scored; alpha: Krippendorff ordinal across "
                    "experts."}
