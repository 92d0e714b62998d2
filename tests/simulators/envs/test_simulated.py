"""SimulatedEnvironment: schema-valid simulated outputs, consistent within an episode."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from slmkit.models import ChatModel
from slmkit.simulators import SimulatedEnvironment, load_tools
from slmkit.simulators.envs.consistency import Observation, entity_conflicts, pin_schema

ORDER = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "status": {"enum": ["pending", "shipped", "delivered", "cancelled"]},
        "total": {"type": "number", "minimum": 0, "maximum": 10000},
    },
    "required": ["order_id", "status", "total"],
    "additionalProperties": False,
}
STATUS = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "status": ORDER["properties"]["status"]},
    "required": ["order_id", "status"],
    "additionalProperties": False,
}
TOOLS: list[dict[str, Any]] = [
    {
        "name": "get_order",
        "description": "Look up an order by id.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
        "output_schema": ORDER,
    },
    {
        "name": "get_order_status",
        "description": "The shipping status of an order.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
        "output_schema": STATUS,
    },
    {
        "name": "cancel_order",
        "description": "Cancel a pending order.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
        "output_schema": ORDER,
    },
]


def _env(model: ChatModel, **options: Any) -> SimulatedEnvironment:
    tools, mutating = load_tools(TOOLS)
    tasks = [{"id": "t1", "split": "test", "prompt": "What is the status of order #W1?"}]
    return SimulatedEnvironment(
        tools,
        model=model,
        tasks=tasks,
        mutating=mutating,
        allow_errors=False,
        max_output_tokens=64,
        **options,
    )


def test_outputs_are_schema_valid_and_consistent_within_an_episode(smollm: ChatModel) -> None:
    env = _env(smollm, check=lambda e: float(any(h["name"] == "get_order" for h in e.history)))
    env.reset(env.tasks().take(1)[0])
    tools = env.tools()
    first = tools.execute({"name": "get_order", "arguments": {"order_id": "#W1"}})
    assert first.ok, first.error
    jsonschema.validate(first.output, ORDER)
    assert first.output["order_id"] == "#W1"  # the argument is echoed, pinned by the schema
    again = tools.execute({"name": "get_order", "arguments": {"order_id": "#W1"}})
    assert again.output == first.output  # same call, same output, no new model call
    status = tools.execute({"name": "get_order_status", "arguments": {"order_id": "#W1"}})
    jsonschema.validate(status.output, STATUS)
    assert status.output["status"] == first.output["status"]  # agrees with the earlier state
    generated = [e for e in env.log if e["kind"] == "tool" and not e["cached"]]
    assert len(generated) == 2 and all(e["valid"] for e in generated)
    assert [e["cached"] for e in env.log] == [False, True, False]
    env.submit("It is " + status.output["status"])
    assert env.reward() == 1.0  # the check function
    info = env.episode_info()
    assert info["simulated"] and len(info["log"]) == 3


def test_a_mutating_tool_may_return_a_number(smollm: ChatModel) -> None:
    """An output schema may be anything: a mutating tool's number result is a result (the
    cache check read ``"error" in output`` and raised TypeError on a number)."""
    deposit = {
        "name": "deposit",
        "description": "Deposit an amount and return the new balance.",
        "parameters": {
            "type": "object",
            "properties": {"amount": {"type": "number"}},
            "required": ["amount"],
        },
        "output_schema": {"type": "number", "minimum": 0, "maximum": 1000000},
    }
    tools, _ = load_tools([deposit])
    env = SimulatedEnvironment(
        tools, model=smollm, tasks=[{"id": "t1", "split": "test", "prompt": "Deposit 5."}],
        mutating={"deposit": True}, allow_errors=False, max_output_tokens=16,
    )  # fmt: skip
    env.reset(env.tasks().take(1)[0])
    result = env.tools().execute({"name": "deposit", "arguments": {"amount": 5}})
    assert result.ok, result.error
    assert isinstance(result.output, int | float)


def test_pins_follow_arguments_and_the_latest_record_of_an_entity() -> None:
    earlier = [{"order_id": "#W1", "status": "pending", "total": 10.0}]
    pinned, pins = pin_schema(STATUS, {"order_id": "#W1"}, earlier)
    assert pins == {"order_id": "#W1", "status": "pending"}
    assert pinned["properties"]["status"] == {"const": "pending"}
    later = [*earlier, {"order_id": "#W1", "status": "cancelled", "total": 10.0}]
    assert pin_schema(STATUS, {"order_id": "#W1"}, later)[1]["status"] == "cancelled"
    assert pin_schema(STATUS, {"order_id": "#W2"}, earlier)[1] == {"order_id": "#W2"}
    bad_value = [{"order_id": "#W1", "status": "lost"}]  # not in the enum: never pinned
    assert "status" not in pin_schema(STATUS, {"order_id": "#W1"}, bad_value)[1]


def test_entity_conflicts_are_counted_unless_a_mutation_came_between() -> None:
    a = {"order_id": "#W1", "status": "pending", "items": [{"item_id": "i1", "price": 5}]}
    b = {"order_id": "#W1", "status": "delivered", "items": [{"item_id": "i1", "price": 5}]}
    comparisons, conflicts, examples = entity_conflicts(
        [Observation("get_order", False, a), Observation("get_order", False, b)]
    )
    assert conflicts == 1 and comparisons >= 2 and "status" in examples[0]
    _, conflicts, _ = entity_conflicts(
        [Observation("get_order", False, a), Observation("cancel_order", True, b)]
    )
    assert conflicts == 0
    two_items = {"order_id": "#W2", "items": [
        {"product_id": "p1", "item_id": "i1", "price": 5},
        {"product_id": "p1", "item_id": "i2", "price": 7},
    ]}  # fmt: skip
    assert entity_conflicts([Observation("get_order", False, two_items)])[1] == 0


def test_tools_file_format_and_mutating_guess() -> None:
    tools, _ = load_tools(TOOLS)
    assert [t.name for t in tools] == ["get_order", "get_order_status", "cancel_order"]
    env = SimulatedEnvironment(tools, model="llamacpp:smollm2")
    assert env.mutating == {"get_order": False, "get_order_status": False, "cancel_order": True}


@pytest.mark.slow
def test_user_and_judge_are_simulated_under_schemas(smollm: ChatModel) -> None:
    tools, _ = load_tools(TOOLS)
    tasks = [
        {
            "id": "u1",
            "split": "test",
            "prompt": "cancel my order",
            "user": "You want to cancel your order #W1 because you ordered it twice.",
        }
    ]
    env = SimulatedEnvironment(
        tools, model=smollm, tasks=tasks, rubric="The agent cancels order #W1."
    )
    first = env.reset(tasks[0])
    assert first[-1]["role"] == "user" and first[-1]["content"]
    assert "send_message_to_user" in env.tools().names
    reply = env.tools().execute(
        {"name": "send_message_to_user", "arguments": {"message": "Which order?"}}
    )
    assert reply.ok and reply.content
    env.submit("I cancelled order #W1.")
    report = env.reward_report()
    assert 0.0 <= report.reward <= 1.0 and "reason" in report.info
    assert [e["kind"] for e in env.log] == ["user", "user", "judge"]
    assert all(e["valid"] for e in env.log)
