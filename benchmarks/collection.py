"""Collection throughput: concurrent agent episodes sharing one model (CPU or GPU).

The same ``--tasks`` tasks of ``--env`` (default ``bfcl:simple``, test split) are run
as ToolAgent episodes (:func:`slmkit.simulators.run_episode`) at each concurrency in
``--levels``: that many episode threads, each with its own environment, calling one
model. The model decodes their calls together (:mod:`slmkit.models.batching`): on CPU
the embedded model through llama.cpp with ``parallel=`` sequences per step, with
``--device cuda`` the transformers backend on the GPU with batches up to the
concurrency. Reported per level: episodes/s, model calls/s, generated tokens/s, the
success and schema-valid rates (batching must not change them), p50/p95 call latency,
CPU seconds per episode and the speed-up over concurrency 1, plus the load average
around each level (the machine may be shared: compare levels measured in the same run).

A second table isolates the model: ``width`` calls (the tasks' questions) sent as one
``chat_requests`` batch, constrained to a small JSON schema and as free text, 48
tokens each (``--no-widths`` skips it). Its last column is what the grammar masks cost
(constrained over free-text time at the same width).

    python benchmarks/collection.py                                  # CPU: 1, 2, 4, 8
    python benchmarks/collection.py --levels 1,4 --rounds 2          # 1 vs 4, twice
    python benchmarks/collection.py --device cuda                    # GPU: 1 ... 64
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slmkit.agents import Trajectory
from slmkit.models import ChatModel, load_model
from slmkit.simulators import Environment, load_env, run_episode

CPU_LEVELS = "1,2,4,8"
GPU_LEVELS = "1,2,4,8,16,32,64"


@dataclass
class Level:
    """One concurrency level's run."""

    round: int
    concurrency: int
    episodes: int
    elapsed_s: float
    calls: int
    completion_tokens: int
    prompt_tokens: int
    successes: int
    valid_outputs: int
    outputs: int
    call_latencies: list[float]
    load_before: float
    load_after: float
    cpu_s: float

    def row(self, base: Level | None) -> list[str]:
        eps = self.episodes / self.elapsed_s
        speedup = "" if base is None else f"{eps / (base.episodes / base.elapsed_s):.2f}x"
        lat = sorted(self.call_latencies) or [0.0]
        return [
            str(self.round),
            str(self.concurrency),
            f"{eps:.3f}",
            f"{self.calls / self.elapsed_s:.3f}",
            f"{self.completion_tokens / self.elapsed_s:.1f}",
            f"{(self.prompt_tokens + self.completion_tokens) / self.elapsed_s:.0f}",
            f"{100 * self.successes / self.episodes:.0f}%",
            f"{100 * self.valid_outputs / max(self.outputs, 1):.0f}%",
            f"{statistics.median(lat):.2f}",
            f"{lat[min(len(lat) - 1, int(0.95 * len(lat)))]:.2f}",
            f"{self.cpu_s / self.episodes:.2f}",
            speedup,
            f"{self.load_before:.1f} / {self.load_after:.1f}",
        ]


HEADER = [
    "round",
    "concurrency",
    "episodes/s",
    "calls/s",
    "gen tokens/s",
    "all tokens/s",
    "success",
    "schema-valid",
    "call p50 s",
    "call p95 s",
    "CPU s / episode",
    "vs 1",
    "load before / after",
]


LLAMA_OPTIONS: dict[str, Any] = {}
"""Extra llama.cpp options (``--threads``, ``--contexts``)."""


def load(spec: str, device: str, concurrency: int) -> ChatModel:
    """A fresh model sized for ``concurrency`` concurrent episodes."""
    if spec.startswith("llamacpp:"):
        return load_model(spec, cache=False, parallel=concurrency, **LLAMA_OPTIONS)
    if spec.startswith("transformers:"):
        return load_model(spec, cache=False, device=device, max_batch=concurrency)
    return load_model(spec, cache=False)


