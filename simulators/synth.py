"""Written tasks: new training tasks from verified runs, kept only through a round trip.

A benchmark's training split is finite; the tools in it are not. From each verified run
(a task the teacher solved, and the calls that solved it) the teacher writes a *new*
task for the same tools, calls first: new argument values, decoded under the tools' own
argument schemas (:func:`task_schema`), then the user's request that asks for exactly
those calls. The prompt's example is a verified run on *other* functions (shown its own
task, the model copies it). The environment turns request and calls into a task whose
answer is those calls (:meth:`~slmkit.simulators.Environment.task_from_calls`; BFCL
writes its possible-answer form).

Nothing written is trusted. Cheap checks first: the request states every value of the
calls (:func:`states_values`) and shares more words with its own functions and task than
with the example's (a request about the example's circle, written over a quadratic
solver's calls, is dropped: a one-function task's solver calls that function whatever the
request says). Then the collection solves each task again from its request alone (the
teacher agent, as on the real tasks, with rejection sampling), and a run is kept only
when the environment's checker accepts its calls: the round trip calls -> request ->
calls is the verifier (APIGen's semantic check, back-translation).

``write_tasks`` appends every attempt to a JSONL log (the task, or why there is none),
so a killed run resumes without writing anything twice; the same samples get the same
seeds (seed + sample number), whatever the batch.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slmkit.agents import Trajectory, bound_strings
from slmkit.models import ChatModel, render_prompt
from slmkit.simulators.base import Environment, Task
from slmkit.simulators.errors import SimulationError
from slmkit.simulators.jsonl import AppendLog
from slmkit.tools import ToolRegistry, describe_tools

__all__ = [
    "WrittenTasks",
    "about",
    "states_values",
    "task_schema",
    "write_tasks",
]

_MAX_ARGUMENT_CHARS = 120
"""A written free-text argument's bound: names, places, dates; not prose."""
_MAX_ITEMS = 8
"""A written array argument's bound (sampled lists of numbers otherwise ran to 40+)."""
_REQUEST = r"^[A-Za-z][^{}\[\]]{14,299}$"
"""A request: a sentence, not JSON (sampled requests were ``}}]}]}``)."""
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@dataclass
class WrittenTasks:
    """What :func:`write_tasks` wrote, over its whole log (this run's and earlier ones)."""

    tasks: list[Task] = field(default_factory=list)
    attempts: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0


def task_schema(tools: ToolRegistry, calls: int) -> dict[str, Any]:
    """``{"calls": [exactly `calls` calls of `tools`], "user": the request}``, calls first.

    The calls come first so that the request is written to state them, not the calls
    copied from a request; free-text arguments are bounded (a sampled string may
    otherwise run to the token budget).
    """
    one = bound_strings(tools.call_schema(parallel=True, max_calls=calls), _MAX_ARGUMENT_CHARS)
    return {
        "type": "object",
        "properties": {
            "calls": {**_bound_arrays(one), "minItems": calls, "maxItems": calls},
            "user": {"type": "string", "pattern": _REQUEST},
        },
        "required": ["calls", "user"],
        "additionalProperties": False,
    }


