"""care_model.text.parse: what models really emit, and never raising."""
from __future__ import annotations

import random

import pytest

from care_model.text.parse import NO_REASON, parse_answer

# ----- accepted answers ----------------------------------------------------------------------
ANSWERS = [
    # (model output, score, rationale)
    ("4", 4, ""),
    ("4. Very often", 4, ""),
    ("4 - Very often", 4, ""),
    ("4 (Very often)\nThe client thanks the counselor.", 4, "The client thanks the counselor."),
    ("Score: 4", 4, ""),
    ("score:4\nok then", 4, "ok then"),
    ("Answer: (4)", 4, ""),
    ("Answer: [2]\nShe hesitates.", 2, "She hesitates."),
    ("My answer is 3.", 3, ""),
    ("Line 1: 4\nLine 2: She says \"we agreed\" [12].", 4, 'She says "we agreed" [12].'),
    ("**4**", 4, ""),
    ("**Score:** 5\n**Reason:** She says \"thank you\".", 5, 'She says "thank you".'),
    ("- 2\nShe says little.", 2, "She says little."),
    ("4/5\nShe opens up.", 4, "She opens up."),
    ("Score: 4 out of 5\nShe opens up.", 4, "She opens up."),
    ("选择：4", 4, ""),
    ("答案：4 非常频繁", 4, ""),
    ("答案：4 非常频繁\n理由：来访者说“谢谢你”。", 4, "来访者说“谢谢你”。"),
    ("我选择2。来访者很少回应。", 2, "来访者很少回应。"),
    ("4分，因为来访者说“我们一起努力”。", 4, "因为来访者说“我们一起努力”。"),
    ("选择：４。\n原因：她按时来了。", 4, "她按时来了。"),
    ("４\n理由：来访者说：“我想改变”。", 4, "来访者说：“我想改变”。"),
    # options written as words, both languages, any case, longest label first
    ("Very often", 4, ""),
    ("fairly often", 3, ""),
    ("FAIRLY OFTEN\nShe keeps coming back.", 3, "She keeps coming back."),
    ("always", 5, ""),
    ("Seldom.", 1, ""),
    ("Answer: Sometimes", 2, ""),
    ("Very often (4)\nok", 4, "ok"),
    ("Very often, 3 times she thanks him.", 4, "3 times she thanks him."),
    ("非常频繁", 4, ""),
    ("总是", 5, ""),
    ("相当频繁。理由：来访者愿意合作。", 3, "来访者愿意合作。"),
    ("很少", 1, ""),
    # chatter before the answer
    ("Sure! Here is my answer:\n4\nThe client says \"I feel heard\" [7].", 4, 'The client says "I feel heard" [7].'),
    ("Sure! Here is my answer:\n\n\n  4  \n\nReason: she smiles.", 4, "she smiles."),
    ("Here is my answer: 5", 5, ""),
    ("I would choose 4 (Very often) because she returns.", 4, "because she returns."),
    ("好的，下面是我的回答：\n3\n来访者有时配合。", 3, "来访者有时配合。"),
    # turn references are not scores
    ("[12] Client said hi\n3\nok", 3, "ok"),
    # rationale prefixes stripped
    ("2\nRationale: Little agreement.", 2, "Little agreement."),
    ("2\nreason : little agreement.", 2, "little agreement."),
    ("2\n理由：目标不一致。", 2, "目标不一致。"),
    ("2\n原因：目标不一致。", 2, "目标不一致。"),
    ("3\nReason:\n\"we should try\" [4]", 3, '"we should try" [4]'),
    # reason given before the score
    ("Reason: she said \"I trust you\"\nScore: 4", 4, 'she said "I trust you"'),
    # the rationale keeps the model's own characters and lines
    ("5\nFirst.\nSecond “quote”，好。", 5, "First.\nSecond “quote”，好。"),
]


@pytest.mark.parametrize("text,score,rationale", ANSWERS)
def test_accepted_answers(text, score, rationale):
    parsed = parse_answer(text)
    assert (parsed.status, parsed.score, parsed.rationale, parsed.error) == ("ok", score, rationale, "")
    assert parsed.raw == text
    assert parsed.warnings == ([] if rationale else [NO_REASON])


