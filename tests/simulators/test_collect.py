"""Collection: atomic JSONL, filters, rejection sampling, and resuming after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slmkit.agents import read_trajectories
from slmkit.models import ChatModel
from slmkit.simulators import CollectConfig, collect
from slmkit.simulators.collect import ledger_path
from slmkit.simulators.jsonl import AppendLog


def _ids(path: Path) -> list[str]:
    return [t.id for t in read_trajectories(path)]


def test_append_log_repairs_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    log = AppendLog(path)
    log.append({"id": "a"})
    log.append({"id": "b"})
    log.close()
    with path.open("ab") as f:
        f.write(b'{"id": "c", "half')  # a writer killed mid-line
    log = AppendLog(path)
    assert [r["id"] for r in log.recover()] == ["a", "b"]
    assert log.repaired_bytes > 0 and path.read_bytes().endswith(b"\n")
    log.append({"id": "c"})
    log.close()
    assert [json.loads(x)["id"] for x in path.read_text().splitlines()] == ["a", "b", "c"]


def test_read_trajectories_keeps_a_whole_last_line_and_skips_a_torn_one(tmp_path: Path) -> None:
    """A file written with "\n".join has no final newline: its last trajectory counts. Only
    a last line that does not parse is a torn write."""
    whole = tmp_path / "seeds.jsonl"
    whole.write_text("\n".join(['{"id": "a"}', '{"id": "b"}']))
    assert _ids(whole) == ["a", "b"]
    torn = tmp_path / "torn.jsonl"
    torn.write_text('{"id": "a"}\n{"id": "b", "mess')
    assert _ids(torn) == ["a"]


def test_collect_writes_and_resumes_without_duplicates(tmp_path: Path) -> None:
    out = tmp_path / "runs.jsonl"
    cfg = CollectConfig(env="bfcl", agent="gold", split="test", n=6, out=out, progress=False)
    first = collect(cfg)
    assert first.tasks == first.new == first.kept == 6 and first.success_rate == 1.0
    more = collect(cfg.model_copy(update={"n": 9}))
    assert more.resumed == 6 and more.new == 3 and more.tasks == 9
    ids = _ids(out)
    assert len(ids) == len(set(ids)) == 9
    assert len(ledger_path(out).read_text().splitlines()) == 9
    traj = next(read_trajectories(out))
    assert traj.reward == 1.0 and traj.meta["task_id"] == traj.id and traj.meta["env"] == "bfcl"


def test_a_trajectory_whose_ledger_line_was_lost_is_not_run_again(tmp_path: Path) -> None:
    out = tmp_path / "runs.jsonl"
    cfg = CollectConfig(env="math:gsm8k", agent="gold", split="test", n=3, out=out, progress=False)
    collect(cfg)
    ledger = ledger_path(out)
    lines = ledger.read_text().splitlines()
    ledger.write_text("\n".join(lines[:-1]) + "\n")  # killed between the two appends
    again = collect(cfg)
    assert again.new == 0 and again.tasks == 3
    assert len(ledger.read_text().splitlines()) == 3 and len(_ids(out)) == 3


def test_filters_keep_correct_runs_and_say_why_others_are_dropped() -> None:
    from slmkit.agents import Trajectory
    from slmkit.simulators.episodes import drop_reason as _reason

    cfg = CollectConfig(env="math", out=Path("unused.jsonl"))
    ok = Trajectory(
        id="t",
        meta={"success": True, "stopped": "final_answer", "ended": True},
        metrics={"outputs": 2, "valid_outputs": 2, "tool_calls": 2, "ok_tool_calls": 1},
    )
    assert _reason(ok, cfg) is None  # a recovered tool error is worth keeping
    wrong = ok.model_copy(update={"meta": {**ok.meta, "success": False}})
    assert _reason(wrong, cfg) == "incorrect"
    assert _reason(wrong, cfg.model_copy(update={"keep": "all"})) is None
    garbled = ok.model_copy(update={"metrics": {**ok.metrics, "valid_outputs": 1}})
    assert _reason(garbled, cfg) == "parse_error"
    cut = ok.model_copy(update={"meta": {**ok.meta, "stopped": "max_steps", "ended": False}})
    assert _reason(cut, cfg) == "max_steps"
    single_step = ok.model_copy(update={"meta": {**ok.meta, "stopped": "max_steps", "ended": True}})
    assert _reason(single_step, cfg) is None  # e.g. BFCL: the env ended the episode
    crashed = ok.model_copy(update={"meta": {**ok.meta, "error": "GenerationError: too long"}})
    assert _reason(crashed, cfg) == "error"


_KILL_SCRIPT = """
import sys
from slmkit.simulators import CollectConfig, collect
collect(CollectConfig(env="tau2-retail", agent="gold", split="test", n=int(sys.argv[2]),
                      out=sys.argv[1], progress=False))
