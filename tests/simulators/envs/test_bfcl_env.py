"""BFCL as an environment: the reward is BFCL's AST match over the calls the agent tried."""

from __future__ import annotations

import copy

import pytest

from slmkit.simulators import SimulationError, load_env, run_episode
from slmkit.simulators.envs.bfcl import BFCL_ENV_CATEGORIES, BfclEnv


@pytest.fixture(scope="module")
def env() -> BfclEnv:
    e = load_env("bfcl", split="test")
    assert isinstance(e, BfclEnv)
    return e


def _first(env: BfclEnv, category: str) -> dict:
    return next(t for t in env.tasks() if t["category"].startswith(category))


@pytest.mark.parametrize("category", BFCL_ENV_CATEGORIES)
def test_gold_calls_earn_one(env: BfclEnv, category: str) -> None:
    traj = run_episode(env, _first(env, category), agent="gold")
    assert traj.reward == 1.0, traj.meta["reward_info"]


def test_wrong_calls_earn_zero(env: BfclEnv) -> None:
    task = _first(env, "simple")
    gold = env.gold_actions(task)
    assert gold
    env.reset(task)
    wrong = copy.deepcopy(gold[0])
    key = next(iter(wrong["arguments"]))
    value = wrong["arguments"][key]
    wrong["arguments"][key] = value + 1 if isinstance(value, int | float) else "something else"
    env.tools().execute(wrong)
    assert env.reward() == 0.0
    env.reset(task)  # no call at all
    env.submit("I would call a function.")
    assert env.reward() == 0.0


def test_irrelevance_penalises_any_call(env: BfclEnv) -> None:
    task = _first(env, "irrelevance")
    env.reset(task)
    fn = task["functions"][0]
    args = {p: 1 for p in fn["parameters"].get("required", [])}
    env.tools().execute({"name": fn["name"], "arguments": args})
    assert env.reward() == 0.0


def test_parallel_tasks_ask_for_parallel_single_step_actions(env: BfclEnv) -> None:
    env.reset(_first(env, "parallel"))
    hints = env.agent_hints()
    assert hints["max_steps"] == 1 and hints["parallel_calls"] is True
    assert set(hints["side_effect_tools"]) == set(env.tools().names)


def test_categories_joined_by_plus_are_one_interleaved_environment() -> None:
    env = load_env("bfcl:simple+parallel_multiple", split="test")
    tasks = list(env.tasks(limit=None))
    cats = [t["category"] for t in tasks]
    assert cats[:4] == ["simple_python", "parallel_multiple"] * 2
    assert set(cats) == {"simple_python", "parallel_multiple"}
    alone = [len(list(load_env(f"bfcl:{c}", split="test").tasks(limit=None))) for c in
             ("simple", "parallel_multiple")]  # fmt: skip
    assert len(tasks) == sum(alone)
    with pytest.raises(SimulationError, match="unknown BFCL category 'paralel'"):
        load_env("bfcl:simple+paralel")
