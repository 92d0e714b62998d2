"""Evaluation: production metrics, Markdown/PNG reports, comparison, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from slmkit.agents import Trajectory
from slmkit.apps.cli_sim import register
from slmkit.models import ChatModel
from slmkit.simulators import (
    EvalConfig,
    compare_markdown,
    evaluate,
    load_report,
    report_from_trajectories,
)
from slmkit.simulators.report import percentile


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command()
    def noop() -> None:  # a second command, so sub-commands are addressed by name
        """Nothing."""

    return app


def test_metrics_are_computed_over_all_runs() -> None:
    runs = [
        Trajectory(
            id="a",
            reward=1.0,
            meta={"success": True, "stopped": "final_answer"},
            metrics={
                "outputs": 2,
                "valid_outputs": 2,
                "tool_calls": 1,
                "ok_tool_calls": 1,
                "prompt_tokens": 100,
                "completion_tokens": 20,
                "wall_s": 2.0,
                "step_wall_s": [1.0, 1.0],
                "cost": 0.5,
            },
        ),
        Trajectory(
            id="b",
            reward=0.0,
            meta={"success": False, "stopped": "max_steps"},
            metrics={
                "outputs": 2,
                "valid_outputs": 1,
                "tool_calls": 2,
                "ok_tool_calls": 0,
                "prompt_tokens": 300,
                "completion_tokens": 60,
                "wall_s": 6.0,
                "step_wall_s": [3.0, 3.0],
                "cost": 1.5,
            },
        ),
    ]
    r = report_from_trajectories(runs)
    assert r.success_rate == 0.5 and r.schema_valid_rate == 0.75
    assert r.executable_call_rate == pytest.approx(1 / 3)
    assert r.tokens_per_success == 480 and r.cost_per_success == 2.0  # failures cost too
    assert r.step_p50_s == 2.0 and r.task_p95_s == pytest.approx(5.8)
    assert r.stopped == {"final_answer": 1, "max_steps": 1}
    assert percentile([], 50) is None and percentile([1.0], 95) == 1.0


def test_eval_writes_results_summary_markdown_and_chart(tmp_path: Path) -> None:
    report = evaluate(
        EvalConfig(env="bfcl", agent="gold", limit=3, out=tmp_path / "e.jsonl", progress=False)
    )
    assert report.tasks == 3 and report.success_rate == 1.0
    for kind in ("results", "summary", "markdown", "chart"):
        assert Path(report.files[kind]).stat().st_size > 0
    assert "success rate" in Path(report.files["markdown"]).read_text()
    assert load_report(report.files["summary"]) == report
    other = report.model_copy(update={"success_rate": 0.5})
    table = compare_markdown(report, other)
    assert "-50.0 pts (worse)" in table


def test_eval_cli_prints_the_metric_table_with_the_embedded_model(
    tmp_path: Path, smollm: ChatModel
) -> None:
    out = tmp_path / "eval.jsonl"
    result = CliRunner().invoke(
        _app(),
        [
            "eval",
            "--env",
            "bfcl:simple",
            "--limit",
            "1",
            "--out",
            str(out),
            "--agent-opt",
            "max_tokens=64",
        ],
    )
    assert result.exit_code == 0, result.output
    for metric in (
        "success rate",
        "schema-valid rate",
        "executable-call rate",
        "step p50",
        "task p95",
        "tokens / success",
        "cost / success",
        "failures",  # by kind (BFCL's checker names them), n/a when the task succeeded
    ):
        assert metric in result.output
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["tasks"] == 1 and summary["schema_valid_rate"] is not None
    compared = CliRunner().invoke(
        _app(), ["eval", "compare", str(out.with_suffix(".summary.json")), str(out)]
    )
    assert compared.exit_code == 0 and "success rate" in compared.output
