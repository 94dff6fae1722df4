"""ESConv JSON (``ESConv.json``): one JSON array of emotional-support conversations.

Each conversation: ``dialog`` (required; ``[{speaker, content, annotation}]``) and, all
optional, ``experience_type``, ``emotion_type``, ``problem_type``, ``situation``,
``survey_score`` ``{seeker: {...}, supporter: {...}}``, ``seeker_question1/2``,
``supporter_question1/2``.

Conventions:

* seeker -> client, supporter -> counselor (``usr``/``sys`` of the Hugging Face copy too; a
  turn's text may be under ``content`` or ``text``). Consecutive turns of one speaker stay
  separate turns.
* The file has no ids: session id ``esconv-<12 hex>``, a hash of the dialog (speakers and texts as
  in the file), so re-importing the same conversation gives the same id wherever it sits in the
  file. Client id ``esconv-client-<same hash>`` (one pseudonymous seeker per conversation);
  counselor id ``esconv-supporter`` (the file does not identify supporters; a placeholder).
* ``metadata``: every conversation-level field except ``dialog`` as written (so unknown fields
  survive too), plus ``turn_annotations``: one object per turn, the turn's ``annotation``
  (``{"strategy": ...}`` for supporters, ``{"feedback": ...}`` for some seeker turns, ``{}``) and
  any other per-turn field; and ``speaker_labels``.
* Texts are stripped (the file ends many utterances with a new line). An utterance with no text
  is left out with a warning and kept in ``metadata["empty_utterances"]``.
* Language ``en`` unless ``language=`` says otherwise.
"""
from __future__ import annotations

import json
from pathlib import Path

from care_model.core.records import Session, Turn, stable_hash

from .common import Context, Parsed, SpeakerResolver, at, fail, read_text, validated

BUILTIN_SPEAKERS = {"seeker": "client", "supporter": "counselor", "usr": "client", "sys": "counselor"}
COUNSELOR_ID = "esconv-supporter"
TURN_TEXT_KEYS = ("content", "text")


def _record(k: int) -> str:
    return f"conversation {k + 1} (index {k})"


def parse(path: Path, ctx: Context) -> Parsed:
    text = read_text(path)
    out = Parsed()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        hint = ""
        if err.lineno > 1 and text.lstrip().startswith("{"):
            hint = (" It looks like one JSON object per line: import it with --format jsonl if it is this "
                    "project's format.")
        raise fail(at(path, err.lineno), f"not valid JSON at column {err.colno}: {err.msg}.{hint}",
                   "ESConv is one JSON array [{...}, {...}]; check that spot for a missing comma, quote or bracket.",
                   line=err.lineno, column=err.colno) from None
    if isinstance(data, dict) and isinstance(data.get("dialog"), list):
        data = [data]
    if not isinstance(data, list):
        raise fail(at(path), f"the file holds a JSON {type(data).__name__}, expected a list of conversations.",
                   'ESConv is one JSON array: [{"dialog": [...], ...}, ...].')
    if not data:
        raise fail(at(path), "the file holds no conversations (an empty list).", "Pick the ESConv file with its data.")
    resolver = SpeakerResolver(BUILTIN_SPEAKERS, ctx, what="speaker")
    pending = []
    for k, conv in enumerate(data):
        where = at(path, record=_record(k))
        if not isinstance(conv, dict):
            raise fail(where, f"the conversation is a JSON {type(conv).__name__}, expected an object.",
                       'Each conversation is {"dialog": [...], "situation": ..., ...}.')
        dialog = conv.get("dialog")
        if not isinstance(dialog, list):
            problem = "has no 'dialog'" if dialog is None else f"'dialog' is {type(dialog).__name__}, expected a list"
            raise fail(where, f"the conversation {problem}.",
                       'Give it "dialog": [{"speaker": "seeker", "content": "...", "annotation": {}}, ...].')
        raw_turns = []
        for j, utt in enumerate(dialog):
            tw = f"{where}, dialog turn {j}"
            if not isinstance(utt, dict):
                raise fail(tw, f"the turn is a JSON {type(utt).__name__}, expected an object.",
                           'Write each turn as {"speaker": "seeker", "content": "...", "annotation": {}}.')
            speaker = utt.get("speaker")
            if not isinstance(speaker, str):
                raise fail(tw,
                           "the turn has no speaker." if speaker is None
                           else f"'speaker' is {speaker!r}, not a string.",
                           'Give each turn "speaker": "seeker" or "supporter".')
            key = next((k2 for k2 in TURN_TEXT_KEYS if k2 in utt), None)
            if key is None or not isinstance(utt[key], str):
                raise fail(tw, "the turn has no text ('content')." if key is None else f"'{key}' is not a string.",
                           'Give each turn "content": "what was said".')
            annotation = utt.get("annotation", {})
            if not isinstance(annotation, dict):
                raise fail(tw, f"'annotation' is {type(annotation).__name__}, expected an object.",
                           'Write annotations as an object, e.g. {"strategy": "Question"}, or {}.')
            note = {**annotation, **{k2: v for k2, v in utt.items() if k2 not in ("speaker", "annotation", key)}}
            role = resolver.see(speaker, _record(k) + f", dialog turn {j}")
            raw_turns.append((j, speaker, role, utt[key], note))
        pending.append((k, where, conv, raw_turns))
    resolver.raise_if_unknown(path)

    for k, where, conv, raw_turns in pending:
        digest = stable_hash([[speaker, content] for _, speaker, _, content, _ in raw_turns], length=12)
        meta = {key: value for key, value in conv.items() if key != "dialog"}
        turns, notes, empty, labels = [], [], [], {}
        for j, speaker, role, content, note in raw_turns:
            labels[speaker] = role
            if not content.strip():
                empty.append({"dialog_index": j, "speaker": speaker, **note})
                continue
            turns.append(Turn(index=len(turns), speaker=role, text=content.strip()))
            notes.append(note)
        meta["speaker_labels"] = labels
        meta["turn_annotations"] = notes
        if empty:
            meta["empty_utterances"] = empty
            out.warnings.append(f"{where}: left out {len(empty)} turn{'s' if len(empty) > 1 else ''} with no text "
                                f"(dialog index {', '.join(str(e['dialog_index']) for e in empty)}); "
                                "kept in metadata['empty_utterances'].")
        session = Session(id=f"esconv-{digest}", turns=turns, language=ctx.language or "en", source="esconv",
                          client_id=f"esconv-client-{digest}", counselor_id=COUNSELOR_ID, metadata=meta)
        out.sessions.append((validated(session, where), where))
    return out
