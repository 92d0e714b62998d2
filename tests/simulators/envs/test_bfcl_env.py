"""BFCL as an environment: the reward is BFCL's AST match over the calls the agent tried."""

from __future__ import annotations

import copy

import pytest

from slmkit.simulators import SimulationError, load_env, run_episode
from slmkit.simulators.envs.bfcl import BFCL_ENV_CATEGORIES, BfclEnv
from slmkit.simulators.envs.bfcl_data import reference_calls


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
    assert env.reward_report().info["kind"] == "arguments"
    env.reset(task)  # no call at all
    env.submit("I would call a function.")
    assert env.reward() == 0.0
    assert env.reward_report().info["kind"] == "call count"


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


_WRITTEN_CATEGORIES = ("simple", "multiple", "parallel", "parallel_multiple")


def calls_of(env: BfclEnv, task: dict) -> list[dict]:
    """The task's reference calls with every optional argument written out."""
    item = env._item(task)
    return reference_calls(item, include_optional=True)


@pytest.mark.parametrize("category", _WRITTEN_CATEGORIES)
def test_a_written_task_is_answered_by_the_calls_it_was_written_from(category: str) -> None:
    """Every training item's reference calls, every optional argument written out, as a
    written task: those calls pass its checker (dicts, lists of dicts, defaults), and the
    same calls with one value changed do not."""
    env = load_env(f"bfcl:{category}", split="train")
    tasks = list(env.tasks(limit=40))
    for task in tasks:
        calls = calls_of(env, task)
        written = env.task_from_calls(task, f"Please do this: {task['prompt']}", calls)
        assert written["id"].startswith(f"{task['id']}~w") and written["split"] == "train"
        assert written["messages"] == [
            {"role": "user", "content": f"Please do this: {' '.join(task['prompt'].split())}"}
        ]
        traj = run_episode(env, written, agent="gold")
        assert traj.reward == 1.0, (task["id"], traj.meta["reward_info"])
    if category == "simple":  # one call: change one of its values
        task = tasks[0]
        call = calls_of(env, task)[0]
        key, value = next(
            (k, v) for k, v in call["arguments"].items() if type(v) in (str, int, float)
        )
        written = env.task_from_calls(task, "Do it.", [call])
        env.reset(written)
        changed = value + " and more" if isinstance(value, str) else value + 1
        env.tools().execute(
            {"name": call["name"], "arguments": {**call["arguments"], key: changed}}
        )
        assert env.reward() == 0.0


def test_a_written_task_lets_an_optional_argument_out_or_at_its_default() -> None:
    env = load_env("bfcl:simple", split="train")
    task = next(
        t
        for t in env.tasks(limit=None)
        if any(
            "default" in spec and p not in t["functions"][0]["parameters"].get("required", [])
            for p, spec in t["functions"][0]["parameters"]["properties"].items()
        )
    )
    fn = task["functions"][0]
    params = fn["parameters"]
    optional, spec = next(
        (p, s) for p, s in params["properties"].items()
        if "default" in s and p not in params.get("required", [])
    )  # fmt: skip
    call = calls_of(env, task)[0]
    args = {k: v for k, v in call["arguments"].items() if k != optional}
    written = env.task_from_calls(task, "Do it.", [{"name": fn["name"], "arguments": args}])
    for given in (args, {**args, optional: spec["default"]}):
        env.reset(written)
        env.tools().execute({"name": fn["name"], "arguments": given})
        assert env.reward() == 1.0, (given, env.reward_report().info)


def test_a_written_task_must_call_the_seeds_functions_with_their_required_arguments() -> None:
    env = load_env("bfcl:simple", split="train")
    task = next(iter(env.tasks(limit=1)))
    fn = task["functions"][0]
    with pytest.raises(SimulationError, match="is not a function of task"):
        env.task_from_calls(task, "Do it.", [{"name": "no_such_function", "arguments": {}}])
    if fn["parameters"].get("required"):
        with pytest.raises(SimulationError, match="misses its required argument"):
            env.task_from_calls(task, "Do it.", [{"name": fn["name"], "arguments": {}}])
    with pytest.raises(SimulationError, match="cannot judge written tasks"):
        load_env("math").task_from_calls({"id": "x"}, "Do it.", [])


def test_a_written_task_reads_bfcls_string_defaults_in_their_declared_type() -> None:
    """BFCL's docs write boolean defaults as "false": a call that passes False for an
    optional argument left out of the written call is as right as one that omits it."""
    env = load_env("bfcl:simple+multiple", split="train")

    def optional_flag(fn: dict) -> str | None:
        params = fn["parameters"]
        return next(
            (
                p
                for p, s in params["properties"].items()
                if s.get("type") == "boolean"
                and isinstance(s.get("default"), str)
                and p not in params.get("required", [])
            ),
            None,
        )

    task, fn, flag = next(
        (t, f, p)
        for t in env.tasks(limit=None)
        for f in t["functions"]
        if (p := optional_flag(f)) and calls_of(env, t)[0]["name"] == f["name"]
    )
    call = calls_of(env, task)[0]
    args = {k: v for k, v in call["arguments"].items() if k != flag}
    written = env.task_from_calls(task, "Do it.", [{"name": fn["name"], "arguments": args}])
    default = fn["parameters"]["properties"][flag]["default"].lower() == "true"
    for given in (args, {**args, flag: default}):
        env.reset(written)
        env.tools().execute({"name": fn["name"], "arguments": given})
        assert env.reward() == 1.0, (given, env.reward_report().info)
