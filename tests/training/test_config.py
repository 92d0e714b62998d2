"""Hardware defaults: which precision a run resolves to on this machine."""

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
