"""The review card's handlers (a mixin of :class:`studio.review_ui.ReviewUI`): showing another
item, and the saves of the shown item's fields (score, rationale, evidence, reasons), Accept and
"Confirm this rationale".

There is one card; the page's hidden ``#care-card-item`` field says which item its values belong
to, and every card event sends it, so an edit made just before the card switched items lands on
its own item (:meth:`CardHandlers._card` then redraws nothing of the card). The mixin uses the
page's ``ctx``, ``c``, ``card``, ``_access``, ``_item``, ``_save``, ``_frame``, ``_card``, ``_show``,
``_feedback``, ``_conflict_message`` and ``_nothing``.
"""
import gradio as gr

from . import render, review_checks, ui
from .accept import accepted_draft
from .review_state import ReviewState, draft_of, evidence_list, evidence_text, now


class CardHandlers:
    # ----- the card ----------------------------------------------------------------------
    @ui.guard
    def show_item(self, rs, want, item, score, rationale, evidence, reasons, request: gr.Request):
        """Show another item (``want``: "N:seq", written by the page's script): first save the shown
        item's unsaved rationale and evidence, as leaving the field does (a conflict keeps the card
        on that item, with the conflict panel); then the new item's card and the frame, in one reply."""
        access = self._access(request)
        target, _, seq = str(want or "").partition(":")
        target = self._item(rs, target) if rs is not None else None
        if target is None:
            return self._nothing()
        shown = self._item(rs, item)
        with rs.lock:
            left = self._leave(rs, access, shown, rationale, evidence) if rs.editable and shown is not None else None
            if left is False:
                target = shown  # its conflict first: the panel shows both versions
        # the list, the summary and the status line change only if leaving saved (or unmarked) something
        return (self._frame(rs) if left is not None else {}) | self._show(rs, target, req=seq)

    @ui.guard
    def resync(self, rs, request: gr.Request):
        """The page's script found the card's head naming another item than the card's fields (a
        reply for the item shown before arrived after the one that showed this item): the whole card
        of the item the session shows, from what the server holds (typed text included), and the frame."""
        self._access(request)
        if rs is None or rs.current is None:
            return self._nothing()
        return self._frame(rs) | self._show(rs, rs.current)

    def _leave(self, rs: ReviewState, access, item: int, rationale, evidence) -> bool | None:
        """Save the rationale and evidence the card shows for ``item`` if they differ from what is
        saved (the score and the reasons save on their own events). False if the item is in conflict,
        None if there was nothing to save (and no unsaved edit to forget), else True."""
        if item in rs.conflicts:
            rs.conflicts[item]["yours"] = review_checks.clean_draft(
                {**rs.conflicts[item]["yours"], "rationale": rationale or "", "evidence": evidence_list(evidence)})
            rs.message = self._conflict_message(rs, item)
            return False
        draft = {**rs.items[item]["saved"], "rationale": rationale or "", "evidence": evidence_list(evidence)}
        if review_checks.same_content(rs.items[item]["saved"], review_checks.clean_draft(draft)):
            return True if rs.pending.pop(item, None) is not None else None
        return self._save(rs, access, item, draft)

    def _editable_item(self, rs, value) -> int | None:
        """The item a card event names, if the page has an editable session with that item; else None."""
        item = self._item(rs, value) if rs is not None else None
        return item if item is not None and rs.editable else None

    def card_save(self, field: str):
        """One field changed (a score, evidence or reason change, or the rationale losing focus):
        save the card's item with that field on top of what is saved (and the typed, unsaved
        rationale). Saving one field at a time under the page's lock makes quick edits of different
        fields (a rationale typed, then a turn clicked) land in any order without losing one."""
        @ui.guard
        def save(rs, item, value, request: gr.Request):
            access = self._access(request)
            item = self._editable_item(rs, item)
            if item is None:
                return self._nothing()
            with rs.lock:
                if item in rs.conflicts:  # keep the edit with the conflict; the expert chooses first
                    rs.conflicts[item]["yours"] = review_checks.clean_draft({**rs.conflicts[item]["yours"],
                                                                             field: value})
                    rs.message = self._conflict_message(rs, item)
                    return self._frame(rs) | self._card(rs, item)
                draft = dict(rs.items[item]["saved"])
                if item in rs.pending and field != "rationale":
                    draft["rationale"] = rs.pending[item]["rationale"]
                draft = draft_of((draft["score"], draft["rationale"], draft["evidence"], draft["change_reasons"]))
                draft[field] = (evidence_list(value) if field == "evidence"
                                else list(value or []) if field == "change_reasons"
                                else (value or "") if field == "rationale" else value)
                if review_checks.same_content(rs.items[item]["saved"], review_checks.clean_draft(draft)):
                    rs.pending.pop(item, None)
                    return self._card(rs, item) or self._nothing()
                self._save(rs, access, item, draft)
            return self._frame(rs) | self._card(rs, item)
        save.__name__ = f"save_{field}"
        return save

    @staticmethod
    def _note_rationale(rs, item: int, rationale) -> bool:
        """Remember the rationale the page shows for `item` (call under rs.lock): an unsaved edit
        when it differs from the saved one. True when it waits for the autosave."""
        saved = rs.items[item]["saved"]
        if item in rs.conflicts:
            rs.conflicts[item]["yours"] = {**rs.conflicts[item]["yours"], "rationale": rationale or ""}
            return False
        if (rationale or "") != (saved["rationale"] or ""):
            rs.pending[item] = {**saved, "rationale": rationale or ""}
            return rs.drafted.get(item) != (rationale or "")  # a fresh draft waits for the expert
        rs.pending.pop(item, None)
        return False

    @ui.guard
    def card_note(self, rs, item, rationale, request: gr.Request):
        """The rationale changed (typing, pasting, a draft filled in): live checks and diff, and the
        edit is remembered for the autosave. Only the rationale is read from the event: the other
        fields save on their own events."""
        self._access(request)
        item = self._editable_item(rs, item)
        if item is None:
            return self._nothing()
        with rs.lock:
            pending = self._note_rationale(rs, item, rationale)
            feedback = self._feedback(rs, item) if item == rs.current else gr.skip()
        return {self.card.feedback: feedback,
                self.c.status: render.status_html("Unsaved changes (saving in a moment)…",
                                                  "busy") if pending else gr.skip(),
                self.c.timer: gr.Timer(active=True) if pending else gr.skip()}

    @ui.guard
    def card_accept(self, rs, item, request: gr.Request):
        """The model's suggestion as the expert's answer (score, rationale, evidence)."""
        access = self._access(request)
        item = self._editable_item(rs, item)
        if item is None:
            return self._nothing()
        draft = accepted_draft(rs.items[item]["pred"])
        with rs.lock:
            rs.pending.pop(item, None)  # accepting replaces what was typed
            self._save(rs, access, item, draft)
        k, up = self.card, self._frame(rs) | self._card(rs, item)
        if item == rs.current:
            up |= {k.score: draft["score"], k.rationale: draft["rationale"],
                   k.evidence: evidence_text(draft["evidence"]), k.reasons: draft["change_reasons"]}
        return up

    @ui.guard
    def card_confirm(self, rs, item, rationale, request: gr.Request):
        """Client-anchored sessions: save the rationale shown (the draft written for the client's
        score, or the expert's edit of it) as the expert's label; the item is done. An unchanged
        draft is recorded with provenance ``accepted`` (:func:`studio.review.save_item`)."""
        access = self._access(request)
        item = self._editable_item(rs, item)
        if item is None:
            return self._nothing()
        with rs.lock:
            if item in rs.conflicts:
                rs.message = self._conflict_message(rs, item)
                return self._frame(rs) | self._card(rs, item)
            draft = {**rs.items[item]["saved"], "rationale": rationale if rationale is not None
                     else (rs.pending.get(item) or rs.items[item]["saved"])["rationale"]}
            rs.pending.pop(item, None)
            if self._save(rs, access, item, draft):
                lab = rs.items[item]["label"] or {}
                how = {"accepted": "the draft, unchanged (provenance: accepted)",
                       "edited": f"your edit of the draft ({lab.get('rationale_edit_distance')} characters "
                                 "changed; provenance: edited)"}.get(lab.get("rationale_source"),
                                                                     "your rationale (provenance: expert)")
                rs.message = (f"Confirmed item {item}: saved {how} at {now()}.", "ok")
        return self._frame(rs) | self._card(rs, item)
