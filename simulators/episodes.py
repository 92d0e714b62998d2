"""What collection runs for each task, wherever it runs: config, attempts, ledger entry.

:class:`TaskRunner` runs one task's attempts (rejection sampling: up to ``samples``
episodes, the first verified one kept) with an environment per thread and one shared
model, and returns the trajectory with its ledger entry (:func:`ledger_entry`, why it
is dropped: :func:`drop_reason`). :func:`~slmkit.simulators.collect.collect` runs it in
threads (the model decodes their calls together); the Ray backend
(:mod:`slmkit.simulators.ray_backend`) runs it inside Ray actors. Either way only the
driver writes the files, so their guarantees do not depend on where episodes ran.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from slmkit.agents import TokenPrice, Trajectory
from slmkit.models import DEFAULT_SPEC, ChatModel, batching_options, load_model, parse_spec
from slmkit.simulators.base import Environment, Task
from slmkit.simulators.registry import fill_default_agent, load_env
from slmkit.simulators.runner import AgentKind, run_episode

__all__ = [
    "CollectConfig",
    "TaskRunner",
    "collect_workers",
    "drop_reason",
    "ledger_entry",
    "load_agent_model",
]


class CollectConfig(BaseModel):
    """Everything a collection run needs (each CLI flag of ``agentctl collect`` is a field)."""

    model_config = ConfigDict(extra="forbid")

    env: str = Field(description="environment name, e.g. math, bfcl:simple, tau2-retail")
    env_options: dict[str, Any] = Field(
        default_factory=dict, description="options of the environment (e.g. user_model)"
    )
    split: str = Field(default="train", description="task split")
    n: int | None = Field(default=None, ge=1, description="the first n tasks of the split")
    agent: AgentKind = Field(
        default="tool", description="tool | code | rag | gold (None: the environment's default)"
    )
    model: str = Field(default=DEFAULT_SPEC, description="model spec of the agent")
    model_options: dict[str, Any] = Field(
        default_factory=dict, description="backend options, e.g. {'n_ctx': 8192}"
    )
    agent_options: dict[str, Any] = Field(
        default_factory=dict, description="AgentConfig fields, e.g. {'max_steps': 4}"
    )
    samples: int = Field(default=1, ge=1, description="attempts per task (rejection sampling)")
    sample_temperature: float = Field(
        default=0.7, gt=0, description="temperature of attempts after the first (greedy) one"
    )
    seed: int = Field(default=0, description="seed of the first attempt (attempt i uses seed + i)")
    first_thought_prefix: str | None = Field(
        default=None, description="text the agent's first thought starts with (a teacher's plan)"
    )
    generate_first_thought: bool = Field(
        default=False,
        description="the first thought of each attempt starts with the first step of the "
        "model's own reasoning on the task, from a reasoning prompt (Agent Distillation)",
    )
    out: Path = Field(default=Path("runs.jsonl"), description="output JSONL of kept trajectories")
    keep: Literal["all", "correct"] = Field(default="correct", description="all | correct")
    drop_parse_errors: bool = Field(default=True, description="drop runs with an unparsable output")
    drop_max_steps: bool = Field(default=True, description="drop runs cut off by max_steps")
    drop_errors: bool = Field(default=True, description="drop runs that raised (kept by eval)")
    retry_errors: bool = Field(default=False, description="on resume, run again tasks that raised")
    workers: int | None = Field(
        default=None,
        ge=1,
        description="concurrent episodes, decoded together by the model (default: 8 for "
        "openai: specs, else 1); with backend=ray, per replica",
    )
    backend: Literal["local", "ray"] = Field(
        default="local", description="local (threads) | ray (Ray Data over replicas)"
    )
    replicas: int = Field(
        default=1, ge=1, description="ray backend: model replicas (Ray actors), each `workers` wide"
    )
    replica_gpus: float = Field(default=0.0, ge=0, description="ray backend: GPUs per replica")
    price_prompt: float = Field(default=0.0, ge=0, description="price per 1M prompt tokens")
    price_completion: float = Field(default=0.0, ge=0, description="price per 1M completion tokens")
    progress: bool = Field(default=True, description="show a progress bar")

    @model_validator(mode="before")
    @classmethod
    def _default_agent(cls, data: Any) -> Any:
        return fill_default_agent(data)

    @model_validator(mode="after")
    def _one_first_thought(self) -> CollectConfig:
        if self.generate_first_thought and self.first_thought_prefix:
            raise ValueError(
                "give first_thought_prefix (a fixed text) or generate_first_thought, not both"
            )
        if self.generate_first_thought and self.agent == "gold":
            raise ValueError("generate_first_thought needs a model agent, not gold")
        return self


def drop_reason(traj: Trajectory, cfg: CollectConfig) -> str | None:
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


def ledger_entry(
    traj: Trajectory, attempts: list[Trajectory], reason: str | None
) -> dict[str, Any]:
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
        "model_calls": int(total("model_calls")),
        "prompt_tokens": int(total("prompt_tokens")),
        "completion_tokens": int(total("completion_tokens")),
        "wall_s": round(total("wall_s"), 6),
        "cost": total("cost"),
    }


def collect_workers(cfg: CollectConfig) -> int:
    """Concurrent episodes (per replica with Ray): ``workers``, else by backend."""
    if cfg.workers is not None:
        return cfg.workers
    if cfg.agent == "gold":
        return 1
    backend, _ = parse_spec(cfg.model)
    return 8 if backend == "openai" else 1


def load_agent_model(cfg: CollectConfig, workers: int) -> ChatModel | None:
    """The agent's model, sized for ``workers`` concurrent episodes (None for gold)."""
    if cfg.agent == "gold":
        return None
    options = {**batching_options(cfg.model, workers), **cfg.model_options}
    return load_model(cfg.model, **options)


