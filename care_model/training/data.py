"""Training data in the paper's format: token ids built exactly as inference builds them.

For every curated (session, item) the example is::

    prefix_ids + suffix_ids + answer_ids + end_of_turn_ids
    \\_____ labels = -100 ______/ \\______ learned ___________/

* ``prefix`` / ``suffix``: :func:`care_model.text.prompt.build_session_prompt` with the model's chat
  template (``add_generation_prompt=True``), the model's token counter, its context length (or
  ``max_prompt_tokens``) and ``answer_reserve_tokens`` -- the same call and the same truncation
  as inference, built with all items of the form (so the transcript is cut exactly as it is
  for the 12 inference prompts). Prefix and suffix are tokenised separately with
  ``add_special_tokens=False`` and concatenated, as :meth:`care_model.inference.engine.Engine.encode_prompt` does.
* ``answer``: :func:`care_model.text.prompt.answer_text` (line 1 the option number, line 2 the
  rationale), tokenised the same way, cut to ``max_answer_tokens``, then the chat template's
  end-of-turn token(s) (``<|im_end|>`` for ChatML, ``<|eot_id|>`` for Llama 3), found by rendering
  an assistant turn (:func:`end_of_turn_ids`).

Packing (``pack_items``): the items of one session share the prefix, so a session becomes one
sequence ``prefix, suffix_1, answer_1, suffix_2, answer_2, ...`` with position ids restarting at
``len(prefix)`` for every item and a tree attention mask (each item's tokens see the prefix and
earlier tokens of the same item, nothing of other items). Each answer token is then predicted
from exactly the context it has in its own example, so the loss equals the loss of the separate
examples; the transcript is computed once instead of once per item.

``build_datasets`` returns :class:`TokenRows`: lists of ``train`` and ``validation`` rows; one row
per session (packed) or per (session, item). :func:`collate` pads a list of rows into tensors:
``input_ids``, ``labels``, ``position_ids`` and either a 2-D padding mask or a 4-D additive
attention mask (packed rows).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from care_model.text.stop_tokens import stop_ids
from care_model.core.errors import TrainingError
from care_model.text.prompt import answer_text, build_session_prompt
from care_model.core.wai import load_form

IGNORE = -100
_PROBE = "\u2063ANSWER\u2063"


# ----------------------------------------------------------------------------- tokens
def _enc(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def stop_token_ids(tokenizer, model_config=None) -> set[int]:
    return set(stop_ids(tokenizer, getattr(model_config, "eos_token_id", None)))


def end_of_turn_ids(tokenizer, model_config=None) -> list[int]:
    """The token(s) that close an assistant turn in the chat template, up to the first stop token."""
    stops = stop_token_ids(tokenizer, model_config)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "x"}, {"role": "assistant", "content": _PROBE}],
                                         tokenize=False)
    tail = text[text.rfind(_PROBE) + len(_PROBE):] if _PROBE in text else ""
    ids = _enc(tokenizer, tail) if tail else []
    for n, tid in enumerate(ids):
        if tid in stops:
            return ids[:n + 1]
    if tokenizer.eos_token_id is None:
        raise TrainingError("The tokenizer has no end-of-sequence token, so training answers cannot end.",
                            "Use an instruction-tuned model whose tokenizer defines eos_token.")
    return [int(tokenizer.eos_token_id)]


def context_length(model_config, max_prompt_tokens: int) -> int:
    """The prompt budget, as :meth:`care_model.inference.predictor.Predictor.session_prompt` computes it:
    ``max_prompt_tokens``, or the model's context length if that is smaller."""
    model_max = getattr(model_config, "max_position_embeddings", None)
    return int(min(max_prompt_tokens, int(model_max)) if model_max else max_prompt_tokens)


@dataclass
class ItemTokens:
    item: int
    score: int
    suffix_ids: list[int]
    answer_ids: list[int]          # answer text + end of turn


@dataclass
class SessionTokens:
    session_id: str
    client_id: str
    prefix_ids: list[int]
    items: list[ItemTokens]
    warnings: list[str] = field(default_factory=list)


