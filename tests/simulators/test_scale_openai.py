"""Scale-out through the ChatModel contract: collection against an OpenAI-compatible server.

``vllm serve`` cannot run here (no GPU), so the same code path is exercised against
llama-cpp-python's OpenAI-compatible server on the embedded model, with two concurrent
workers, each with its own environment instance.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from slmkit.agents import read_trajectories
from slmkit.models import embedded_gguf
from slmkit.simulators import CollectConfig, collect


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_gguf()),
           "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port),
           "--n_ctx", "2048", "--n_threads", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail("llama_cpp.server exited")
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not come up in 180 s")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
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
