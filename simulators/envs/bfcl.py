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

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

from slmkit.models import Message
from slmkit.simulators.base import Environment, RewardReport, Task
from slmkit.simulators.envs.bfcl_check import check_calls, equivalent
from slmkit.simulators.envs.bfcl_data import (
    BFCL_CATEGORIES,
    BfclItem,
    function_doc,
    load_bfcl,
    reference_calls,
)
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
            kind=verdict.kind,
            category=item.category,
        )

    def gold_actions(self, task: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        return [{**call, "step": 1} for call in reference_calls(self._item(task))]

    def task_from_calls(
        self, seed: Mapping[str, Any], request: str, calls: Sequence[Mapping[str, Any]]
    ) -> Task:
        """A task of ``seed``'s category and functions: ``request``, answered by ``calls``.

        Each written argument is the only value allowed for it (a dict's keys each their
        own, as BFCL writes them); an optional argument the calls leave out may stay out,
        or take its documented default. An optional argument written at its default may
        be left out too.
        """
        item = self._item(seed)
        answers: list[dict[str, dict[str, list[Any]]]] = []
        for call in calls:
            name, args = str(call["name"]), dict(call.get("arguments") or {})
            doc = function_doc(item.functions, name)
            if doc is None:
                raise SimulationError(
                    f"{name!r} is not a function of task {item.id}",
                    hint="calls of a written task name the seed task's functions",
                )
            params = doc.get("parameters") or {}
            props: Mapping[str, Any] = params.get("properties") or {}
            required = set(params.get("required") or ())
            allowed: dict[str, list[Any]] = {}
            for param, spec in props.items():
                default = _typed_default(spec)
                if param in args:
                    values = [_possible(args[param], spec)]
                    if param not in required and default != "" and equivalent(args[param], default):
                        values.append("")
                elif param not in required:
                    values = ["", _possible(default, spec)] if default != "" else [""]
                else:
                    raise SimulationError(
                        f"{name} misses its required argument {param!r}",
                        hint="write calls under the function's own argument schema",
                    )
                allowed[param] = values
            answers.append({name: allowed})
        content = " ".join(request.split())
        digest = hashlib.sha256(
            json.dumps([item.id, content, answers], sort_keys=True, default=str).encode()
        ).hexdigest()[:12]
        written = BfclItem(
            id=f"{item.id}~w{digest}",
            category=item.category,
            messages=[{"role": "user", "content": content}],
            functions=item.functions,
            answers=answers,
        )
        return _task(written, str(seed.get("split") or self.split))

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


def _possible(value: Any, spec: Mapping[str, Any]) -> Any:
    """A written value in BFCL's possible-answer form, by the parameter's declared type
    (as :func:`~slmkit.simulators.envs.bfcl_data.reference_calls` reads it back): a
    ``dict`` as ``{key: [value]}``, an array of ``dict`` items as such dicts (the checker
    compares them key by key); anything else as it is."""
    items = spec.get("items")
    items_type = items.get("type") if isinstance(items, Mapping) else None
    if spec.get("type") == "dict" and isinstance(value, dict):
        return {k: [v] for k, v in value.items()}
    if spec.get("type") in ("array", "tuple") and items_type == "dict" and isinstance(value, list):
        return [{k: [x] for k, x in v.items()} if isinstance(v, dict) else v for v in value]
    return value


def _typed_default(spec: Mapping[str, Any]) -> Any:
    """A parameter's documented default in its declared type (``""``: none). BFCL's docs
    write boolean defaults as ``"false"`` and float defaults as integers; the checker
    would reject ``False`` for ``"false"``."""
    default = spec.get("default", "") if isinstance(spec, Mapping) else ""
    kind = spec.get("type") if isinstance(spec, Mapping) else None
    if kind == "boolean" and isinstance(default, str) and default.lower() in ("true", "false"):
        return default.lower() == "true"
    if kind == "float" and type(default) is int:
        return float(default)
    return default


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
