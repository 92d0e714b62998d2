"""One rule for ``--config file.yaml`` and flags, on a real typer command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
from pydantic import BaseModel, ConfigDict, Field
from typer.testing import CliRunner

from slmkit.apps.flags import ConfigOpt, KvOpt, load_config, parse_kv, validate_config
from slmkit.models import SlmkitError


class Demo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    k: int = Field(4, ge=1)
    name: str = "default"
    limit: int | None = 10
    options: dict[str, Any] = Field(default_factory=dict)


def _app(seen: list[Demo]) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def run(
        ctx: typer.Context,
        k: Annotated[int, typer.Option()] = 4,
        name: Annotated[str | None, typer.Option()] = None,
        limit: Annotated[int | None, typer.Option()] = None,
        opt: KvOpt = None,
        config: ConfigOpt = None,
    ) -> None:
        flags = {"k": k, "name": name, "limit": limit, "opt": parse_kv(opt)}
        seen.append(load_config(Demo, ctx, config, flags, command="run", rename={"opt": "options"}))

    return app


def _run(tmp_path: Path, yaml_text: str | None, *args: str) -> Demo:
    seen: list[Demo] = []
    argv = list(args)
    if yaml_text is not None:
        (tmp_path / "c.yaml").write_text(yaml_text)
        argv += ["--config", str(tmp_path / "c.yaml")]
    result = CliRunner().invoke(_app(seen), argv)
    if result.exception is not None:
        raise result.exception
    return seen[0]


def test_the_file_beats_defaults_and_given_flags_beat_the_file(tmp_path: Path) -> None:
    assert _run(tmp_path, None) == Demo()  # None defaults leave the config's own
    from_file = _run(tmp_path, "k: 8\nname: filed\noptions: {a: 1}\n")
    assert (from_file.k, from_file.name, from_file.options) == (8, "filed", {"a": 1})
    given = _run(tmp_path, "k: 8\nname: filed\noptions: {a: 1}\n", "--k", "4", "--opt", "b=2")
    assert (given.k, given.name, given.options) == (4, "filed", {"b": 2})  # even = default
    assert _run(tmp_path, "limit: null\n").limit is None  # the file may unset a field


def test_bad_input_is_an_error_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(SlmkitError, match="invalid k") as err:
        _run(tmp_path, "k: 0\n")
    assert err.value.hint == "see `agentctl run --help`"
    with pytest.raises(SlmkitError, match="not a YAML mapping"):
        _run(tmp_path, "- a\n- b\n")
    with pytest.raises(SlmkitError, match="expected KEY=VALUE"):
        _run(tmp_path, None, "--opt", "novalue")


def test_an_unknown_config_field_is_named_with_what_it_should_be(tmp_path: Path) -> None:
    with pytest.raises(SlmkitError, match="unknown field opt") as err:
        _run(tmp_path, "opt: {a: 1}\n")  # the flag's name, not the field's
    assert err.value.hint == "opt is the flag --opt; in a config file the field is options"
    with pytest.raises(SlmkitError, match="unknown field lmit") as err:
        _run(tmp_path, "lmit: 3\n")
    assert err.value.hint == "did you mean limit? (see `agentctl run --help`)"


def test_a_missing_required_field_says_what_it_is() -> None:
    class Needs(BaseModel):
        paths: list[Path] = Field(min_length=1, description="files or folders to index")

    with pytest.raises(SlmkitError) as err:
        validate_config(Needs, {}, "index")
    assert err.value.message == "no paths given: files or folders to index"
    assert err.value.hint == "see `agentctl index --help`"


def test_config_takes_a_shipped_configs_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--config distill`` is the config shipped in the package; a path of yours wins."""
    from slmkit.apps.flags import merge_config
    from slmkit.models import PathNotFoundError
    from slmkit.training import DistillConfig

    monkeypatch.chdir(tmp_path)
    ctx: Any = None  # no flags to weigh: only the file is read
    shipped = merge_config(ctx, Path("distill"), {})
    assert DistillConfig.model_validate(shipped) == DistillConfig()
    Path("distill").write_text("train_n: 3\n", encoding="utf-8")
    assert merge_config(ctx, Path("distill"), {}) == {"train_n": 3}
    with pytest.raises(PathNotFoundError, match="no shipped config"):
        merge_config(ctx, Path("distil"), {})
