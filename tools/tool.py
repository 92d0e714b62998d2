"""A ``Tool``: a name, a description and a JSON Schema of arguments, optionally with code.

Tools come from typed, documented Python functions (:func:`tool`) or arrive as JSON
function docs (:meth:`Tool.from_json_schema`, OpenAI or BFCL style). Either way the
argument schema is what a constrained model is held to, and what calls are validated
against before anything runs.

A tool says whether it is *pure* (``@tool(pure=True)``): its result depends on its
arguments alone and calling it changes nothing, so an agent may call it for candidate
actions that lose a vote. Tools are not pure unless they say so: an undeclared side
effect must never run more than once.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, overload

from pydantic import BaseModel, ConfigDict, Field, create_model

from slmkit.tools.errors import ToolDefinitionError

__all__ = ["Tool", "inline_refs", "normalize_parameters", "tool"]

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")

# BFCL (and some hand-written function docs) use Python type names.
_TYPE_ALIASES = {
    "dict": "object",
    "float": "number",
    "tuple": "array",
    "list": "array",
    "int": "integer",
    "str": "string",
    "bool": "boolean",
    "double": "number",
    "long": "integer",
    "char": "string",
}
_JSON_TYPES = {"object", "number", "array", "integer", "string", "boolean", "null"}


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Inline ``$defs`` references (grammar compilers and small prompts prefer flat schemas,
    and a tool's parameters are nested inside call schemas, where ``#/$defs/...`` would
    point at nothing).

    Recursive definitions are left as references.
    """
    defs: dict[str, Any] = schema.get("$defs", {})

    def walk(node: Any, seen: frozenset[str]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                key = ref.split("/")[-1]
                if key in defs and key not in seen:
                    merged = {**defs[key], **{k: v for k, v in node.items() if k != "$ref"}}
                    return walk(merged, seen | {key})
            return {k: walk(v, seen) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(v, seen) for v in node]
        return node

    out = walk(schema, frozenset())
    assert isinstance(out, dict)
    if _has_ref(out) and defs:
        out["$defs"] = defs
    return out


def _has_ref(node: Any) -> bool:
    if isinstance(node, dict):
        return "$ref" in node or any(_has_ref(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_ref(v) for v in node)
    return False


def normalize_parameters(schema: Any, *, where: str = "parameters") -> dict[str, Any]:
    """A JSON Schema from an OpenAI/BFCL-style parameter doc.

    Maps BFCL's ``dict``/``float``/``tuple``/``any`` type names to JSON Schema, recurses
    into ``properties``/``items``, and drops ``required`` entries that name no property
    (a common defect in hand-written docs that would make the schema unsatisfiable).
    """
    if not isinstance(schema, dict):
        raise ToolDefinitionError(
            f"{where} must be a JSON object, got {type(schema).__name__}",
            hint='write e.g. {"type": "object", "properties": {...}}',
        )
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type":
            types = value if isinstance(value, list) else [value]
            mapped: list[str] = []
            for t in types:
                t2 = _TYPE_ALIASES.get(str(t).lower(), str(t).lower())
                if t2 == "any":
                    mapped = []
                    break
                if t2 not in _JSON_TYPES:
                    raise ToolDefinitionError(
                        f"{where}: unknown type {t!r}",
                        hint=f"use one of {sorted(_JSON_TYPES | set(_TYPE_ALIASES) | {'any'})}",
                    )
                mapped.append(t2)
            if mapped:
                out["type"] = mapped[0] if len(mapped) == 1 else mapped
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {
                k: normalize_parameters(v, where=f"{where}.{k}") for k, v in value.items()
            }
        elif key == "items" and isinstance(value, dict):
            out["items"] = normalize_parameters(value, where=f"{where}[]")
        elif key in ("anyOf", "oneOf", "allOf") and isinstance(value, list):
            out[key] = [normalize_parameters(v, where=f"{where}.{key}") for v in value]
        elif key == "optional":  # non-standard flag some docs carry
            continue
        else:
            out[key] = value
    if "required" in out and isinstance(out.get("properties"), dict):
        out["required"] = [r for r in out["required"] if r in out["properties"]]
    if out.get("type") == "object" and "properties" in out:
        out.setdefault("additionalProperties", False)
    return out


@dataclass(frozen=True)
class Tool:
    """A callable (or schema-only) tool. ``fn`` is None for tools only a simulator plays.

    ``pure``: calling it has no effect beyond its result (see the module docs).
    """

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any] | None = field(default=None, compare=False)
    args_model: type[BaseModel] | None = field(default=None, compare=False)
    output_schema: dict[str, Any] | None = None
    pure: bool = False

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ToolDefinitionError(
                f"invalid tool name {self.name!r}",
                hint="names start with a letter or _, then letters, digits, _ . - (max 64)",
            )

    @classmethod
    def from_function(
        cls,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        pure: bool = False,
    ) -> Tool:
        """Build a tool from a typed function; the docstring gives the descriptions."""
        if not callable(fn):
            raise ToolDefinitionError(
                f"a tool is made from a function, not from {type(fn).__name__} {fn!r:.40}",
                hint="decorate a typed, documented function with @tool",
            )
        doc = inspect.getdoc(fn) or ""
        summary, arg_docs = _parse_docstring(doc)
        desc = description or summary
        if not desc:
            raise ToolDefinitionError(
                f"tool {fn.__name__!r} has no description",
                hint="add a docstring: the model reads it to decide when to call the tool",
            )
        try:
            hints = typing.get_type_hints(fn, include_extras=True)
        except NameError as exc:
            raise ToolDefinitionError(f"cannot resolve type hints of {fn.__name__}: {exc}") from exc
        fields: dict[str, Any] = {}
        for pname, param in inspect.signature(fn).parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ToolDefinitionError(
                    f"tool {fn.__name__!r} takes *args/**kwargs", hint="name every argument"
                )
            if pname not in hints:
                raise ToolDefinitionError(
                    f"argument {pname!r} of {fn.__name__!r} has no type annotation",
                    hint="annotate every argument: its type becomes the JSON Schema",
                )
            default = ... if param.default is param.empty else param.default
            fields[pname] = (hints[pname], Field(default, description=arg_docs.get(pname)))
        model = create_model(f"{fn.__name__}_args", __config__=ConfigDict(extra="forbid"), **fields)
        schema = inline_refs(model.model_json_schema())  # an Enum or model argument: $defs
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        return cls(
            name=name or fn.__name__,
            description=desc,
            parameters=schema,
            fn=fn,
            args_model=model,
            pure=pure,
        )

    @classmethod
    def from_json_schema(
        cls,
        name: str,
        description: str,
        parameters: dict[str, Any],
        fn: Callable[..., Any] | None = None,
        *,
        output_schema: dict[str, Any] | None = None,
        pure: bool = False,
    ) -> Tool:
        """Build a tool from a JSON function doc (OpenAI or BFCL style)."""
        params = inline_refs(normalize_parameters(parameters))
        params.setdefault("type", "object")
        params.setdefault("properties", {})
        return cls(
            name=name,
            description=description,
            parameters=params,
            fn=fn,
            output_schema=output_schema,
            pure=pure,
        )

    @classmethod
    def from_openai(cls, spec: dict[str, Any], fn: Callable[..., Any] | None = None) -> Tool:
        """Build a tool from an OpenAI ``{"type": "function", "function": {...}}`` entry."""
        f = spec.get("function", spec)
        return cls.from_json_schema(
            f["name"], f.get("description", ""), f.get("parameters", {}), fn
        )

    def openai_schema(self) -> dict[str, Any]:
        """The OpenAI ``tools=[...]`` entry for this tool."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def __call__(self, **kwargs: Any) -> Any:
        if self.fn is None:
            raise ToolDefinitionError(
                f"tool {self.name!r} has no implementation",
                hint="pass fn= or run it inside a simulated environment",
            )
        if self.args_model is not None:
            validated = self.args_model.model_validate(kwargs)
            kwargs = {k: getattr(validated, k) for k in type(validated).model_fields}
        return self.fn(**kwargs)


@overload
def tool(
    fn: Callable[..., Any],
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    pure: bool = False,
) -> Tool: ...


@overload
def tool(
    *, name: str | None = None, description: str | None = None, pure: bool = False
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    pure: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Decorator: turn a typed, documented function into a :class:`Tool`.

    ``@tool(pure=True)`` declares that calling it changes nothing (see the module docs).

    >>> @tool
    ... def add(a: int, b: int) -> int:
    ...     '''Add two integers.
    ...
    ...     Args:
    ...         a: the first addend
    ...         b: the second addend
    ...     '''
    ...     return a + b
    >>> add.parameters["required"]
    ['a', 'b']
    """
    if fn is not None:
        return Tool.from_function(fn, name=name, description=description, pure=pure)

    def wrap(f: Callable[..., Any]) -> Tool:
        return Tool.from_function(f, name=name, description=description, pure=pure)

    return wrap


_SECTION_RE = re.compile(r"^(Args|Arguments|Parameters|Returns|Raises|Examples?):\s*$")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Summary paragraph and per-argument descriptions of a Google-style docstring."""
    lines = doc.splitlines()
    summary: list[str] = []
    args: dict[str, str] = {}
    section = None
    current = None
    args_indent = 0
    for line in lines:
        stripped = line.strip()
        header = _SECTION_RE.match(stripped)
        if header:
            section = header.group(1)
            current = None
            continue
        if section is None:
            if not stripped and summary:
                section = "body"
            elif stripped:
                summary.append(stripped)
        elif section in ("Args", "Arguments", "Parameters") and stripped:
            indent = len(line) - len(line.lstrip())
            m = re.match(r"^(\w+)\s*(\([^)]*\))?\s*:\s*(.*)$", stripped)
            if m and (current is None or indent <= args_indent):
                current = m.group(1)
                args_indent = indent
                args[current] = m.group(3)
            elif current:
                args[current] = f"{args[current]} {stripped}".strip()
    return " ".join(summary), args
