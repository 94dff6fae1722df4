"""Fixtures of the studio tests: the app with a trainer (tests/studio/test_training_tab.py and
tests/studio/test_training_cancel.py; one app per module)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

@pytest.fixture(scope="module")
def training_app(tmp_path_factory, tiny_model_dir):
    """The app on the sample store with 6 curated sessions and the tiny model; ``.mgr`` is its TrainingManager."""
    from gradio_client import Client

    from care_model.inference.models import ModelSpec
    from care_model.inference.predictor import Predictor
    from studio.app import build_app
    from studio_testing import TRAINER_ENV, TRAINING_CURATED, curate, make_store, password, serve

    repo = make_store(tmp_path_factory.mktemp("training") / "store")
    curate(repo, TRAINING_CURATED)
    demo = build_app(repo, Predictor(ModelSpec(base=str(tiny_model_dir))))
    mgr = demo.studio_ctx.components["training"]
    mgr.env.update(TRAINER_ENV)  # its trainer processes on one thread (studio_testing.TRAINER_ENV)
    with serve(demo) as url:
        yield SimpleNamespace(url=url, repo=repo, demo=demo, mgr=mgr,
                              admin=Client(url, auth=("admin", password("admin")), verbose=False),
                              ann=Client(url, auth=("ann", password("ann")), verbose=False))
    repo.close()


