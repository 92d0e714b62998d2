"""Output constraints: what a backend must enforce while decoding, and the check after.

A :class:`Constraint` is either a JSON Schema (from a pydantic model class or a dict)
or a grammar in llguidance's Lark dialect (used for things JSON Schema cannot say,
such as "a verbatim substring of this passage"). Every backend receives the same
``Constraint`` and either enforces it or raises :class:`ConstraintError`; none may
drop it silently. After decoding, :func:`check_output` validates the text again, so a
backend bug can never pass off invalid output as valid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ValidationError

from slmkit.models.errors import ConstraintError

__all__ = ["Constraint", "OutputCheck", "SchemaLike", "check_output", "to_json_schema"]

SchemaLike = type[BaseModel] | dict[str, Any]


def to_json_schema(schema: SchemaLike) -> dict[str, Any]:
    """The JSON Schema of a pydantic model class, or a copy of a schema dict (checked)."""
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema.model_json_schema()
    if isinstance(schema, dict):
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ConstraintError(
                f"not a valid JSON Schema: {exc.message}",
                hint="fix the schema; it is checked against its $schema draft (default 2020-12)",
            ) from exc
        return dict(schema)
    raise ConstraintError(
        f"schema must be a pydantic model class or a JSON Schema dict, got {type(schema).__name__}",
        hint="pass e.g. schema=MyModel or schema={'type': 'object', ...}",
    )


@dataclass(frozen=True, eq=False)
class Constraint:
    """A decoding constraint: ``kind='json'`` with a schema, or ``kind='lark'`` with a grammar."""

    kind: Literal["json", "lark"]
    json_schema: dict[str, Any] | None = None
    lark: str | None = None
    model: type[BaseModel] | None = field(default=None, compare=False)

    @classmethod
    def from_schema(cls, schema: SchemaLike) -> Constraint:
        model = schema if isinstance(schema, type) and issubclass(schema, BaseModel) else None
        return cls(kind="json", json_schema=to_json_schema(schema), model=model)

    @classmethod
    def from_lark(cls, grammar: str) -> Constraint:
        if not grammar.strip():
            raise ConstraintError("empty grammar", hint="pass a Lark grammar with a `start` rule")
        return cls(kind="lark", lark=grammar)

    @property
    def key(self) -> str:
        """A canonical string for caching compiled grammars."""
        if self.kind == "json":
            return "json:" + json.dumps(self.json_schema, sort_keys=True)
        return "lark:" + (self.lark or "")

    def describe(self) -> str:
        return "JSON schema" if self.kind == "json" else "Lark grammar"


@dataclass(frozen=True)
class OutputCheck:
    """The verdict on one output: parsed value (JSON only), whether it is valid, and why not."""

    parsed: Any
    valid: bool
    error: str | None = None


def check_output(
    text: str, constraint: Constraint | None, *, grammar_accepted: bool
) -> OutputCheck:
    """Validate ``text`` against ``constraint`` after decoding.

    JSON output is parsed and validated against the schema (by pydantic when a model class
    was given, so ``parsed`` is an instance of it). A Lark-constrained output is valid when
    the grammar engine accepted it (``grammar_accepted``), which the backend reports.
    """
    if constraint is None:
        return OutputCheck(parsed=None, valid=True)
    if constraint.kind == "lark":
        return OutputCheck(
            parsed=None,
            valid=grammar_accepted,
            error=None if grammar_accepted else "output ended before the grammar was complete",
        )
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return OutputCheck(parsed=None, valid=False, error=f"invalid JSON: {exc}")
    if constraint.model is not None:
        try:
            return OutputCheck(parsed=constraint.model.model_validate(value), valid=True)
        except ValidationError as exc:
            return OutputCheck(parsed=value, valid=False, error=str(exc))
    assert constraint.json_schema is not None
    validator = jsonschema.validators.validator_for(constraint.json_schema)(constraint.json_schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.path) or "<root>"
        return OutputCheck(parsed=value, valid=False, error=f"{where}: {first.message}")
    return OutputCheck(parsed=value, valid=True)
