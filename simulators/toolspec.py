"""Tool schemas as files: what a simulated environment and amplification start from.

A tools file is JSON: a list (or ``{"tools": [...]}``) of entries in OpenAI form
(``{"type": "function", "function": {...}}``) or plain ``{"name", "description",
"parameters"}``. Two optional keys go beyond OpenAI's format:

* ``output_schema`` (or ``returns``): the JSON Schema of what the tool returns; a
  simulator's outputs are constrained to it;
* ``mutating``: whether the tool changes state (a simulator then forgets cached outputs
  of earlier calls). Without it, names starting with a write verb (``cancel_``,
  ``update_``, ``book_``...) count as mutating.

:func:`tools_to_json` writes the same format, so a real environment's tools (with their
output schemas) can be exported and simulated elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from slmkit.models import existing_path, path_or_text
from slmkit.simulators.errors import SimulationError
from slmkit.tools import Tool, ToolDefinitionError

__all__ = ["is_mutating", "load_tools", "text_or_file", "tools_to_json"]

_WRITE_VERBS = (
    "add", "book", "cancel", "change", "create", "delete", "exchange", "modify", "remove",
    "return", "send", "set", "transfer", "update", "write", "put", "post", "insert",
)  # fmt: skip


def is_mutating(tool: Tool, declared: Mapping[str, bool] | None = None) -> bool:
    """Whether ``tool`` changes state: as declared, else by its name's first word."""
    if declared and tool.name in declared:
        return bool(declared[tool.name])
    first = tool.name.replace(".", "_").split("_", 1)[0].lower()
    return first in _WRITE_VERBS


def _entries(data: Any) -> list[Mapping[str, Any]]:
    if isinstance(data, Mapping) and isinstance(data.get("tools"), list):
        data = data["tools"]
    if not isinstance(data, list) or not all(isinstance(e, Mapping) for e in data):
        raise SimulationError(
            "a tools file holds a JSON list of tool entries",
            hint='write [{"name": ..., "description": ..., "parameters": {...}}, ...]',
        )
    return data


def load_tools(
    source: str | Path | Iterable[Mapping[str, Any]],
) -> tuple[list[Tool], dict[str, bool]]:
    """Tools (schema-only, ``fn=None``) and their declared ``mutating`` flags.

    Args:
        source: a JSON file path (a ``str`` too), or already-parsed entries.

    Raises:
        PathNotFoundError: the file does not exist.
        SimulationError: the file is unreadable or an entry is not a valid tool.
    """
    if isinstance(source, str | Path):
        path = existing_path(source, what="tools file", kind="file")
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise SimulationError(
                f"cannot read tools from {path}: {exc}", hint="give a JSON file"
            ) from exc
    else:
        data = list(source)
    tools: list[Tool] = []
    mutating: dict[str, bool] = {}
    for entry in _entries(data):
        fn = entry.get("function", entry)
        try:
            tool = Tool.from_json_schema(
                str(fn["name"]),
                str(fn.get("description", "")),
                dict(fn.get("parameters") or {}),
                output_schema=fn.get("output_schema")
                or fn.get("returns")
                or entry.get("output_schema"),
            )
        except (KeyError, ToolDefinitionError) as exc:
            raise SimulationError(
                f"invalid tool entry {str(fn.get('name', '?'))!r}: {exc}",
                hint="each entry needs a name and a JSON-Schema 'parameters' object",
            ) from exc
        flag = fn.get("mutating", entry.get("mutating"))
        if flag is not None:
            mutating[tool.name] = bool(flag)
        tools.append(tool)
    if not tools:
        raise SimulationError("the tools file lists no tools", hint="add at least one tool")
    return tools, mutating


def tools_to_json(
    tools: Iterable[Tool], mutating: Mapping[str, bool] | None = None
) -> list[dict[str, Any]]:
    """Tools in the tools-file format (see the module docs)."""
    out = []
    for t in tools:
        entry: dict[str, Any] = {
            "name": t.name,
            "description": t.description,
            "parameters": t.parameters,
        }
        if t.output_schema is not None:
            entry["output_schema"] = t.output_schema
        entry["mutating"] = is_mutating(t, mutating)
        out.append(entry)
    return out


def text_or_file(value: str | Path | None) -> str:
    """The text of an option that takes "text or a file" ("" for None).

    A ``Path``, or a ``str`` naming an existing file, is read; a ``str`` that reads as
    a file name but names nothing is a ``PathNotFoundError`` (see
    :func:`slmkit.models.path_or_text`); any other ``str`` is the text itself.
    """
    if value is None:
        return ""
    found = path_or_text(value)
    return found.read_text(encoding="utf-8") if isinstance(found, Path) else found
