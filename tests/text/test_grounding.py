"""care_model.text.grounding: the pure constraint state of grounded decoding (no model involved).

A row is driven by random walks through what it allows (any allowed token may be the model's
choice), so the guarantees are checked for every path, not for one model's preferences.
"""
from __future__ import annotations

import random
import re

import pytest

from care_model.text.evidence import TranscriptIndex, find_quotes
from care_model.text.grounding import GroundedRow, GroundingConfig, build_rows
from care_model.text.grounding_turns import rank_candidates
from care_model.text.grounding_vocab import Vocabulary, lead_in
from care_model.core.records import Turn

TURNS = [
    Turn(0, "counselor", "How was your week since we last met?"),
    Turn(1, "client", "Honestly the rota's all over the place. I did three nights and then a day shift."),
    Turn(2, "counselor", "That sounds exhausting."),
    Turn(3, "client", "I don't really want to do, like, a sleep plan or anything."),
    Turn(4, "client", "我最近工作压力很大，晚上睡不着。"),
    Turn(5, "client", "Yes."),
    Turn(6, "client", "我同事说“你就别想了”，可是我做不到。"),
]
EOS = 0
OPTIONS = {1: [1], 2: [2], 3: [3], 4: [4], 5: [5]}


def _vocab(extra=()) -> Vocabulary:
    """Ids 0 eos, 1-5 the digits, then every single byte, words of the turns (with and without a leading
    space), quote marks alone and glued to punctuation, newline pieces and some free words."""
    pieces: list[bytes | None] = [None] + [str(d).encode() for d in range(1, 6)]
    pieces += [bytes([b]) for b in range(256)]  # “ and ” are only byte pieces here: the quote must stop at them
    words = set()
    for t in TURNS:
        for w in re.findall(r"\w+|[^\w\s“”]", t.text):
            words |= {w, " " + w}
        words |= {t.text[i:i + 2] for i in range(len(t.text) - 1) if not {"“", "”"} & set(t.text[i:i + 2])}
    words |= {'"', ' "', '".', '",', " “", "「", "」", "\n", ".\n", " [", "12", " turn", " shows",
              " that", " she", " feels", " the", " way", " 'cause", "'s", "The", " client", " says", "来访者", "说",
              "：", "The client says"}
    words |= set(extra)
    pieces += [w.encode("utf-8") for w in sorted(words)]
    return Vocabulary(pieces, [EOS])


def _walk(row: GroundedRow, vocab: Vocabulary, rng: random.Random, limit: int = 120) -> list[int]:
    ids = []
    everything = [i for i, p in enumerate(vocab.pieces) if p is not None] + [EOS]
    for _ in range(limit):
        kind, allowed = row.allowed()
        if kind == "only":
            assert allowed, f"nothing allowed in phase {row.phase}"
            choices = allowed
        else:
            assert kind == "free"
            banned = set(allowed) | vocab.free_banned
            choices = [i for i in everything if i not in banned]
            if rng.random() < 0.5:  # favour short readable pieces so walks reach sentence ends
                choices = [i for i in choices if i != EOS and len(vocab.pieces[i]) > 1] or choices
        tid = rng.choice(choices)
        ids.append(tid)
        row.advance(tid)
        if row.done:
            break
    return ids


def _text(vocab, ids):
    return b"".join(vocab.pieces[i] or b"" for i in ids).decode("utf-8", errors="replace")


@pytest.mark.parametrize("language", ["en", "zh"])
def test_random_walks_quote_only_candidate_turns_verbatim(language):
    vocab = _vocab()
    candidates = [1, 3, 4] if language == "en" else [4, 1, 6]
    index = TranscriptIndex([t for t in TURNS if t.index in candidates])
    full = TranscriptIndex(TURNS)
    quoted = set()
    for seed in range(150):
        rng = random.Random(seed)
        row = build_rows(vocab, TURNS, {7: candidates}, OPTIONS, language=language)[7]
        assert row.candidate_turns == candidates
        score = rng.randint(1, 5)
        row.start(score)
        ids = _walk(row, vocab, rng)
        text = _text(vocab, ids)
        assert ids[0] == score, "the score line is the option the engine's distribution chose"
        line2 = text.split("\n")[1]
        lead = lead_in(language, "client", vocab)[0]
        assert line2.startswith(lead)
        ev = index.link(line2)
        assert ev.unsupported == [], (seed, line2)
        assert not full.link(line2).unsupported
        assert ev.turn_indices, (seed, line2)  # at least one quote, from a candidate turn
        assert not re.search(r"\d", line2), "free text writes no numbers (no invented turn references)"
        assert row.done or len(ids) == 120
        quoted |= set(ev.turn_indices)
        for turn_index, q in row.quotes:
            assert turn_index in candidates and q in next(t.text for t in TURNS if t.index == turn_index)
    assert len(quoted) >= 2, "random walks reach more than one candidate turn"


