"""The ``Environment`` contract: reset to a task, tools as typed methods, a reward.

One interface covers real environments (BFCL function calling, math with code, QA over
an index, tau2 customer service) and LLM-simulated ones, so collection, evaluation and
training never care which kind they drive::

    env = load_env("math", split="test", limit=5)
    for task in env.tasks():
        messages = env.reset(task)          # the first messages of the episode
        registry = env.tools()              # the env's tools as a ToolRegistry
        ...                                 # an agent calls registry.execute(...)
        env.submit(answer)                  # the agent's final answer (if any)
        env.reward(), env.reward_breakdown()

Tools are methods marked with :func:`env_tool`; their type hints and Google-style
docstrings become the JSON Schema a constrained model decodes under (through
:meth:`slmkit.tools.Tool.from_function`). Every call that runs is recorded in
:attr:`Environment.calls`, and every model call the environment itself makes (a user
simulator, a tool simulator, a judge) in :attr:`Environment.log`, so a trajectory
carries the whole episode.

TRL's ``GRPOTrainer(environment_factory=...)`` exposes *every* public method of an
environment class as a tool and calls ``reset(**row)``/``get_reward()``; this class has
a richer API than that, so :mod:`slmkit.simulators.trl` builds the thin adapter class
TRL expects from any fixed-tool environment.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from slmkit.models import Message
from slmkit.simulators.errors import SimulationError
from slmkit.tools import Tool, ToolCall, ToolRegistry, ToolResult, inline_refs

__all__ = [
    "Environment",
    "EpisodeRegistry",
    "RewardReport",
    "Task",
    "TaskSet",
    "env_tool",
    "jsonable",
    "output_schema_of",
    "tool_from_method",
]

Task = dict[str, Any]
"""A task is a plain JSON-able dict with at least a stable ``"id"`` (and ``"split"``)."""

_F = TypeVar("_F", bound=Callable[..., Any])
_TOOL_MARK = "__slmkit_env_tool__"


def env_tool(fn: _F) -> _F:
    """Mark a method as one of the environment's tools.

    The method's name is the tool name, its type hints the argument schema and its
    docstring the description the model reads; its return annotation, when it is a
    pydantic model or another type pydantic can describe, becomes the tool's
    ``output_schema`` (what a simulator of this tool is constrained to).
    """
    setattr(fn, _TOOL_MARK, True)
    return fn


class RewardReport(BaseModel):
    """The reward of an episode, its parts and why.

    ``reward`` is in ``[0, 1]``; ``success`` is ``reward >= threshold`` of the
    environment; ``breakdown`` holds the named parts the reward is made of (e.g.
    ``{"db": 1.0, "communicate": 0.0}``) and ``info`` free-form details (the checker's
    reason, the expected answer).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    reward: float = Field(ge=0.0, le=1.0)
    success: bool
    breakdown: dict[str, float] = Field(default_factory=dict)
    info: dict[str, Any] = Field(default_factory=dict)


class TaskSet:
    """An iterable of task dicts from one split, optionally bounded by ``limit``.

    Procedural sources (math generators) are unbounded: iterate with a limit, or
    :meth:`take` what you need. ``len()`` works when the size is known.
    """

    def __init__(
        self,
        name: str,
        split: str,
        source: Callable[[], Iterable[Task]],
        *,
        limit: int | None = None,
        size: int | None = None,
    ) -> None:
        self.name = name
        self.split = split
        self._source = source
        self.limit = limit
        self._size = size

    def __iter__(self) -> Iterator[Task]:
        it = iter(self._source())
        return it if self.limit is None else itertools.islice(it, self.limit)

    def __len__(self) -> int:
        if self._size is None and self.limit is None:
            raise TypeError(f"task set {self.name}/{self.split} is unbounded; give a limit")
        if self._size is None:
            assert self.limit is not None
            return sum(1 for _ in self)
        return self._size if self.limit is None else min(self._size, self.limit)

    def take(self, n: int) -> list[Task]:
        """The first ``n`` tasks."""
        return list(itertools.islice(iter(self), n))

    def __repr__(self) -> str:
        return f"<TaskSet {self.name}/{self.split} limit={self.limit}>"


