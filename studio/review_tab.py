"""The Review tab: queue, transcript, the item card, autosave, conflicts, submit, predict.

Layout: the queue (an accordion that folds away when a session opens); then, filling the viewport,
the transcript on the left (its own scroll) and, on the right, the status line and the session's
buttons (always in view) over the compact list of all items (number, model score, expert score,
state, checks; the item's text in the row's tooltip) beside the item card, which gets the column's
full height. There is ONE card (issue 20: twelve copies made the page's first paint about a second
slower): it is redrawn for the item shown (a row click, j/k; see :mod:`studio.review_assets`) by one
request that first saves the unsaved rationale or evidence of the item it showed, as leaving the
field does. The card's hidden ``#care-card-item`` field names the item its values belong to, and
every card event sends it, so an edit made just before a switch lands on its own item.
A card shows the model's suggestion ("Accept" takes it) and the expert's editor; evidence is
picked by clicking turns in the transcript, and a selection there can be quoted into the rationale.
"Accept all passing…" lists the unreviewed items whose readable suggestion passes the checks and
accepts them after "Accept these".

Saving: a score, evidence or change-reason change saves that field of the item at once; typing (or pasting) in
a rationale updates the checks and the diff live (no write) and is saved when the field loses
focus, on Ctrl+S / the Save button, and by the 2-second timer, so nothing typed is lost for long.
The rationale's and the evidence's edits reach the server through two hidden buttons of the card that the
page's script presses on the user's own edits; the values an open (or Accept) sends into the fields
fire no event, so an open is one request (issue 20: it was 25).
Every save names the version the card was loaded at; if someone saved the item in between, the
conflict panel shows their version and the unsaved one, and nothing is written until the expert
chooses ("Use theirs" / "Keep mine", after merging by hand if they like).

The handlers and the per-page state are in :mod:`studio.review_ui`.
"""
from types import SimpleNamespace

import gradio as gr

from care_model.core.records import CHANGE_REASONS

from . import render, review_draft, ui
from .review_ui import QUEUE_HEADERS, ReviewUI

TICK_SECONDS = 2.0  # autosave and predict-progress poll (only while something is pending)


def _card(scale: dict) -> SimpleNamespace:
    """The item card (built once; every reply that shows an item fills it)."""
    with gr.Column(elem_id="care-card", elem_classes=["care-card"]):
        card = SimpleNamespace()
        card.head = gr.HTML(js_on_load=None, elem_id="care-card-head")  # carries data-item (review_assets.JS)
        card.model = gr.HTML(js_on_load=None, elem_id="care-model")
        with gr.Row(equal_height=False):
            card.score = gr.Radio([(f"{k} {v}", k) for k, v in scale.items()], label="Your score",
                                  elem_id="care-score", elem_classes=["care-score"], scale=4)
            card.accept = gr.Button("Accept", size="sm", elem_id="care-accept", elem_classes=["care-accept"],
                                    scale=0, min_width=90)
            # client-anchored sessions: the shown draft becomes the expert's label (key c)
            card.confirm = gr.Button("Confirm this rationale", size="sm", elem_id="care-confirm",
                                     elem_classes=["care-confirm"], scale=0, min_width=150, visible=False)
            card.draft = gr.Button("Draft a rationale for this score", size="sm", elem_id="care-draft",
                                   elem_classes=["care-draft"], scale=0, min_width=150)
        card.draft_note = gr.HTML(js_on_load=None, elem_id="care-draft-note")
        card.rationale = gr.Textbox(label="Your rationale", lines=4, max_lines=18, elem_id="care-rationale")
        # written by the transcript's clicks (review_assets.JS); shown as chips below
        card.evidence = gr.Textbox(label="Evidence turns", elem_id="care-evidence", elem_classes=["care-ev-box"])
        card.reasons = gr.CheckboxGroup([(v, k) for k, v in CHANGE_REASONS.items()], label="Why changed",
                                        elem_id="care-reasons")
        card.feedback = gr.HTML(js_on_load=None, elem_id="care-feedback")
        # pressed by the page's script on the user's own edits (typing, pasting, a turn clicked), never
        # by the server's updates of the fields (see the module docstring); "show" asks for another item
        with gr.Row(elem_classes=["care-triggers"]):
            card.item = gr.Textbox(elem_id="care-card-item", elem_classes=["care-ev-box"])  # the item shown
            card.want = gr.Textbox(elem_id="care-want", elem_classes=["care-ev-box"])  # "N:seq" from the script
            card.note_btn = gr.Button("note", elem_id="care-note", size="sm")
            card.ev_btn = gr.Button("evidence", elem_id="care-evsave", size="sm")
            card.show_btn = gr.Button("show", elem_id="care-show", size="sm")
            card.resync_btn = gr.Button("resync", elem_id="care-resync", size="sm")  # a stale head seen
    return card


