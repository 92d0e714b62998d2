"""The everyday-tasks benchmark scores answers, never trajectories: its checker decides
every number in the README's table, so what it counts as right is pinned here."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def tasks() -> ModuleType:
    """``benchmarks/agent_tasks.py``, imported as the script imports its sibling
    (``from agents import render_table``: the benchmarks folder first on the path)."""
    sys.path.insert(0, str(BENCHMARKS))
    saved = sys.modules.pop("agents", None)
    try:
        return importlib.import_module("agent_tasks")
    finally:
        sys.path.remove(str(BENCHMARKS))
        sys.modules.pop("agents", None)
        if saved is not None:
            sys.modules["agents"] = saved


@pytest.mark.parametrize(
    ("answer", "right"),
    [
        ("1554", True),
        ("The result is 1,554.", True),  # a thousands separator is not two numbers
        ("37 times 42 is 1554", True),  # the question's numbers are restatements
        ("1554, or 1553", False),  # the last number is the answer
        ("1555", False),
        ("The answer is the product.", False),
        ("   ", False),
        (None, False),
        ("1554" + " 1554" * 100, False),  # ran on to the length bound
        ("1554.000000000001000000000001", False),  # ran on inside the number
    ],
)
def test_the_answers_last_number_is_scored(
    tasks: ModuleType, answer: str | None, right: bool
) -> None:
    assert tasks.check(answer, 1554, "What is 37 times 42?") is right


def test_the_expected_value_is_never_skipped_as_a_restatement(tasks: ModuleType) -> None:
    assert tasks.check("40 minus 20 is 20", 20, "What is 40 minus 20?")
    assert tasks.check("5.4, the cost of 9 pears", 5.4, "How much do 9 pears cost in total?")


def test_an_answer_the_agent_flagged_is_not_a_success(tasks: ModuleType) -> None:
    """The runtime's grounding check did not trust it; RunResult.answer_flag's docs tell
    callers to count it a failure, so the benchmark does, even when the number is right."""
    assert tasks.check("8439", 8439, "What is 87 times 97?")
    assert not tasks.check("8439", 8439, "What is 87 times 97?", "answered before any tool")


@pytest.mark.parametrize(
    ("answer", "right"),
    [
        ("59000", True),  # a bare number names no unit
        ("59 liters = 59000 ml", True),
        ("59000 milliliters", True),
        ("59000ml", True),
        ("How many? 59000 milliliter", True),  # "many" is no unit; a singular is
        ("59 km = 59000 m", False),  # converted as kilometers: right factor, wrong units
        ("59000 meters", False),
        ("59,000 meters", False),  # read as the checker reads numbers: 59000
        ("59000m", False),
    ],
)
def test_a_unit_after_the_number_must_be_the_asked_unit(
    tasks: ModuleType, answer: str, right: bool
) -> None:
    question = "How many milliliters are in 59 liters?"
    assert tasks.check(answer, 59000, question, unit="ml") is right


def test_items_are_the_same_for_the_same_seed_and_differ_between_seeds(
    tasks: ModuleType,
) -> None:
    dev = tasks.make_items("two_step", 12, seed=1)
    assert dev == tasks.make_items("two_step", 12, seed=1)
    assert [i.question for i in dev] != [i.question for i in tasks.make_items("two_step", 12, 2)]
    for item in dev:
        fruit = next(f for f in tasks.PRICES if f in item.question)
        count = tasks.numbers_in(item.question)[0]
        assert item.expected == pytest.approx(count * tasks.PRICES[fruit])
