"""``ToolRegistry``: the call schema, validated execution and the built-in tools."""

from __future__ import annotations

import enum
import json
import time
from typing import Annotated, Any, Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

from slmkit.tools import (
    NO_CALL,
    ToolCall,
    ToolDefinitionError,
    ToolRegistry,
    ToolResult,
    calculator,
    evaluate_arithmetic,
    final_answer,
    python_tool,
    tool,
)


@tool
def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    """Get the current temperature in a city.

    Args:
        city: the city name
        unit: the temperature unit
    """
    return f"20 {unit} in {city}"


@tool
def repeat(word: str, times: Annotated[int, Field(ge=1, le=5)]) -> str:
    """Repeat a word.

    Args:
        word: the word
        times: how often, 1 to 5
    """
    return " ".join([word] * times)


@tool
def explode(reason: str) -> str:
    """Always fails.

    Args:
        reason: what to say
    """
    raise RuntimeError(f"boom: {reason}")


@pytest.fixture
def reg() -> ToolRegistry:
    return ToolRegistry([get_weather, repeat, explode, calculator])


VALID_CALLS: list[dict[str, Any]] = [
    {"name": "get_weather", "arguments": {"city": "Paris"}},
    {"name": "get_weather", "arguments": {"city": "Paris", "unit": "fahrenheit"}},
    {"name": "repeat", "arguments": {"word": "hi", "times": 5}},
    {"name": "calculator", "arguments": {"expression": "1+1"}},
]
INVALID_CALLS: list[Any] = [
    {"name": "get_wether", "arguments": {"city": "Paris"}},  # unknown tool
    {"name": "get_weather", "arguments": {}},  # missing required
    {"name": "get_weather", "arguments": {"city": 3}},  # wrong type
    {"name": "get_weather", "arguments": {"city": "Paris", "unit": "kelvin"}},  # not in enum
    {"name": "get_weather", "arguments": {"city": "Paris", "extra": 1}},  # extra argument
    {"name": "repeat", "arguments": {"word": "hi", "times": 6}},  # out of bounds
    {"name": "repeat", "arguments": {"word": "hi", "times": 0}},
    {"name": "get_weather", "arguments": {"city": "Paris"}, "id": "x"},  # extra key
    {"name": "get_weather"},  # no arguments
    {"arguments": {"city": "Paris"}},  # no name
    {"name": NO_CALL, "arguments": {}},  # declining is not allowed by default
    [{"name": "get_weather", "arguments": {"city": "Paris"}}],  # a list is not one call
]


def _valid(instance: Any, schema: dict[str, Any]) -> bool:
    jsonschema.Draft202012Validator.check_schema(schema)
    return bool(jsonschema.Draft202012Validator(schema).is_valid(instance))


def test_call_schema_accepts_exactly_the_valid_calls(reg: ToolRegistry) -> None:
    schema = reg.call_schema()
    assert [v["properties"]["name"]["const"] for v in schema["anyOf"]] == reg.names
    for call in VALID_CALLS:
        assert _valid(call, schema), call
    for call in INVALID_CALLS:
        assert not _valid(call, schema), call


def test_single_tool_schema_is_not_a_union() -> None:
    schema = ToolRegistry([get_weather]).call_schema()
    assert "anyOf" not in schema and schema["properties"]["name"] == {"const": "get_weather"}
    assert _valid(VALID_CALLS[0], schema) and not _valid(VALID_CALLS[2], schema)


