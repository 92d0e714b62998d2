"""How faithful is a simulator? The same calls, against the real tools and the simulator.

Before training on a simulated environment you want to know whether its outputs look
like the real ones. :func:`measure_fidelity` replays the same tool calls (by default the
gold actions of the real environment's tasks, which are realistic calls with real ids)
in a real and a simulated episode side by side and measures:

* **schema-valid rate**: simulated outputs that validate against the tool's output
  schema (or the error schema, for a simulated failure);
* **error agreement**: the simulator fails exactly where the real tool fails;
* **field agreement**: where both succeed, the share of the real output's leaf values
  (``order.items[0].price``) the simulator reproduced at the same path;
* **consistency**: within each simulated episode, observations of one entity that agree
  (see :func:`~slmkit.simulators.envs.consistency.entity_conflicts`). Gold action sequences
  rarely read one entity twice, so the first ``rereads`` read-only calls of each task
  are repeated at once with the simulator's cache cleared: the model (with its schema
  pins) must reproduce what it just said. The same measure on the real outputs is reported too, as a
  check of the measure itself (real data never conflicts).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import jsonschema
from pydantic import BaseModel, ConfigDict, Field

from slmkit.simulators.base import Environment, Task
from slmkit.simulators.envs.consistency import Observation, entity_conflicts
from slmkit.simulators.envs.simulated import ERROR_SCHEMA, SimulatedEnvironment
from slmkit.tools import Tool

__all__ = [
    "FidelityReport",
    "ToolFidelity",
    "fidelity_markdown",
    "leaf_agreement",
    "measure_fidelity",
]

_SKIP_TOOLS = frozenset({"send_message_to_user"})


class ToolFidelity(BaseModel):
    """Fidelity numbers of one tool."""

    model_config = ConfigDict(extra="forbid")

    calls: int = 0
    schema_valid: int = 0
    error_agreement: int = 0
    both_ok: int = 0
    field_agreement_sum: float = 0.0

    @property
    def field_agreement(self) -> float | None:
        return self.field_agreement_sum / self.both_ok if self.both_ok else None


class FidelityReport(BaseModel):
    """The fidelity of a simulator against a real environment (see the module docs)."""

    model_config = ConfigDict(extra="forbid")

    env: str
    simulator: str
    model: str
    tasks: int = 0
    calls: int = 0
    rereads: int = 0
    schema_valid_rate: float | None = None
    error_agreement_rate: float | None = None
    field_agreement: float | None = None
    consistency: float | None = None
    comparisons: int = 0
    conflicts: int = 0
    real_comparisons: int = 0
    real_conflicts: int = 0
    sim_errors: int = 0
    real_errors: int = 0
    by_tool: dict[str, ToolFidelity] = Field(default_factory=dict)
    conflict_examples: list[str] = Field(default_factory=list)
    samples: list[dict[str, Any]] = Field(default_factory=list)
    sim_prompt_tokens: int = 0
    sim_completion_tokens: int = 0
    elapsed_s: float = 0.0


def _leaves(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_leaves(v, f"{path}.{k}" if path else str(k)))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(_leaves(v, f"{path}[{i}]"))
        return out
    return {path: value}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(a)))
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().lower() == b.strip().lower()
    return bool(a == b)


def leaf_agreement(real: Any, simulated: Any) -> float:
    """Share of ``real``'s leaf values that ``simulated`` has at the same path.

    A scalar real output (an id string) agrees when the simulated output holds that value
    anywhere.
    """
    sim_leaves = _leaves(simulated)
    if not isinstance(real, dict | list):
        return float(any(_same(real, v) for v in sim_leaves.values()))
    real_leaves = _leaves(real)
    if not real_leaves:
        return float(not sim_leaves)
    hits = sum(1 for p, v in real_leaves.items() if p in sim_leaves and _same(v, sim_leaves[p]))
    return hits / len(real_leaves)


def _valid(output: Any, tool: Tool, ok: bool) -> bool:
    schema = tool.output_schema if ok else ERROR_SCHEMA
    if schema is None:
        return isinstance(output, dict)
    try:
        jsonschema.validate(output, schema)
    except jsonschema.ValidationError:
        return False
    return True


def measure_fidelity(
    real: Environment,
    sim: SimulatedEnvironment,
    tasks: Iterable[Task],
    *,
    max_calls: int | None = None,
    rereads: int = 1,
    on_call: Callable[[dict[str, Any]], None] | None = None,
) -> FidelityReport:
    """Replay each task's gold actions against ``real`` and ``sim`` (module docs).

    Args:
        real: the real environment (its tools run the calls for real).
        sim: a simulator of it (e.g. :meth:`SimulatedEnvironment.from_environment`).
        tasks: tasks of ``real`` that have gold actions.
        max_calls: replay at most this many calls per task.
        rereads: per task, repeat this many read-only calls that returned records right
            after they ran, the simulator's cache cleared, to measure consistency on
            entities seen twice.
        on_call: called with each compared call (progress).
    """
    started = time.perf_counter()
    model_name = sim.model.name
    report = FidelityReport(env=real.name, simulator=sim.name, model=model_name)
    valid = agree = both = 0
    field_sum = 0.0
    for task in tasks:
        actions = [a for a in real.gold_actions(task) or [] if a["name"] not in _SKIP_TOOLS]
        if max_calls is not None:
            actions = actions[:max_calls]
        if not actions:
            continue
        report.tasks += 1
        real.reset(task)
        sim.reset({k: v for k, v in task.items() if k not in ("user", "user_scenario")})
        real_tools, sim_tools = real.tools(), sim.tools()
        reread_left = rereads
        real_obs: list[Observation] = []
        sim_obs: list[Observation] = []
        for action in actions:
            call = {"name": action["name"], "arguments": dict(action["arguments"])}
            r = real_tools.execute(call)
            logged = len(sim.log)
            s = sim_tools.execute(call)
            spec = sim.tool_specs[call["name"]]
            entry = next((e for e in sim.log[logged:] if e.get("kind") == "tool"), {})
            s_out = s.output if s.ok else {"error": _sim_error(s.error)}
            stats = report.by_tool.setdefault(call["name"], ToolFidelity())
            stats.calls += 1
            report.calls += 1
            report.real_errors += int(not r.ok)
            report.sim_errors += int(not s.ok)
            # the simulator's own output must validate; an invalid one never counts as a
            # (valid) error, even though the agent is shown an error for it
            is_valid = bool(entry.get("valid", True)) and _valid(s_out, spec, s.ok)
            valid += is_valid
            stats.schema_valid += is_valid
            same_error = r.ok == s.ok
            agree += same_error
            stats.error_agreement += same_error
            score = None
            if r.ok and s.ok:
                score = leaf_agreement(r.output, s.output)
                both += 1
                field_sum += score
                stats.both_ok += 1
                stats.field_agreement_sum += score
            mutating = sim.mutating.get(call["name"], False)
            if r.ok:
                real_obs.append(Observation(call["name"], mutating, r.output))
            if s.ok:
                sim_obs.append(Observation(call["name"], mutating, s.output))
            if s.ok and not mutating and reread_left > 0 and isinstance(s.output, dict | list):
                # the same read again, the simulator's cache cleared: the model itself
                # (helped only by its schema pins) must say the same thing again
                reread_left -= 1
                report.rereads += 1
                sim.cache.clear()
                again = sim_tools.execute(call)
                if again.ok:
                    sim_obs.append(Observation(call["name"], False, again.output))
            sample = {
                "task": task["id"],
                "call": call,
                "real_ok": r.ok,
                "sim_ok": s.ok,
                "schema_valid": is_valid,
                "field_agreement": score,
            }
            if len(report.samples) < 40:
                report.samples.append(sample)
            if on_call is not None:
                on_call(sample)
        c, k, examples = entity_conflicts(sim_obs)
        report.comparisons += c
        report.conflicts += k
        report.conflict_examples.extend(examples[: max(0, 10 - len(report.conflict_examples))])
        rc, rk, _ = entity_conflicts(real_obs)
        report.real_comparisons += rc
        report.real_conflicts += rk
        for entry in sim.log:
            report.sim_prompt_tokens += int(entry.get("prompt_tokens", 0))
            report.sim_completion_tokens += int(entry.get("completion_tokens", 0))
    if report.calls:
        report.schema_valid_rate = valid / report.calls
        report.error_agreement_rate = agree / report.calls
    if both:
        report.field_agreement = field_sum / both
    if report.comparisons:
        report.consistency = 1 - report.conflicts / report.comparisons
    report.elapsed_s = round(time.perf_counter() - started, 2)
    return report


def _sim_error(error: str | None) -> str:
    text = error or "error"
    prefix = "SimulatedToolError: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def fidelity_markdown(report: FidelityReport, *, title: str | None = None) -> str:
    """The report as a Markdown section: the headline table and the per-tool table."""
    r = report
    lines = [
        f"## {title or f'Simulator fidelity: {r.simulator} vs {r.env}'}",
        "",
        f"Simulator model `{r.model}`; {r.tasks} tasks, {r.calls} replayed calls "
        f"and {r.rereads} re-reads "
        f"(real errors {r.real_errors}, simulated errors {r.sim_errors}); "
        f"{r.sim_prompt_tokens}+{r.sim_completion_tokens} simulator tokens; {r.elapsed_s:.0f} s.",
        "",
        "| metric | value |",
        "|---|---|",
        f"| schema-valid rate | {_pct(r.schema_valid_rate)} |",
        f"| error agreement | {_pct(r.error_agreement_rate)} |",
        f"| field-level agreement (both succeeded) | {_pct(r.field_agreement)} |",
        f"| consistency within episodes | {_pct(r.consistency)} "
        f"({r.conflicts} conflicts / {r.comparisons} comparisons) |",
        f"| consistency of the real outputs (check) | "
        f"{_pct(1 - r.real_conflicts / r.real_comparisons) if r.real_comparisons else 'n/a'} "
        f"({r.real_conflicts} / {r.real_comparisons}) |",
        "",
        "| tool | calls | schema-valid | error agreement | field agreement |",
        "|---|---|---|---|---|",
    ]
    for name, t in sorted(r.by_tool.items()):
        lines.append(
            f"| {name} | {t.calls} | {_pct(t.schema_valid / t.calls)} | "
            f"{_pct(t.error_agreement / t.calls)} | {_pct(t.field_agreement)} |"
        )
    if r.conflict_examples:
        lines += ["", "Conflicts found:", *[f"- {e}" for e in r.conflict_examples]]
    return "\n".join(lines) + "\n"