def _layout(ctx, c: SimpleNamespace) -> SimpleNamespace:
    scale = ctx.form.scale_labels("en")
    c.st = gr.State(None)
    c.last = gr.BrowserState("", storage_key="care-last-session")
    with gr.Accordion("Queue", open=True, elem_id="care-queue") as c.queue_acc:
        with gr.Row():
            c.scope = gr.Radio([("Assigned to me", "mine"), ("All I can see", "all")], value="mine",
                               label="Sessions", elem_id="care-scope", scale=2)
            c.search = gr.Textbox(label="Search (id, client, curation mode, metadata)", elem_id="care-search", scale=3)
            c.order = gr.Dropdown([("Session id", "id"), ("Model uncertainty (most uncertain first)", "uncertainty")],
                                  value="id", label="Order", elem_id="care-order", scale=2)
            c.refresh = gr.Button("Refresh", elem_id="care-refresh", scale=1)
        c.counts = gr.HTML(js_on_load=None, elem_id="care-counts")
        c.table = gr.Dataframe(headers=QUEUE_HEADERS, interactive=False, elem_id="care-table", max_height=360,
                               wrap=False)
        with gr.Row():
            c.open_id = gr.Textbox(label="Session id", elem_id="care-open-id", scale=4)
            c.open_btn = gr.Button("Open", variant="primary", elem_id="care-open", scale=1)
    # Shown by SHOW_SESSION_JS once a session is open. Not an event output on purpose: Gradio
    # re-applies the loading status of every past output on each later event, walking all
    # descendants of a container, which made every timer tick cost seconds of browser time.
    with gr.Row(elem_id="care-session", equal_height=False):
        with gr.Column(scale=5, min_width=360, elem_id="care-left"):
            c.head = gr.HTML(js_on_load=None, elem_id="care-sess-head")
            c.transcript = gr.HTML(js_on_load=None, elem_id="care-transcript")
        with gr.Column(scale=8, min_width=640, elem_id="care-work"):
            with gr.Row(equal_height=False, elem_id="care-actions"):
                c.status = gr.HTML(render.status_html("No session open.", "idle"), js_on_load=None,
                                   elem_id="care-status")
                c.save_btn = gr.Button("Save", elem_id="care-save", size="sm", scale=0, min_width=70)
                c.accept_all = gr.Button("Accept all passing…", elem_id="care-accept-all", size="sm", scale=0,
                                         min_width=150)
                c.submit_btn = gr.Button("Submit session", variant="primary", elem_id="care-submit", size="sm",
                                         scale=0, min_width=130)
                c.reopen_btn = gr.Button("Reopen", elem_id="care-reopen", size="sm", scale=0, min_width=80,
                                         visible=False)
                c.predict_btn = gr.Button("Predict", elem_id="care-predict", size="sm", scale=0, min_width=80)
            c.job = gr.HTML(js_on_load=None, elem_id="care-job")
            c.conflict_html = gr.HTML(js_on_load=None, elem_id="care-conflict")
            with gr.Row(elem_id="care-conflict-actions"):
                c.use_theirs = gr.Button("Use theirs", elem_id="care-use-theirs", size="sm", visible=False)
                c.keep_mine = gr.Button("Keep mine", variant="primary", elem_id="care-keep-mine", size="sm",
                                        visible=False)
            c.bulk_html = gr.HTML(js_on_load=None, elem_id="care-bulk")
            with gr.Row(elem_id="care-bulk-actions"):
                c.bulk_yes = gr.Button("Accept these", variant="primary", elem_id="care-bulk-yes", size="sm",
                                       visible=False)
                c.bulk_no = gr.Button("Cancel", elem_id="care-bulk-no", size="sm", visible=False)
            c.submit_html = gr.HTML(js_on_load=None, elem_id="care-submit-ask")
            with gr.Row(elem_id="care-submit-actions"):
                c.submit_yes = gr.Button("Yes, submit", variant="primary", elem_id="care-submit-yes", size="sm",
                                         visible=False)
                c.submit_no = gr.Button("Cancel", elem_id="care-submit-no", size="sm", visible=False)
            # the item list (with the summary and the keys) beside the card, so that the card gets the
            # column's full height (issue 20: it had about 256 px below the list)
            with gr.Row(elem_id="care-work-body", equal_height=False):
                with gr.Column(elem_id="care-side", scale=0, min_width=250):
                    c.items_list = gr.HTML(js_on_load=None, elem_id="care-list")
                    c.summary = gr.HTML(js_on_load=None, elem_id="care-summary")
                    gr.HTML(ui.KEYS_HELP, js_on_load=None)
                with gr.Column(elem_id="care-editor", scale=1, min_width=360):
                    card = _card(scale)
    c.timer = gr.Timer(TICK_SECONDS, active=False)  # runs only while an edit is unsaved or a job runs
    c.cards_token = gr.State(0)  # raised by the timer when it saved something: redraw the card and list
    c.models_token = gr.State(0)  # raised when new predictions arrived: redraw the suggestion
    return card