def run_level(
    spec: str, device: str, env_name: str, tasks: list[dict[str, Any]], concurrency: int, rnd: int
) -> Level:
    model = load(spec, device, concurrency)
    envs: list[Environment] = []
    local = threading.local()
    lock = threading.Lock()

    def episode(task: dict[str, Any]) -> Trajectory:
        env = getattr(local, "env", None)
        if env is None:
            env = local.env = load_env(env_name, split="test")
            with lock:
                envs.append(env)
        return run_episode(env, task, model=model)

    try:
        episode(tasks[-1])  # warm-up outside the clock: first grammar, first allocations
        load_before = os.getloadavg()[0]
        cpu_before = _cpu_seconds()
        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            trajectories = list(pool.map(episode, tasks[:-1]))
        elapsed = time.perf_counter() - start
        cpu = _cpu_seconds() - cpu_before
        load_after = os.getloadavg()[0]
    finally:
        model.close()
        for env in envs:
            env.close()
    metrics = [t.metrics for t in trajectories]
    return Level(
        round=rnd,
        concurrency=concurrency,
        episodes=len(trajectories),
        elapsed_s=elapsed,
        calls=sum(int(m.get("model_calls", 0)) for m in metrics),
        completion_tokens=sum(int(m.get("completion_tokens", 0)) for m in metrics),
        prompt_tokens=sum(int(m.get("prompt_tokens", 0)) for m in metrics),
        successes=sum(bool(t.meta.get("success")) for t in trajectories),
        valid_outputs=sum(int(m.get("valid_outputs", 0)) for m in metrics),
        outputs=sum(int(m.get("outputs", 0)) for m in metrics),
        call_latencies=[s for m in metrics for s in m.get("step_model_s", [])],
        load_before=load_before,
        load_after=load_after,
        cpu_s=cpu,
    )


def _cpu_seconds() -> float:
    """CPU time this process used (all threads): what a level costs whatever the load."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


WIDTH_SCHEMA = {
    "type": "object",
    "properties": {
        "function": {"type": "string", "maxLength": 40},
        "arguments": {
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean"]},
        },
    },
    "required": ["function", "arguments"],
    "additionalProperties": False,
}


def run_width(spec: str, device: str, tasks: list[dict[str, Any]], width: int) -> list[str]:
    """One row of the widths table: ``width`` calls as one batch, constrained and free."""
    model = load(spec, device, width)
    try:
        asks = [
            [
                {"role": "system", "content": "Answer with the function call to make, as JSON."},
                {"role": "user", "content": str(tasks[i % len(tasks)]["prompt"])},
            ]
            for i in range(width)
        ]
        model.chat(asks[0], schema=WIDTH_SCHEMA, max_tokens=8)  # warm-up
        cells = [str(width)]
        times = []
        for schema in (WIDTH_SCHEMA, None):
            rows = [model.request(a, schema=schema, max_tokens=48) for a in asks]
            start = time.perf_counter()
            results = model.chat_requests(rows)
            elapsed = time.perf_counter() - start
            done = [r for r in results if not isinstance(r, Exception)]
            tokens = sum(r.usage.completion_tokens for r in done)
            valid = sum(r.valid for r in done)
            cells += [f"{len(done) / elapsed:.2f}", f"{tokens / elapsed:.1f}"]
            if schema is not None:
                cells.append(f"{valid}/{width}")
            times.append(elapsed / max(tokens, 1))
        cells.append(f"{times[0] / times[1]:.2f}x")
        return cells
    finally:
        model.close()


WIDTH_HEADER = [
    "width",
    "constrained calls/s",
    "constrained gen tokens/s",
    "valid",
    "free calls/s",
    "free gen tokens/s",
    "constrained / free time per token",
]


def _base(levels: list[Level], level: Level) -> Level | None:
    """The concurrency-1 level of ``level``'s round (None for that level itself)."""
    base = next((b for b in levels if b.round == level.round and b.concurrency == 1), None)
    return None if base is level else base


