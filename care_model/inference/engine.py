"""Fast 12-item inference for one session: the transcript prefix once, the items as one batch.

The 12 item prompts of a session share everything up to the item statement (see
:mod:`care_model.text.prompt`). :class:`Engine` therefore

1. **prefills the shared prefix once** (positions ``0..P-1``) with its own forward pass over the
   model's modules, keeping the prefix keys/values *once* per layer as ``[kv_heads, P, head_dim]``;
2. runs the **12 suffixes as one packed sequence** (no padding: a block-diagonal causal mask keeps
   each row to its own tokens; each row's position ids continue from ``P``), whose K/V are then
   laid out per row, left-padded so that all rows end together (pads are masked as keys);
3. **decodes greedily, 12 rows at a time**, each row stopping at its own end-of-turn/EOS token
   (finished rows are dropped from the batch), up to ``max_new_tokens``.

The forward passes (:mod:`care_model.inference.forward`) and attention
(:mod:`care_model.inference.attention`) are mixins; attention is split in two (hydragen / cascade attention):
every query of every row attends to the shared prefix in *one* pass (queries of all rows folded into
``[kv_heads, rows*group*q_len, head_dim]`` -- grouped-query attention without ``repeat_kv``; the
fused flash-attention kernel that also returns the log-sum-exp where PyTorch has one, else plain
matmuls), and to its own suffix/decoded keys held in preallocated per-row buffers (no
``torch.cat`` per step) with a causal + padding mask. The two partial softmaxes are merged
exactly with their log-sum-exps. The prefix cache is never copied per row: a 12-row decode step
measured 1.5-3 single-row steps on this 2-core CPU (the linear layers' 12x work), where copying
the prefix cache 12 times costs about 7.7.

CPU threads: the Engine sets torch's thread count (process-wide) to ``num_threads``,
``$CARE_TORCH_THREADS`` or one less than the usable cores (1 on a 2-core machine); ``"all"`` (either
way) takes every core, for a machine nobody shares; see :meth:`Engine._set_threads` for why.

**On a GPU** the decode steps have static shapes and replay as one CUDA graph per batch
(:mod:`care_model.inference.static_decode`; ``static_decode=`` or ``$CARE_STATIC_DECODE`` = 0/1 to choose).

**Packed weights.** On the CPU the linear layers run from weights packed once for oneDNN
(:mod:`care_model.inference.packed`; ``packed_linear=`` or ``$CARE_PACKED_LINEAR`` = 0/1): a 12-row
decode step's linear layers take half the time.

**Across sessions.** :meth:`Engine.run_sessions` batches several sessions' decode steps together (each
session's rows attend to their own prefix; :mod:`care_model.inference.batch`), under a token budget.

The forward uses the Hugging Face modules as they are (``embed_tokens``, per layer
``input_layernorm``, ``self_attn.{q,k,v,o}_proj`` -- which may be peft LoRA wrappers -- optional
``q_norm``/``k_norm`` (Qwen3), ``post_attention_layernorm``, ``mlp``, then ``norm``, ``lm_head``,
and ``rotary_emb`` for cos/sin, so Llama-3.1 rope scaling applies). Supported: Llama-family
decoders (llama, qwen2 incl. q/k/v biases, qwen3, mistral within its sliding window). For anything
else use :meth:`Engine.run_session_naive` (``Engine.fast_supported`` says which).

**Score position.** The answer's first line is the option number, so the *first generated token*
is the score position. Its logits, restricted to the option tokens (every vocabulary entry a
model may use to start "1".."5": ``"1"``, ``" 1"``, ``"1."``, full-width ``"１"`` ... when these are
single tokens; see :meth:`Engine.option_token_ids`), give ``option_probs`` (normalised over the
five options), ``argmax_score`` and ``expected_score``; ``option_mass`` is the unnormalised total
probability of the option tokens (low mass = the model wanted to write something else first,
e.g. whitespace or markdown; the first position is still used, by design).

**Token ids.** :meth:`Engine.encode_prompt` tokenizes the prefix and each suffix separately with
``add_special_tokens=False`` (special tokens written in the rendered chat text are parsed as
special tokens) and the model sees ``prefix_ids + suffix_ids``; the naive path uses exactly the
same ids. If all suffixes start with the same tokens, those are moved into the shared prefix
(same token sequence, so the same result, less work).

**Grounded decoding.** ``constraints={item: GroundedRow}`` (:mod:`care_model.text.grounding`) makes every
row pick its greedy token among the ids its own row state allows (:mod:`care_model.inference.constrained`);
the naive path applies the same rows through a ``LogitsProcessor``, so both give the same tokens.

**Reference path.** :meth:`Engine.run_session_naive` (:mod:`care_model.inference.naive`) makes 12 independent
``model.generate(input_ids=prefix_ids + suffix_ids, do_sample=False)`` calls (scores-only: 12
independent full forward passes taking the last position's logits). Tests check that greedy
tokens are identical and probabilities agree.

Public API::

    Engine(loaded, *, options=(1, 2, 3, 4, 5), stop_token_ids=None, num_threads=None, static_decode=None,
           packed_linear=None)
    Engine.num_threads -> int  (CPU threads it set for torch; see _set_threads)
    Engine.encode_prompt(session_prompt) -> (prefix_ids, {item: suffix_ids})
    Engine.option_token_ids(language="en") -> {option: [token ids]}
    Engine.run_session(prefix_ids, suffix_ids, *, max_new_tokens=64, scores_only=False,
                       progress=None, language="en", constraints=None) -> {item: ItemOutput}
    Engine.run_sessions([SessionJob(prefix_ids, suffix_ids, constraints, language), ...], *, max_new_tokens=64,
                        scores_only=False, token_budget=32768, max_sessions=8) -> iter of (index, {item: ItemOutput})
    Engine.run_session_naive(...same...) -> {item: ItemOutput}
    Engine.prefill_only(prefix_ids) -> seconds
    Engine.last_stats -> dict (timings and token counts of the last run)

``progress(fraction: float, message: str)`` is called after the prefill, after the suffix block
and after every decode step (fast path), or after every item (naive path).

torch is imported lazily (the first Engine imports it).
"""
from __future__ import annotations