class Color(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


class Point(BaseModel):
    x: int
    y: int


def test_enum_and_model_arguments_make_a_self_contained_call_schema() -> None:
    """pydantic puts an Enum or a model argument in ``$defs``; nested under the call's
    ``arguments``, a ``#/$defs/...`` reference would point at nothing (validation crashed
    with PointerToNowhere). The tool's parameters are inlined instead."""

    @tool
    def paint(color: Color, at: Point) -> str:
        """Paint a point.

        Args:
            color: the color
            at: where
        """
        return f"{color.value} at {at.x},{at.y}"

    reg = ToolRegistry([paint])
    schema = reg.call_schema()
    assert "$defs" not in json.dumps(schema) and "$ref" not in json.dumps(schema)
    good = {"name": "paint", "arguments": {"color": "red", "at": {"x": 1, "y": 2}}}
    assert _valid(good, schema)
    assert not _valid(
        {"name": "paint", "arguments": {"color": "green", "at": {"x": 1, "y": 2}}}, schema
    )
    assert reg.execute(ToolCall(name="paint", arguments=good["arguments"])).content == "red at 1,2"


def test_parallel_call_schema(reg: ToolRegistry) -> None:
    schema = reg.call_schema(parallel=True, max_calls=3)
    assert _valid(VALID_CALLS[:1], schema)
    assert _valid(VALID_CALLS[:3], schema)
    assert not _valid([], schema)  # at least one call
    assert not _valid(VALID_CALLS[:4], schema)  # at most max_calls
    assert not _valid(VALID_CALLS[0], schema)  # a bare call is not a list
    for bad in INVALID_CALLS[:8]:
        assert not _valid([VALID_CALLS[0], bad], schema), bad


def test_no_call_option(reg: ToolRegistry) -> None:
    single = reg.call_schema(allow_no_call=True)
    declined = {"name": NO_CALL, "arguments": {}}
    assert _valid(declined, single)
    assert not _valid({"name": NO_CALL, "arguments": {"x": 1}}, single)
    assert all(_valid(c, single) for c in VALID_CALLS)
    parallel = reg.call_schema(parallel=True, allow_no_call=True)
    assert _valid([], parallel) and _valid(VALID_CALLS[:2], parallel)
    assert not _valid([declined], parallel)  # in a list, no call is []
    assert ToolRegistry.calls_from_output(declined) == []
    assert ToolRegistry.calls_from_output([]) == []
    calls = ToolRegistry.calls_from_output(VALID_CALLS[:2])
    assert [(c.name, c.arguments) for c in calls] == [
        (c["name"], c["arguments"]) for c in VALID_CALLS[:2]
    ]
    with pytest.raises(TypeError):
        ToolRegistry.calls_from_output("not a call")


def test_no_call_name_clash_is_refused() -> None:
    @tool(name=NO_CALL)
    def nothing() -> str:
        """Do nothing."""
        return ""

    registry = ToolRegistry([nothing])
    registry.call_schema()  # fine without the decline option
    with pytest.raises(ToolDefinitionError, match="reserves"):
        registry.call_schema(allow_no_call=True)


def test_empty_registry_and_duplicate_names_are_refused() -> None:
    with pytest.raises(ToolDefinitionError, match="no tools"):
        ToolRegistry().call_schema()
    with pytest.raises(ToolDefinitionError, match="two tools are named 'get_weather'"):
        ToolRegistry([get_weather, get_weather])


def test_registry_accepts_plain_functions() -> None:
    def shout(text: str) -> str:
        """Upper-case a text.

        Args:
            text: the text
        """
        return text.upper()

    registry = ToolRegistry([shout])
    assert "shout" in registry and len(registry) == 1
    assert registry.execute({"name": "shout", "arguments": {"text": "hi"}}).output == "HI"


# ------------------------------------------------------------------------- execute


def _error(reg: ToolRegistry, call: Any) -> str:
    result = reg.execute(call)
    assert isinstance(result, ToolResult)
    assert not result.ok and result.output is None and result.error
    assert result.content.startswith("Error: ")
    return result.error


def test_execute_runs_a_valid_call(reg: ToolRegistry) -> None:
    result = reg.execute({"name": "repeat", "arguments": {"word": "ab", "times": 3}})
    assert result.ok and result.output == "ab ab ab" and result.error is None
    msg = result.to_message()
    assert msg["role"] == "tool" and msg["tool_call_id"] == result.call.id
    assert msg["name"] == "repeat" and msg["content"] == "ab ab ab"


def test_execute_times_the_call_itself() -> None:
    @tool
    def wait(ms: int) -> str:
        """Sleep ``ms`` milliseconds."""
        time.sleep(ms / 1000)
        return "ok"

    result = ToolRegistry([wait]).execute({"name": "wait", "arguments": {"ms": 30}})
    assert result.ok and result.duration_s >= 0.03  # the tool's own run is in the time


def test_execute_reports_each_problem_readably(reg: ToolRegistry) -> None:
    err = _error(reg, {"name": "get_wether", "arguments": {"city": "Paris"}})
    assert "unknown tool 'get_wether'" in err and "get_weather" in err  # lists the options
    err = _error(reg, {"name": "get_weather", "arguments": {"city": 3}})
    assert "invalid arguments for get_weather" in err and "city" in err and "string" in err
    err = _error(reg, {"name": "get_weather", "arguments": {}})
    assert "'city' is a required property" in err
    err = _error(reg, {"name": "get_weather", "arguments": {"city": "Paris", "extra": 1}})
    assert "'extra' was unexpected" in err
    err = _error(reg, {"name": "repeat", "arguments": {"word": "x", "times": 9}})
    assert "times" in err and "maximum of 5" in err
    err = _error(reg, {"name": "get_weather", "arguments": {"city": "Paris", "unit": "kelvin"}})
    assert "'kelvin' is not one of ['celsius', 'fahrenheit']" in err
    err = _error(reg, {"name": "get_weather", "arguments": "not json"})
    assert "must be a JSON object" in err
    err = _error(reg, ["not", "a", "call"])
    assert "not a tool call" in err


def test_a_raising_tool_becomes_an_error_result(reg: ToolRegistry) -> None:
    err = _error(reg, {"name": "explode", "arguments": {"reason": "testing"}})
    assert err == "RuntimeError: boom: testing"


def test_a_tool_that_exits_becomes_an_error_result_not_the_end_of_the_run() -> None:
    """Functions written for a command line call ``sys.exit`` (argparse does on bad input)."""

    @tool
    def strict_parse(text: str) -> str:
        """Parse text the way a command line would."""
        raise SystemExit(f"usage: parse TEXT (got {text!r})")

    err = _error(ToolRegistry([strict_parse]), {"name": "strict_parse", "arguments": {"text": "x"}})
    assert err == "SystemExit: usage: parse TEXT (got 'x')"


def test_openai_tool_calls_are_executed(reg: ToolRegistry) -> None:
    call = ToolCall(name="get_weather", arguments={"city": "Lima"}, id="call_1")
    entry = call.to_openai()
    assert entry == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Lima"}'},
    }
    result = reg.execute(entry)  # arguments arrive as a JSON string
    assert result.ok and result.output == "20 celsius in Lima" and result.call.id == "call_1"


