"""care_model.text.evidence: quotes in both languages, linking to turns, references, speed."""
from __future__ import annotations

import random
import time

import pytest

from care_model.text.evidence import TranscriptIndex, find_quotes, link_evidence, normalize
from care_model.core.records import Turn

TEXTS = [
    "Hi, thanks for coming in today. What brings you here?",                       # 0
    "I don't know why I'm here, honestly. My mom made me come.",                   # 1
    "Okay.",                                                                       # 2
    "That sounds frustrating. What would you like to get out of this?",            # 3
    "我觉得你真的很理解我，谢谢你。",                                               # 4
    "我们一起定一个目标吧：每天按时睡觉。",                                         # 5
    "Maybe... I guess I'd like to sleep better, and stop fighting with her.",      # 6
    "I don't know.",                                                               # 7
    "Let's agree on one goal for this week: you go to bed at eleven.",             # 8
    "嗯。",                                                                         # 9
]
TURNS = [Turn(i, "counselor" if i % 2 == 0 else "client", t) for i, t in enumerate(TEXTS)]


@pytest.fixture(scope="module")
def index():
    return TranscriptIndex(TURNS)


# ----- find_quotes -----------------------------------------------------------------------------
@pytest.mark.parametrize("rationale,quotes", [
    ('She says "I don\'t know why I\'m here" early on.', ["I don't know why I'm here"]),
    ("She says “my mom made me come” early on.", ["my mom made me come"]),
    ("She says 'my mom made me come' early on.", ["my mom made me come"]),
    ("She says ‘my mom made me come’ early on.", ["my mom made me come"]),
    ("来访者说「我觉得你真的很理解我」。", ["我觉得你真的很理解我"]),
    ("来访者说『我们一起定一个目标吧』。", ["我们一起定一个目标吧"]),
    ("Elle dit «my mom made me come».", ["my mom made me come"]),
    ("来访者说“谢谢你真的”，又说“我们一起定目标”。", ["谢谢你真的", "我们一起定目标"]),
    ("She says ＂my mom made me come＂.", ["my mom made me come"]),
])
def test_quote_styles(rationale, quotes):
    assert find_quotes(rationale) == quotes


def test_apostrophes_are_not_quotes():
    text = "The client's tone shows she doesn't trust him; she won't say 'I can't do this anymore' out loud."
    assert find_quotes(text) == ["I can't do this anymore"]
    assert find_quotes("The client’s tone: she says ‘I don’t want to be here at all’ twice.") == [
        "I don’t want to be here at all"]
    assert find_quotes("The clients' parents and the counselor's notes don't agree.") == []


def test_nested_quote_is_taken_once():
    assert find_quotes("她说“我妈妈说‘你必须去’所以我来了”。") == ["我妈妈说‘你必须去’所以我来了"]


def test_short_quotes_dropped_unless_a_whole_turn(index):
    text = 'She says "Okay" and "I see" and "嗯" and "目标" and "I don\'t know".'
    assert find_quotes(text) == ["I don't know"]  # 3 words
    assert find_quotes(text, index=index) == ["Okay", "嗯", "I don't know"]
    assert find_quotes("来访者说“谢谢你呀”。") == ["谢谢你呀"]  # 4 Chinese characters


# ----- linking ---------------------------------------------------------------------------------
def test_links_quotes_in_both_languages(index):
    res = link_evidence('The client says "my mom made me come" and later “我觉得你真的很理解我”.', TURNS)
    assert res.turn_indices == [1, 4]
    assert res.matches == [("my mom made me come", 1), ("我觉得你真的很理解我", 4)]
    assert res.unsupported == []


def test_tolerates_punctuation_case_whitespace_and_width(index):
    res = index.link('She said "MY MOM   made me come!!" then “我觉得 你真的很理解我。谢谢你” '
                     'and "Ｉ don’t know why I’m here"')
    assert res.matches == [("MY MOM   made me come!!", 1), ("我觉得 你真的很理解我。谢谢你", 4),
                           ("Ｉ don’t know why I’m here", 1)]


def test_missing_apostrophe_still_matches(index):
    assert index.find("I dont know why Im here") == 1


