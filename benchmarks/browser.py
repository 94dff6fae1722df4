"""The review screen's speed in Debian's Chromium (Playwright), as an expert meets it (issue 20).

Builds a scratch store outside the repository (a temporary folder): the 23 sample sessions with
their shipped predictions, and the longest AnnoMI session (598 turns) imported from
``/work/shared/data/annomi/AnnoMI-simple.csv`` with the AnnoMI importer (``--annomi PATH``; when
the file is absent the benchmark says so and measures the sample session only; the data is
never copied into the repository), with readable suggestions that quote it. Both sessions are
expert-judged (scores editable) and assigned to one annotator. The app runs as its own process,
the code ``make app`` runs (``annotate_app.py --store DIR --port P``, login on); the browser is
``/usr/bin/chromium`` at 1440x900. Medians of ``--repeat`` (default 10) of:

* ``first_paint``: login submitted (fresh browser context) -> the queue with its counts painted, as
  the annotator (the clinician reviewing; the target); ``first_paint_admin``: the same as an admin,
  whose page also holds the five staff tabs (an annotator's leaves them out: studio.role_view);
* ``open``: "Open" clicked -> the session's header, transcript, item list and the open item's
  card painted (the two sessions alternate, so every open replaces the other session);
* ``switch``: key ``j`` -> the next item's card painted (since issue 20's one card: a request that
  fills the card; before, a CSS switch between twelve cards built at the open);
* ``save``: a score key (1-5) on the open item -> the status line says it was saved;
* ``reload``: the page reloaded -> the session it had open painted again.

Each sample is taken to the next animation frame after the condition holds (painted, not only in
the DOM). Also recorded: requests per open (``queue/join`` posts), the DOM size, and the load
average before, during (per measure) and after: the machine is shared, so every figure is read
beside it.

    python -m benchmarks.browser --json                 # the full benchmark (a few minutes)
    python -m benchmarks.browser --json --repeat 3      # a quick run
    python -m benchmarks.browser --json --app-root ../main   # another checkout's app (before/after)

Targets (issue 20): median open <= 800 ms and first paint <= 1500 ms, both sessions.
Not part of the test suite (it takes minutes and its figures depend on the machine's load).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANNOMI = Path("/work/shared/data/annomi/AnnoMI-simple.csv")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ADMIN, ADMIN_PW = "bench-admin", "bench-admin-password-1"
USER, USER_PW = "bench-ann", "bench-ann-password-1"
TARGETS = {"open_ms": 800, "first_paint_ms": 1500}
VIEWPORT = {"width": 1440, "height": 900}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def quoting_predictions(session, model_version: str = "bench-model") -> list:
    """Readable suggestions for the 12 items that quote a few words of a client turn."""
    from care_model.core.records import Prediction

    rng = random.Random(session.id)
    client = [t for t in session.turns if t.speaker == "client"] or list(session.turns)
    out = []
    for item in range(1, 13):
        turn = rng.choice(client)
        words = re.findall(r"\S+", turn.text)
        start = rng.randrange(max(1, len(words) - 6))
        quote = re.sub(r"[\"“”]", "", " ".join(words[start:start + 6])).strip("'‘’,.;:!?() ")
        score = rng.randint(1, 5)
        probs = [0.1] * 5
        probs[score - 1] = 0.6
        out.append(Prediction(id=f"{session.id}|{model_version}|{item}", session_id=session.id, item=item,
                              model_version=model_version, score=score,
                              expected_score=sum((k + 1) * p for k, p in enumerate(probs)), probs=probs,
                              rationale=f'The client says "{quote}", which suggests this.', evidence=[turn.index],
                              prompt_hash="bench"))
    return out


def build_store(root: Path, annomi: Path) -> dict:
    """The scratch store; returns {name: (session id, turns)} of the sessions measured."""
    from care_model.core.records import SHARED  # noqa: F401 (the records module loads the form)
    from store import Repository
    from store.formats import read_files
    from studio.bootstrap import ensure_admin, import_samples

    repo = Repository(root)
    try:
        import_samples(repo)
        ensure_admin(repo, ADMIN, ADMIN_PW)
        repo.add_user(USER, USER_PW, "annotator", actor=ADMIN)
        sessions = [repo.get_session(s) for s in repo.session_ids()]
        largest = max(sessions, key=lambda s: (len(s.turns), sum(len(t.text) for t in s.turns)))
        picked = {"largest_sample": (largest.id, len(largest.turns))}
        if annomi.is_file():
            batch = read_files([annomi], "annomi")
            longest = max(batch.sessions, key=lambda s: len(s.turns))
            repo.add_sessions([longest])
            repo.add_predictions(quoting_predictions(longest))
            picked["annomi_longest"] = (longest.id, len(longest.turns))
        ids = [sid for sid, _ in picked.values()]
        for sid in ids:
            repo.collection("curation_modes").put({"id": sid, "mode": "expert_judged", "show_ratings": True},
                                                  actor=ADMIN)
        repo.assign(ids, [USER], actor=ADMIN)
        return picked
    finally:
        repo.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(store: Path, port: int, root: Path = ROOT) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.Popen([sys.executable, str(root / "annotate_app.py"), "--store", str(store), "--port", str(port)],
                            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the app exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return proc
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise SystemExit("the app did not start in 300 s")


PAINTED = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))"
QUEUE_READY = ("() => (document.querySelector('#care-counts') || {}).textContent?.includes('sessions') && "
               "document.querySelectorAll('#care-table tbody tr').length > 0")


# The card showing the open item: ``#care-card[data-item=N]`` (one card, issue 20), or ``#card-N``
# in checkouts from before it (twelve cards), so that ``--app-root`` can measure either.
SHOWN_CARD = """const shownCard = () => {
  const n = document.body.dataset.careItem, one = document.getElementById('care-card');
  if (one) return one.dataset.item === n ? one : null;
  return document.getElementById('card-' + n);
};"""


def session_ready(sid: str) -> str:
    """The session's header, first turn, 12 list rows and the open item's card are shown."""
    return f"""() => {{
      {SHOWN_CARD}
      const h = document.querySelector('#care-sess-head');
      if (!h || !h.textContent.includes({json.dumps(sid)})) return false;
      if (document.body.dataset.careSession !== 'open' || !document.querySelector('#care-turn-0')) return false;
      if (document.querySelectorAll('#care-list .care-row').length !== 12) return false;
      const c = shownCard();
      const st = document.querySelector('#care-status');
      return !!(c && c.offsetParent && c.querySelector('.care-model') && st &&
                st.textContent.includes({json.dumps(sid)}));
    }}"""


def timed(page, action, condition: str, timeout_ms: int = 60_000) -> float:
    t = time.perf_counter()
    action()
    page.wait_for_function(condition, polling="raf", timeout=timeout_ms)
    page.evaluate(PAINTED)
    return (time.perf_counter() - t) * 1000


def login(page, url: str, user: str = USER, pw: str = USER_PW) -> float:
    page.goto(url)
    page.fill("input[type=text]", user)
    page.fill("input[type=password]", pw)
    return timed(page, lambda: page.keyboard.press("Enter"), QUEUE_READY)


def open_session(page, sid: str, joins: list) -> tuple[float, int]:
    if not page.is_visible("#care-open-id textarea"):
        page.click("#care-queue button.label-wrap")
    page.fill("#care-open-id textarea", sid)
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.wait_for_timeout(300)  # events of the typing settle (none should be pending)
    n0 = len(joins)
    ms = timed(page, lambda: page.click("#care-open"), session_ready(sid))
    page.wait_for_timeout(300)  # requests the open chains after it count too
    return ms, len(joins) - n0


def switch_item(page) -> float:
    now = page.evaluate("() => parseInt(document.body.dataset.careItem || '1', 10)")
    nxt = now % 12 + 1
    if nxt == 1:  # wrap around without a key (j stops at the last item)
        page.evaluate("() => window.careOpenItem(1)")
        page.wait_for_function("() => document.body.dataset.careItem === '1'", polling="raf")
        return switch_item(page)
    cond = (f"() => {{ {SHOWN_CARD} const c = shownCard(); return document.body.dataset.careItem === '{nxt}' "
            "&& !!(c && c.offsetParent); }")
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    return timed(page, lambda: page.keyboard.press("j"), cond)


def save_score(page) -> float:
    item = page.evaluate("() => parseInt(document.body.dataset.careItem || '1', 10)")
    cur = page.evaluate(f"() => {{ const r = document.querySelector('#care-score input:checked, #score-{item} "
                        "input:checked'); return r ? parseInt(r.value, 10) : 0; }")
    new = cur % 5 + 1
    before = page.evaluate("() => (document.querySelector('#care-status') || {}).textContent || ''")
    cond = (f"() => {{ const t = (document.querySelector('#care-status') || {{}}).textContent || '';"
            f" return t !== {json.dumps(before)} && /Saved item {item} /.test(t); }}")
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    return timed(page, lambda: page.keyboard.press(str(new)), cond)


def reload(page, sid: str) -> float:
    return timed(page, lambda: page.reload(wait_until="commit"), session_ready(sid), timeout_ms=120_000)


def summary(values: list[float]) -> dict:
    return {"median_ms": round(statistics.median(values), 1), "min_ms": round(min(values), 1),
            "max_ms": round(max(values), 1), "samples_ms": [round(v, 1) for v in values]}


def measure(url: str, sessions: dict, repeat: int) -> dict:
    from playwright.sync_api import sync_playwright

    out = {"first_paint": [], "first_paint_admin": [],
           "per_session": {n: {k: [] for k in ("open", "switch", "save", "reload")} for n in sessions},
           "requests_per_open": {n: [] for n in sessions},
           "dom_nodes": {}, "load_average": {}}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            out["load_average"]["first_paint"] = load_average()
            for _ in range(repeat):
                ctx = browser.new_context(viewport=VIEWPORT)
                out["first_paint"].append(login(ctx.new_page(), url))
                ctx.close()
            out["load_average"]["first_paint_admin"] = load_average()
            for _ in range(repeat):  # an admin's page has every tab (an annotator's leaves the staff tabs out)
                ctx = browser.new_context(viewport=VIEWPORT)
                out["first_paint_admin"].append(login(ctx.new_page(), url, ADMIN, ADMIN_PW))
                ctx.close()
            ctx = browser.new_context(viewport=VIEWPORT)
            page = ctx.new_page()
            page.set_default_timeout(120_000)
            joins: list = []
            page.on("request", lambda r: joins.append(r.url) if "/queue/join" in r.url else None)
            login(page, url)
            names = list(sessions)
            out["load_average"]["open"] = load_average()
            for k in range(repeat * len(names) + 1):  # the first open warms up and is not counted
                name = names[k % len(names)]
                ms, n = open_session(page, sessions[name][0], joins)
                if k:
                    out["per_session"][name]["open"].append(ms)
                    out["requests_per_open"][name].append(n)
            for name in names:
                sid = sessions[name][0]
                open_session(page, sid, joins)
                out["dom_nodes"][name] = page.evaluate("() => document.getElementsByTagName('*').length")
                out["load_average"][f"switch+save {name}"] = load_average()
                for _ in range(repeat):
                    out["per_session"][name]["switch"].append(switch_item(page))
                for _ in range(repeat):
                    out["per_session"][name]["save"].append(save_score(page))
                page.wait_for_timeout(2500)  # the autosave timer goes idle
                out["load_average"][f"reload {name}"] = load_average()
                for _ in range(repeat):
                    out["per_session"][name]["reload"].append(reload(page, sid))
            ctx.close()
        finally:
            browser.close()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.browser", description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--annomi", type=Path, default=ANNOMI, help="AnnoMI-simple.csv (absent: sample session only)")
    ap.add_argument("--app-root", type=Path, default=ROOT,
                    help="the checkout whose app is measured (e.g. another worktree, for a before/after pair)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    before = load_average()
    with tempfile.TemporaryDirectory(prefix="care-bench-browser-") as tmp:
        store = Path(tmp) / "store"
        sessions = build_store(store, args.annomi)
        port = free_port()
        proc = start_app(store, port, args.app_root.resolve())
        try:
            raw = measure(f"http://127.0.0.1:{port}/", sessions, args.repeat)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    fp = summary(raw["first_paint"])
    res = {"app_root": str(args.app_root), "browser": CHROMIUM, "viewport": VIEWPORT, "repeat": args.repeat,
           "annomi": str(args.annomi) if args.annomi.is_file() else f"absent ({args.annomi}): sample session only",
           "sessions": {n: {"id": sid, "turns": turns} for n, (sid, turns) in sessions.items()},
           "first_paint": fp, "first_paint_admin": summary(raw["first_paint_admin"]), "per_session": {},
           "requests_per_open": {}, "dom_nodes": raw["dom_nodes"]}
    ok = {"first_paint<=1500ms": fp["median_ms"] <= TARGETS["first_paint_ms"]}
    for name, m in raw["per_session"].items():
        res["per_session"][name] = {k: summary(v) for k, v in m.items()}
        res["requests_per_open"][name] = sorted(set(raw["requests_per_open"][name]))
        ok[f"open<=800ms {name}"] = res["per_session"][name]["open"]["median_ms"] <= TARGETS["open_ms"]
    res["targets"] = ok
    res["load_average_before"], res["load_average_during"] = before, raw["load_average"]
    res["load_average_after"] = load_average()
    if args.json:
        print(json.dumps(res))
    else:
        print(f"load average before {before}, after {res['load_average_after']}")
        print(f"first paint: median {fp['median_ms']} ms (an admin's page: {res['first_paint_admin']['median_ms']} ms)")
        for name, m in res["per_session"].items():
            print(f"{name} ({res['sessions'][name]['id']}, {res['sessions'][name]['turns']} turns): "
                  + ", ".join(f"{k} {v['median_ms']} ms" for k, v in m.items()))
        print("targets:", ok)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
