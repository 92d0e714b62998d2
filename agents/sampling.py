"""Self-consistent action generation: sample k actions, try each in isolation, vote.

The agent samples ``k`` candidate actions for a step and runs each one where it cannot
touch the real state (code in a forked sandbox, tools declared pure directly, every
other tool not at all: a tool is not pure unless it says so, so an undeclared side
effect runs once, for the winner). Candidates that fail are dropped; the rest vote with their
observation (two different programs that print the same number agree), and the largest
group wins, the earliest candidate breaking ties. When every candidate failed, the first
valid one is taken, so sampling never makes a step worse than greedy decoding would.
The winner is then applied to the real state once: the agent adopts its isolated result
(the forked sandbox, the pure tool's output) or runs it for real.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from slmkit.agents.actions import Action

__all__ = ["CallOutcome", "Trial", "Vote", "vote"]


@dataclass(frozen=True)
class CallOutcome:
    """What running one call (a tool call or a code cell) produced, JSON-able.

    ``final_answer`` is set when the call ended the task (``final_answer(x)`` in code).
    """

    ok: bool
    observation: str
    duration_s: float = 0.0
    final_answer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "observation": self.observation,
            "duration_s": self.duration_s,
            "final_answer": self.final_answer,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallOutcome:
        return cls(
            ok=bool(data["ok"]),
            observation=str(data["observation"]),
            duration_s=float(data.get("duration_s", 0.0)),
            final_answer=data.get("final_answer"),
        )


@dataclass
class Trial:
    """One candidate tried in isolation.

    ``outcomes`` are the per-call results to adopt if it wins (None: it was not run and
    must run for real); ``handle`` is agent-specific (a CodeAgent's forked sandbox).
    """

    index: int
    action: Action
    ok: bool
    key: str
    outcomes: list[CallOutcome] | None = None
    handle: Any = None
    notes: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """What the step event records about this candidate."""
        return {"index": self.index, "ok": self.ok, "key": self.key[:200], "text": self.action.text}


@dataclass(frozen=True)
class Vote:
    """The chosen candidate, how many agreed with it, and how it was chosen."""

    winner: Trial
    votes: int
    counts: dict[str, int]
    rule: Literal["majority", "first_valid"]


def vote(trials: Sequence[Trial]) -> Vote | None:
    """Majority over the successful trials' keys; else the first trial; None if empty."""
    if not trials:
        return None
    ok = [t for t in trials if t.ok]
    if not ok:
        return Vote(winner=trials[0], votes=0, counts={}, rule="first_valid")
    counts = Counter(t.key for t in ok)
    best = max(counts.values())
    winner = next(t for t in ok if counts[t.key] == best)  # earliest among the largest group
    return Vote(winner=winner, votes=best, counts=dict(counts), rule="majority")