def test_ellipsis_means_elision_in_order(index):
    assert index.find("I guess I'd like to sleep better ... stop fighting with her") == 6
    assert index.find("I guess … stop fighting") == 6
    assert index.find("我们一起……每天按时睡觉") == 5
    assert index.find("I guess [...] stop fighting with her") == 6
    assert index.find("stop fighting with her ... I guess") is None  # parts out of order
    assert index.find("I guess ... bed at eleven") is None  # parts from different turns


def test_whole_words_only(index):
    assert index.find("oming in today") is None  # "coming in today" with a cut word
    assert index.find("coming in tod") is None
    assert index.find("coming in today") == 0
    assert index.find("I dont know why Im her") is None  # the spaceless fallback keeps word edges too


def test_whole_turn_match_wins_over_earlier_containing_turn(index):
    # "I don't know" is inside turn 1 but is all of turn 7
    assert index.find("I don't know.") == 7
    assert index.find("I don't know why") == 1


def test_transcript_line_prefix_in_quote_is_ignored(index):
    assert index.find("[8] Counselor: Let's agree on one goal for this week") == 8
    assert index.find("来访者：我觉得你真的很理解我") == 4


def test_unsupported_quotes_reported(index):
    res = index.link('She says "I never want to come back here" and "my mom made me come".')
    assert res.turn_indices == [1]
    assert res.matches == [("I never want to come back here", None), ("my mom made me come", 1)]
    assert res.unsupported == ["I never want to come back here"]


@pytest.mark.parametrize("rationale,indices", [
    ("As in [3], she hesitates.", [3]),
    ("See turn 6 and Turn 8.", [6, 8]),
    ("In turns 2-4 the client withdraws.", [2, 3, 4]),
    ("In turns 1 and 7 she says she doesn't know.", [1, 7]),
    ("Across [5-6] they set goals.", [5, 6]),
    ("来访者在第4轮表达感谢。", [4]),
    ("第 5 轮和第6句", [5, 6]),
    ("第4-6轮", [4, 5, 6]),
    ("见［４］。", [4]),
])
def test_explicit_turn_references(index, rationale, indices):
    res = index.link(rationale)
    assert res.turn_indices == indices and res.referenced == indices and res.unsupported == []


def test_reference_to_missing_turn_is_unsupported(index):
    res = index.link("As in turn 42 and [3].")
    assert res.turn_indices == [3]
    assert res.unsupported == ["turn 42"]


def test_quotes_and_references_combine_sorted_unique(index):
    res = index.link('“我们一起定一个目标吧” [5], and "Let\'s agree on one goal" (turn 8), [1].')
    assert res.turn_indices == [1, 5, 8]


def test_accepts_dicts_strings_and_index():
    dicts = [t.to_dict() for t in TURNS]
    text = 'She says "my mom made me come".'
    assert link_evidence(text, dicts).turn_indices == [1]
    assert link_evidence(text, TEXTS).turn_indices == [1]
    assert link_evidence(text, TranscriptIndex(TURNS)).turn_indices == [1]
    assert link_evidence("", TURNS).turn_indices == []


def test_normalize_unifies_scripts_and_quotes():
    assert normalize("“Don’t”  GO…  ＨＥＲＥ!") == normalize('"don\'t" go... here')
    assert normalize("我觉得 你，真的 很理解我。") == "我觉得你真的很理解我"


# ----- speed -----------------------------------------------------------------------------------
def test_twelve_rationales_against_80_turns_under_50ms():
    rng = random.Random(7)
    words = ("sleep mother school work friend goal change feel think week talk together better try hard "
             "night angry tired sister job money plan small step home late early again never always").split()
    turns = [Turn(i, "client" if i % 2 else "counselor", " ".join(rng.choice(words) for _ in range(40)) + ".")
             for i in range(80)]
    rationales = [
        f'The client says "{" ".join(turns[(j * 6) % 80].text.split()[3:12])}" [{j * 6}] and later '
        f'“{" ".join(turns[(j * 6 + 5) % 80].text.split()[-8:])}”, then "something nobody ever said here" '
        f"(turn {j + 40}); 第{j}轮。" for j in range(12)
    ]
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        index = TranscriptIndex(turns)
        results = [index.link(r) for r in rationales]
        best = min(best, time.perf_counter() - start)
    assert best < 0.05, f"{best * 1000:.1f} ms"
    for j, res in enumerate(results):
        assert [i for _, i in res.matches] == [(j * 6) % 80, (j * 6 + 5) % 80, None]
