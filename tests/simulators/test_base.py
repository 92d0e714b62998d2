"""The Environment contract, task sets and the registry (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slmkit.simulators import Environment, RewardReport, SimulationError, Task, env_tool, load_env
from slmkit.simulators.base import TaskSet
from slmkit.simulators.tasks import read_tasks_jsonl, stable_split


class Counter(Environment):
    """A tiny environment: reach the target count with ``add``."""

    name = "counter"

    def _tasks(self, split: str) -> list[Task]:
        return [
            {"id": f"c{i}", "split": split, "prompt": f"reach {i}", "target": i} for i in range(5)
        ]

    def _start(self, task: Task) -> list[dict[str, str]]:
        self.total = 0
        return [{"role": "user", "content": task["prompt"]}]

    @env_tool
    def add(self, amount: int) -> int:
        """Add to the counter and return the new total.

        Args:
            amount: how much to add
        """
        self.total += amount
        return self.total

    def _score(self, task: Task) -> RewardReport:
        ok = self.total == task["target"]
        return self._report(float(ok), {"target": float(ok)})


def test_tools_are_typed_methods_and_calls_are_recorded() -> None:
    env = Counter()
    env.reset(env.tasks().take(4)[3])
    registry = env.tools()
    assert registry.names == ["add"]
    assert registry["add"].parameters["properties"]["amount"]["type"] == "integer"
    assert registry["add"].output_schema == {"type": "integer"}
    assert registry.execute({"name": "add", "arguments": {"amount": 3}}).ok
    bad = registry.execute({"name": "add", "arguments": {"amount": "many"}})
    assert not bad.ok
    # a rejected call is still recorded: checkers must see what the model tried
    assert [c["ok"] for c in env.calls] == [True, False]
    assert env.reward() == 1.0 and env.reward_report().success
    assert env.reward_breakdown() == {"target": 1.0}


def test_reward_before_reset_is_a_clear_error() -> None:
    with pytest.raises(SimulationError, match="reset"):
        Counter().reward()


def test_task_sets_have_splits_limits_and_stable_ids() -> None:
    env = Counter(limit=2)
    assert [t["id"] for t in env.tasks()] == ["c0", "c1"]
    assert len(env.tasks()) == 2
    assert env.tasks(limit=3).take(10)[-1]["id"] == "c2"
    with pytest.raises(SimulationError, match="split"):
        env.tasks("dev")
    unbounded = TaskSet("x", "test", lambda: iter(range(10**9)))  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError):
        len(unbounded)
    assert stable_split("abc") == stable_split("abc")
    share = sum(stable_split(f"t{i}") == "test" for i in range(2000)) / 2000
    assert 0.15 < share < 0.25


def test_read_tasks_jsonl_adds_ids_and_splits(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text(
        json.dumps({"question": "q1", "answer": "a"})
        + "\n"
        + json.dumps({"id": "x", "q": 1})
        + "\n"
    )
    tasks = read_tasks_jsonl(path)
    assert tasks[1]["id"] == "x" and tasks[0]["id"] and all("split" in t for t in tasks)
    assert read_tasks_jsonl(path)[0]["id"] == tasks[0]["id"]  # stable


def test_a_line_separator_inside_a_string_does_not_split_a_record(tmp_path: Path) -> None:
    """json.dumps(ensure_ascii=False) writes U+2028 unescaped; only "\n" ends a record."""
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps({"id": "a", "q": "one\u2028two"}, ensure_ascii=False) + "\n")
    assert [t["q"] for t in read_tasks_jsonl(path)] == ["one\u2028two"]


def test_load_env_unknown_name_hints_the_known_ones() -> None:
    with pytest.raises(SimulationError) as info:
        load_env("chess")
    assert info.value.hint is not None and "bfcl" in info.value.hint
