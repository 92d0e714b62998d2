"""``agentctl run`` on the embedded model, through typer's test runner."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from slmkit.apps.cli_run import register


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """agentctl (test harness)"""

    register(app)
    return app


def test_run_prints_steps_live_then_the_same_thread_returns_the_stored_result(db: Path) -> None:
    app, runner = _app(), CliRunner()
    args = ["run", "What is 12 * 7?", "--max-steps", "1", "--checkpoint", str(db)]
    live = runner.invoke(app, [*args, "--thread", "cli-1"])
    assert live.exit_code == 0, live.output
    assert "step 1" in live.output and "answer (" in live.output
    stored = runner.invoke(app, [*args, "--thread", "cli-1", "--json"])
    assert stored.exit_code == 0, stored.output
    data = json.loads(stored.stdout)
    assert data["thread_id"] == "cli-1" and data["stopped"] in ("final_answer", "max_steps")
    assert data["metrics"]["steps"] == 1 and data["metrics"]["schema_valid_rate"] == 1.0
    assert ("not trusted" in live.output) is (data["answer_flag"] is not None)
    actions = [e for e in data["events"] if e["kind"] == "action"]
    assert len(actions) == 1  # the second invocation decoded nothing new


def test_unknown_tool_is_a_clear_error(db: Path) -> None:
    result = CliRunner().invoke(_app(), ["run", "hi", "--tools", "teleport"])
    assert result.exit_code != 0
    assert "unknown tool 'teleport'" in str(result.exception)
