"""studio.gradio_boot: Gradio starts without rewriting its component stubs, and works as before."""
from __future__ import annotations

import sys

import gradio as gr

from studio import gradio_boot


def test_gradio_imported_after_studio_writes_no_stubs_and_its_components_work(tmp_path):
    import gradio.component_meta as cm

    assert cm.create_or_modify_pyi is gradio_boot._no_stub          # the hook ran when Gradio loaded
    with gr.Blocks() as demo:                                         # components and events still build
        box = gr.Textbox(label="x")
        box.submit(lambda v: v, box, box)
    assert demo.get_config_file()["dependencies"][0]["targets"][0][1] == "submit"


def test_install_is_idempotent_and_too_late_once_gradio_is_loaded():
    assert "gradio.component_meta" in sys.modules
    before = list(sys.meta_path)
    assert gradio_boot.install() is False
    assert sys.meta_path == before
