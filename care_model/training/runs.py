"""Training run folders and their progress events: what the trainer writes and the app reads.

Layout of a run folder (``<store>/runs/<run_id>/`` or ``--output-dir``)::

    config.json          the resolved RetrainConfig (written when the run is prepared)
    snapshot.jsonl       the curated snapshot (care_model.text.curation), with its content hash
    baseline.json        the version the candidate is compared with (id, base, adapter)
    split.json           train / validation sessions and clients
    progress.jsonl       one JSON event per line (below), appended and flushed by the main process
    train.log            stdout + stderr of the training process (when the app launched it)
    checkpoints/step-N/  resumable state (adapter, optimizer, scheduler, RNG, step)
    adapter/             the LoRA adapter (peft save_pretrained) + tokenizer
    run.json             resolved config, data hash, split, metrics, timings, code commit, status
    CANCEL               present = please stop (the trainer checks it every step)

Events (every line has ``event`` and ``time``, seconds since the epoch)::

    {"event": "start", "run_id", "total_steps", "start_step", "n_train", "n_validation", "world_size", "data_hash"}
    {"event": "step", "step", "total_steps", "loss", "lr", "elapsed_s", "eta_s", "epoch", "tokens"}
    {"event": "eval", "step", "validation_loss", ...}            (validation answer-token loss)
    {"event": "checkpoint", "step", "path"}
    {"event": "evaluation", "metrics": {...}}                     (candidate vs baseline, at the end)
    {"event": "done", "adapter", "run_json", "elapsed_s"}
    {"event": "cancelled", "step", "checkpoint"}
    {"event": "error", "message"}

Pure module (no torch): the app imports it to follow a run.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

RUN_FILES = {
    "config": "config.json", "snapshot": "snapshot.jsonl", "baseline": "baseline.json", "split": "split.json",
    "progress": "progress.jsonl", "log": "train.log", "checkpoints": "checkpoints", "adapter": "adapter",
    "run": "run.json", "cancel": "CANCEL",
}
TERMINAL_EVENTS = ("done", "cancelled", "error")


def run_path(run_dir: Path | str, what: str) -> Path:
    return Path(run_dir) / RUN_FILES[what]


def write_json(path: Path | str, data) -> Path:
    """Write JSON atomically (temp file + rename), UTF-8, readable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    tmp.replace(path)
    return path


def read_json(path: Path | str, default=None):
    path = Path(path)
    if not path.is_file():
        return default
    return json.loads(path.read_text(encoding="utf-8"))


class ProgressWriter:
    """Appends events to ``progress.jsonl``, one flushed line each. A no-op when ``enabled`` is False
    (the non-main processes of a distributed run)."""

    def __init__(self, run_dir: Path | str, enabled: bool = True):
        self.path = run_path(run_dir, "progress")
        self.enabled = enabled
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, event: str, **fields) -> dict:
        row = {"event": event, "time": round(time.time(), 3), **fields}
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
                fh.flush()
        return row


def read_events(run_dir: Path | str) -> list[dict]:
    """All events so far (a torn last line, being written right now, is skipped)."""
    path = run_path(run_dir, "progress")
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


@dataclass
class RunProgress:
    """A summary of a run's events for a progress display."""

    status: str = "pending"               # pending | running | done | cancelled | error
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    lr: float | None = None
    elapsed_s: float = 0.0
    eta_s: float | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)           # training loss curve
    validation_losses: list[tuple[int, float]] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    message: str = ""
    events: int = 0

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_EVENTS


def summarize(events: list[dict]) -> RunProgress:
    p = RunProgress(events=len(events))
    for ev in events:
        kind = ev.get("event")
        if kind == "start":
            p.status, p.total_steps = "running", int(ev.get("total_steps", 0))
            p.step = int(ev.get("start_step", 0))
            p.message = ""
        elif kind == "step":
            p.step, p.total_steps = int(ev["step"]), int(ev.get("total_steps", p.total_steps))
            p.loss, p.lr = ev.get("loss"), ev.get("lr")
            p.elapsed_s, p.eta_s = float(ev.get("elapsed_s", 0.0)), ev.get("eta_s")
            if p.loss is not None:
                p.losses = [pt for pt in p.losses if pt[0] < p.step] + [(p.step, float(p.loss))]
        elif kind == "eval" and ev.get("validation_loss") is not None:
            p.validation_losses.append((int(ev.get("step", 0)), float(ev["validation_loss"])))
        elif kind == "evaluation":
            p.metrics = ev.get("metrics", {})
            p.message = "evaluated"
        elif kind == "stage":
            p.message = str(ev.get("message", ""))
        elif kind in TERMINAL_EVENTS:
            p.status = kind
            p.message = str(ev.get("message", "")) if kind == "error" else kind
            p.elapsed_s = float(ev.get("elapsed_s", p.elapsed_s) or p.elapsed_s)
    return p


def read_progress(run_dir: Path | str) -> RunProgress:
    return summarize(read_events(run_dir))


def request_cancel(run_dir: Path | str, who: str = "") -> Path:
    """Ask a running trainer to stop: it saves a checkpoint, writes a 'cancelled' event and exits."""
    path = run_path(run_dir, "cancel")
    path.write_text(json.dumps({"at": time.time(), "by": who}), encoding="utf-8")
    return path


def cancel_requested(run_dir: Path | str) -> bool:
    return run_path(run_dir, "cancel").exists()


def clear_cancel(run_dir: Path | str) -> None:
    try:
        run_path(run_dir, "cancel").unlink()
    except FileNotFoundError:
        pass


def last_checkpoint(run_dir: Path | str) -> Path | None:
    """The newest complete checkpoint (``checkpoints/step-N`` with ``state.json``), or None."""
    folder = run_path(run_dir, "checkpoints")
    if not folder.is_dir():
        return None
    done = [p for p in folder.glob("step-*") if (p / "state.json").is_file()]
    return max(done, key=lambda p: int(p.name.split("-", 1)[1]), default=None)
