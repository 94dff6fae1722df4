"""Every command-line entry point answers ``--help`` as a subprocess: exit 0, its usage line, nothing written.

The lists are discovered, not written down: ``care``'s commands are the job modules of
care_model/jobs/ plus ``app`` and ``store``, and every benchmarks/ module with an
``if __name__ == "__main__":`` block, so a new command is covered without touching this file.
Each help runs from an empty scratch folder as the working directory (the code is found through
PYTHONPATH), which must stay empty. ``care`` is the venv's console script when ``make setup``
installed it, else ``python -m care_model.cli``.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAIN = re.compile(r"^if __name__ == [\"']__main__[\"']", re.M)
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)


def care() -> list[str]:
    script = Path(sys.executable).with_name("care")
    return [str(script)] if script.exists() else [sys.executable, "-m", "care_model.cli"]


def job_commands() -> list[str]:
    """The modules of care_model/jobs/ with a ``main``: each is a ``care`` command."""
    return sorted(p.stem.replace("_", "-") for p in (ROOT / "care_model" / "jobs").glob("*.py")
                  if not p.name.startswith("_") and re.search(r"^def main\(", p.read_text(encoding="utf-8"), re.M))


def care_commands() -> list[str]:
    return ["app", *job_commands(), "store"]


def store_subcommands() -> list[str]:
    text = (ROOT / "store" / "__main__.py").read_text(encoding="utf-8")
    return re.findall(r"""\bcmd\(\s*["']([\w-]+)["']""", text)


def benchmark_modules() -> list[str]:
    return sorted(f"benchmarks.{p.stem}" for p in (ROOT / "benchmarks").glob("*.py")
                  if p.name != "__init__.py" and MAIN.search(p.read_text(encoding="utf-8")))


def _env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "GRADIO_ANALYTICS_ENABLED": "False"}


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, env=_env())


@pytest.fixture(scope="module")
def top_help(tmp_path_factory) -> str:
    out = _run([*care(), "--help"], tmp_path_factory.mktemp("care-help"))
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_the_command_lists_cover_the_known_commands():
    assert {"app", "predict", "retrain", "crossval", "evaluate", "report", "versions", "store"} <= set(care_commands())
    assert {"import", "export", "stats", "add-user", "set-role", "users", "audit", "assign"} <= set(store_subcommands())
    assert {"benchmarks.store", "benchmarks.inference", "benchmarks.app"} <= set(benchmark_modules())


def test_care_help_lists_every_command_with_one_line(top_help):
    listed = dict(re.findall(r"^  ([\w-]+)\s{2,}(\S.*)$", top_help, re.M))
    assert set(care_commands()) <= set(listed), (care_commands(), top_help)
    # The store's line names each of its tools.
    assert all(sub in listed["store"] for sub in store_subcommands()), listed["store"]


def test_care_help_imports_neither_torch_nor_gradio(tmp_path):
    code = ("import sys, runpy; sys.argv = ['care', '--help'];\n"
            "try:\n    runpy.run_module('care_model.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'gradio', 'transformers'))\n"
            "assert not heavy, heavy\n")
    out = _run([sys.executable, "-c", code], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]


def test_an_unknown_command_names_the_choices(tmp_path):
    out = _run([*care(), "predcit"], tmp_path)
    assert out.returncode == 2
    assert "unknown command 'predcit'" in out.stderr and "Did you mean 'predict'?" in out.stderr
    assert all(name in out.stderr for name in care_commands()), out.stderr


def _helps() -> list[tuple[str, list[str], str]]:
    """(name, command line, the usage line it must print)."""
    cases = [(f"care {name}", [*care(), name, "--help"], f"usage: care {name}") for name in care_commands()]
    cases += [(f"care store {sub}", [*care(), "store", sub, "--help"], f"usage: care store {sub}")
              for sub in store_subcommands()]
    cases.append(("python -m store", [sys.executable, "-m", "store", "--help"], "usage: care store"))  # same tool
    cases.append(("annotate_app.py", [sys.executable, str(ROOT / "annotate_app.py"), "--help"],
                  "usage: python annotate_app.py"))
    cases += [(mod, [sys.executable, "-m", mod, "--help"], "usage:") for mod in benchmark_modules()]
    return cases


def test_every_help_works_from_an_empty_folder(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    cases = _helps()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda case: _run(case[1], scratch), cases))
    failed = [(name, out.returncode, out.stdout[:200], out.stderr[-800:])
              for (name, _, usage), out in zip(cases, results)
              if out.returncode != 0 or usage not in out.stdout]
    assert not failed, failed
    assert not list(scratch.iterdir()), "a --help wrote into its working directory"


def test_every_care_line_in_the_readme_names_a_command():
    commands = set(care_commands()) | {"--help", "-h"}
    lines = [line.strip() for block in FENCE.findall((ROOT / "README.md").read_text(encoding="utf-8"))
             for line in block.splitlines() if line.strip().startswith("care ")]
    assert lines, "the README shows no care command"
    unknown = [line for line in lines if line.split()[1] not in commands]
    assert not unknown, unknown
    stores = [line.split()[2] for line in lines if line.split()[1] == "store" and len(line.split()) > 2]
    assert set(stores) <= set(store_subcommands()), stores
