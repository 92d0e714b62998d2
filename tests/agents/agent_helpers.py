"""Shared pieces of the agent tests: real tools with side-effect counters, checks.

The tools are real Python functions run through the real registry; the counters are how
tests prove what ran and how often (for resume and isolation).
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

from slmkit.agents import RunResult
from slmkit.tools import Tool, tool

TASK = "What is the account balance of Alice?"


class Bank:
    """Two lookups that must run in order; the balance service fails its first call.

    ``fail_first`` plants a transient error (a verifier failure for the router);
    ``calls`` counts every execution, so tests can see what was (not) repeated.
    """

    def __init__(self, *, fail_first: bool = True) -> None:
        self.calls: Counter[str] = Counter()
        self.fail_first = fail_first
        # A lookup changes nothing, so it is declared pure; the balance service is not.
        self.tools: list[Tool] = [tool(self.get_user_id, pure=True), tool(self.get_balance)]

    def get_user_id(self, name: str) -> int:
        """the numeric id of a user"""
        self.calls["get_user_id"] += 1
        return {"alice": 42}.get(name.strip().lower(), -1)

    def get_balance(self, user_id: int) -> str:
        """the account balance of a user id"""
        self.calls["get_balance"] += 1
        if user_id != 42:
            raise KeyError(f"unknown user id {user_id}")
        if self.fail_first and self.calls["get_balance"] == 1:
            raise ConnectionError("the bank service is busy, try again")
        return "The balance of user 42 is 120.50 dollars."


def assert_all_actions_valid(result: RunResult) -> None:
    """Every action of the run parsed and validated, and every model output did."""
    actions = [e for e in result.events if e.kind == "action"]
    assert actions, "the run took no action"
    assert all(e.valid for e in actions), [e.text for e in actions if not e.valid]
    assert result.metrics.schema_valid_rate == 1.0


Unit = Literal["km", "m", "cm", "kg", "g", "hours", "minutes", "liters", "ml"]
_FACTORS = {
    ("km", "m"): 1000.0,
    ("m", "cm"): 100.0,
    ("kg", "g"): 1000.0,
    ("hours", "minutes"): 60.0,
    ("liters", "ml"): 1000.0,
}


@tool(pure=True)
def convert_units(value: float, from_unit: Unit, to_unit: Unit) -> str:
    """Convert a quantity from one unit to another.

    Args:
        value: the number to convert
        from_unit: the unit of the value
        to_unit: the unit to convert to
    """
    # The agent-tasks benchmark's tool, word for word where the model reads it (name,
    # docstring, enum): the tests replay that benchmark's cases.
    if (from_unit, to_unit) in _FACTORS:
        result = value * _FACTORS[(from_unit, to_unit)]
    elif (to_unit, from_unit) in _FACTORS:
        result = value / _FACTORS[(to_unit, from_unit)]
    else:
        raise ValueError(f"cannot convert {from_unit} to {to_unit}")
    return f"{value:g} {from_unit} = {result:g} {to_unit}"
