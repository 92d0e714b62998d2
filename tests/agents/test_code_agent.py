"""CodeAgent with the real embedded model and the real sandbox.

SmolLM2-135M does not write coherent multi-step programs, so the runtime tests (state
across steps, host tools, isolation of sampled candidates, resume) use
:class:`ScriptedCode`: the model decodes every step for real, its thought is free, and
its code is held by the grammar to the scripted alternatives of that step (a choice
among them when there are several). What is under test is the runtime, not the model's
coding. One test runs the agent unscripted to show the envelope always parses.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from agent_helpers import assert_all_actions_valid

from slmkit.agents import CodeAgent
from slmkit.agents.actions import Pins
from slmkit.models import ChatModel
from slmkit.tools import Tool, tool


class ScriptedCode(CodeAgent):
    """A CodeAgent whose grammar admits only the scripted cells of each step."""

    def __init__(
        self, model: ChatModel, tools: list[Tool], cells: list[list[str]], **kw: Any
    ) -> None:
        super().__init__(model, tools, **kw)
        self.cells = cells

    def _decode(self, step: int, pins: Pins, quote: str | None) -> dict[str, Any]:
        options = self.cells[min(step, len(self.cells)) - 1]
        code = " | ".join(json.dumps(c + "\n```") for c in options)
        grammar = "\n".join(
            [
                'start: "Thought: " THOUGHT "\\n```python\\n" code',
                "THOUGHT: /[^\\n`]{1,24}/",
                f"code: {code}",
            ]
        )
        return {"grammar": grammar, "max_tokens": 120}


class Shop:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.tools = [tool(self.get_price), tool(self.boom)]

    def get_price(self, item: str) -> float:
        """the price of an item in dollars"""
        self.calls["get_price"] += 1
        return {"apple": 0.5, "pear": 0.75}[item]

    def boom(self) -> int:
        """a host tool that is interrupted (Ctrl-C) the first time it runs"""
        self.calls["boom"] += 1
        if self.calls["boom"] == 1:
            raise KeyboardInterrupt
        return 7


TASK = "How much do 3 apples cost?"


def test_sandbox_state_persists_across_steps_and_code_calls_host_tools(smollm: ChatModel) -> None:
    shop = Shop()
    cells = [["p = get_price('apple')\nprint(p)"], ["final_answer(p * 3)"]]
    agent = ScriptedCode(smollm, shop.tools, cells, max_steps=3, checkpoint="none")
    result = agent.run(TASK)
    assert result.stopped == "final_answer" and result.answer == "1.5"
    assert shop.calls == {"get_price": 1}  # called from code, on the host, once
    obs = [e for e in result.events if e.kind == "observation"]
    assert [o.observation for o in obs] == ["0.5", "(no output)"]
    assert result.metrics.steps == 2
    assert result.trajectory.messages[2]["content"].startswith("Thought: ")
    assert result.trajectory.messages[3]["content"] == "Observation:\n0.5"
    assert_all_actions_valid(result)


def test_sampled_candidates_run_in_isolated_forks(smollm: ChatModel) -> None:
    probe = "print('y' in globals(), os.path.exists('f.txt'))"
    effects = {
        "del y": (False, False),
        "open('f.txt', 'w').write('x')": (True, True),
        "del y\nopen('f.txt', 'w').write('x')": (False, True),
    }
    cells = [
        ["import os\ny = 1\nprint('ready')"],
        [f"{probe}\n{effect}" for effect in effects],
        [probe],
    ]
    agent = ScriptedCode(smollm, [], cells, max_steps=3, sample_k=3, checkpoint="none")
    result = agent.run("Probe the sandbox.")
    assert_all_actions_valid(result)
    step2 = next(e for e in result.events if e.kind == "action" and e.step == 2)
    assert len(step2.candidates) == 3
    # Each candidate changes the state after probing it; each probe still sees the
    # state before the step, so no candidate saw another's deletion or file.
    assert all(c["key"].startswith("True False") for c in step2.candidates)
    winner = next(c for c in step2.candidates if c["chosen"])
    effect = winner["text"].split(probe + "\n", 1)[1].removesuffix("\n```")
    final = next(e for e in result.events if e.kind == "observation" and e.step == 3)
    # The real sandbox holds the winner's effects, and only those.
    assert final.observation == " ".join(str(x) for x in effects[effect])


@pytest.mark.slow
def test_a_run_interrupted_mid_cell_resumes_by_replaying_cells_from_tape(
    smollm: ChatModel, db: Path
) -> None:
    shop = Shop()
    cells = [
        ["p = get_price('apple')\nprint(p)"],
        ["q = boom()\nprint(q)"],
        ["final_answer(p * 3)"],
    ]
    first = ScriptedCode(smollm, shop.tools, cells, max_steps=4, checkpoint_path=db)
    with pytest.raises(KeyboardInterrupt):
        first.run(TASK, thread_id="shop")
    first.close()  # its sandbox is gone, as in a new process
    second = ScriptedCode(smollm, shop.tools, cells, max_steps=4, checkpoint_path=db)
    result = second.run(TASK, thread_id="shop")
    second.close()
    assert result.stopped == "final_answer" and result.answer == "1.5"  # p was restored
    # Replaying cell 1 into the new sandbox served get_price from the tape: it ran once.
    assert shop.calls == {"get_price": 1, "boom": 2}
    assert [e.observation for e in result.events if e.kind == "observation"][:2] == ["0.5", "7"]


def test_unscripted_code_actions_always_parse(smollm: ChatModel) -> None:
    agent = CodeAgent(
        smollm, [], max_steps=2, max_thought_chars=60, max_code_chars=120, checkpoint="none"
    )
    result = agent.run("Print the squares of the numbers 1 to 5.")
    assert_all_actions_valid(result)
    for e in result.events:
        if e.kind == "action":
            assert e.text is not None and e.text.startswith("Thought: ")
            assert e.text.endswith("\n```") and "```python\n" in e.text
