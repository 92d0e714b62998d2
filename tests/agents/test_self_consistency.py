"""Self-consistency never repeats a side effect: only tools declared pure run for
candidates that may lose the vote.

Each agent samples three candidates of one step with the real embedded model, under a
grammar that lets them only call a tool that counts its calls (the model still picks
the argument). The counter says how often the tool really ran: once per candidate when
it is declared pure (each candidate was tried, the winner's result adopted), once in
all otherwise (the candidates were voted on before anything ran).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from test_code_agent import ScriptedCode

from slmkit.agents import RunResult, ToolAgent
from slmkit.agents.actions import Pins
from slmkit.models import ChatModel
from slmkit.tools import Tool, calculator, tool


class Notebook:
    """``note(text)``, counting its calls: declared pure or not, as the test says."""

    def __init__(self, *, pure: bool) -> None:
        self.calls: Counter[str] = Counter()
        self.tool: Tool = tool(self.note, pure=pure)

    def note(self, text: str) -> str:
        """write a note"""
        self.calls[text] += 1
        return f"noted {text}"


class OnlyNotes(ToolAgent):
    """A ToolAgent whose grammar admits only calls of ``note`` with one of two texts."""

    def _decode(self, step: int, pins: Pins, quote: str | None) -> dict[str, Any]:
        text = {"enum": ["milk", "eggs"]}
        arguments = {
            "type": "object",
            "properties": {"text": text},
            "required": ["text"],
            "additionalProperties": False,
        }
        schema = {
            "type": "object",
            "properties": {"name": {"const": "note"}, "arguments": arguments},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        return {"schema": schema, "max_tokens": 32}


def _tool_run(model: ChatModel, pure: bool, **options: Any) -> tuple[RunResult, Notebook]:
    book = Notebook(pure=pure)
    agent = OnlyNotes(
        model, [book.tool, calculator], max_steps=1, sample_k=3, checkpoint="none", **options
    )
    with agent:
        return agent.run("Write down what to buy."), book


def _candidates(result: RunResult) -> list[dict[str, Any]]:
    action = next(e for e in result.events if e.kind == "action")
    assert len(action.candidates) == 3
    return action.candidates


def test_candidates_of_an_undeclared_tool_are_voted_on_before_it_runs_once(
    smollm: ChatModel,
) -> None:
    result, book = _tool_run(smollm, pure=False)
    candidates = _candidates(result)
    assert all(c["key"].startswith('calls:["note"') for c in candidates)  # the action itself
    winner = json.loads(next(c["text"] for c in candidates if c["chosen"]))
    assert book.calls == {winner["arguments"]["text"]: 1}


def test_candidates_of_a_pure_tool_each_run_and_the_winner_is_adopted(
    smollm: ChatModel,
) -> None:
    result, book = _tool_run(smollm, pure=True)
    candidates = _candidates(result)
    assert all(c["key"].startswith("observations:noted ") for c in candidates), candidates
    tried = Counter(json.loads(c["text"])["arguments"]["text"] for c in candidates)
    assert book.calls == tried  # three runs in all: none more for the winner
    assert result.trajectory.messages[-1]["content"].startswith("noted ")


def test_side_effect_tools_overrides_a_pure_declaration(smollm: ChatModel) -> None:
    _, book = _tool_run(smollm, pure=True, side_effect_tools=["note"])
    assert sum(book.calls.values()) == 1


@pytest.mark.parametrize(("pure", "runs"), [(False, 1), (True, 3)])
def test_code_candidates_call_only_pure_host_tools_in_their_forks(
    smollm: ChatModel, pure: bool, runs: int
) -> None:
    book = Notebook(pure=pure)
    cells = [["print(note('milk'))"], ["final_answer('done')"]]
    agent = ScriptedCode(smollm, [book.tool], cells, max_steps=2, sample_k=3, checkpoint="none")
    with agent:
        result = agent.run("Write down what to buy.")
    assert book.calls == {"milk": runs}
    first = next(e for e in result.events if e.kind == "observation" and e.step == 1)
    assert first.ok and first.observation == "noted milk"  # the winner's effect, once
    assert result.answer == "done"
