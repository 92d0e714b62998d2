"""Routing on confidence, with the real llama.cpp log-probabilities of the embedded model.

``min_confidence`` compares the small model's geometric-mean token probability of an
action with a threshold: below it, the step is asked again of the large model, and the
step event says so. A threshold no output reaches (0.999) must escalate, one every
output clears (0.01) must not; both from the Python API and from ``agentctl run``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from test_cli_run import _app
from typer.testing import CliRunner

from slmkit.agents import AgentError, Router, StepEvent, ToolAgent
from slmkit.models import ChatModel
from slmkit.tools import calculator

TASK = "What is 12 * 7?"
_LOW = re.compile(r"^low confidence (0\.\d{3}) < 0\.999$")


def _first_action(
    small: ChatModel, large: ChatModel, threshold: float
) -> tuple[StepEvent, dict[str, Any]]:
    agent = ToolAgent(
        Router(small, large, min_confidence=threshold),
        [calculator],
        max_steps=1,
        checkpoint="none",
    )
    with agent:
        result = agent.run(TASK)
    action = next(e for e in result.events if e.kind == "action")
    return action, result.trajectory.meta


def test_an_unsure_step_is_asked_again_of_the_large_model(
    smollm: ChatModel, large_model: ChatModel
) -> None:
    action, meta = _first_action(smollm, large_model, 0.999)
    assert action.model == "smollm2-large"
    match = _LOW.match(action.escalation or "")
    assert match is not None, action.escalation
    assert 0 < float(match.group(1)) < 0.999
    # both answers were paid for: the small model's (judged unsure), then the large one's
    assert [c.model for c in action.calls] == ["smollm2", "smollm2-large"]
    assert meta["routing"][0]["model"] == "smollm2-large"


@pytest.mark.parametrize(
    ("options", "field"),
    [({"max_failure": 3}, "max_failure"), ({"max_failures": 0}, "max_failures"),
     ({"scope": "bogus"}, "scope")],
)  # fmt: skip
def test_router_options_are_validated(
    smollm: ChatModel, options: dict[str, Any], field: str
) -> None:
    """A misspelt or impossible option is an error, not silently ignored (0 failures would
    send every step to the large model)."""
    with pytest.raises(AgentError, match=field):
        Router(smollm, **options)


def test_a_confident_step_stays_on_the_small_model(
    smollm: ChatModel, large_model: ChatModel
) -> None:
    action, meta = _first_action(smollm, large_model, 0.01)
    assert action.model == "smollm2" and action.escalation is None
    assert [c.model for c in action.calls] == ["smollm2"]
    assert meta["routing"][0] == {"step": 1, "model": "smollm2", "escalation": None}


def test_cli_run_escalates_on_low_confidence(db: Path) -> None:
    args = ["run", TASK, "--max-steps", "1", "--checkpoint", str(db), "--json"]
    out = CliRunner().invoke(
        _app(), [*args, "--fallback", "llamacpp:smollm2", "--min-confidence", "0.999"]
    )
    assert out.exit_code == 0, out.output
    action = next(e for e in json.loads(out.stdout)["events"] if e["kind"] == "action")
    assert _LOW.match(action["escalation"] or ""), action["escalation"]
    assert len(action["calls"]) == 2


def test_cli_min_confidence_without_a_fallback_is_a_clear_error() -> None:
    out = CliRunner().invoke(_app(), ["run", TASK, "--min-confidence", "0.6"])
    assert out.exit_code != 0
    assert "--min-confidence needs a model to escalate to" in str(out.exception)
