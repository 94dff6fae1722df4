"""Cross-validation over predictions already made: folds split by client and stratified on the
client's mean WAI-SR (sklearn's StratifiedGroupKFold), and the metrics per test fold with their mean
and sd over folds, as the paper reports. Pure: no torch, no storage.

Public API::

    cross_validation_folds(sessions, k=5, seed=0, n_bins=5) -> [(train_ids, test_ids)]
    cross_validate(sessions, predictions, labels=(), *, k=5, seed=0, **evaluate_kwargs) -> dict
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from care_model.core.errors import ValidationError
from care_model.core.records import Label, Prediction, Session
from care_model.stats.estimates import clean
from care_model.stats.evaluate import check_form, evaluate_predictions


# ---------------------------------------------------------------------------------------------
def cross_validation_folds(sessions: Sequence[tuple[str, str, float | None]], k: int = 5, seed: int = 0,
                           n_bins: int = 5) -> list[tuple[list[str], list[str]]]:
    """k folds split by client (no client in both train and test), stratified on the score.

    ``sessions``: (session_id, client_id, score) with score e.g. the client's mean WAI-SR.
    Scores are cut into ``n_bins`` quantile bins (a None score is its own stratum) and fed to
    sklearn's StratifiedGroupKFold (shuffled with ``seed``). Returns ``k`` pairs of sorted
    session-id lists; the test lists partition the sessions.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if not isinstance(k, int) or k < 2:
        raise ValidationError(f"Cross-validation needs k >= 2 folds, got {k!r}.", "Use e.g. k=5 (the paper's setting).")
    ids, clients, scores = [], [], []
    for pos, row in enumerate(sessions):
        try:
            sid, client, score = row
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"Session entry #{pos} is {row!r}.",
                                  "Pass (session_id, client_id, score) tuples.") from exc
        if not client:
            raise ValidationError(f"Session {sid!r} has no client id; folds split by client need one.",
                                  "Give every session its (pseudonymous) client id.")
        ids.append(str(sid))
        clients.append(str(client))
        scores.append(clean(score))
    if len(set(ids)) != len(ids):
        raise ValidationError("A session id appears twice in the cross-validation input.", "Pass each session once.")
    n_clients = len(set(clients))
    if n_clients < k:
        raise ValidationError(f"Only {n_clients} client(s) for {k}-fold cross-validation split by client.",
                              f"Use k <= {n_clients} (e.g. --cv {max(2, n_clients)}) or add sessions from more "
                              "clients.")
    known = np.array([s for s in scores if s is not None], dtype=float)
    if len(known):
        edges = np.unique(np.quantile(known, np.linspace(0, 1, max(1, n_bins) + 1)[1:-1]))
    else:
        edges = np.array([])
    strata = np.array([-1 if s is None else int(np.searchsorted(edges, s, side="right")) for s in scores])
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    folds = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "least populated class has fewer than k members": groups come first
        for train, test in splitter.split(np.zeros(len(ids)), strata, groups=clients):
            folds.append((sorted(ids[i] for i in train), sorted(ids[i] for i in test)))
    return folds


def cross_validate(sessions: Sequence[Session], predictions: Sequence[Prediction], labels: Sequence[Label] = (), *,
                   k: int = 5, seed: int = 0, **kwargs) -> dict:
    """Metrics per test fold (folds split by client, stratified on the client's mean WAI) of
    predictions already made, and their mean and sd (ddof=1) over folds, as the paper reports.
    Per-fold metrics are point values (no bootstrap)."""
    form = check_form(kwargs.pop("form", None), list(sessions))
    pred_sids = {p.session_id for p in predictions}
    used = [s for s in sessions if s.id in pred_sids]
    rows_in = []
    for s in used:
        client = s.ratings.get("client")
        rows_in.append((s.id, s.client_id, float(np.mean(list(client.values()))) if client else None))
    folds = cross_validation_folds(rows_in, k=k, seed=seed)
    by_id = {s.id: s for s in used}
    fold_out, values = [], {}
    for i, (_, test) in enumerate(folds):
        test_set = set(test)
        rep = evaluate_predictions([by_id[sid] for sid in test], [p for p in predictions if p.session_id in test_set],
                                   [lab for lab in labels if lab.session_id in test_set], form=form, n_boot=0,
                                   seed=seed, **kwargs)
        fold_out.append({"fold": i, "test_sessions": test, "test_clients": sorted({by_id[s].client_id for s in test}),
                         "report": rep.to_dict()})
        for r in rep.summary_rows():
            values.setdefault((r["section"], r["target"], r["metric"]), []).append(r["value"])
    summary = []
    for (section, target, metric), vals in values.items():
        got = [v for v in vals if v is not None]
        summary.append({"section": section, "target": target, "metric": metric,
                        "mean": float(np.mean(got)) if got else None,
                        "sd": float(np.std(got, ddof=1)) if len(got) > 1 else None, "n_folds": len(got)})
    return {"k": k, "seed": seed, "split": "by client, stratified on the client's mean WAI-SR",
            "folds": fold_out, "summary": summary}
