"""``care retrain``: curated labels -> LoRA re-fine-tune -> evaluation against the active version -> candidate.

CPU smoke (SmolLM2-135M-Instruct on the sample store; the sample store has no expert labels, so
the recipe lets the clients' self-reports stand in for them -- demo only)::

    care store import --store /tmp/care_store --format jsonl data/sessions.jsonl
    care store add-user --store /tmp/care_store --username admin --role admin
    care retrain --store /tmp/care_store --recipe recipes/cpu-smoke.yaml --actor admin
    care versions --store /tmp/care_store promote VERSION_ID --actor admin

Real run (Llama-3.1-8B-Instruct, bf16, gradient checkpointing; one GPU, or DDP over several)::

    accelerate launch -m care_model.jobs.retrain --store /data/care_store --recipe recipes/gpu-llama31-8b.yaml \\
        --base-model /models/Llama-3.1-8B-Instruct --actor admin
    torchrun --nproc_per_node 2 -m care_model.jobs.retrain ...   # several CPU processes over gloo (tests);
                                                            # `accelerate launch --cpu` starts only one
    care retrain ... --backend openai --base-url http://gpu-01:8000/v1 --served-model NAME  # evaluate on a server

What it does: :mod:`care_model.training.run`.
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
from care_model.training.run import execute_run, finish_run, lower_priority, make_accelerator, new_run_id, prepare_run


# ----------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="care retrain", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", help="store folder: snapshot the curated set, train, evaluate, register a candidate")
    ap.add_argument("--run-dir", help="a run the app prepared: train and evaluate only (never opens the store)")
    ap.add_argument("--recipe", help="YAML recipe (recipes/cpu-smoke.yaml, recipes/gpu-llama31-8b.yaml)")
    ap.add_argument("--run-id", help="run id (default: run-<time>-<random>)")
    ap.add_argument("--output-dir", help="run folder (default: <store>/runs/<run-id>)")
    ap.add_argument("--resume", action="store_true",
                    help="continue the run from its last checkpoint (needs --run-id, --output-dir or --run-dir)")
    ap.add_argument("--actor", default=os.environ.get("CARE_USER", "system"), help="who starts the run (recorded)")
    ap.add_argument("--no-register", action="store_true", help="do not register the candidate in the store")
    add_config_flags(ap)
    add_backend_args(ap, default=None)  # the evaluation's predictions: --backend openai --base-url URL ...
    return ap


def _parse(argv) -> argparse.Namespace:
    import difflib

    ap = _parser()
    args, unknown = ap.parse_known_args(argv)
    if unknown:
        known = [o for a in ap._actions for o in a.option_strings]
        hints = [f"{u}" + (f" (did you mean {m[0]}?)"
                           if (m := difflib.get_close_matches(u.split('=')[0], known, n=1)) else "")
                 for u in unknown if u.startswith("-")] or unknown
        raise ConfigError(f"Unknown option(s): {', '.join(hints)}.", "See care retrain --help.")
    return args


def main(argv=None) -> int:
    import warnings

    # deprecation chatter of the libraries (e.g. peft calling transformers' old names) would fill the log
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        args = _parse(argv)
        return _main(args)
    except CareError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _main(args) -> int:
    lower_priority()
    overrides = {**backend_overrides(args), **config_overrides(args)}  # a config flag wins over the group
    if args.run_dir and args.store:
        raise ConfigError("--run-dir and --store were both given.",
                          "Use --store to snapshot, train and register; --run-dir only for a run the app prepared.")
    if not args.run_dir and not args.store:
        raise ConfigError("Neither --store nor --run-dir was given.", "Pass --store DIR (see --help).")
    if args.resume and (args.recipe or overrides):
        raise ConfigError("--resume continues a run with its saved config; a recipe or config flags cannot change it.",
                          "Drop --recipe and the config flags, or start a new run.")
    accelerator = make_accelerator()
    main_proc = accelerator.is_main_process
    if args.run_dir:
        run_dir = Path(args.run_dir)
    else:
        if args.resume and not (args.run_id or args.output_dir):
            raise ConfigError("--resume needs the run to continue.", "Pass --run-id ID (or --output-dir DIR).")
        run_id = args.run_id or (None if args.output_dir else new_run_id())
        run_dir = Path(args.output_dir) if args.output_dir else Path(args.store) / "runs" / run_id
        run_id = run_id or run_dir.name
        if main_proc and not args.resume:
            config = resolve_config(args.recipe, overrides)
            from store import Repository

            with Repository.open(args.store, create=False) as repo:
                prepare_run(repo, config, run_dir=run_dir, run_id=run_id, actor=args.actor)
        accelerator.wait_for_everyone()
    record = execute_run(run_dir, resume=args.resume, accelerator=accelerator)
    if not main_proc:
        return 0
    status = record.get("status")
    if status == "cancelled":
        where = f"--run-dir {run_dir}" if args.run_dir else f"--store {args.store} --output-dir {run_dir}"
        print(f"cancelled at step {record.get('steps')}/{record.get('total_steps')}; checkpoint "
              f"{record.get('checkpoint')}\n"
              f"resume with: care retrain {where} --resume")
    if args.store and not args.no_register:
        from store import Repository

        with Repository.open(args.store, create=False) as repo:
            version = finish_run(repo, run_dir, actor=args.actor)
            if version:
                print(f"registered candidate {version['id']}")
                _record_quality(repo, version["id"])
                from care_model.jobs.versions import write_card

                write_card(repo, version["id"])  # the model card, with the quality just recorded
    print(json.dumps({"run_dir": str(run_dir), "status": status, "version_id": record.get("version_id"),
                      "metrics": record.get("metrics"), "timings": record.get("timings")}, ensure_ascii=False,
                      default=str))
    return 0


def _record_quality(repo, version_id: str) -> None:
    """The candidate's verdict against the constant baselines, on its held-out clients (recorded on it)."""
    from care_model.core.errors import CareError
    from care_model.jobs.quality import evaluate_version_quality

    try:
        q = evaluate_version_quality(repo, version_id, actor="care retrain")
        print(f"quality of {version_id}: {q['verdict']}")
    except CareError as err:
        print(f"quality of {version_id} not recorded: {err}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
