"""A distillation run killed (SIGKILL) in its sft or curve stage resumes there, the stages
before it untouched; its training data holds no held-out task or near-duplicate."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from slmkit.training import STAGES, DistillConfig, SftConfig, distill
from slmkit.training.stages import RunFolder

_CHILD = (
    "import sys\n"
    "from slmkit.training import DistillConfig, distill\n"
    "distill(DistillConfig.model_validate_json(sys.argv[1]))\n"
)


def _distill_cli() -> typer.Typer:
    """The ``agentctl distill`` commands of ``slmkit.apps.cli_train`` on an app of their own."""
    from slmkit.apps.cli_train import register

    app = typer.Typer()
    app.command("noop")(lambda: None)
    register(app)
    return app


def _gold_run(run: Path, env: str = "bfcl:simple", **changes: Any) -> DistillConfig:
    """A small run on ``env`` with its reference actions as the teacher (fast and
    deterministic), evaluated on one held-out task, no transfer, no curve."""
    return DistillConfig(
        **{
            "run_dir": run,
            "teacher_agent": "gold",
            "train_envs": [env],
            "eval_env": env,
            "eval_n": 1,
            "transfer_env": None,
            "curve": [],
            "progress": False,
            **changes,
        }
    )


def _files(folder: Path) -> dict[str, float]:
    return {
        str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()
    }


def _kill_at_first_checkpoint(cfg: DistillConfig, stage: Path, *, timeout_s: float) -> None:
    """Run ``distill(cfg)`` in a child and SIGKILL it once ``stage`` saved its first
    training checkpoint (mid-stage, by construction)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, cfg.model_dump_json()],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    marker = stage / "work" / "checkpoints" / "checkpoint-1" / "trainer_state.json"
    deadline = time.time() + timeout_s
    try:
        while not marker.is_file():
            assert child.poll() is None, (
                child.stderr.read().decode()[-2000:] if child.stderr else ""
            )
            assert time.time() < deadline, f"{stage.name} never wrote a checkpoint"
            time.sleep(0.5)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()


