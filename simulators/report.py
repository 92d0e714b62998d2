"""Evaluation reports: the numbers (:class:`EvalReport`) and how they are shown.

:func:`report_from_trajectories` computes the production metrics of finished runs (it
needs only their trajectories, so a results file can be re-scored at any time); then one
function per output, a Markdown table, a PNG chart, a side-by-side comparison, so the
CLI, the benchmarks and the docs show the same numbers the same way.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from slmkit.agents import Trajectory, read_trajectories
from slmkit.models import existing_path
from slmkit.simulators.errors import SimulationError

__all__ = [
    "METRICS",
    "EvalReport",
    "compare_markdown",
    "load_report",
    "markdown_table",
    "metric_rows",
    "percentile",
    "report_from_trajectories",
    "write_chart",
]


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
    failures: dict[str, int] = Field(default_factory=dict)
    """Failed runs by what went wrong, where the environment says (``reward_info["kind"]``:
    BFCL's wrong function, arguments, call count, ...); empty where it does not."""
    workers: int | None = None
    episodes_per_s: float | None = None
    """Throughput of the run that produced the results (None when recomputed from a file:
    a results file does not say how long its runs took together)."""
    calls_per_s: float | None = None
    tokens_per_s: float | None = None
    """Generated tokens per second."""
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
    failures: Counter[str] = Counter()
    for t in runs:
        m, meta = t.metrics, t.meta
        r.successes += int(bool(meta.get("success")))
        kind = (meta.get("reward_info") or {}).get("kind")
        if kind and not meta.get("success"):
            failures[str(kind)] += 1
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
    r.failures = dict(failures)
    return r


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _secs(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}s"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def _money(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _rate_s(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}/s"


METRICS: list[
    tuple[str, str, Callable[[EvalReport], float | None], Callable[[float | None], str], bool]
] = [
    ("success", "success rate", lambda r: r.success_rate, _pct, True),
    (
        "reward",
        "mean reward",
        lambda r: r.mean_reward,
        lambda x: "n/a" if x is None else f"{x:.3f}",
        True,
    ),
    ("schema", "schema-valid rate", lambda r: r.schema_valid_rate, _pct, True),
    ("exec", "executable-call rate", lambda r: r.executable_call_rate, _pct, True),
    ("step50", "step p50", lambda r: r.step_p50_s, _secs, False),
    ("step95", "step p95", lambda r: r.step_p95_s, _secs, False),
    ("task50", "task p50", lambda r: r.task_p50_s, _secs, False),
    ("task95", "task p95", lambda r: r.task_p95_s, _secs, False),
    ("tok_task", "tokens / task", lambda r: r.tokens_per_task, _num, False),
    ("tok_success", "tokens / success", lambda r: r.tokens_per_success, _num, False),
    ("cost_success", "cost / success", lambda r: r.cost_per_success, _money, False),
    ("episodes_s", "episodes/s", lambda r: r.episodes_per_s, _rate_s, True),
    ("calls_s", "calls/s", lambda r: r.calls_per_s, _rate_s, True),
    ("tokens_s", "tokens/s (generated)", lambda r: r.tokens_per_s, _rate_s, True),
]
"""``(key, label, getter, formatter, higher_is_better)`` of every reported metric."""


def _failures(r: EvalReport) -> str:
    ranked = sorted(r.failures.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{kind} {n}" for kind, n in ranked) or "n/a"


def markdown_table(reports: Sequence[EvalReport]) -> str:
    """One row per report, one column per metric (and the failures by kind)."""
    head = ["env", "agent", "model", "tasks", *[label for _, label, *_ in METRICS], "failures"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in reports:
        cells = [r.env, r.agent, f"`{r.model}`", str(r.tasks)]
        cells += [fmt(get(r)) for _, _, get, fmt, _ in METRICS]
        lines.append("| " + " | ".join([*cells, _failures(r)]) + " |")
    return "\n".join(lines) + "\n"


def metric_rows(reports: Sequence[EvalReport]) -> list[list[str]]:
    """The transposed table: one row per metric, one column per report (for terminals)."""
    rows = [["tasks", *[str(r.tasks) for r in reports]]]
    rows += [[label, *[fmt(get(r)) for r in reports]] for _, label, get, fmt, _ in METRICS]
    rows.append(["failures", *[_failures(r) for r in reports]])
    return rows


def load_report(path: str | Path) -> EvalReport:
    """A report from a ``*.summary.json`` or recomputed from a results ``*.jsonl``."""
    p = existing_path(path, what="eval report", kind="file", hint="pass *.summary.json or *.jsonl")
    if p.suffix == ".jsonl":
        return report_from_trajectories(read_trajectories(p))
    try:
        return EvalReport.model_validate(json.loads(p.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, ValueError) as exc:
        raise SimulationError(
            f"{p} is not an eval summary: {exc}", hint="pass *.summary.json"
        ) from exc


def compare_markdown(a: EvalReport, b: EvalReport, names: tuple[str, str] = ("a", "b")) -> str:
    """Two reports side by side with the change from ``a`` to ``b`` and which is better."""
    lines = [
        f"| metric | {names[0]} | {names[1]} | change |",
        "|---|---|---|---|",
        f"| run | {a.env}/{a.agent}/`{a.model}` ({a.tasks} tasks) | "
        f"{b.env}/{b.agent}/`{b.model}` ({b.tasks} tasks) | |",
    ]
    for _, label, get, fmt, higher in METRICS:
        va, vb = get(a), get(b)
        change = ""
        if va is not None and vb is not None and va != vb:
            better = (vb > va) == higher
            delta = vb - va
            shown = f"{100 * delta:+.1f} pts" if fmt is _pct else f"{delta:+.3g}"
            change = f"{shown} ({'better' if better else 'worse'})"
        lines.append(f"| {label} | {fmt(va)} | {fmt(vb)} | {change} |")
    return "\n".join(lines) + "\n"


def write_chart(reports: Sequence[EvalReport], path: Path) -> None:
    """A PNG with the rate metrics (left) and the latency percentiles (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [m for m in METRICS if m[3] is _pct]
    lats = [m for m in METRICS if m[3] is _secs]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    width = 0.8 / max(len(reports), 1)
    for i, r in enumerate(reports):
        label = f"{r.env}/{r.agent}"
        xs = [j + i * width for j in range(len(rates))]
        ax1.bar(xs, [100 * (get(r) or 0.0) for _, _, get, _, _ in rates], width, label=label)
        xs = [j + i * width for j in range(len(lats))]
        ax2.bar(xs, [get(r) or 0.0 for _, _, get, _, _ in lats], width, label=label)
    ax1.set_xticks(
        [j + 0.4 - width / 2 for j in range(len(rates))], [m[1] for m in rates], rotation=15
    )
    ax1.set_ylabel("%")
    ax1.set_ylim(0, 100)
    ax2.set_xticks(
        [j + 0.4 - width / 2 for j in range(len(lats))], [m[1] for m in lats], rotation=15
    )
    ax2.set_ylabel("seconds")
    ax1.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
