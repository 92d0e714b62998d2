"""Arguments the task never gave are decoded again (``slmkit.agents.argument_checks``).

The rules on their own first, then the real embedded model on cases of the agent-tasks
benchmark where it failed before: ``87 times 97`` (the calculator fed its own result
until ``max_steps``), ``the price of one orange`` (``get_price("apple")``, the
docstring's example) and ``centimeters in 1.9 meters`` (``km`` -> ``m``, the enum's first
units).
"""

from __future__ import annotations

import re
from typing import Literal

import pytest
from agent_helpers import convert_units

from slmkit.agents import RunResult, ToolAgent
from slmkit.agents.actions import Pins, action_schema
from slmkit.agents.argument_checks import Observed, Rejection, check_call
from slmkit.models import ChatModel
from slmkit.tools import ToolCall, ToolRegistry, calculator, tool

PRICES = {"apple": 0.5, "orange": 0.8, "lemon": 0.3}


@tool(pure=True)
def get_price(item: str, currency: str = "USD") -> str:
    """Look up the price of one piece of fruit.

    Args:
        item: the fruit, e.g. apple
        currency: the currency of the price, e.g. USD
    """
    return f"{PRICES[item.strip().lower().removesuffix('s')]:g}"


@tool(pure=True)
def scale(value: float, factor: int) -> str:
    """Multiply a value by a whole factor.

    Args:
        value: the number
        factor: the whole factor
    """
    return f"{value * factor:g}"


@tool(pure=True)
def find_library(location: str) -> str:
    """Find the nearest public library.

    Args:
        location: the city and state, e.g. Boston, MA
    """
    return "Central Library"


@tool(pure=True)
def dividends(company: str, frequency: Literal["quarterly", "annually"]) -> str:
    """The dividends a company paid.

    Args:
        company: the company
        frequency: how often
    """
    return "1.2"


def _check(name: str, arguments: dict[str, object], task: str, *seen: Observed) -> Rejection | None:
    tool_ = {
        "calculator": calculator,
        "get_price": get_price,
        "scale": scale,
        "convert_units": convert_units,
    }[name]
    return check_call(ToolCall(name=name, arguments=arguments), tool_, task, seen, pure=True)


def _pinned(rejection: Rejection | None, tool_: str, argument: str) -> dict[str, object]:
    assert rejection is not None
    return dict(rejection.pins.arguments[tool_][argument])


# -- the rules


def test_a_pure_tool_fed_its_own_result_is_left_out() -> None:
    task = "What is 87 times 97?"
    assert _check("calculator", {"expression": "87*97"}, task) is None
    again = _check("calculator", {"expression": "8439*97"}, task, Observed("calculator", "8439"))
    assert again is not None and again.reason == "fed its own result"
    assert again.pins == Pins(exclude=frozenset({"calculator"}))
    # Another tool's result is what a second step is for: "look up, then compute".
    task = "How much do 4 mangoes cost in total?"
    assert (
        _check("calculator", {"expression": "4 * 1.75"}, task, Observed("get_price", "1.75"))
        is None
    )
    # ...and a tool with side effects may be meant to get its own result back.
    call = ToolCall(name="calculator", arguments={"expression": "8439*97"})
    assert (
        check_call(call, calculator, "87 times 97", [Observed("calculator", "8439")], pure=False)
        is None
    )


def test_a_number_from_nowhere_is_held_to_the_runs_numbers_in_the_tools_own_pattern() -> None:
    task = "How much do 8 lemons cost in total?"
    seen = Observed("get_price", "0.3")
    rejection = _check("calculator", {"expression": "100000000000.00"}, task, seen)
    assert rejection is not None and "neither the task nor an observation" in rejection.reason
    pattern = str(_pinned(rejection, "calculator", "expression")["pattern"])
    assert re.fullmatch(pattern, "8 * 0.3") and re.fullmatch(pattern, "(0.3*8)")
    assert not re.fullmatch(pattern, "100000000000.00")
    assert not re.fullmatch(pattern, "8 lemons")  # the calculator's own language still holds
    assert not re.fullmatch(pattern, "8 * 0.5")


def test_small_integers_powers_of_ten_and_the_tools_own_numbers_are_known() -> None:
    task = "How much do 10 apples cost?"
    assert _check("calculator", {"expression": "10 * 2"}, task) is None
    assert _check("calculator", {"expression": "10 * 1000"}, task) is None
    assert _check("calculator", {"expression": "sqrt(2)"}, task) is None  # the description's
    assert (
        _check("calculator", {"expression": "10 * 0.5"}, task, Observed("get_price", "0.5")) is None
    )
    assert _check("calculator", {"expression": "10 * 37"}, task) is not None
    # A rate of the task as a fraction (BFCL: "a 5% annual yield" -> annual_yield 0.05).
    rate = "Grow 50000 at a 5% yield for 3 years."
    assert _check("scale", {"value": 50000, "factor": 3}, rate) is None
    assert _check("calculator", {"expression": "50000 * (1 + 0.05) ** 3"}, rate) is None


