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

Rejection sampling (``samples=K``): up to K attempts per task at ``sample_temperature``
with different seeds; the first one the environment verifies is kept. Tokens, time and
cost of every attempt count in the summary.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from slmkit.agents import TokenPrice, Trajectory
from slmkit.models import DEFAULT_SPEC, ChatModel, load_model, parse_spec
from slmkit.simulators.base import Environment, Task
from slmkit.simulators.errors import SimulationError
from slmkit.simulators.jsonl import AppendLog
from slmkit.simulators.registry import load_env
from slmkit.simulators.runner import AgentKind, run_episode

__all__ = ["CollectConfig", "CollectSummary", "collect", "ledger_path"]


class CollectConfig(BaseModel):
    """Everything a collection run needs (each CLI flag of ``agentctl collect`` is a field)."""

    model_config = ConfigDict(extra="forbid")

    env: str = Field(description="environment name, e.g. math, bfcl:simple, tau2-retail")
    env_options: dict[str, Any] = Field(
        default_factory=dict, description="options of the environment (e.g. user_model)"
    )
    split: str = Field(default="train", description="task split")
    n: int | None = Field(default=None, ge=1, description="the first n tasks of the split")
    agent: AgentKind = Field(default="tool", description="tool | code | rag | gold")
    model: str = Field(default=DEFAULT_SPEC, description="model spec of the agent")
    model_options: dict[str, Any] = Field(
        default_factory=dict, description="backend options, e.g. {'n_ctx': 8192}"
    )
    agent_options: dict[str, Any] = Field(
        default_factory=dict, description="AgentConfig fields, e.g. {'max_steps': 4}"
    )
    samples: int = Field(default=1, ge=1, description="attempts per task (rejection sampling)")
    sample_temperature: float = Field(
        default=0.7, gt=0, description="temperature of attempts when samples > 1"
    )
    seed: int = Field(default=0, description="seed of the first attempt (attempt i uses seed + i)")
    first_thought_prefix: str | None = Field(
        default=None, description="text the agent's first thought starts with (a teacher's plan)"
    )
    out: Path = Field(default=Path("runs.jsonl"), description="output JSONL of kept trajectories")
    keep: Literal["all", "correct"] = Field(default="correct", description="all | correct")
    drop_parse_errors: bool = Field(default=True, description="drop runs with an unparsable output")
    drop_max_steps: bool = Field(default=True, description="drop runs cut off by max_steps")
    drop_errors: bool = Field(default=True, description="drop runs that raised (kept by eval)")
    retry_errors: bool = Field(default=False, description="on resume, run again tasks that raised")
    workers: int | None = Field(
        default=None, ge=1, description="concurrent episodes (default: 8 for openai: specs, else 1)"
    )
    price_prompt: float = Field(default=0.0, ge=0, description="price per 1M prompt tokens")
    price_completion: float = Field(default=0.0, ge=0, description="price per 1M completion tokens")
    progress: bool = Field(default=True, description="show a progress bar")


class CollectSummary(BaseModel):
    """What a collection (or evaluation) produced, over all finished tasks of the file."""

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
        self.prompt_tokens += int(entry.get("prompt_tokens", 0))
        self.completion_tokens += int(entry.get("completion_tokens", 0))
        self.episode_s += float(entry.get("wall_s", 0.0))
        self.cost += float(entry.get("cost", 0.0))
        self.success_rate = self.successes / self.tasks
        self.cost_per_success = self.cost / self.successes if self.successes else None


def ledger_path(out: Path) -> Path:
    """The ledger next to ``out``: ``runs.jsonl`` -> ``runs.ledger.jsonl``."""
    return out.with_name(out.stem + ".ledger.jsonl")


def _reason(traj: Trajectory, cfg: CollectConfig) -> str | None:
    """Why a trajectory is dropped, or None to keep it."""
    meta, metrics = traj.meta, traj.metrics
    if meta.get("error") and cfg.drop_errors:
        return "error"
    if cfg.keep == "correct" and not meta.get("success"):
        return "incorrect"
    if cfg.drop_parse_errors and int(metrics.get("valid_outputs", 0)) < int(
        metrics.get("outputs", 0)
    ):
        return "parse_error"
    if cfg.drop_max_steps and meta.get("stopped") == "max_steps" and not meta.get("ended"):
        return "max_steps"
    return None


def _entry(traj: Trajectory, attempts: list[Trajectory], reason: str | None) -> dict[str, Any]:
    def total(key: str) -> float:
        return sum(float(t.metrics.get(key) or 0.0) for t in attempts)

    return {
        "task_id": traj.id,
        "kept": reason is None,
        "reason": reason,
        "reward": traj.reward,
        "success": bool(traj.meta.get("success")),
        "stopped": traj.meta.get("stopped"),
        "error": traj.meta.get("error"),
        "attempts": len(attempts),
        "prompt_tokens": int(total("prompt_tokens")),
        "completion_tokens": int(total("completion_tokens")),
        "wall_s": round(total("wall_s"), 6),
        "cost": total("cost"),
    }


def _workers(cfg: CollectConfig) -> int:
    if cfg.workers is not None:
        return cfg.workers
    if cfg.agent == "gold":
        return 1
    backend, _ = parse_spec(cfg.model)
    return 8 if backend == "openai" else 1


