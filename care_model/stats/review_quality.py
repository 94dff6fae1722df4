"""How experts treated each model version's suggestions, from the rationale provenance of their
labels (:mod:`care_model.core.provenance`). Pure: labels and predictions in, numbers out.

For every model version whose suggestions experts reviewed (a label's ``prediction_id`` names the
suggestion shown on the card), over the labels with a known provenance (``unknown`` ones, saved
before provenance was recorded, are counted apart and left out of the rates):

* ``acceptance_rate``  share of items whose rationale is the model's text unchanged
                       (``accepted`` + ``bulk_accepted``); ``bulk_rate`` the Accept-all part;
* ``edit_rate``        share with a light edit (``edited``); ``rewrite_rate`` share written or
                       substantially rewritten by the expert (``expert``);
* ``mean_edit``        mean character edit distance per item from the model text it started from
                       (accepted items count 0; items with no model text to start from are left out);

overall and per dimension of the form. Adjudicated and discarded labels are not reviews of a
suggestion and are left out.
"""
from __future__ import annotations

from typing import Iterable

from care_model.core.records import ADJUDICATED
from care_model.core.wai import load_form

ACCEPTED = ("accepted", "bulk_accepted")


def _get(obj, key, default=None):
    return obj.get(key, default) if isinstance(obj, dict) else getattr(obj, key, default)


def _rates(rows: list[dict]) -> dict:
    known = [r for r in rows if r["source"] != "unknown"]
    n = len(known)
    dists = [r["distance"] for r in known if r["distance"] is not None]

    def share(*sources):
        return None if not n else sum(r["source"] in sources for r in known) / n

    return {"n": n, "unknown": len(rows) - n, "acceptance_rate": share(*ACCEPTED), "bulk_rate": share("bulk_accepted"),
            "edit_rate": share("edited"), "rewrite_rate": share("expert"),
            "mean_edit": (sum(dists) / len(dists)) if dists else None}


def review_quality(labels: Iterable, predictions: Iterable, form_id: str = "wai-sr") -> dict[str, dict]:
    """Model version -> ``{"n", "unknown", "acceptance_rate", "bulk_rate", "edit_rate",
    "rewrite_rate", "mean_edit", "dimensions": {key: the same without "dimensions"}}`` (see the
    module docstring). ``labels``/``predictions``: records or their dicts."""
    version_of = {_get(p, "id"): _get(p, "model_version") for p in predictions}
    form = load_form(form_id)
    rows: dict[str, list[dict]] = {}
    for lab in labels:
        pid = _get(lab, "prediction_id")
        if (not pid or pid not in version_of or _get(lab, "annotator") == ADJUDICATED
                or _get(lab, "status") == "discarded"):
            continue
        rows.setdefault(version_of[pid], []).append({
            "source": _get(lab, "rationale_source") or "unknown", "distance": _get(lab, "rationale_edit_distance"),
            "dimension": form.dimension_of(int(_get(lab, "item")))})
    out = {}
    for version, rs in sorted(rows.items()):
        dims = {d.key: _rates([r for r in rs if r["dimension"] == d.key]) for d in form.dimensions}
        out[version] = {**_rates(rs), "dimensions": {k: v for k, v in dims.items() if v["n"] or v["unknown"]}}
    return out


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def review_quality_markdown(stats: dict[str, dict]) -> str:
    """A small Markdown table: one row per version, then one per dimension."""
    if not stats:
        return "No expert has reviewed a model suggestion yet."
    lines = ["| Version | Dimension | Items | Accepted unchanged (bulk) | Edited | Rewritten | Mean edit (chars) |",
             "|---|---|---|---|---|---|---|"]

    def row(version, dim, s):
        mean = "–" if s["mean_edit"] is None else f"{s['mean_edit']:.1f}"
        unknown = f" (+{s['unknown']} unknown)" if s["unknown"] else ""
        return (f"| {version} | {dim} | {s['n']}{unknown} | {_pct(s['acceptance_rate'])} ({_pct(s['bulk_rate'])}) | "
                f"{_pct(s['edit_rate'])} | {_pct(s['rewrite_rate'])} | {mean} |")

    for version, s in stats.items():
        lines.append(row(version, "all", s))
        lines += [row("", key, d) for key, d in s["dimensions"].items()]
    return "\n".join(lines)
