"""BFCL's AST checker on the real bfcl-eval data: reference answers pass, known-bad ones fail."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from bfcl_items import by_id, items

from slmkit.simulators.envs.bfcl_check import FAILURE_KINDS, AstVerdict, check_calls
from slmkit.simulators.envs.bfcl_data import reference_calls


@pytest.mark.parametrize("category", ["simple_python", "multiple", "parallel", "parallel_multiple"])
@pytest.mark.parametrize("include_optional", [False, True])
def test_ground_truth_is_accepted(category: str, include_optional: bool) -> None:
    for it in items(category):
        calls = reference_calls(it, include_optional=include_optional)
        verdict = check_calls(calls, it)
        assert verdict.correct, (it.id, verdict.reason, calls)


def test_ground_truth_built_by_hand_is_accepted() -> None:
    """The plain recipe: first allowed value of each argument, ""-able ones left out."""
    for category in ("simple_python", "multiple", "parallel"):
        for it in items(category):
            calls = []
            for answer in it.answers:
                ((name, allowed),) = answer.items()
                doc = next(f for f in it.functions if f["name"] == name)
                props = doc["parameters"]["properties"]
                required = doc["parameters"].get("required", [])
                args = {}
                for arg, values in allowed.items():
                    if "" in values and arg not in required:
                        continue
                    value = next(v for v in values if v != "")
                    kind = props[arg]["type"]
                    if kind == "dict":  # dict answers hold allowed values per key
                        value = {k: vs[0] for k, vs in value.items() if "" not in vs}
                    elif kind == "array" and props[arg]["items"]["type"] == "dict":
                        value = [{k: vs[0] for k, vs in d.items()} for d in value]
                    args[arg] = value
                calls.append({"name": name, "arguments": args})
            verdict = check_calls(calls, it)
            assert verdict.correct, (it.id, verdict.reason)


def test_simple_known_bad_variants() -> None:
    it = by_id("simple_python_0")  # calculate_triangle_area(base=10, height=5, unit="units"?)
    good: dict[str, Any] = {
        "name": "calculate_triangle_area",
        "arguments": {"base": 10, "height": 5},
    }
    assert check_calls([good], it) == AstVerdict(True, "correct call")

    def variant(**changes: Any) -> list[dict[str, Any]]:
        call = copy.deepcopy(good)
        for key, value in changes.items():
            if value is None:
                call["arguments"].pop(key)
            else:
                call["arguments"][key] = value
        return [call]

    assert check_calls(variant(unit="Units."), it).correct  # BFCL string standardisation
    cases = {
        "wrong name": [{**good, "name": "calculate_triangle_perimeter"}],
        "wrong value": variant(base=11),
        "wrong type": variant(base="10"),
        "bool for int": variant(height=True),
        "float for int": variant(height=5.0),
        "missing required": variant(height=None),
        "unknown arg": variant(color="red"),
        "wrong optional value": variant(unit="cm"),
        "two calls": [good, good],
        "no call": [],
    }
    for label, calls in cases.items():
        verdict = check_calls(calls, it)
        assert not verdict.correct, label
        assert verdict.reason, label
        expected = {
            "wrong name": "wrong function",
            "two calls": "call count",
            "no call": "call count",
        }
        assert verdict.kind == expected.get(label, "arguments"), label


def test_every_failure_names_its_kind() -> None:
    """What went wrong, for the report's failure table: each kind from a real item."""
    simple = by_id("simple_python_1")  # math.factorial(number=5)
    right = {"name": "math.factorial", "arguments": {"number": 5}}
    seen = {
        "correct": check_calls([right], simple),
        "unparsable": check_calls(None, simple),
        "call count": check_calls([], simple),
        "wrong function": check_calls([{**right, "name": "math.gamma"}], simple),
        "arguments": check_calls([{**right, "arguments": {"number": 6}}], simple),
    }
    irrelevant = items("irrelevance")[0]
    call = {"name": irrelevant.functions[0]["name"], "arguments": {}}
    seen["irrelevant call"] = check_calls([call], irrelevant)
    for kind, verdict in seen.items():
        assert verdict.kind == kind, verdict
    assert set(seen) == {"correct", *FAILURE_KINDS}
    # parallel calls: the unmatched answer's diagnosis
    pm = next(
        i
        for i in items("parallel_multiple")
        if {f["name"] for f in i.functions} - {c["name"] for c in reference_calls(i)}
    )
    calls = reference_calls(pm)
    other = next(f["name"] for f in pm.functions if f["name"] not in {c["name"] for c in calls})
    assert check_calls([*calls[:-1], {**calls[-1], "name": other}], pm).kind == "wrong function"


