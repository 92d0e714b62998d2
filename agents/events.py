"""Step events: what an agent did at each step, as data a UI, a CLI or the metrics read.

Events live in the run's checkpointed state (so a resumed run still has the events of
the steps done before the interruption) and are yielded live by ``agent.stream(...)``.
Timestamps are wall-clock (``time.time()``) so that they stay meaningful across
processes; ``session`` tells which process invocation produced an event, so the gap
between two events of different sessions (a crash and a resume) is never counted as
step time.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from slmkit.models import Completion

__all__ = ["EventKind", "ModelCall", "StepEvent"]

EventKind = Literal["action", "observation", "answer", "interrupt", "done"]


class ModelCall(BaseModel):
    """One model call made for a step (there are two when a step was escalated)."""

    model_config = ConfigDict(extra="forbid")

    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    outputs: int = 1
    valid_outputs: int = 1

    @classmethod
    def from_completion(cls, c: Completion) -> ModelCall:
        return cls(
            model=c.model,
            prompt_tokens=c.usage.prompt_tokens,
            completion_tokens=c.usage.completion_tokens,
            latency_s=c.latency_s,
            outputs=len(c.candidates),
            valid_outputs=sum(1 for x in c.candidates if x.valid),
        )


class StepEvent(BaseModel):
    """One thing that happened in a run.

    ``kind``:

    * ``action``: the model chose an action (``action``, raw ``text``, who answered in
      ``model``, why the large model did in ``escalation``, the sampled ``candidates``);
    * ``observation``: one tool call (or code cell) ran: ``observation``, ``ok``;
    * ``answer``: a retrieval-augmented answer step (``RagAgent``);
    * ``interrupt``: the run waits for a human decision on ``action``;
    * ``done``: the run ended: ``answer`` and ``stopped`` (only yielded by ``stream``).
    """

    model_config = ConfigDict(extra="forbid")

    kind: EventKind
    step: int
    t0: float = 0.0
    t1: float = 0.0
    session: str = ""
    model: str | None = None
    escalation: str | None = None
    action: dict[str, Any] | None = None
    text: str | None = None
    valid: bool | None = None
    observation: str | None = None
    ok: bool | None = None
    tool_s: float = 0.0
    calls: list[ModelCall] = Field(default_factory=list)
    candidates: list[dict[str, Any]] = Field(default_factory=list)
    answer: str | None = None
    stopped: str | None = None
    flag: str | None = None
    """What the runtime found wrong with an otherwise valid action (an empty final answer,
    an answer contradicting the observations), as the model was told."""

    @property
    def model_s(self) -> float:
        """Seconds spent inside model calls for this event."""
        return sum(c.latency_s for c in self.calls)

    @property
    def duration_s(self) -> float:
        return max(self.t1 - self.t0, 0.0)

    def summary(self) -> str:
        """One line for logs and the CLI."""
        if self.kind == "action":
            who = f" [{self.model}]" if self.model else ""
            esc = f" (escalated: {self.escalation})" if self.escalation else ""
            return f"step {self.step}{who}{esc}: {self.text or self.action}"
        if self.kind == "observation":
            mark = "ok" if self.ok else "error"
            return f"step {self.step} observation ({mark}): {self.observation}"
        if self.kind == "done":
            return f"done ({self.stopped}): {self.answer}"
        return f"step {self.step} {self.kind}: {self.answer or self.action or self.observation}"
