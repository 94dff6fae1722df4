"""The house rules, checked statically: a static AST scan of ``care_model/``, ``store/`` and
``studio/`` (every import, module-level or inside a function, absolute or relative).

- no import cycles between files;
- ``care_model.core`` imports nothing of ours; ``store`` imports only ``care_model.core``;
- only ``care_model.jobs`` and ``care_model.cli`` import ``store``;
- ``care_model.text``, ``care_model.stats`` and ``care_model.insights`` import no
  torch/transformers/peft/accelerate, directly or through any module of ours they import;
- ``care_model.insights`` (statistics over plain records) imports of ours only ``care_model.core``,
  ``care_model.stats`` and ``care_model.report.plots``; its ``__main__`` alone reaches up, lazily, to
  ``care_model.jobs.insights`` (the command);
- the package order core < text < stats < inference < training < report < insights < interchange < jobs (< cli);
- every ``.py`` file at most 400 lines.

Failures name the file and line of the offending import.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("care_model", "store", "studio")
MAX_LINES = 400
HEAVY = ("torch", "transformers", "peft", "accelerate")
# care_model's packages in the order they may import each other: each imports only those before it.
ORDER = ("core", "text", "stats", "inference", "training", "report", "insights", "interchange", "jobs", "cli")
# care_model.insights may import only these of ours (pure: no torch, no store, no trainer code)
INSIGHTS_MAY_IMPORT = ("care_model.core", "care_model.stats", "care_model.report.plots", "care_model.insights")
# `python -m care_model.insights` runs the jobs module's command (a function-level import)
UPWARD_ALLOWED = {("care_model.insights.__main__", "care_model.jobs.insights")}


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported module, dotted (resolved to a module of ours where it is one)
    path: Path
    line: int

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@lru_cache(maxsize=None)
def _files() -> dict[str, Path]:
    files = {}
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            if ".venv" in path.parts or "__pycache__" in path.parts:
                continue
            files[_module_name(path)] = path
    return files


def _resolve(name: str) -> str:
    """The longest prefix of ``name`` that is one of our modules (``name`` itself if none is)."""
    files = _files()
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in files:
            return candidate
    return name


@lru_cache(maxsize=None)
def _imports() -> tuple[Import, ...]:
    files = _files()
    found = []
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found.append(Import(module, _resolve(alias.name), path, node.lineno))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                for alias in node.names:
                    # ``from pkg import mod`` imports a submodule when there is one of that name.
                    full = f"{prefix}.{alias.name}"
                    target = full if full in files else _resolve(prefix)
                    found.append(Import(module, target, path, node.lineno))
    return tuple(found)


def _ours(name: str) -> bool:
    return name in _files()


def _top(name: str) -> str:
    return name.split(".")[0]


def _package(name: str) -> str | None:
    """The care_model package (``core``, ``text``, ...) a module belongs to; None outside them."""
    parts = name.split(".")
    if parts[0] != "care_model" or len(parts) < 2:
        return None
    return parts[1]


def _edges() -> dict[str, list[Import]]:
    graph: dict[str, list[Import]] = {m: [] for m in _files()}
    for imp in _imports():
        if _ours(imp.target) and imp.target != imp.source:
            # Importing a package's submodule runs the package's __init__; those are trivial here
            # and are not counted as edges, or every submodule would cycle with its package.
            if imp.source.startswith(imp.target + "."):
                continue
            graph[imp.source].append(imp)
    return graph


def test_no_import_cycles_between_files():
    graph = _edges()
    state: dict[str, int] = {}
    stack: list[Import] = []
    cycles = []

    def visit(module: str) -> None:
        state[module] = 1
        for imp in graph[module]:
            nxt = imp.target
            if state.get(nxt) == 1:
                start = next(i for i, s in enumerate(stack + [imp]) if s.source == nxt)
                loop = (stack + [imp])[start:]
                cycles.append(" -> ".join(f"{s.source} ({s.where()})" for s in loop) + f" -> {nxt}")
            elif nxt not in state:
                stack.append(imp)
                visit(nxt)
                stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(dict.fromkeys(cycles))


def test_core_imports_nothing_of_ours():
    bad = [
        f"{i.where()}: {i.source} imports {i.target}"
        for i in _imports()
        if _package(i.source) == "core" and _top(i.target) in SCANNED and _package(i.target) != "core"
    ]
    assert not bad, "care_model.core must import nothing of ours:\n" + "\n".join(bad)


def test_store_imports_only_core():
    bad = [
        f"{i.where()}: {i.source} imports {i.target}"
        for i in _imports()
        if _top(i.source) == "store"
        and _top(i.target) in ("care_model", "studio")
        and _package(i.target) != "core"
        and i.target != "care_model"
    ]
    assert not bad, "store may import only care_model.core:\n" + "\n".join(bad)


def test_only_jobs_and_cli_import_store():
    bad = [
        f"{i.where()}: {i.source} imports {i.target}"
        for i in _imports()
        if _top(i.source) == "care_model" and _top(i.target) == "store" and _package(i.source) not in ("jobs", "cli")
    ]
    assert not bad, "only care_model.jobs and care_model.cli may import store:\n" + "\n".join(bad)


def test_care_model_package_order():
    bad = []
    for i in _imports():
        src, dst = _package(i.source), _package(i.target)
        if src is None or dst is None or src == dst or (i.source, i.target) in UPWARD_ALLOWED:
            continue
        if src not in ORDER or dst not in ORDER:
            bad.append(f"{i.where()}: {i.source} imports {i.target} (unknown package)")
        elif ORDER.index(dst) > ORDER.index(src):
            bad.append(f"{i.where()}: {i.source} ({src}) imports {i.target} ({dst}), which comes after it")
    assert not bad, f"care_model packages import only those before them ({' < '.join(ORDER)}):\n" + "\n".join(bad)


def _heavy_chains(module: str) -> list[str]:
    """Each way ``module`` reaches a heavy library, as a chain of ``file:line`` imports."""
    graph_all: dict[str, list[Import]] = {}
    for imp in _imports():
        graph_all.setdefault(imp.source, []).append(imp)
    chains = []
    seen = {module}
    frontier: list[tuple[str, list[Import]]] = [(module, [])]
    while frontier:
        current, path = frontier.pop()
        for imp in graph_all.get(current, []):
            if _top(imp.target) in HEAVY:
                chain = path + [imp]
                chains.append(" -> ".join(f"{s.where()} imports {s.target}" for s in chain))
            elif _ours(imp.target) and imp.target not in seen:
                seen.add(imp.target)
                frontier.append((imp.target, path + [imp]))
    return chains


PURE = sorted(m for m in _files() if _package(m) in ("text", "stats", "insights") and not m.endswith(".__main__"))


def test_insights_imports_only_core_stats_and_the_report_plots():
    bad = [
        f"{i.where()}: {i.source} imports {i.target}"
        for i in _imports()
        if _package(i.source) == "insights" and _top(i.target) in SCANNED
        and (i.source, i.target) not in UPWARD_ALLOWED
        and not any(i.target == m or i.target.startswith(m + ".") for m in INSIGHTS_MAY_IMPORT)
        and i.target != "care_model"
    ]
    assert not bad, ("care_model.insights may import only care_model.core, care_model.stats and "
                     "care_model.report.plots:\n" + "\n".join(bad))


@pytest.mark.parametrize("module", PURE)
def test_text_and_stats_reach_no_torch(module):
    chains = _heavy_chains(module)
    assert not chains, f"{module} reaches {'/'.join(HEAVY)}:\n" + "\n".join(dict.fromkeys(chains))


def test_every_file_at_most_400_lines():
    long = []
    for path in _files().values():
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES:
            long.append(f"{path.relative_to(ROOT)}: {n} lines")
    assert not long, f"files over {MAX_LINES} lines:\n" + "\n".join(sorted(long))


def test_importing_text_and_stats_leaves_torch_out():
    code = (
        "import importlib, sys\n"
        f"for name in {PURE!r}:\n"
        "    importlib.import_module(name)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{HEAVY!r})\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"importing text/stats loaded: {result.stdout.strip()[:500]}"
