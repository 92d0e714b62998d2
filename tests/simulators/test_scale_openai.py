"""Scale-out through the ChatModel contract: collection against an OpenAI-compatible server.

``vllm serve`` cannot run here (no GPU), so the same code path is exercised against
llama-cpp-python's OpenAI-compatible server on the embedded model, with two concurrent
workers, each with its own environment instance.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import llama_server

from slmkit.agents import read_trajectories
from slmkit.simulators import CollectConfig, collect


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with llama_server(tmp_path_factory.mktemp("server") / "server.log") as base:
        yield base


def test_collection_with_concurrent_workers_against_a_server(server: str, tmp_path: Path) -> None:
    out = tmp_path / "runs.jsonl"
    summary = collect(
        CollectConfig(
            env="bfcl:simple",
            agent="tool",
            model=f"openai:{server}#smollm2",
            split="test",
            n=2,
            keep="all",
            drop_parse_errors=False,  # the server's own JSON mode is not our grammar
            drop_max_steps=False,
            workers=2,
            out=out,
            progress=False,
            agent_options={"max_tokens": 64},
        )
    )
    runs = list(read_trajectories(out))
    assert summary.tasks == 2 and len({t.id for t in runs}) == 2
    assert all(t.meta["error"] is None for t in runs), [t.meta["error"] for t in runs]
    assert all(t.metrics["outputs"] >= 1 for t in runs)
    assert {t.meta["model"] for t in runs} == {"smollm2"}
