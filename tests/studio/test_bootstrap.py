"""The app's decoding choice: an admin setting (default grounded) that the predict worker's predictor follows."""
from __future__ import annotations

import pytest

from care_model.core.errors import CareError
from care_model.inference.models import ModelSpec
from studio.access import access_of, review_settings, set_review_settings
from studio.bootstrap import ActivePredictor
from studio_testing import make_store


@pytest.fixture()
def repo(tmp_path):
    repo = make_store(tmp_path / "store")
    yield repo
    repo.close()


def test_admin_setting_switches_the_app_predictions_between_grounded_and_free(repo, tiny_model_dir):
    assert review_settings(repo)["grounded_decoding"] is True
    active = ActivePredictor(repo, ModelSpec(base=str(tiny_model_dir)))
    session = repo.get_session("sample-en-03")
    grounded = active.predict_session(session, items=[2])[0]
    assert grounded.decoding == "grounded" and grounded.candidate_turns
    with pytest.raises(CareError, match="admin"):
        set_review_settings(repo, access_of(repo, "ann"), grounded_decoding=False)
    set_review_settings(repo, access_of(repo, "admin"), grounded_decoding=False)
    free = active.predict_session(session, items=[2])[0]
    assert free.decoding == "free" and free.candidate_turns == [] and free.raw_output != grounded.raw_output
    set_review_settings(repo, access_of(repo, "admin"), grounded_decoding=True)
    assert active.predict_session(session, items=[2])[0].raw_output == grounded.raw_output
