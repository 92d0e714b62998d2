"""The distillation report's verdict: the paired sign test on the same held-out tasks decides."""

from __future__ import annotations

from typing import Any

from slmkit.training.report import sign_test, verdict


def _eval(successes: int, tasks: int) -> dict[str, Any]:
    return {"success_rate": successes / tasks, "successes": successes, "tasks": tasks}


def _paired(fixed: int, broken: int) -> dict[str, Any]:
    return {"fixed": fixed, "broken": broken, "p_value": f"{sign_test(fixed, broken):.3f}"}


def test_a_significant_paired_change_is_not_called_noise_when_the_intervals_overlap() -> None:
    # The laptop run with full fine-tuning: 36/120 -> 48/120, 16 fixed and 4 broken.
    # The Wilson intervals [22.5, 38.7] and [31.7, 48.9] overlap; the pairing decides.
    text = verdict(_eval(36, 120), _eval(48, 120), _paired(16, 4))
    assert "larger than the noise" in text and "p = 0.012" in text
    assert "16 fixed, 4 broken" in text and "intervals of the two rates overlap" in text
    assert "within the noise" not in text


def test_a_change_the_sign_test_cannot_tell_from_noise_says_so() -> None:
    text = verdict(_eval(36, 120), _eval(39, 120), _paired(12, 9))  # oracle data, adapter
    assert "within the noise" in text and "p = 0.664" in text and "12 fixed, 9 broken" in text