def test_openai_tools_list(reg: ToolRegistry) -> None:
    tools = reg.openai_tools()
    assert [t["function"]["name"] for t in tools] == reg.names
    weather = tools[0]
    assert weather["type"] == "function"
    assert weather["function"]["description"] == "Get the current temperature in a city."
    assert weather["function"]["parameters"] == get_weather.parameters
    json.dumps(tools)  # serialisable as a request body


def test_long_output_is_truncated_in_the_observation() -> None:
    @tool
    def big() -> str:
        """Return a lot of text."""
        return "x" * 10_000

    result = ToolRegistry([big]).execute({"name": "big", "arguments": {}})
    assert result.ok and len(result.output) == 10_000
    assert len(result.content) < 4100 and "truncated 6000" in result.content


# ------------------------------------------------------------------------- built-ins


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2 + 3 * 4", "14"),
        ("2**10", "1024"),
        ("2^10", "1024"),
        ("7 / 2", "3.5"),
        ("7 // 2", "3"),
        ("-(3 - 5) % 3", "2"),
        ("sqrt(16) + abs(-2)", "6"),
        ("round(pi, 4)", "3.1416"),
        ("factorial(10)", "3628800"),
        ("37 × 42", "1554"),
        ("1/3", "0.3333333333"),
    ],
)
def test_calculator_computes(expression: str, expected: str) -> None:
    assert calculator(expression=expression) == expected


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("__import__('os').system('true')", "unsupported element"),
        ("x + 1", "unsupported element"),
        ("(1).__class__", "unsupported element"),
        ("math.sqrt(4)", "unsupported element"),
        ("open('/etc/passwd')", "unsupported element"),
        ("sqrt(x=4)", "unsupported element"),
        ("[1, 2]", "unsupported element"),
        ("'a' * 3", "unsupported element"),
        ("9 ** 99999", "exponent 99999 is too large"),
        ("(10 ** 5000) * (10 ** 5000)", "too large"),
        ("factorial(100000)", "factorial argument is too large"),
        ("lambda: 1", "unsupported element"),
        ("1 +", "not an arithmetic expression"),
        ("1 < 2", "unsupported element"),
    ],
)
def test_calculator_refuses_non_arithmetic(expression: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        evaluate_arithmetic(expression)
    result = ToolRegistry([calculator]).execute(
        {"name": "calculator", "arguments": {"expression": expression}}
    )
    # Refused by the schema's pattern before running, or by the evaluator: either way named.
    assert not result.ok and result.error
    assert "ValueError" in result.error or "does not match" in result.error


def test_calculator_schema_admits_only_arithmetic() -> None:
    schema = calculator.parameters
    for ok in ("37 * 42", "sqrt(2) + pi", "2^10 - log10(100)", "(1.5 + 2) × 3"):
        assert _valid({"expression": ok}, schema), ok
    for ok in ("max(3, 4) * 2", "round(sqrt(2), 3)", "-(3 + 4) * (2 - (1 + 1))"):
        assert _valid({"expression": ok}, schema), ok
    for prose in ("37 * 42 is 1554", "}} 37 * 42", "import os", "", "x" * 201, "(1 + 2"):
        assert not _valid({"expression": prose}, schema), prose
    # A list of numbers is not an expression: commas belong inside function calls only.
    for debris in ("+ 37, 2, 42, 1, 1", "37, 42", ", 42, "):
        assert not _valid({"expression": debris}, schema), debris


def test_final_answer_returns_the_answer() -> None:
    registry = ToolRegistry([final_answer])
    result = registry.execute({"name": "final_answer", "arguments": {"answer": "42"}})
    assert result.ok and result.output == "42"


def test_python_tool_runs_in_the_sandbox_with_state() -> None:
    python = python_tool(timeout_s=10)
    registry = ToolRegistry([python])
    assert registry.names == ["python"]
    first = registry.execute({"name": "python", "arguments": {"code": "x = 6\nprint('set')"}})
    assert first.ok and first.output.strip() == "set"
    second = registry.execute({"name": "python", "arguments": {"code": "print(x * 7)"}})
    assert second.ok and second.output.strip() == "42"  # state persisted
    quiet = registry.execute({"name": "python", "arguments": {"code": "y = 1"}})
    assert quiet.ok and quiet.output == "(no output)"
    failed = registry.execute({"name": "python", "arguments": {"code": "print('a')\n1/0"}})
    assert not failed.ok and failed.error and "ZeroDivisionError" in failed.error
    assert "a" in failed.error  # what it printed before failing is kept
    env = registry.execute(
        {"name": "python", "arguments": {"code": "import os; print(os.getcwd())"}}
    )
    assert env.ok and env.output.strip() != str(__import__("os").getcwd())