def test_a_made_up_number_argument_gets_an_enum_of_the_numbers_as_written() -> None:
    rejection = _check("scale", {"value": 47.0, "factor": 3}, "Scale 2.5 by 3.")
    assert _pinned(rejection, "scale", "value")["enum"] == [2.5, 3]
    integer = _check("scale", {"value": 2.5, "factor": 40}, "Scale 2.5 by 3, then 3.5.")
    assert _pinned(integer, "scale", "factor")["enum"] == [3]
    # A number with nothing to hold it to: the tool is left out.
    nothing = _check("scale", {"value": 47.0, "factor": 3}, "Scale something.")
    assert nothing is not None and nothing.pins == Pins(exclude=frozenset({"scale"}))


def test_a_value_copied_from_the_description_is_held_to_the_tasks_words() -> None:
    task = "What is the price of one orange?"
    rejection = _check("get_price", {"item": "apple"}, task)
    assert rejection is not None and "description" in rejection.reason
    assert _pinned(rejection, "get_price", "item")["enum"] == ["price", "orange"]
    assert _check("get_price", {"item": "orange"}, task) is None
    assert _check("get_price", {"item": "apple"}, "What does one apple cost?") is None
    # A described value sharing a word with the task follows the description's format.
    call = ToolCall(name="find_library", arguments={"location": "Boston, MA"})
    boston = "Find a library in Boston, Massachusetts."
    assert check_call(call, find_library, boston, [], pure=True) is None
    assert check_call(call, find_library, "Find a library in Paris.", [], pure=True) is not None
    # Sharing only a stopword ("the") with the task is no such sign.
    assert _check("get_price", {"item": "the fruit"}, task) is not None
    # An optional argument may take the value its description names (a default).
    assert _check("get_price", {"item": "orange", "currency": "USD"}, task) is None


def test_an_enum_choice_the_task_does_not_name_is_held_to_the_choices_it_names() -> None:
    task = "Convert 1.9 from meters to centimeters."
    rejection = _check("convert_units", {"value": 1.9, "from_unit": "km", "to_unit": "m"}, task)
    assert rejection is not None and "enum" in rejection.reason
    # Only the unnamed argument is held, to the named choices in the enum's order.
    assert rejection.pins.arguments["convert_units"].keys() == {"from_unit"}
    assert _pinned(rejection, "convert_units", "from_unit")["enum"] == ["m", "cm"]
    assert _check("convert_units", {"value": 1.9, "from_unit": "m", "to_unit": "cm"}, task) is None

    def named(value: str, text: str) -> bool:
        arguments = {"value": 2, "from_unit": value, "to_unit": value}
        return _check("convert_units", arguments, text) is None

    # A word names the choice that matches it best: "kilograms" is kg, not km (both
    # abbreviate it), "milliliters" ml, not m.
    assert named("kg", "Grams in kilograms?")
    assert not named("km", "Grams in kilograms?")
    assert not named("m", "Milliliters in liters?")
    assert named("ml", "Milliliters in liters?")
    # The word itself, its plural, a word one begins ("hour" -> hours); "many" is no unit.
    assert named("hours", "Two hour later") and not named("m", "How many hours?")
    # One word begins the other, but for its last letter (BFCL's "annual": annually).
    task = "Dividends of Microsoft on an annual basis."
    call = ToolCall(name="dividends", arguments={"company": "Microsoft", "frequency": "quarterly"})
    rejection = check_call(call, dividends, task, [], pure=True)
    assert _pinned(rejection, "dividends", "frequency")["enum"] == ["annually"]
    # A text that names no choice says nothing; an observation names choices too.
    km_to_g = {"value": 2, "from_unit": "km", "to_unit": "g"}
    assert _check("convert_units", km_to_g, "Convert it.") is None
    seen = Observed("convert_units", "2 km = 2000 m")
    rejection = _check("convert_units", km_to_g, "Convert 2 of them.", seen)
    assert rejection is not None
    assert _pinned(rejection, "convert_units", "to_unit")["enum"] == ["km", "m"]