def markdown(levels: list[Level], title: str, notes: list[str]) -> str:
    lines = [f"### {title}", "", *notes, ""]
    lines.append("| " + " | ".join(HEADER) + " |")
    lines.append("|" + "---|" * len(HEADER))
    for lv in levels:
        lines.append("| " + " | ".join(lv.row(_base(levels, lv))) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="bfcl:simple")
    parser.add_argument("--tasks", type=int, default=24, help="episodes per level")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--model", default=None, help="model spec (default: by device)")
    parser.add_argument("--levels", default=None, help=f"concurrencies ({CPU_LEVELS} on cpu)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the levels (drift)")
    parser.add_argument("--widths", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--threads", type=int, help="llama.cpp: threads of every step")
    parser.add_argument("--contexts", type=int, help="llama.cpp: contexts (default: by CPUs)")
    parser.add_argument("--label", default="", help="added to the table's title")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/collection.md"))
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        LLAMA_OPTIONS["n_threads"] = args.threads
    if args.contexts:
        LLAMA_OPTIONS["contexts"] = args.contexts
    spec = args.model or ("llamacpp:smollm2" if args.device == "cpu" else "transformers:smollm2")
    default_levels = CPU_LEVELS if args.device == "cpu" else GPU_LEVELS
    levels = [int(x) for x in (args.levels or default_levels).split(",")]
    catalog = load_env(args.env, split="test")
    tasks = list(catalog.tasks("test", limit=args.tasks + 1))
    catalog.close()
    started = time.perf_counter()
    results: list[Level] = []
    for rnd in range(args.rounds):
        for c in levels:
            lv = run_level(spec, args.device, args.env, tasks, c, rnd + 1)
            results.append(lv)
            print(f"round {rnd + 1}: " + " | ".join(lv.row(_base(results, lv))))
    threads = args.threads or os.environ.get("SLMKIT_THREADS", "half the CPUs (prompts: all)")
    contexts = args.contexts or "as many as the CPUs hold (at most the concurrency)"
    notes = [
        f"`{spec}` on {args.device}, {len(tasks) - 1} `{args.env}` test tasks per level "
        f"(ToolAgent, one episode per task), {args.rounds} round(s), levels in order "
        f"{levels}; llama.cpp threads: {threads}; contexts: {contexts}.",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()} with "
        f"{os.cpu_count()} CPUs, {time.perf_counter() - started:.0f} s in all.",
        "`vs 1`: episodes/s over the concurrency-1 level of the same round. Load average: "
        "the 1-minute figure before and after the level (other work on the machine). "
        "`CPU s / episode`: this process's CPU time (all threads) per episode, which "
        "other work on the machine does not inflate the way it inflates wall time.",
    ]
    title = f"{args.env} on {args.device}{' ' + args.label if args.label else ''}"
    table = markdown(results, title, notes)
    if args.widths:
        width_rows = []
        for w in levels:
            width_rows.append(run_width(spec, args.device, tasks, w))
            print("width " + " | ".join(width_rows[-1]))
        table += "\nThe model alone: one batch of `width` calls, 48 tokens each.\n\n"
        table += "| " + " | ".join(WIDTH_HEADER) + " |\n|" + "---|" * len(WIDTH_HEADER) + "\n"
        table += "".join("| " + " | ".join(r) + " |\n" for r in width_rows)
    print(table)
    write_section(args.out, title, table)


def write_section(path: Path, title: str, table: str) -> None:
    """Put ``table`` in ``path``, replacing the section of the same title (other
    devices' tables stay)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text().split("\n### ")[1:] if path.exists() else []
    others = ["### " + s.rstrip() + "\n" for s in old if s.split("\n", 1)[0].strip() != title]
    header = "## Collection throughput (`benchmarks/collection.py`)\n"
    path.write_text("\n".join([header, table, *others]))


if __name__ == "__main__":
    main()
