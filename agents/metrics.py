"""``RunResult`` and the production metrics of one run, computed from its step events.

The metrics are the ones that decide whether a small model can carry an agent in
production: schema-valid rate (outputs that parsed and validated), executable-call rate
(calls that ran without error), escalations to a larger model, tokens and cost per model
(so cost per *successful* task can be summed over many runs), and wall time per step
split into model time, tool time and the runtime's own overhead (prompt building,
parsing, LangGraph, checkpoint writes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from slmkit.agents.config import TokenPrice
from slmkit.agents.events import StepEvent
from slmkit.agents.trajectory import Trajectory

__all__ = ["ModelUsage", "RunMetrics", "RunResult", "compute_metrics"]


class ModelUsage(BaseModel):
    """Calls, tokens, seconds and cost of one model within a run."""

    model_config = ConfigDict(extra="forbid")

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_s: float = 0.0
    cost: float = 0.0


class RunMetrics(BaseModel):
    """Per-run metrics (see the module docs); lists are indexed by step, from step 1."""

    model_config = ConfigDict(extra="forbid")

    steps: int = 0
    stopped: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_calls: int = 0
    wall_s: float = 0.0
    step_wall_s: list[float] = Field(default_factory=list)
    step_model_s: list[float] = Field(default_factory=list)
    step_tool_s: list[float] = Field(default_factory=list)
    step_overhead_s: list[float] = Field(default_factory=list)
    overhead_share: float | None = None
    outputs: int = 0
    valid_outputs: int = 0
    schema_valid_rate: float | None = None
    tool_calls: int = 0
    ok_tool_calls: int = 0
    executable_call_rate: float | None = None
    escalations: int = 0
    escalation_reasons: list[str] = Field(default_factory=list)
    by_model: dict[str, ModelUsage] = Field(default_factory=dict)
    cost: float = 0.0


def compute_metrics(
    events: Sequence[StepEvent],
    *,
    stopped: str,
    prices: Mapping[str, TokenPrice] | None = None,
) -> RunMetrics:
    """Aggregate step events into :class:`RunMetrics`.

    A step's wall time is the time of its events plus the gaps after them up to the next
    event of the same session: that is where LangGraph routes and writes checkpoints, so
    the overhead is measured, not estimated. Gaps across sessions (a crash, then a resume
    in a new process) are not step time and are left out.
    """
    prices = prices or {}
    m = RunMetrics(stopped=stopped)
    steps = max((e.step for e in events), default=0)
    wall = [0.0] * steps
    model_s = [0.0] * steps
    tool_s = [0.0] * steps
    for i, e in enumerate(events):
        idx = e.step - 1
        if idx < 0:
            continue
        span = e.duration_s
        nxt = events[i + 1] if i + 1 < len(events) else None
        if nxt is not None and nxt.session == e.session:
            span += max(nxt.t0 - e.t1, 0.0)
        wall[idx] += span
        model_s[idx] += e.model_s
        tool_s[idx] += e.tool_s
        for call in e.calls:
            usage = m.by_model.setdefault(call.model, ModelUsage())
            usage.calls += 1
            usage.prompt_tokens += call.prompt_tokens
            usage.completion_tokens += call.completion_tokens
            usage.model_s += call.latency_s
            m.outputs += call.outputs
            m.valid_outputs += call.valid_outputs
        if e.kind == "observation":
            m.tool_calls += 1
            m.ok_tool_calls += int(bool(e.ok))
        if e.escalation:
            m.escalations += 1
            m.escalation_reasons.append(e.escalation)
    for name, usage in m.by_model.items():
        price = prices.get(name)
        usage.cost = price.cost(usage.prompt_tokens, usage.completion_tokens) if price else 0.0
    m.steps = sum(1 for e in events if e.kind in ("action", "answer"))
    m.prompt_tokens = sum(u.prompt_tokens for u in m.by_model.values())
    m.completion_tokens = sum(u.completion_tokens for u in m.by_model.values())
    m.model_calls = sum(u.calls for u in m.by_model.values())
    m.cost = sum(u.cost for u in m.by_model.values())
    m.step_wall_s = [round(w, 6) for w in wall]
    m.step_model_s = [round(x, 6) for x in model_s]
    m.step_tool_s = [round(x, 6) for x in tool_s]
    m.step_overhead_s = [
        round(max(w - a - b, 0.0), 6) for w, a, b in zip(wall, model_s, tool_s, strict=True)
    ]
    m.wall_s = round(sum(wall), 6)
    if m.wall_s > 0:
        m.overhead_share = round(sum(m.step_overhead_s) / m.wall_s, 6)
    if m.outputs:
        m.schema_valid_rate = m.valid_outputs / m.outputs
    if m.tool_calls:
        m.executable_call_rate = m.ok_tool_calls / m.tool_calls
    return m


@dataclass
class RunResult:
    """What ``agent.run(...)`` returns.

    ``stopped`` is ``"final_answer"``, ``"max_steps"``, ``"refused"`` (RagAgent found no
    verifiable answer) or ``"interrupted"`` (waiting for a human decision, whose request is
    in ``interrupt``; continue with ``agent.resume(thread_id, decision)``).
    """

    answer: str | None
    stopped: str
    trajectory: Trajectory
    metrics: RunMetrics
    thread_id: str
    events: list[StepEvent] = field(default_factory=list)
    interrupt: Any = None

    @property
    def finished(self) -> bool:
        return self.stopped != "interrupted"

    @property
    def answer_flag(self) -> str | None:
        """Why the runtime does not trust ``answer``, or ``None`` when it passed the checks.

        An answer the grounding check flagged (it contradicts the observations, came before
        any tool was used, ran on: to its length bound, or looping) is sent back once; when
        the retry is flagged too, or no step is left, the answer stands with its flag. A
        caller that shows or scores answers should treat a flagged one as the agent's
        failure (the small model sometimes copies the flag's own text as its last answer).
        """
        if self.stopped != "final_answer":
            return None
        for event in reversed(self.events):
            if event.kind == "action" and event.action and "final_answer" in event.action:
                return event.flag
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "stopped": self.stopped,
            "answer_flag": self.answer_flag,
            "thread_id": self.thread_id,
            "interrupt": self.interrupt,
            "metrics": self.metrics.model_dump(mode="json"),
            "trajectory": self.trajectory.model_dump(mode="json"),
            "events": [e.model_dump(mode="json") for e in self.events],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, default=str)
