"""``ToolRegistry``: the set of tools an agent may call, the schema of a call, and execution.

:meth:`ToolRegistry.call_schema` is the JSON Schema a constrained model decodes under:
a union over tools of ``{"name": <const>, "arguments": <that tool's schema>}``, so the
model can only name a real tool with valid arguments. :meth:`ToolRegistry.execute`
validates again before running and turns every failure (unknown tool, bad arguments, a
tool that raises) into a :class:`ToolResult` the agent can read: never a crash.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from pydantic import ValidationError

from slmkit.models import decode_arguments
from slmkit.tools.errors import ToolDefinitionError
from slmkit.tools.tool import Tool

__all__ = ["NO_CALL", "ToolCall", "ToolRegistry", "ToolResult"]

_MAX_OUTPUT_CHARS = 4000

NO_CALL = "none"
"""The name a model writes, under ``call_schema(allow_no_call=True)``, to call no tool."""


@dataclass(frozen=True)
class ToolCall:
    """One call: tool name, arguments, and an id that links it to its result message."""

    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:12]}")

    @classmethod
    def from_obj(cls, obj: Any) -> ToolCall:
        """Accept ``{"name", "arguments"}``, an OpenAI ``tool_calls`` entry, or a ToolCall."""
        if isinstance(obj, ToolCall):
            return obj
        if isinstance(obj, Mapping):
            fn = obj.get("function", obj)
            args = decode_arguments(fn.get("arguments", {}))
            kwargs: dict[str, Any] = {"name": str(fn.get("name", "")), "arguments": args}
            if obj.get("id"):
                kwargs["id"] = str(obj["id"])
            return cls(**kwargs)
        raise TypeError(f"not a tool call: {obj!r:.80}")

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": json.dumps(self.arguments)},
        }


@dataclass(frozen=True)
class ToolResult:
    """The outcome of executing a call: ``ok`` with ``output``, or an ``error`` message."""

    call: ToolCall
    ok: bool
    output: Any = None
    error: str | None = None
    duration_s: float = 0.0

    @property
    def content(self) -> str:
        """The observation text an agent reads (capped so one result can't flood a context)."""
        if not self.ok:
            text = f"Error: {self.error}"
        elif isinstance(self.output, str):
            text = self.output
        else:
            try:
                text = json.dumps(self.output, ensure_ascii=False, default=str)
            except (TypeError, ValueError):
                text = repr(self.output)
        if len(text) > _MAX_OUTPUT_CHARS:
            text = text[:_MAX_OUTPUT_CHARS] + f"... [truncated {len(text) - _MAX_OUTPUT_CHARS}]"
        return text

    def to_message(self) -> dict[str, Any]:
        """The OpenAI ``tool`` message for this result."""
        return {
            "role": "tool",
            "tool_call_id": self.call.id,
            "name": self.call.name,
            "content": self.content,
        }


class ToolRegistry:
    """An ordered set of tools with unique names."""

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.add(t)

    def add(self, t: Tool | Callable[..., Any]) -> Tool:
        item = t if isinstance(t, Tool) else Tool.from_function(t)
        if item.name in self._tools:
            raise ToolDefinitionError(
                f"two tools are named {item.name!r}", hint="give one of them name=..."
            )
        self._tools[item.name] = item
        return item

    def __getitem__(self, name: str) -> Tool:
        return self._tools[name]

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def openai_tools(self) -> list[dict[str, Any]]:
        """The OpenAI ``tools=[...]`` list, for servers that take it."""
        return [t.openai_schema() for t in self]

    def call_schema(
        self, *, parallel: bool = False, max_calls: int = 8, allow_no_call: bool = False
    ) -> dict[str, Any]:
        """JSON Schema of one call (or, with ``parallel``, a non-empty list of calls).

        With ``allow_no_call`` the model may also decline: one call may be
        ``{"name": "none", "arguments": {}}`` (:data:`NO_CALL`) and a parallel list may be
        empty. :meth:`calls_from_output` turns either form into a list of calls.
        """
        if not self._tools:
            raise ToolDefinitionError("the registry has no tools", hint="add at least one tool")
        if allow_no_call and NO_CALL in self._tools:
            raise ToolDefinitionError(
                f"a tool is named {NO_CALL!r}, which allow_no_call reserves for 'no call'",
                hint="rename that tool",
            )
        variants = [
            {
                "type": "object",
                "properties": {
                    "name": {"const": t.name},
                    "arguments": t.parameters,
                },
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
            for t in self
        ]
        if allow_no_call and not parallel:
            variants.append(
                {
                    "type": "object",
                    "properties": {
                        "name": {"const": NO_CALL},
                        "arguments": {
                            "type": "object",
                            "properties": {},
                            "additionalProperties": False,
                        },
                    },
                    "required": ["name", "arguments"],
                    "additionalProperties": False,
                }
            )
        one: dict[str, Any] = variants[0] if len(variants) == 1 else {"anyOf": variants}
        if not parallel:
            return one
        return {
            "type": "array",
            "items": one,
            "minItems": 0 if allow_no_call else 1,
            "maxItems": max_calls,
        }

    @staticmethod
    def calls_from_output(value: Any) -> list[ToolCall]:
        """The calls in a model's (parsed) output: one call, a list of calls, or none.

        A :data:`NO_CALL` entry and an empty list mean "no call" and give ``[]``.
        Raises ``TypeError`` for output that is not a call or a list of calls.
        """
        items = value if isinstance(value, list) else [value]
        calls = [ToolCall.from_obj(v) for v in items]
        return [c for c in calls if c.name != NO_CALL]

    def validate(self, call: ToolCall) -> str | None:
        """Why ``call`` is invalid (a message the model can act on), or None if it is valid."""
        if call.name not in self._tools:
            return f"unknown tool {call.name!r}; available tools: {', '.join(self.names)}"
        tool = self._tools[call.name]
        if not isinstance(call.arguments, dict):
            return f"arguments of {call.name} must be a JSON object, got {call.arguments!r:.60}"
        validator = jsonschema.Draft202012Validator(tool.parameters)
        errors = sorted(validator.iter_errors(call.arguments), key=lambda e: list(e.path))
        if errors:
            msgs = []
            for e in errors[:3]:
                where = ".".join(str(p) for p in e.path)
                msgs.append(f"{where}: {e.message}" if where else e.message)
            return f"invalid arguments for {call.name}: " + "; ".join(msgs)
        return None

    def execute(self, call: ToolCall | Mapping[str, Any]) -> ToolResult:
        """Validate, then run; every failure becomes a readable ``ToolResult``."""
        try:
            parsed = ToolCall.from_obj(call)
        except TypeError as exc:
            return ToolResult(call=ToolCall(name="?", arguments={}), ok=False, error=str(exc))
        problem = self.validate(parsed)
        if problem is not None:
            return ToolResult(call=parsed, ok=False, error=problem)
        tool = self._tools[parsed.name]
        if tool.fn is None:
            return ToolResult(
                call=parsed, ok=False, error=f"tool {parsed.name!r} has no implementation here"
            )
        start = time.perf_counter()
        try:
            output = tool(**parsed.arguments)
        except ValidationError as exc:
            return ToolResult(
                call=parsed,
                ok=False,
                error=f"invalid arguments for {parsed.name}: {_short_validation(exc)}",
                duration_s=time.perf_counter() - start,
            )
        except (Exception, SystemExit) as exc:  # a tool that raises must never crash the agent
            # SystemExit too: functions written for a CLI (argparse) exit on bad input.
            # KeyboardInterrupt still stops the run: that one is the user's.
            return ToolResult(
                call=parsed,
                ok=False,
                error=f"{type(exc).__name__}: {exc}",
                duration_s=time.perf_counter() - start,
            )
        return ToolResult(
            call=parsed, ok=True, output=output, duration_s=time.perf_counter() - start
        )


def _short_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(x) for x in err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return "; ".join(parts)
