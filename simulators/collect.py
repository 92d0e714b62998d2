"""Trajectory collection: an agent over an environment's tasks, into resumable JSONL.

``collect(CollectConfig(env="math", agent="tool", model="llamacpp:smollm2", n=100,
out="runs.jsonl"))`` runs the agent on the first ``n`` tasks of the split and writes
one :class:`~slmkit.agents.Trajectory` per line. Two files:

* ``runs.jsonl``: the kept trajectories (what a trainer reads);
* ``runs.ledger.jsonl``: one line per *finished* task, kept or dropped, with why, the
  reward and the tokens/time/cost it took (what the summary and a resume read).

Both are :class:`~slmkit.simulators.jsonl.AppendLog`\\ s: each line is written with
one atomic append and fsync, so ``kill -9`` at any moment loses at most the task in
flight. Re-running the same command resumes: tasks in either file are skipped (a
trajectory whose ledger line was lost to the kill gets its ledger line back), so no task
is ever run twice or lost.

Filters (what makes a trajectory worth training on): ``keep="correct"`` keeps only
successful runs (env reward >= the env's success threshold); runs with an output that
failed to parse (``drop_parse_errors``), runs cut off by ``max_steps``
(``drop_max_steps``) and runs that raised are dropped; a run whose tool call failed but
which still succeeded is kept: recovering from a tool error is worth learning.

Rejection sampling (``samples=K``): up to K attempts per task, the first greedy, the
rest at ``sample_temperature`` with different seeds; the first one the environment
verifies is kept. Tokens, time and
cost of every attempt count in the summary.

Concurrency: ``workers`` episodes run at once (:class:`~slmkit.simulators.episodes.
TaskRunner`, an environment per thread), and the model, loaded for that many
(:func:`~slmkit.models.batching_options`), decodes their calls together. With
``backend="ray"`` the episodes run in Ray actors (:mod:`slmkit.simulators.ray_backend`).
Either way the results come back here and only this process writes the two files, so
the guarantees above do not depend on how the episodes ran. The summary reports this
run's throughput: episodes, model calls and generated tokens per second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from slmkit.agents import Trajectory
from slmkit.models import ChatModel
from slmkit.simulators.base import Task
from slmkit.simulators.episodes import (
    CollectConfig,
    TaskRunner,
    collect_workers,
    ledger_entry,
    load_agent_model,
)
from slmkit.simulators.errors import SimulationError
from slmkit.simulators.jsonl import AppendLog
from slmkit.simulators.registry import load_env

__all__ = ["CollectConfig", "CollectSummary", "collect", "ledger_path"]
# CollectConfig lives in slmkit.simulators.episodes (what each task runs, anywhere);
# it is listed here too, where users look for it.


class CollectSummary(BaseModel):
    """What a collection (or evaluation) produced, over all finished tasks of the file.

    The rates (``episodes_per_s``, ``calls_per_s``, ``tokens_per_s``) are this run's:
    its new tasks over its wall time (None when it had nothing left to run).
    """

    model_config = ConfigDict(extra="forbid")

    out: str
    ledger: str
    tasks: int = 0
    new: int = 0
    resumed: int = 0
    kept: int = 0
    dropped: dict[str, int] = Field(default_factory=dict)
    successes: int = 0
    success_rate: float | None = None
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    episode_s: float = 0.0
    elapsed_s: float = 0.0
    cost: float = 0.0
    cost_per_success: float | None = None
    repaired_bytes: int = 0
    model_calls: int = 0
    workers: int | None = None
    episodes_per_s: float | None = None
    calls_per_s: float | None = None
    tokens_per_s: float | None = None
    """Generated tokens per second."""

    def add(self, entry: dict[str, Any]) -> None:
        """Count one ledger entry."""
        self.tasks += 1
        if entry.get("kept"):
            self.kept += 1
        else:
            reason = str(entry.get("reason") or "dropped")
            self.dropped[reason] = self.dropped.get(reason, 0) + 1
        self.successes += int(bool(entry.get("success")))
        self.attempts += int(entry.get("attempts", 1))
        self.model_calls += int(entry.get("model_calls", 0))
        self.prompt_tokens += int(entry.get("prompt_tokens", 0))
        self.completion_tokens += int(entry.get("completion_tokens", 0))
        self.episode_s += float(entry.get("wall_s", 0.0))
        self.cost += float(entry.get("cost", 0.0))
        self.success_rate = self.successes / self.tasks
        self.cost_per_success = self.cost / self.successes if self.successes else None

    def throughput(self, fresh: CollectSummary, workers: int) -> None:
        """Set this run's rates: ``fresh`` counts its new tasks, over ``elapsed_s``."""
        self.workers = workers
        if fresh.tasks and self.elapsed_s > 0:
            self.episodes_per_s = round(fresh.tasks / self.elapsed_s, 4)
            self.calls_per_s = round(fresh.model_calls / self.elapsed_s, 4)
            self.tokens_per_s = round(fresh.completion_tokens / self.elapsed_s, 2)


def ledger_path(out: Path) -> Path:
    """The ledger next to ``out``: ``runs.jsonl`` -> ``runs.ledger.jsonl``."""
    return out.with_name(out.stem + ".ledger.jsonl")


