"""The review card's "Draft a rationale for this score": the handler, its API and its UI wiring.

CARE's rationales were drafted for the client's true score, then refined by an expert (paper,
section 4.2). On a card, the expert picks a score and asks the model to draft the reason for it:

* :func:`start_draft` (pure, no Gradio) checks the user may edit the session and queues a draft
  job in the background worker (:meth:`studio.jobs.PredictJobs.submit_draft`) for the card's
  score (``source="expert"``) or the client's self-report (``source="client"``; the score defaults
  to the session's client rating of the item; by default the session's curation mode decides:
  client-anchored sessions draft for the client's score). The job stores the draft as a ``mode="draft"``
  prediction (never the item's suggestion) and writes no label.
* :func:`draft_result` reads the job back (the drafted rationale, its evidence and score).
* :func:`wire` adds the card's handler: it queues the job, shows its progress under the button
  while the worker runs, then fills the card's rationale field with the draft as an *unsaved
  edit*: the autosave timer leaves it alone (``ReviewState.drafted``); it is saved when the expert
  saves (Save, Ctrl+S, leaving the field) or edits it.

HTTP API: ``/draft_rationale`` (queue, returns the job) and ``/draft_status`` (the job with its
``result``); see studio/API.md.
"""
from __future__ import annotations

import time

import gradio as gr

from care_model.core.errors import CareError, NotFoundError, ValidationError

from . import render, ui
from .access import require_session

POLL_SECONDS = 0.5


def start_draft(repo, access, jobs, session_id: str, item: int, score: int | None = None, *,
                source: str | None = None) -> dict:
    """Queue a draft of ``item``'s rationale for ``score``; returns the job. ``source`` None: the
    session's curation mode decides ("client" when client-anchored, else "expert"); with "client"
    the target is the client's self-report (``score`` may be left out, a different one is refused)."""
    sa = require_session(repo, access, session_id, edit=True)
    if jobs is None:
        raise CareError("No model is loaded in this app.", "Start it with a model (the default is SmolLM2).")
    try:
        item = int(item)
    except (TypeError, ValueError):
        raise ValidationError(f"Item {item!r} is not an item number.", "Use the item's number (1-12).") from None
    if not source:
        from care_model.text.curation import CLIENT_ANCHORED

        from .curation_modes import curation_of

        source = "client" if curation_of(repo, sa.session_id)["mode"] == CLIENT_ANCHORED else "expert"
    if source == "client":
        want = repo.get_session(sa.session_id).ratings.get("client", {}).get(item)
        if want is None:
            raise ValidationError(f"Session {sa.session_id} has no client self-report for item {item}.",
                                  "Choose a score on the card and draft for it (source 'expert').")
        if score not in (None, "") and int(score) != int(want):
            raise ValidationError(f"Item {item}'s client self-report is {want}, not {score}.",
                                  "Leave the score out to draft for the client's own rating, or use source 'expert'.")
        score = want
    return jobs.submit_draft(sa.session_id, actor=access.username, item=item, score=score, source=source)


def draft_result(repo, access, jobs, job_id: str) -> dict:
    """The draft job ``job_id`` (state, progress, and once done its ``result``)."""
    job = jobs.get(job_id) if jobs is not None else None
    if job is None or job.get("kind") != "draft":
        raise NotFoundError(f"No draft job {job_id!r}.",
                            "Use the id /draft_rationale returned (jobs are kept in memory).")
    require_session(repo, access, job["session_id"])
    return job


def note_html(job: dict | None, text: str = "") -> str:
    if text:
        return f'<div class="care-muted care-draft-note">{render.esc(text)}</div>'
    if not job:
        return ""
    pct = int(round(100 * float(job.get("progress") or 0)))
    return (f'<div class="care-job care-draft-note"><span>Drafting a rationale for score '
            f'{render.esc(next(iter((job.get("targets") or {}).values()), ""))}: {render.esc(job.get("message") or "")}'
            f'</span><span class="care-jobbar"><span style="width:{pct}%"></span></span> {pct}%</div>')


def card_handler(h, note_out, rationale_out):
    """The click handler of the card's draft button (a generator: progress, then the draft). The
    draft is for the item the card showed when the button was pressed; if the card shows another
    item by the time it is ready, it waits as that item's unsaved edit (shown when the item is)."""
    def draft(rs, item, score, request: gr.Request):
        try:
            access = h._access(request)
            if rs is None:
                raise CareError("Open a session first.", "Pick one in the queue.")
            if not rs.editable:
                raise CareError("This session is read-only for you.", "Only its assigned experts can draft rationales.")
            item = h._item(rs, item)
            if item is None:
                raise CareError("No item is shown.", "Pick an item in the list first.")
            job = start_draft(h.ctx.repo, access, h.ctx.jobs, rs.sid, item, score)  # source: the curation mode
            while job["state"] in ("queued", "running"):
                yield {note_out: note_html(job) if rs.current == item else gr.skip(), rationale_out: gr.skip()}
                time.sleep(POLL_SECONDS)
                job = h.ctx.jobs.get(job["id"])
        except CareError as err:
            raise ui.ui_error(err) from None
        here = rs.current == item
        if job["state"] != "done":
            yield {note_out: note_html(None, f"Drafting failed: {job.get('error') or 'unknown error'}")
                   if here else gr.skip(), rationale_out: gr.skip()}
            return
        res = (job.get("result") or [{}])[0]
        if not res.get("rationale"):
            yield {note_out: note_html(None, f"The model wrote no reason for score {res.get('score')}: "
                                             "write it yourself, or try again.") if here else gr.skip(),
                   rationale_out: gr.skip()}
            return
        with rs.lock:
            rs.drafted[item] = res["rationale"]
            here = rs.current == item
            if not here:
                rs.pending[item] = {**rs.items[item]["saved"], "rationale": res["rationale"]}
        yield {note_out: note_html(None, f"Drafted for score {res['score']} by {job['model_version']}: not saved "
                                         "until you save (Save, Ctrl+S) or edit it.") if here else gr.skip(),
               rationale_out: res["rationale"] if here else gr.skip()}
    draft.__name__ = "draft_item"
    return draft


def wire(h, card) -> None:
    """Connect the card's draft button (``card.draft``, ``card.draft_note``) to its handler."""
    card.draft.click(card_handler(h, card.draft_note, card.rationale), [h.c.st, card.item, card.score],
                     [card.draft_note, card.rationale], api_visibility="private", show_progress="hidden").then(
        h.card_note, [h.c.st, card.item, card.rationale], [card.feedback, h.c.status, h.c.timer],
        api_visibility="private", show_progress="hidden")  # the draft is an unsaved edit (server-set: no input)