def test_dotted_names_may_use_underscores() -> None:
    it = by_id("simple_python_1")  # math.factorial(number=5)
    assert check_calls([{"name": "math.factorial", "arguments": {"number": 5}}], it).correct
    assert check_calls([{"name": "math_factorial", "arguments": {"number": 5}}], it).correct
    assert not check_calls([{"name": "mathfactorial", "arguments": {"number": 5}}], it).correct
    assert not check_calls([{"name": "math.factorial", "arguments": {"number": 6}}], it).correct


def test_int_accepted_for_float() -> None:
    checked = 0
    for category in ("simple_python", "multiple", "parallel"):
        for it in items(category):
            calls = reference_calls(it)
            for i, call in enumerate(calls):
                doc = next(f for f in it.functions if f["name"] == call["name"])
                for arg, value in call["arguments"].items():
                    declared = doc["parameters"]["properties"][arg]["type"]
                    if declared == "float" and isinstance(value, float) and value.is_integer():
                        as_int = copy.deepcopy(calls)
                        as_int[i]["arguments"][arg] = int(value)
                        assert check_calls(as_int, it).correct, (it.id, arg)
                        checked += 1
    assert checked >= 10


def test_dict_arguments() -> None:
    it = by_id("simple_python_94")  # update_info={"name": "John Doe", "email": ...}
    (call,) = reference_calls(it)
    assert check_calls([call], it).correct
    dict_arg = next(k for k, v in call["arguments"].items() if isinstance(v, dict))
    extra = copy.deepcopy(call)
    extra["arguments"][dict_arg]["phone"] = "555"
    missing = copy.deepcopy(call)
    missing["arguments"][dict_arg].pop(next(iter(missing["arguments"][dict_arg])))
    wrong = copy.deepcopy(call)
    wrong["arguments"][dict_arg]["name"] = "Jane Roe"
    for bad in (extra, missing, wrong):
        assert not check_calls([bad], it).correct


def test_multiple_picks_the_right_function() -> None:
    it = next(i for i in items("multiple") if len({f["name"] for f in i.functions}) > 1)
    (call,) = reference_calls(it)
    assert check_calls([call], it).correct
    other = next(f["name"] for f in it.functions if f["name"] != call["name"])
    assert not check_calls([{**call, "name": other}], it).correct
    assert not check_calls([call, call], it).correct


def test_parallel_any_order_one_to_one() -> None:
    it = next(i for i in items("parallel") if len(i.answers) >= 3)
    calls = reference_calls(it)
    assert check_calls(list(reversed(calls)), it).correct
    missing = check_calls(calls[:-1], it)
    assert not missing.correct and "expected" in missing.reason
    duplicated = check_calls([*calls[:-1], calls[0]], it)  # right count, one answer unmet
    assert not duplicated.correct and "no call matches" in duplicated.reason
    wrong = copy.deepcopy(calls)
    arg = next(iter(wrong[1]["arguments"]))
    wrong[1]["arguments"][arg] = "certainly not this"
    assert not check_calls(wrong, it).correct


def test_irrelevance_correct_iff_no_call() -> None:
    for it in items("irrelevance")[:20]:
        assert check_calls([], it).correct
        assert check_calls(None, it).correct  # unparsable output is not a call (as in BFCL)
        doc = it.functions[0]
        verdict = check_calls([{"name": doc["name"], "arguments": {}}], it)
        assert not verdict.correct and doc["name"] in verdict.reason


def test_parse_failures_and_openai_shape() -> None:
    it = by_id("simple_python_1")
    for bad in (None, ["math.factorial"], [{"arguments": {"number": 5}}],
                [{"name": "math.factorial", "arguments": "{not json"}],
                [{"name": "math.factorial", "arguments": [5]}]):  # fmt: skip
        verdict = check_calls(bad, it)  # type: ignore[arg-type]
        assert not verdict.correct and verdict.reason.startswith("parse failure"), bad
    openai_style = {
        "id": "call_0",
        "type": "function",
        "function": {"name": "math_factorial", "arguments": '{"number": 5}'},
    }
    assert check_calls([openai_style], it).correct