def session_tokens(session, labels, tokenizer, *, model_config=None, perspective: str = "client",
                   max_prompt_tokens: int = 8192, answer_reserve_tokens: int = 96,
                   max_answer_tokens: int = 256, eot: list[int] | None = None) -> SessionTokens:
    """Token ids of one session's curated items (see the module docstring)."""
    form = load_form(session.form)
    render = lambda m: tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)  # noqa: E731
    count = lambda text: len(_enc(tokenizer, text))  # noqa: E731
    sp = build_session_prompt(session, render_chat=render, count_tokens=count,
                              max_prompt_tokens=context_length(model_config, max_prompt_tokens),
                              reserve_tokens=answer_reserve_tokens, perspective=perspective, form=form)
    eot = list(eot if eot is not None else end_of_turn_ids(tokenizer, model_config))
    room = max(1, max_answer_tokens - len(eot))
    items = []
    for lab in sorted(labels, key=lambda x: x.item):
        answer = _enc(tokenizer, answer_text(lab.score, lab.rationale, session.language, form=form))[:room]
        items.append(ItemTokens(int(lab.item), int(lab.score), _enc(tokenizer, sp.suffixes[int(lab.item)]),
                                answer + eot))
    return SessionTokens(session.id, session.client_id, _enc(tokenizer, sp.prefix), items, list(sp.warnings))


# ----------------------------------------------------------------------------- rows
def packed_row(st: SessionTokens) -> dict:
    """One sequence per session: prefix, then (suffix, answer) per item; ``branch`` -1 = prefix."""
    ids, labels, pos, branch = list(st.prefix_ids), [IGNORE] * len(st.prefix_ids), list(range(len(st.prefix_ids))), \
        [-1] * len(st.prefix_ids)
    P = len(st.prefix_ids)
    for b, it in enumerate(st.items):
        n_s, n_a = len(it.suffix_ids), len(it.answer_ids)
        ids += it.suffix_ids + it.answer_ids
        labels += [IGNORE] * n_s + it.answer_ids
        pos += list(range(P, P + n_s + n_a))
        branch += [b] * (n_s + n_a)
    return {"session_id": st.session_id, "client_id": st.client_id, "items": [it.item for it in st.items],
            "scores": [it.score for it in st.items], "input_ids": ids, "labels": labels, "position_ids": pos,
            "branch": branch, "packed": True}


def item_rows(st: SessionTokens) -> list[dict]:
    """One sequence per (session, item)."""
    rows = []
    for it in st.items:
        ids = st.prefix_ids + it.suffix_ids + it.answer_ids
        labels = [IGNORE] * (len(st.prefix_ids) + len(it.suffix_ids)) + it.answer_ids
        rows.append({"session_id": st.session_id, "client_id": st.client_id, "items": [it.item], "scores": [it.score],
                     "input_ids": ids, "labels": labels, "position_ids": list(range(len(ids))),
                     "branch": [-1] * len(ids), "packed": False})
    return rows


class TokenRows(dict):
    """``{"train": [rows], "validation": [rows]}`` (plain lists of row dicts: the loop only takes
    ``len`` and ``rows[i]``, so no ``datasets`` import, which cost each trainer process 0.6 CPU s)
    and the transcripts' truncation warnings in ``.warnings``."""

    warnings: list[str]


def build_datasets(snapshot, split, tokenizer, config, model_config=None) -> TokenRows:
    """:class:`TokenRows` of ``train`` and ``validation`` token rows from a curated snapshot."""
    eot = end_of_turn_ids(tokenizer, model_config)
    out, warnings = TokenRows(), []
    for name, sids in (("train", split.train), ("validation", split.validation)):
        rows: list[dict] = []
        for sid in sids:
            st = session_tokens(snapshot.sessions[sid], snapshot.labels[sid], tokenizer, model_config=model_config,
                                perspective=config.perspective, max_prompt_tokens=config.max_prompt_tokens,
                                answer_reserve_tokens=config.answer_reserve_tokens,
                                max_answer_tokens=config.max_answer_tokens, eot=eot)
            warnings += [f"{sid}: {w}" for w in st.warnings]
            rows += [packed_row(st)] if config.pack_items else item_rows(st)
        out[name] = rows
    out.warnings = warnings
    return out


