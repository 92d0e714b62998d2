"""GRPO reward curve on a small verifiable environment: does the reward rise?

Runs slmkit's real ``rl()`` (agent rollouts, grammar-constrained actions, the
GrammarGRPOTrainer) on the built-in ``thermostat`` environment (a tool call that must be
exact, an observation, a final answer; reward 1 for the exact call) with the embedded
SmolLM2-135M, and writes the reward of every step, the mean of the first and last five
steps, and a PNG::

    python benchmarks/rl_curve.py                     # CPU, 30 steps
    python benchmarks/rl_curve.py --device cuda --generations 8
    python benchmarks/rl_curve.py --report runs/rl-curve   # rebuild the table from a run

The rewards come from ``<run>/grpo/rollouts.jsonl`` (one line per episode, appended
each step), so an interrupted run still reports the steps it finished.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

RESULTS = Path(__file__).parent / "results"


def run(args: argparse.Namespace) -> Path:
    from slmkit.training import RlConfig, rl

    cfg = RlConfig(
        env=args.env,
        model=args.model,
        n=args.steps,  # one task per step: every step sees a new task
        num_generations=args.generations,
        max_steps=args.steps,
        learning_rate=args.lr,
        temperature=args.temperature,
        beta=args.beta,
        max_completion_length=args.max_completion_length,
        device=args.device,
        use_vllm=args.device.startswith("cuda") and args.vllm,
        run_dir=args.run_dir,
        save_steps=10_000,
        seed=args.seed,
        progress=False,
    )
    rl(cfg, until="grpo")
    return args.run_dir


def summarize(run_dir: Path) -> dict[str, Any]:
    """Per-step rewards (from the rollout log) and TRL's logged metrics."""
    by_step: dict[int, list[float]] = defaultdict(list)
    records = [
        json.loads(line)
        for line in (run_dir / "grpo" / "rollouts.jsonl").read_text().splitlines()
        if line.strip()
    ]
    for r in records:
        by_step[int(r["step"])].append(float(r["reward"]))
    lines = (
        run_dir / "grpo" / "log.jsonl"
    )  # written as training goes (log_history.json: at the end)
    history = [json.loads(x) for x in lines.read_text().splitlines()] if lines.is_file() else []
    logged = {int(h["step"]): h for h in history if "reward" in h}
    steps = sorted(by_step)
    rows = []
    for s in steps:
        h = logged.get(s + 1, {})
        rows.append(
            {
                "step": s + 1,
                "reward": sum(by_step[s]) / len(by_step[s]),
                "n": len(by_step[s]),
                "entropy": h.get("entropy"),
                "kl": h.get("kl"),
                "step_s": h.get("step_time"),
            }
        )
    rewards = [r["reward"] for r in rows]
    first = rewards[:5]
    last = rewards[-5:]
    return {
        "rows": rows,
        "first5": sum(first) / len(first) if first else None,
        "last5": sum(last) / len(last) if last else None,
        "episodes": len(records),
        "failed": sum(1 for r in records if r.get("error")),
        "dropped_turns": sum(int(r.get("dropped_turns") or 0) for r in records),
        "unreplayable": sum(int(r.get("unreplayable_tokens") or 0) for r in records),
        "truncated": sum(1 for r in records if r.get("truncated")),
        "config": json.loads((run_dir / "config.json").read_text()),
    }


def chart(summary: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["rows"]
    x = [r["step"] for r in rows]
    y = [r["reward"] for r in rows]
    window = 5
    smooth = [
        sum(y[max(0, i - window + 1) : i + 1]) / len(y[max(0, i - window + 1) : i + 1])
        for i in range(len(y))
    ]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(x, y, "o", alpha=0.4, label="mean reward of the step's rollouts")
    ax.plot(x, smooth, "-", label=f"running mean ({window} steps)")
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("reward")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(summary: dict[str, Any], header: str) -> str:
    def f(v: Any, fmt: str = "{:.2f}") -> str:
        return "" if v is None else fmt.format(float(v))

    cfg = summary["config"]
    lines = [
        header,
        "",
        f"Environment `{cfg['env']}`, model `{cfg['model']}`, {cfg['num_generations']} rollouts "
        f"per step (one task each step), lr {cfg['learning_rate']}, beta {cfg['beta']}, "
        f"temperature {cfg['temperature']}, LoRA r={cfg['lora_r']}, device {cfg['device']}.",
        "",
        f"**Mean reward, first 5 steps: {f(summary['first5'])}; last 5 steps: "
        f"{f(summary['last5'])}** ({len(summary['rows'])} steps, {summary['episodes']} episodes, "
        f"{summary['failed']} failed, {summary['truncated']} cut at the length limit, "
        f"{summary['dropped_turns']} agent turns lost to re-rendering, "
        f"{summary['unreplayable']} tokens the grammar replay rejected).",
        "",
        "| step | reward | rollouts | entropy (masked) | KL | step s |",
        "|---|---|---|---|---|---|",
    ]
    for r in summary["rows"]:
        lines.append(
            f"| {r['step']} | {f(r['reward'])} | {r['n']} | {f(r['entropy'])} | "
            f"{f(r['kl'], '{:.3f}')} | {f(r['step_s'], '{:.1f}')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--env", default="thermostat")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--beta", type=float, default=0.04)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--max-completion-length", type=int, default=192)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vllm", action="store_true", help="on cuda: colocated vLLM rollouts")
    parser.add_argument("--run-dir", type=Path, default=None)
    parser.add_argument("--report", type=Path, help="only rebuild the table from this run")
    parser.add_argument("--name", default=None, help="result file stem (default rl_curve_<device>)")
    args = parser.parse_args(argv)
    start = time.time()
    if args.report:
        run_dir = args.report
    else:
        args.run_dir = args.run_dir or Path("runs") / f"rl-curve-{args.device}-{int(start)}"
        run_dir = run(args)
    summary = summarize(run_dir)
    device = summary["config"]["device"]
    name = args.name or f"rl_curve_{device.split(':')[0]}"
    load = os.getloadavg()[0]
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    header = (
        f"## GRPO reward curve ({device})\n\nGenerated {stamp} "
        f"by `benchmarks/rl_curve.py` on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"load average {load:.1f} at the end; run folder `{run_dir}`."
    )
    RESULTS.mkdir(exist_ok=True)
    md = markdown(summary, header)
    (RESULTS / f"{name}.md").write_text(md)
    chart(summary, RESULTS / f"{name}.png", f"GRPO on {summary['config']['env']} ({device})")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
