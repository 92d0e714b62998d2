"""Rendering evaluation reports: a Markdown table, a PNG chart, a side-by-side comparison.

One function per output, all reading :class:`~slmkit.simulators.evaluate.EvalReport`\\ s,
so the CLI, the benchmarks and the docs show the same numbers the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from slmkit.simulators.errors import SimulationError
from slmkit.simulators.evaluate import EvalReport, report_from_trajectories

__all__ = [
    "METRICS",
    "compare_markdown",
    "load_report",
    "markdown_table",
    "metric_rows",
    "write_chart",
]


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _secs(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}s"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def _money(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


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
]
"""``(key, label, getter, formatter, higher_is_better)`` of every reported metric."""


def markdown_table(reports: Sequence[EvalReport]) -> str:
    """One row per report, one column per metric."""
    head = ["env", "agent", "model", "tasks", *[label for _, label, *_ in METRICS]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in reports:
        cells = [r.env, r.agent, f"`{r.model}`", str(r.tasks)]
        cells += [fmt(get(r)) for _, _, get, fmt, _ in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def metric_rows(reports: Sequence[EvalReport]) -> list[list[str]]:
    """The transposed table: one row per metric, one column per report (for terminals)."""
    rows = [["tasks", *[str(r.tasks) for r in reports]]]
    rows += [[label, *[fmt(get(r)) for r in reports]] for _, label, get, fmt, _ in METRICS]
    return rows


def load_report(path: str | Path) -> EvalReport:
    """A report from a ``*.summary.json`` or recomputed from a results ``*.jsonl``."""
    from slmkit.agents import read_trajectories

    p = Path(path)
    if not p.is_file():
        raise SimulationError(f"no report at {p}", hint="pass an eval .summary.json or .jsonl file")
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
