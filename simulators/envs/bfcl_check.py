"""BFCL's AST checker: is a set of calls a correct answer to a :class:`BfclItem`?

:func:`check_calls` re-implements BFCL's AST checker (``bfcl_eval/eval_checker/ast_eval/
ast_checker.py``) for Python-style categories, compactly, on calls given as
``{"name": str, "arguments": dict}``:

* names: the expected name, or the same name with ``.`` written as ``_`` (BFCL accepts the
  latter for models whose APIs forbid dots in tool names);
* every required parameter present, no parameter outside the function doc *or* outside
  the possible answer, and every answered parameter present unless its list holds ``""``;
* types by the doc (``integer``, ``float``, ``string``, ``boolean``, ``array``, ``tuple``,
  ``dict``, ``any`` = string), an int is accepted for a float, a tuple for a list; a value
  of the possible answer's own type is taken as a "variable" and compared exactly;
* values: strings compared after BFCL's standardisation (lower-case; spaces and
  ``,./-_*^`` removed; ``'`` read as ``"``), lists element-wise, dicts key by key against
  the per-key allowed values (keys whose list holds ``""`` may be left out), lists of
  dicts element-wise in order;
* ``simple_python`` and ``multiple``: exactly one call; ``parallel`` and
  ``parallel_multiple``: as many calls as answers, matched one-to-one in any order;
  ``irrelevance``: correct iff no function call (output that is not a call counts as none).

Deliberate differences from BFCL (all make the checker accept a little more, never less):
string standardisation and tuple->list are applied at every nesting depth (BFCL: only the
top level of a list or dict); an int is also accepted for a float inside arrays; the
parallel matching is a true maximum matching (BFCL matches greedily, which can reject a
valid set when one call fits two answers).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slmkit.simulators.envs.bfcl_data import BfclItem, function_doc

__all__ = ["FAILURE_KINDS", "AstVerdict", "check_calls", "equivalent"]

_PY_TYPES: dict[str, type] = {
    "string": str,
    "integer": int,
    "float": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
    "any": str,
}
_STANDARDISE_RE = re.compile(r"[ ,./\-_*^]")


FAILURE_KINDS = ("unparsable", "call count", "wrong function", "arguments", "irrelevant call")
"""What an incorrect answer got wrong, coarsest first: output that is not calls, too many
or too few calls, a call to another function, the right function with wrong or missing
arguments, a call where none was relevant (``irrelevance``)."""


@dataclass(frozen=True)
class AstVerdict:
    """The checker's verdict on one item: correct or not, why, and which of
    :data:`FAILURE_KINDS` (``"correct"`` when it is correct)."""

    correct: bool
    reason: str
    kind: str = "correct"


def _call_kind(reason: str) -> str:
    """The kind of failure of a call :func:`_call_ok` rejected for ``reason``."""
    wrong_name = reason.startswith("called ")  # _call_ok's words for another function
    return "wrong function" if wrong_name else "arguments"


def _standardise(text: str) -> str:
    """BFCL's string standardisation (``April 1, 2024`` == ``april 1 2024``)."""
    return _STANDARDISE_RE.sub("", text).lower().replace("'", '"')


def _norm(value: Any) -> Any:
    """Standardise strings and turn tuples into lists, recursively."""
    if isinstance(value, str):
        return _standardise(value)
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    return value


def equivalent(a: Any, b: Any) -> bool:
    """Whether two argument values are the same to the checker (strings standardised,
    tuples as lists, ``5 == 5.0``)."""
    return bool(_norm(a) == _norm(b))


def _answer_type(possible: Sequence[Any]) -> type | None:
    """The type of the first allowed value that is not the "may be omitted" marker."""
    for answer in possible:
        if answer != "":
            return type(answer)
    return None


def _items_ok(value: list[Any], items_type: type | None, possible: Sequence[Any]) -> bool:
    """BFCL's one-level nested type check of a list's elements."""
    if items_type is None:
        return True
    for candidate in possible:
        if not isinstance(candidate, list):
            return True  # BFCL: a non-list possible answer ("") passes the nested check
        variable_type = _answer_type(candidate)
        if all(
            type(e) is items_type
            or (items_type is float and type(e) is int)
            or (variable_type is not None and type(e) is variable_type)
            for e in value
        ):
            return True
    return False


