"""The Review tab's per-page state (:class:`ReviewState`) and the small conversions between the
page's field values and a draft (the evidence field holds turn numbers as text, "3, 5", because
the transcript's clicks write it from the browser).
"""
import threading
from types import SimpleNamespace

from . import render, review


class ReviewState:
    """One page's open session: per item the prediction, the saved version and the unsaved edit.
    Kept in ``gr.State`` and changed in place under its lock, so overlapping events of one page
    cannot lose a version update; nothing in it is shared with other users."""

    def __init__(self, view: dict):
        self.lock = threading.RLock()
        self.sid = view["session"]["id"]
        self.slot, self.editable = view["slot"], view["editable"]
        self.locked = view["curation"]["score_locked"]  # client-anchored (studio.curation_modes)
        self.session = SimpleNamespace(language=view["session"]["language"],
                                       ratings={r: {int(k): v for k, v in rs.items()}
                                                for r, rs in view["session"]["ratings"].items()})
        self.scale = view["scale"]
        self.dim_names = {d["key"]: d["name"] for d in view["dimensions"]}
        self.items = {it["item"]: {"pred": it["prediction"], "version": it["version"], "saved": dict(it["draft"]),
                                   "state": it["state"], "label": it["label"], "text": it["text"],
                                   "dimension": it["dimension"]} for it in view["items"]}
        self.pending: dict[int, dict] = {}  # item -> unsaved draft (rationale typed, not yet saved)
        self.conflicts: dict[int, dict] = {}  # item -> the conflicting save result (theirs and yours)
        self.prefills: dict[int, dict] = {}  # item -> new model draft to show after a re-prediction
        self.bulk: list[int] = []  # items listed by "Accept all", waiting for "Confirm"
        self.submit_asked: str | None = None  # the session "Submit session" asked about, until "Yes, submit"
        self.drafted: dict[int, str] = {}  # item -> rationale drafted for a score (studio.review_draft): not autosaved
        self.job_seen: str | None = None
        self.shown: dict | None = None  # what the card's frame shows (scale, editable, locked): studio.review_ui
        self.current: int | None = None  # the item the card shows
        self.req = ""  # the page's last "show item" request answered (its card's data-req)
        self.message = ""

    def __deepcopy__(self, memo):  # gr.State copies values; this one belongs to its page on purpose
        return self

    def head(self, item: int) -> str:
        it = self.items[item]
        return render.card_head_html({"item": item, "text": it["text"], "state": it["state"], "label": it["label"]},
                                     self.dim_names.get(it["dimension"], it["dimension"]))

    def summary(self, form) -> str:
        items = [{"item": i, "prediction": it["pred"],
                  "label": {"score": it["saved"]["score"]} if it["state"] != "unreviewed" else None}
                 for i, it in self.items.items()]
        return render.summary_html(review.summary(form, items, self.session))


def evidence_list(value) -> list:
    """The evidence field's value (a list, or the card's text "3, 5" that the transcript's
    clicks write) as a list; clean_draft checks the items."""
    if isinstance(value, str):
        parts = [v for v in (p.strip() for p in value.replace(";", ",").split(",")) if v]
        return [int(v) if v.isdigit() else v for v in parts]  # anything else: clean_draft names it
    return list(value or [])


def evidence_text(turns) -> str:
    return ", ".join(str(int(t)) for t in sorted(set(turns or [])))


def draft_of(values) -> dict:
    score, rationale, evidence, reasons = values
    return {"score": score, "rationale": rationale or "", "evidence": evidence_list(evidence),
            "change_reasons": list(reasons or [])}


def now() -> str:
    """Now, for a status message: the line shows it to the minute in the user's locale."""
    from .messages import time_token

    return time_token()
