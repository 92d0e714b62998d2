"""Prompts for tool calling, rendered from the package's template files.

Small models read a compact signature line per tool better than a JSON Schema dump:
``name(arg: type, opt: type = default) - description`` followed by one line per
argument. The schema itself still constrains decoding; the prompt only has to make the
model pick the right tool and copy the right values.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import cache
from importlib import resources
from typing import Any

from slmkit.tools.tool import Tool

__all__ = ["describe_tools", "load_prompt", "tool_call_messages"]


@cache
def load_prompt(name: str, package: str = "slmkit.tools") -> str:
    """The text of ``prompts/<name>`` shipped inside ``package``."""
    return (resources.files(package) / "prompts" / name).read_text(encoding="utf-8")


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


def describe_tools(tools: Iterable[Tool]) -> str:
    return "\n".join(describe_tool(t) for t in tools)


def tool_call_messages(
    conversation: Sequence[dict[str, Any]],
    tools: Iterable[Tool],
    *,
    template: str = "tool_call.md",
) -> list[dict[str, Any]]:
    """A system message describing ``tools`` (from ``template``) followed by the conversation."""
    system = load_prompt(template).replace("{functions}", describe_tools(tools))
    rest = [m for m in conversation if m.get("role") != "system"]
    return [{"role": "system", "content": system}, *rest]
