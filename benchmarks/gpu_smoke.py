"""GPU smoke check: a few SFT and GRPO steps of slmkit's real training path.

Runs :func:`slmkit.training.sft` (TRL SFTTrainer, LoRA, assistant-only loss) on synthetic
calculator trajectories and :func:`slmkit.training.rl` (TRL GRPOTrainer, agent rollouts
scored by the BFCL environment) on the embedded SmolLM2-135M, then prints wall time,
tokens/s and peak GPU memory as a table. Each part reports what it measured even if the
other fails.

    python benchmarks/gpu_smoke.py --gguf SmolLM2-135M-Instruct.Q4_1.gguf --steps 4
    python benchmarks/gpu_smoke.py --device cpu --steps 2        # quick check on CPU
"""

from __future__ import annotations

import argparse
import json
import os
import time
import traceback
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _trajectories(n: int) -> list[Any]:
    from slmkit.agents import Trajectory
    from slmkit.tools import calculator

    out = []
    for i in range(n):
        a, b = 17 + i, 23 + 2 * i
        args = json.dumps({"expression": f"{a} * {b}"})
        out.append(
            Trajectory(
                task={"id": f"calc-{i}", "question": f"What is {a} times {b}?"},
                messages=[
                    {"role": "system", "content": "You are an agent. Call tools with JSON."},
                    {"role": "user", "content": f"What is {a} times {b}?"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": f"c{i}",
                                "type": "function",
                                "function": {"name": "calculator", "arguments": args},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": f"c{i}", "content": str(a * b)},
                    {"role": "assistant", "content": f"{a} times {b} is {a * b}."},
                ],
                tools=[calculator.openai_schema()],
                reward=1.0,
            )
        )
    return out


def _peak_gib(device: str) -> float | None:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return None


def _reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def run_sft(model_dir: Path, out: Path, steps: int, device: str) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from slmkit.training import SftConfig, sft

    trajs = _trajectories(32)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    texts = [tok.apply_chat_template(t.to_trl()["messages"], tokenize=False) for t in trajs]
    per_row = sum(len(tok(text)["input_ids"]) for text in texts) / len(trajs)
    cfg = SftConfig(max_steps=steps, device=device, save_steps=10_000, progress=False)
    batch = cfg.resolved().batch_size or 1
    _reset_peak(device)
    start = time.perf_counter()
    sft(trajs, model=str(model_dir), out_dir=out / "sft", config=cfg)
    wall = time.perf_counter() - start
    tokens = steps * batch * per_row
    return {
        "part": "SFT (LoRA)",
        "steps": steps,
        "wall_s": wall,
        "tokens_per_s": tokens / wall,
        "peak_gib": _peak_gib(device),
    }


def run_grpo(model_dir: Path, out: Path, steps: int, device: str) -> dict[str, Any]:
    from slmkit.training import RlConfig, rl

    cfg = RlConfig(
        env="bfcl:simple",
        model=str(model_dir),
        n=8,
        num_generations=4,
        max_steps=steps,
        max_completion_length=96,
        device=device,
        run_dir=out / "rl",
        eval_n=0,
        progress=False,
    )
    _reset_peak(device)
    start = time.perf_counter()
    result = rl(cfg)
    wall = time.perf_counter() - start
    tokens = steps * cfg.num_generations * cfg.max_completion_length  # upper bound
    row = {
        "part": "GRPO (LoRA, agent rollouts)",
        "steps": steps,
        "wall_s": wall,
        "tokens_per_s": tokens / wall,
        "peak_gib": _peak_gib(device),
    }
    row["result"] = repr(result)[:300]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", type=Path, help="GGUF file to convert (default: embedded)")
    parser.add_argument("--model-dir", type=Path, help="an HF model folder instead")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=Path("runs/gpu-smoke"))
    args = parser.parse_args()

    from slmkit.models.hf import convert_embedded, convert_gguf

    if args.model_dir:
        model_dir = args.model_dir
    elif args.gguf:
        model_dir = convert_gguf(args.gguf, args.out / "model-hf")
    else:
        model_dir = convert_embedded()
    import torch

    card = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    rows = []
    for part in (run_sft, run_grpo):
        try:
            rows.append(part(model_dir, args.out, args.steps, args.device))
        except Exception:  # report and go on: the other part's numbers still count
            traceback.print_exc()
            rows.append({"part": part.__name__, "error": traceback.format_exc(limit=2)[-300:]})
    print(f"\n## GPU smoke on {card} (torch {torch.__version__})\n")
    print("| part | steps | wall s | tokens/s | peak GPU GiB |\n|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['part']} | failed: {r['error'].splitlines()[-1][:80]} | | | |")
            continue
        peak = "-" if r["peak_gib"] is None else f"{r['peak_gib']:.2f}"
        print(
            f"| {r['part']} | {r['steps']} | {r['wall_s']:.1f} | {r['tokens_per_s']:.0f} | {peak} |"
        )


if __name__ == "__main__":
    main()
