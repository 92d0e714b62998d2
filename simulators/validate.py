"""Is a trajectory well-formed training data? Validation and the repairs that are safe.

A trajectory a trainer reads must be coherent: it starts with the user's request, every
tool call names a known tool with arguments valid under that tool's schema, every call
has exactly one result message right after it, results match the tool's output schema
when one is known, and it ends with the assistant's final answer. A model that learns
from a call to a tool that does not exist learns to hallucinate tools.

:func:`validate_trajectory` lists what is wrong (short reason codes, for counting);
:func:`repair_trajectory` fixes what can be fixed without inventing content (missing or
duplicate call ids, arguments given as objects instead of JSON strings, arguments that
are strings of numbers or booleans where the schema wants those, arguments the schema
does not allow), and gives up on the rest.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import jsonschema

from slmkit.agents import Trajectory
from slmkit.models import decode_arguments
from slmkit.tools import ToolCall, ToolRegistry

__all__ = ["repair_trajectory", "validate_trajectory"]

_ROLES = {"system", "user", "assistant", "tool"}


def _output_ok(content: Any, schema: dict[str, Any] | None) -> bool:
    if schema is None:
        return True
    if isinstance(content, str) and content.startswith("Error:"):
        return True  # a tool failure is a legitimate observation
    value: Any = content
    if isinstance(content, str):
        try:
            value = json.loads(content)
        except json.JSONDecodeError:
            value = content
    if isinstance(value, dict) and set(value) == {"error"}:
        return True
    try:
        jsonschema.validate(value, schema)
    except (jsonschema.ValidationError, jsonschema.SchemaError):
        return False
    return True


def validate_trajectory(traj: Trajectory, registry: ToolRegistry) -> list[str]:
    """The problems of ``traj`` as ``"code: detail"`` strings (empty when it is valid)."""
    problems: list[str] = []
    msgs = traj.messages
    convo = [m for m in msgs if m.get("role") != "system"]
    if (
        not convo
        or convo[0].get("role") != "user"
        or not str(convo[0].get("content") or "").strip()
    ):
        problems.append("empty_user: the trajectory does not start with a user request")
    pending: dict[str, str] = {}
    seen_ids: set[str] = set()
    for i, m in enumerate(msgs):
        role = m.get("role")
        if role not in _ROLES:
            problems.append(f"bad_role: message {i} has role {role!r}")
            continue
        if role == "assistant":
            if pending:
                problems.append(f"missing_tool_result: calls {sorted(pending)} have no result")
                pending = {}
            for tc in m.get("tool_calls") or ():
                fn = tc.get("function", {}) if isinstance(tc, dict) else {}
                call_id = str(tc.get("id") or "") if isinstance(tc, dict) else ""
                name = str(fn.get("name", ""))
                if not call_id or call_id in seen_ids:
                    problems.append(f"bad_call_id: message {i} call {name!r} id {call_id!r}")
                seen_ids.add(call_id)
                pending[call_id] = name
                if not isinstance(fn.get("arguments"), str):
                    problems.append(f"arguments_not_json_string: message {i} call {name!r}")
                args = decode_arguments(fn.get("arguments", {}))
                if name not in registry:
                    problems.append(f"unknown_tool: {name!r}")
                    continue
                if not isinstance(args, dict):
                    problems.append(f"invalid_arguments: {name}: not a JSON object")
                    continue
                why = registry.validate(ToolCall(name=name, arguments=args))
                if why is not None:
                    problems.append(f"invalid_arguments: {why}")
        elif role == "tool":
            call_id = str(m.get("tool_call_id") or "")
            if call_id not in pending:
                problems.append(f"orphan_tool_result: message {i} answers no open call")
                continue
            name = pending.pop(call_id)
            if name in registry and not _output_ok(m.get("content"), registry[name].output_schema):
                problems.append(f"bad_output: {name} result does not match its output schema")
    if pending:
        problems.append(f"missing_tool_result: calls {sorted(pending)} have no result")
    last = msgs[-1] if msgs else {}
    if (
        last.get("role") != "assistant"
        or last.get("tool_calls")
        or not str(last.get("content") or "").strip()
    ):
        problems.append("no_final_answer: the trajectory does not end with the assistant's answer")
    return problems


def _coerce(value: Any, schema: dict[str, Any]) -> Any:
    """A string holding a number/boolean, as the number/boolean the schema wants."""
    kind = schema.get("type")
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if kind == "integer" and text.lstrip("-").isdigit():
            return int(text)
        if kind == "number":
            return float(text)
    except ValueError:
        return value
    if kind == "boolean" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    return value


def _repair_arguments(args: dict[str, Any], schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    props: dict[str, Any] = schema.get("properties") or {}
    fixed: dict[str, Any] = {}
    changed = False
    for k, v in args.items():
        if props and k not in props and schema.get("additionalProperties") is False:
            changed = True
            continue
        new = _coerce(v, props.get(k) or {})
        changed |= new is not v
        fixed[k] = new
    return fixed, changed


def repair_trajectory(
    traj: Trajectory, registry: ToolRegistry
) -> tuple[Trajectory | None, list[str], list[str]]:
    """``(repaired or None, repairs made, remaining problems)`` (see the module docs)."""
    repairs: list[str] = []
    messages: list[dict[str, Any]] = []
    id_map: list[tuple[str, str]] = []  # (old id, new id) in call order, for result messages
    used: set[str] = set()
    for m in traj.messages:
        m = dict(m)
        if m.get("role") == "assistant" and m.get("tool_calls"):
            calls = []
            for tc in m["tool_calls"]:
                tc = dict(tc)
                fn = dict(tc.get("function", {}))
                old = str(tc.get("id") or "")
                new = old if old and old not in used else f"call_{uuid.uuid4().hex[:12]}"
                if new != old:
                    repairs.append("call_id")
                used.add(new)
                id_map.append((old, new))
                args = decode_arguments(fn.get("arguments", {}))
                if not isinstance(fn.get("arguments"), str):
                    repairs.append("arguments_encoded")
                name = str(fn.get("name", ""))
                if isinstance(args, dict) and name in registry:
                    args, changed = _repair_arguments(args, registry[name].parameters)
                    if changed:
                        repairs.append("arguments_fixed")
                fn["arguments"] = (
                    json.dumps(args, ensure_ascii=False) if isinstance(args, dict) else str(args)
                )
                calls.append({"id": new, "type": "function", "function": fn})
            m["tool_calls"] = calls
        elif m.get("role") == "tool":
            old = str(m.get("tool_call_id") or "")
            match = next((pair for pair in id_map if pair[0] == old), None)
            if match is None and id_map:
                match = id_map[0]  # an unlabelled result answers the oldest open call
            if match is not None:
                id_map.remove(match)
                if m.get("tool_call_id") != match[1]:
                    repairs.append("result_id")
                m["tool_call_id"] = match[1]
        messages.append(m)
    fixed = traj.model_copy(update={"messages": messages})
    problems = validate_trajectory(fixed, registry)
    return (None if problems else fixed), sorted(set(repairs)), problems