# ----------------------------------------------------------------------------- batches
def tree_mask(branch: list[int], length: int):
    """Boolean [length, length] mask (True = may attend) for a packed row padded to ``length``."""
    import torch

    n = len(branch)
    b = torch.tensor(branch, dtype=torch.long)
    causal = torch.ones(n, n, dtype=torch.bool).tril_()
    same = (b[:, None] == b[None, :]) | (b[None, :] == -1)
    mask = torch.zeros(length, length, dtype=torch.bool)
    mask[:n, :n] = causal & same
    idx = torch.arange(n, length)
    mask[idx, idx] = True  # padding rows see themselves (no empty softmax); nobody sees them
    return mask


def collate(rows: list[dict], pad_id: int, dtype=None) -> dict:
    """Pad rows to one batch. Packed rows get a 4-D additive mask [B, 1, L, L] in ``dtype``."""
    import torch

    L = max(len(r["input_ids"]) for r in rows)
    B = len(rows)
    ids = torch.full((B, L), pad_id, dtype=torch.long)
    labels = torch.full((B, L), IGNORE, dtype=torch.long)
    pos = torch.zeros((B, L), dtype=torch.long)
    packed = any(r["packed"] for r in rows)
    mask2 = torch.zeros((B, L), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[i, :n] = torch.tensor(r["input_ids"])
        labels[i, :n] = torch.tensor(r["labels"])
        pos[i, :n] = torch.tensor(r["position_ids"])
        mask2[i, :n] = 1
    batch = {"input_ids": ids, "labels": labels, "position_ids": pos}
    if packed:
        dtype = dtype or torch.float32
        allowed = torch.stack([tree_mask(r["branch"], L) for r in rows])[:, None]
        batch["attention_mask"] = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
    else:
        batch["attention_mask"] = mask2
    return batch


def score_positions(labels):
    """Bool [B, L]: the first answer token of every item (the score), i.e. a label after an ignored one."""
    import torch

    first = torch.zeros_like(labels, dtype=torch.bool)
    first[:, 1:] = (labels[:, 1:] != IGNORE) & (labels[:, :-1] == IGNORE)
    return first


def answer_weight(label_rows, score_weight: float = 1.0) -> float:
    """What :func:`answer_loss` divides by for these rows (lists of labels): their answer tokens, the
    score token of each item counted ``score_weight`` times. Pure Python, so a training step can
    count all its micro-batches before running any of them."""
    total = 0.0
    for labels in label_rows:
        for prev, lab in zip(labels, labels[1:]):
            if lab != IGNORE:
                total += score_weight if prev == IGNORE else 1.0
    return total


def answer_loss(model, batch, *, reduction: str = "mean", score_weight: float = 1.0):
    """Cross-entropy on the answer tokens only (labels != -100), logits computed only where needed.

    ``score_weight`` weights the score token (the first answer token of each item) against the
    rationale tokens; 1.0 is plain supervised fine-tuning. Returns (loss, n_tokens); ``reduction="sum"``
    gives the (weighted) summed token loss.
    """
    import torch

    labels = batch["labels"]
    target = labels[:, 1:]
    keep = (target != IGNORE).any(dim=0).nonzero().flatten()  # positions whose next token is learned
    if keep.numel() == 0:
        zero = sum(p.sum() * 0.0 for p in model.parameters() if p.requires_grad)
        return zero, 0
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                position_ids=batch["position_ids"], logits_to_keep=keep, use_cache=False)
    logits = out.logits.float()                               # [B, K, V]
    tgt = target[:, keep]                                     # [B, K]
    n = int((tgt != IGNORE).sum())
    per_token = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                                                  ignore_index=IGNORE, reduction="none").view(tgt.shape)
    if score_weight != 1.0:
        w = (tgt != IGNORE).to(per_token.dtype)
        w = torch.where(score_positions(labels)[:, 1:][:, keep], w * score_weight, w)
        loss = (per_token * w).sum()
        return (loss / w.sum().clamp_min(1.0) if reduction == "mean" else loss), n
    loss = per_token.sum()
    return (loss / max(n, 1) if reduction == "mean" else loss), n