import os
import threading
import time
from typing import Mapping, Sequence

from care_model.core.errors import ModelError
from care_model.inference.batch import DEFAULT_MAX_SESSIONS, DEFAULT_TOKEN_BUDGET, SessionJob, plan_batches, run_batch
from care_model.inference.forward import PrefixForward
from care_model.inference.item_output import ItemOutput, Progress
from care_model.inference.option_tokens import option_token_ids
from care_model.inference.packed import PackedLinears, layer_linears, packing_wanted
from care_model.text.stop_tokens import stop_ids

_SUPPORTED = ("llama", "mistral", "qwen2", "qwen3")


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def resolve_threads(value: int | str | None) -> int:
    """CPU threads for a thread setting: a positive number as given, ``"all"`` every usable core, unset (None,
    0 or "") one core fewer than usable (at least 1: the shared-machine default)."""
    text = str(value if value is not None else "").strip().lower()
    if text == "all":
        return usable_cores()
    try:
        n = int(text or 0)
    except ValueError:
        raise ModelError(f"The thread setting {value!r} is not a number.",
                         "Give a positive number of CPU threads, or 'all' for every core "
                         "(CARE_TORCH_THREADS / --threads).") from None
    return n if n > 0 else max(1, usable_cores() - 1)


def cfg_head_dim(config) -> int:
    return config.hidden_size // config.num_attention_heads


