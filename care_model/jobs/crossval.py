"""``care crossval``: cross-validation with retraining: K folds split by client, one LoRA adapter per fold.

CPU smoke (SmolLM2-135M-Instruct, the CPU recipe, the sample store; about an hour on 2 cores)::

    care store import --store /tmp/cv_store --format jsonl data/sessions.jsonl
    care crossval --store /tmp/cv_store --folds 5 --recipe recipes/cpu-smoke.yaml --json

Real run (Llama-3.1-8B-Instruct; one GPU, or several with accelerate)::

    accelerate launch -m care_model.jobs.crossval --store /data/care_store --folds 5 \\
        --recipe recipes/gpu-llama31-8b.yaml --base-model /models/Llama-3.1-8B-Instruct
    care crossval ... --backend openai --base-url http://gpu-01:8000/v1 --served-model NAME  # folds on a server

What it does: :mod:`care_model.training.crossval`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from care_model.core.errors import CareError, ConfigError
from care_model.inference.backends.flags import add_backend_args, backend_overrides
from care_model.training.config import add_config_flags, config_overrides, resolve_config
from care_model.training.crossval import execute_crossval, finish_crossval, new_crossval_id, prepare_crossval


# ----------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="care crossval", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", help="store folder: snapshot the curated set, run every fold, record the run")
    ap.add_argument("--run-dir", help="a prepared (or interrupted) run folder: run or resume its folds (no store)")
    ap.add_argument("--folds", type=int, default=5, help="number of folds K (default 5, the paper's)")
    ap.add_argument("--recipe", help="YAML retraining recipe (e.g. recipes/cpu-smoke.yaml)")
    ap.add_argument("--cv-id", help="run id (default cv-<time>-<random>); with --store and an existing id: resume")
    ap.add_argument("--actor", default=os.environ.get("CARE_USER", "system"))
    ap.add_argument("--json", action="store_true", help="print the result table as one JSON object")
    add_config_flags(ap)  # --seed (the recipe's seed) also seeds the fold split
    add_backend_args(ap, default=None)  # the held-out predictions: --backend openai --base-url URL ...
    return ap


def _print_table(result: dict, out) -> None:
    def f(v):
        return "-" if v is None else f"{v:.3f}"

    print(f"{result['k']}-fold cross-validation {result['cv_id']}: {result['n_sessions']} sessions, "
          f"{result['n_clients']} clients ({result['sessions_without_client']} session(s) without a client id, "
          "each its own client)", file=out)
    for r in result["rows"]:
        print(f"{r['system']:<9} {r['score_field']:<14} {r['dimension']:<5} {r['metric']:<8} pooled {f(r['pooled'])} "
              f"[{f(r['low'])}, {f(r['high'])}] n={r['n']}  folds {f(r['fold_mean'])} +- {f(r['fold_sd'])} "
              f"({r['n_folds']})", file=out)


def main(argv=None) -> int:
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    args = _parser().parse_args(argv)
    try:
        from care_model.training.run import lower_priority, make_accelerator

        lower_priority()
        if bool(args.store) == bool(args.run_dir):
            raise ConfigError("Give exactly one of --store and --run-dir.",
                              "See care crossval --help.")
        accelerator = make_accelerator()
        if args.run_dir:
            cv_dir = Path(args.run_dir)
        else:
            cv_id = args.cv_id or new_crossval_id()
            cv_dir = Path(args.store) / "crossval" / cv_id
            if accelerator.is_main_process and not (cv_dir / "config.json").exists():
                config = resolve_config(args.recipe, {**backend_overrides(args), **config_overrides(args)})
                from store import Repository

                with Repository.open(args.store, create=False) as repo:
                    prepare_crossval(repo, config, args.folds, cv_dir=cv_dir, cv_id=cv_id,
                                     actor=args.actor)
            accelerator.wait_for_everyone()
        result = execute_crossval(cv_dir, accelerator=accelerator)
        if not accelerator.is_main_process:
            return 0
        if args.store:
            from store import Repository

            with Repository.open(args.store, create=False) as repo:
                finish_crossval(repo, cv_dir, actor=args.actor)
        if result.get("status") == "cancelled":
            print(f"cancelled; resume with: care crossval --run-dir {cv_dir}", file=sys.stderr)
            return 0
        if args.json:
            keep = {k: v for k, v in result.items() if k != "summary"}
            print(json.dumps({**keep, "cv_dir": str(cv_dir)}, ensure_ascii=False, default=str))
        else:
            _print_table(result, sys.stdout)
        return 0
    except CareError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
