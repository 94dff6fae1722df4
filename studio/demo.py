"""The public demo (``python annotate_app.py --demo [--share]``): the model on the bundled sample
sessions or on a transcript pasted in. It has **no store**: no login, no labels, nothing saved,
no path to any real data, so it is the only app that may be shared with a public link.

Sample sessions show the embedded default's stored predictions at once (``data/``); "Predict"
runs the model (one request at a time, with progress). Pasted text is parsed like the ``text``
import format (``Counselor: ...`` / ``Client: ...`` or ``咨询师：`` / ``来访者：`` lines) and
limited to :data:`MAX_CHARS`.

Pasted text is checked for personal information before the model sees it
(:func:`pasted_findings`: e-mail, phone, address, URL, dates, IDs; names are not detected). A
shared demo (``--share``, a public link) refuses such text with the list of what was found and
asks for placeholders (``[PHONE]``); a local demo runs the model and shows the warning.
"""
import tempfile
from pathlib import Path

import gradio as gr

from care_model.core.errors import CareError, DeidentificationRequired, ValidationError
from care_model.core.records import Session
from care_model.core.wai import load_form

from . import quality_notice, render, review, ui, validate
from .app import AppContext, StudioBlocks
from .bootstrap import DATA_DIR, PREDICTIONS_FILE, SESSIONS_FILE, read_predictions
from .gradio_boot import calm_queue

MAX_CHARS = 60_000
BANNER = ("DEMO: the model on synthetic sample sessions or on text you paste. Nothing is saved and this demo "
          "has no access to any store; do not paste real clients' transcripts.")
EXAMPLE = ("Counselor: What would you like to focus on today?\n"
           "Client: I keep putting off the job applications and then I feel awful about it.\n"
           "Counselor: Shall we pick one small step for this week together?\n"
           "Client: Yes. I think I can send one application by Friday.")


def load_samples(data_dir: Path = DATA_DIR) -> tuple[dict[str, Session], dict[str, list]]:
    """The sample sessions and the model's own stored predictions per session. Drafts (rationales written
    for a given score, e.g. the client's self-report: ``mode == "draft"``) are left out: they are not
    the model's predictions."""
    from store.formats import read_files

    sessions = {}
    if (data_dir / SESSIONS_FILE).is_file():
        sessions = {s.id: s for s in read_files([data_dir / SESSIONS_FILE], "jsonl").sessions}
    preds: dict[str, list] = {}
    if (data_dir / PREDICTIONS_FILE).is_file():
        for p in read_predictions(data_dir / PREDICTIONS_FILE):
            if not p.is_draft:
                preds.setdefault(p.session_id, []).append(p)
    return sessions, preds


def sample_quality(sessions: dict[str, Session], preds: dict[str, list]) -> dict[str, dict]:
    """Version -> its verdict against the constant baselines on the sample sessions (leave one client out)."""
    from care_model.stats.baselines import quality_against_baselines

    by_version: dict[str, list] = {}
    for ps in preds.values():
        for p in ps:
            by_version.setdefault(p.model_version, []).append(p)
    out = {}
    for version, ps in by_version.items():
        rated = [s for s in sessions.values() if s.id in {p.session_id for p in ps}]
        try:
            report = quality_against_baselines(rated, ps)
        except CareError:
            continue  # too few self-reports: the notice says "no held-out evaluation"
        out[version] = {"beats_baselines": report.beats_baselines, "verdict": report.verdict,
                        "n_sessions": report.n_sessions, "n_clients": report.n_clients}
    return out


def parse_pasted(text: str, language: str | None = None) -> Session:
    """A session from pasted ``Label: text`` lines (the ``text`` import format)."""
    from store.formats import read_files

    text = (text or "").strip()
    if not text:
        raise ValidationError("Nothing was pasted.", "Paste a transcript with 'Counselor:' and 'Client:' lines.")
    if len(text) > MAX_CHARS:
        raise ValidationError(f"The transcript has {len(text)} characters; the demo takes up to {MAX_CHARS}.",
                              "Paste a shorter excerpt.")
    with tempfile.TemporaryDirectory(prefix="care-demo-") as tmp:
        path = Path(tmp) / "pasted.txt"
        path.write_text(text, encoding="utf-8")
        try:
            batch = read_files([path], "text", language=language or None)
        except CareError as err:
            raise ValidationError(str(err.problem).replace(str(path), "pasted text"), err.fix) from None
    session = batch.sessions[0]
    session.id = "pasted"
    return session


