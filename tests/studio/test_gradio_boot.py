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


def test_the_apps_queues_poll_calmly_and_still_answer_every_event(tmp_path):
    """The review app and the demo poll their idle queue every 10 ms (Gradio: every 1 ms, ~8% of a core
    idle); a calmed server still runs each event, in order, through a real client."""
    from gradio_client import Client

    from studio.app import build_app
    from studio.demo import build_demo
    from studio_testing import make_store, serve

    repo = make_store(tmp_path / "store")
    for app in (build_app(repo, None), build_demo(None)):
        assert app._queue.sleep_when_free == gradio_boot.QUEUE_POLL_S == 0.01
        assert app._queue.progress_update_sleep_when_free == gradio_boot.PROGRESS_POLL_S
    repo.close()
    with gr.Blocks() as echo:
        box = gr.Textbox()
        box.submit(lambda v: v[::-1], box, box, api_name="rev")
    echo.queue()
    assert echo._queue.sleep_when_free == 0.001  # Gradio's own, untouched until asked
    gradio_boot.calm_queue(echo)
    with serve(echo) as url:
        client = Client(url, verbose=False)
        assert [client.predict(w, api_name="/rev") for w in ("abc", "queue", "x" * 50)] == ["cba", "eueuq", "x" * 50]
