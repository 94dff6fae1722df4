"""care_model.text.prompt: layout, prefix sharing under real chat templates, truncation, hashes."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from care_model.text import prompt as prompt_mod
from care_model.core.errors import ConfigError, ModelError, ValidationError
from care_model.text.prompt import answer_text, build_session_prompt, elision_marker, render_turn
from care_model.core.records import Session, Turn
from care_model.core.wai import wai_sr

REPO = Path(__file__).resolve().parents[2]
FORM = wai_sr()

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
          "'\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# The parts of Llama-3.1's template that matter here: BOS, a date block in the system turn, `| trim`.
LLAMA31 = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}"
    "{%- set messages = messages[1:] %}{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\n\n' }}"
    "{{- 'Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n' }}"
    "{{- system_message }}{{- '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' "
           "}}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}"
)
SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|begin_of_text|>", "<|start_header_id|>",
            "<|end_header_id|>", "<|eot_id|>"]


def _tokenizer(template: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [t for s in (_session("en", 40), _session("zh", 40)) for t in (x.text for x in s.turns)]
    corpus += [FORM.item_text(i, p, lang)
               for i in FORM.item_ids for p in ("client", "counselor") for lang in ("en", "zh")]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus * 3, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                   additional_special_tokens=SPECIALS)
    fast.chat_template = template
    return fast


@pytest.fixture(scope="module")
def chatml():
    return _tokenizer(CHATML)


@pytest.fixture(scope="module")
def llama():
    return _tokenizer(LLAMA31)


def _render(tok):
    return lambda messages: tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _count(tok):
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])


EN_LINES = [
    "Hi, thanks for coming in. What brings you here today?",
    "I don't really know. My sister said I should talk to someone.",
    "That sounds like it took some courage. What has been going on?",
    "I can't sleep, and I keep fighting with my mom about everything.",
]
ZH_LINES = ["你好，今天想聊些什么？", "我最近总是睡不好，和妈妈也经常吵架。",
            "听起来你最近压力很大。", "是的，我觉得没有人理解我。"]


def _session(language: str = "en", n: int = 8, sid: str = "s1") -> Session:
    lines = EN_LINES if language == "en" else ZH_LINES
    turns = [Turn(i, "counselor" if i % 2 == 0 else "client", f"{lines[i % 4]} ({i})") for i in range(n)]
    return Session(id=sid, turns=turns, language=language).validate()


def _user_content(full: str, tok_kind: str) -> tuple[str, str]:
    """Read system and user content back out of a ChatML / Llama rendering."""
    if tok_kind == "chatml":
        m = re.fullmatch(r"<\|im_start\|>system\n(.*)<\|im_end\|>\n<\|im_start\|>user\n(.*)<\|im_end\|>\n"
                         r"<\|im_start\|>assistant\n", full, re.S)
    else:
        m = re.fullmatch(r"<\|begin_of_text\|><\|start_header_id\|>system<\|end_header_id\|>\n\n"
                         r"Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n(.*)<\|eot_id\|>"
                         r"<\|start_header_id\|>user<\|end_header_id\|>\n\n(.*)<\|eot_id\|>"
                         r"<\|start_header_id\|>assistant<\|end_header_id\|>\n\n", full, re.S)
    assert m, full[-300:]
    return m.group(1), m.group(2)


# ----- prefix sharing under real chat templates ----------------------------------------------
@pytest.mark.parametrize("kind", ["chatml", "llama"])
def test_all_items_share_one_prefix_and_match_the_template_rendering(kind, request):
    tok = request.getfixturevalue(kind)
    render = _render(tok)
    sp = build_session_prompt(_session(), render_chat=render)
    assert sorted(sp.suffixes) == FORM.item_ids
    for item in FORM.item_ids:
        full = sp.full(item)
        system, user = _user_content(full, kind)
        # re-render the very messages read back out: the split is exactly the template's output
        assert render([{"role": "system", "content": system}, {"role": "user", "content": user}]) == full
        assert user.endswith(FORM.item_text(item))
        assert sp.suffixes[item].startswith(FORM.item_text(item))
        assert full.startswith(sp.prefix)


@pytest.mark.parametrize("kind", ["chatml", "llama"])
def test_suffix_is_only_item_and_template_tokens(kind, request):
    tok = request.getfixturevalue(kind)
    sp = build_session_prompt(_session(), render_chat=_render(tok))
    tail = "<|im_end|>\n<|im_start|>assistant\n" if kind == "chatml" else \
        "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    for item in FORM.item_ids:
        assert sp.suffixes[item] == FORM.item_text(item) + tail
    # options, answer format and the "Statement:" label sit in the shared prefix
    assert "5. Always" in sp.prefix and "Answer in exactly two lines" in sp.prefix
    assert sp.prefix.endswith("Statement:\n")


def test_prefix_and_suffix_tokenize_as_the_whole(chatml):
    """The prefix ends on a token boundary: tokens(prefix) + tokens(suffix) == tokens(full)."""
    sp = build_session_prompt(_session("en"), render_chat=_render(chatml))
    ids = lambda t: chatml(t, add_special_tokens=False)["input_ids"]  # noqa: E731
    for item in FORM.item_ids:
        assert ids(sp.prefix) + ids(sp.suffixes[item]) == ids(sp.full(item))
    sp_zh = build_session_prompt(_session("zh"), render_chat=_render(chatml))
    assert ids(sp_zh.prefix) + ids(sp_zh.suffixes[9]) == ids(sp_zh.full(9))


def test_fallback_render_without_chat_template():
    sp = build_session_prompt(_session())
    assert sp.prefix.startswith("### System:\n")
    assert sp.suffixes[3] == "I believe my counselor likes me.\n\n### Assistant:\n"


# ----- layout and wording ----------------------------------------------------------------------
def test_english_client_layout_order():
    s = _session("en")
    sp = build_session_prompt(s)
    text = sp.full(1)
    pos = [text.index(x) for x in ("[0] Counselor: Hi, thanks", "[7] Client:", "Imagine you are the client",
                                   "1. Seldom", "5. Always", "First line: only the number", "Statement:\n",
                                   FORM.item_text(1, "client", "en"))]
    assert pos == sorted(pos)
    assert "the way the client would" in text


def test_chinese_layout_uses_chinese_template_and_labels():
    sp = build_session_prompt(_session("zh"))
    text = sp.full(3)
    assert "[0] 咨询师：你好，今天想聊些什么？ (0)" in text
    assert "[1] 来访者：我最近总是睡不好" in text
    assert "请设想你是这次咨询中的来访者" in text
    for label in ("1. 很少", "3. 相当频繁", "4. 非常频繁", "5. 总是"):
        assert label in sp.prefix
    assert sp.prefix.endswith("陈述：\n")
    assert sp.suffixes[3].startswith("我相信我的咨询师喜欢我。")
    assert "Seldom" not in text and "Client:" not in text


@pytest.mark.parametrize("language,role_text", [("en", "Imagine you are the counselor"),
                                                ("zh", "请设想你是这次咨询中的咨询师")])
def test_counselor_perspective_uses_counselor_wording(language, role_text):
    sp = build_session_prompt(_session(language), perspective="counselor")
    assert role_text in sp.prefix
    assert sp.perspective == "counselor"
    for item in FORM.item_ids:
        assert sp.suffixes[item].startswith(FORM.item_text(item, "counselor", language))
    assert sp.suffixes[3].startswith("I believe the client likes me." if language == "en" else "我相信来访者喜欢我。")


def test_turn_rendering_numbers_speakers_and_flattens_lines():
    assert render_turn(Turn(12, "client", "I feel\n\n  stuck   here"), "en") == "[12] Client: I feel stuck here"
    assert render_turn(Turn(3, "counselor", "嗯。\n我明白"), "zh") == "[3] 咨询师：嗯。我明白"


def test_items_subset_and_unknowns():
    sp = build_session_prompt(_session(), items=[9, "3"])
    assert list(sp.suffixes) == [9, 3]
    with pytest.raises(ValidationError, match="Unknown item 13"):
        build_session_prompt(_session(), items=[13])
    with pytest.raises(ValidationError, match="perspective 'observer'"):
        build_session_prompt(_session(), perspective="observer")
    s = _session()
    s.language = "fr"
    with pytest.raises(ValidationError, match="No prompt template for language 'fr'"):
        build_session_prompt(s)


def test_template_that_rewrites_content_is_refused():
    shouting = lambda msgs: "\n".join(m["content"].upper() for m in msgs)  # noqa: E731
    with pytest.raises(ModelError, match="changed the text of item"):
        build_session_prompt(_session(), render_chat=shouting)
    # a template whose early text depends on the whole message cannot share a prefix
    sized = lambda msgs: f"len={len(msgs[-1]['content'])}\n" + msgs[-1]["content"]  # noqa: E731
    with pytest.raises(ModelError, match="does not start with the prefix"):
        build_session_prompt(_session(), render_chat=sized)


# ----- truncation ----------------------------------------------------------------------------
def test_short_transcript_is_not_truncated(chatml):
    sp = build_session_prompt(_session(n=6), render_chat=_render(chatml), count_tokens=_count(chatml),
                              max_prompt_tokens=100_000)
    assert sp.warnings == [] and sp.elided_turns == []


@pytest.mark.parametrize("language", ["en", "zh"])
def test_long_transcript_keeps_opening_and_end_within_budget(chatml, language):
    count, render = _count(chatml), _render(chatml)
    session = _session(language, n=80)
    whole = build_session_prompt(session, render_chat=render)
    full_tokens = max(count(whole.full(i)) for i in FORM.item_ids)
    limit, reserve = full_tokens // 2, 64
    sp = build_session_prompt(session, render_chat=render, count_tokens=count,
                              max_prompt_tokens=limit, reserve_tokens=reserve)
    for item in FORM.item_ids:  # budget respected for every item, measured by count_tokens
        assert count(sp.full(item)) + reserve <= limit
        assert sp.suffixes[item].startswith(FORM.item_text(item, "client", language))
    first, last = sp.elided_turns[0], sp.elided_turns[-1]
    assert sp.elided_turns == list(range(first, last + 1))
    assert 0 < first and last < 79  # opening and most recent turns kept
    assert elision_marker(first, last, language) in sp.prefix
    assert sp.prefix.count(elision_marker(first, last, language)) == 1
    assert f"[{first - 1}]" in sp.prefix and f"[{last + 1}]" in sp.prefix and "[79]" in sp.prefix
    assert f"[{first}]" not in sp.prefix
    kept_end = 80 - 1 - last
    assert kept_end > first  # most of the budget goes to the recent turns
    assert sp.warnings == [f"transcript truncated: turns {first}-{last} of 80 elided to fit {limit} tokens"]
    # instructions and options are never cut
    for needle in (["Answer in exactly two lines", "5. Always"] if language == "en"
                   else ["请严格用两行作答", "5. 总是"]):
        assert needle in sp.prefix
    # the search uses the budget: what is left over is less than a few turns' worth
    used = max(count(sp.full(i)) for i in FORM.item_ids)
    biggest_turn = max(count(render_turn(t, language)) for t in session.turns)
    assert used > limit - reserve - 3 * biggest_turn


def test_more_budget_keeps_more_turns(chatml):
    count, render = _count(chatml), _render(chatml)
    session = _session("en", n=80)
    small = build_session_prompt(session, render_chat=render, count_tokens=count, max_prompt_tokens=1200)
    large = build_session_prompt(session, render_chat=render, count_tokens=count, max_prompt_tokens=2000)
    assert len(large.elided_turns) < len(small.elided_turns)
    assert small.prompt_hash != large.prompt_hash


def test_prompt_that_cannot_fit_raises_and_missing_counter_is_config_error(chatml):
    with pytest.raises(ValidationError, match="does not fit 200 tokens even with the whole transcript left out"):
        build_session_prompt(_session(n=20), render_chat=_render(chatml), count_tokens=_count(chatml),
                             max_prompt_tokens=200)
    with pytest.raises(ConfigError, match="without count_tokens"):
        build_session_prompt(_session(), max_prompt_tokens=1000)


# ----- hashes --------------------------------------------------------------------------------
_HASH_SCRIPT = """
import json, sys
from care_model.text.prompt import build_session_prompt
from care_model.core.records import Session
s = Session.from_dict(json.loads(sys.argv[1]))
sp = build_session_prompt(s)
print(json.dumps([sp.prompt_hash, sp.item_hash(3)]))
"""


def test_hash_is_stable_across_processes():
    session = _session()
    here = build_session_prompt(session)
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run([sys.executable, "-c", _HASH_SCRIPT, json.dumps(session.to_dict())], cwd=REPO, env=env,
                             capture_output=True, text=True, check=True)
        assert json.loads(out.stdout) == [here.prompt_hash, here.item_hash(3)]


def test_hash_changes_with_every_input(monkeypatch):
    base = build_session_prompt(_session())
    edited = _session()
    edited.turns[3].text += " Really."
    variants = {
        "transcript": build_session_prompt(edited),
        "language": build_session_prompt(_session("zh")),
        "perspective": build_session_prompt(_session(), perspective="counselor"),
        "items": build_session_prompt(_session(), items=[1, 2, 3]),
    }
    for name, sp in variants.items():
        assert sp.prompt_hash != base.prompt_hash, name
        assert sp.item_hash(3) != base.item_hash(3) or name == "items", name
    assert len({base.item_hash(i) for i in FORM.item_ids}) == 12
    assert build_session_prompt(_session()).prompt_hash == base.prompt_hash
    monkeypatch.setattr(prompt_mod, "PROMPT_TEMPLATE_VERSION", "care-prompt-test")
    bumped = build_session_prompt(_session())
    assert bumped.prompt_hash != base.prompt_hash and bumped.item_hash(3) != base.item_hash(3)


def test_hash_changes_with_chat_template(chatml, llama):
    a = build_session_prompt(_session(), render_chat=_render(chatml))
    b = build_session_prompt(_session(), render_chat=_render(llama))
    assert a.prompt_hash != b.prompt_hash and a.item_hash(5) != b.item_hash(5)


# ----- answer target ---------------------------------------------------------------------------
def test_answer_text_is_two_lines():
    assert answer_text(4, 'The client says "thank you" [3].') == '4\nThe client says "thank you" [3].'
    assert answer_text(2, "First point.\n\nSecond point.") == "2\nFirst point. Second point."
    assert answer_text(5, "来访者说“谢谢”。\n她按时到来。", "zh") == "5\n来访者说“谢谢”。她按时到来。"
    assert answer_text(3, "") == "3\n"
    with pytest.raises(ValidationError, match="outside"):
        answer_text(6, "x")


def test_answer_text_round_trips_through_the_parser():
    from care_model.text.parse import parse_answer

    for score, reason, lang in [(1, 'She said "I don\'t want to be here" [1].', "en"),
                                (4, "来访者说“我们一起努力吧”。", "zh")]:
        parsed = parse_answer(answer_text(score, reason, lang), language=lang)
        assert (parsed.status, parsed.score, parsed.rationale) == ("ok", score, reason)


def test_module_stays_pure():
    code = "import sys, care_model.text.prompt, care_model.text.parse, care_model.text.evidence; " \
           "print(sorted(m for m in ('torch', 'transformers', 'tinydb') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("language", ["en", "zh"])
def test_no_instruction_that_grounded_decoding_forbids(language):
    """Grounded decoding bans digits and brackets after the quote, so the prompt must not ask for turn
    numbers ([12], "Line 2: ... (Line"); it asks who said each quote, which the grounding enforces."""
    from care_model.text.drafting import build_draft_prompt

    session = _session(language)
    for sp in (build_session_prompt(session), build_draft_prompt(session, targets={1: 4})):
        text = sp.full(1)
        asked = text[text.index("\n", text.rindex("[7]")):]  # everything after the last transcript turn
        assert not re.search(r"\[\d+\]|turn numbers?|Line \d|轮次|编号", asked), asked
        assert ("who said each quote" if language == "en" else "谁说的") in asked