class Environment(ABC):
    """Base of every environment (see the module docs).

    Subclasses implement :meth:`_tasks` (the task source of a split), :meth:`_start`
    (the first messages of an episode) and :meth:`_score` (the reward), and declare
    their tools with :func:`env_tool` methods or by overriding :meth:`_build_tools`.

    Class attributes say how an episode is run: ``success_threshold`` (reward counted
    as a success), ``fixed_tools`` (the same tools for every task; BFCL's differ per
    task), and :meth:`agent_hints` (agent options the task format needs, e.g. one step
    for single-turn function calling).
    """

    name: str = "environment"
    success_threshold: ClassVar[float] = 1.0
    fixed_tools: ClassVar[bool] = True
    splits: tuple[str, ...] = ("train", "test")
    unbounded: bool = False
    """Whether the task source never ends (procedural generators): collection needs ``n``."""

    def __init__(self, *, split: str = "test", limit: int | None = None) -> None:
        self.split = split
        self.limit = limit
        self.task: Task | None = None
        self.answer: str | None = None
        self.citations: list[dict[str, Any]] = []
        self.submitted = False
        self.calls: list[dict[str, Any]] = []
        """Tool calls run this episode: ``{"name", "arguments", "ok", "output"|"error"}``."""
        self.log: list[dict[str, Any]] = []
        """Model calls the environment itself made this episode (simulators, judges)."""
        self._registry: ToolRegistry | None = None

    # ------------------------------------------------------------------ tasks

    def tasks(self, split: str | None = None, limit: int | None = None) -> TaskSet:
        """The tasks of ``split`` (default: the one this env was loaded with)."""
        split = split or self.split
        if split not in self.splits:
            raise SimulationError(
                f"{self.name} has no split {split!r}",
                hint=f"choose one of {', '.join(self.splits)}",
            )
        bound = limit if limit is not None else self.limit
        return TaskSet(self.name, split, lambda: self._tasks(split), limit=bound)

    @abstractmethod
    def _tasks(self, split: str) -> Iterable[Task]:
        """Every task of ``split``, in a stable order."""

    # ------------------------------------------------------------------ episode

    def reset(self, task: Mapping[str, Any]) -> list[Message]:
        """Start an episode on ``task``; return its first messages (system?, user)."""
        if "id" not in task:
            raise SimulationError(
                "a task needs an 'id'", hint="tasks are dicts like {'id': ..., 'prompt': ...}"
            )
        self.task = dict(task)
        self.answer = None
        self.citations = []
        self.submitted = False
        self.calls = []
        self.log = []
        if not self.fixed_tools:
            self._registry = None
        return self._start(self.task)

    @abstractmethod
    def _start(self, task: Task) -> list[Message]:
        """Prepare the episode's state; return its first messages."""

    def submit(self, answer: str | None, *, citations: Sequence[Mapping[str, Any]] = ()) -> None:
        """Record the agent's final answer (and the sources it cited, if any)."""
        self._require_task()
        self.answer = answer
        self.citations = [dict(c) for c in citations]
        self.submitted = True

    @property
    def done(self) -> bool:
        """Whether the episode is over (the agent answered, or the env ended it)."""
        return self.submitted

    def tools(self) -> ToolRegistry:
        """This episode's tools; every call through it is recorded in :attr:`calls`."""
        if self._registry is None:
            self._registry = EpisodeRegistry(self, self._build_tools())
        return self._registry

    def _build_tools(self) -> list[Tool]:
        """The tools: by default every :func:`env_tool` method of the class."""
        out = []
        for name, member in inspect.getmembers(type(self), predicate=inspect.isfunction):
            if getattr(member, _TOOL_MARK, False):
                out.append(tool_from_method(getattr(self, name)))
        return out

    # ------------------------------------------------------------------ reward

    def reward(self) -> float:
        """The episode's reward in ``[0, 1]``."""
        return self.reward_report().reward

    def reward_breakdown(self) -> dict[str, float]:
        """The named parts of the reward."""
        return self.reward_report().breakdown

    def reward_report(self) -> RewardReport:
        """Reward, success, breakdown and details of the current episode."""
        return self._score(self._require_task())

    @abstractmethod
    def _score(self, task: Task) -> RewardReport:
        """Score the episode so far."""

    def _report(
        self, reward: float, breakdown: Mapping[str, float] | None = None, **info: Any
    ) -> RewardReport:
        """A :class:`RewardReport` with ``success`` from :attr:`success_threshold`."""
        reward = min(max(float(reward), 0.0), 1.0)
        return RewardReport(
            reward=reward,
            success=reward >= self.success_threshold,
            breakdown=dict(breakdown or {}),
            info=info,
        )

    def _require_task(self) -> Task:
        if self.task is None:
            raise SimulationError(
                f"the {self.name} environment has no episode", hint="call env.reset(task) first"
            )
        return self.task

    # ------------------------------------------------------------------ extras

    def gold_actions(self, task: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """A known-good sequence of calls ``{"name", "arguments"}`` for ``task``, if any.

        Used by the ``gold`` agent (reference trajectories, reward self-tests) and by
        the fidelity report (the calls replayed against a real and a simulated env).
        Calls are grouped into steps by an optional ``"step"`` key (BFCL's parallel calls
        share one).
        """
        return None

    def gold_answer(self, task: Mapping[str, Any]) -> str | None:
        """The final answer that goes with :meth:`gold_actions`, if any."""
        return None

    def task_from_calls(
        self, seed: Mapping[str, Any], request: str, calls: Sequence[Mapping[str, Any]]
    ) -> Task:
        """A new task like ``seed`` (same tools): ``request``, answered by ``calls``.

        Written tasks (:mod:`slmkit.simulators.synth`) need an environment that can judge
        an answer given as calls; ``bfcl`` can. The others say so.
        """
        raise SimulationError(
            f"the {self.name} environment cannot judge written tasks",
            hint="write tasks for an environment whose tasks carry their answer calls (bfcl)",
        )

    def agent_hints(self) -> dict[str, Any]:
        """Agent options the task format needs (merged under the user's own options)."""
        return {}

    def domain_text(self) -> str:
        """A description or policy of the domain (what a simulator of this env reads)."""
        return ""

    def mutating_tools(self) -> set[str] | None:
        """Names of the tools that change state, when the env knows (None: it does not)."""
        return None

    def prompt_text(self, messages: Sequence[Message]) -> str:
        """The first messages as one task text (for agents that take a string task)."""
        return "\n\n".join(str(m.get("content") or "") for m in messages if m.get("content"))

    def episode_info(self) -> dict[str, Any]:
        """What the episode did, for the trajectory's ``meta["env"]``."""
        return {
            "name": self.name,
            "calls": [jsonable(c) for c in self.calls],
            "log": [jsonable(e) for e in self.log],
        }

    def close(self) -> None:  # noqa: B027 - optional hook: most envs hold nothing
        """Release what the environment holds (sandboxes, indexes)."""

    def __enter__(self) -> Environment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} split={self.split}>"


