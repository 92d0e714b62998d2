"""math: procedural reasoning-gym problems and GSM8K, numeric-match reward, real tools."""

from __future__ import annotations

import pytest

from slmkit.models import ChatModel
from slmkit.simulators import SimulationError, load_env, run_episode
from slmkit.simulators.envs.math import (
    DEFAULT_GENERATORS,
    MathEnv,
    gsm8k_problems,
    reasoning_gym_generators,
)
from slmkit.simulators.envs.scoring import exact_match, extract_number, f1_score, numbers_match


def test_generators_of_the_default_mix_load_without_optional_packages() -> None:
    status = reasoning_gym_generators()
    assert all(status[g] is None for g in DEFAULT_GENERATORS), status


def test_procedural_tasks_are_seeded_and_split() -> None:
    a = load_env("math", split="test").tasks(limit=8).take(8)
    b = load_env("math", split="test").tasks(limit=8).take(8)
    assert a == b
    train = load_env("math", split="train").tasks(limit=8).take(8)
    assert {t["id"] for t in train}.isdisjoint({t["id"] for t in a})
    assert {t["source"] for t in a} >= {"gsm_symbolic", "basic_arithmetic"}


def test_gsm8k_has_the_100_test_problems_and_no_train_split() -> None:
    problems = gsm8k_problems()
    assert len(problems) == 100 and len({p["id"] for p in problems}) == 100
    env = load_env("math:gsm8k")
    assert env.tasks().take(1)[0]["answer"] == "10"
    with pytest.raises(SimulationError):
        env.tasks("train")


def test_reward_is_numeric_match() -> None:
    env = load_env("math:gsm8k")
    task = env.tasks().take(1)[0]
    for answer, reward in [
        ("10", 1.0),
        ("The answer is \\boxed{10}.", 1.0),
        ("10.0%", 1.0),
        ("11", 0.0),
        ("ten", 0.0),
        (None, 0.0),
    ]:
        env.reset(task)
        env.submit(answer)
        assert env.reward() == reward, answer
    assert run_episode(env, task, agent="gold").reward == 1.0


def test_python_and_calculator_tools_run_for_real() -> None:
    env = MathEnv(source="gsm8k")
    try:
        env.reset(env.tasks().take(1)[0])
        tools = env.tools()
        assert (
            tools.execute(
                {"name": "python", "arguments": {"code": "x = 6 * 7\nprint(x)"}}
            ).content.strip()
            == "42"
        )
        assert (
            tools.execute({"name": "python", "arguments": {"code": "print(x + 1)"}}).content.strip()
            == "43"
        )
        failed = tools.execute({"name": "python", "arguments": {"code": "1/0"}})
        assert not failed.ok and "ZeroDivisionError" in (failed.error or "")
        assert (
            tools.execute({"name": "calculator", "arguments": {"expression": "2**10"}}).content
            == "1024"
        )
        env.reset(env.tasks().take(2)[1])  # a new episode starts a fresh interpreter
        assert not tools.execute({"name": "python", "arguments": {"code": "print(x)"}}).ok
    finally:
        env.close()


def test_scoring_helpers() -> None:
    assert extract_number("It costs $1,234.50 in total") == 1234.5
    assert extract_number("3/4") == 0.75
    assert extract_number("#### 72") == 72
    assert numbers_match(0.1 + 0.2, 0.3)
    assert exact_match("The Eiffel Tower.", "eiffel tower")
    assert f1_score("Stanley Kubrick", "Kubrick") == pytest.approx(2 / 3)


@pytest.mark.slow
def test_code_agent_episode_on_gsm8k(smollm: ChatModel) -> None:
    env = load_env("math:gsm8k")
    try:
        traj = run_episode(
            env, env.tasks().take(1)[0], agent="code", model=smollm, options={"max_steps": 2}
        )
    finally:
        env.close()
    assert traj.meta["error"] is None and traj.meta["agent"] == "code"
    assert traj.reward in (0.0, 1.0) and traj.metrics["outputs"] >= 1
