"""The typed configuration of a retraining run, its YAML recipes and its command-line flags.

Precedence: dataclass defaults < recipe (``--recipe recipes/cpu-smoke.yaml``) < command-line
flags (``--learning-rate 1e-4``). A recipe is a flat YAML mapping of field names; an unknown key,
in a recipe or a flag, is a :class:`~care_model.core.errors.ConfigError` that names the nearest known
key. Every field carries help text (``RetrainConfig.help()``), which is also the ``--help`` of
``care retrain``.

Pure module (no torch): the app reads the config to show and validate it.
"""
from __future__ import annotations

import argparse
import difflib
import functools
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from care_model.inference.backends import BACKENDS
from care_model.text.calibration import CALIBRATIONS, check_calibration
from care_model.core.provenance import check_provenance
from care_model.text.snapshot import check_sources
from care_model.core.errors import ConfigError, ValidationError

SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup")
DTYPES = ("auto", "float32", "bfloat16", "float16")


def _f(default, help_text: str, **kw):
    if isinstance(default, list):
        return field(default_factory=lambda d=default: list(d), metadata={"help": help_text, **kw})
    return field(default=default, metadata={"help": help_text, **kw})


DPO_LOSSES = ("sigmoid", "ipo", "hinge")


@dataclass(frozen=True)
class DPOStage:
    """The DPO stage of a recipe (the ``dpo_*`` fields, flat in recipes and flags like every other key)."""
    steps: int
    beta: float
    learning_rate: float
    batch_size: int
    loss_type: str
    provenance: tuple


