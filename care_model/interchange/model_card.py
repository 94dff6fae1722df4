"""The model card (``README.md``) of a model version, in the Hub's format.

From the version's document (``care_model.training.versions``: base model, adapter, run, training
snapshot hash and what it learned from, the recorded quality against the constant baselines, the
calibration choice) and the adapter's ``adapter_config.json`` (the LoRA configuration). A YAML
header for the Hub (``base_model``, ``library_name: peft``, ``pipeline_tag``, ``license`` left to
the lab, ``tags``), then: the model, the training data (snapshot id, counts by score source and
rationale provenance), the held-out evaluation with both baselines and intervals whose unit is the
client (or "not evaluated": never a figure without its baseline), the calibration choice, intended
use and limits (not a clinical instrument) and how to load it. Pure: dicts in, text out.
"""
from __future__ import annotations

import yaml

LORA_KEYS = ("peft_type", "r", "lora_alpha", "lora_dropout", "target_modules", "layers_to_transform", "bias",
             "task_type")
SYSTEM_NAMES = {"model": "this version", "mean": "training mean (baseline)", "mode": "most frequent score (baseline)"}
METRIC_ROWS = (("item_mae", "item MAE (primary; lower is better)"), ("exact", "exact agreement"),
               ("within1", "within one point"))


def _cell(est: dict | None) -> str:
    if not est or est.get("value") is None:
        return "–"
    v = f"{est['value']:.2f}"
    if est.get("low") is not None and est.get("high") is not None:
        v += f" [{est['low']:.2f}, {est['high']:.2f}]"
    return v


def _counts(counts: dict | None) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in (counts or {}).items()) or "not recorded"


def evaluation_section(quality: dict | None) -> list[str]:
    if not quality:
        return ["Not evaluated against the baselines yet (`care evaluate --store DIR --model-version ID` records "
                "it). No quality figure is claimed."]
    rep = quality.get("report") or {}
    systems = rep.get("systems") or {}
    lines = [f"Verdict: **{quality.get('verdict')}** ({'beats' if quality.get('beats_baselines') else 'does not beat'}"
             " both constant baselines by the pre-declared rule: item MAE below both with the interval of the "
             "difference excluding zero).", "",
             f"Held out: {quality.get('n_sessions')} sessions of {quality.get('n_clients')} clients (by client: no "
             f"held-out client is in the training split); score: `{quality.get('score_field')}`; baselines fitted "
             f"on: {rep.get('baseline_source', '?')}; intervals: 95%, resampling {rep.get('unit', 'clients')}.", "",
             "| metric | " + " | ".join(SYSTEM_NAMES[s] for s in SYSTEM_NAMES if s in systems) + " |",
             "|---|" + "---|" * sum(s in systems for s in SYSTEM_NAMES)]
    for key, name in METRIC_ROWS:
        if any(key in systems.get(s, {}) for s in systems):
            lines.append(f"| {name} | " + " | ".join(_cell(systems[s].get(key)) for s in SYSTEM_NAMES
                                                     if s in systems) + " |")
    if quality.get("assumed_untrained"):
        lines += ["", "The version was assumed untrained on these sessions (no recorded split)."]
    return lines


def render_model_card(doc: dict, adapter_config: dict | None = None) -> str:
    """The whole ``README.md`` of version ``doc``."""
    lf = doc.get("learned_from") or {}
    cal = doc.get("calibration") or {}
    cfg = adapter_config or {}
    head = {"base_model": doc.get("base"), "library_name": "peft" if doc.get("adapter") else "transformers",
            "pipeline_tag": "text-generation", "license": "other", "license_name": "set-by-the-releasing-lab",
            "tags": ["care-review-studio", "working-alliance", "wai-sr"] + (["lora"] if doc.get("adapter") else [])}
    lines = ["---", yaml.safe_dump(head, sort_keys=False).rstrip(), "---", "",
             f"# {doc['id']}", "",
             "A model version of CARE Review Studio: it reads a counseling transcript and, for each of the 12 items "
             "of the Working Alliance Inventory short form (WAI-SR), predicts the client's score (1-5) and writes "
             "a rationale that quotes the dialogue (the CARE method, arXiv 2602.20648).", "",
             "## Model", "",
             f"- base model: `{doc.get('base')}`",
             f"- status in its store: {doc.get('status')}; training run: {doc.get('run_id') or '–'}; "
             f"code commit: {doc.get('code_commit') or '–'}; parent version: {doc.get('parent') or '–'}"]
    if doc.get("adapter"):
        lines += ["- LoRA adapter: " + (", ".join(f"{k}={cfg[k]}" for k in LORA_KEYS if k in cfg) or
                                        "adapter_config.json not found")]
    lines += ["", "## Training data", ""]
    if doc.get("adapter"):
        taking = ", ".join(lf.get("rationale_provenance") or []) or "–"
        lines += [f"- training snapshot: `{doc.get('data_hash') or '–'}` (content hash of the curated set)",
                  f"- score sources learned: {', '.join(lf.get('score_sources') or []) or 'not recorded'}; "
                  f"items by score source: {_counts(lf.get('score_source_counts'))}",
                  f"- rationales: {lf.get('rationales') or 'not recorded'}; by provenance: "
                  f"{_counts(lf.get('provenance_counts'))} (taking {taking}); items learned without rationale: "
                  f"{lf.get('items_without_rationale') or 0}"]
        split = doc.get("split") or {}
        if split:
            lines.append(f"- split by client: {len(split.get('train') or [])} training sessions, "
                         f"{len(split.get('validation') or [])} validation sessions")
    else:
        lines += ["A base model: not trained by this project."]
    lines += ["", "## Held-out evaluation", ""] + evaluation_section(doc.get("quality"))
    lines += ["", "## Calibration", "",
              (f"`{cal.get('choice')}`, chosen on the version's own held-out sessions by the rule fixed in "
               f"`care_model/stats/calibration_rule.py`" + (f": {cal['reason']}" if cal.get("reason") else "."))
              if cal.get("choice") else "No choice recorded: the version predicts with `none` (raw probabilities)."]
    lines += ["", "## Intended use and limits", "",
              "Intended use: suggestions that clinical experts review and correct in CARE Review Studio, and "
              "research on working-alliance rating. **Not a clinical instrument**: its scores are not a measurement "
              "of a client, must not inform care decisions, and are only as good as the held-out figures above "
              "beside their baselines. It was trained on a small curated set from one setting; expect it not to "
              "transfer to other populations, languages or forms without re-evaluation.", "",
              "## How to load", "", "```python", "from peft import PeftModel",
              "from transformers import AutoModelForCausalLM, AutoTokenizer",
              f"base = AutoModelForCausalLM.from_pretrained({doc.get('base')!r})",
              "model = PeftModel.from_pretrained(base, \"path/to/this/folder\")", "```", "",
              "The prompt is the project's (`care_model/text/prompt.py`); `care predict --adapter FOLDER` uses it.", ""]
    return "\n".join(lines)
