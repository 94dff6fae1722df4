"""All insights for one set of session rows, as plain data (what the page, the tab and the CLI show).

:func:`compute` runs every view; a view the data do not allow is ``{"refusal": message}``
(the message names the problem and the fix), never an exception, so one missing view does not
hide the others.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from care_model.core.errors import CareError
from care_model.insights.codes import CodeMapping, mapping_for
from care_model.insights.groups import categorical_fields, known_groups
from care_model.insights.patterns import MIN_SESSIONS, fit_patterns, mean_proportions, session_proportions
from care_model.insights.profiles import MIN_SESSIONS as MIN_COUNSELOR_SESSIONS
from care_model.insights.profiles import counselor_profiles, no_profile_message
from care_model.insights.table import SessionRow, source_title
from care_model.insights.trajectories import RUPTURE_DROP, trajectories

GROUP_FIELDS = ("mi_quality", "arm", "study_arm", "condition", "site", "group")


@dataclass
class Options:
    source: str = "model"
    model_version: str | None = None
    score_field: str = "score"
    min_counselor_sessions: int = MIN_COUNSELOR_SESSIONS
    min_regression_sessions: int = MIN_SESSIONS
    rupture_drop: float = RUPTURE_DROP
    group_field: str | None = None  # None: the first of GROUP_FIELDS present, else the first categorical field
    group_levels: tuple[str, str] | None = None
    n_boot: int = 1000
    seed: int = 0
    confidence: float = 0.95


def default_group_field(rows: Sequence[SessionRow]) -> str | None:
    cands = categorical_fields(rows)
    for f in GROUP_FIELDS:
        if f in cands:
            return f
    return cands[0] if cands else None


def _refusal(err: CareError) -> dict:
    return {"refusal": err.message}


def compute(rows: Sequence[SessionRow], opts: Options, *, mapping: CodeMapping | None = None,
            sources: Iterable[str] = ()) -> dict:
    title = source_title(opts.source, opts.model_version, opts.score_field)
    scored = [r for r in rows if any(v is not None for v in r.dims.values())]
    out: dict = {"source": title, "options": dict(opts.__dict__), "n_sessions": len(rows), "n_scored": len(scored),
                 "n_clients": len({r.client for r in scored})}
    out["profiles"] = counselor_profiles(scored, min_sessions=opts.min_counselor_sessions, n_boot=opts.n_boot,
                                         seed=opts.seed, confidence=opts.confidence)
    out["profiles"]["message"] = no_profile_message(out["profiles"])
    mapping = mapping or mapping_for(sources)
    if mapping is None:
        out["patterns"] = {"refusal": "No code mapping fits these sessions' corpus. Fix: pass --codes NAME or a JSON "
                                      "file in the format of data/codes/README.md."}
    else:
        try:
            props = session_proportions(scored, mapping)
            fits = fit_patterns(scored, mapping, min_sessions=opts.min_regression_sessions,
                                confidence=opts.confidence, props=props)
            out["patterns"] = {"mapping": mapping.name, "mapping_title": mapping.title, "citation": mapping.citation,
                               "notes": mapping.notes, "patterns": mapping.patterns, "reference": fits[0].reference,
                               "n_coded": len(props), "mean_proportions": mean_proportions(props, mapping.patterns),
                               "fits": [f.to_dict() for f in fits], "published": mapping.published}
        except CareError as err:
            out["patterns"] = {**_refusal(err), "mapping": mapping.name}
    out["trajectories"] = trajectories(scored, drop=opts.rupture_drop)
    field = opts.group_field or default_group_field(scored)
    if field is None:
        out["groups"] = {"refusal": "No categorical session field (such as mi_quality, a study arm or a site) with "
                                    "two or more values. Fix: import sessions with such a field in their metadata."}
    else:
        try:
            out["groups"] = known_groups(scored, field, opts.group_levels, n_boot=opts.n_boot, seed=opts.seed,
                                         confidence=opts.confidence)
            out["groups"]["values"] = {d: ([r.dims[d] for r in scored if str(r.fields.get(field)) == out["groups"]["a"]
                                            and r.dims.get(d) is not None],
                                           [r.dims[d] for r in scored if str(r.fields.get(field)) == out["groups"]["b"]
                                            and r.dims.get(d) is not None]) for d in out["groups"]["dims"]}
            out["groups"]["candidates"] = categorical_fields(scored)
        except CareError as err:
            out["groups"] = _refusal(err)
    return out
