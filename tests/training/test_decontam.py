"""Held-out hygiene on the real BFCL data: no held-out task or near-duplicate is trained on."""

from __future__ import annotations

from typing import Any

from slmkit.agents import Trajectory
from slmkit.simulators import load_env
from slmkit.training import DistillConfig
from slmkit.training.decontam import HeldOut, decontaminate, request_words, similarity


def _as_run(task: dict[str, Any]) -> Trajectory:
    return Trajectory(
        id=str(task["id"]),
        task={"id": task["id"]},
        messages=[{"role": "user", "content": str(task["prompt"])}],
        tools=[{"type": "function", "function": f} for f in task["functions"]],
        meta={"task_id": task["id"]},
    )


def test_no_held_out_task_or_near_duplicate_survives_in_the_training_data() -> None:
    cfg = DistillConfig()
    assert cfg.transfer_env is not None
    held = HeldOut.from_envs([cfg.eval_env, cfg.transfer_env], cfg.eval_split)
    train = load_env("bfcl:simple+multiple+parallel+parallel_multiple", split="train")
    runs = [_as_run(t) for t in train.tasks(limit=None)]
    test = load_env(cfg.eval_env, split=cfg.eval_split)
    leaked = [_as_run(t) for t in test.tasks(limit=3)]  # held-out tasks slipped in
    twin = runs[0].model_copy(update={"id": "copy", "meta": {"task_id": "copy"}})

    out = decontaminate([*runs, *leaked, twin], held, threshold=cfg.near_duplicate)

    assert out.dropped["held_out"] == 3
    assert out.dropped["duplicate"] == 1 and "copy" not in {r.id for r in out.kept}
    # BFCL writes many items from one template: ~30 training items nearly repeat a test one
    assert out.dropped["near_held_out"] >= 20
    assert out.matches["simple_python_11"] == "simple_python_0"
    for run in out.kept:
        assert run.id not in held.ids
        words = request_words(str(run.messages[0]["content"]))
        assert max(similarity(words, h) for _, h in held.words) < cfg.near_duplicate
    assert len(out.kept) == len(runs) + 1 - out.dropped["near_held_out"] - out.dropped["duplicate"]


def test_similarity_tells_a_template_twin_from_another_task() -> None:
    a = request_words("Find the area of a triangle with a base of 10 units and height of 5 units.")
    b = request_words("Find the area of a triangle with a base of 10 units and height of 5 units")
    c = request_words("Calculate the factorial of 5 using math functions.")
    assert similarity(a, b) == 1.0
    assert similarity(a, c) < 0.3


def test_a_procedural_held_out_set_is_the_evaluated_first_n() -> None:
    """Generators have no end: the tasks held out are the ones evaluated, and no limit is
    an error that says so."""
    import pytest

    from slmkit.training import TrainingError

    held = HeldOut.from_envs(["math", "thermostat"], "test", limit=4)
    thermostat = load_env("thermostat", split="test")
    assert not thermostat.unbounded  # a finite set: all of it, whatever the limit
    assert len(held.ids) == 4 + len(list(thermostat.tasks(limit=None)))
    with pytest.raises(TrainingError, match="unbounded"):
        HeldOut.from_envs(["math"], "test")