class _Run:
    """The state of one collection: logs, finished ids, the summary; only it writes."""

    def __init__(self, cfg: CollectConfig) -> None:
        self.cfg = cfg
        self.out = AppendLog(cfg.out)
        self.ledger = AppendLog(ledger_path(cfg.out))
        self.summary = CollectSummary(out=str(cfg.out), ledger=str(self.ledger.path))
        self.fresh = CollectSummary(out=str(cfg.out), ledger=str(self.ledger.path))
        """This run's new entries only (its throughput)."""
        self.done: set[str] = set()
        self.lock = threading.Lock()

    def resume(self) -> None:
        """Read both logs, repair torn tails, restore lost ledger lines."""
        trajectories = self.out.recover()
        entries = self.ledger.recover()
        self.summary.repaired_bytes = self.out.repaired_bytes + self.ledger.repaired_bytes
        by_id = {str(e.get("task_id")): e for e in entries}
        for raw in trajectories:
            tid = str(raw.get("id"))
            if tid not in by_id:  # killed between the two appends: write the ledger line now
                traj = Trajectory.model_validate(raw)
                entry = ledger_entry(traj, [traj], None)
                self.ledger.append(entry)
                by_id[tid] = entry
        for tid, entry in by_id.items():
            if entry.get("reason") == "error" and self.cfg.retry_errors:
                continue
            self.done.add(tid)
            self.summary.add(entry)
        self.summary.resumed = len(self.done)

    def record(self, traj: Trajectory, entry: dict[str, Any]) -> dict[str, Any]:
        """Write a finished task: its trajectory (when kept), then its ledger line."""
        with self.lock:  # trajectory first: a kill between the two is repaired on resume
            if entry.get("kept"):
                self.out.append(traj.model_dump(mode="json"))
            self.ledger.append(entry)
            self.done.add(traj.id)
            self.summary.add(entry)
            self.summary.new += 1
            self.fresh.add(entry)
        return entry

    def close(self) -> None:
        self.out.close()
        self.ledger.close()


def collect(
    config: CollectConfig,
    *,
    model: ChatModel | None = None,
    tasks: Sequence[Task] | None = None,
    on_entry: Callable[[dict[str, Any]], None] | None = None,
) -> CollectSummary:
    """Run the collection ``config`` describes (resuming what its files hold).

    Args:
        config: what to run and where to write.
        model: a loaded model to use instead of loading ``config.model`` (local backend;
            Ray replicas load their own).
        tasks: run these tasks of ``config.env`` instead of its split's first ``n``
            (tasks written from verified runs, :mod:`slmkit.simulators.synth`).
        on_entry: called with each new ledger entry (progress hooks, tests).

    Returns:
        The summary over every finished task of the output (this run's and earlier ones),
        with this run's throughput.
    """
    started = time.perf_counter()
    workers = collect_workers(config)
    run = _Run(config)
    try:
        run.resume()
        tasks = _tasks(config) if tasks is None else _unique(list(tasks), config.env)
        todo = [t for t in tasks if str(t["id"]) not in run.done]
        with _progress(config, len(tasks), len(tasks) - len(todo), run.summary) as tick:

            def finished(traj: Trajectory, entry: dict[str, Any]) -> None:
                tick(run.record(traj, entry))
                if on_entry is not None:
                    on_entry(entry)

            if config.backend == "ray":
                from slmkit.simulators.ray_backend import run_on_ray

                for traj, entry in run_on_ray(config, todo, workers):
                    finished(traj, entry)
            else:
                if model is None:
                    model = load_agent_model(config, workers)
                runner = TaskRunner(config, model)
                try:
                    _run_threads(runner, todo, workers, finished)
                finally:
                    runner.close()
    finally:
        run.close()
    run.summary.elapsed_s = round(time.perf_counter() - started, 3)
    run.summary.throughput(run.fresh, workers * config.replicas)
    return run.summary


def _tasks(config: CollectConfig) -> list[Task]:
    catalog = load_env(config.env, split=config.split, **config.env_options)
    try:
        if config.n is None and getattr(catalog, "unbounded", False):
            raise SimulationError(
                f"{config.env} generates tasks without end; say how many",
                hint="pass n (on the command line: --limit N)",
            )
        tasks = list(catalog.tasks(config.split, limit=config.n))
    finally:
        catalog.close()
    return _unique(tasks, config.env)


def _unique(tasks: list[Task], env: str) -> list[Task]:
    """``tasks``, checked to have distinct ids (the files resume by id)."""
    ids = [str(t["id"]) for t in tasks]
    if len(set(ids)) != len(ids):
        raise SimulationError(
            f"duplicate task ids among the tasks of {env}",
            hint="each task needs its own id: a resumed collection skips the ids it finished",
        )
    return tasks


def _run_threads(
    runner: TaskRunner,
    todo: list[Task],
    workers: int,
    finished: Callable[[Trajectory, dict[str, Any]], None],
) -> None:
    """``workers`` episodes at a time (their model calls decode together)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        queue = iter(todo)
        running: set[Future[tuple[Trajectory, dict[str, Any]]]] = set()
        while True:
            while len(running) < workers * 2:
                task = next(queue, None)
                if task is None:
                    break
                running.add(pool.submit(runner.run, task))
            if not running:
                return
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                finished(*fut.result())


class _progress:
    """A rich progress bar with the live success rate (a no-op when disabled)."""

    def __init__(self, cfg: CollectConfig, total: int, done: int, summary: CollectSummary) -> None:
        self.cfg, self.total, self.done, self.summary = cfg, total, done, summary
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Callable[[dict[str, Any]], None]:
        if self.cfg.progress:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._bar.start()
            self._task = self._bar.add_task(
                f"{self.cfg.env} ({self.cfg.agent})",
                total=self.total,
                completed=self.done,
                status=self._status(),
            )
        return self.tick

    def _status(self) -> str:
        s = self.summary
        rate = "-" if s.success_rate is None else f"{100 * s.success_rate:.0f}%"
        return f"success {rate}  kept {s.kept}"

    def tick(self, entry: dict[str, Any]) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=1, status=self._status())

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