def test_the_unit_the_task_writes_after_a_number_goes_to_the_argument_describing_it() -> None:
    # "from_unit: the unit of the value", and the task writes "59 liters": from_unit is
    # liters, though "milliliters" is named too.
    task = "How many milliliters are in 59 liters?"
    rejection = _check("convert_units", {"value": 59, "from_unit": "ml", "to_unit": "ml"}, task)
    assert rejection is not None
    assert rejection.pins.arguments["convert_units"].keys() == {"from_unit"}
    assert _pinned(rejection, "convert_units", "from_unit")["enum"] == ["liters"]
    assert (
        _check("convert_units", {"value": 59, "from_unit": "liters", "to_unit": "ml"}, task) is None
    )
    # Another number, or none after it, says nothing about the value's unit.
    other = "How many milliliters are in 59 liters, 3 times?"
    assert _check("convert_units", {"value": 3, "from_unit": "ml", "to_unit": "ml"}, other) is None


def test_pins_merge_and_shape_the_action_grammar() -> None:
    a = Pins(exclude=frozenset({"scale"}))
    b = Pins(arguments={"get_price": {"item": {"type": "string", "enum": ["orange"]}}})
    both = a | b
    assert both.exclude == {"scale"} and both.arguments == b.arguments and both and not Pins()
    schema = action_schema(ToolRegistry([get_price, scale, calculator]), pins=both)
    names = [v["properties"]["name"]["const"] for v in schema["anyOf"] if "name" in v["properties"]]
    assert names == ["get_price", "calculator"]
    item = schema["anyOf"][0]["properties"]["arguments"]["properties"]["item"]
    assert item == {"type": "string", "enum": ["orange"]}


# -- the real model


def _calls(result: RunResult) -> list[dict[str, object]]:
    return [
        c for e in result.events if e.kind == "action" for c in (e.action or {}).get("calls", [])
    ]


def _rejected(result: RunResult) -> list[str]:
    return [c["rejected"] for e in result.events for c in e.candidates if "rejected" in c]


def test_the_calculator_is_not_fed_its_own_result(smollm: ChatModel) -> None:
    result = ToolAgent(smollm, [calculator], checkpoint="none").run("What is 87 times 97?")
    assert [c["arguments"] for c in _calls(result)] == [{"expression": "87*97"}]
    assert "fed its own result" in _rejected(result)
    assert result.stopped == "final_answer" and result.answer is not None
    assert "8439" in result.answer
    # Without the checks the same model loops until max_steps (what the benchmark saw).
    loose = ToolAgent(
        smollm, [calculator], argument_checks=False, answer_on_last_step=False, checkpoint="none"
    )
    assert loose.run("What is 87 times 97?").stopped == "max_steps"


def test_a_value_copied_from_the_docstring_is_decoded_again(smollm: ChatModel) -> None:
    result = ToolAgent(smollm, [get_price], checkpoint="none").run(
        "What is the price of one orange?"
    )
    assert "a value copied from the tool's description" in _rejected(result)
    assert [c["arguments"]["item"] for c in _calls(result)] == ["orange"]
    assert result.answer is not None and "0.8" in result.answer


@pytest.mark.parametrize(
    ("task", "units", "result"),
    [
        # The first try is km -> m, the enum's first units.
        ("How many centimeters are in 1.9 meters?", ("m", "cm"), "190"),
        # The first try names only the asked-for units (ml -> ml); "59 liters" says which
        # is the value's.
        ("How many milliliters are in 59 liters?", ("liters", "ml"), "59000"),
    ],
)
def test_units_the_task_does_not_give_are_decoded_again(
    smollm: ChatModel, task: str, units: tuple[str, str], result: str
) -> None:
    run = ToolAgent(smollm, [convert_units], checkpoint="none").run(task)
    assert "an enum choice the task does not give" in _rejected(run)
    calls = _calls(run)
    assert [(c["arguments"]["from_unit"], c["arguments"]["to_unit"]) for c in calls] == [units]
    assert run.answer is not None and result in run.answer


@pytest.mark.parametrize("last_step_answers", [True, False])
def test_the_last_step_may_only_answer(smollm: ChatModel, last_step_answers: bool) -> None:
    agent = ToolAgent(
        smollm,
        [calculator],
        max_steps=2,
        argument_checks=False,
        answer_on_last_step=last_step_answers,
        checkpoint="none",
    )
    result = agent.run("What is 85 plus 17?")
    actions = [e.action or {} for e in result.events if e.kind == "action"]
    assert len(actions) == 2 and "calls" in actions[0]
    if last_step_answers:
        assert "final_answer" in actions[1] and result.stopped == "final_answer"
    else:  # the model calls again on its result, and the run ends without an answer
        assert "calls" in actions[1] and result.stopped == "max_steps"
