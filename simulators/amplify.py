"""Trajectory amplification (Simia-SFT): a teacher writes new trajectories from seeds.

A few real trajectories (seeds) and the tool schemas are enough to make many more:
the teacher model reads two seeds (rotating through all of them, so every seed serves
as an example) and writes one new conversation, decoded under a *trajectory schema*
built from the tools (:func:`trajectory_schema`): each step is one of the tools with
its own argument schema and its own output schema, so a call can only name a real
tool, with valid arguments, and its simulated output has the right shape. Sampling at
``temperature > 0`` with a different seed per sample gives variety.

Every generated trajectory is validated (:mod:`slmkit.simulators.validate`); what can be
repaired safely is repaired, the rest dropped, and the reasons counted. Output is an
append-only JSONL with a ledger (like collection), so ``--count 1000`` can be resumed.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from slmkit.agents import Trajectory, read_trajectories
from slmkit.models import (
    DEFAULT_SPEC,
    ChatModel,
    Message,
    batching_options,
    decode_arguments,
    load_model,
    render_prompt,
)
from slmkit.simulators.collect import ledger_path
from slmkit.simulators.errors import SimulationError
from slmkit.simulators.jsonl import AppendLog
from slmkit.simulators.toolspec import load_tools, text_or_file
from slmkit.simulators.validate import repair_trajectory, validate_trajectory
from slmkit.tools import Tool, ToolCall, ToolRegistry, describe_tools

__all__ = [
    "AmplifyConfig",
    "AmplifySummary",
    "amplify",
    "from_compact",
    "to_compact",
    "trajectory_schema",
]

_UNKNOWN_OUTPUT: dict[str, Any] = {"type": "string", "maxLength": 300}


class AmplifyConfig(BaseModel):
    """Options of an amplification run (each ``agentctl simulate amplify`` flag is a field)."""

    model_config = ConfigDict(extra="forbid")

    tools: Path = Field(description="tools JSON file")
    seeds: Path = Field(description="seed trajectories (JSONL)")
    n: int = Field(default=100, ge=1, description="trajectories to generate")
    out: Path = Field(default=Path("amplified.jsonl"), description="output JSONL")
    model: str = Field(default=DEFAULT_SPEC, description="teacher model spec")
    domain: str = Field(
        default="", description="domain description or policy (text or a file path)"
    )
    max_steps: int = Field(default=4, ge=1, description="tool calls per trajectory at most")
    examples: int = Field(default=2, ge=1, description="seed trajectories shown per prompt")
    temperature: float = Field(default=0.8, ge=0, description="sampling temperature")
    seed: int = Field(default=0, description="sample i uses seed + i")
    max_tokens: int = Field(default=768, ge=64, description="token budget of one trajectory")
    batch: int = Field(
        default=1, ge=1, description="prompts decoded together (one chat_batch call)"
    )


class AmplifySummary(BaseModel):
    """What an amplification run produced (over the whole output file)."""

    model_config = ConfigDict(extra="forbid")

    out: str
    generated: int = 0
    kept: int = 0
    repaired: int = 0
    dropped: dict[str, int] = Field(default_factory=dict)
    repairs: dict[str, int] = Field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    elapsed_s: float = 0.0


def trajectory_schema(tools: Sequence[Tool], *, max_steps: int = 4) -> dict[str, Any]:
    """The JSON Schema of one compact trajectory over ``tools``.

    ``{"user": str, "steps": [{"tool": <name>, "arguments": {...}, "output": ...}],
    "answer": str}``, where each step is one tool's variant: its name as a constant,
    its argument schema, its output schema (a bounded string when unknown).
    """
    if not tools:
        raise SimulationError("amplification needs at least one tool", hint="check the tools file")
    variants = [
        {
            "type": "object",
            "properties": {
                "tool": {"const": t.name},
                "arguments": t.parameters,
                "output": t.output_schema or _UNKNOWN_OUTPUT,
            },
            "required": ["tool", "arguments", "output"],
            "additionalProperties": False,
        }
        for t in tools
    ]
    step = variants[0] if len(variants) == 1 else {"anyOf": variants}
    return {
        "type": "object",
        "properties": {
            "user": {"type": "string", "minLength": 8, "maxLength": 300},
            "steps": {"type": "array", "items": step, "minItems": 1, "maxItems": max_steps},
            "answer": {"type": "string", "minLength": 1, "maxLength": 300},
        },
        "required": ["user", "steps", "answer"],
        "additionalProperties": False,
    }


def to_compact(traj: Trajectory) -> dict[str, Any]:
    """A trajectory in the compact form of :func:`trajectory_schema` (for prompts)."""
    user = next((str(m.get("content") or "") for m in traj.messages if m.get("role") == "user"), "")
    outputs = {
        str(m.get("tool_call_id")): m.get("content")
        for m in traj.messages
        if m.get("role") == "tool"
    }
    steps = []
    for m in traj.messages:
        for tc in m.get("tool_calls") or ():
            fn = tc.get("function", {})
            out: Any = decode_arguments(outputs.get(str(tc.get("id")), ""))
            steps.append(
                {
                    "tool": fn.get("name"),
                    "arguments": decode_arguments(fn.get("arguments", {})),
                    "output": out,
                }
            )
    last = traj.messages[-1] if traj.messages else {}
    answer = str(last.get("content") or "") if last.get("role") == "assistant" else ""
    return {"user": user, "steps": steps, "answer": answer}


def from_compact(obj: dict[str, Any], tools: ToolRegistry, *, domain: str = "") -> Trajectory:
    """A :class:`Trajectory` (OpenAI messages) from the compact form."""
    messages: list[Message] = []
    if domain:
        messages.append({"role": "system", "content": domain})
    messages.append({"role": "user", "content": str(obj.get("user", ""))})
    for step in obj.get("steps", []):
        call = ToolCall(name=str(step.get("tool")), arguments=step.get("arguments") or {})
        messages.append({"role": "assistant", "content": "", "tool_calls": [call.to_openai()]})
        out = step.get("output")
        content = out if isinstance(out, str) else json.dumps(out, ensure_ascii=False)
        messages.append(
            {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": content}
        )
    messages.append({"role": "assistant", "content": str(obj.get("answer", ""))})
    digest = hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Trajectory(
        id=f"amp-{digest}",
        task={"prompt": obj.get("user", "")},
        messages=messages,
        tools=tools.openai_tools(),
    )


def _prompt(cfg: AmplifyConfig, tools: ToolRegistry, shown: list[Trajectory], domain: str) -> str:
    examples = "\n".join(json.dumps(to_compact(s), ensure_ascii=False) for s in shown)
    return render_prompt(
        "slmkit.simulators",
        "amplify.md",
        domain=f"About the system:\n{domain[:1500]}\n" if domain else "",
        tools=describe_tools(tools),
        examples=examples,
    )


def amplify(config: AmplifyConfig, *, model: ChatModel | None = None) -> AmplifySummary:
    """Generate ``config.n`` validated trajectories (resuming a partial output)."""
    started = time.perf_counter()
    specs, _ = load_tools(config.tools)
    registry = ToolRegistry(specs)
    seeds = list(read_trajectories(config.seeds))
    if not seeds:
        raise SimulationError(
            f"no seed trajectories in {config.seeds}", hint="give a JSONL of trajectories"
        )
    for s in seeds:
        problems = validate_trajectory(s, registry)
        if any(p.startswith("unknown_tool") for p in problems):
            raise SimulationError(
                f"seed {s.id} calls tools missing from {config.tools}: {problems[0]}",
                hint="the seeds and the tools file must describe the same tools",
            )
    domain = text_or_file(config.domain)
    model = model or load_model(config.model, **batching_options(config.model, config.batch))
    schema = trajectory_schema(specs, max_steps=config.max_steps)
    out, ledger = AppendLog(config.out), AppendLog(ledger_path(config.out))
    summary = AmplifySummary(out=str(config.out))
    drops: Counter[str] = Counter()
    fixes: Counter[str] = Counter()
    try:
        out.recover()
        done = ledger.recover()
        for previous in done:
            _count(summary, drops, fixes, previous)
        start = 1 + max((int(e.get("sample", -1)) for e in done), default=-1)
        for first in range(start, config.n, config.batch):
            samples = list(range(first, min(first + config.batch, config.n)))
            prompts = []
            for i in samples:
                rng = random.Random(config.seed + i)
                shown = [
                    seeds[(i + j) % len(seeds)] for j in range(min(config.examples, len(seeds)))
                ]
                rng.shuffle(shown)
                prompts.append(
                    [{"role": "user", "content": _prompt(config, registry, shown, domain)}]
                )
            # Each sample its own seed (seed + i), whatever the batch size: rows with the same
            # prompt would otherwise sample the same trajectory B times.
            rows = [
                model.request(
                    p,
                    schema=schema,
                    max_tokens=config.max_tokens,
                    temperature=config.temperature,
                    seed=config.seed + i,
                )
                for i, p in zip(samples, prompts, strict=True)
            ]
            completions = model.chat_requests(rows)
            for i, c in zip(samples, completions, strict=True):
                if isinstance(c, Exception):
                    raise c
                entry: dict[str, Any] = {
                    "sample": i,
                    "prompt_tokens": c.usage.prompt_tokens,
                    "completion_tokens": c.usage.completion_tokens,
                }
                if not c.valid or not isinstance(c.parsed, dict):
                    entry.update(kept=False, reason="invalid_output")
                else:
                    traj = from_compact(c.parsed, registry, domain=domain)
                    fixed, repairs, problems = repair_trajectory(traj, registry)
                    entry["repairs"] = repairs
                    if fixed is None:
                        entry.update(kept=False, reason=problems[0].split(":", 1)[0])
                    else:
                        meta = {
                            "source": "amplify",
                            "teacher": model.name,
                            "sample": i,
                            "repairs": repairs,
                        }
                        out.append(fixed.model_copy(update={"meta": meta}).model_dump(mode="json"))
                        entry.update(kept=True, reason=None, id=fixed.id)
                ledger.append(entry)
                _count(summary, drops, fixes, entry)
    finally:
        out.close()
        ledger.close()
    summary.elapsed_s = round(time.perf_counter() - started, 2)
    return summary


def _count(
    summary: AmplifySummary, drops: Counter[str], fixes: Counter[str], entry: dict[str, Any]
) -> None:
    summary.generated += 1
    summary.prompt_tokens += int(entry.get("prompt_tokens", 0))
    summary.completion_tokens += int(entry.get("completion_tokens", 0))
    if entry.get("kept"):
        summary.kept += 1
        summary.repaired += int(bool(entry.get("repairs")))
    else:
        drops[str(entry.get("reason"))] += 1
    for r in entry.get("repairs") or ():
        fixes[r] += 1
    summary.dropped = dict(drops)
    summary.repairs = dict(fixes)