def build_tab(ctx):
    c = SimpleNamespace()
    with gr.Tab("Review", id="review", elem_id="care-review-tab"):
        card = _layout(ctx, c)
    h = ReviewUI(ctx, c, card)
    fields = [card.item, card.score, card.rationale, card.evidence, card.reasons]  # the card as the page has it
    frame = [c.status, c.summary, c.items_list, c.use_theirs, c.keep_mine, c.conflict_html]
    one = frame + [card.head, card.feedback]  # a save of the shown item
    shown = frame + h.card_outputs()  # another item shown (or the same redrawn with its values)
    open_out = [c.st, c.last, c.head, c.transcript, c.save_btn, c.submit_btn, c.reopen_btn, c.accept_all, c.job,
                c.timer] + shown + [c.bulk_html, c.bulk_yes, c.bulk_no]
    quiet = dict(api_visibility="private", show_progress="hidden")

    q_in = [c.scope, c.search, c.order]
    gr.on([c.refresh.click, c.scope.input, c.order.input, c.search.submit], h.queue, q_in, [c.counts, c.table],
          **quiet)
    ctx.on_load(h.on_load, [c.last, c.st], [c.scope, c.counts, c.table, c.open_id] + open_out,
                then=(None, None, None, ui.SHOW_SESSION_JS), first=True)
    # one request per open: the status line alone shows its progress (not a loading overlay per field)
    opening = dict(api_visibility="private", show_progress="minimal", show_progress_on=[c.status])
    gr.on([c.open_btn.click, c.open_id.submit], h.open, [c.open_id, c.st], open_out, **opening).then(
        None, js=ui.SHOW_SESSION_JS)
    c.table.select(h.open_row, [c.st], open_out + [c.open_id], **opening).then(None, js=ui.SHOW_SESSION_JS)
    # another item: one request that saves the shown item's unsaved rationale/evidence, then shows the item
    # Edits and item switches are "always_last", not Gradio's default "once" (which drops a trigger
    # while the previous one is pending): two turns clicked, or two scores picked, within one save's
    # round trip must both count, and the save that runs last sends the field's value as shown.
    last = dict(trigger_mode="always_last", **quiet)
    card.show_btn.click(h.show_item, [c.st, card.want] + fields, shown, **last)
    card.resync_btn.click(h.resync, [c.st], shown, **last)
    for comp, trigger, field in ((card.score, card.score.input, "score"),
                                 (card.reasons, card.reasons.input, "change_reasons"),
                                 (card.rationale, card.rationale.blur, "rationale"),
                                 (card.evidence, card.ev_btn.click, "evidence")):  # the script writes it
        trigger(h.card_save(field), [c.st, card.item, comp], one, **last)
    # The script presses the note button on every edit of the rationale by the user (typing,
    # pasting, dictation, a quote inserted: the browser's own "input" events). Not .change: that
    # also fires for every value the server sends, and not .input: Gradio's textbox sends it on keys only.
    card.note_btn.click(h.card_note, [c.st, card.item, card.rationale], [card.feedback, c.status, c.timer],
                        trigger_mode="always_last", **quiet)
    card.accept.click(h.card_accept, [c.st, card.item], one + [card.score, card.rationale, card.evidence,
                                                               card.reasons], **quiet)
    card.confirm.click(h.card_confirm, [c.st, card.item, card.rationale], one, **quiet)
    c.save_btn.click(h.save_all, [c.st] + fields, one, **quiet)
    submit_panel = [c.submit_html, c.submit_yes, c.submit_no]
    c.submit_btn.click(h.submit_ask, [c.st], submit_panel, **quiet)  # asks first (issue 20)
    gr.on([c.submit_no.click, c.submit_yes.click], h.submit_cancel, None, submit_panel, **quiet)
    c.submit_yes.click(h.submit, [c.st] + fields, one, api_visibility="private").then(
        h.reload_if_read_only, [c.st], open_out, **quiet).then(  # a submitted session turns read-only
        h.queue, q_in, [c.counts, c.table], **quiet)  # and the queue's counts follow (issue 20: they went stale)
    c.reopen_btn.click(h.reopen, [c.st], open_out, **quiet).then(h.queue, q_in, [c.counts, c.table], **quiet)
    c.use_theirs.click(h.use_theirs, [c.st], shown, **quiet)
    c.keep_mine.click(h.keep_mine, [c.st] + fields, shown, **quiet)
    c.predict_btn.click(h.predict, [c.st], [c.job, c.timer], **quiet)
    bulk = [c.bulk_html, c.bulk_yes, c.bulk_no]
    c.accept_all.click(h.accept_all_ask, [c.st, card.item, card.rationale], bulk + [c.status], **quiet)
    c.bulk_yes.click(h.accept_all_do, [c.st], shown + bulk, **quiet)
    c.bulk_no.click(h.accept_all_cancel, [c.st], bulk, **quiet)
    c.timer.tick(h.tick, [c.st, c.cards_token, c.models_token], [c.job, c.cards_token, c.models_token, c.timer],
                 show_progress_on=[c.job], **quiet)
    c.cards_token.change(h.redraw_cards, [c.st], one, **quiet)
    c.models_token.change(h.redraw_models, [c.st], shown, **quiet)
    review_draft.wire(h, card)
    return h
