"""The generated first thought: a reasoning prompt on the real embedded model, cleaned so
both action grammars take it literally."""

from __future__ import annotations

import pytest

from slmkit.agents import CodeAgent, generate_first_thought
from slmkit.agents.first_thought import clean_thought
from slmkit.models import ChatModel


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("\n\nStep 1: Find the id of Alice. Then look up her balance.", "Find the id of Alice."),
        ("First, I use `calculator` on 17*23\nmore", "I use 'calculator' on 17*23"),
        ("I will look up every account of every customer", "I will look up every account"),
        ("1. First, I will add 1 and 2.\n2. Then", "I will add 1 and 2."),
        ("  \n ok", None),
    ],
)
def test_a_thought_is_one_short_literal_sentence(raw: str, clean: str | None) -> None:
    assert clean_thought(raw, max_chars=30) == clean


def test_the_model_writes_a_first_step_and_the_agent_continues_it(smollm: ChatModel) -> None:
    task = "What is the sum of the squares of the numbers from 1 to 10?"
    thought = generate_first_thought(smollm, task, max_chars=80)
    assert thought.text is not None and 3 <= len(thought.text) <= 80
    assert "\n" not in thought.text and "`" not in thought.text
    assert thought.model == "smollm2" and thought.prompt_tokens > 0
    agent = CodeAgent(smollm, [], max_steps=1, first_thought=thought.text, checkpoint="none")
    with agent:
        result = agent.run(task)
    first = result.trajectory.messages[2]["content"]
    assert first.startswith(f"Thought: {thought.text}")  # continued from there
