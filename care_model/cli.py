"""The ``care`` command: the review app, the model loop's jobs and the store tools, one entry point.

    care --help                     every command, one line each
    care COMMAND --help             one command's options and examples
    care app [--store DIR] ...      the review app (what `make app` runs)
    care predict --store DIR ...    a job of :mod:`care_model.jobs` (predict, retrain, crossval, ...)
    care store import --store DIR --format jsonl FILE...   the store's tools (``python -m store``)

Each command is a ``main(argv) -> int`` elsewhere: the app's in :mod:`studio.launch`, the jobs'
in :mod:`care_model.jobs` (a new module there is a new command, listed with its docstring's first
line until :data:`COMMANDS` gives it one), the store's in ``store/__main__.py``. Dispatch is lazy:
a command's module is imported only when it runs, so ``care --help`` imports neither torch nor
Gradio. Each command's parser is named ``care COMMAND`` where it is defined, with its examples.

``python -m care_model.cli`` is the same command.
"""
from __future__ import annotations

import argparse
import ast
import difflib
import importlib
import pkgutil
import sys
from pathlib import Path

# name -> (module with main(argv), one line for `care --help`). The order is the loop's: review,
# predict, retrain, evaluate, promote.
COMMANDS: dict[str, tuple[str, str]] = {
    "app": ("studio.launch", "the review app (Gradio): review, curate, retrain and evaluate in the browser"),
    "predict": ("care_model.jobs.predict",
                "predict sessions' 12 items into a store, or draft rationales for given scores"),
    "retrain": ("care_model.jobs.retrain",
                "curated labels -> LoRA re-fine-tune -> evaluation against the active version -> candidate"),
    "crossval": ("care_model.jobs.crossval",
                 "cross-validation with retraining: K folds split by client, one LoRA adapter per fold"),
    "evaluate": ("care_model.jobs.evaluate",
                 "evaluate a model version's predictions on held-out sessions, or compare two versions"),
    "report": ("care_model.jobs.report", "the evaluation report (Table 2, plots) as one offline HTML file"),
    "insights": ("care_model.jobs.insights",
                 "counselor profiles, interaction patterns, trajectories, known groups as one offline HTML file"),
    "versions": ("care_model.jobs.versions",
                 "model versions: list, show, history, export (adapter + model card); promote, reject or roll back"),
    "deid": ("care_model.jobs.deid", "de-identification: scan transcripts, review findings, redact (admins)"),
    "store": ("store.__main__", "the store's tools: import, export, stats, add-user, set-role, users, audit, assign, "
                                "publish, interchange"),
    "publish": ("care_model.jobs.publish",
                "the curated set as a Hugging Face dataset folder (Parquet by client, card, SFT and preference files)"),
    "interchange": ("care_model.jobs.interchange", "Label Studio and Argilla: export tasks with suggestions, import "
                                                   "their annotations as labels"),
}
# `care store NAME` for these runs the job of that name (the store package cannot import jobs).
STORE_JOBS = ("publish", "interchange")

JOBS_PACKAGE = "care_model.jobs"

def _jobs_dir() -> Path:
    return Path(__file__).resolve().parent / "jobs"


def _job_line(path: Path) -> str | None:
    """The first line of a job module's docstring, read without importing it; None if it has no ``main``."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return None
    if not any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body):
        return None
    doc = (ast.get_docstring(tree) or "").strip()
    return doc.splitlines()[0].rstrip(".") if doc else ""


def commands() -> dict[str, tuple[str, str]]:
    """Every command: :data:`COMMANDS`, then any job module (one with a ``main``) not named there."""
    found = dict(COMMANDS)
    for info in sorted(pkgutil.iter_modules([str(_jobs_dir())]), key=lambda i: i.name):
        name = info.name.replace("_", "-")
        if info.name.startswith("_") or name in found:
            continue
        line = _job_line(_jobs_dir() / f"{info.name}.py")
        if line is not None:
            found[name] = (f"{JOBS_PACKAGE}.{info.name}", line)
    return found


def _parser(cmds: dict[str, tuple[str, str]]) -> argparse.ArgumentParser:
    width = max(len(n) for n in cmds) + 2
    listing = "\n".join(f"  {name:<{width}}{line}" for name, (_, line) in cmds.items())
    description = ("CARE Review Studio: the review app, the model loop's jobs and the store, in one command.\n\n"
                   f"commands:\n{listing}\n\n"
                   "`care COMMAND --help` shows a command's options and examples. A store is open in one\n"
                   "process at a time: stop the app before a job (predict, retrain, ...) opens its store.")
    epilog = ("examples:\n"
              "  care app                                  # ./care_store on http://127.0.0.1:7860\n"
              "  care store import --store DIR --format jsonl data/sessions.jsonl\n"
              "  care predict --store DIR --session ID\n"
              "  care retrain --store DIR --recipe recipes/cpu-smoke.yaml --actor admin\n"
              "  care versions --store DIR --actor admin promote VERSION_ID")
    # Only for the help and the usage errors: main() dispatches on argv[0] itself and hands the
    # rest, untouched, to the command.
    return argparse.ArgumentParser(prog="care", usage="care COMMAND [ARGS ...]", description=description,
                                   epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)


def run(name: str, argv: list[str], cmds: dict[str, tuple[str, str]] | None = None) -> int:
    """Run command ``name`` with its arguments ``argv``; its exit status."""
    if name == "store" and argv and argv[0] in STORE_JOBS:
        name, argv = argv[0], argv[1:]
    module, _ = (cmds or commands())[name]
    main = importlib.import_module(module).main
    try:
        code = main(argv, prog="care app") if module == "studio.launch" else main(argv)
    except SystemExit as exc:  # argparse's --help and usage errors
        code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cmds = commands()
    ap = _parser(cmds)
    if not argv:
        ap.print_help(sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        ap.print_help()
        return 0
    if argv[0].startswith("-"):
        ap.print_usage(sys.stderr)
        print(f"care: error: unknown option {argv[0]!r}: a command comes first ({', '.join(cmds)})",
              file=sys.stderr)
        return 2
    name = argv[0]
    if name not in cmds:
        close = difflib.get_close_matches(name, list(cmds), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        ap.print_usage(sys.stderr)
        print(f"care: error: unknown command {name!r}; the commands are: {', '.join(cmds)}.{hint} "
              "(`care --help` says what each does)", file=sys.stderr)
        return 2
    return run(name, argv[1:], cmds)


if __name__ == "__main__":
    sys.exit(main())