class Engine(PrefixForward):
    """Shared-prefix, batched greedy inference over one loaded model (see the module docstring)."""

    def __init__(self, loaded, *, options: Sequence[int] = (1, 2, 3, 4, 5),
                 stop_token_ids: Sequence[int] | None = None, num_threads: int | str | None = None,
                 static_decode: bool | None = None, packed_linear: bool | None = None):
        import torch

        self.torch = torch
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.options = [int(o) for o in options]
        self._lock = threading.Lock()
        self._option_cache: dict[str, dict[int, list[int]]] = {}
        self.last_stats: dict = {}
        self._fused_prefix: bool | None = None  # None: not tried yet
        self._sdpa_gqa = True

        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        self.base = base
        self.config = base.config
        core = getattr(base, "model", None)
        self.core = core
        self.lm_head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
        self.fast_supported, self.unsupported_reason = self._check_architecture()
        if self.fast_supported:
            from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

            self._rope = apply_rotary_pos_emb
            attn0 = core.layers[0].self_attn
            self.head_dim = int(getattr(attn0, "head_dim", None) or cfg_head_dim(self.config))
        # Mistral/Qwen sliding-window attention: the fast path is exact only within the window.
        window = getattr(self.config, "sliding_window", None)
        mistral = getattr(self.config, "model_type", "") == "mistral"
        if not mistral and not getattr(self.config, "use_sliding_window", False):
            window = None
        self.sliding_window = int(window) if window else None
        params = next(self.model.parameters())
        self.device = params.device
        self.dtype = params.dtype
        self.num_threads = self._set_threads(num_threads)
        # the linear layers' weights packed once for oneDNN on the CPU (care_model.inference.packed)
        self._lin = PackedLinears(torch, layer_linears(core, self.lm_head) if self.fast_supported else [],
                                  enabled=self.fast_supported and packing_wanted(packed_linear, self.device.type))
        # static-shape decode steps, captured as a CUDA graph on a GPU (care_model.inference.static_decode)
        env = os.environ.get("CARE_STATIC_DECODE", "").strip()
        self.static_decode = bool(static_decode) if static_decode is not None else (
            env == "1" if env else self.device.type == "cuda")
        self.stop_token_ids = sorted(set(int(t) for t in stop_token_ids)) if stop_token_ids is not None \
            else self._default_stop_ids()
        if not self.stop_token_ids:
            raise ModelError("The model has no end-of-sequence token, so answers cannot stop.",
                             "Pass stop_token_ids=[...] to Engine, or set eos_token_id in the model's "
                             "generation_config.")
        self.pad_token_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None \
            else self.stop_token_ids[0]

    # ------------------------------------------------------------------------- setup
    def _check_architecture(self) -> tuple[bool, str]:
        core, cfg = self.core, self.config
        mtype = getattr(cfg, "model_type", "?")
        if mtype not in _SUPPORTED:
            return False, f"model type {mtype!r} is not one of {', '.join(_SUPPORTED)}"
        if core is None or self.lm_head is None or not all(
                hasattr(core, a) for a in ("embed_tokens", "layers", "norm", "rotary_emb")):
            return False, "the model lacks embed_tokens/layers/norm/rotary_emb"
        layer = core.layers[0]
        attn = getattr(layer, "self_attn", None)
        if attn is None or not all(hasattr(attn, a) for a in ("q_proj", "k_proj", "v_proj", "o_proj")):
            return False, "the attention module lacks q/k/v/o projections"
        return True, ""

    def _set_threads(self, num_threads: int | str | None) -> int:
        """CPU threads for torch (process-wide): the argument, else $CARE_TORCH_THREADS, else one core
        fewer than this process may use (at least 1), so the web server and the store keep a core.
        ``"all"`` (argument or variable) takes every usable core: for a machine nobody else shares.

        On a shared 2-core machine the default means 1 thread, which measured faster than 2 whenever other
        processes compete for the cores (OpenMP threads spin-wait for each other on every operation).
        """
        torch = self.torch
        if self.device.type != "cpu":
            return torch.get_num_threads()
        want = resolve_threads(num_threads if num_threads is not None else os.environ.get("CARE_TORCH_THREADS"))
        if torch.get_num_threads() != want:
            torch.set_num_threads(want)
        return want

    def _default_stop_ids(self) -> list[int]:
        gen = getattr(self.base, "generation_config", None)
        return stop_ids(self.tokenizer, getattr(gen, "eos_token_id", None))

    # ------------------------------------------------------------------------- tokens
    def encode_prompt(self, session_prompt) -> tuple[list[int], dict[int, list[int]]]:
        """Token ids of a :class:`~care_model.text.prompt.SessionPrompt`: (prefix ids, {item: suffix ids})."""
        enc = lambda text: list(self.tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
        prefix = enc(session_prompt.prefix)
        suffixes = {int(item): enc(text) for item, text in session_prompt.suffixes.items()}
        return prefix, suffixes

    def option_token_ids(self, language: str = "en") -> dict[int, list[int]]:
        """Candidate *first* tokens for each option: ``{1: [ids...], ..., 5: [...]}``.

        For each option digit, the first token of several spellings (``"4"``, ``" 4"``, ``"4."``,
        ``"4)"``, ``"\\n4"``, ``"**4"``, full-width ``"４"`` ...) is kept when that single token decodes,
        stripped of whitespace and trailing punctuation, to exactly the digit -- so a byte-level
        ``" 4"`` token and ``"4"`` are both counted, while a bare space or ``"**"`` token is not.
        Full-width digits are included for every language (they only count when they are single
        tokens); ``language`` is part of the cache key for forms with language-specific options.
        """
        if language in self._option_cache:
            return self._option_cache[language]
        out = option_token_ids(self.tokenizer, self.options)
        self._option_cache[language] = out
        return out

    def _score(self, logits_row, option_ids: Mapping[int, list[int]]) -> tuple[list[float], float, int, float]:
        from care_model.inference.constrained import option_scores

        return option_scores(logits_row, option_ids, self.options)

    def _decode_text(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    # ------------------------------------------------------------------------- public runs
    def prefill_only(self, prefix_ids: Sequence[int]) -> float:
        """Seconds for one forward of the shared prefix alone (the floor of any scoring)."""
        torch = self.torch
        self._require_fast()
        with self._lock, torch.inference_mode():
            t0 = time.perf_counter()
            self._prefill(list(prefix_ids))
            self._sync()
            return time.perf_counter() - t0

    def _sync(self):
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()

    def _require_fast(self):
        if not self.fast_supported:
            raise ModelError(f"The fast path does not support this model: {self.unsupported_reason}.",
                             "Use Engine.run_session_naive for it.")

    def run_session(self, prefix_ids: Sequence[int], suffix_ids: Mapping[int, Sequence[int]], *,
                    max_new_tokens: int = 64, scores_only: bool = False, progress: Progress | None = None,
                    language: str = "en", constraints: Mapping | None = None) -> dict[int, ItemOutput]:
        """Fast path: one prefix prefill, a batched suffix block, batched greedy decoding (each row under its
        own ``constraints[item]``, a :class:`care_model.text.grounding.GroundedRow`, when given)."""
        job = SessionJob(prefix_ids, suffix_ids, constraints, language)
        out = run_batch(self, [job], max_new_tokens=max_new_tokens, scores_only=scores_only, progress=progress)[0]
        (progress or (lambda f, m: None))(1.0, "done")
        return out

    def run_sessions(self, jobs: Sequence[SessionJob], *, max_new_tokens: int = 64, scores_only: bool = False,
                     token_budget: int = DEFAULT_TOKEN_BUDGET, max_sessions: int = DEFAULT_MAX_SESSIONS,
                     progress: Progress | None = None):
        """Cross-session batching (:mod:`care_model.inference.batch`): the sessions cut into batches under
        ``token_budget`` K/V slots and ``max_sessions``, each batch's decode steps carrying the rows of all
        its sessions. Yields ``(job index, {item: ItemOutput})`` in job order as each batch finishes."""
        plan = plan_batches(jobs, max_new_tokens=max_new_tokens, scores_only=scores_only,
                            token_budget=token_budget, max_sessions=max_sessions)
        done = 0
        for batch in plan:
            def report(f, m, _done=done, _n=len(batch)):
                if progress:
                    progress((_done + f * _n) / len(jobs), m)
            outs = run_batch(self, [jobs[i] for i in batch], max_new_tokens=max_new_tokens, scores_only=scores_only,
                             progress=report)
            done += len(batch)
            yield from zip(batch, outs)

    def _prepare(self, prefix_ids, suffix_ids):
        if not suffix_ids:
            raise ModelError("No items to run.", "Pass at least one item's suffix ids.")
        items = list(suffix_ids)
        prefix = [int(t) for t in prefix_ids]
        suffixes = [[int(t) for t in suffix_ids[i]] for i in items]
        if any(len(s) == 0 for s in suffixes):
            raise ModelError("An item has an empty suffix.",
                             "Each item's prompt must add at least one token after the shared prefix.")
        # Move tokens common to the start of every suffix into the shared prefix (keep >= 1 per row).
        n = 0
        limit = min(len(s) for s in suffixes) - 1
        while n < limit and all(s[n] == suffixes[0][n] for s in suffixes):
            n += 1
        if n:
            prefix = prefix + suffixes[0][:n]
            suffixes = [s[n:] for s in suffixes]
        return items, prefix, suffixes, n

    # ------------------------------------------------------------------------- reference path
    def run_session_naive(self, prefix_ids: Sequence[int], suffix_ids: Mapping[int, Sequence[int]], *,
                          max_new_tokens: int = 64, scores_only: bool = False, progress: Progress | None = None,
                          language: str = "en", constraints: Mapping | None = None) -> dict[int, ItemOutput]:
        """Reference: 12 independent ``model.generate`` calls (see :mod:`care_model.inference.naive`)."""
        from care_model.inference.naive import run_naive

        return run_naive(self, prefix_ids, suffix_ids, max_new_tokens=max_new_tokens, scores_only=scores_only,
                         progress=progress, language=language, constraints=constraints)
