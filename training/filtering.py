"""Which teacher trajectories a student should learn from.

Kept: runs the environment verified (success), whose every model output parsed and
validated, that ended on their own (not cut off by ``max_steps`` while the task was
still open), whose tool calls name offered tools with JSON-object arguments, and that
render as training conversations. A run that hit a failing tool call and still
succeeded is kept by default: recovering from an error is worth learning. At most
``max_per_task`` runs per task, so easy tasks do not crowd out the rest.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from slmkit.agents import Trajectory
from slmkit.models import decode_arguments
from slmkit.training.data import agent_conversation
from slmkit.training.errors import TrainingError

__all__ = ["FilterResult", "filter_trajectories", "why_dropped"]


def why_dropped(traj: Trajectory, *, keep_recovered_errors: bool = True) -> str | None:
    """The reason ``traj`` is not training data, or None to keep it."""
    meta, metrics = traj.meta, traj.metrics
    if meta.get("error"):
        return "error"
    if not meta.get("success"):
        return "incorrect"
    if int(metrics.get("valid_outputs") or 0) < int(metrics.get("outputs") or 0):
        return "parse_error"
    if meta.get("stopped") == "max_steps" and not meta.get("ended"):
        return "max_steps"
    offered = {t.get("function", t).get("name") for t in traj.tools}
    for call in traj.tool_calls:
        if call["name"] not in offered or not isinstance(decode_arguments(call["arguments"]), dict):
            return "malformed_call"
    calls, ok_calls = int(metrics.get("tool_calls") or 0), int(metrics.get("ok_tool_calls") or 0)
    if ok_calls < calls and not keep_recovered_errors:
        return "tool_error"
    try:
        agent_conversation(traj)
    except TrainingError:
        return "unrenderable"
    return None


@dataclass
class FilterResult:
    """Kept trajectories and counts of why the others were dropped."""

    kept: list[Trajectory] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    recovered_errors: int = 0


def filter_trajectories(
    trajectories: Iterable[Trajectory],
    *,
    keep_recovered_errors: bool = True,
    max_per_task: int = 1,
) -> FilterResult:
    """Apply :func:`why_dropped` and the per-task cap (see the module docs)."""
    out = FilterResult()
    per_task: Counter[str] = Counter()
    for traj in trajectories:
        reason = why_dropped(traj, keep_recovered_errors=keep_recovered_errors)
        task = str(traj.meta.get("task_id") or traj.id)
        if reason is None and per_task[task] >= max_per_task:
            reason = "over_per_task_cap"
        if reason is not None:
            out.dropped[reason] += 1
            continue
        per_task[task] += 1
        out.kept.append(traj)
        if int(traj.metrics.get("ok_tool_calls") or 0) < int(traj.metrics.get("tool_calls") or 0):
            out.recovered_errors += 1
    return out
