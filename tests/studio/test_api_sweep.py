"""The API sweep: every ``api_name`` of the running app (read from its API info, so a new endpoint
is covered automatically) is called as each role with wrong types, oversized text and other
users' resources. Each call must be refused with a clear message (the parameter or the problem,
and the fix; never a traceback), and the store's files must be byte-identical afterwards.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import time
from concurrent.futures import CancelledError as FutureCancelledError
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from studio_testing import password

ROLES = {"admin": "admin", "adj": "adjudicator", "ann": "annotator"}
FOREIGN_SID = "sample-en-01"  # assigned to bob only (shared)
DOUBLE_SID = "sample-en-02"  # bob and carol code it independently
BIG = "x" * 20_000  # over every text cap (the largest is 4,000)
FOREIGN: set = set()  # ids of other people's resources (filled by the fixture)

# What a well-typed call sends, by parameter name (values pointing at other people's resources).
VALID = {"session_id": FOREIGN_SID, "item": 1, "score": 3, "rationale": "ok", "evidence": [1], "change_reasons": [],
         "expected_version": 0, "expected_versions": {}, "scores_only": False, "job_id": "", "scope": "mine",
         "search": "", "order": "id", "name": "unassigned_visible", "value": True, "session_ids": [FOREIGN_SID],
         "usernames": ["ann"], "mode": "shared", "username": "bob", "password": "password-123", "role": "admin",
         "task_id": "", "scores": {"faithfulness": 3}, "comment": "", "choice": None, "submit": False,
         "systems": ["test-model"], "raters": ["ann"], "n_targets": 2, "overlap": 1, "sampling": "random",
         "strata": "dimension", "items": [1], "seed": 0, "status": "closed", "source": "", "recipe": "",
         "overrides": "", "run_id": "", "version_id": "test-model", "reason": "", "active": False,
         "fmt": "jsonl", "predict": False, "action": "", "user": "", "entity": "", "limit": 10,
         "show_ratings": None, "folds": 2, "subject": "active", "include_training_sessions": False,
         "allow_self_rating": False, "reveal_after_each": False}
# Endpoints a role may call successfully with the arguments above (reads that list only what the
# caller may see; checked for leaks below). Any other endpoint must refuse them.
MAY_SUCCEED = {
    "annotator": {"whoami", "list_queue", "eval_campaigns", "predict_status"},
    "adjudicator": {"whoami", "list_queue", "eval_campaigns", "predict_status", "open_session", "adjudication_queue",
                    "adjudication_view", "expert_agreement", "predict_session"},
}


def wrong_values(ptype: str) -> list:
    """Values of the wrong type for a parameter whose API type is ``ptype``."""
    if ptype.startswith("Literal") or "filepath" in ptype:
        return [12345]
    if ptype.endswith("int") or ptype == "int":
        return [3.5, True, "4"]
    if ptype == "bool":
        return ["yes"]
    if ptype.startswith("list") or ptype.startswith("None | list"):
        return ["x", [{"x": 1}]]
    if "dict" in ptype:
        return ["x"]
    if ptype == "str":
        return [None, 7]
    return [7]


def store_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def sweep(studio_server):
    repo = studio_server.repo
    repo.add_user("carol", "carol-pass-12", "annotator", actor="test")
    repo.assign([FOREIGN_SID], ["bob"], actor="test")
    repo.assign([DOUBLE_SID], ["bob", "carol"], actor="test", mode="independent")
    clients = {u: Client(studio_server.url, auth=(u, password(u)), verbose=False) for u in ROLES}
    upload = Path(repo.root).parent / "sweep-upload.jsonl"
    upload.write_text(json.dumps({"id": "sweep-new", "language": "en",
                                  "turns": [{"speaker": "client", "text": "hello"}]}) + "\n")
    camp = clients["admin"].predict("bob's campaign", ["test-model"], ["bob"], "rubric", 2, 1, "random", "dimension",
                                    [FOREIGN_SID], [1, 2], 0, api_name="/eval_create")
    info = clients["admin"].view_api(print_info=False, return_format="dict")["named_endpoints"]
    endpoints = {name.lstrip("/"): [(p["parameter_name"], p["python_type"]["type"]) for p in ep["parameters"]]
                 for name, ep in info.items()}
    foreign = {"campaign_id": camp["id"], "files": [handle_file(str(upload))]}

    def defaults_of(user):  # an adjudicator may edit shared sessions: theirs is a double-coded one
        return {**foreign, "session_id": DOUBLE_SID, "session_ids": [DOUBLE_SID]} if user == "adj" else foreign

    FOREIGN.update({FOREIGN_SID, camp["id"]})
    return repo, clients, endpoints, defaults_of


def args_for(params, defaults, override=None):
    override = override or {}
    return [override[n] if n in override else defaults.get(n, VALID.get(n, "")) for n, _ in params]


def call(client, api_name, args, tries: int = 3) -> str:
    try:
        result = client.predict(*args, api_name="/" + api_name)
    except AppError as err:
        return str(err)
    except (asyncio.CancelledError, FutureCancelledError):  # gradio_client's stream, shared by threads, dropped
        # the job (the asyncio or the concurrent.futures flavour, depending on where): send it again
        if tries > 1:
            return call(client, api_name, args, tries - 1)
        return "NOT AN AppError: cancelled three times"
    except Exception as err:  # noqa: BLE001 - reported below
        return f"NOT AN AppError: {type(err).__name__}: {err}"
    return f"NOT REFUSED: {str(result)[:300]}"


def clear(msg: str) -> bool:
    return "Fix:" in msg and "Traceback" not in msg and "invalid literal" not in msg and not msg.startswith("NOT ")


def planned_calls(endpoints, defaults_of):
    """(user, api_name, what, args, check) for every endpoint, role and bad argument."""
    plan = []
    for user, role in ROLES.items():
        defaults = defaults_of(user)
        for api_name, params in endpoints.items():
            for pname, ptype in params:
                component = ptype.startswith("Literal") or "filepath" in ptype
                bad = wrong_values(ptype) + ([BIG] if ptype in ("str", "None | str") else [])
                bad += [[BIG]] if ptype in ("list[str]", "None | list[str]") else []
                # the type check runs before the role check: other roles get one wrong value each
                for value in bad if role == "admin" or len(bad) <= 2 else [bad[0], bad[-1]]:
                    # refused, naming the parameter (a component input: the parameter or the value) and the fix
                    def check(msg, p=pname, c=component):
                        return (clear(msg) and (p in msg or c)
                                or c and "12345" in msg and not msg.startswith("NOT "))

                    plan.append((user, api_name, f"{pname}={value!r:.30}", args_for(params, defaults, {pname: value}),
                                 check))
            if role == "admin":
                continue
            if api_name in MAY_SUCCEED[role]:  # a refusal, or a result that shows nothing of theirs
                def check(msg):
                    return clear(msg) or msg.startswith("NOT REFUSED") and not (set(FOREIGN) & set(msg.split("'")))
            else:
                check = clear
            plan.append((user, api_name, "foreign", args_for(params, defaults), check))
    return plan


def test_every_endpoint_refuses_bad_input_and_foreign_resources_and_the_store_is_untouched(sweep, capfd):
    repo, clients, endpoints, defaults_of = sweep
    assert len(endpoints) >= 30 and {"save_draft", "eval_save", "adjudicate", "promote_version"} <= set(endpoints)
    before = store_digest(repo.root)
    plan = planned_calls(endpoints, defaults_of)
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda c: call(clients[c[0]], c[1], c[3]), plan))
    elapsed = time.monotonic() - t0
    problems = [(user, api, what, msg[:300]) for (user, api, what, _, check), msg in zip(plan, answers)
                if not check(msg)]
    assert not problems, "\n".join(map(str, problems[:40])) + f"\n({len(problems)} problems in {len(plan)} calls)"
    assert store_digest(repo.root) == before
    log = capfd.readouterr()
    assert "Traceback" not in log.out + log.err, (log.out + log.err)[-3000:]
    print(f"{len(plan)} calls in {elapsed:.1f} s")
    assert len(plan) > 300 and elapsed < 300, (len(plan), elapsed)  # 85 s at load 20, 167 s at load 25+ on 2 cores