@dataclass
class RetrainConfig:
    # ---- model
    base_model: str = _f("smollm2", "Base model: a local folder, 'smollm2' (embedded SmolLM2-135M-Instruct) or a hub "
                                    "id (only with hub access or a local hub cache).")
    dtype: str = _f("auto", "Training dtype: 'auto' (bfloat16 on CUDA, float32 on CPU), float32, bfloat16, float16.")
    gradient_checkpointing: bool = _f(False, "Recompute activations in the backward pass (saves memory on long "
                                             "transcripts).")
    attn_implementation: str = _f("sdpa", "Attention kernel for training ('sdpa' or 'eager'; item packing needs a "
                                          "kernel that takes a custom mask, so not 'flash_attention_2').")
    # ---- LoRA
    lora_r: int = _f(8, "LoRA rank.")
    lora_alpha: int = _f(16, "LoRA alpha (the update is scaled by alpha / r).")
    lora_dropout: float = _f(0.05, "Dropout on the LoRA input.")
    lora_target_modules: list = _f(["q_proj", "k_proj", "v_proj", "o_proj"],
                                   "Module names to adapt (comma-separated on the command line), "
                                   "e.g. q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj.")
    lora_last_layers: typing.Optional[int] = _f(None, "Adapt only the last N decoder layers (None: all). The backward "
                                                      "pass then stops at the first adapted layer: on a CPU, far "
                                                      "cheaper steps for a smaller adapter.")
    # ---- data
    validation_fraction: float = _f(0.2, "Share of sessions held out for validation, split by client (0: none).")
    score_sources: list = _f(["client_self_report"],
                             "Which curated labels the model learns from, by where their score came from "
                             "(comma-separated): client_self_report (client-anchored curation: the client's own "
                             "WAI-SR rating with the expert's rationale, the paper), expert (expert-judged scores), "
                             "adjudicated (adjudicators' final labels).")
    rationales: str = _f("curated", "'curated': learn curated labels only (each with its expert rationale). "
                                    "'curated_or_none': also learn the client's self-reported score, with no "
                                    "rationale, for every item of a self-reported session that has no curated "
                                    "label (the paper's 'CARE without rationales' ablation for those items; recorded "
                                    "in the snapshot).")
    rationale_provenance: list = _f(["expert", "edited"],
                                    "Which curated rationales the model learns from, by provenance "
                                    "(comma-separated): expert (written or substantially rewritten by the expert), "
                                    "edited (model text with an edit), accepted (model text saved unchanged, one item "
                                    "at a time), bulk_accepted (saved through Accept all: only when named), unknown "
                                    "(labels saved before provenance was recorded).")
    perspective: str = _f("client", "Whose answers the model learns: 'client' (the paper) or 'counselor'.")
    calibration: str = _f("content-free", "Evaluation predictions: 'content-free' stores the raw and the calibrated "
                                          "option distributions (care_model.text.calibration), from which the "
                                          "candidate's own calibration is chosen on its held-out sessions "
                                          "(care_model.stats.calibration_rule); 'none' stores the raw ones only "
                                          "(the candidate's choice is then none).")
    max_prompt_tokens: int = _f(8192, "Context budget for the prompt, as at inference "
                                      "(care_model.inference.predictor.PredictConfig; the paper cuts at 8,192; the "
                                      "model's own limit applies if smaller). Longer transcripts are cut exactly as "
                                      "at inference (opening and most recent turns kept).")
    answer_reserve_tokens: int = _f(96, "The answer budget: tokens kept free for the answer when fitting the "
                                        "transcript, and the longest answer the evaluation generates. Inference "
                                        "reserves its max_new_tokens (96 by default): keep the two equal.")
    decoding: str = _f("grounded", "How the run's evaluation generates rationales, as at inference "
                                   "(care_model.inference.predictor.PredictConfig.decoding): 'grounded' (score = "
                                   "the argmax option, quotes verbatim from the transcript) or 'free' (the model's "
                                   "unconstrained answer).")
    predict_backend: str = _f("engine", "Backend of the evaluation's and cross-validation's held-out predictions "
                                         "(care_model.inference.backends): 'engine' (in process), 'openai' (a "
                                         "served model, predict_base_url) or 'vllm' (vLLM "
                                         "workers in "
                                         "their own venv, `make setup-vllm`; adapters served as LoRA; the workers "
                                         "stop after each version's predictions, so training gets the memory back).")
    predict_base_url: str = _f("", "predict_backend 'openai': the server's OpenAI-compatible root "
                                   "(http://HOST:PORT/v1); it must serve predict_served_model, and load the "
                                   "candidate's adapter at run time (vLLM: --enable-lora, "
                                   "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, the run folder visible to it).")
    predict_served_model: str = _f("", "predict_backend 'openai': the base model's name on the server.")
    predict_api_key_env: str = _f("", "predict_backend 'openai': the environment variable holding the server's key "
                                      "(the name is stored, never the key).")
    predict_max_concurrency: int = _f(16, "predict_backend 'openai': requests in flight at most.")
    max_answer_tokens: int = _f(256,
                                "Longest training answer (score line + rationale + end of turn); longer rationales are "
                                "cut.")
    pack_items: bool = _f(True, "Train the 12 items of a session as one sequence: the transcript once, each item's "
                                "suffix and answer attending to it and to itself only (a tree attention mask). "
                                "Same loss as 12 separate examples, about 12x less compute on long transcripts.")
    score_weight: float = _f(1.0, "Loss weight of the score token (the first answer token of each item) relative to "
                                  "a rationale token. 1.0 is plain supervised fine-tuning (the paper); larger values "
                                  "make the score, not the wording, drive learning.")
    # ---- optimisation
    learning_rate: float = _f(2e-4, "Peak learning rate.")
    lr_scheduler: str = _f("cosine", f"Learning-rate schedule: {', '.join(SCHEDULERS)}.")
    warmup_ratio: float = _f(0.1, "Share of the steps spent warming the learning rate up (the paper: 0.1).")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    max_grad_norm: float = _f(1.0, "Gradient clipping norm (0: none).")
    num_epochs: float = _f(1.0, "Passes over the training set (fractions allowed).")
    max_steps: typing.Optional[int] = _f(None, "Stop after this many optimizer steps (overrides num_epochs).")
    per_device_batch_size: int = _f(1, "Sequences per process per micro-batch (a packed session is one sequence).")
    gradient_accumulation_steps: int = _f(1, "Micro-batches per optimizer step.")
    seed: int = _f(0, "Seed of the split, the data order, LoRA initialisation and dropout.")
    # ---- preference learning after SFT (care_model.training.dpo; 0 steps: no DPO stage)
    dpo_steps: int = _f(0, "DPO stage after the SFT stage: optimizer steps of TRL's DPOTrainer on the SFT LoRA "
                           "adapter (continued; the SFT adapter is the frozen reference), on preference pairs built "
                           "from experts' corrections of model suggestions in the training sessions (chosen: the "
                           "curated answer, rejected: the differing model suggestion). 0: no DPO stage.")
    dpo_beta: float = _f(0.1, "DPO beta: how far the policy may move from the SFT reference (larger: less).")
    dpo_learning_rate: float = _f(5e-5, "Learning rate of the DPO stage (constant, no warmup).")
    dpo_batch_size: int = _f(1, "Preference pairs per DPO step (each pair is two sequences).")
    dpo_loss_type: str = _f("sigmoid", "DPO loss (TRL's loss_type): sigmoid (the DPO paper), ipo or hinge.")
    dpo_provenance: list = _f(["expert", "edited"],
                              "Which corrections become preference pairs, by the curated rationale's provenance "
                              "(comma-separated): expert, edited (the issue's rule); accepted or bulk_accepted only "
                              "when named (model text saved unchanged is no correction of its own text, but a "
                              "changed score still is).")
    # ---- bookkeeping
    save_every_steps: int = _f(0, "Save a resumable checkpoint every N steps (0: only when cancelled and at the end).")
    keep_checkpoints: int = _f(2, "How many checkpoints to keep.")
    eval_every_steps: int = _f(0, "Compute the validation loss every N steps (0: only before and after training).")
    # ---- evaluation of the candidate against the active version
    evaluate: bool = _f(True, "After training, predict the validation sessions with the candidate and the active "
                              "version and compute the paper's metrics.")
    eval_scores_only: bool = _f(True, "Evaluation predicts scores only (no rationales): fast on CPU.")
    eval_n_boot: int = _f(1000, "Bootstrap resamples (over sessions) for the metrics' 95% intervals (0: none).")
    eval_max_sessions: typing.Optional[int] = _f(None,
                                                 "Use at most this many validation sessions for the validation loss "
                                                        "and the evaluation (None: all).")

    # ------------------------------------------------------------------ helpers
    def __post_init__(self):
        self.validate()

    def validate(self) -> "RetrainConfig":
        def bad(name, fix):
            raise ConfigError(f"Config value {name}={getattr(self, name)!r} is invalid.", fix)

        check_calibration(self.calibration, CALIBRATIONS)
        if self.lora_r < 1:
            bad("lora_r", "Use a rank of at least 1 (8-64 are usual).")
        if self.lora_alpha <= 0:
            bad("lora_alpha", "Use a positive alpha (often 2 x lora_r).")
        if not 0.0 <= self.lora_dropout < 1.0:
            bad("lora_dropout", "Use a dropout in [0, 1).")
        if isinstance(self.lora_target_modules, str):
            self.lora_target_modules = [m.strip() for m in self.lora_target_modules.split(",") if m.strip()]
        if not self.lora_target_modules:
            bad("lora_target_modules", "Name at least one module, e.g. q_proj,v_proj.")
        if self.score_weight <= 0:
            bad("score_weight", "Use a positive weight (1.0: plain supervised fine-tuning).")
        if self.lora_last_layers is not None and self.lora_last_layers < 1:
            bad("lora_last_layers", "Use a positive number of layers, or None for all layers.")
        if self.dtype not in DTYPES:
            bad("dtype", f"Use one of {', '.join(DTYPES)}.")
        if self.lr_scheduler not in SCHEDULERS:
            bad("lr_scheduler", f"Use one of {', '.join(SCHEDULERS)}.")
        if self.learning_rate <= 0:
            bad("learning_rate", "Use a positive learning rate, e.g. 2e-4 for LoRA.")
        if not 0.0 <= self.warmup_ratio < 1.0:
            bad("warmup_ratio", "Use a share in [0, 1), e.g. 0.1.")
        if self.num_epochs <= 0 and not self.max_steps:
            bad("num_epochs", "Use a positive number of epochs, or set max_steps.")
        if self.max_steps is not None and self.max_steps < 1:
            bad("max_steps", "Use a positive number of steps, or leave it unset (None) to use num_epochs.")
        for name in ("per_device_batch_size", "gradient_accumulation_steps", "max_answer_tokens"):
            if getattr(self, name) < 1:
                bad(name, "Use a positive whole number.")
        for name in ("save_every_steps", "eval_every_steps", "answer_reserve_tokens"):
            if getattr(self, name) < 0:
                bad(name, "Use 0 or a positive whole number.")
        if self.keep_checkpoints < 1:
            bad("keep_checkpoints", "Keep at least one checkpoint, or resuming is impossible.")
        if not 0.0 <= self.validation_fraction < 1.0:
            bad("validation_fraction", "Use a share in [0, 1), e.g. 0.2.")
        if isinstance(self.score_sources, str):
            self.score_sources = [m.strip() for m in self.score_sources.split(",") if m.strip()]
        try:
            self.score_sources = list(check_sources(self.score_sources, self.rationales))
        except ValidationError as err:
            raise ConfigError(f"Config value score_sources={self.score_sources!r} / rationales={self.rationales!r} "
                              f"is invalid: {err.problem}", err.fix) from None
        try:
            self.rationale_provenance = list(check_provenance(self.rationale_provenance))
        except ValueError as err:
            raise ConfigError(f"Config value rationale_provenance={self.rationale_provenance!r} is invalid: {err}",
                              "e.g. rationale_provenance: [expert, edited, accepted]") from None
        if self.decoding not in ("grounded", "free"):
            bad("decoding", "Use 'grounded' (the default) or 'free'.")
        if self.predict_backend not in BACKENDS:
            bad("predict_backend", f"Use one of {', '.join(BACKENDS)}.")
        if self.predict_backend == "openai" and not (self.predict_base_url and self.predict_served_model):
            bad("predict_backend", "With 'openai', set predict_base_url and predict_served_model "
                                   "(--base-url URL --served-model NAME).")
        if self.perspective not in ("client", "counselor"):
            bad("perspective", "Use 'client' or 'counselor'.")
        if self.pack_items and self.attn_implementation == "flash_attention_2":
            bad("attn_implementation",
                "Item packing needs a custom attention mask: use 'sdpa', or set pack_items: false.")
        if self.max_prompt_tokens < 64:
            bad("max_prompt_tokens", "Use at least a few hundred tokens (8192 is the paper's cut).")
        if self.dpo_steps < 0:
            bad("dpo_steps", "Use 0 (no DPO stage) or a positive number of steps.")
        if self.dpo_beta <= 0:
            bad("dpo_beta", "Use a positive beta, e.g. 0.1.")
        if self.dpo_learning_rate <= 0:
            bad("dpo_learning_rate", "Use a positive learning rate, e.g. 5e-5.")
        if self.dpo_batch_size < 1:
            bad("dpo_batch_size", "Use a positive number of pairs per step.")
        if self.dpo_loss_type not in DPO_LOSSES:
            bad("dpo_loss_type", f"Use one of {', '.join(DPO_LOSSES)}.")
        if isinstance(self.dpo_provenance, str):
            self.dpo_provenance = [m.strip() for m in self.dpo_provenance.split(",") if m.strip()]
        try:
            self.dpo_provenance = list(check_provenance(self.dpo_provenance))
        except ValueError as err:
            raise ConfigError(f"Config value dpo_provenance={self.dpo_provenance!r} is invalid: {err}",
                              "e.g. dpo_provenance: [expert, edited]") from None
        if self.eval_n_boot < 0:
            bad("eval_n_boot", "Use 0 (no intervals) or a positive number of resamples, e.g. 1000.")
        return self

    def dpo_stage(self) -> "DPOStage | None":
        """The DPO stage this config asks for (None: SFT only)."""
        if not self.dpo_steps:
            return None
        return DPOStage(steps=self.dpo_steps, beta=self.dpo_beta, learning_rate=self.dpo_learning_rate,
                        batch_size=self.dpo_batch_size, loss_type=self.dpo_loss_type,
                        provenance=tuple(self.dpo_provenance))

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, *, where: str = "the config") -> "RetrainConfig":
        check_keys(data, where)
        return cls(**{k: _coerce(k, v, where) for k, v in data.items()})

    def replace(self, **changes) -> "RetrainConfig":
        return RetrainConfig.from_dict({**self.to_dict(), **changes})


