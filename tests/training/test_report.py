"""The distillation report: the paired sign test decides; failures are counted by kind."""

from __future__ import annotations

from typing import Any

from slmkit.agents import Trajectory
from slmkit.simulators.report import report_from_trajectories
from slmkit.training.report import failure_rows, sign_test, verdict


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


def test_the_failure_table_counts_what_the_failed_tasks_got_wrong() -> None:
    """From the evaluations' failure counts (the environment's kinds)."""
    runs = [
        Trajectory(id=f"t{i}", meta={"success": kind is None, "reward_info": {"kind": kind}})
        for i, kind in enumerate(["wrong function", "wrong function", "arguments", None])
    ]
    before = report_from_trajectories(runs)
    assert before.failures == {"wrong function": 2, "arguments": 1}  # a success is no failure
    after = {"failures": {"arguments": 2, "call count": 1}}
    assert failure_rows(before.model_dump(), after) == [
        ["arguments", "1", "2", "+1"],
        ["wrong function", "2", "0", "-2"],
        ["call count", "0", "1", "+1"],
    ]
    unnamed = report_from_trajectories([Trajectory(id="t0", meta={"success": False})])
    assert unnamed.failures == {} and failure_rows(unnamed.model_dump(), {}) == []