def _dict_ok(param: str, value: dict[str, Any], possible: Sequence[Any]) -> str | None:
    """Match a dict against possible dicts of ``{key: [allowed values]}``."""
    reason = f"no possible value for {param!r}"
    for candidate in possible:
        if not isinstance(candidate, dict):
            continue
        reason = ""
        for key, val in value.items():
            if key not in candidate:
                reason = f"unexpected key {key!r} in {param!r}"
                break
            if _norm(val) not in [_norm(a) for a in candidate[key]]:
                reason = f"{param}[{key!r}]={val!r} is not one of {candidate[key]!r}"
                break
        if not reason:
            missing = [
                k for k, allowed in candidate.items() if k not in value and "" not in allowed
            ]
            if missing:
                reason = f"missing key {missing[0]!r} in {param!r}"
        if not reason:
            return None
    return reason


def _list_of_dicts_ok(param: str, value: list[Any], possible: Sequence[Any]) -> str | None:
    reason = f"{param}={value!r} matches no possible list"
    for candidate in possible:
        expected = candidate if isinstance(candidate, list) else []  # BFCL: "" acts as []
        if len(expected) != len(value):
            reason = f"{param} has {len(value)} elements, expected {len(expected)}"
            continue
        for element, allowed in zip(value, expected, strict=True):
            if not isinstance(element, dict):
                reason = f"{param} holds {element!r}, expected a dict"
                break
            sub = _dict_ok(param, element, [allowed])
            if sub is not None:
                reason = sub
                break
        else:
            return None
    return reason


def _value_ok(
    param: str, value: Any, schema: Mapping[str, Any], possible: Sequence[Any]
) -> str | None:
    """Type- and value-check one argument; ``None`` when it is acceptable."""
    declared = str(schema.get("type", ""))
    expected_type = _PY_TYPES.get(declared)
    if isinstance(value, tuple):
        value = list(value)
    if expected_type is float and type(value) is int:
        value = float(value)
    if expected_type is None:  # a type BFCL's Python checker does not know: compare values
        if _norm(value) in [_norm(a) for a in possible]:
            return None
        return f"{param}={value!r} is not one of {list(possible)!r}"

    answer_type = _answer_type(possible)
    is_variable = answer_type is not None and answer_type is not expected_type
    items_type: type | None = None
    if declared in ("array", "tuple"):
        items = schema.get("items")
        if isinstance(items, Mapping):
            items_type = _PY_TYPES.get(str(items.get("type", "")))
    type_ok = type(value) is expected_type and (
        items_type is None or (isinstance(value, list) and _items_ok(value, items_type, possible))
    )
    if not type_ok:
        if answer_type is not None and type(value) is answer_type:
            is_variable = True
        else:
            return f"{param}={value!r} has type {type(value).__name__}, expected {declared}"

    if not is_variable:
        if expected_type is dict:
            return _dict_ok(param, value, possible)
        if expected_type is list and items_type is dict:
            return _list_of_dicts_ok(param, value, possible)
        if expected_type is str:
            allowed = [_standardise(a) for a in possible if isinstance(a, str)]
            if _standardise(value) in allowed:
                return None
            return f"{param}={value!r} is not one of {list(possible)!r}"
        if expected_type is list:
            lists = [_norm(a) if isinstance(a, list) else [] for a in possible]
            if _norm(value) in lists:
                return None
            return f"{param}={value!r} is not one of {list(possible)!r}"
    if value in possible:
        return None
    return f"{param}={value!r} is not one of {list(possible)!r}"


def _call_ok(
    name: str,
    args: Mapping[str, Any],
    answer: Mapping[str, Mapping[str, Sequence[Any]]],
    functions: Sequence[Mapping[str, Any]],
) -> str | None:
    """Check one call against one expected call; ``None`` when it matches."""
    ((expected, allowed),) = answer.items()
    if name not in (expected, expected.replace(".", "_")):
        return f"called {name!r}, expected {expected!r}"
    doc = function_doc(functions, expected)
    if doc is None:
        return f"the item has no function doc for {expected!r}"
    params = doc.get("parameters") or {}
    props: Mapping[str, Any] = params.get("properties") or {}
    for req in params.get("required") or []:
        if req not in args:
            return f"{name}: missing required argument {req!r}"
    for param, value in args.items():
        if param not in props or param not in allowed:
            return f"{name}: unexpected argument {param!r}"
        reason = _value_ok(param, value, props[param], allowed[param])
        if reason is not None:
            return f"{name}: {reason}"
    for param, values in allowed.items():
        if param not in args and "" not in values:
            return f"{name}: missing argument {param!r}"
    return None


