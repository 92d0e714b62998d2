"""Hardware defaults: which precision a run resolves to on this machine."""

from __future__ import annotations

import pytest

from slmkit.training import SftConfig
from slmkit.training.config import cpu_has_bf16


def test_full_fine_tuning_on_a_bf16_cpu_autocasts_and_lora_stays_fp32() -> None:
    """bf16 autocast only where the CPU multiplies bf16 and the weights stay fp32."""
    full = SftConfig(method="full", device="cpu").resolved()
    assert full.precision == ("bf16" if cpu_has_bf16() else "fp32")
    assert SftConfig(method="lora", device="cpu").resolved().precision == "fp32"
    assert SftConfig(method="full", device="cpu", precision="fp32").resolved().precision == "fp32"


@pytest.mark.parametrize("method", ["full", "lora"])
def test_a_cpu_without_bf16_units_trains_in_fp32(
    method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert SftConfig(method=method, device="cpu").resolved().precision == "fp32"
