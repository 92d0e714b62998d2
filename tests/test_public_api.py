"""The public API: each package's ``__all__`` names what it promises, and every name exists."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

PROMISED = {
    "slmkit.models": {"load_model", "ChatModel", "Completion", "Request", "Generation"},
    "slmkit.tools": {"tool", "Tool", "ToolRegistry", "ToolResult", "PythonSandbox"},
    "slmkit.retrieval": {"Index", "Passage", "answer", "CitedAnswer", "Citation", "verify_quote"},
    "slmkit.agents": {"ToolAgent", "CodeAgent", "RagAgent", "Router", "RunResult", "Trajectory"},
    "slmkit.simulators": {
        "Environment",
        "SimulatedEnvironment",
        "load_env",
        "collect",
        "evaluate",
    },
    "slmkit.training": {"distill", "sft", "rl", "DistillConfig"},
}


@pytest.mark.parametrize("package", sorted(PROMISED))
def test_all_names_the_promised_api_and_every_name_resolves(package: str) -> None:
    module = importlib.import_module(package)
    exported = set(module.__all__)
    assert PROMISED[package] <= exported, PROMISED[package] - exported
    assert len(module.__all__) == len(exported), "a name is listed twice"
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing, missing


def test_chat_is_part_of_the_model_contract(smollm: Any) -> None:
    """The embedded model answers through every public form of the contract."""
    from slmkit.models import ChatModel, Completion

    assert isinstance(smollm, ChatModel)
    hello = [{"role": "user", "content": "Say hi."}]
    one = smollm.chat(hello, max_tokens=2)
    many = smollm.chat_batch([hello, hello], max_tokens=2)
    assert isinstance(one, Completion) and one.model == smollm.name
    assert len(many) == 2 and all(isinstance(c, Completion) for c in many)
    assert one.usage.completion_tokens >= 1
    rows = [smollm.request(hello, max_tokens=2), smollm.request([], max_tokens=2)]
    ok, bad = smollm.chat_requests(rows)  # the per-row form: a bad row fails alone
    assert isinstance(ok, Completion) and isinstance(bad, Exception)