def pasted_findings(session: Session) -> str:
    """A warning naming what looks like personal information in the pasted turns ("" if none)."""
    from care_model.text.deid import scan_turns

    found = scan_turns(session.turns)
    if not found:
        return ""
    kinds: dict[str, list] = {}
    for f in found:
        kinds.setdefault(f["placeholder"], []).append(f["turn"] + 1)
    parts = [f"{len(turns)} × {kind} (line {', '.join(map(str, sorted(set(turns))[:5]))})"
             for kind, turns in sorted(kinds.items())]
    return "The pasted text looks like it holds personal information: " + "; ".join(parts) + "."


def result_html(session: Session, preds: list, form, notice: str = "") -> tuple[str, str, str]:
    """Transcript, summary and the 12 read-only cards grouped by dimension, under the model's quality
    ``notice`` (:mod:`studio.quality_notice`)."""
    lang = session.language if session.language in form.languages else "en"
    scale = {str(k): v for k, v in form.scale_labels(lang).items()}
    by_item = {p.item: review.prediction_dict(p) for p in preds}
    items = [{"item": it.id, "prediction": by_item.get(it.id), "label": None} for it in form.items]
    summary = render.summary_html(review.summary(form, items, session))
    cards = [quality_notice.notice_html(notice)]
    for dim in form.dimensions:
        cards.append(f'<div class="care-dim-title">{render.esc(dim.name(lang))}</div>')
        for i in dim.item_ids:
            head = render.card_head_html({"item": i, "text": form.item_text(i, "client", lang), "state": "unreviewed",
                                          "label": None}, dim.name(lang)).replace(
                '<span class="care-badge st-unreviewed">Unreviewed</span>', "")
            cards.append('<div class="care-card" '
                         f'id="demo-card-{i}">{head}{render.model_html(by_item.get(i), scale)}</div>')
    sess = {"id": session.id, "language": session.language, "turns": [t.to_dict() for t in session.turns]}
    return render.transcript_html(sess), summary, "".join(cards)


class DemoUI:
    def __init__(self, predictor, sessions: dict, preds: dict, shared: bool = False):
        self.predictor, self.sessions, self.preds, self.shared = predictor, sessions, preds, shared
        self.form = load_form()
        self.quality = sample_quality(sessions, preds)

    def notice(self, version: str | None) -> str:
        return quality_notice.notice_line(version, self.quality.get(version or ""))

    def _session(self, source: str, sample_id: str, pasted: str, language: str) -> Session:
        if source == "sample":
            if sample_id not in self.sessions:
                raise ValidationError(f"Unknown sample {sample_id!r}.", "Pick one from the list.")
            return self.sessions[sample_id]
        return parse_pasted(pasted, None if language == "auto" else language)

    def check_pasted(self, session: Session) -> str:
        """The de-identification check of pasted text: raises in a shared demo, else the warning."""
        if session.id != "pasted":
            return ""
        warning = pasted_findings(session)
        if warning and self.shared:
            raise DeidentificationRequired(warning + " This demo is public, so the text was not sent to the model.",
                                           "Replace them with placeholders such as [NAME], [PHONE], [EMAIL] or "
                                           "[ADDRESS], or use a sample session.")
        return warning

    @ui.guard
    def show(self, source: str, sample_id: str, pasted: str, language: str):
        """Show a sample with its stored predictions (no model run)."""
        if source != "sample" or not sample_id:
            return gr.skip(), gr.skip(), gr.skip(), render.status_html("Press Predict to run the model on the pasted "
                                                                       "text.", "idle")
        session = self._session(source, sample_id, pasted, language)
        preds = self.preds.get(session.id, [])
        version = preds[0].model_version if preds else None
        msg = (f"Stored predictions of {version} for {session.id} (the model's own scores; drafts left out)."
               if preds else f"No stored predictions for {session.id}: press Predict.")
        return (*result_html(session, preds, self.form, self.notice(version)),
                render.status_html(msg, "ok" if preds else "idle"))

    @ui.guard
    def predict(self, source: str, sample_id: str, pasted: str, language: str, progress=gr.Progress()):
        session = self._session(source, sample_id, pasted, language)
        warning = self.check_pasted(session)
        if self.predictor is None:
            raise ValidationError("This demo has no model.", "Start it with python annotate_app.py --demo.")
        progress(0.0, desc="loading the model")
        preds = self.predictor.predict_session(session, progress=lambda f, m: progress(f, desc=m))
        version = preds[0].model_version if preds else getattr(self.predictor, "model_version", None)
        done = f"Predicted with {getattr(self.predictor, 'model_version', 'the model')}."
        return (*result_html(session, preds, self.form, self.notice(version)),
                render.status_html(f"{done} Warning: {warning} Do not paste real clients' transcripts." if warning
                                   else done, "warn" if warning else "ok"))

    def demo_predict(self, transcript: str, language: str = "auto") -> dict:
        """API: predictions for a pasted transcript (``Counselor: ...`` / ``Client: ...`` lines)."""
        try:
            session = parse_pasted(transcript, None if language == "auto" else language)
            warning = self.check_pasted(session)
            preds = self.predictor.predict_session(session)
        except CareError as err:
            raise ui.ui_error(err) from None
        return {"turns": len(session.turns), "language": session.language, "warning": warning,
                "predictions": [review.prediction_dict(p) for p in preds]}


