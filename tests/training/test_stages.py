"""The stage runner: skip what is done, resume what was cut off, redo what changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from slmkit.training.stages import RunFolder, Stage, run_stages


def _pipeline(log: list[str], deps: dict[str, Any], fail: set[str]) -> list[Stage]:
    def make(name: str) -> Stage:
        def run(folder: Path) -> dict[str, Any]:
            log.append(name)
            if name in fail:
                fail.discard(name)
                raise RuntimeError(f"{name} crashed")
            (folder / "out.txt").write_text(name)
            return {"name": name}

        return Stage(name, run, deps.get(name))

    return [make(n) for n in ("a", "b", "c")]


def test_resume_skips_done_stages_and_reruns_the_failed_one(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path, ["a", "b", "c"])
    log: list[str] = []
    fail = {"b"}
    with pytest.raises(RuntimeError):
        run_stages(folder, _pipeline(log, {}, fail))
    status = folder.status("b")
    assert status is not None and status.state == "failed" and "crashed" in (status.error or "")
    done = run_stages(folder, _pipeline(log, {}, fail))
    assert log == ["a", "b", "b", "c"]
    assert [s.stage for s in done] == ["a", "b", "c"]
    b = folder.status("b")
    assert b is not None and b.attempts == 2 and b.state == "done"


def test_changed_options_rerun_that_stage_and_later_only(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path, ["a", "b", "c"])
    log: list[str] = []
    run_stages(folder, _pipeline(log, {"b": 1}, set()))
    log.clear()
    run_stages(folder, _pipeline(log, {"b": 2}, set()))
    assert log == ["b", "c"]


def test_from_and_force(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path, ["a", "b", "c"])
    log: list[str] = []
    run_stages(folder, _pipeline(log, {}, set()))
    log.clear()
    run_stages(folder, _pipeline(log, {}, set()), start="c")
    assert log == ["c"]
    log.clear()
    run_stages(folder, _pipeline(log, {}, set()), force=True, until="b")
    assert log == ["a", "b"]
    assert folder.status("c") is None  # wiped by --force, not run (until b)


def test_from_a_stage_after_an_unfinished_one_is_refused(tmp_path: Path) -> None:
    from slmkit.training import TrainingError

    folder = RunFolder(tmp_path, ["a", "b", "c"])
    with pytest.raises(TrainingError, match="not done"):
        run_stages(folder, _pipeline([], {}, set()), start="c")


def test_an_optional_stage_that_is_off_leaves_older_run_folders_as_they_were(
    tmp_path: Path,
) -> None:
    """A stage added later (distill's ``synth``) and off: a run folder made before it
    existed resumes with nothing redone, and ``--from`` still works; turned on, it and
    everything after it run; off again, its output is replaced and the rest redone."""
    folder = RunFolder(tmp_path, ["a", "x", "b", "c"])
    log: list[str] = []
    run_stages(folder, _pipeline(log, {}, set()))  # the older pipeline, without x

    def with_x(enabled: bool, deps: Any = None) -> list[Stage]:
        a, b, c = _pipeline(log, {}, set())
        x = Stage("x", lambda _: log.append("x") or {"on": enabled}, deps, enabled=enabled)
        return [a, x, b, c]

    log.clear()
    run_stages(folder, with_x(False))
    assert log == []
    run_stages(folder, with_x(False), start="c")
    assert log == ["c"]
    log.clear()
    run_stages(folder, with_x(True, {"n": 2}))
    assert log == ["x", "b", "c"]
    log.clear()
    run_stages(folder, with_x(False))
    x = folder.status("x")
    assert log == ["x", "b", "c"] and x is not None and x.outputs == {"on": False}
