"""Keeping a simulated tool consistent within an episode, and measuring how consistent it is.

A simulator that says an order is ``pending`` and, two calls later, ``delivered``
(with nothing in between that could change it) teaches an agent nonsense. Three
mechanisms keep outputs consistent, from strongest to weakest:

1. identical calls return the identical output (a cache, cleared by mutating calls);
2. :func:`pin_schema` turns what the episode already established into ``const``\\ s of
   the output schema, so the grammar *cannot* contradict it: an argument echoed in the
   output (``order_id``), and the scalar fields of the latest earlier record of the same
   entity (same id key and value, same kind of record);
3. the earlier calls and outputs are in the simulator's prompt.

:func:`entity_conflicts` measures the result: every record that carries an id key
(``*_id`` or ``id``) is an observation of an entity; two observations of one entity
that disagree on a scalar field, with no mutating call between them, are a conflict.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema

__all__ = ["Observation", "entity_conflicts", "pin_schema", "records"]

_SCALARS = (str, int, float, bool)


def _is_id_key(key: str) -> bool:
    return key == "id" or key.endswith("_id")


def _is_id(key: str, value: Any) -> bool:
    return _is_id_key(key) and isinstance(value, str | int) and not isinstance(value, bool)


def records(value: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object inside ``value`` (itself included), depth first."""
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from records(v)
    elif isinstance(value, list):
        for v in value:
            yield from records(v)


def _fits(value: Any, schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    try:
        jsonschema.validate(value, schema)
    except (jsonschema.ValidationError, jsonschema.SchemaError):
        return False
    return True


def pin_schema(
    schema: dict[str, Any],
    arguments: Mapping[str, Any],
    earlier: Sequence[Any],
    *,
    min_overlap: float = 0.5,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``schema`` with fields the episode already fixed turned into ``const``.

    Args:
        schema: the tool's output schema (an object schema; others are returned as is).
        arguments: the call's arguments.
        earlier: earlier outputs of the episode, oldest first.
        min_overlap: an earlier record counts as the same kind of entity when at least
            this share of its keys are properties of ``schema``.

    Returns:
        The pinned schema and the pins ``{field: value}``.
    """
    props = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(props, dict):
        return schema, {}
    pins: dict[str, Any] = {}
    for key, value in arguments.items():  # 1. arguments echoed in the output
        if key in props and isinstance(value, _SCALARS) and _fits(value, props[key]):
            pins[key] = value
    for key, value in arguments.items():  # 2. the latest earlier record of this entity
        if not _is_id_key(key) or not isinstance(value, str | int):
            continue
        match = None
        for output in earlier:
            for rec in records(output):
                if (
                    rec.get(key) == value
                    and len(rec)
                    and (sum(1 for k in rec if k in props) / len(rec) >= min_overlap)
                ):
                    match = rec
        if match is None:
            continue
        for field, v in match.items():
            fits = field in props and isinstance(v, _SCALARS) and _fits(v, props[field])
            if fits and field not in pins:
                pins[field] = v
    if not pins:
        return schema, {}
    pinned = copy.deepcopy(schema)
    for field, v in pins.items():
        pinned["properties"][field] = {"const": v}
    return pinned, pins


@dataclass(frozen=True)
class Observation:
    """One output of an episode: the tool, whether it mutates, and the output."""

    tool: str
    mutating: bool
    output: Any


def entity_conflicts(observations: Sequence[Observation]) -> tuple[int, int, list[str]]:
    """``(comparisons, conflicts, examples)`` over the entities observed in an episode.

    A record's entity is the set of its id fields (``*_id``/``id``) and their values, so
    two items of one product in an order (same ``product_id``, different ``item_id``) are
    two entities, never a false conflict. Each pair of consecutive observations of one
    entity is compared on their shared scalar fields; a mutating call between them
    resets the comparison (the entity may legitimately have changed).
    """
    last: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}
    comparisons = conflicts = 0
    examples: list[str] = []
    for obs in observations:
        if obs.mutating:
            last.clear()
        for rec in records(obs.output):
            fields = {k: v for k, v in rec.items() if isinstance(v, _SCALARS)}
            ids = tuple(
                sorted(
                    (k, v) for k, v in fields.items() if _is_id_key(k) and isinstance(v, str | int)
                )
            )
            if not ids:
                continue
            before = last.get(ids)
            if before is not None:
                for field, v in fields.items():
                    if field in before and not _is_id_key(field):
                        comparisons += 1
                        if before[field] != v:
                            conflicts += 1
                            if len(examples) < 5:
                                name = ", ".join(f"{k}={x}" for k, x in ids)
                                was = before[field]
                                examples.append(f"{name}: {field} {was!r} -> {v!r} ({obs.tool})")
            last[ids] = fields
    return comparisons, conflicts, examples
