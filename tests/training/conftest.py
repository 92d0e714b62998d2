"""Fixtures of the training tests: the real embedded student and real BFCL trajectories.

Trajectories come from BFCL's reference answers replayed through the real environment
(the ``gold`` agent), so they are correct, cheap and deterministic; the student is the
embedded SmolLM2-135M converted to an HF folder once (cached across sessions).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from slmkit.agents import Trajectory
from slmkit.tools import ToolCall


@pytest.fixture(scope="session")
def student_dir() -> Path:
    """The embedded SmolLM2-135M as an HF folder (converted from its GGUF once)."""
    from slmkit.models.hf import convert_embedded

    return convert_embedded("smollm2")


@pytest.fixture(scope="session")
def tokenizer(student_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(student_dir))


@pytest.fixture(scope="session")
def gold_trajectories() -> list[Trajectory]:
    """Six correct BFCL ``simple`` runs, replayed through the real environment."""
    from slmkit.simulators import load_env, run_episode

    env = load_env("bfcl:simple", split="train")
    return [run_episode(env, task, agent="gold") for task in env.tasks().take(6)]


@pytest.fixture()
def multi_turn() -> Trajectory:
    """A two-call run with a recovered tool error and a final answer, as collect writes it."""
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather of a city.",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string", "description": "city name"}},
                    "required": ["city"],
                },
            },
        }
    ]
    bad = ToolCall(name="get_weather", arguments={"city": "Pari"}, id="call_1")
    good = ToolCall(name="get_weather", arguments={"city": "Paris"}, id="call_2")
    system = (
        "You are an agent that solves the user's task step by step with tools. Each step, "
        'reply with one JSON action: call a tool {"name": ..., "arguments": {...}}, or finish '
        'with {"final_answer": ...}. After each tool call you get its result as '
        '"Observation: ...".\n\nTools:\n- get_weather(city: string): Current weather of a city.'
        "\n    city: city name"
    )
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": system},
        {"role": "user", "content": "Is it raining in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [bad.to_openai()]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Error: unknown city 'Pari'"},
        {"role": "assistant", "content": "", "tool_calls": [good.to_openai()]},
        {"role": "tool", "tool_call_id": "call_2", "content": json.dumps({"rain": True})},
        {"role": "assistant", "content": "Yes, it is raining in Paris."},
    ]
    return Trajectory(
        id="weather-1",
        messages=messages,
        tools=tools,
        reward=1.0,
        metrics={"outputs": 3, "valid_outputs": 3, "tool_calls": 2, "ok_tool_calls": 1},
        meta={"agent": "tool", "success": True, "stopped": "final_answer", "task_id": "weather-1"},
    )
