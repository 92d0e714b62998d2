"""``bfcl``: single-turn function calling from the Berkeley Function Calling Leaderboard.

Each task is one BFCL question with its own function docs; the functions have no
implementation (BFCL judges the *call*, not a result), so calling one records the call
and returns an acknowledgement. The reward is BFCL's AST match
(:func:`slmkit.simulators.envs.bfcl_check.check_calls`) over every call the agent
attempted, including ones the registry rejected. One agent step is the whole task, with
parallel calls on for the parallel categories: :meth:`BfclEnv.agent_hints` says so.

BFCL has no train/test split; :func:`~slmkit.simulators.tasks.stable_split` assigns one
from each id (20 % test). Several categories joined by ``+`` (``bfcl:simple+multiple``)
are one environment that interleaves them, like ``bfcl`` alone does with all five: one
evaluation over the categories a student was trained on, with one paired comparison.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from slmkit.models import Message
from slmkit.simulators.base import Environment, RewardReport, Task
from slmkit.simulators.envs.bfcl_check import check_calls
from slmkit.simulators.envs.bfcl_data import BFCL_CATEGORIES, BfclItem, load_bfcl, reference_calls
from slmkit.simulators.errors import SimulationError
from slmkit.simulators.tasks import stable_split
from slmkit.tools import Tool

__all__ = ["BFCL_ENV_CATEGORIES", "BfclEnv"]

BFCL_ENV_CATEGORIES = ("simple", "multiple", "parallel", "parallel_multiple", "irrelevance")
"""The categories ``bfcl`` covers; ``bfcl`` alone interleaves them."""

_ACK = {"status": "ok", "note": "call recorded"}


class BfclEnv(Environment):
    """BFCL as an environment (see the module docs).

    Args:
        category: one category, several joined by ``+``, or None for all five; several
            are interleaved (item 0 of each, then item 1 of each, ...), so a small
            ``limit`` still samples every one of them.
        split, limit: as for every environment.
    """

    name = "bfcl"
    fixed_tools: ClassVar[bool] = False

    def __init__(
        self, *, category: str | None = None, split: str = "test", limit: int | None = None
    ) -> None:
        super().__init__(split=split, limit=limit)
        self.categories = (
            [_category(c) for c in category.split("+")] if category else list(BFCL_ENV_CATEGORIES)
        )
        self.category = "+".join(self.categories) if category else None
        self._items: dict[str, BfclItem] = {}

    def _tasks(self, split: str) -> Iterator[Task]:
        per_cat = [
            [i for i in load_bfcl(c) if stable_split(i.id) == split] for c in self.categories
        ]
        longest = max((len(items) for items in per_cat), default=0)
        for n in range(longest):
            for items in per_cat:
                if n < len(items):
                    self._items[items[n].id] = items[n]
                    yield _task(items[n], split)

    def _item(self, task: Mapping[str, Any]) -> BfclItem:
        item = self._items.get(str(task["id"]))
        if item is None:
            item = BfclItem(
                id=str(task["id"]),
                category=str(task["category"]),
                messages=list(task["messages"]),
                functions=list(task["functions"]),
                answers=list(task.get("answers", [])),
            )
        return item

    def _start(self, task: Task) -> list[Message]:
        return [dict(m) for m in self._item(task).messages]

    def _build_tools(self) -> list[Tool]:
        item = self._item(self._require_task())
        return [
            Tool.from_json_schema(
                f["name"], f.get("description", ""), f.get("parameters", {}), fn=_acknowledge
            )
            for f in item.functions
        ]

    def agent_hints(self) -> dict[str, Any]:
        task = self.task or {}
        parallel = str(task.get("category", "")).startswith("parallel")
        names = self.tools().names if self.task is not None else []
        return {
            "max_steps": 1,
            "parallel_calls": parallel,
            "max_parallel_calls": 8,
            "side_effect_tools": names,
        }

    @property
    def done(self) -> bool:
        """Single-turn: the episode ends with the first action (a call or an answer)."""
        return self.submitted or bool(self.calls)

    def _score(self, task: Task) -> RewardReport:
        item = self._item(task)
        calls = [{"name": c["name"], "arguments": c["arguments"]} for c in self.calls]
        verdict = check_calls(calls, item)
        return self._report(
            1.0 if verdict.correct else 0.0,
            {"ast": 1.0 if verdict.correct else 0.0},
            reason=verdict.reason,
            category=item.category,
        )

    def gold_actions(self, task: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        return [{**call, "step": 1} for call in reference_calls(self._item(task))]

    def gold_answer(self, task: Mapping[str, Any]) -> str | None:
        if task.get("category") == "irrelevance":
            return "None of the available functions can do this."
        return None


def _category(name: str) -> str:
    if name in BFCL_ENV_CATEGORIES:
        return name
    known = {"simple_python": "simple", **{c: c for c in BFCL_CATEGORIES}}
    if name not in known:
        raise SimulationError(
            f"unknown BFCL category {name!r}",
            hint=f"choose one of {', '.join(BFCL_ENV_CATEGORIES)} (several joined by '+')",
        )
    return known[name]


def _acknowledge(**arguments: Any) -> dict[str, Any]:
    return dict(_ACK)


def _task(item: BfclItem, split: str) -> Task:
    prompt = next((m["content"] for m in reversed(item.messages) if m["role"] == "user"), "")
    return {
        "id": item.id,
        "split": split,
        "category": item.category,
        "prompt": prompt,
        "messages": item.messages,
        "functions": item.functions,
        "answers": item.answers,
    }
