"""GPU check of the training code path: a few SFT and GRPO steps, tokens/s and peak memory.

Runs slmkit's real ``sft()`` (TRL SFTTrainer + PEFT LoRA, assistant-only loss) and
``rl()`` (TRL GRPOTrainer with agent rollouts: ToolAgent episodes, grammar-constrained
actions through the transformers backend, rewards from an environment) on a small model,
and prints one table. Each phase is measured on its own; a phase that fails prints its
error and the script goes on, so a partial machine still reports what it could measure.

No data or model is downloaded: the environment is the built-in one-tool ``thermostat``
(its gold runs are the SFT data), and the model is a local HF folder, a GGUF file
converted on the spot, or the embedded SmolLM2-135M::

    python benchmarks/gpu_smoke.py --gguf SmolLM2-135M-Instruct.Q4_1.gguf --steps 20
    python benchmarks/gpu_smoke.py --model-dir ~/models/Qwen2.5-0.5B-Instruct
    python benchmarks/gpu_smoke.py --device cpu --steps 2        # a quick check anywhere
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import resource
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REQUIRED = ("torch", "transformers", "peft", "accelerate", "trl", "datasets", "llguidance")


# --------------------------------------------------------------------------- helpers


def preflight() -> list[tuple[str, str]]:
    """Versions of what the training path imports (``missing`` where absent)."""
    rows = []
    for name in REQUIRED:
        try:
            mod = importlib.import_module(name)
            rows.append((name, str(getattr(mod, "__version__", "?"))))
        except Exception as exc:  # an import that fails for any reason is worth seeing
            rows.append((name, f"missing ({type(exc).__name__})"))
    return rows


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"
    return f"CPU: {platform.processor() or platform.machine()} x{os.cpu_count()}"


@contextlib.contextmanager
def measured(device: str) -> Iterator[dict[str, float]]:
    """Wall time and peak memory of a block (GPU allocator peak, or process RSS on CPU)."""
    import torch

    out: dict[str, float] = {}
    gpu = device.startswith("cuda") and torch.cuda.is_available()
    if gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    try:
        yield out
    finally:
        if gpu:
            torch.cuda.synchronize()
            out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        else:
            out["peak_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        out["wall_s"] = time.perf_counter() - t0


def model_folder(args: argparse.Namespace, work: Path) -> Path:
    """The HF folder to train: given, converted from ``--gguf``, or the embedded model."""
    if args.model_dir:
        return Path(args.model_dir).expanduser()
    if args.init_from_config:
        # Random weights of the given architecture: the path and the speed are real,
        # the model's skill is not (rewards will be ~0). For machines a GGUF cannot reach.
        import shutil

        from transformers import AutoConfig, AutoModelForCausalLM

        src = Path(args.init_from_config).expanduser()
        target = work / "model-random"
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(src)))
        model.save_pretrained(str(target))
        for f in src.iterdir():
            if f.name.startswith(("tokenizer", "chat_template", "special_tokens", "generation")):
                shutil.copy(f, target / f.name)
        return target
    if args.gguf:
        from slmkit.models.hf import convert_gguf

        return convert_gguf(Path(args.gguf).expanduser(), work / "model-hf")
    from slmkit.models.hf import convert_embedded

    return convert_embedded("smollm2")


# --------------------------------------------------------------------------- data


def trajectories(n: int) -> list[Any]:
    """``n`` correct thermostat runs (the environment's tool replayed), for SFT."""
    from slmkit.simulators import load_env
    from slmkit.simulators.runner import run_episode

    env = load_env("thermostat", split="train")
    return [run_episode(env, task, agent="gold") for task in env.tasks().take(n)]


# --------------------------------------------------------------------------- phases


def phase_sft(args: argparse.Namespace, folder: Path, work: Path) -> dict[str, Any]:
    from transformers import TrainerCallback

    from slmkit.training import SftConfig, sft

    class Tokens(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.tokens = 0
            self.t0 = 0.0
            self.seconds = 0.0

        def on_step_begin(self, *a: Any, **k: Any) -> None:
            self.t0 = time.perf_counter()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            self.seconds += time.perf_counter() - self.t0

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **k: Any) -> None:
            if logs and "num_tokens" in logs:
                self.tokens = int(float(logs["num_tokens"]))

    counter = Tokens()
    data = trajectories(max(8, args.batch * 2))
    cfg = SftConfig(
        max_steps=args.steps,
        batch_size=args.batch,
        device=args.device,
        save_steps=10_000,
        merge=True,
        progress=False,
    )
    with measured(args.device) as m:
        sft(data, model=str(folder), out_dir=work / "sft-student", config=cfg, callbacks=[counter])
    meta = json.loads((work / "sft-student" / "slmkit_student.json").read_text())
    return {
        "steps": meta["steps"],
        "tokens": counter.tokens,
        "tokens_per_s": counter.tokens / counter.seconds if counter.seconds else None,
        "train_s": counter.seconds,
        "wall_s": m["wall_s"],
        "peak_gib": m["peak_gib"],
        "loss": f"{meta['losses'][0]:.3f} -> {meta['losses'][-1]:.3f}" if meta["losses"] else "",
    }


def phase_grpo(args: argparse.Namespace, folder: Path, work: Path) -> dict[str, Any]:
    from slmkit.training import RlConfig, rl

    cfg = RlConfig(
        env="thermostat",
        model=str(folder),
        n=8,
        num_generations=args.generations,
        max_steps=args.steps,
        max_completion_length=96,
        device=args.device,
        use_vllm=False,
        run_dir=work / "rl",
        progress=False,
    )
    with measured(args.device) as m:
        result = rl(cfg, until="grpo")
    history = json.loads((result.run_dir / "grpo" / "log_history.json").read_text())
    logged = [h for h in history if "reward" in h]
    rollouts = [
        json.loads(line)
        for line in (result.run_dir / "grpo" / "rollouts.jsonl").read_text().splitlines()
    ]
    errors = [r["error"] for r in rollouts if r.get("error")]
    lengths = [int(r.get("completion_tokens") or 0) for r in rollouts]
    tokens = sum(float(h.get("num_tokens", 0)) for h in logged[-1:])  # cumulative in TRL
    out = result.outputs("grpo")
    return {
        "steps": out["steps"],
        "tokens": int(tokens),
        "tokens_per_s": tokens / out["train_s"] if out["train_s"] else None,
        "train_s": out["train_s"],
        "wall_s": m["wall_s"],
        "peak_gib": m["peak_gib"],
        "loss": f"{len(rollouts)} rollouts, agent tokens {min(lengths)}-{max(lengths)}, "
        f"{len(errors)} failed{': ' + errors[0][:60] if errors else ''}; reward per step "
        + " ".join(f"{h['reward']:.2f}" for h in logged),
    }


# --------------------------------------------------------------------------- main


def table(rows: list[dict[str, Any]]) -> str:
    head = "| phase | status | steps | tokens | tokens/s | train s | wall s | peak GiB | notes |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:

        def f(key: str, fmt: str = "{:.1f}", r: dict[str, Any] = r) -> str:
            v = r.get(key)
            return "" if v is None else fmt.format(v) if isinstance(v, int | float) else str(v)

        lines.append(
            f"| {r['phase']} | {r['status']} | {f('steps', '{}')} | {f('tokens', '{:,}')} | "
            f"{f('tokens_per_s')} | {f('train_s')} | {f('wall_s')} | {f('peak_gib', '{:.2f}')} "
            f"| {f('loss', '{}')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--model-dir", help="a local HF model folder")
    src.add_argument("--gguf", help="a GGUF file, converted to an HF folder first")
    src.add_argument(
        "--init-from-config",
        help="a folder with config.json + tokenizer: random weights of that architecture",
    )
    parser.add_argument("--device", default=None, help="cuda | cpu (default: cuda if available)")
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps per phase")
    parser.add_argument("--batch", type=int, default=8, help="SFT sequences per step")
    parser.add_argument("--generations", type=int, default=4, help="GRPO rollouts per task")
    parser.add_argument("--only", choices=["sft", "grpo"], help="run one phase")
    parser.add_argument("--out", type=Path, help="also write the table (Markdown) here")
    args = parser.parse_args(argv)

    print("| package | version |\n|---|---|")
    for name, version in preflight():
        print(f"| {name} | {version} |")
    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    python = sys.version.split()[0]
    print(f"\ndevice: {device_name(args.device)}; torch {torch.__version__}; python {python}")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="slmkit-gpu-smoke-") as tmp:
        work = Path(tmp)
        try:
            folder = model_folder(args, work)
        except Exception as exc:
            traceback.print_exc()
            print(f"\nsetup failed: {type(exc).__name__}: {exc}")
            return 1
        print(f"model: {folder}\n")
        phases = {"sft": phase_sft, "grpo": phase_grpo}
        for name, fn in phases.items():
            if args.only and args.only != name:
                continue
            try:
                rows.append({"phase": name, "status": "ok", **fn(args, folder, work)})
            except Exception as exc:
                traceback.print_exc()
                rows.append(
                    {
                        "phase": name,
                        "status": "FAILED",
                        "loss": f"{type(exc).__name__}: {exc}"[:120],
                    }
                )
            print(table(rows[-1:]), flush=True)
    result = table(rows)
    print(f"\n## training smoke test on {device_name(args.device)}\n\n{result}")
    if args.out:
        args.out.write_text(f"device: {device_name(args.device)}\n\n{result}\n")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