def _parse_calls(calls: Any) -> list[tuple[str, dict[str, Any]]] | str:
    """Normalise calls to ``(name, arguments)``; a string says why they are malformed.

    Accepts ``{"name", "arguments"}`` and OpenAI's ``{"type": "function", "function":
    {...}}``; ``arguments`` may be a JSON string.
    """
    if calls is None:
        return "no parsable function calls"
    if not isinstance(calls, Sequence) or isinstance(calls, str | bytes):
        return f"calls must be a list, got {type(calls).__name__}"
    parsed: list[tuple[str, dict[str, Any]]] = []
    for i, call in enumerate(calls):
        if isinstance(call, Mapping) and isinstance(call.get("function"), Mapping):
            call = call["function"]
        if not isinstance(call, Mapping):
            return f"call #{i} is not an object: {call!r}"
        name, args = call.get("name"), call.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError:
                return f"call #{i} has arguments that are not JSON: {args!r}"
        if not isinstance(name, str) or not name:
            return f"call #{i} has no function name"
        if not isinstance(args, Mapping):
            return f"call #{i} has arguments that are not an object: {args!r}"
        parsed.append((name, dict(args)))
    return parsed


def _max_matching(ok: list[list[bool]]) -> list[int | None]:
    """Maximum bipartite matching: ``ok[i][j]`` says answer ``i`` accepts call ``j``.

    Returns, for each answer, the index of the call it is matched to (or ``None``).
    """
    n_calls = len(ok[0]) if ok else 0
    owner: list[int | None] = [None] * n_calls

    def augment(i: int, seen: set[int]) -> bool:
        for j in range(n_calls):
            if ok[i][j] and j not in seen:
                seen.add(j)
                current = owner[j]
                if current is None or augment(current, seen):
                    owner[j] = i
                    return True
        return False

    for answer in range(len(ok)):
        augment(answer, set())
    matched: list[int | None] = [None] * len(ok)
    for call, answer_of_call in enumerate(owner):
        if answer_of_call is not None:
            matched[answer_of_call] = call
    return matched


def check_calls(calls: Sequence[Mapping[str, Any]] | None, item: BfclItem) -> AstVerdict:
    """Judge a model's function calls for one BFCL item with BFCL's AST rules.

    Args:
        calls: the calls the model made, each ``{"name": str, "arguments": dict}``
            (OpenAI ``tool_calls`` entries and JSON-string arguments are accepted too);
            ``[]`` when it made none, ``None`` when its output could not be parsed.
        item: the BFCL item the calls answer.

    Returns:
        ``AstVerdict(correct, reason, kind)``. Unparsable output is incorrect, except for
        ``irrelevance``, where (as in BFCL) anything that is not a call counts as no call.
    """
    parsed = _parse_calls(calls)
    if item.category == "irrelevance":
        if isinstance(parsed, str) or not parsed:
            return AstVerdict(True, "no function call, as expected")
        return AstVerdict(
            False, f"called {parsed[0][0]!r}; no function is relevant here", "irrelevant call"
        )
    if isinstance(parsed, str):
        return AstVerdict(False, f"parse failure: {parsed}", "unparsable")
    if len(parsed) != len(item.answers):
        return AstVerdict(
            False, f"expected {len(item.answers)} call(s), got {len(parsed)}", "call count"
        )
    if item.category in ("simple_python", "multiple"):
        reason = _call_ok(*parsed[0], item.answers[0], item.functions)
        if reason is None:
            return AstVerdict(True, "correct call")
        return AstVerdict(False, reason, _call_kind(reason))

    ok = [
        [_call_ok(name, args, answer, item.functions) is None for name, args in parsed]
        for answer in item.answers
    ]
    matched = _max_matching(ok)
    for i, j in enumerate(matched):
        if j is None:
            expected = next(iter(item.answers[i]))
            reasons = [
                r
                for name, args in parsed
                if (r := _call_ok(name, args, item.answers[i], item.functions)) is not None
            ]
            same_name = [
                r for r in reasons if not r.startswith("called ")
            ]  # prefer the diagnosis of a call to the right function
            detail = (same_name or reasons or ["it is matched to another call"])[0]
            return AstVerdict(
                False,
                f"no call matches expected call #{i} ({expected}): {detail}",
                _call_kind(detail),
            )
    return AstVerdict(True, f"all {len(parsed)} calls match")