class _Run:
    """The state of one collection: logs, finished ids, per-thread environments."""

    def __init__(self, cfg: CollectConfig, model: ChatModel | None) -> None:
        self.cfg = cfg
        self.model = model
        self.out = AppendLog(cfg.out)
        self.ledger = AppendLog(ledger_path(cfg.out))
        self.summary = CollectSummary(out=str(cfg.out), ledger=str(self.ledger.path))
        self.done: set[str] = set()
        self._local = threading.local()
        self._envs: list[Environment] = []
        self._envs_lock = threading.Lock()
        self.lock = threading.Lock()

    def make_env(self) -> Environment:
        env = load_env(self.cfg.env, split=self.cfg.split, **self.cfg.env_options)
        with self._envs_lock:
            self._envs.append(env)
        return env

    def env(self) -> Environment:
        env = getattr(self._local, "env", None)
        if env is None:
            env = self._local.env = self.make_env()
        return env

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
                entry = _entry(traj, [traj], None)
                self.ledger.append(entry)
                by_id[tid] = entry
        for tid, entry in by_id.items():
            if entry.get("reason") == "error" and self.cfg.retry_errors:
                continue
            self.done.add(tid)
            self.summary.add(entry)
        self.summary.resumed = len(self.done)

    def agent_options(self, attempt: int) -> dict[str, Any]:
        cfg = self.cfg
        opts = dict(cfg.agent_options)
        opts["seed"] = cfg.seed + attempt
        if cfg.samples > 1:
            opts["temperature"] = cfg.sample_temperature
        if cfg.first_thought_prefix:
            opts["first_thought"] = cfg.first_thought_prefix
        if (cfg.price_prompt or cfg.price_completion) and self.model is not None:
            price = TokenPrice(prompt=cfg.price_prompt, completion=cfg.price_completion)
            opts.setdefault("prices", {})[self.model.name] = price
        return opts

    def run_task(self, task: Task) -> dict[str, Any]:
        env = self.env()
        attempts: list[Trajectory] = []
        for attempt in range(self.cfg.samples):
            traj = run_episode(
                env,
                task,
                agent=self.cfg.agent,
                model=self.model,
                options=self.agent_options(attempt),
                attempt=attempt,
            )
            attempts.append(traj)
            if traj.meta.get("success") or traj.meta.get("error"):
                break
        traj = attempts[-1]
        if len(attempts) > 1:
            traj = traj.model_copy(update={"meta": {**traj.meta, "attempts": len(attempts)}})
        reason = _reason(traj, self.cfg)
        entry = _entry(traj, attempts, reason)
        with self.lock:  # trajectory first: a kill between the two is repaired on resume
            if reason is None:
                self.out.append(traj.model_dump(mode="json"))
            self.ledger.append(entry)
            self.done.add(traj.id)
            self.summary.add(entry)
            self.summary.new += 1
        return entry

    def close(self) -> None:
        self.out.close()
        self.ledger.close()
        for env in self._envs:
            env.close()


def _pending(run: _Run, tasks: list[Task]) -> Iterator[Task]:
    for task in tasks:
        if str(task["id"]) not in run.done:
            yield task


def collect(
    config: CollectConfig,
    *,
    model: ChatModel | None = None,
    on_entry: Callable[[dict[str, Any]], None] | None = None,
) -> CollectSummary:
    """Run the collection ``config`` describes (resuming what its files hold).

    Args:
        config: what to run and where to write.
        model: a loaded model to use instead of loading ``config.model``.
        on_entry: called with each new ledger entry (progress hooks, tests).

    Returns:
        The summary over every finished task of the output (this run's and earlier ones).
    """
    started = time.perf_counter()
    if config.agent != "gold" and model is None:
        model = load_model(config.model, **config.model_options)
    run = _Run(config, model)
    try:
        run.resume()
        catalog = run.make_env()
        if config.n is None and getattr(catalog, "unbounded", False):
            raise SimulationError(
                f"{config.env} generates tasks without end; say how many",
                hint="pass n (on the command line: --limit N)",
            )
        tasks = list(catalog.tasks(config.split, limit=config.n))
        ids = [str(t["id"]) for t in tasks]
        if len(set(ids)) != len(ids):
            raise SimulationError(f"{config.env} has duplicate task ids", hint="report this bug")
        todo = list(_pending(run, tasks))
        with _progress(config, len(tasks), len(tasks) - len(todo), run.summary) as tick:
            workers = _workers(config)
            with ThreadPoolExecutor(max_workers=workers) as pool:
                queue = iter(todo)
                running: set[Future[dict[str, Any]]] = set()
                while True:
                    while len(running) < workers * 2:
                        task = next(queue, None)
                        if task is None:
                            break
                        running.add(pool.submit(run.run_task, task))
                    if not running:
                        break
                    finished, running = wait(running, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        entry = fut.result()
                        tick(entry)
                        if on_entry is not None:
                            on_entry(entry)
    finally:
        run.close()
    run.summary.elapsed_s = round(time.perf_counter() - started, 3)
    return run.summary


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
