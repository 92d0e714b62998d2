"""Prompts for tool calling, rendered from the package's template files.

Small models read a compact signature line per tool better than a JSON Schema dump:
``name(arg: type, opt: type = default) - description`` followed by one line per
argument. The schema itself still constrains decoding; the prompt only has to make the
model pick the right tool and copy the right values.

``prompts/tool_call.md`` is a Jinja template with the variables ``functions`` (the
rendered tool list), ``parallel`` (the reply is a list of calls) and ``allow_no_call``
(the model may decline with ``{"name": "none", ...}`` or ``[]``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from importlib import resources
from typing import Any

import jinja2
import jinja2.sandbox

from slmkit.tools.registry import NO_CALL
from slmkit.tools.tool import Tool

__all__ = [
    "describe_tool",
    "describe_tools",
    "load_prompt",
    "render_prompt",
    "tool_call_messages",
]

_ENV = jinja2.sandbox.ImmutableSandboxedEnvironment(
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=False,
    undefined=jinja2.StrictUndefined,
)


@cache
def load_prompt(name: str, package: str = "slmkit.tools") -> str:
    """The text of ``prompts/<name>`` shipped inside ``package``."""
    return (resources.files(package) / "prompts" / name).read_text(encoding="utf-8")


def render_prompt(template: str, **variables: Any) -> str:
    """Render a Jinja prompt template (sandboxed; undefined variables are an error)."""
    return _ENV.from_string(template).render(**variables).strip()


def _type_name(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    t = schema.get("type")
    if t == "array":
        return f"list[{_type_name(schema.get('items', {}))}]"
    if isinstance(t, list):
        return " | ".join(str(x) for x in t)
    return str(t) if t else "any"


def describe_tool(t: Tool) -> str:
    """One signature line and an indented line per documented argument."""
    props: dict[str, Any] = t.parameters.get("properties", {})
    required = set(t.parameters.get("required", []))
    sig = []
    for name, spec in props.items():
        part = f"{name}: {_type_name(spec)}"
        if name not in required:
            part += f" = {json.dumps(spec['default'])}" if "default" in spec else " (optional)"
        sig.append(part)
    lines = [f"- {t.name}({', '.join(sig)}): {t.description.strip()}"]
    for name, spec in props.items():
        desc = str(spec.get("description", "")).strip()
        if desc:
            lines.append(f"    {name}: {desc}")
    return "\n".join(lines)


def describe_tools(tools: Iterable[Tool], describe: Callable[[Tool], str] = describe_tool) -> str:
    return "\n".join(describe(t) for t in tools)


def tool_call_messages(
    conversation: Sequence[dict[str, Any]],
    tools: Iterable[Tool],
    *,
    parallel: bool = False,
    allow_no_call: bool = False,
    template: str = "tool_call.md",
    template_text: str | None = None,
    describe: Callable[[Tool], str] = describe_tool,
) -> list[dict[str, Any]]:
    """A system message describing ``tools`` followed by the conversation.

    The system message is ``template`` (a file in ``prompts/``, or ``template_text``)
    rendered with the tool list; ``parallel`` and ``allow_no_call`` must match the
    :meth:`~slmkit.tools.ToolRegistry.call_schema` the output is decoded under.
    """
    text = template_text if template_text is not None else load_prompt(template)
    system = render_prompt(
        text,
        functions=describe_tools(tools, describe),
        parallel=parallel,
        allow_no_call=allow_no_call,
        no_call=NO_CALL,
    )
    rest = [m for m in conversation if m.get("role") != "system"]
    return [{"role": "system", "content": system}, *rest]
