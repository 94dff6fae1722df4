"""Calibration measurement: raw vs content-free-calibrated expected scores against self-reports.

For every sample session (data/sessions.jsonl; all have the client's WAI-SR), the model predicts
scores only with contextual calibration on (care_model.calibration), so each prediction holds
both the raw option distribution (``probs``) and the calibrated one (``probs_calibrated``). The
expected item scores of each are averaged into the dimension scores (Goal, Task, Bond: means of
their items, care_model.wai) and compared with the client's self-reported dimension means:
Pearson r and MSE per dimension, raw against calibrated, plus the mean over the dimensions. The
verdict (``favoured``) is the setting with the lower mean MSE if it does not lower the mean
Pearson r by more than 0.05 (or calibrated if it raises the mean r by more than 0.05), else none.

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
    raw, cal = out["raw"], out["calibrated"]
    r_raw, r_cal = raw["mean_pearson"] or 0.0, cal["mean_pearson"] or 0.0
    better_mse = (cal["mean_mse"] is not None and raw["mean_mse"] is not None and cal["mean_mse"] < raw["mean_mse"])
    favoured = "content-free" if (better_mse and r_cal >= r_raw - 0.05) or r_cal > r_raw + 0.05 else "none"
    out["favoured"] = favoured
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.calibration", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="a tiny random Llama (smoke test)")
    ap.add_argument("--model", default="smollm2", help="base model (default: the embedded SmolLM2)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N sample sessions")
    ap.add_argument("--max-prompt-tokens", type=int, default=8192)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from care_model.models import ModelSpec
    from care_model.predict import PredictConfig, Predictor
    from care_model.records import Session
    from care_model.wai import load_form

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
    rows, items = [], {"raw_argmax_1": 0, "calibrated_argmax_1": 0, "n": 0}
    for n, session in enumerate(sessions):
        preds = predictor.predict_session(session, scores_only=True)
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
              "mode": "scores_only", "dimensions": [d.key for d in form.dimensions],
              **compare(rows, [d.key for d in form.dimensions]), "items_argmax_option_1": items,
              "seconds": round(time.perf_counter() - t0, 1),
              "load_avg_before": [round(x, 2) for x in load_before],
              "load_avg_after": [round(x, 2) for x in os.getloadavg()],
              "note": "synthetic sample ratings: a sanity check of the correction, not evidence of validity"}
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
