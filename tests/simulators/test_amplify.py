"""Amplification: trajectories written under a schema built from the tools, all valid."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from slmkit.agents import Trajectory, read_trajectories
from slmkit.models import ChatModel, Completion, Request, WrappedModel
from slmkit.simulators import (
    AmplifyConfig,
    amplify,
    load_tools,
    repair_trajectory,
    validate_trajectory,
)
from slmkit.simulators.amplify import from_compact, to_compact, trajectory_schema
from slmkit.tools import ToolRegistry

TOOLS = [
    {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        "output_schema": {
            "type": "object",
            "properties": {
                "temperature_c": {"type": "integer"},
                "conditions": {"enum": ["sunny", "cloudy", "rain"]},
            },
            "required": ["temperature_c", "conditions"],
            "additionalProperties": False,
        },
    },
    {
        "name": "convert",
        "description": "Convert Celsius to Fahrenheit.",
        "parameters": {
            "type": "object",
            "properties": {"celsius": {"type": "number"}},
            "required": ["celsius"],
        },
    },
]
SEED = {
    "user": "Is it warm in Lisbon today?",
    "steps": [
        {
            "tool": "get_weather",
            "arguments": {"city": "Lisbon"},
            "output": {"temperature_c": 24, "conditions": "sunny"},
        }
    ],
    "answer": "Yes: 24 C and sunny in Lisbon.",
}


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path, ToolRegistry]:
    tools_path = tmp_path / "tools.json"
    tools_path.write_text(json.dumps(TOOLS))
    registry = ToolRegistry(load_tools(TOOLS)[0])
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(from_compact(SEED, registry).to_json() + "\n")
    return tools_path, seeds, registry


def test_compact_form_round_trips_and_validates(files: tuple[Path, Path, ToolRegistry]) -> None:
    _, seeds, registry = files
    seed = next(read_trajectories(seeds))
    assert validate_trajectory(seed, registry) == []
    assert to_compact(seed) == SEED
    schema = trajectory_schema(list(registry), max_steps=3)
    variants = schema["properties"]["steps"]["items"]["anyOf"]
    assert [v["properties"]["tool"]["const"] for v in variants] == ["get_weather", "convert"]


def test_validation_finds_and_repair_fixes_what_is_safe(
    files: tuple[Path, Path, ToolRegistry],
) -> None:
    _, seeds, registry = files
    good = next(read_trajectories(seeds))
    msgs = [dict(m) for m in good.messages]
    call = dict(msgs[1]["tool_calls"][0])
    call["function"] = {"name": "get_weather", "arguments": {"city": "Lisbon", "units": "metric"}}
    call["id"] = ""
    msgs[1] = {**msgs[1], "tool_calls": [call]}
    msgs[2] = {**msgs[2], "tool_call_id": "call_other"}
    broken = good.model_copy(update={"messages": msgs})
    problems = validate_trajectory(broken, registry)
    assert {p.split(":")[0] for p in problems} >= {
        "bad_call_id",
        "arguments_not_json_string",
        "invalid_arguments",
    }
    fixed, repairs, remaining = repair_trajectory(broken, registry)
    assert fixed is not None and remaining == [] and validate_trajectory(fixed, registry) == []
    assert {"call_id", "arguments_encoded", "arguments_fixed", "result_id"} <= set(repairs)
    unknown = good.model_copy(
        update={
            "messages": [
                msgs[0],
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "teleport", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "ok"},
                msgs[-1],
            ]
        }
    )
    dropped, _, why = repair_trajectory(unknown, registry)
    assert dropped is None and why[0].startswith("unknown_tool")
    no_answer = Trajectory(messages=msgs[:3])
    assert any(p.startswith("no_final_answer") for p in validate_trajectory(no_answer, registry))


def test_amplified_trajectories_all_validate(
    files: tuple[Path, Path, ToolRegistry], smollm: ChatModel, tmp_path: Path
) -> None:
    tools, seeds, registry = files
    out = tmp_path / "amplified.jsonl"
    cfg = AmplifyConfig(tools=tools, seeds=seeds, n=1, out=out, max_steps=2, max_tokens=200)
    summary = amplify(cfg, model=smollm)
    assert summary.generated == 1 and summary.kept + sum(summary.dropped.values()) == 1
    kept = list(read_trajectories(out))
    assert len(kept) == summary.kept
    for traj in kept:
        assert validate_trajectory(traj, registry) == []
        assert traj.meta["source"] == "amplify"
    again = amplify(cfg, model=smollm)  # resumes: nothing more to do
    assert again.generated == 1 and len(list(read_trajectories(out))) == summary.kept


class SeedLog(WrappedModel):
    """Passes rows to a real model and records the seed each row was sampled with."""

    def __init__(self, inner: ChatModel) -> None:
        super().__init__(inner)
        self.seeds: list[int | None] = []

    def chat_requests(self, requests: Sequence[Request]) -> list[Completion | Exception]:
        self.seeds += [r.sampling.seed for r in requests]
        return super().chat_requests(requests)


def test_each_sample_has_its_own_seed_in_a_batch(
    files: tuple[Path, Path, ToolRegistry], smollm: ChatModel, tmp_path: Path
) -> None:
    """Sample i is drawn with seed + i whatever the batch size: a batch used one seed for
    all its rows, so rows with the same prompt wrote the same trajectory B times."""
    tools, seeds, _ = files
    model = SeedLog(smollm)
    cfg = AmplifyConfig(
        tools=tools, seeds=seeds, n=3, batch=2, seed=10, out=tmp_path / "a.jsonl", max_tokens=64
    )
    amplify(cfg, model=model)
    assert model.seeds == [10, 11, 12]