FIELD_NAMES = tuple(f.name for f in fields(RetrainConfig))
REMOVED_KEYS = {"self_reports": "The demo key self_reports is gone: say what the run learns from with score_sources "
                                "(e.g. [client_self_report]) and rationales (curated, or curated_or_none to learn "
                                "clients' self-reported scores without rationales where no curated label exists)."}


def check_keys(data: dict, where: str) -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} is a {type(data).__name__}, not a mapping of config keys.",
                          "Write the recipe as 'key: value' lines (see recipes/cpu-smoke.yaml).")
    removed = [k for k in data if k in REMOVED_KEYS]
    if removed:
        raise ConfigError(f"{where} uses the removed key {removed[0]!r}.", REMOVED_KEYS[removed[0]])
    unknown = [k for k in data if k not in FIELD_NAMES]
    if unknown:
        hints = []
        for k in unknown:
            near = difflib.get_close_matches(str(k), FIELD_NAMES, n=1)
            hints.append(f"{k!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
        raise ConfigError(f"Unknown config key(s) in {where}: {', '.join(hints)}.",
                          f"Use only the keys of RetrainConfig: {', '.join(FIELD_NAMES)}.")


@functools.lru_cache(maxsize=1)
def _type_hints() -> dict:
    """RetrainConfig's resolved annotations, once: resolving them per key cost 60 ms per ``from_dict``."""
    return typing.get_type_hints(RetrainConfig)


def _base_type(name: str):
    hint = _type_hints()[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return (args[0] if args else hint), type(None) in typing.get_args(hint)


def _coerce(name: str, value, where: str):
    typ, optional = _base_type(name)
    if typ is str and value == "" and RetrainConfig.__dataclass_fields__[name].default == "":
        return ""  # a text setting whose default is empty (predict_base_url ...) written back by a run's config.json
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "")):
        if optional:
            return None
        raise ConfigError(f"{where}: {name} cannot be empty.", f"Give a value ({RetrainConfig.help()[name]})")
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if typ is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if typ is float:
            return float(value)
        if typ is list:
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            return [str(v) for v in value]
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {name}={value!r} is not a valid {typ.__name__}.",
                          f"{RetrainConfig.help()[name]}") from None


