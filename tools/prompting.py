"""Prompts for tool calling, rendered from the package's template files.

Small models read a compact signature line per tool better than a JSON Schema dump:
``name(arg: type, opt: type = default) - description`` followed by one line per
argument. The schema itself still constrains decoding; the prompt only has to make the
model pick the right tool and copy the right values.

``prompts/tool_call.md`` is a Jinja template (rendered by
:func:`slmkit.models.render_template`) with the variables ``functions`` (the rendered
tool list), ``parallel`` (the reply is a list of calls) and ``allow_no_call`` (the model
may decline with ``{"name": "none", ...}`` or ``[]``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from slmkit.models import load_prompt, render_template
from slmkit.tools.registry import NO_CALL
from slmkit.tools.tool import Tool

__all__ = ["describe_tool", "describe_tools", "tool_call_messages"]


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
    text = template_text if template_text is not None else load_prompt("slmkit.tools", template)
    system = render_template(
        text,
        functions=describe_tools(tools, describe),
        parallel=parallel,
        allow_no_call=allow_no_call,
        no_call=NO_CALL,
    ).strip()
    rest = [m for m in conversation if m.get("role") != "system"]
    return [{"role": "system", "content": system}, *rest]
