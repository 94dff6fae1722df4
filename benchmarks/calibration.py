"""Calibration measurement: raw vs content-free-calibrated expected scores against self-reports.

For every sample session (data/sessions.jsonl; all have the client's WAI-SR), the model predicts
scores only with contextual calibration on (care_model.text.calibration), so each prediction holds
both the raw option distribution (``probs``) and the calibrated one (``probs_calibrated``). The
expected item scores of each are averaged into the dimension scores (Goal, Task, Bond: means of
their items, care_model.core.wai) and compared with the client's self-reported dimension means:
Pearson r and MSE per dimension, raw against calibrated, plus the mean over the dimensions. A
paired bootstrap over sessions (2,000 resamples) gives 95% intervals of the calibrated - raw
differences (descriptive). The choice is not made here: it is the rule fixed in advance in
care_model.stats.calibration_rule (content-free only if it lowers the mean dimension MSE, keeps
every dimension's Pearson within its interval and beats the mean baseline; intervals resample
clients), printed as ``choice``. (An earlier verdict here was revised after its first run had
said ``none``; it is gone.)

On stored predictions that carry both distributions (no model runs; seconds)::

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.calibration --stored data/sample_predictions.jsonl

The sample ratings are synthetic: this is a sanity check of the correction, not evidence of
validity.

CPU smoke test (tiny random model, 2 sessions, ~1 minute)::

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.calibration --json --tiny --limit 2

The real measurement (SmolLM2-135M-Instruct, ~10 minutes on 2 busy cores; run it in the background)::

    HF_HUB_OFFLINE=1 nohup .venv/bin/python -m benchmarks.calibration --json > bench-calibration.json &
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _pearson(x, y) -> float | None:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def _boot_diff(rows: list[dict], dims: list[str], n_boot: int = 2000, seed: int = 0) -> dict:
    """Paired bootstrap over sessions of calibrated - raw (mean Pearson r and mean MSE over the
    dimensions): the 95% interval says whether a difference is more than sampling noise."""
    rng = np.random.default_rng(seed)
    arr = {k: np.array([[r[k][d] for d in dims] for r in rows], float) for k in ("client", "raw", "calibrated")}
    dr, dm = [], []
    for _ in range(n_boot):
        idx = rng.integers(0, len(rows), len(rows))
        y = arr["client"][idx]
        rs, ms = {}, {}
        for k in ("raw", "calibrated"):
            x = arr[k][idx]
            rs[k] = np.nanmean([_pearson(x[:, j], y[:, j]) if _pearson(x[:, j], y[:, j]) is not None else np.nan
                                for j in range(len(dims))])
            ms[k] = float(np.mean((x - y) ** 2))
        dr.append(rs["calibrated"] - rs["raw"])
        dm.append(ms["calibrated"] - ms["raw"])
    def ci(v):
        return [round(float(np.nanpercentile(v, 2.5)), 4), round(float(np.nanpercentile(v, 97.5)), 4)]

    return {"n_boot": n_boot, "pearson_diff_95ci": ci(dr), "mse_diff_95ci": ci(dm)}


def compare(rows: list[dict], dims: list[str]) -> dict:
    """``rows``: per session {"client": {dim: mean}, "raw": {...}, "calibrated": {...}}."""
    out = {}
    for setting in ("raw", "calibrated"):
        per = {}
        for d in dims:
            pairs = [(r[setting][d], r["client"][d]) for r in rows
                     if r[setting].get(d) is not None and r["client"].get(d) is not None]
            x, y = [p[0] for p in pairs], [p[1] for p in pairs]
            r_ = _pearson(x, y)
            per[d] = {"pearson": None if r_ is None else round(r_, 4),
                      "mse": round(float(np.mean((np.asarray(x) - np.asarray(y)) ** 2)), 4) if pairs else None,
                      "mean_pred": round(float(np.mean(x)), 4) if pairs else None, "n": len(pairs)}
        rs = [v["pearson"] for v in per.values() if v["pearson"] is not None]
        ms = [v["mse"] for v in per.values() if v["mse"] is not None]
        out[setting] = {"dimensions": per, "mean_pearson": round(float(np.mean(rs)), 4) if rs else None,
                        "mean_mse": round(float(np.mean(ms)), 4) if ms else None}
    if len(rows) >= 3:
        out["calibrated_minus_raw"] = _boot_diff(rows, dims)
    return out


def stored_rule(path: str, n_boot: int = 1000) -> dict:
    """The decision rule on stored predictions with both distributions (no model)."""
    from care_model.core.records import Prediction, Session
    from care_model.stats.calibration_rule import choose_calibration

    sessions = [Session.from_dict(json.loads(line)) for line in
                (ROOT / "data" / "sessions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    preds = [Prediction.from_dict(json.loads(line)) for line in
             Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    versions = sorted({p.model_version for p in preds})
    if len(versions) != 1:
        raise SystemExit(f"{path} holds predictions of {len(versions)} model versions; give one version's file.")
    return {"benchmark": "calibration rule", "model_version": versions[0], "predictions": path,
            **choose_calibration(sessions, preds, n_boot=n_boot)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.calibration", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="a tiny random Llama (smoke test)")
    ap.add_argument("--model", default="smollm2", help="base model (default: the embedded SmolLM2)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N sample sessions")
    ap.add_argument("--max-prompt-tokens", type=int, default=8192)
    ap.add_argument("--from-predictions", default=None, metavar="FILE",
                    help="take the raw option probabilities from a predictions JSONL "
                         "(e.g. data/sample_predictions.jsonl, same model and prompt) instead of predicting; "
                         "only the content-free pass runs (cached)")
    ap.add_argument("--stored", default=None, metavar="FILE",
                    help="only the decision rule, on stored predictions carrying probs and probs_calibrated")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.stored:
        from care_model.stats.calibration_rule import format_choice

        out = stored_rule(args.stored)
        print(json.dumps(out) if args.json else format_choice(out))
        return 0
    from care_model.inference.models import ModelSpec
    from care_model.inference.predictor import PredictConfig, Predictor
    from care_model.core.records import Session
    from care_model.core.wai import load_form
    from care_model.stats.calibration_rule import choose_calibration

    if args.tiny:
        from tests.tiny_model import build_tiny_model

        spec = ModelSpec(base=str(build_tiny_model(Path(tempfile.mkdtemp(prefix="care-tiny-")) / "tiny")))
    else:
        spec = ModelSpec(base=args.model)
    sessions = [Session.from_dict(json.loads(line)) for line in
                (ROOT / "data" / "sessions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    sessions = [s for s in sessions if s.ratings.get("client")][:args.limit]
    predictor = Predictor(spec, PredictConfig(calibration="content-free", max_prompt_tokens=args.max_prompt_tokens))
    form = load_form()
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    rows, items, measured = [], {"raw_argmax_1": 0, "calibrated_argmax_1": 0, "n": 0}, []
    stored = {}
    if args.from_predictions:
        from care_model.text.calibration import calibrate, expected_score
        from care_model.inference.modes import content_free_probs
        from care_model.core.records import Prediction

        for line in Path(args.from_predictions).read_text(encoding="utf-8").splitlines():
            p = Prediction.from_dict(json.loads(line))
            if p.model_version == predictor.model_version and p.probs and not p.is_draft:
                stored.setdefault(p.session_id, {})[p.item] = p
    for n, session in enumerate(sessions):
        if args.from_predictions:
            prior = content_free_probs(predictor, form, session.language)
            preds = sorted(stored.get(session.id, {}).values(), key=lambda p: p.item)
            for p in preds:
                p.probs_calibrated = calibrate(p.probs, prior[p.item])
                p.expected_score = expected_score(p.probs_calibrated, form.scale.points)
        else:
            preds = predictor.predict_session(session, scores_only=True)
        measured += preds
        raw = {p.item: sum(k * q for k, q in zip(form.scale.points, p.probs)) for p in preds}
        cal = {p.item: p.expected_score for p in preds}
        for p in preds:
            items["n"] += 1
            items["raw_argmax_1"] += int(np.argmax(p.probs) == 0)
            items["calibrated_argmax_1"] += int(np.argmax(p.probs_calibrated) == 0)
        rows.append({"session": session.id, "client": form.dimension_scores(session.ratings["client"]),
                     "raw": form.dimension_scores(raw), "calibrated": form.dimension_scores(cal)})
        print(f"[{n + 1}/{len(sessions)}] {session.id}", file=sys.stderr)
    result = {"benchmark": "calibration", "model_version": predictor.model_version, "sessions": len(rows),
              "mode": "scores_only", "raw_from": args.from_predictions or "predicted in this run",
              "dimensions": [d.key for d in form.dimensions],
              **compare(rows, [d.key for d in form.dimensions]), "items_argmax_option_1": items,
              "choice": choose_calibration(sessions, measured),
              "seconds": round(time.perf_counter() - t0, 1),
              "load_avg_before": [round(x, 2) for x in load_before],
              "load_avg_after": [round(x, 2) for x in os.getloadavg()],
              "note": "synthetic sample ratings: a sanity check of the correction, not evidence of validity"}
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