def _bound_arrays(schema: Any) -> Any:
    """A copy of ``schema`` whose arrays hold at most :data:`_MAX_ITEMS` items."""
    if isinstance(schema, list):
        return [_bound_arrays(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _bound_arrays(v) for k, v in schema.items()}
    if out.get("type") == "array" and "maxItems" not in out:
        out["maxItems"] = max(_MAX_ITEMS, int(out.get("minItems", 0)))
    return out


def states_values(request: str, calls: Sequence[Mapping[str, Any]]) -> bool:
    """Does ``request`` state every value the calls pass (numbers as numbers, their sign
    aside; text case- and spacing-insensitively; booleans are not stated, they follow
    from the wording)?

    The cheap half of the round trip: a request that never names a value cannot be
    solved into it, so it is not worth the solving (a wrong sign is left to the round
    trip)."""
    text = " ".join(request.lower().split())
    numbers = {float(x) for x in _NUMBER.findall(request.replace(",", ""))}

    def stated(value: Any) -> bool:
        if isinstance(value, bool) or value is None:
            return True
        if isinstance(value, int | float):
            try:
                return abs(float(value)) in numbers
            except OverflowError:  # a run of digits no request states
                return False
        if isinstance(value, str):
            return " ".join(value.lower().split()) in text
        if isinstance(value, Mapping):
            return all(stated(v) for v in value.values())
        if isinstance(value, list | tuple):
            return all(stated(v) for v in value)
        return False

    return all(stated(c.get("arguments") or {}) for c in calls)


def _verified(traj: Trajectory) -> bool:
    return bool(traj.meta.get("success") and traj.task and traj.tool_calls)


def write_tasks(
    seeds: Sequence[Trajectory],
    env: Environment,
    model: ChatModel,
    *,
    per_seed: int,
    out: str | Path,
    temperature: float = 0.8,
    seed: int = 0,
    batch: int = 1,
    max_tokens: int = 384,
    examples: Sequence[Trajectory] = (),
) -> WrittenTasks:
    """``per_seed`` new tasks from each verified run in ``seeds`` (see the module docs).

    Args:
        seeds: runs of ``env``'s tasks; those that did not succeed or made no call are
            skipped (a task is written from calls that were right).
        env: the environment whose :meth:`~Environment.task_from_calls` makes the tasks.
        model: the teacher that writes them.
        per_seed: tasks written from each run.
        out: the attempts log (JSONL; resumed when it exists).
        temperature, seed: sampling; sample ``i`` of the whole run uses ``seed + i``.
        batch: prompts decoded together.
        examples: verified runs to show as examples of the format (default: ``seeds``);
            each prompt shows one on other functions than its seed's.

    Returns:
        The tasks, once each, and counts of why the others were dropped: the output did
        not parse (``invalid_output``), repeats its seed's calls or request
        (``seed_calls``, ``seed_request``), leaves a value unstated
        (``values_not_in_request``), is about the example (``about_the_example``), the
        environment refused it (``rejected``), or repeats an earlier one (``duplicate``).
    """
    if per_seed < 1:
        raise SimulationError("per_seed must be at least 1", hint="or write no tasks at all")
    usable = [s for s in seeds if _verified(s)]
    if usable:  # an environment that cannot judge written tasks says so before any writing
        env.task_from_calls(usable[0].task, usable[0].request, usable[0].tool_calls)
    chosen = (
        sorted((e for e in examples if _verified(e)), key=lambda t: t.id) if examples else usable
    )
    pool = [(t, _names(t)) for t in chosen]  # each example's functions, read once
    jobs = [(s, k) for s in sorted(usable, key=lambda s: s.id) for k in range(per_seed)]
    log = AppendLog(out)
    result = WrittenTasks()
    seen: set[str] = set()
    dropped: Counter[str] = Counter()
    try:
        done = {str(e["key"]): e for e in log.recover()}
        for previous in done.values():
            _tally(result, dropped, seen, previous)
        todo = [(i, s, k) for i, (s, k) in enumerate(jobs) if f"{s.id}#{k}" not in done]
        for first in range(0, len(todo), batch):
            chunk = todo[first : first + batch]
            shown_rows = [_example(pool, s, k) for _, s, k in chunk]
            rows = [
                _row(env, s, shown, temperature, seed + i)
                for (i, s, _), shown in zip(chunk, shown_rows, strict=True)
            ]
            completions = model.chat_requests(
                [model.request(m, schema=sc, max_tokens=max_tokens, **o) for m, sc, o in rows]
            )
            for (_, s, k), shown, c in zip(chunk, shown_rows, completions, strict=True):
                entry: dict[str, Any] = {"key": f"{s.id}#{k}", "seed_task": s.id}
                if isinstance(c, Exception):  # one row (a prompt too long, say), not the run
                    entry.update(task=None, reason="model_error", detail=str(c))
                else:
                    entry.update(
                        prompt_tokens=c.usage.prompt_tokens,
                        completion_tokens=c.usage.completion_tokens,
                        **_written(env, s, shown, c.parsed if c.valid else None),
                    )
                log.append(entry)
                _tally(result, dropped, seen, entry)
    finally:
        log.close()
    return result


def _example(pool: Sequence[tuple[Trajectory, set[str]]], s: Trajectory, k: int) -> Trajectory:
    """The run shown as the example of the format for task ``k`` written from ``s``: one
    on other functions, a different one for each ``k`` (shown its own calls, the 135M
    model wrote them again, 12 times of 12); ``s`` itself only when there is no other."""
    names = _names(s)
    others = [t for t, functions in pool if not names & functions]
    if not others:
        return s
    start = int(hashlib.sha256(s.id.encode()).hexdigest()[:8], 16)
    return others[(start + k) % len(others)]


def _names(traj: Trajectory) -> set[str]:
    return {str(c["name"]) for c in traj.tool_calls}


def _row(
    env: Environment,
    s: Trajectory,
    shown: Trajectory,
    temperature: float,
    sample_seed: int,
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """The prompt, schema and sampling of one task for ``s``'s functions, with the run
    ``shown`` as the example of the format."""
    env.reset(s.task)
    tools = env.tools()
    calls = s.tool_calls
    example = json.dumps({"calls": shown.tool_calls, "user": shown.request}, ensure_ascii=False)
    prompt = render_prompt(
        "slmkit.simulators", "synth_task.md", tools=describe_tools(tools), example=example
    )
    options = {"temperature": temperature, "seed": sample_seed}  # rows of one prompt differ
    return [{"role": "user", "content": prompt}], task_schema(tools, len(calls)), options


def _written(env: Environment, s: Trajectory, shown: Trajectory, parsed: Any) -> dict[str, Any]:
    """The log fields of one written task: ``task``, or ``reason`` why there is none.

    Besides the round trip's cheap half (:func:`states_values`), a request must be about
    its own functions rather than the example's: the 135M model wrote "What's the area of
    a circle with a radius of 10?" for ``quadratic_roots(a=10, b=10, c=10)`` after an
    example about circles, and a one-function task's solver calls that function whatever
    the request says, so the checker alone would have passed it."""
    if not isinstance(parsed, Mapping):
        return {"task": None, "reason": "invalid_output"}
    calls = [
        {"name": c.get("name"), "arguments": c.get("arguments") or {}}
        for c in parsed.get("calls") or []
        if isinstance(c, Mapping)
    ]
    request = " ".join(str(parsed.get("user") or "").split())
    written = {"request": request, "calls": calls}  # logged either way: why it was dropped
    reason = None
    if _canonical(calls) == _canonical(s.tool_calls):
        reason = "seed_calls"
    elif request.lower() == " ".join(s.request.split()).lower():
        reason = "seed_request"
    elif not states_values(request, calls):
        reason = "values_not_in_request"
    elif shown is not s and not about(request, s, shown):
        reason = "about_the_example"
    if reason is not None:
        return {"task": None, "reason": reason, **written}
    try:
        task = env.task_from_calls(s.task, request, calls)
    except SimulationError as exc:
        return {"task": None, "reason": "rejected", "detail": str(exc), **written}
    return {"task": dict(task), "reason": None}


def about(request: str, s: Trajectory, shown: Trajectory) -> bool:
    """Does ``request`` share more words with ``s``'s task and functions than with the
    example's (``shown``)?"""
    words = _words(request)

    def side(t: Trajectory) -> set[str]:
        docs = [t.request]
        for spec in t.tools:
            fn = spec.get("function", spec)
            params = (fn.get("parameters") or {}).get("properties") or {}
            docs += [str(fn.get("name", "")), str(fn.get("description", ""))]
            docs += [
                f"{p} {d.get('description', '')}" for p, d in params.items() if isinstance(d, dict)
            ]
        return _words(" ".join(docs))

    return len(words & side(s)) > len(words & side(shown))


def _words(text: str) -> set[str]:
    """Content words: lower case, three letters or more, split at ``_``/``.``/camelCase
    (``calculateArea`` is ``calculate area``)."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    return {w for w in re.findall(r"[a-z]{3,}", spaced.lower()) if w not in _STOPWORDS}


# fmt: off
_STOPWORDS = frozenset([
    "the", "and", "with", "for", "what", "are", "how", "from", "this", "that", "given",
    "its", "into", "has", "have", "will", "can", "all", "default", "optional",
])
# fmt: on


def _canonical(calls: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted(json.dumps(c, sort_keys=True, default=str) for c in calls)


def _tally(
    result: WrittenTasks, dropped: Counter[str], seen: set[str], entry: Mapping[str, Any]
) -> None:
    result.attempts += 1
    result.prompt_tokens += int(entry.get("prompt_tokens", 0))
    result.completion_tokens += int(entry.get("completion_tokens", 0))
    task = entry.get("task")
    if task is None:
        dropped[str(entry.get("reason"))] += 1
    elif str(task["id"]) in seen:
        dropped["duplicate"] += 1
    else:
        seen.add(str(task["id"]))
        result.tasks.append(task)
    result.dropped = dict(dropped)
