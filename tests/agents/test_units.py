"""The agent runtime's pure parts: action grammar, voting, metrics, routing decisions."""

from __future__ import annotations

import jsonschema
import pytest

from slmkit.agents import (
    AgentError,
    Router,
    RouterConfig,
    Signals,
    StepEvent,
    TokenPrice,
    ToolAgent,
)
from slmkit.agents.actions import Action, Pins, action_schema, parse_action
from slmkit.agents.code_agent import code_grammar, parse_code_action
from slmkit.agents.events import ModelCall
from slmkit.agents.metrics import compute_metrics
from slmkit.agents.sampling import Trial, vote
from slmkit.models import ChatModel
from slmkit.tools import ToolCall, ToolRegistry, calculator, tool


@tool
def lookup(key: str, limit: int = 3) -> str:
    """look a key up"""
    return key * limit


REG = ToolRegistry([calculator, lookup])


def _ok(schema: dict, value: object) -> bool:
    return jsonschema.Draft202012Validator(schema).is_valid(value)


def test_action_schema_admits_exactly_the_registered_calls_and_the_answer() -> None:
    s = action_schema(REG)
    assert _ok(s, {"name": "calculator", "arguments": {"expression": "1+1"}})
    assert _ok(s, {"final_answer": "2"})
    assert not _ok(s, {"name": "calculator", "arguments": {}})
    assert not _ok(s, {"name": "rm", "arguments": {}})
    assert not _ok(s, {"final_answer": "x" * 401})
    assert not _ok(
        action_schema(REG, pins=Pins(exclude=frozenset({"calculator"}))),
        {"name": "calculator", "arguments": {"expression": "1"}},
    )
    free = action_schema(REG, max_arg_chars=5)
    assert not _ok(free, {"name": "lookup", "arguments": {"key": "abcdef"}})


def test_thought_parallel_and_first_thought_prefix() -> None:
    s = action_schema(REG, thought=True, parallel=True, max_calls=2)
    calls = [{"name": "lookup", "arguments": {"key": "a"}}] * 2
    assert _ok(s, {"thought": "two", "tool_calls": calls})
    assert not _ok(s, {"thought": "three", "tool_calls": calls * 2})
    seeded = action_schema(REG, thought_prefix="First (1+1) costs $2?")
    assert _ok(seeded, {"thought": "First (1+1) costs $2? then add", "final_answer": "x"})
    assert not _ok(seeded, {"thought": "Then", "final_answer": "x"})
    other = {"name": "calculator", "arguments": {"expression": "1"}}
    a = parse_action("t", {"thought": "two", "tool_calls": [*calls, other]})
    assert a.thought == "two" and [c.name for c in a.calls] == ["lookup", "calculator"]


def test_action_round_trips_and_keys_ignore_ids_and_argument_order() -> None:
    a = Action("x", calls=(ToolCall("lookup", {"key": "a", "limit": 1}),))
    b = Action("y", calls=(ToolCall("lookup", {"limit": 1, "key": "a"}),))
    assert a.key() == b.key() and Action.from_dict(a.to_dict()) == a
    assert (
        Action("z", final_answer=" The  Answer").key()
        == Action("w", final_answer="the answer").key()
    )


def test_code_envelope_parses_and_cut_output_does_not() -> None:
    text = "Thought: add\n```python\nx = 1\nprint(x)\n```"
    action = parse_code_action(text)
    assert action is not None and action.thought == "add"
    assert action.calls[0].arguments == {"code": "x = 1\nprint(x)"}
    assert parse_code_action("Thought: add\n```python\nx = 1") is None
    grammar = code_grammar(first_thought='Say "hi" `now`', max_code_chars=50)
    assert '"Thought: " "Say \\"hi\\" \'now\'"' in grammar and "{0,50}" in grammar


def test_vote_takes_the_majority_of_successful_trials_else_the_first() -> None:
    acts = [Action(str(i)) for i in range(4)]
    trials = [
        Trial(0, acts[0], ok=False, key="boom"),
        Trial(1, acts[1], ok=True, key="7"),
        Trial(2, acts[2], ok=True, key="8"),
        Trial(3, acts[3], ok=True, key="8"),
    ]
    v = vote(trials)
    assert v is not None and v.winner.index == 2 and v.votes == 2 and v.rule == "majority"
    fallback = vote([Trial(0, acts[0], ok=False, key="a"), Trial(1, acts[1], ok=False, key="b")])
    assert fallback is not None and fallback.winner.index == 0 and fallback.rule == "first_valid"
    assert vote([]) is None


def _event(
    kind: str, step: int, t0: float, t1: float, session: str = "s", **kw: object
) -> StepEvent:
    return StepEvent.model_validate(
        {"kind": kind, "step": step, "t0": t0, "t1": t1, "session": session, **kw}
    )


def test_metrics_split_step_time_and_leave_out_gaps_between_sessions() -> None:
    call = ModelCall(model="small", prompt_tokens=1000, completion_tokens=100, latency_s=0.8)
    events = [
        _event("action", 1, 0.0, 0.9, calls=[call]),
        _event("observation", 1, 0.95, 1.0, ok=True, tool_s=0.05),
        # crash; resumed much later in another process:
        _event("action", 2, 100.0, 100.9, session="t", calls=[call]),
        _event("observation", 2, 100.9, 101.0, session="t", ok=False, tool_s=0.1),
        _event("done", 2, 101.0, 101.0, session="t"),
    ]
    prices = {"small": TokenPrice(prompt=1.0, completion=2.0)}
    m = compute_metrics(events, stopped="max_steps", prices=prices)
    assert m.steps == 2 and m.step_wall_s == [pytest.approx(1.0), pytest.approx(1.0)]
    assert m.step_model_s == [0.8, 0.8] and m.step_overhead_s[0] == pytest.approx(0.15)
    assert m.executable_call_rate == 0.5 and m.schema_valid_rate == 1.0
    assert m.cost == pytest.approx(2 * (1000 * 1.0 + 100 * 2.0) / 1e6)
    assert m.overhead_share == pytest.approx((0.15 + 0.1) / 2.0)


def test_router_reasons(smollm: ChatModel) -> None:
    alone = Router(smollm)
    assert alone.escalation_reason(Signals(failures=9, failure="x", failure_kind="tool")) is None
    r = Router(smollm, smollm, RouterConfig(max_failures=2))
    assert r.escalation_reason(Signals()) is None
    assert r.escalation_reason(Signals(failures=1, failure="bad", failure_kind="invalid")) is None
    assert r.escalation_reason(Signals(failures=2, failure="bad", failure_kind="invalid")) == (
        "2 failed steps in a row"
    )
    assert r.escalation_reason(Signals(failures=1, failure="Error: 1/0", failure_kind="code")) == (
        "code check failed: Error: 1/0"
    )
    task = Router(smollm, smollm, scope="task", on_verifier_failure=False)
    assert task.escalation_reason(Signals(escalated=True)) == "task escalated earlier"
    assert task.escalation_reason(Signals(failures=1, failure="e", failure_kind="tool")) is None


def test_bad_options_are_agent_errors(smollm: ChatModel) -> None:
    with pytest.raises(AgentError, match="max_stepz"):
        ToolAgent(smollm, [calculator], max_stepz=3)
    with pytest.raises(AgentError, match="unknown tools"):
        ToolAgent(smollm, [calculator], side_effect_tools=["rm"])
    with pytest.raises(AgentError, match="needs a checkpointer"):
        ToolAgent(smollm, [calculator], approve="interrupt", checkpoint="none")