def test_closing_mark_needs_three_words_on_a_word_boundary():
    vocab = _vocab()
    row = GroundedRow(vocab, [(3, TURNS[3].text)], OPTIONS)
    row.start(2)
    for piece in [b"2", b"\n", b"The client says", b" ", b'"']:
        kind, allowed = row.allowed()
        tid = vocab.by_bytes[piece][0]
        assert kind == "only" and tid in allowed, piece
        row.advance(tid)
    assert row.phase == "quote"
    close = vocab.by_bytes[b'"'][0]
    for piece in [b"I", b" don", b"'", b"t"]:
        kind, allowed = row.allowed()
        assert close not in allowed, f"closing allowed after {row._quote!r}"
        assert vocab.by_bytes[piece][0] in allowed
        row.advance(vocab.by_bytes[piece][0])
    assert close in row.allowed()[1], "'I don't' is three words for care_model.text.evidence"
    for piece in [b" r", b"e"]:
        row.advance(vocab.by_bytes[piece][0])
    assert close not in row.allowed()[1], "mid-word ('re' of 'really') cannot close"
    assert vocab.by_bytes[b"ally"[:1]][0] in row.allowed()[1]
    for piece in [b"a", b"l", b"l", b"y"]:
        row.advance(vocab.by_bytes[piece][0])
    kind, allowed = row.allowed()
    assert close in allowed and vocab.by_bytes[b" want"][0] in allowed
    assert vocab.by_bytes[b" sleep"][0] not in allowed, "only the turn's next characters"
    row.advance(close)
    assert row.quotes == [(3, "I don't really")] and row.phase == "free"


def test_free_text_stops_at_sentence_end_and_bans_numbers_and_repeats():
    vocab = _vocab()
    row = GroundedRow(vocab, [(5, TURNS[5].text)], OPTIONS)  # "Yes." : a whole short turn
    row.start(4)
    for piece in [b"4", b"\n", b"The client says", b' "', b"Yes", b"."]:
        row.advance(vocab.by_bytes[piece][0])
    assert row.allowed() == ("only", vocab.by_bytes[b'"']), "a whole short turn may close (nothing follows)"
    row.advance(vocab.by_bytes[b'"'][0])
    kind, banned = row.allowed()
    assert kind == "free"
    banned = set(banned) | vocab.free_banned
    for bad in [b"12", b" [", b'".', b"'s"]:
        assert vocab.by_bytes[bad][0] in banned, bad
    assert vocab.by_bytes[b" 'cause"][0] in banned
    for piece in [b" the", b" way", b" the"]:
        row.advance(vocab.by_bytes[piece][0])
    assert vocab.by_bytes[b" way"][0] not in row.allowed()[1]
    for piece in [b" way", b" the"]:
        row.advance(vocab.by_bytes[piece][0])
    assert row.allowed() == ("free", [vocab.by_bytes[b" way"][0]]), "' way the way' again would repeat a 3-gram"
    row.advance(vocab.by_bytes[b"."][0])
    assert row.allowed() == ("only", [EOS]) and not row.truncated
    row.advance(EOS)
    assert row.done


def test_second_quote_is_constrained_and_free_cap_truncates():
    vocab = _vocab()
    row = GroundedRow(vocab, [(1, TURNS[1].text)], OPTIONS, config=GroundingConfig(max_free_tokens=4))
    row.start(1)
    for piece in [b"1", b"\n", b"The client says", b' "', b"I", b" did", b" three", b'"', b" that", b' "']:
        row.advance(vocab.by_bytes[piece][0])
    assert row.phase == "quote"
    allowed = row.allowed()[1]
    assert vocab.by_bytes[b"Honestly"][0] in allowed and vocab.by_bytes[b"That"[:1]][0] not in allowed
    for piece in [b"a", b" day", b" shift", b'"', b" she", b" feels"]:
        row.advance(vocab.by_bytes[piece][0])
    assert row.quotes == [(1, "I did three"), (1, "a day shift")]
    assert row.truncated and row.allowed() == ("only", [EOS])


def test_lead_in_and_quote_style_follow_the_vocabulary():
    vocab = _vocab()
    curly = _vocab(extra=("“", "”"))
    assert lead_in("zh", "client", curly) == ("来访者说：“", "“", "”")
    assert lead_in("en", "counselor", vocab) == ('The counselor says "', '"', '"')
    assert lead_in("zh", "client", vocab)[1:] == ("「", "」"), "“” are not single tokens of this vocabulary"
    text = "来访者说：「我最近工作压力很大」"
    assert find_quotes(text) == ["我最近工作压力很大"]


def test_rank_candidates_top_k_of_the_speaker():
    sims = [0.9, 0.1, 0.95, 0.5, 0.3, 0.5, 0.2]
    assert rank_candidates(TURNS, sims, 2) == [3, 5]       # client turns only, ties by turn order
    assert rank_candidates(TURNS, sims, 10) == [3, 5, 4, 6, 1]
    assert rank_candidates(TURNS, sims, 1, speaker="counselor") == [2]
    only_counselor = [t for t in TURNS if t.speaker == "counselor"]
    assert rank_candidates(only_counselor, [0.1, 0.9], 1) == [2]  # nobody else to quote


