"""The LangGraph scaffolding every agent shares: checkpointing, run, stream, resume.

An agent subclass describes its ``StateGraph`` (:meth:`GraphAgent._build`), its initial
state and how a final state becomes a :class:`~slmkit.agents.Trajectory`; this module
compiles the graph with a checkpointer and drives it.

Durability: the graph is compiled with a checkpointer (SQLite by default) and streamed
with ``durability="sync"``, so the state after every node is on disk before the next
node starts. ``run(task, thread_id=...)`` on a thread that stopped midway (a crash, a
kill, an exception) continues from the last finished node: tool calls that finished
are not made again. On a finished thread it returns the stored result without running
anything, so a retried job is idempotent.

State holds only JSON-like values (dicts, lists, strings, numbers), which the
checkpoint serializer stores without custom types.
"""

from __future__ import annotations

import operator
import sqlite3
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypedDict

from slmkit.agents.config import TokenPrice
from slmkit.agents.errors import AgentError
from slmkit.agents.events import StepEvent
from slmkit.agents.metrics import RunMetrics, RunResult, compute_metrics
from slmkit.agents.router import Router
from slmkit.agents.trajectory import Trajectory
from slmkit.models import ChatModel, cache_dir

__all__ = ["BaseState", "EventStream", "GraphAgent", "current_session", "current_thread"]

_NO_DECISION: Any = object()


class BaseState(TypedDict, total=False):
    """Fields every agent's graph state has. ``events``/``messages`` only grow."""

    task: str
    step: int
    events: Annotated[list[dict[str, Any]], operator.add]
    messages: Annotated[list[dict[str, Any]], operator.add]
    answer: str | None
    stopped: str | None


def current_thread() -> str:
    """The thread id of the run the calling graph node belongs to."""
    from langgraph.config import get_config

    return str(get_config()["configurable"]["thread_id"])


def current_session() -> str:
    """An id of the current ``run``/``stream`` call (see :mod:`slmkit.agents.events`)."""
    from langgraph.config import get_config

    return str(get_config()["configurable"].get("session", ""))


