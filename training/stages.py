"""Resumable pipelines: stages that write their outputs and a status file into one folder.

A run folder holds one sub-folder per stage with a ``status.json``
(:class:`StageStatus`): ``running`` while it works, ``done`` with a summary of its
outputs when it finished, ``failed`` with the error. Running the pipeline again skips
every ``done`` stage and continues with the first one that is not; a stage that was
interrupted is *not* wiped, so its own resume logic (append-only JSONL, trainer
checkpoints) picks up where it stopped.

Each status records a fingerprint of the options the stage depends on, chained with the
previous stage's: change the teacher and ``collect`` and everything after it run again;
change only the evaluation split and only ``eval`` and ``report`` do. ``start`` (the CLI's
``--from``) reruns from a named stage, ``force`` from the first one, wiping what they
redo.

``distill`` and ``rl`` share the rest of a run's scaffolding from here too: the run
folder (:func:`open_run`: ``<runs_root>/<kind>-<time>`` unless one is named, with the
run's options in ``config.json``), the progress callback (:data:`Announce`) and the
result type (:class:`PipelineResult`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from slmkit.training.config import DistillConfig, RlConfig
from slmkit.training.errors import TrainingError

__all__ = [
    "CONFIG_FILE",
    "Announce",
    "PipelineResult",
    "RunFolder",
    "Stage",
    "StageStatus",
    "fingerprint",
    "is_main_process",
    "new_run_dir",
    "open_run",
    "run_stages",
    "silent",
]

State = Literal["running", "done", "failed"]
Announce = Callable[[str, str], None]
"""Progress callback: ``announce(stage, message)``."""
CONFIG_FILE = "config.json"
"""The run's options, in its folder (what ``--config`` and the flags resolved to)."""
_Config = TypeVar("_Config", DistillConfig, RlConfig)


class StageStatus(BaseModel):
    """The ``status.json`` of one stage."""

    model_config = ConfigDict(extra="forbid")

    stage: str
    state: State
    fingerprint: str
    attempts: int = 0
    started: float | None = None
    finished: float | None = None
    wall_s: float = Field(0.0, description="seconds over all attempts")
    outputs: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Stage:
    """A named step: ``run(stage_dir)`` does the work and returns a JSON-able summary.

    ``depends`` are the options it reads (any JSON-able value); they make its fingerprint.
    An optional stage that is off (``enabled=False``) is left out of the fingerprint chain
    and, when it never ran, counts as done: turning on a new optional stage in a later
    version leaves the run folders of earlier versions resumable as they were.
    """

    name: str
    run: Callable[[Path], dict[str, Any]]
    depends: Any = None
    enabled: bool = True


def is_main_process() -> bool:
    """False on the other ranks of an ``accelerate launch``: they train, rank 0 records.

    Under a distributed launch every process runs the pipeline (so every rank takes part
    in the training stage); only rank 0 writes status files and wipes stage folders.
    """
    return os.environ.get("RANK", "0") == "0"


def silent(stage: str, message: str) -> None:
    """The :data:`Announce` of a run nobody watches."""


def new_run_dir(root: Path, kind: str) -> Path:
    """``<root>/<kind>-YYYYmmdd-HHMMSS`` (a suffix is added if it exists)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = root / f"{kind}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{kind}-{stamp}-{n}"
    return path


def open_run(config: _Config, kind: str) -> tuple[_Config, Path]:
    """The run's options with its folder filled in, and the folder, created.

    ``config.run_dir`` names a run to resume; without one a new ``<kind>-<time>`` folder
    is made under ``config.runs_root``. The options are written to ``config.json`` there
    (by the main process), so a run folder always says how it was made.
    """
    root = config.run_dir or new_run_dir(config.runs_root, kind)
    config = config.model_copy(update={"run_dir": root})
    root.mkdir(parents=True, exist_ok=True)
    if is_main_process():
        (root / CONFIG_FILE).write_text(config.model_dump_json(indent=1), encoding="utf-8")
    return config, root


class PipelineResult:
    """Where a staged run stands: its folder and the status of each stage that is done."""

    def __init__(self, run_dir: Path, stages: list[StageStatus]) -> None:
        self.run_dir = run_dir
        self.stages = stages

    @property
    def report(self) -> Path:
        return self.run_dir / "report.md"

    def outputs(self, stage: str) -> dict[str, Any]:
        """What ``stage`` returned (``{}`` when it is not done)."""
        return next((s.outputs for s in self.stages if s.stage == stage), {})

    def __repr__(self) -> str:
        done = ", ".join(s.stage for s in self.stages)
        return f"<{type(self).__name__} {self.run_dir} done: {done or 'nothing'}>"


def fingerprint(value: Any, previous: str = "") -> str:
    """A short stable hash of ``value`` chained with ``previous``."""
    blob = json.dumps(value, sort_keys=True, default=str) + previous
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class RunFolder:
    """A run folder and the status files of its stages."""

    def __init__(self, root: str | Path, stages: Sequence[str]) -> None:
        self.root = Path(root)
        self.stages = list(stages)

    def stage_dir(self, name: str) -> Path:
        return self.root / name

    def status(self, name: str) -> StageStatus | None:
        """The stage's status, or None when it never started."""
        path = self.stage_dir(name) / "status.json"
        if not path.is_file():
            return None
        try:
            return StageStatus.model_validate_json(path.read_text(encoding="utf-8"))
        except ValueError:
            return None  # a torn status file is a stage to run again

    def write(self, status: StageStatus) -> None:
        """Write a status atomically (a kill never leaves half a file); rank 0 only."""
        if not is_main_process():
            return
        folder = self.stage_dir(status.stage)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "status.json.tmp"
        tmp.write_text(status.model_dump_json(indent=1), encoding="utf-8")
        tmp.replace(folder / "status.json")

    def clear(self, name: str) -> None:
        if is_main_process():
            shutil.rmtree(self.stage_dir(name), ignore_errors=True)

    def overview(self) -> list[tuple[str, StageStatus | None]]:
        """Every stage with its status (None: not started), in order."""
        return [(name, self.status(name)) for name in self.stages]