@pytest.mark.slow
def test_killed_in_sft_resumes_there_without_redoing_collect(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = _gold_run(
        run,
        train_n=4,
        sft=SftConfig(
            max_steps=3, batch_size=2, save_steps=1, max_length=384, merge=True, progress=False
        ),
    )
    _kill_at_first_checkpoint(cfg, run / "sft", timeout_s=600)

    folder = RunFolder(run, STAGES)
    sft_status = folder.status("sft")
    assert sft_status is not None and sft_status.state == "running"  # killed mid-stage
    collected = _files(run / "collect")
    filtered = _files(run / "filter")
    assert any(name.endswith(".jsonl") for name in collected)

    said: list[tuple[str, str]] = []
    result = distill(cfg, announce=lambda stage, msg: said.append((stage, msg)))

    assert ("collect", "done earlier: skipped") in said
    assert ("sft", "resuming") in said
    assert _files(run / "collect") == collected  # nothing collected again
    assert _files(run / "filter") == filtered
    statuses = dict(folder.overview())
    collect_status = statuses["collect"]
    assert collect_status is not None and collect_status.attempts == 1
    sft_done = statuses["sft"]
    assert sft_done is not None and sft_done.state == "done" and sft_done.attempts == 2
    meta = (result.student / "slmkit_student.json").read_text()
    assert '"resumed_from": "' in meta and "checkpoint-" in meta
    report = result.report.read_text()
    assert "## Result" in report and "95% Wilson" in report
    assert (run / "report.png").stat().st_size > 10_000

    # `agentctl distill status RUN`
    app = _distill_cli()
    out = CliRunner().invoke(app, ["distill", "status", str(run)], terminal_width=200)
    assert out.exit_code == 0, out.output
    for stage in STAGES:
        assert stage in out.output
    assert "done" in out.output


def test_the_cli_keeps_distills_own_sft_defaults(tmp_path: Path) -> None:
    """With no SFT flags the student is merged (a plain HF folder the GGUF export takes);
    an SFT flag changes only what it names."""
    app = _distill_cli()
    for extra, epochs in (([], 2.0), (["--epochs", "1"], 1.0)):
        run = tmp_path / f"run{len(extra)}"
        args = ["distill", "--run-dir", str(run), "--teacher-agent", "gold", "--train-limit", "1"]
        out = CliRunner().invoke(app, [*args, "--until", "filter", "--no-progress", *extra])
        assert out.exit_code == 0, out.output
        sft_cfg = json.loads((run / "config.json").read_text())["sft"]
        assert sft_cfg["merge"] is True and sft_cfg["epochs"] == epochs
        assert sft_cfg["method"] == "full"  # the whole 135M student, not a CPU adapter


def test_run_dir_alone_resumes_the_run_as_it_was_started(tmp_path: Path) -> None:
    """``--run-dir X`` with no other flag continues X with X's own options, not the
    defaults (which would redo its stages); a flag given then still wins."""
    app = _distill_cli()
    run = tmp_path / "run"
    args = ["distill", "--run-dir", str(run), "--no-progress"]
    first = [*args, "--teacher-agent", "gold", "--train-limit", "1", "--epochs", "1"]
    out = CliRunner().invoke(app, [*first, "--until", "collect"])
    assert out.exit_code == 0, out.output
    started = json.loads((run / "config.json").read_text())
    collected = (run / "collect" / "bfcl_simple.jsonl").stat().st_mtime_ns
    out = CliRunner().invoke(app, [*args, "--until", "filter"])
    assert out.exit_code == 0, out.output
    resumed = json.loads((run / "config.json").read_text())
    assert resumed == started  # gold teacher, 1 task, 1 epoch: not the laptop defaults
    assert (run / "collect" / "bfcl_simple.jsonl").stat().st_mtime_ns == collected
    out = CliRunner().invoke(app, [*args, "--until", "filter", "--eval-limit", "7"])
    assert out.exit_code == 0, out.output
    changed = json.loads((run / "config.json").read_text())
    assert changed == {**started, "eval_n": 7}


def test_the_training_file_keeps_task_order_whatever_order_collect_finished_in(
    tmp_path: Path,
) -> None:
    """Concurrent collect workers write runs in the order they finish; the filter stage
    writes them in task order, so the same teacher data always trains the same student."""
    from slmkit.agents import read_trajectories

    run = tmp_path / "run"
    cfg = _gold_run(run, train_n=6)
    distill(cfg, until="filter")
    train = run / "filter" / "train.jsonl"
    first = train.read_bytes()
    ids = [t.meta["task_id"] for t in read_trajectories(train)]
    assert len(ids) >= 4 and ids == sorted(ids)
    collected = run / "collect" / "bfcl_simple.jsonl"
    lines = collected.read_text().splitlines(keepends=True)
    collected.write_text("".join(reversed(lines)))  # the workers finished the other way round
    distill(cfg, start="filter", until="filter")
    assert train.read_bytes() == first


def test_distill_rl_flag_adds_an_rl_stage_from_the_student(tmp_path: Path) -> None:
    """``--rl`` (with ``--rl-opt``) configures GRPO after SFT; without it the stage is off."""
    from slmkit.training.distill import _Pipeline

    app = _distill_cli()
    for extra, want in (([], None), (["--rl", "--rl-opt", "max_steps=3"], 3)):
        run = tmp_path / f"run{len(extra)}"
        args = ["distill", "--run-dir", str(run), "--teacher-agent", "gold", "--train-n", "1"]
        out = CliRunner().invoke(app, [*args, "--until", "filter", "--no-progress", *extra])
        assert out.exit_code == 0, out.output
        rl = json.loads((run / "config.json").read_text())["rl"]
        assert (rl and rl["max_steps"]) == want
    cfg = DistillConfig.model_validate_json((run / "config.json").read_text())
    rl_cfg = _Pipeline(cfg, run, lambda s, m: None).rl_config()
    assert rl_cfg.model == str(run / "student")  # RL continues from the SFT student
    assert rl_cfg.env == cfg.train_envs[0] and rl_cfg.eval_n == 0


@pytest.mark.slow
def test_distill_with_rl_reports_before_sft_after_sft_and_after_rl(tmp_path: Path) -> None:
    """gold teacher -> 1 SFT step -> 1 GRPO step from the student -> three evaluations."""
    from slmkit.training import RlConfig

    cfg = _gold_run(
        tmp_path / "run",
        "thermostat",
        train_n=2,
        eval_n=2,
        sft=SftConfig(max_steps=1, batch_size=2, max_length=384, merge=True, progress=False),
        rl=RlConfig(n=1, num_generations=2, max_steps=1, max_completion_length=128),
    )
    result = distill(cfg)
    ev = result.outputs("eval")
    assert {"before", "after", "after_rl"} <= set(ev)
    assert all(ev[k]["tasks"] == 2 for k in ("before", "after", "after_rl"))
    assert result.outputs("rl")["steps"] == 1
    report = result.report.read_text()
    assert "## After RL" in report
    for row in ("| before SFT |", "| after SFT |", "| after RL |", "after SFT -> after RL"):
        assert row in report


@pytest.mark.slow
def test_killed_in_the_learning_curve_resumes_there_on_clean_data(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = DistillConfig(
        run_dir=run,
        teacher_agent="gold",
        train_envs=["bfcl:simple", "bfcl:parallel_multiple"],
        train_n=9,  # simple's 9th training item nearly duplicates a held-out one
        eval_n=2,
        transfer_n=1,
        curve=[0.5],
        sft=SftConfig(
            max_steps=3, batch_size=2, save_steps=1, max_length=384, merge=True, progress=False
        ),
        progress=False,
    )
    _kill_at_first_checkpoint(cfg, run / "curve" / "p050", timeout_s=900)

    folder = RunFolder(run, STAGES)
    curve_status = folder.status("curve")
    assert curve_status is not None and curve_status.state == "running"
    before = {stage: _files(run / stage) for stage in ("collect", "filter", "sft", "eval")}

    said: list[tuple[str, str]] = []
    result = distill(cfg, announce=lambda stage, msg: said.append((stage, msg)))

    assert ("curve", "resuming") in said
    assert ("eval", "done earlier: skipped") in said
    for stage, files in before.items():
        assert _files(run / stage) == files, stage  # nothing before the curve redone
    point = result.outputs("curve")["points"]["p050"]
    assert point["share"] == 0.5 and point["tasks"] == 2
    meta = json.loads((run / "curve" / "p050" / "student" / "slmkit_student.json").read_text())
    assert meta["resumed_from"] and "checkpoint-" in meta["resumed_from"]
    report = result.report.read_text()
    assert "## Learning curve" in report and "| 50% |" in report
    kept = result.outputs("filter")["kept"]  # every point counts runs the same way
    assert f"| 50% | {point['runs']} |" in report and f"| 100% | {kept} |" in report
    assert point["runs"] == round(0.5 * kept)
    assert (run / "curve.png").stat().st_size > 5_000

    # the training data: no held-out task, no near-duplicate of one
    from slmkit.agents import read_trajectories
    from slmkit.training.decontam import HeldOut, request_words, similarity

    held = HeldOut.from_envs([cfg.eval_env, "bfcl:parallel"], "test")
    flt = result.outputs("filter")
    assert flt["dropped"].get("near_held_out", 0) >= 1  # BFCL has one among these 18
    for traj in read_trajectories(run / "filter" / "train.jsonl"):
        assert traj.meta["task_id"] not in held.ids
        words = request_words(next(m["content"] for m in traj.messages if m["role"] == "user"))
        assert max(similarity(words, h) for _, h in held.words) < cfg.near_duplicate


def test_preset_full_is_the_shipped_full_config_and_flags_still_win(tmp_path: Path) -> None:
    app = _distill_cli()
    run = tmp_path / "run"
    args = ["distill", "--preset", "full", "--run-dir", str(run), "--teacher-agent", "gold"]
    out = CliRunner().invoke(app, [*args, "--train-limit", "1", "--until", "collect"])
    assert out.exit_code == 0, out.output
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["samples"] == 4 and cfg["eval_n"] is None and cfg["train_n"] == 1
    assert cfg["sft"]["val_fraction"] == 0.1 and cfg["sft"]["merge"] is True
    assert cfg["sft"]["method"] == "full"
    bad = CliRunner().invoke(app, ["distill", "--preset", "huge", "--run-dir", str(run)])
    assert bad.exit_code != 0 and "unknown preset 'huge'" in str(bad.exception)


def test_preset_reference_collects_the_reference_runs(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["distill", "--preset", "reference", "--run-dir", str(run), "--until", "collect"]
    more = ["--train-env", "bfcl:simple", "--train-limit", "2"]
    out = CliRunner().invoke(_distill_cli(), [*args, *more])
    assert out.exit_code == 0, out.output
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["teacher_agent"] == "gold" and cfg["sft"]["epochs"] == 1
    ledger = run / "collect" / "bfcl_simple.ledger.jsonl"
    assert [json.loads(line)["success"] for line in ledger.read_text().splitlines()] == [True] * 2


def test_written_tasks_join_the_training_data_verified_and_decontaminated(
    tmp_path: Path,
) -> None:
    """``synth_per_seed``: the teacher (the real 135M) writes tasks from its verified runs
    and solves them again; the filter takes the verified ones with the real runs, and
    drops a written run whose request is a held-out task's."""
    from slmkit.agents import read_trajectories
    from slmkit.simulators import load_env
    from slmkit.training.report import write_distill_report

    run = tmp_path / "run"
    cfg = _gold_run(run, teacher_agent="tool", train_n=4, samples=1, synth_per_seed=2)
    distill(cfg, until="filter")
    folder = RunFolder(run, STAGES)
    synth = folder.status("synth")
    assert synth is not None and synth.state == "done"
    out = synth.outputs["envs"]["bfcl:simple"]
    verified = int(folder.status("collect").outputs["envs"]["bfcl:simple"]["successes"])
    assert out["write_attempts"] == 2 * verified
    assert out["written"] + sum(out["write_dropped"].values()) == out["write_attempts"]
    assert out["tasks"] == out["written"]  # each written task solved once
    filtered = folder.status("filter").outputs
    assert filtered["collected"] == 4 + out["written"]
    train = list(read_trajectories(run / "filter" / "train.jsonl"))
    assert all(t.meta["success"] for t in train)
    assert sum("~w" in t.meta["task_id"] for t in train) <= out["successes"]
    md, _ = write_distill_report(run, cfg, dict(folder.overview()))
    report = md.read_text()
    assert "| bfcl:simple (written tasks) |" in report
    assert f"bfcl:simple: {out['written']} of {out['write_attempts']} written" in report

    # A written run that restates a held-out task never trains.
    held = next(iter(load_env("bfcl:simple", split="test").tasks(limit=1)))
    real = next(t for t in train if "~w" not in t.meta["task_id"])
    messages = [
        {**m, "content": held["prompt"]} if m.get("role") == "user" else m for m in real.messages
    ]
    leak = real.model_copy(
        update={"messages": messages, "meta": {**real.meta, "task_id": real.id + "~wleak"}}
    )
    with (run / "synth" / "bfcl_simple.jsonl").open("a") as f:
        f.write(leak.to_json() + "\n")
    distill(cfg, start="filter", until="filter")
    assert folder.status("filter").outputs["dropped"].get("near_held_out", 0) >= 1
    again = list(read_trajectories(run / "filter" / "train.jsonl"))
    assert all(t.meta["task_id"] != real.id + "~wleak" for t in again)


def test_a_larger_evaluation_of_a_procedural_env_needs_the_filter_again(tmp_path: Path) -> None:
    """Math tasks are generated without end: the filter checks the training data against
    the first max(eval_n, transfer_n) held-out tasks, so evaluating more is refused, with
    the way out, instead of counting tasks whose near-duplicates may have trained."""
    from slmkit.training import TrainingError

    run = tmp_path / "run"
    sft = SftConfig(max_steps=1, batch_size=2, max_length=384, merge=True, progress=False)
    distill(_gold_run(run, env="math", train_n=3, eval_n=1, sft=sft), until="filter")
    filtered = RunFolder(run, STAGES).status("filter")
    assert filtered is not None and filtered.outputs["held_out_limit"] == 1
    with pytest.raises(TrainingError, match="against its first 1; evaluating 3") as err:
        distill(_gold_run(run, env="math", train_n=3, eval_n=3, sft=sft), until="eval")
    assert "--from filter" in (err.value.hint or "")