class TaskRunner:
    """Runs tasks' attempts: an environment per thread, one model for all of them."""

    def __init__(self, cfg: CollectConfig, model: ChatModel | None) -> None:
        self.cfg = cfg
        self.model = model
        self._local = threading.local()
        self._envs: list[Environment] = []
        self._lock = threading.Lock()

    def make_env(self) -> Environment:
        env = load_env(self.cfg.env, split=self.cfg.split, **self.cfg.env_options)
        with self._lock:
            self._envs.append(env)
        return env

    def env(self) -> Environment:
        env = getattr(self._local, "env", None)
        if env is None:
            env = self._local.env = self.make_env()
        return env

    def agent_options(self, attempt: int) -> dict[str, Any]:
        cfg = self.cfg
        opts = dict(cfg.agent_options)
        opts["seed"] = cfg.seed + attempt
        if cfg.samples > 1 and attempt > 0:
            # the first attempt is the agent's greedy one: sampling only adds what it missed
            opts["temperature"] = cfg.sample_temperature
        if cfg.first_thought_prefix:
            opts["first_thought"] = cfg.first_thought_prefix
        if (cfg.price_prompt or cfg.price_completion) and self.model is not None:
            price = TokenPrice(prompt=cfg.price_prompt, completion=cfg.price_completion)
            opts.setdefault("prices", {})[self.model.name] = price
        return opts

    def run(self, task: Task) -> tuple[Trajectory, dict[str, Any]]:
        """``task``'s attempts: the trajectory that counts and its ledger entry."""
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
                generate_first_thought=self.cfg.generate_first_thought,
            )
            attempts.append(traj)
            if traj.meta.get("success") or traj.meta.get("error"):
                break
        traj = attempts[-1]
        if len(attempts) > 1:
            traj = traj.model_copy(update={"meta": {**traj.meta, "attempts": len(attempts)}})
        return traj, ledger_entry(traj, attempts, drop_reason(traj, self.cfg))

    def close(self) -> None:
        for env in self._envs:
            env.close()
