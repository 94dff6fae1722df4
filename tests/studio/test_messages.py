"""studio.messages: what every message line and toast shows (no server paths, times to the minute)."""
from studio import messages, render, ui
from care_model.core.errors import ImportFormatError


def test_server_paths_are_cut_to_the_file_name():
    text = "Line 3 of /tmp/gradio/4f2a9c0e1b/AnnoMI-simple.csv: no transcript_id (see /work/main/care_store/x.json)."
    assert messages.public_text(text) == "Line 3 of AnnoMI-simple.csv: no transcript_id (see x.json)."
    kept = "Open http://127.0.0.1:7860/ and item 1/2, 3/4 done."
    assert messages.public_text(kept) == kept
    err = ui.ui_error(ImportFormatError("Cannot read /tmp/gradio/ab/cd/s.jsonl.", "Pick a JSONL file."))
    assert "/tmp" not in err.message and "s.jsonl" in err.message


def test_times_are_shown_to_the_minute_and_localised_by_the_page():
    line = render.status_html(f"Saved item 3 at {messages.time_token(1765060867)}.", "ok")
    assert '<time class="care-time" datetime="2025-12-06T22:41:07+00:00">22:41 UTC</time>' in line
    assert "22:41:07" not in line.replace('datetime="2025-12-06T22:41:07', "")
    assert messages.plain(f"at {messages.time_token(1765060867)}") == "at 22:41 UTC"
    assert messages.minute("2026-12-06T22:41:07.123456+00:00") == "2026-12-06 22:41 UTC"
    assert "time.care-time" in ui.JS and "toLocaleTimeString" in ui.JS


def test_message_text_is_escaped_and_the_help_mark_is_no_glyph():
    line = messages.message_html("<b>x</b> from /tmp/gradio/a/b.csv", "error")
    assert "&lt;b&gt;" in line and "/tmp" not in line and 'data-kind="error"' in line
    assert "ⓘ" not in ui.HELP_MARK and "ⓘ" not in ui.CSS


def test_campaign_choices_read_progress_now():
    from studio.campaigns import choice_label

    assert choice_label({"name": "Pilot", "done": 3, "total": 18, "status": "open"}) == "Pilot (3/18 done)"
    assert choice_label({"name": "Pilot", "done": 18, "total": 18, "status": "closed"}) == "Pilot (all 18 done, closed)"


def test_deadlines_round_up_and_every_stored_time_reads_to_the_minute():
    assert messages.minute("2026-12-06T22:41:00+00:00", up=True) == "2026-12-06 22:41 UTC"
    assert messages.minute("2026-12-06T22:41:01+00:00", up=True) == "2026-12-06 22:42 UTC"  # "locked until"
    assert messages.minute("2026-12-06T23:59:30.5+00:00", up=True) == "2026-12-07 00:00 UTC"
    assert messages.when_html("not a time <x>") == "not a time &lt;x&gt;"
    from studio.adjudication_tab import _card

    card = _card("ann", {"score": 3, "version": 2, "updated_by": "ann", "updated_at": "2026-12-06T22:41:07.5+00:00"},
                 {"3": "sometimes"})
    assert '<time class="care-time" datetime="2026-12-06T22:41:07+00:00">22:41 UTC</time>' in card
    assert "07.5" not in card.replace('datetime="2026-12-06T22:41:07', "")


def test_a_failed_prediction_names_no_server_folder():
    line = render.job_html({"state": "failed", "session_id": "s1",
                            "error": "Cannot read /work/main/models/smollm2/model.gguf: truncated."})
    assert "model.gguf" in line and "/work" not in line
