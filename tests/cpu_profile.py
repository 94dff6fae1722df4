"""A pytest plugin that records the CPU time each test costs, for keeping `make test` inside its budget.

Wall-clock durations on a shared 2-core machine say more about the neighbours than about the test;
CPU seconds (this process's user+system time, plus that of the child processes it has reaped:
trainers, CLI subprocesses, Chromium once its driver exits) are what the suite's budget is made of.

    CARE_CPU_PROFILE=/tmp/cpu.jsonl PYTHONPATH=tests .venv/bin/python -m pytest -p cpu_profile -m "not slow" -n 3
    .venv/bin/python tests/cpu_profile.py /tmp/cpu.jsonl      # the 25 costliest tests and modules

Setup and teardown are included (a module-scoped server is charged to the test that starts it).
"""
from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict

import pytest


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    out = os.environ.get("CARE_CPU_PROFILE")
    start, t0 = _cpu(), time.time()
    yield
    if out:
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"test": item.nodeid, "cpu_s": round(_cpu() - start, 2), "t0": round(t0, 2),
                                 "t1": round(time.time(), 2), "worker": os.environ.get("PYTEST_XDIST_WORKER", "")})
                     + "\n")


def summary(path: str, top: int = 25) -> str:
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    by_module: dict[str, float] = defaultdict(float)
    for r in rows:
        by_module[r["test"].split("::")[0]] += r["cpu_s"]
    total = sum(r["cpu_s"] for r in rows)
    lines = [f"{len(rows)} tests, {total:.0f} CPU s in pytest workers and their reaped children", "", "tests:"]
    lines += [f"{r['cpu_s']:8.1f}  {r['test']}" for r in sorted(rows, key=lambda r: -r["cpu_s"])[:top]]
    lines += ["", "modules:"]
    lines += [f"{s:8.1f}  {m}" for m, s in sorted(by_module.items(), key=lambda kv: -kv[1])[:top]]
    timed = [r for r in rows if "t0" in r]
    if timed:  # each worker's timeline: when it finished, and the modules it ran last (the run's tail)
        start = min(r["t0"] for r in timed)
        lines += ["", "workers (wall s from the first test's start):"]
        for w in sorted({r["worker"] for r in timed}):
            mine = sorted((r for r in timed if r["worker"] == w), key=lambda r: r["t0"])
            mods: dict[str, list] = {}
            for r in mine:
                m = mods.setdefault(r["test"].split("::")[0], [r["t0"], r["t1"]])
                m[1] = r["t1"]
            tail = sorted(mods.items(), key=lambda kv: kv[1][0])[-3:]
            lines.append(f"  {w or 'main'}: {len(mine)} tests, done at {mine[-1]['t1'] - start:.0f} s; last: "
                         + ", ".join(f"{m} ({a - start:.0f}-{b - start:.0f})" for m, (a, b) in tail))
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 25))