"""


def _run_and_kill(out: Path, n: int, after_lines: int, timeout: float = 240.0) -> None:
    """Start a collection in a subprocess and SIGKILL it once ``after_lines`` are on disk."""
    ledger = ledger_path(out)
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, str(out), str(n)],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            done = len(ledger.read_text().splitlines()) if ledger.exists() else 0
            if done >= after_lines or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the collection finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_collection_resumes_after_kill_9_without_losing_or_duplicating(tmp_path: Path) -> None:
    out = tmp_path / "runs.jsonl"
    n = 12
    _run_and_kill(out, n, after_lines=3)
    killed_at = _ids(out)
    assert 3 <= len(killed_at) < n
    with out.open("ab") as f:  # make the worst case certain: a torn last line as well
        f.write(b'{"id": "retail-torn", "messages": [')
    summary = collect(
        CollectConfig(env="tau2-retail", agent="gold", split="test", n=n, out=out, progress=False)
    )
    ids = _ids(out)
    assert len(ids) == len(set(ids)) == n  # complete, no duplicate
    assert ids[: len(killed_at)] == killed_at  # finished work was kept, not redone
    assert summary.resumed == len(killed_at) and summary.new == n - len(killed_at)
    assert summary.repaired_bytes > 0
    ledger_ids = [json.loads(x)["task_id"] for x in ledger_path(out).read_text().splitlines()]
    assert sorted(ledger_ids) == sorted(ids)


@pytest.mark.slow
def test_kill_9_during_a_real_agent_collection(tmp_path: Path) -> None:
    """The same guarantee with the embedded model doing the work (one model call per task)."""
    out = tmp_path / "runs.jsonl"
    script = (
        "import sys\nfrom slmkit.simulators import CollectConfig, collect\n"
        "collect(CollectConfig(env='bfcl:simple', agent='tool', split='test', n=3, keep='all',"
        f" out={str(out)!r}, progress=False, agent_options={{'max_tokens': 64}}))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    ledger = ledger_path(out)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if ledger.exists() and ledger.read_text().count("\n") >= 1:
            break
        time.sleep(0.2)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    before = _ids(out)
    summary = collect(
        CollectConfig(
            env="bfcl:simple",
            agent="tool",
            split="test",
            n=3,
            keep="all",
            out=out,
            progress=False,
            agent_options={"max_tokens": 64},
        )
    )
    ids = _ids(out)
    assert len(ids) == len(set(ids)) == 3 and ids[: len(before)] == before
    assert summary.tasks == 3


def test_rejection_sampling_keeps_the_first_verified_attempt(
    tmp_path: Path, smollm: ChatModel
) -> None:
    out = tmp_path / "runs.jsonl"
    summary = collect(
        CollectConfig(
            env="bfcl:simple",
            agent="tool",
            split="test",
            n=1,
            samples=2,
            keep="all",
            out=out,
            progress=False,
            agent_options={"max_tokens": 96},
            first_thought_prefix="I call the function",
        ),
        model=smollm,
    )
    entry = json.loads(ledger_path(out).read_text().splitlines()[0])
    traj = next(read_trajectories(out))
    assert 1 <= entry["attempts"] <= 2
    assert entry["success"] == (traj.reward == 1.0)
    if entry["attempts"] == 2:  # the first failed verification
        assert traj.meta["attempt"] == 1
    assert summary.prompt_tokens > 0 and traj.metrics["outputs"] >= 1
    assert traj.meta["first_thought"] == "I call the function"
    first_action = next(m for m in traj.messages if m["role"] == "assistant")
    if first_action.get("tool_calls"):  # the thought is kept with a call
        assert first_action["content"].startswith("I call the function")


def test_a_generated_first_thought_starts_each_teacher_run(
    tmp_path: Path, smollm: ChatModel
) -> None:
    out = tmp_path / "runs.jsonl"
    summary = collect(
        CollectConfig(
            env="bfcl:simple",
            agent="tool",
            split="test",
            n=1,
            keep="all",
            out=out,
            progress=False,
            generate_first_thought=True,
        ),
        model=smollm,
    )
    traj = next(read_trajectories(out))
    call = traj.meta["first_thought_call"]
    assert call["text"] and traj.meta["first_thought"] == call["text"]
    first_action = next(m for m in traj.messages if m["role"] == "assistant")
    if first_action.get("tool_calls"):  # the thought is kept with a call (not with an answer)
        assert first_action["content"].startswith(call["text"])  # the run continued it
    # what the reasoning prompt cost is in the run's (and the summary's) tokens
    assert traj.metrics["prompt_tokens"] > call["prompt_tokens"]
    assert summary.prompt_tokens == traj.metrics["prompt_tokens"]


def test_first_thought_options_that_contradict_are_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        CollectConfig(env="math", generate_first_thought=True, first_thought_prefix="I")
    with pytest.raises(ValueError, match="needs a model agent"):
        CollectConfig(env="math", agent="gold", generate_first_thought=True)


def test_the_first_attempt_is_greedy_and_the_rest_are_sampled(tmp_path: Path) -> None:
    """Sampling only adds what the agent's own (greedy) answer missed."""
    from slmkit.simulators.episodes import TaskRunner

    cfg = CollectConfig(
        env="bfcl:simple", samples=3, sample_temperature=0.9, out=tmp_path / "runs.jsonl"
    )
    runner = TaskRunner(cfg, None)
    assert "temperature" not in runner.agent_options(0)
    assert [runner.agent_options(a)["temperature"] for a in (1, 2)] == [0.9, 0.9]
    assert len({runner.agent_options(a)["seed"] for a in range(3)}) == 3