def build_demo(predictor, *, data_dir: Path = DATA_DIR, shared: bool = False) -> StudioBlocks:
    """The demo app: no repository anywhere (``ctx.repo`` is None), so ``share`` is allowed;
    ``shared`` (a public link): pasted text with personal information is refused."""
    sessions, preds = load_samples(Path(data_dir))
    h = DemoUI(predictor, sessions, preds, shared=shared)
    ctx = AppContext(repo=None, predictor=predictor, demo=True)
    choices = [(f'{s.id} · {s.metadata.get("topic", s.language)}', s.id) for s in sessions.values()]
    with StudioBlocks(title="CARE Review Studio: demo", analytics_enabled=False) as demo:
        demo.studio_ctx = ctx
        gr.HTML(f'<div class="care-banner" id="care-demo-banner">{render.esc(BANNER)}</div>', js_on_load=None)
        with gr.Row():
            source = gr.Radio([("Sample session", "sample"), ("Paste a transcript", "pasted")], value="sample",
                              label="Transcript", elem_id="demo-source")
            sample = gr.Dropdown(choices, value=choices[0][1] if choices else None, label="Sample session",
                                 elem_id="demo-sample")
            language = gr.Dropdown([("Detect", "auto"), ("English", "en"), ("Chinese", "zh")], value="auto",
                                   label="Language of pasted text")
        pasted = gr.Textbox(label=f"Pasted transcript (up to {MAX_CHARS:,} characters; not stored)", lines=5,
                            value=EXAMPLE, elem_id="demo-pasted")
        with gr.Row():
            run = gr.Button("Predict", variant="primary", elem_id="demo-predict")
            status = gr.HTML(js_on_load=None, elem_id="demo-status")
        with gr.Row(equal_height=False):
            with gr.Column(scale=5):
                transcript = gr.HTML(js_on_load=None, elem_id="care-transcript")
            with gr.Column(scale=7, elem_id="care-cards"):
                summary = gr.HTML(js_on_load=None)
                cards = gr.HTML(js_on_load=None, elem_id="demo-cards")
        outs = [transcript, summary, cards, status]
        ins = [source, sample, pasted, language]
        quiet = dict(api_visibility="private", show_progress="hidden")
        for trig in (sample.change, source.change):
            trig(h.show, ins, outs, **quiet)
        demo.load(h.show, ins, outs, **quiet)
        run.click(h.predict, ins, outs, api_visibility="private", concurrency_limit=1, concurrency_id="demo-model",
                  show_progress_on=[status])  # one progress indicator for the job, not one per output
        if predictor is not None:
            validate.register(h.demo_predict, "demo_predict", concurrency_limit=1, concurrency_id="demo-model")
    demo.queue(default_concurrency_limit=4, max_size=20)
    return calm_queue(demo)


