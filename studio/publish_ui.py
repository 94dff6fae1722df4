"""The Admin tab's Publish section: the curated set as a Hugging Face dataset folder, downloaded as a zip.

:func:`publish_zip` (no Gradio) runs :func:`care_model.jobs.publish.publish` into a private temp
folder and zips it for the admin who asked (``studio.downloads``: only they may fetch it).
Transcripts only with the box ticked and after the de-identification review (the publish job
refuses otherwise, with the reason). :func:`build_publish_section` adds the section's controls;
the Admin tab calls it once.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import gradio as gr

from care_model.core.errors import CareError

from . import ui
from .access import Access
from .admin import parse_ids


def publish_zip(repo, access: Access, session_ids="", include_transcripts: bool = False) -> tuple[str, str]:
    """``(zip path, message)``: the dataset folder of ``session_ids`` (empty: every curated session)."""
    access.require("admin", action="publishing the curated set")
    from care_model.jobs.publish import publish

    from .downloads import private_path

    work = Path(tempfile.mkdtemp(prefix="care-publish-"))
    try:
        out = publish(repo, work / "dataset", session_ids=parse_ids(session_ids) or None,
                      include_transcripts=bool(include_transcripts), actor=access.username)
        target = private_path(access.username, "export", "zip", "dataset")
        archive = shutil.make_archive(str(target.with_suffix("")), "zip", root_dir=work / "dataset")
        Path(archive).chmod(0o600)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n = out["numbers"]
    splits = ", ".join(f"{k} {v}" for k, v in n["splits"].items())
    return archive, (f"Published {n['rows']} session-items of {n['sessions']} sessions ({n['clients']} clients; "
                     f"splits by client: {splits}), "
                     + ("with transcripts and training-ready exports." if include_transcripts else
                        "without transcripts.") + " Unzip it and load it with datasets.load_dataset(FOLDER); "
                     "set the license in README.md before any release.")


class PublishUI:
    def __init__(self, ctx):
        self.ctx = ctx

    def publish(self, session_ids: str, include_transcripts: bool, request: gr.Request):
        access = ui.require_role(self.ctx.repo, request, "admin")
        try:
            path, message = publish_zip(self.ctx.repo, access, str(session_ids or ""), include_transcripts is True)
        except CareError as err:  # names the problem and the fix (e.g. the de-identification review)
            return gr.update(value=None), f"Not published: {err}"
        return path, message


def build_publish_section(ctx) -> PublishUI:
    """The Publish accordion (call inside the Admin tab's layout)."""
    h = PublishUI(ctx)
    with gr.Accordion("Publish the curated set (Hugging Face dataset)", open=False, elem_id="care-publish"):
        gr.Markdown("One row per curated session-item, Parquet splits by client (as cross-validation splits "
                    "them), a dataset card with counts, provenance and agreement. Transcripts and the SFT and "
                    "preference files only after the de-identification review.")
        with gr.Row():
            sessions = gr.Textbox(label="Sessions (ids; empty: every curated session)", elem_id="care-publish-ids")
            transcripts = gr.Checkbox(value=False, label="Include transcripts (needs the de-identification review)",
                                      elem_id="care-publish-transcripts")
        button = gr.Button("Publish", elem_id="care-publish-run")
        msg = gr.Markdown(elem_id="care-publish-msg")
        out = gr.File(label="Dataset (zip)", elem_id="care-publish-file")
    button.click(h.publish, [sessions, transcripts], [out, msg], api_visibility="private", show_progress="minimal")
    return h
