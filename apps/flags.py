"""Command options: a YAML config file, overridden by the flags given on the command line.

Every ``agentctl`` command that runs something takes ``--config file.yaml`` holding any
fields of its config class; its flags override the file. One rule for all of them:

* a flag **given on the command line** always wins;
* a flag left at its default fills a field only when the file does not set it, and only
  when the default is a value (a ``None`` default leaves the config class's own default);
* a flag named unlike its field (``--train-env`` -> ``train_envs``) says so in ``rename``.

``--config`` takes a path or the name of a config shipped with slmkit (``--config
distill``; a path that exists wins). Flags use one vocabulary across commands
(``--limit`` is always "the first N tasks", tests/apps/test_cli_vocabulary.py holds it);
a renamed flag's old spelling is kept by :func:`old_spellings` as a hidden alias.

The merged values are validated by the config class; a bad value is a
:class:`~slmkit.models.SlmkitError` naming the field, not a pydantic traceback.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml
from pydantic import BaseModel, ValidationError

from slmkit.models import SlmkitError

__all__ = [
    "ConfigOpt",
    "KvOpt",
    "OldSpellings",
    "load_config",
    "merge_config",
    "old_spellings",
    "parse_kv",
    "validate_config",
]

Cfg = TypeVar("Cfg", bound=BaseModel)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="YAML file with any of the command's options, or a shipped config's name",
    ),
]
KvOpt = Annotated[
    list[str] | None, typer.Option(help="KEY=VALUE (repeatable; VALUE as JSON if it parses)")
]


def parse_kv(pairs: list[str] | None) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (a value is JSON when it parses)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SlmkitError(
                f"expected KEY=VALUE, got {pair!r}", hint="e.g. --agent-opt max_steps=4"
            )
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


@dataclass(frozen=True)
class OldSpellings:
    """click's ``token_normalize_func``: an old option name becomes its new one.

    Only the new name is declared (and shown in ``--help``); the old one still parses.
    click hands over names without their dashes (``n`` for ``--n``).
    """

    aliases: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, token: str) -> str:
        return self.aliases.get(token, token)


def old_spellings(**aliases: str) -> dict[str, Any]:
    """Context settings keeping old flag names as hidden aliases: ``n="--limit"``."""
    table = {old.replace("_", "-"): new.removeprefix("--") for old, new in aliases.items()}
    return {"token_normalize_func": OldSpellings(table)}


def _read_yaml(config: Path) -> dict[str, Any]:
    from slmkit.training import config_file  # a shipped config's name, or a path

    config = config_file(config)
    try:
        loaded = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SlmkitError(f"cannot read config {config}: {exc}", hint="pass a YAML file") from exc
    if not isinstance(loaded, dict):
        raise SlmkitError(f"{config} is not a YAML mapping", hint="write `field: value` lines")
    return loaded


def _given(ctx: typer.Context, param: str) -> bool:
    """Whether the command's parameter ``param`` was set by the user (not a default)."""
    source = ctx.get_parameter_source(param)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def merge_config(
    ctx: typer.Context,
    config: Path | None,
    flags: Mapping[str, Any],
    rename: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The file's values overridden by ``flags`` (parameter name -> value), by the rule above.

    ``ctx`` is the running command's context: it says which flags the user gave.
    """
    values = _read_yaml(config) if config is not None else {}
    for param, value in flags.items():
        field = (rename or {}).get(param, param)
        if _given(ctx, param) or (field not in values and value is not None):
            values[field] = value
    return values


def validate_config(
    kind: type[Cfg],
    values: Mapping[str, Any],
    command: str,
    rename: Mapping[str, str] | None = None,
) -> Cfg:
    """``kind`` from ``values``; the first invalid field becomes an error with a hint.

    ``rename``: flag parameter -> config field, as :func:`merge_config` takes it; a config
    file that uses a flag's name (``train_limit:`` for ``train_n:``) is told the field's.
    """
    try:
        return kind.model_validate(dict(values))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        field = kind.model_fields.get(str(first["loc"][0])) if first["loc"] else None
        hint = f"see `agentctl {command} --help`"
        if first["type"] == "missing":  # "Field required" says neither what nor how
            what = f": {field.description}" if field and field.description else ""
            message = f"no {where} given{what}"
        elif first["type"] == "extra_forbidden" and len(first["loc"]) == 1:
            message = f"unknown field {where}"
            hint = _unknown_field_hint(where, list(kind.model_fields), rename or {}, hint)
        else:
            message = f"invalid {where}: {first['msg']}"
        raise SlmkitError(message, hint=hint) from exc


def _unknown_field_hint(
    name: str, fields: list[str], rename: Mapping[str, str], fallback: str
) -> str:
    """What an unknown config key should have been: a flag's field, or a near spelling."""
    if name in rename:
        flag = "--" + name.replace("_", "-")
        return f"{name} is the flag {flag}; in a config file the field is {rename[name]}"
    close = difflib.get_close_matches(name, fields, n=1)
    return f"did you mean {close[0]}? ({fallback})" if close else fallback


def load_config(
    kind: type[Cfg],
    ctx: typer.Context,
    config: Path | None,
    flags: Mapping[str, Any],
    *,
    command: str,
    rename: Mapping[str, str] | None = None,
) -> Cfg:
    """:func:`merge_config`, then :func:`validate_config`."""
    return validate_config(kind, merge_config(ctx, config, flags, rename), command, rename)
