"""Simulator fidelity benchmark: the LLM-simulated tau2 retail tools vs the real ones.

The gold actions of tau2-bench retail test tasks (real calls with real ids: look up a
user by name and zip, read an order, exchange items...) are replayed, call by call,
against tau2's real tool code over its database and against a
:class:`~slmkit.simulators.SimulatedEnvironment` built from the same tools' schemas and
the domain policy. Reported (see :mod:`slmkit.simulators.fidelity`): schema-valid rate
of the simulated outputs, error agreement, field-level agreement where both succeed,
and consistency of entities within each simulated episode.

The simulator sees only schemas, the policy and the episode so far: it cannot know the
database, so field agreement measures how much the episode pins down (ids echoed from
arguments, records seen earlier), not the model's knowledge. With the embedded
SmolLM2-135M the numbers are low; they are what they are.

    python benchmarks/simulator_fidelity.py                       # 3 tasks, 3 calls each
    python benchmarks/simulator_fidelity.py --tasks 10 --model openai:http://127.0.0.1:8000/v1#qwen
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

from slmkit.models import DEFAULT_SPEC, load_model
from slmkit.simulators import SimulatedEnvironment, fidelity_markdown, load_env, measure_fidelity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="tau2-retail")
    parser.add_argument("--model", default=DEFAULT_SPEC, help="simulator model spec")
    parser.add_argument("--tasks", type=int, default=3, help="test tasks to replay")
    parser.add_argument("--max-calls", type=int, default=3, help="calls per task at most")
    parser.add_argument("--max-output-tokens", type=int, default=320)
    parser.add_argument("--rereads", type=int, default=1, help="reads repeated per task")
    parser.add_argument(
        "--modes",
        default="no-errors,errors",
        help="comma list: 'errors' lets the simulator answer {error}, 'no-errors' does not",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/simulator_fidelity.md")
    )
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    real = load_env(args.env, split="test")
    tasks = real.tasks(limit=args.tasks).take(args.tasks)
    model = load_model(args.model)
    sections = []
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        sim = SimulatedEnvironment.from_environment(
            real,
            model=model,
            allow_errors=mode == "errors",
            max_output_tokens=args.max_output_tokens,
        )
        started = time.perf_counter()
        report = measure_fidelity(
            real,
            sim,
            tasks,
            max_calls=args.max_calls,
            rereads=args.rereads,
            on_call=lambda s: print(
                f"  {s['task']} {s['call']['name']}: valid={s['schema_valid']} "
                f"real_ok={s['real_ok']} sim_ok={s['sim_ok']} fields={s['field_agreement']}",
                flush=True,
            ),
        )
        print(f"{mode}: {time.perf_counter() - started:.0f} s", flush=True)
        errors = "allowed" if mode == "errors" else "off"
        title = f"{args.env}, simulator `{model.name}`, errors {errors}"
        sections.append(fidelity_markdown(report, title=title))
    header = [
        "# Simulator fidelity",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {platform.machine()} "
        f"({os.cpu_count()} CPUs, shared with other jobs), `{__file__.split('/')[-1]}` with "
        f"--tasks {args.tasks} --max-calls {args.max_calls} "
        f"--max-output-tokens {args.max_output_tokens} --rereads {args.rereads}.",
        "",
        "The gold actions of tau2 retail test tasks are replayed against tau2's real tools "
        "and against the simulator built from the same tool schemas (with output schemas) "
        "and the domain policy. The simulator never sees the database: agreement beyond "
        "echoed arguments and earlier records of the episode would be luck. The embedded "
        "135M model is far too small to be a good simulator; these numbers are a floor and "
        "a check that the measurement works, not a claim of quality.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(header) + "\n" + "\n".join(sections), encoding="utf-8")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