def test_missing_reason_is_ok_with_a_note():
    parsed = parse_answer("3")
    assert parsed.ok and parsed.score == 3 and parsed.rationale == ""
    assert parsed.warnings == ["no reason given after the score"]


# ----- failures --------------------------------------------------------------------------------
FAILURES = [
    ("7", "Option number 7 is outside the scale 1-5."),
    ("0", "Option number 0 is outside the scale 1-5."),
    ("Score: 12\nok", "Option number 12 is outside the scale 1-5."),
    ("", "The model's output is empty."),
    ("   \n\t \n", "The model's output is empty."),
    ("3 or 4", "more than one option"),
    ("3-4\nThe client is ambivalent.", "more than one option"),
    ("Answer: 3/4", "more than one option"),
    ("答案：3或4", "more than one option"),
    ("3 到 4", "more than one option"),
    ("Fairly often or very often", "more than one option"),
    ("Fairly often, very often", "more than one option"),
    ("3.5", "not a whole option number"),
    ("3 - Very often", "Option number 3 disagrees with the label 'Very often' (option 4)."),
    ("Always (4)", "disagrees with the number '4'"),
    ("The client seems engaged throughout the session.", "No option number (1-5) or option label found"),
    ("I cannot answer this question.", "No option number (1-5) or option label found"),
    # what SmolLM2-135M emits most often: the option list again, with or without its labels right
    ("1. Seldom\n2. Sometimes\n3. Fairly often\n4. Very often\n5. Always", "lists the options instead of choosing"),
    ("1. Fairly often\n2. Very often\n3. Very often\n\nThe answer is: 5.", "lists the options instead of choosing"),
    ("1. 很少\n2. 有时\n3. 相当频繁", "lists the options instead of choosing"),
]


@pytest.mark.parametrize("text,error", FAILURES)
def test_failures_keep_raw_and_explain(text, error):
    parsed = parse_answer(text)
    assert parsed.status == "failed" and parsed.score is None and parsed.rationale == ""
    assert error in parsed.error
    assert parsed.raw == text


def test_form_labels_drive_label_matching():
    """Labels come from the form: a form with other labels reads those, not the WAI-SR ones."""
    from dataclasses import replace

    from care_model.core.wai import wai_sr

    form = wai_sr()
    scale = replace(form.scale, labels={"en": {1: "Never", 2: "Rarely", 3: "Half the time", 4: "Usually",
                                               5: "Every time"}})
    other = replace(form, scale=scale)
    assert parse_answer("Usually\nok", form=other).score == 4
    assert parse_answer("Every time", form=other).score == 5
    assert parse_answer("Very often", form=other).status == "failed"
    assert parse_answer("Very often", language="zh").score == 4  # all of the form's languages are read


# ----- never raises ----------------------------------------------------------------------------
_ALPHABET = (list("0123456789 \n\t.:-()[]*#/,;!?\"'abcxyzVeryoftenAlwaysSeldom")
             + list("总是非常频繁相当很少有时：４５，。“”‘’（）【】或到答案选择理由原因…")
             + ["Score: ", "Answer: ", "Reason: ", "or ", "\r\n"])


def _random_texts(n: int, seed: int):
    rng = random.Random(seed)
    for _ in range(n):
        if rng.random() < 0.2:  # arbitrary code points, surrogates excluded
            yield "".join(chr(rng.choice([rng.randrange(0x20, 0xD7FF), rng.randrange(0xE000, 0x10FFFF)]))
                          for _ in range(rng.randrange(0, 30)))
        else:
            yield "".join(rng.choice(_ALPHABET) for _ in range(rng.randrange(0, 40)))


def test_never_raises_on_random_strings():
    for text in _random_texts(4000, seed=20260648):
        parsed = parse_answer(text)
        assert parsed.raw == text
        assert parsed.status in ("ok", "failed")
        assert (parsed.score is None) == (parsed.status == "failed")
        assert parsed.score is None or 1 <= parsed.score <= 5
        assert parsed.status == "ok" or parsed.error
        assert not parsed.error.startswith("The parser could not"), (text, parsed.error)  # no internal error


def test_non_string_input_fails_cleanly():
    assert parse_answer(None).status == "failed"
    assert parse_answer(4).score == 4  # type: ignore[arg-type]