class GraphAgent(ABC):
    """Base of the agents: compiles the graph once and runs it on threads."""

    kind: ClassVar[str] = "agent"

    def __init__(
        self,
        model: ChatModel,
        *,
        checkpoint: Literal["sqlite", "memory", "none"] = "sqlite",
        checkpoint_path: Path | None = None,
        prices: Mapping[str, TokenPrice] | None = None,
    ) -> None:
        self.router = model if isinstance(model, Router) else Router(model)
        self._checkpoint = checkpoint
        self._checkpoint_path = checkpoint_path
        self._prices = dict(prices or {})
        self._conn: sqlite3.Connection | None = None
        self._compiled: Any = None

    # -- what subclasses provide

    @abstractmethod
    def _state_schema(self) -> type[Any]:
        """The graph's state TypedDict (a subclass of :class:`BaseState`)."""

    @abstractmethod
    def _build(self, graph: Any) -> None:
        """Add nodes and edges to ``graph`` (a ``langgraph.graph.StateGraph``)."""

    @abstractmethod
    def _initial_state(self, task: str) -> dict[str, Any]:
        """The state a new run starts from."""

    @abstractmethod
    def _tool_schemas(self) -> list[dict[str, Any]]:
        """The OpenAI tool schemas the agent offers (the trajectory's ``tools``)."""

    def _meta(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Agent-specific entries of the trajectory's ``meta``."""
        return {}

    def _trajectory(
        self, values: Mapping[str, Any], metrics: RunMetrics, thread_id: str
    ) -> Trajectory:
        """The run as a :class:`Trajectory`; ``meta["routing"]`` says who took each step."""
        routing = [
            {"step": e["step"], "model": e.get("model"), "escalation": e.get("escalation")}
            for e in values.get("events", ())
            if e.get("kind") in ("action", "answer")
        ]
        return Trajectory(
            id=thread_id,
            task={"prompt": values.get("task", "")},
            messages=list(values.get("messages", [])),
            tools=self._tool_schemas(),
            metrics=metrics.model_dump(mode="json"),
            meta={
                "agent": self.kind,
                "model": self.router.small.name,
                "fallback": self.router.large.name if self.router.large else None,
                "answer": values.get("answer"),
                "stopped": metrics.stopped,
                "routing": routing,
                **self._meta(values),
            },
        )

    def _recursion_limit(self) -> int:
        """Graph super-steps a run may take (LangGraph's guard against endless loops)."""
        return 100

    def _finish(self, thread_id: str) -> None:
        """Release what a finished run held (subclasses: sandboxes); forget unsaved runs."""
        if self._checkpoint == "none":
            self.graph.checkpointer.delete_thread(thread_id)

    # -- the compiled graph

    @property
    def graph(self) -> Any:
        """The compiled LangGraph graph (built on first use)."""
        if self._compiled is None:
            from langgraph.graph import StateGraph

            builder = StateGraph(self._state_schema())
            self._build(builder)
            self._compiled = builder.compile(checkpointer=self._make_checkpointer())
        return self._compiled

    @property
    def checkpoint_path(self) -> Path | None:
        """The SQLite file runs are saved in (None for in-memory checkpoints)."""
        if self._checkpoint != "sqlite":
            return None
        return self._checkpoint_path or cache_dir("runs") / "agents.sqlite"

    def _make_checkpointer(self) -> Any:
        path = self.checkpoint_path
        if path is None:
            from langgraph.checkpoint.memory import InMemorySaver

            return InMemorySaver()
        from langgraph.checkpoint.sqlite import SqliteSaver

        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), check_same_thread=False)
        return SqliteSaver(self._conn)

    def close(self) -> None:
        """Close the checkpoint database (idempotent)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            self._compiled = None

    def __enter__(self) -> GraphAgent:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- running

    def run(self, task: str, *, thread_id: str | None = None) -> RunResult:
        """Run ``task`` to its end (or continue the unfinished run on ``thread_id``)."""
        return self.stream(task, thread_id=thread_id).drain()

    def stream(self, task: str, *, thread_id: str | None = None) -> EventStream:
        """Like :meth:`run`, yielding each :class:`StepEvent` as it happens, then ``done``;
        the :class:`RunResult` is the stream's ``result`` once it is exhausted."""
        return EventStream(self._drive(task, thread_id, _NO_DECISION))

    def resume(self, thread_id: str, decision: Any = None) -> RunResult:
        """Continue an interrupted run, answering its pending interrupt with ``decision``."""
        return EventStream(self._drive(None, thread_id, decision)).drain()

    def result(self, thread_id: str) -> RunResult:
        """The result of a stored run (finished or not) without running anything."""
        values, interrupt = self._snapshot(self._config(thread_id, "inspect"))
        if not values:
            raise AgentError(f"no run with thread id {thread_id!r}", hint="check the id")
        return self._result(values, interrupt, thread_id, [])

    def _config(self, thread_id: str, session: str) -> dict[str, Any]:
        return {
            "configurable": {"thread_id": thread_id, "session": session},
            "recursion_limit": self._recursion_limit(),
        }

    def _snapshot(self, config: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        snap = self.graph.get_state(config)
        interrupt = snap.interrupts[0].value if snap.next and snap.interrupts else None
        return dict(snap.values or {}), interrupt

    def _input(
        self,
        task: str | None,
        tid: str,
        values: Mapping[str, Any],
        pending: Any,
        decision: Any,
    ) -> Any:
        """What to feed the graph: a resume command, None to continue, or a new state."""
        from langgraph.types import Command

        if decision is not _NO_DECISION:
            if pending is None:
                raise AgentError(
                    f"thread {tid!r} is not waiting for a decision",
                    hint="resume() answers an interrupt; use run() to continue a stopped run",
                )
            return Command(resume=decision)
        if values:
            if task is not None and values.get("task") != task:
                raise AgentError(
                    f"thread {tid!r} holds another task: {str(values.get('task'))[:80]!r}",
                    hint="use a new thread id for a new task",
                )
            return None  # continue where the run stopped (nothing to do if it finished)
        if task is None:
            raise AgentError(f"no run with thread id {tid!r}", hint="check the id")
        return self._initial_state(task)

    def _drive(
        self, task: str | None, thread_id: str | None, decision: Any
    ) -> Generator[StepEvent, None, RunResult]:
        tid = thread_id or uuid.uuid4().hex
        session = uuid.uuid4().hex[:12]
        config = self._config(tid, session)
        values, pending = self._snapshot(config)
        inp = self._input(task, tid, values, pending, decision)
        interrupt = pending  # still waiting for a decision: nothing runs, report it again
        if pending is None or decision is not _NO_DECISION:
            for chunk in self.graph.stream(inp, config, stream_mode="updates", durability="sync"):
                for node, update in chunk.items():
                    if node == "__interrupt__":
                        for item in update:
                            yield _interrupt_event(item.value, session)
                    elif isinstance(update, dict):
                        for raw in update.get("events", ()):
                            yield StepEvent.model_validate(raw)
            values, interrupt = self._snapshot(config)
        now = time.time()
        done = StepEvent(
            kind="done",
            step=int(values.get("step", 0)),
            t0=now,
            t1=now,
            session=session,
            answer=values.get("answer"),
            stopped="interrupted" if interrupt is not None else values.get("stopped"),
        )
        yield done
        result = self._result(values, interrupt, tid, [done])
        if interrupt is None:
            self._finish(tid)
        return result

    def _result(
        self, values: Mapping[str, Any], interrupt: Any, thread_id: str, extra: list[StepEvent]
    ) -> RunResult:
        events = [StepEvent.model_validate(e) for e in values.get("events", ())] + extra
        stopped = "interrupted" if interrupt is not None else str(values.get("stopped") or "")
        metrics = compute_metrics(events, stopped=stopped, prices=self._prices)
        return RunResult(
            answer=values.get("answer"),
            stopped=stopped,
            trajectory=self._trajectory(values, metrics, thread_id),
            metrics=metrics,
            thread_id=thread_id,
            events=events,
            interrupt=interrupt,
        )


def _interrupt_event(value: Any, session: str) -> StepEvent:
    now = time.time()
    payload = value if isinstance(value, dict) else {"request": value}
    return StepEvent(
        kind="interrupt",
        step=int(payload.get("step", 0)),
        t0=now,
        t1=now,
        session=session,
        action=payload,
    )


class EventStream(Iterator[StepEvent]):
    """The step events of a run as they happen; ``result`` once the run has returned."""

    def __init__(self, gen: Generator[StepEvent, None, RunResult]) -> None:
        self._gen = gen
        self._result: RunResult | None = None

    def __next__(self) -> StepEvent:
        try:
            return next(self._gen)
        except StopIteration as stop:
            self._result = stop.value
            raise

    @property
    def result(self) -> RunResult:
        if self._result is None:
            raise AgentError(
                "the run has not returned yet", hint="iterate the stream to its end first"
            )
        return self._result

    def drain(self) -> RunResult:
        """Consume the remaining events and return the result."""
        for _ in self:
            pass
        return self.result