def load_recipe(path: Path | str) -> dict:
    """The key/value mapping of a YAML recipe (validated keys, not yet a config)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"No recipe at {path}.",
                          "Use recipes/cpu-smoke.yaml or recipes/gpu-llama31-8b.yaml, or a path to your own.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"The recipe {path} is not valid YAML: {err}", "Fix the YAML syntax.") from err
    check_keys(data, f"recipe {path}")
    return data


def resolve_config(recipe: Path | str | None = None, overrides: dict | None = None) -> RetrainConfig:
    """Defaults < recipe < overrides (e.g. parsed command-line flags; None values are ignored)."""
    data: dict = {}
    if recipe:
        data.update(load_recipe(recipe))
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    check_keys(overrides, "the overrides")
    data.update(overrides)
    return RetrainConfig.from_dict(data, where=f"recipe {recipe}" if recipe else "the config")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--field-name VALUE`` flag per config field (values as strings, coerced on resolve)."""
    group = parser.add_argument_group("training config (override the recipe)")
    for f in fields(RetrainConfig):
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        group.add_argument(f"--{f.name.replace('_', '-')}", dest=f"cfg_{f.name}", default=None, metavar="V",
                           help=f"{f.metadata.get('help', '')} [default: {default}]".replace("%", "%%"))


def config_overrides(args: argparse.Namespace) -> dict:
    return {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}
