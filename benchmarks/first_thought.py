"""The teacher's first thought, generated or not: two distillations on the same tasks.

Agent Distillation seeds the teacher agent's first thought with the first step of the
teacher's own reasoning on the task (a reasoning prompt writes it, the agent continues
it), and the student learns from trajectories that start with such a plan. This runs
``distill`` twice with one difference, ``generate_first_thought``, and everything else
equal (teacher, training tasks, seeds, held-out tasks, SFT), then compares:

* the teacher on the training tasks: verified rate (Wilson interval) and, paired per
  task, the tasks the generated thought fixed or broke (exact sign test);
* what the filter kept and what SFT trained on;
* the student on the held-out tasks, before (the same base model in both runs) and
  after SFT.

The table is printed and written to ``benchmarks/results/first_thought.md``; each run's
own ``report.md`` is in its folder. The default size fits a 2-core laptop (about an hour
under load); the numbers then show the pipeline end to end more than an effect size::

    python benchmarks/first_thought.py
    python benchmarks/first_thought.py --train-n 60 --eval-n 100 --teacher openai:...
"""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slmkit.training import DistillConfig, DistillResult, SftConfig, distill
from slmkit.training.report import paired_outcomes, sign_test, wilson

RESULTS = Path(__file__).parent / "results" / "first_thought.md"


def _rate(successes: int, n: int) -> str:
    if n == 0:
        return "n/a"
    lo, hi = wilson(successes, n)
    return f"{successes}/{n} = {100 * successes / n:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]"


def _teacher(result: DistillResult) -> tuple[int, int, int]:
    """Verified tasks, tasks and tokens of the collect stage (all training envs)."""
    envs = result.outputs("collect").get("envs", {}).values()
    done = sum(int(s.get("successes", 0)) for s in envs)
    tasks = sum(int(s.get("tasks", 0)) for s in envs)
    tokens = sum(int(s.get("prompt_tokens", 0)) + int(s.get("completion_tokens", 0)) for s in envs)
    return done, tasks, tokens


def _student(result: DistillResult, label: str) -> str:
    rep: Mapping[str, Any] = result.outputs("eval").get(label, {})
    n = int(rep.get("tasks") or 0)
    return _rate(int(rep.get("successes") or 0), n)


def _row(name: str, cells: Sequence[str]) -> str:
    return "| " + " | ".join([name, *cells]) + " |"


def _wall(result: DistillResult) -> float:
    """Seconds the run's stages took (over every attempt, so a resumed run counts whole)."""
    return sum(s.wall_s for s in result.stages)


def compare(without: DistillResult, with_: DistillResult) -> str:
    """The Markdown comparison of the two runs."""
    runs = (without, with_)
    teacher = [_teacher(r) for r in runs]
    flt = [r.outputs("filter") for r in runs]
    sft = [r.outputs("sft") for r in runs]
    lines = [
        "| | without (no first thought) | with (generated first thought) |",
        "|---|---|---|",
        _row("teacher: verified training tasks", [_rate(d, n) for d, n, _ in teacher]),
        _row("teacher: tokens per task", [f"{t / max(n, 1):,.0f}" for _, n, t in teacher]),
        _row("filter: trajectories kept", [str(f.get("kept", 0)) for f in flt]),
        _row("sft: optimizer steps", [str(s.get("steps", "?")) for s in sft]),
        _row("student before SFT (held-out)", [_student(r, "before") for r in runs]),
        _row("student after SFT (held-out)", [_student(r, "after") for r in runs]),
        _row("wall time (all stages)", [f"{_wall(r) / 60:.1f} min" for r in runs]),
    ]
    paired: dict[str, Any] = {"n": 0, "fixed": 0, "broken": 0, "both": 0, "neither": 0}
    for path in sorted((without.run_dir / "collect").glob("*.jsonl")):
        if path.name.endswith(".ledger.jsonl"):
            continue
        one = paired_outcomes(path, with_.run_dir / "collect" / path.name)
        for key in paired:
            paired[key] += int(one[key])
    p = sign_test(paired["fixed"], paired["broken"])
    lines += [
        "",
        f"Teacher, paired over the {paired['n']} training tasks: the generated first thought "
        f"fixed {paired['fixed']}, broke {paired['broken']} (both {paired['both']}, neither "
        f"{paired['neither']}); exact two-sided sign test p = {p:.3f}. Success intervals are "
        "95% Wilson score intervals.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--teacher", default="llamacpp:smollm2")
    parser.add_argument("--train-env", action="append", default=None)
    parser.add_argument("--train-n", type=int, default=12)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--eval-env", default="bfcl:simple")
    parser.add_argument("--eval-n", type=int, default=12)
    parser.add_argument("--sft-steps", type=int, default=10)
    parser.add_argument("--runs", type=Path, default=Path("runs/first_thought"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    base = DistillConfig(
        teacher=args.teacher,
        train_envs=args.train_env or ["bfcl:simple"],
        train_n=args.train_n,
        samples=args.samples,
        eval_env=args.eval_env,
        eval_n=args.eval_n,
        transfer_env=None,  # this comparison is the first thought, on one held-out set
        curve=[],
        eval_backend="transformers",  # as measured in results/first_thought.md
        sft=SftConfig(merge=True, max_steps=args.sft_steps, progress=False),
        progress=False,
    )
    results: list[DistillResult] = []
    for name, generated in (("without", False), ("with", True)):
        cfg = base.model_copy(
            update={"run_dir": args.runs / name, "generate_first_thought": generated}
        )
        result = distill(cfg, announce=lambda stage, msg: print(f"[{stage}] {msg}", flush=True))
        results.append(result)
    table = compare(results[0], results[1])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    header = (
        "# First thought: generated vs none (two distillations, same tasks)\n\n"
        f"`python benchmarks/first_thought.py --train-n {args.train_n} --samples "
        f"{args.samples} --eval-n {args.eval_n} --sft-steps {args.sft_steps}`; teacher and "
        f"student base `{args.teacher}` / `{base.student}`, training envs "
        f"{', '.join(base.train_envs)}, held-out `{args.eval_env}`. "
        f"{datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, {os.cpu_count()} cores, "
        f"load average {load:.1f} at the end (wall times are inflated by other jobs).\n\n"
    )
    text = header + table + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
