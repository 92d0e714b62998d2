"""Shipped config files: found by name, and the distill config says what the code does."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slmkit.models import PathNotFoundError
from slmkit.training import DistillConfig, config_file, shipped_configs


def test_the_shipped_distill_config_equals_the_code_defaults() -> None:
    """Compared with the code's defaults, not a copy of numbers: change one, change both."""
    shipped = yaml.safe_load(config_file("distill").read_text(encoding="utf-8"))
    assert DistillConfig.model_validate(shipped) == DistillConfig()
    defaults = DistillConfig().model_dump(mode="json")
    for key, value in shipped.items():  # every value written down is the default
        if isinstance(value, dict):
            assert {k: defaults[key][k] for k in value} == value, key
        else:
            assert defaults[key] == value, key


def test_shipped_configs_are_found_by_name_and_a_path_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = set(shipped_configs())
    assert names == {
        "distill",
        "distill-full",
        "accelerate/ddp",
        "accelerate/fsdp",
        "accelerate/deepspeed_zero2",
    }
    for name in names:
        assert isinstance(yaml.safe_load(config_file(name).read_text(encoding="utf-8")), dict)
    assert config_file("distill.yaml") == config_file("distill") == shipped_configs()["distill"]
    monkeypatch.chdir(tmp_path)
    Path("distill.yaml").write_text("train_n: 5\n", encoding="utf-8")
    assert config_file("distill.yaml") == Path("distill.yaml")  # yours, not the shipped one
    with pytest.raises(PathNotFoundError, match="no shipped config") as err:
        config_file("distil")
    assert "accelerate/ddp" in (err.value.hint or "")
