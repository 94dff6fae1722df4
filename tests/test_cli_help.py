"""Every command-line entry point answers ``--help`` (exit 0, a usage line) as a subprocess.

The list is discovered, not written down: every module of care_model/, store/ and benchmarks/
with an ``if __name__ == "__main__":`` block (or a ``__main__.py``), plus annotate_app.py, so a
new CLI is covered automatically.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAIN = re.compile(r"^if __name__ == [\"']__main__[\"']", re.M)


def cli_commands() -> list[list[str]]:
    cmds = []
    for pkg in ("care_model", "store", "benchmarks"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            mod = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            if path.name == "__main__.py":
                cmds.append(["-m", mod.rsplit(".", 1)[0]])
            elif MAIN.search(path.read_text(encoding="utf-8")) and "vllm_worker" not in mod:
                cmds.append(["-m", mod])
    cmds.append(["annotate_app.py"])
    return cmds


def test_the_cli_list_covers_the_known_commands():
    names = {" ".join(c) for c in cli_commands()}
    assert {"-m care_model.jobs.predict", "-m care_model.jobs.retrain", "-m care_model.jobs.evaluate", "-m care_model.jobs.versions",
            "-m store", "annotate_app.py"} <= names, names


def _help(cmd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    return cmd, subprocess.run([sys.executable, *cmd, "--help"], cwd=ROOT, capture_output=True, text=True,
                               timeout=300, env=env)


def test_every_cli_help_works():
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_help, cli_commands()))
    failed = [(" ".join(cmd), out.returncode, out.stderr[-800:]) for cmd, out in results
              if out.returncode != 0 or "usage:" not in out.stdout.lower()]
    assert not failed, failed
