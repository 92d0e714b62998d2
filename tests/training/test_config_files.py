"""Shipped config files: found by name, and the distill config says what the code does."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

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
        "distill-reference",
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


def _changed(a: BaseModel, b: BaseModel) -> set[str]:
    """The fields whose values differ between two models of one class."""
    return {k for k in type(a).model_fields if getattr(a, k) != getattr(b, k)}


def test_the_reference_preset_is_the_laptop_run_on_other_data() -> None:
    """Only the data (every training item's reference actions), the epochs (with the
    validation interval) and the learning curve differ, so its report compares with the
    laptop run's on the same held-out items."""
    shipped = yaml.safe_load(config_file("distill-reference").read_text(encoding="utf-8"))
    reference, laptop = DistillConfig.model_validate(shipped), DistillConfig()
    assert _changed(reference, laptop) == {"train_n", "teacher_agent", "sft", "curve"}
    assert (reference.train_n, reference.teacher_agent, reference.curve) == (None, "gold", [])
    assert _changed(reference.sft, laptop.sft) == {"epochs", "save_steps"}
