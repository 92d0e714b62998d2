"""Concurrent episodes through one batched model, and collection/evaluation on Ray Data.

The real embedded model decodes the episodes' calls together (llama.cpp, several
sequences per step); the Ray runs use a real local Ray instance. The ledger guarantees
of :mod:`slmkit.simulators.collect` must hold however the episodes ran.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from slmkit.agents import read_trajectories
from slmkit.simulators import CollectConfig, EvalConfig, collect, evaluate, load_report
from slmkit.simulators.collect import ledger_path

TOOL = {"max_tokens": 48}
"""BFCL simple: one constrained call per episode, kept short."""


def _ids(path: Path) -> list[str]:
    return [t.id for t in read_trajectories(path)]


def _ledger_ids(out: Path) -> list[str]:
    return [json.loads(x)["task_id"] for x in ledger_path(out).read_text().splitlines()]


def test_concurrent_episodes_report_throughput(tmp_path: Path) -> None:
    out = tmp_path / "eval.jsonl"
    report = evaluate(
        EvalConfig(
            env="bfcl:simple",
            limit=3,
            workers=3,  # llama.cpp gets three sequences: the calls decode together
            agent_options=TOOL,
            out=out,
            chart=False,
            progress=False,
        )
    )
    assert report.tasks == 3 and report.workers == 3
    assert report.schema_valid_rate == 1.0
    for rate in (report.episodes_per_s, report.calls_per_s, report.tokens_per_s):
        assert rate is not None and rate > 0
    assert report.calls_per_s >= report.episodes_per_s  # type: ignore[operator]
    assert "calls/s" in out.with_suffix(".md").read_text()
    again = load_report(out)  # recomputed from the file: no run, no rate
    assert again.tasks == 3 and again.calls_per_s is None


_BATCHED = """
import sys
from slmkit.simulators import CollectConfig, collect
collect(CollectConfig(env="bfcl:simple", agent="tool", split="test", n=int(sys.argv[2]),
                      keep="all", workers=3, agent_options={"max_tokens": 48},
                      out=sys.argv[1], progress=False))
"""


@pytest.mark.slow
def test_kill_9_during_a_batched_collection_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """Killed while three episodes decode in one batch: resuming completes the set."""
    out, n = tmp_path / "runs.jsonl", 7
    proc = subprocess.Popen(
        [sys.executable, "-c", _BATCHED, str(out), str(n)],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    ledger = ledger_path(out)
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if ledger.exists() and len(ledger.read_text().splitlines()) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the collection finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    before = _ids(out)
    assert 2 <= len(before) < n
    summary = collect(
        CollectConfig(
            env="bfcl:simple",
            agent="tool",
            split="test",
            n=n,
            keep="all",
            workers=3,
            agent_options=TOOL,
            out=out,
            progress=False,
        )
    )
    ids = _ids(out)
    assert len(ids) == len(set(ids)) == n  # nothing lost, nothing twice
    assert ids[: len(before)] == before  # finished work kept, not redone
    assert sorted(_ledger_ids(out)) == sorted(ids)
    assert summary.resumed == len(before) and summary.new == n - len(before)


# ----------------------------------------------------------------------------- ray


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_collect_on_ray_writes_the_same_files_and_resumes(tmp_path: Path, local_ray: None) -> None:
    out = tmp_path / "runs.jsonl"
    cfg = CollectConfig(
        env="tau2-retail",
        agent="gold",
        split="test",
        n=4,
        out=out,
        backend="ray",
        replicas=2,
        workers=2,
        progress=False,
    )
    first = collect(cfg)
    assert first.tasks == first.new == first.kept == 4 and first.success_rate == 1.0
    assert first.workers == 4 and first.episodes_per_s
    local = collect(cfg.model_copy(update={"out": tmp_path / "local.jsonl", "backend": "local"}))
    assert sorted(_ids(out)) == sorted(_ids(tmp_path / "local.jsonl"))  # same tasks, same kept
    more = collect(cfg.model_copy(update={"n": 6}))  # resume: only the new tasks run
    assert more.resumed == 4 and more.new == 2 and local.tasks == 4
    ids = _ids(out)
    assert len(ids) == len(set(ids)) == 6 and sorted(_ledger_ids(out)) == sorted(ids)


def test_eval_on_ray_with_the_embedded_model(tmp_path: Path, local_ray: None) -> None:
    """``agentctl eval --backend ray``: the model loads in the replica, episodes run there."""
    out = tmp_path / "eval.jsonl"
    report = evaluate(
        EvalConfig(
            env="bfcl:simple",
            limit=2,
            workers=2,
            backend="ray",
            agent_options=TOOL,
            out=out,
            chart=False,
            progress=False,
        )
    )
    assert report.tasks == 2 and report.schema_valid_rate == 1.0
    assert report.calls_per_s and report.workers == 2
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["calls_per_s"] == report.calls_per_s
    assert len(_ids(out)) == 2 and len(_ledger_ids(out)) == 2
