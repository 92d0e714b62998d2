"""``evaluate``: the collection runner without training, reporting production metrics.

An evaluation is a collection that keeps every run (failures and errors included), on
the test split by default, followed by the metrics that decide whether a (small)
model can carry an agent in production:

* **success rate** (env reward >= its success threshold) and mean reward;
* **schema-valid rate**: model outputs that parsed and validated, over all outputs;
* **executable-call rate**: tool calls that ran without error, over all calls;
* **latency**: p50/p95 of step wall time and of task wall time;
* **tokens and cost per successful task**: everything spent (failed runs included),
  divided by the successes, which is what a success really costs.

Results: ``eval.jsonl`` (one trajectory per task, resumable like collection),
``eval.summary.json`` (the :class:`EvalReport`), ``eval.md`` (a Markdown table) and
``eval.png`` (a chart), next to each other. The report covers every run in the results
file (a re-run with a larger ``limit`` extends it). Two summaries compare side by side with
:func:`slmkit.simulators.report.compare_markdown`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from slmkit.agents import Trajectory, read_trajectories
from slmkit.models import DEFAULT_SPEC, ChatModel
from slmkit.simulators.collect import CollectConfig, collect
from slmkit.simulators.runner import AgentKind

__all__ = ["EvalConfig", "EvalReport", "evaluate", "percentile", "report_from_trajectories"]


class EvalConfig(BaseModel):
    """Options of an evaluation (each ``agentctl eval`` flag is a field)."""

    model_config = ConfigDict(extra="forbid")

    env: str = Field(description="environment name")
    env_options: dict[str, Any] = Field(default_factory=dict, description="environment options")
    split: str = Field(default="test", description="task split")
    limit: int | None = Field(default=None, ge=1, description="the first N tasks")
    agent: AgentKind = Field(default="tool", description="tool | code | rag | gold")
    model: str = Field(default=DEFAULT_SPEC, description="model spec")
    model_options: dict[str, Any] = Field(default_factory=dict, description="backend options")
    agent_options: dict[str, Any] = Field(default_factory=dict, description="AgentConfig fields")
    out: Path = Field(
        default=Path("eval.jsonl"), description="results JSONL (summary/md/png beside it)"
    )
    workers: int | None = Field(default=None, ge=1, description="concurrent episodes")
    price_prompt: float = Field(default=0.0, ge=0, description="price per 1M prompt tokens")
    price_completion: float = Field(default=0.0, ge=0, description="price per 1M completion tokens")
    chart: bool = Field(default=True, description="also write a PNG chart")
    progress: bool = Field(default=True, description="show a progress bar")


class EvalReport(BaseModel):
    """The production metrics of one evaluation (see the module docs)."""

    model_config = ConfigDict(extra="forbid")

    env: str = ""
    agent: str = ""
    model: str = ""
    split: str = ""
    tasks: int = 0
    successes: int = 0
    success_rate: float | None = None
    mean_reward: float | None = None
    schema_valid_rate: float | None = None
    executable_call_rate: float | None = None
    step_p50_s: float | None = None
    step_p95_s: float | None = None
    task_p50_s: float | None = None
    task_p95_s: float | None = None
    tokens_per_task: float | None = None
    tokens_per_success: float | None = None
    cost: float = 0.0
    cost_per_success: float | None = None
    errors: int = 0
    stopped: dict[str, int] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) with linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def report_from_trajectories(
    trajectories: Iterable[Trajectory],
    *,
    env: str = "",
    agent: str = "",
    model: str = "",
    split: str = "",
) -> EvalReport:
    """Compute the :class:`EvalReport` of finished runs (labels default to their meta)."""
    runs = list(trajectories)
    r = EvalReport(env=env, agent=agent, model=model, split=split)
    r.tasks = len(runs)
    if not runs:
        return r
    steps: list[float] = []
    tasks_s: list[float] = []
    outputs = valid = calls = ok_calls = tokens = 0
    rewards: list[float] = []
    stopped: Counter[str] = Counter()
    for t in runs:
        m, meta = t.metrics, t.meta
        r.successes += int(bool(meta.get("success")))
        r.errors += int(bool(meta.get("error")))
        rewards.append(float(t.reward or 0.0))
        stopped[str(meta.get("stopped"))] += 1
        outputs += int(m.get("outputs") or 0)
        valid += int(m.get("valid_outputs") or 0)
        calls += int(m.get("tool_calls") or 0)
        ok_calls += int(m.get("ok_tool_calls") or 0)
        tokens += int(m.get("prompt_tokens") or 0) + int(m.get("completion_tokens") or 0)
        r.cost += float(m.get("cost") or 0.0)
        steps.extend(float(x) for x in m.get("step_wall_s") or [])
        tasks_s.append(float(m.get("wall_s") or 0.0))
        r.env = r.env or str(meta.get("env") or "")
        r.agent = r.agent or str(meta.get("agent") or "")
        r.model = r.model or str(meta.get("model") or "")
    r.success_rate = r.successes / r.tasks
    r.mean_reward = sum(rewards) / len(rewards)
    r.schema_valid_rate = _rate(valid, outputs)
    r.executable_call_rate = _rate(ok_calls, calls)
    r.step_p50_s, r.step_p95_s = percentile(steps, 50), percentile(steps, 95)
    r.task_p50_s, r.task_p95_s = percentile(tasks_s, 50), percentile(tasks_s, 95)
    r.tokens_per_task = tokens / r.tasks
    r.tokens_per_success = tokens / r.successes if r.successes else None
    r.cost_per_success = r.cost / r.successes if r.successes else None
    r.stopped = dict(stopped)
    return r


def evaluate(config: EvalConfig, *, model: ChatModel | None = None) -> EvalReport:
    """Run (or resume) the evaluation ``config`` describes and write its reports."""
    from slmkit.simulators.report import markdown_table, write_chart

    collect(
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