def test_score_must_be_given_first():
    row = GroundedRow(_vocab(), [(1, TURNS[1].text)], OPTIONS)
    with pytest.raises(RuntimeError, match="start"):
        row.allowed()


def test_score_line_fixed_or_by_rule():
    vocab = _vocab()
    fixed = GroundedRow(vocab, [(1, TURNS[1].text)], OPTIONS, fixed_score=5)
    fixed.start(2, [0.1, 0.6, 0.1, 0.1, 0.1])
    assert fixed.allowed() == ("only", [5]), "drafting writes the target score"
    ruled = GroundedRow(vocab, [(1, TURNS[1].text)], OPTIONS, score_rule=lambda p: 1 + p.index(min(p)))
    ruled.start(2, [0.1, 0.6, 0.05, 0.15, 0.1])
    assert ruled.allowed() == ("only", [3])
    plain = GroundedRow(vocab, [(1, TURNS[1].text)], OPTIONS)
    plain.start(2, [0.1, 0.6, 0.1, 0.1, 0.1])
    assert plain.allowed() == ("only", [2])


# ----------------------------------------------------------------------------- whose words
SPEAKER_WORDS = (" counselor", " and", " client", " therapist", "咨询师", "来访者")


def _drive(row, vocab, pieces):
    for piece in pieces:
        kind, ids = row.allowed()
        tid = vocab.by_bytes[piece.encode("utf-8")][0]
        assert (tid in ids) == (kind == "only"), (piece, row.phase)
        row.advance(tid)


def test_quote_after_the_counselor_is_named_continues_a_counselor_turn():
    vocab = _vocab(extra=SPEAKER_WORDS)
    row = build_rows(vocab, TURNS, {7: [1, 3, 0, 2]}, OPTIONS)[7]
    assert row.candidate_turns == [1, 3, 0, 2]
    row.start(2)
    _drive(row, vocab, ["2", "\n", "The client says", ' "', "I", " did", " three", '"', " and", " the", " counselor",
                        ' "'])
    allowed = row.allowed()[1]
    assert vocab.by_bytes[b"How"][0] in allowed and vocab.by_bytes[b"That"][0] in allowed, "counselor turns open"
    assert vocab.by_bytes[b"Honestly"][0] not in allowed and vocab.by_bytes[b"I"][0] not in allowed, "client's shut"
    _drive(row, vocab, ["That", " sounds", " exhausting", '"'])
    assert row.quotes == [(1, "I did three"), (2, "That sounds exhausting")]
    assert row.quote_speakers == ["client", "counselor"]


def test_no_quote_opens_for_a_named_speaker_without_candidate_turns():
    vocab = _vocab(extra=SPEAKER_WORDS)
    row = build_rows(vocab, TURNS, {7: [1, 3]}, OPTIONS)[7]  # client turns only
    row.start(2)
    _drive(row, vocab, ["2", "\n", "The client says", ' "', "I", " did", " three", '"', " and", " the"])
    openers = set(vocab.openers)
    kind, banned = row.allowed()
    assert kind == "free" and not openers & set(banned), "after 'the client' a new client quote may open"
    _drive(row, vocab, [" counselor"])
    kind, banned = row.allowed()
    assert kind == "free" and openers <= set(banned) | vocab.free_banned, "no counselor turn: no quote opens"
    _drive(row, vocab, [" client"])
    assert not openers & set(row.allowed()[1]), "naming the client again reopens quotes"


@pytest.mark.parametrize("language", ["en", "zh"])
def test_random_walks_never_give_one_speakers_words_to_the_other(language):
    """Whatever the model writes, each quote comes from a turn of the speaker named last before it
    (the same rule benchmarks/quote_attribution.py counts with), and evidence is the decoded turn."""
    from care_model.text.evidence import quote_attributions
    from care_model.text.grounding import decoded_evidence

    vocab = _vocab(extra=SPEAKER_WORDS)
    speaker = {t.index: t.speaker for t in TURNS}
    candidates = [1, 3, 0, 2] if language == "en" else [4, 6, 0, 2]
    seen = set()
    for seed in range(200):
        rng = random.Random(seed)
        row = build_rows(vocab, TURNS, {7: candidates}, OPTIONS, language=language)[7]
        row.start(rng.randint(1, 5))
        line2 = _text(vocab, _walk(row, vocab, rng)).split("\n")[1]
        said = quote_attributions(line2)
        assert [who for _, who in said][:len(row.quotes)] == row.quote_speakers[:len(said)], (seed, line2)
        for (turn_index, q), who in zip(row.quotes, row.quote_speakers):
            assert speaker[turn_index] == who and q in next(t.text for t in TURNS if t.index == turn_index)
        assert decoded_evidence(row) == sorted({i for i, _ in row.quotes})
        seen |= set(row.quote_speakers)
    if language == "en":
        assert seen == {"client", "counselor"}, "walks reach quotes of both speakers"
