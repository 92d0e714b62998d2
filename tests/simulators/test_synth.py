"""Written tasks: the real model writes tasks from verified runs under the tools' schemas;
each is a real BFCL task whose answer is the written calls; the attempts log resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slmkit.agents import Trajectory
from slmkit.models import ChatModel
from slmkit.simulators import CollectConfig, SimulationError, collect, load_env, run_episode
from slmkit.simulators.envs.bfcl import BfclEnv
from slmkit.simulators.synth import about, states_values, task_schema, write_tasks


@pytest.fixture(scope="module")
def env() -> BfclEnv:
    e = load_env("bfcl:simple", split="train")
    assert isinstance(e, BfclEnv)
    return e


@pytest.fixture(scope="module")
def seeds(env: BfclEnv) -> list[Trajectory]:
    """Verified runs of four training tasks (the reference calls replayed)."""
    return [run_episode(env, t, agent="gold") for t in env.tasks(limit=4)]


def test_written_tasks_are_real_tasks_answered_by_their_calls(
    env: BfclEnv, seeds: list[Trajectory], smollm: ChatModel, tmp_path: Path
) -> None:
    log = tmp_path / "tasks.jsonl"
    failed = seeds[0].model_copy(update={"meta": {**seeds[0].meta, "success": False}})
    written = write_tasks([failed, *seeds[1:3]], env, smollm, per_seed=2, out=log, seed=3)
    assert written.attempts == 4  # the failed run wrote nothing
    assert len(written.tasks) + sum(written.dropped.values()) == 4
    known = {"seed_calls", "seed_request", "values_not_in_request", "about_the_example"}
    assert set(written.dropped) <= known | {"rejected", "duplicate", "invalid_output"}
    for task in written.tasks:
        seed = next(s for s in seeds if task["id"].startswith(f"{s.id}~w"))
        assert task["functions"] == seed.task["functions"]
        assert task["answers"] and task["prompt"][0].isalpha()
        gold = run_episode(env, task, agent="gold")  # its answer is what it was written from
        assert gold.reward == 1.0, gold.meta["reward_info"]
    lines = log.read_text().splitlines()
    assert len(lines) == 4 and {json.loads(x)["key"] for x in lines} == {
        f"{s.id}#{k}" for s in seeds[1:3] for k in range(2)
    }
    again = write_tasks([failed, *seeds[1:3]], env, smollm, per_seed=2, out=log, seed=3)
    assert len(log.read_text().splitlines()) == 4  # resumed: nothing written twice
    assert [t["id"] for t in again.tasks] == [t["id"] for t in written.tasks]


def test_the_task_schema_holds_the_seeds_number_of_calls_of_its_tools(
    env: BfclEnv, seeds: list[Trajectory]
) -> None:
    env.reset(seeds[0].task)
    schema = task_schema(env.tools(), 2)
    assert list(schema["properties"]) == ["calls", "user"]  # calls first, then the request
    calls = schema["properties"]["calls"]
    assert calls["minItems"] == calls["maxItems"] == 2
    assert seeds[0].tool_calls[0]["name"] in json.dumps(calls)


def test_a_request_must_state_the_values_of_its_calls() -> None:
    calls = [
        {"name": "area", "arguments": {"base": 10, "height": 5.5, "unit": "cm", "exact": True}}
    ]
    assert states_values("The area of a triangle, base 10 cm and height 5.5?", calls)
    assert not states_values("The area of a triangle, base 10 and height 5.5?", calls)  # no cm
    assert not states_values("What is the capital of Brazil?", calls)
    nested = [{"name": "f", "arguments": {"points": [[1, 2], [3, 4]], "by": {"key": "Lyon"}}}]
    assert states_values("From (1, 2) to (3, 4) in  Lyon", nested)
    assert not states_values("From (1, 2) to (3, 5) in lyon", nested)


def test_collect_runs_given_tasks_and_refuses_repeated_ids(
    env: BfclEnv, seeds: list[Trajectory], tmp_path: Path
) -> None:
    calls = [{"name": c["name"], "arguments": c["arguments"]} for c in seeds[0].tool_calls]
    task = env.task_from_calls(seeds[0].task, "Please do: " + seeds[0].task["prompt"], calls)
    cfg = CollectConfig(env="bfcl:simple", agent="gold", out=tmp_path / "w.jsonl", progress=False)
    summary = collect(cfg, tasks=[task])
    assert summary.tasks == 1 and summary.successes == 1
    with pytest.raises(SimulationError, match="duplicate task ids"):
        collect(cfg.model_copy(update={"out": tmp_path / "x.jsonl"}), tasks=[task, task])


def test_a_request_must_be_about_its_own_functions_not_the_examples(env: BfclEnv) -> None:
    """Seen with the 135M writer: a request about the example's subject over the seed's
    calls; a one-function task's solver calls that function anyway, so the checker
    alone would pass it."""
    tasks = list(env.tasks(limit=None))

    def run_on(word: str) -> Trajectory:
        task = next(t for t in tasks if word in t["functions"][0]["name"])
        return run_episode(env, task, agent="gold")

    quadratic, circle = run_on("quadratic"), run_on("circle")
    assert about("Find the roots of the quadratic equation 2x^2 + 6x + 5", quadratic, circle)
    assert not about("What's the area of a circle with a radius of 10?", quadratic, circle)
    assert about("What's the area of a circle with a radius of 10?", circle, quadratic)
