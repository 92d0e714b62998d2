"""Actions: what a model decides at one step, and the JSON grammar of a ToolAgent action.

A ToolAgent action is decoded under :func:`action_schema`, a union of

* one object per registered tool, ``{"name": <const>, "arguments": <its schema>}``,
  (or, with parallel calls, ``{"tool_calls": [<call>, ...]}``), and
* ``{"final_answer": <string>}``,

each optionally led by a bounded ``"thought"`` string. A 135M model cannot emit an
unknown tool, a missing argument or a half-closed brace under it; it can only choose
*which* valid action to take. The history the model reads renders earlier actions as
the same compact JSON (:func:`action_text`), so what it reads looks like what it writes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from slmkit.tools import ToolCall, ToolRegistry

__all__ = [
    "Action",
    "Pins",
    "action_schema",
    "action_text",
    "bound_strings",
    "canonical_call",
    "parse_action",
]


@dataclass(frozen=True)
class Action:
    """One decoded action of any agent.

    ``calls`` are what the runtime executes (a CodeAgent's code is one ``python`` call
    with a ``code`` argument); ``final_answer`` ends the run. ``text`` is the model's
    raw output.
    """

    text: str
    thought: str | None = None
    calls: tuple[ToolCall, ...] = ()
    final_answer: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form, as stored in the checkpointed run state and in events."""
        out: dict[str, Any] = {"text": self.text}
        if self.thought is not None:
            out["thought"] = self.thought
        if self.calls:
            out["calls"] = [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.calls
            ]
        if self.final_answer is not None:
            out["final_answer"] = self.final_answer
        if self.meta:
            out["meta"] = self.meta
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Action:
        return cls(
            text=str(data.get("text", "")),
            thought=data.get("thought"),
            calls=tuple(ToolCall.from_obj(c) for c in data.get("calls", ())),
            final_answer=data.get("final_answer"),
            meta=dict(data.get("meta", {})),
        )

    def key(self) -> str:
        """A canonical form: equal for actions that would do the same thing (for voting)."""
        if self.final_answer is not None:
            return "answer:" + " ".join(self.final_answer.split()).lower()
        return "calls:" + "|".join(canonical_call(c.name, c.arguments) for c in self.calls)


@dataclass(frozen=True)
class Pins:
    """What a re-decode of one step holds fixed, after the model's first try was rejected.

    ``exclude``: tools left out of the grammar (a call that only repeats an earlier one,
    a pure tool fed its own result). ``arguments``: ``{tool: {argument: schema}}``, the
    schema an argument is decoded under instead of its own (a number the task never
    stated is held to the numbers it did state). The final answer is never excluded, so
    a loop of re-decodes that only adds pins ends.
    """

    exclude: frozenset[str] = frozenset()
    arguments: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)

    def __or__(self, other: Pins) -> Pins:
        merged = {t: dict(a) for t, a in self.arguments.items()}
        for tool, args in other.arguments.items():
            merged.setdefault(tool, {}).update(args)
        return Pins(self.exclude | other.exclude, merged)

    def __bool__(self) -> bool:
        return bool(self.exclude or self.arguments)


