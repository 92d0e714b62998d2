"""Config defaults: which precision a run resolves to on this machine, and what a
partial block of a distillation config keeps."""

from __future__ import annotations

import pytest
import torch

from slmkit.training import SftConfig


@pytest.mark.parametrize("bf16_units", [True, False])
def test_full_fine_tuning_autocasts_to_bf16_only_on_a_cpu_with_bf16_units(
    bf16_units: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bf16 autocast where the CPU multiplies bf16 and the weights stay fp32 (full); a
    LoRA student, whose frozen weights would be loaded as bf16, and an explicit choice
    keep fp32. (Both answers of the CPU probe are faked: one CPU has only one.)"""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: bf16_units)
    full = SftConfig(method="full", device="cpu").resolved()
    assert full.precision == ("bf16" if bf16_units else "fp32")
    assert SftConfig(method="lora", device="cpu").resolved().precision == "fp32"
    assert SftConfig(method="full", device="cpu", precision="fp32").resolved().precision == "fp32"


def test_a_partial_sft_block_changes_only_its_fields_of_distills_defaults() -> None:
    """A config naming one SFT field keeps distill's own defaults for the rest (a merged,
    whole student with a validation slice), not the bare SftConfig's (an unmerged adapter)."""
    from slmkit.training import DistillConfig

    default = DistillConfig().sft
    partial = DistillConfig.model_validate({"sft": {"epochs": 1}}).sft
    assert partial.epochs == 1
    assert partial.model_copy(update={"epochs": default.epochs}) == default
    assert (partial.method, partial.merge, partial.val_fraction) == ("full", True, 0.1)
    explicit = SftConfig(method="lora", merge=False)
    assert DistillConfig(sft=explicit).sft == explicit  # a whole SftConfig is taken as given