def _index(stages: Sequence[Stage], name: str | None, what: str) -> int | None:
    if name is None:
        return None
    names = [s.name for s in stages]
    if name not in names:
        raise TrainingError(
            f"unknown stage {name!r} for {what}", hint=f"stages: {', '.join(names)}"
        )
    return names.index(name)


def run_stages(
    folder: RunFolder,
    stages: Sequence[Stage],
    *,
    start: str | None = None,
    until: str | None = None,
    force: bool = False,
    announce: Announce = silent,
) -> list[StageStatus]:
    """Run ``stages`` in ``folder``, resuming (see the module docs).

    Args:
        folder: the run folder.
        stages: the pipeline, in order.
        start: rerun from this stage (earlier ones must be done).
        until: stop after this stage.
        force: rerun every stage (from ``start`` when given, else from the first).
        announce: called with ``(stage, message)`` as stages start, skip or finish.

    Returns:
        The status of every stage that is done, in order.

    Raises:
        TrainingError: an unknown stage name, or ``start`` after an unfinished stage.
        Exception: whatever a stage raised (its status says ``failed``).
    """
    say = announce
    first = _index(stages, start, "--from")
    last = _index(stages, until, "--until")
    if force and first is None:
        first = 0
    prints: list[str] = []
    previous = ""
    for stage in stages:
        if stage.enabled:
            previous = fingerprint(stage.depends, previous)
        prints.append(previous)
    redo_from = first
    for i, stage in enumerate(stages):
        status = folder.status(stage.name)
        if redo_from is not None and i >= redo_from:
            break
        if status is None and not stage.enabled:
            continue  # off, and never ran: nothing to redo
        if status is None or status.state != "done" or status.fingerprint != prints[i]:
            changed = status is not None and status.fingerprint != prints[i]
            redo_from = i
            if first is not None and first > i:
                raise TrainingError(
                    f"cannot start at {stages[first].name!r}: {stage.name!r} is not done "
                    "(or its options changed)",
                    hint=f"run without --from, or with --from {stage.name}",
                )
            if changed:
                say(stage.name, "options changed since it ran: running it again")
                for later in stages[i:]:
                    folder.clear(later.name)
            break
    if first is not None:
        for later in stages[first:]:
            folder.clear(later.name)
    done: list[StageStatus] = []
    for i, stage in enumerate(stages):
        if last is not None and i > last:
            break
        status = folder.status(stage.name)
        if redo_from is None or i < redo_from:
            if status is None:  # an optional stage that is off and never ran
                continue
            say(stage.name, "done earlier: skipped")
            done.append(status)
            continue
        done.append(_run_one(folder, stage, prints[i], status, say))
    return done


def _run_one(
    folder: RunFolder,
    stage: Stage,
    print_: str,
    previous: StageStatus | None,
    say: Announce,
) -> StageStatus:
    attempts = previous.attempts if previous is not None else 0
    spent = previous.wall_s if previous is not None else 0.0
    status = StageStatus(
        stage=stage.name,
        state="running",
        fingerprint=print_,
        attempts=attempts + 1,
        started=time.time(),
        wall_s=spent,
    )
    folder.write(status)
    say(stage.name, "resuming" if attempts else "running")
    t0 = time.perf_counter()
    try:
        outputs = stage.run(folder.stage_dir(stage.name))
    except BaseException as exc:
        status.state, status.error = "failed", f"{type(exc).__name__}: {exc}"
        status.wall_s = round(spent + time.perf_counter() - t0, 3)
        status.finished = time.time()
        folder.write(status)
        raise
    status.state, status.outputs = "done", outputs
    status.wall_s = round(spent + time.perf_counter() - t0, 3)
    status.finished = time.time()
    folder.write(status)
    say(stage.name, f"done in {time.perf_counter() - t0:.0f}s")
    return status