def _pin(call_schema: dict[str, Any], pins: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One tool's call schema with its pinned arguments' schemas swapped in."""
    arguments = dict(call_schema["properties"]["arguments"])
    arguments["properties"] = {**arguments.get("properties", {}), **pins}
    return {**call_schema, "properties": {**call_schema["properties"], "arguments": arguments}}


def _thought_schema(max_chars: int, prefix: str | None) -> dict[str, Any]:
    if prefix is None:
        return {"type": "string", "maxLength": max_chars}
    # The first-thought prefix: the string must start with the given text, and the model
    # continues it (Agent Distillation seeds the student's first step this way).
    literal = _META.sub(r"\\\g<0>", " ".join(prefix.split()))
    return {"type": "string", "pattern": f"^{literal}.{{0,{max_chars}}}$"}


# Only the characters that are special in JSON-Schema (ECMA) regexes: re.escape also
# escapes spaces and '#', which the grammar engine's regex dialect rejects.
_META = re.compile(r"[\\.+*?()|\[\]{}^$]")


def action_schema(
    registry: ToolRegistry,
    *,
    thought: bool = False,
    thought_prefix: str | None = None,
    max_thought_chars: int = 200,
    max_answer_chars: int = 400,
    answer_quote: str | None = None,
    max_arg_chars: int | None = None,
    parallel: bool = False,
    max_calls: int = 4,
    pins: Pins | None = None,
) -> dict[str, Any]:
    """The JSON Schema of one action over ``registry``'s tools, restricted by ``pins``.

    ``thought_prefix`` turns the thought on and pins its start. With no tool left after
    ``pins.exclude`` (or an empty registry) the only action is the final answer.
    ``answer_quote`` makes the final answer exactly that text (an observation the
    answer must quote). ``max_arg_chars`` bounds free-text string arguments (those
    without a length, enum, const, pattern or format); calls are still validated
    against the tools' own schemas.
    """
    lead: dict[str, Any] = {}
    if thought or thought_prefix is not None:
        lead = {"thought": _thought_schema(max_thought_chars, thought_prefix)}
    pins = pins or Pins()
    variants: list[dict[str, Any]] = []
    allowed = ToolRegistry([t for t in registry if t.name not in pins.exclude])
    if len(allowed):
        call_schema = allowed.call_schema()
        if max_arg_chars is not None:
            call_schema = bound_strings(call_schema, max_arg_chars)
        if pins.arguments:
            calls = [
                _pin(c, pins.arguments.get(c["properties"]["name"]["const"], {}))
                for c in call_schema.get("anyOf", [call_schema])
            ]
            call_schema = {"anyOf": calls} if len(calls) > 1 else calls[0]
        if parallel:
            body: dict[str, Any] = {
                "tool_calls": {
                    "type": "array",
                    "items": call_schema,
                    "minItems": 1,
                    "maxItems": max_calls,
                }
            }
            variants.append(_object({**lead, **body}))
        else:
            for one in call_schema.get("anyOf", [call_schema]):
                variants.append(_object({**lead, **one["properties"]}))
    answer: dict[str, Any] = {"final_answer": {**_NOT_BLANK, "maxLength": max_answer_chars}}
    if answer_quote is not None:
        answer = {"final_answer": {"type": "string", "const": answer_quote}}
    variants.append(_object({**lead, **answer}))
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


_NOT_BLANK = {"type": "string", "minLength": 1, "pattern": r"^[ \t\n\r]*[^ \t\n\r][^\x00]*$"}
r"""A final answer has a non-blank character: ``""`` is not an answer, and small models
otherwise end a run with it. Spelled without ``\s``/``\S``: llama.cpp's schema-to-GBNF
converter (an OpenAI-compatible llama.cpp server) rejects those escapes and the server dies."""

_FIXED_STRING_KEYS = frozenset({"maxLength", "enum", "const", "pattern", "format"})


def bound_strings(schema: Any, max_chars: int) -> Any:
    """A copy of ``schema`` whose free-text strings get ``maxLength: max_chars``."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in _SUBSCHEMA_LISTS & schema.keys():
        out[key] = [bound_strings(s, max_chars) for s in schema[key]]
    for key in _SUBSCHEMA_MAPS & schema.keys():
        out[key] = {k: bound_strings(s, max_chars) for k, s in schema[key].items()}
    for key in _SUBSCHEMAS & schema.keys():
        out[key] = bound_strings(schema[key], max_chars)
    types = schema.get("type")
    is_string = types == "string" or (isinstance(types, list) and "string" in types)
    if is_string and not _FIXED_STRING_KEYS & schema.keys():
        out["maxLength"] = max_chars
    return out


_SUBSCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_SUBSCHEMA_MAPS = frozenset({"properties", "$defs", "definitions", "patternProperties"})
_SUBSCHEMAS = frozenset({"items", "additionalProperties"})


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def parse_action(text: str, parsed: Mapping[str, Any]) -> Action:
    """The :class:`Action` of a validated ToolAgent output.

    Identical calls within one parallel action are kept once: small models fill the
    array by repeating their calls, and running the same call twice in one step is never
    what was meant. (``uniqueItems`` would say it in the schema, but grammar engines do
    not enforce it.)
    """
    thought = parsed.get("thought")
    if "final_answer" in parsed:
        return Action(text=text, thought=thought, final_answer=str(parsed["final_answer"]))
    seen: set[str] = set()
    calls: list[ToolCall] = []
    for c in parsed.get("tool_calls", [parsed]):
        key = canonical_call(c["name"], c["arguments"])
        if key not in seen:
            seen.add(key)
            calls.append(ToolCall(name=c["name"], arguments=dict(c["arguments"])))
    return Action(text=text, thought=thought, calls=tuple(calls))


def action_text(
    *,
    thought: str | None = None,
    calls: list[dict[str, Any]] | None = None,
    final_answer: str | None = None,
    parallel: bool = False,
) -> str:
    """An action as the compact JSON the grammar makes the model write."""
    obj: dict[str, Any] = {} if thought is None else {"thought": thought}
    if final_answer is not None:
        obj["final_answer"] = final_answer
    elif calls is not None:
        plain = [{"name": c["name"], "arguments": c["arguments"]} for c in calls]
        if parallel:
            obj["tool_calls"] = plain
        else:
            obj.update(plain[0])
    return json.dumps(obj, ensure_ascii=False)


def canonical_call(name: str, arguments: Mapping[str, Any]) -> str:
    """A call as a string that is equal for equal calls (argument order ignored)."""
    return json.dumps([name, arguments], sort_keys=True, ensure_ascii=False)
