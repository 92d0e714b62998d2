"""``evaluate``: the collection runner without training, reporting production metrics.

An evaluation is a collection that keeps every run (failures and errors included), on
the test split by default, followed by the metrics that decide whether a (small)
model can carry an agent in production:

* **success rate** (env reward >= its success threshold) and mean reward;
* **schema-valid rate**: model outputs that parsed and validated, over all outputs;
* **executable-call rate**: tool calls that ran without error, over all calls;
* **latency**: p50/p95 of step wall time and of task wall time;
* **tokens and cost per successful task**: everything spent (failed runs included),
  divided by the successes, which is what a success really costs;
* **throughput**: episodes, model calls and generated tokens per second of this run
  (``workers`` episodes at a time, their calls decoded together).

Results: ``eval.jsonl`` (one trajectory per task, resumable like collection),
``eval.summary.json`` (the :class:`EvalReport`), ``eval.md`` (a Markdown table) and
``eval.png`` (a chart), next to each other. The report covers every run in the results
file (a re-run with a larger ``limit`` extends it). Two summaries compare side by side with
:func:`slmkit.simulators.report.compare_markdown`; the numbers themselves are computed
in :mod:`slmkit.simulators.report`, from the trajectories alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from slmkit.agents import read_trajectories
from slmkit.models import DEFAULT_SPEC, ChatModel
from slmkit.simulators.collect import CollectConfig, collect
from slmkit.simulators.registry import fill_default_agent
from slmkit.simulators.report import (
    EvalReport,
    markdown_table,
    report_from_trajectories,
    write_chart,
)
from slmkit.simulators.runner import AgentKind

__all__ = ["EvalConfig", "evaluate"]


class EvalConfig(BaseModel):
    """Options of an evaluation (each ``agentctl eval`` flag is a field)."""

    model_config = ConfigDict(extra="forbid")

    env: str = Field(description="environment name")
    env_options: dict[str, Any] = Field(default_factory=dict, description="environment options")
    split: str = Field(default="test", description="task split")
    limit: int | None = Field(default=None, ge=1, description="the first N tasks")
    agent: AgentKind = Field(
        default="tool", description="tool | code | rag | gold (None: the environment's default)"
    )
    model: str = Field(default=DEFAULT_SPEC, description="model spec")
    model_options: dict[str, Any] = Field(default_factory=dict, description="backend options")
    agent_options: dict[str, Any] = Field(default_factory=dict, description="AgentConfig fields")
    out: Path = Field(
        default=Path("eval.jsonl"), description="results JSONL (summary/md/png beside it)"
    )
    workers: int | None = Field(
        default=None,
        ge=1,
        description="concurrent episodes, decoded together by the model (per replica on ray)",
    )
    backend: Literal["local", "ray"] = Field(
        default="local", description="local (threads) | ray (Ray Data over replicas)"
    )
    replicas: int = Field(default=1, ge=1, description="ray backend: model replicas")
    replica_gpus: float = Field(default=0.0, ge=0, description="ray backend: GPUs per replica")
    price_prompt: float = Field(default=0.0, ge=0, description="price per 1M prompt tokens")
    price_completion: float = Field(default=0.0, ge=0, description="price per 1M completion tokens")
    chart: bool = Field(default=True, description="also write a PNG chart")
    progress: bool = Field(default=True, description="show a progress bar")

    @model_validator(mode="before")
    @classmethod
    def _default_agent(cls, data: Any) -> Any:
        return fill_default_agent(data)


def evaluate(config: EvalConfig, *, model: ChatModel | None = None) -> EvalReport:
    """Run (or resume) the evaluation ``config`` describes and write its reports."""
    summary = collect(
        CollectConfig(
            env=config.env,
            env_options=config.env_options,
            split=config.split,
            n=config.limit,
            agent=config.agent,
            model=config.model,
            model_options=config.model_options,
            agent_options=config.agent_options,
            out=config.out,
            keep="all",
            drop_parse_errors=False,
            drop_max_steps=False,
            drop_errors=False,
            workers=config.workers,
            backend=config.backend,
            replicas=config.replicas,
            replica_gpus=config.replica_gpus,
            price_prompt=config.price_prompt,
            price_completion=config.price_completion,
            progress=config.progress,
        ),
        model=model,
    )
    runs = list(read_trajectories(config.out)) if config.out.exists() else []
    model_name = config.model if config.agent != "gold" else "(gold actions)"
    report = report_from_trajectories(
        runs, env=config.env, agent=config.agent, model=model_name, split=config.split
    )
    report.workers = summary.workers
    report.episodes_per_s = summary.episodes_per_s
    report.calls_per_s = summary.calls_per_s
    report.tokens_per_s = summary.tokens_per_s
    base = config.out.with_suffix("")
    files = {
        "results": str(config.out),
        "summary": str(base) + ".summary.json",
        "markdown": str(base) + ".md",
    }
    if config.chart:
        files["chart"] = str(base) + ".png"
    report.files = files
    Path(files["summary"]).write_text(report.model_dump_json(indent=2), encoding="utf-8")
    Path(files["markdown"]).write_text(markdown_table([report]), encoding="utf-8")
    if config.chart:
        write_chart([report], Path(files["chart"]))
    return report
