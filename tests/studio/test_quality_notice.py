"""The one-line quality notice (studio.quality_notice) and the first run's recorded verdict of the samples."""
from __future__ import annotations

from store import Repository
from studio import quality_notice as Q
from studio.bootstrap import import_samples

NOT_BETTER = {"beats_baselines": False, "verdict": "not better than a constant on 23 held-out sessions (21 clients)",
              "n_sessions": 23, "n_clients": 21}
BEATS = {"beats_baselines": True, "n_sessions": 40, "n_clients": 12,
         "verdict": "better than both constants on item MAE (40 held-out sessions, 12 clients)"}


def test_wording_per_version_and_verdict():
    assert Q.notice_line("smollm2-135m-instruct", None) == (
        "a 135M demonstration model; its suggestions are not clinically meaningful.")
    assert Q.notice_line("smollm2-135m-instruct", NOT_BETTER) == (
        "a 135M demonstration model; its suggestions are not clinically meaningful; this model's scores are not "
        "better than a constant on 23 held-out sessions (21 clients).")
    assert Q.notice_line("llama+lora@1a2b", None) == "no held-out evaluation against the baselines yet."
    assert Q.notice_line("llama+lora@1a2b", NOT_BETTER).startswith("this model's scores are not better than a constant")
    assert Q.notice_line("llama+lora@1a2b", BEATS) == ""  # a version that beats both constants needs no warning
    assert "demonstration model" in Q.notice_line("smollm2-135m-instruct", BEATS)  # the 135M default always says so
    few = {"beats_baselines": False, "verdict": "too few clients to tell it from a constant (4 sessions, 2 clients; "
                                                "5 needed)"}
    assert Q.notice_line("x", few) == ("held-out evaluation: too few clients to tell it from a constant (4 sessions, "
                                       "2 clients; 5 needed).")
    html = Q.notice_html("a <b> line")
    assert html.startswith('<div class="care-quality-notice"') and "A &lt;b&gt; line" in html
    assert Q.notice_html("") == ""


def test_first_run_records_the_sample_versions_verdict(tmp_path):
    repo = Repository(tmp_path / "store")
    try:
        report = import_samples(repo)
        q = report["quality"]["smollm2-135m-instruct"]
        assert q["beats_baselines"] is False and q["n_sessions"] == 23 and q["n_clients"] == 21
        assert q["verdict"].startswith("not better than a constant")
        line = Q.notice_for(repo, "smollm2-135m-instruct")
        assert "not better than a constant on 23 held-out sessions (21 clients)" in line
        assert Q.notices_for(repo, repo.predictions("sample-en-01")) == {"smollm2-135m-instruct": line}
        assert Q.notice_for(repo, "never-registered") == "no held-out evaluation against the baselines yet."
    finally:
        repo.close()