class EpisodeRegistry(ToolRegistry):
    """A registry that records every call attempt in its environment's :attr:`calls`.

    Attempts are recorded *before* validation, so a call the registry rejects (unknown
    tool, invalid arguments) still counts: BFCL's checker must see what the model tried,
    not only what ran.
    """

    def __init__(self, env: Environment, tools: Iterable[Tool]) -> None:
        super().__init__(tools)
        self._env = env

    def execute(self, call: ToolCall | Mapping[str, Any]) -> ToolResult:
        try:
            parsed = ToolCall.from_obj(call)
        except TypeError:
            return super().execute(call)
        entry: dict[str, Any] = {"name": parsed.name, "arguments": parsed.arguments}
        self._env.calls.append(entry)
        result = super().execute(parsed)
        entry["ok"] = result.ok
        if result.ok:
            entry["output"] = result.output
        else:
            entry["error"] = result.error
        return result


def tool_from_method(method: Callable[..., Any], *, name: str | None = None) -> Tool:
    """A :class:`Tool` from a typed, documented (bound) method, with its output schema."""
    tool = Tool.from_function(method, name=name)
    return dataclasses.replace(tool, output_schema=output_schema_of(method))


def output_schema_of(fn: Callable[..., Any]) -> dict[str, Any] | None:
    """The JSON Schema of ``fn``'s return annotation (None without one, or if pydantic
    cannot describe it). ``str`` becomes a bounded string schema."""
    from typing import get_type_hints

    from pydantic import TypeAdapter

    try:
        hint = get_type_hints(fn).get("return")
    except (NameError, TypeError):
        return None
    if hint is None or hint is type(None):
        return None
    if hint is str:  # bounded, so a simulator's string always ends
        return {"type": "string", "maxLength": 300}
    try:
        schema = TypeAdapter(hint).json_schema()
    except Exception:  # a type pydantic cannot describe: no schema rather than a crash
        return None
    return inline_refs(schema)


def jsonable(value: Any) -> Any:
    """A JSON-able copy (pydantic models dumped, unknown objects as strings)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
