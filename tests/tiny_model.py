"""A tiny random Llama with a real tokenizer and chat template, built offline in well under a second.

Test scaffolding, kept out of the product: used by the tests (a session-scoped fixture) and by the
benchmarks' CPU smoke runs (``python -m benchmarks.inference --tiny``)::

    from tiny_model import build_tiny_model            # in tests (tests/ is on sys.path)
    from tests.tiny_model import build_tiny_model      # from the repository root (benchmarks)
    build_tiny_model("/tmp/tiny", seed=0)   # -> Path; loads with ModelSpec(base="/tmp/tiny")

The tokenizer is a byte-level BPE trained with ``tokenizers`` on a few hundred built-in lines of
English and Chinese counseling-like text plus the digits 1-5 (so " 4" and "4" are distinct tokens,
as in many real vocabularies), wrapped in ``PreTrainedTokenizerFast`` with a ChatML template and
``<|im_end|>`` as eos. The model is ``LlamaForCausalLM`` with grouped-query attention (4 query heads,
2 key/value heads) like the real models. Everything is deterministic from ``seed``.
"""
from __future__ import annotations

import random
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_EN = [
    "I have been feeling anxious about work lately.",
    "Can you tell me more about what happens when you feel that way?",
    "My counselor and I agree on what is important for me to work on.",
    "I feel that my counselor appreciates me.",
    "We talked about setting goals for the next few weeks.",
    "I am not sure this is helping, to be honest.",
    "It sounds like you are carrying a lot right now.",
    "I slept badly again and I almost did not come today.",
    "What would a small step look like for you this week?",
    "I believe the way we are working with my problem is correct.",
    "As a result of these sessions I am clearer as to how I might be able to change.",
    "My mother keeps calling me and I do not know what to say.",
    "You said earlier that running helps you calm down.",
    "I tried the breathing exercise and it helped a little.",
    "I feel my counselor cares about me even when I do things she does not approve of.",
    "Let us look at what went well since our last session.",
    "Answer as the client would, choosing one option.",
    "Choose one option and give a reason with quotes from the dialogue.",
]
_ZH = [
    "我最近工作压力很大，晚上睡不着。",
    "你能多说一点当时的感受吗？",
    "我觉得咨询师很理解我。",
    "我们一起制定了下周的目标。",
    "说实话，我不确定这样有没有用。",
    "听起来你现在承受了很多。",
    "我妈妈总是给我打电话，我不知道该说什么。",
    "上次你提到跑步能让你平静下来。",
    "我试了呼吸练习，好像有一点帮助。",
    "我们来看看上次之后有什么进展。",
    "请以来访者的身份回答，选择一个选项。",
    "我相信我们处理问题的方式是正确的。",
]
_OPTIONS = ["Seldom", "Sometimes", "Fairly often", "Very often", "Always"]
_OPTIONS_ZH = ["很少", "有时", "经常", "非常频繁", "总是"]


def training_lines(seed: int = 0, n: int = 400) -> list[str]:
    """The built-in corpus: counseling-like sentences (en, zh), option lists and scores 1-5."""
    rng = random.Random(seed)
    lines: list[str] = []
    lines += _EN + _ZH
    for i, (en, zh) in enumerate(zip(_OPTIONS, _OPTIONS_ZH), start=1):
        lines.append(f"{i}. {en}")
        lines.append(f"{i}. {zh}")
        lines.append(f"Option {i}: {en}")
    while len(lines) < n:
        kind = rng.randrange(5)
        d = rng.randint(1, 5)
        if kind == 0:
            lines.append(f"{d}\nReason: the client said \"{rng.choice(_EN)}\"")
        elif kind == 1:
            lines.append(f"{d}\n理由：来访者说“{rng.choice(_ZH)}”")
        elif kind == 2:
            lines.append(f"Score: {d} ({_OPTIONS[d - 1]}). {rng.choice(_EN)}")
        elif kind == 3:
            lines.append(f"Counselor: {rng.choice(_EN)} Client: {rng.choice(_EN)}")
        else:
            lines.append(f"咨询师：{rng.choice(_ZH)} 来访者：{rng.choice(_ZH)} 评分 {d}")
    return lines


def build_tokenizer(seed: int = 0, vocab_size: int = 640):
    """Train the byte-level BPE tokenizer and wrap it as a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(training_lines(seed), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        chat_template=CHATML_TEMPLATE,
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_model(
    path,
    seed: int = 0,
    vocab_size: int = 640,
    hidden_size: int = 64,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    intermediate_size: int = 128,
    max_position_embeddings: int = 32768,
    initializer_range: float = 0.02,
    attention_bias: bool = False,
    rope_parameters: dict | None = None,
    dtype: str = "float32",
) -> Path:
    """Build and save (tokenizer + model) in ``path``; returns the folder. Deterministic from ``seed``.

    ``attention_bias=True`` gives q/k/v/o biases (Qwen2-style, initialised non-zero);
    ``rope_parameters`` e.g. ``{"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, ...}``.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(seed, vocab_size)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        max_position_embeddings=max_position_embeddings,
        initializer_range=initializer_range,
        attention_bias=attention_bias,
        rope_parameters=dict(rope_parameters) if rope_parameters else {"rope_type": "default", "rope_theta": 10000.0},
        bos_token_id=None,
        eos_token_id=eos,
        pad_token_id=pad,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
        if attention_bias:  # biases start at zero; make them matter
            for layer in model.model.layers:
                for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj,
                             layer.self_attn.o_proj):
                    torch.nn.init.normal_(proj.bias, std=initializer_range)
    model.to(getattr(torch, dtype))
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=pad, do_sample=False)
    model.save_pretrained(str(path), safe_serialization=True)
    tokenizer.save_pretrained(str(path))
    return path
