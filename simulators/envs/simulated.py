"""``SimulatedEnvironment``: a model plays the tools (and the user) from tool schemas alone.

Simia's observation: an LLM that reads a tool's documentation (and a few real examples)
can return plausible outputs for it, so agents can be trained without building the
environment. This class is that simulator behind the :class:`Environment` interface:

* **tools**: each call is answered by the simulator model, decoded under the tool's
  output schema when one is known (else any JSON object), or ``{"error": ...}`` for a
  call that cannot succeed, which the agent sees as a tool error. Consistency within an
  episode (see :mod:`slmkit.simulators.envs.consistency`): identical calls return identical
  outputs, fields the episode already established are pinned in the schema, and the
  earlier calls and outputs are in the prompt. A mutating tool's call clears the cache.
* **user**: tasks with a ``"user"`` scenario get a ``send_message_to_user`` tool played
  by a :class:`~slmkit.simulators.envs.user.UserSimulator`.
* **reward**: a ``check(env) -> float`` function, or a rubric judged by a model under a
  verdict schema (``{"reason", "score": 0..1}`` or ``{"reason", "pass": bool}``).

Every simulator call (tool, user, judge) is appended to :attr:`Environment.log` with
its input, output, validity, tokens and latency, so the trajectory says exactly what
was simulated.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from slmkit.agents import Trajectory, canonical_call, read_trajectories
from slmkit.models import DEFAULT_SPEC, ChatModel, Message, decode_arguments, render_prompt
from slmkit.simulators.base import Environment, RewardReport, Task, jsonable, tool_from_method
from slmkit.simulators.envs.consistency import pin_schema
from slmkit.simulators.envs.user import UserSimulator, resolve_model, scenario_text
from slmkit.simulators.errors import SimulationError
from slmkit.simulators.tasks import read_tasks_jsonl, stable_split
from slmkit.simulators.toolspec import is_mutating, load_tools, text_or_file
from slmkit.tools import Tool, describe_tool

__all__ = ["ERROR_SCHEMA", "SimulatedEnvironment", "SimulatedToolError", "seed_examples"]

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"error": {"type": "string", "minLength": 1, "maxLength": 160}},
    "required": ["error"],
    "additionalProperties": False,
}
"""What a simulated tool returns for a call that cannot succeed."""

_ANY_OBJECT: dict[str, Any] = {"type": "object"}
_HISTORY_CHARS = 3000
_EXAMPLES_PER_TOOL = 2
_TALK = "send_message_to_user"


class SimulatedToolError(RuntimeError):
    """The simulator said the call fails (its ``{"error": ...}`` output)."""


def seed_examples(
    trajectories: Iterable[Trajectory],
) -> dict[str, list[tuple[dict[str, Any], str]]]:
    """Real ``(arguments, output text)`` pairs per tool name, from seed trajectories."""
    out: dict[str, list[tuple[dict[str, Any], str]]] = {}
    for traj in trajectories:
        pending: dict[str, tuple[str, dict[str, Any]]] = {}
        for m in traj.messages:
            for tc in m.get("tool_calls") or ():
                fn = tc.get("function", {})
                args = decode_arguments(fn.get("arguments", {}))
                pending[str(tc.get("id"))] = (
                    str(fn.get("name")),
                    args if isinstance(args, dict) else {},
                )
            if m.get("role") == "tool" and str(m.get("tool_call_id")) in pending:
                name, args = pending.pop(str(m["tool_call_id"]))
                out.setdefault(name, []).append((args, str(m.get("content", ""))))
    return out


class SimulatedEnvironment(Environment):
    """An environment whose tools (and user) a model simulates (see the module docs).

    Args:
        tools: schema-only tools (their ``fn`` is ignored), e.g. from
            :func:`~slmkit.simulators.toolspec.load_tools`.
        model: the simulator model (or spec).
        domain: a description of the system and its policy, for the simulator's prompt.
        seeds: trajectories of real runs; their tool outputs are shown as examples.
        tasks: task dicts (``{"id", "prompt", ["user"], ["rubric"]}``) or a JSONL file.
        rubric: the grading rubric of every task (a task's own ``"rubric"`` wins).
        check: a reward function of the finished episode, instead of a judged rubric.
        verdict: ``"score"`` (0..1) or ``"pass"`` (bool) verdicts from the judge.
        judge_model, user_model: models for judging and playing the user (default: the
            simulator model).
        mutating: declared mutating flags per tool name (else guessed from names).
        allow_errors: let the simulator answer ``{"error": ...}``. Small models overuse
            it (every call "fails"); turn it off to always get a schema output.
        max_output_tokens: budget of one simulated tool output.
        temperature, seed: decoding of the simulator (0 = deterministic).
        name: the environment's name in trajectories.
    """

    def __init__(
        self,
        tools: Sequence[Tool],
        *,
        model: ChatModel | str = DEFAULT_SPEC,
        domain: str = "",
        seeds: Iterable[Trajectory] = (),
        tasks: Iterable[Mapping[str, Any]] | str | Path | None = None,
        rubric: str | None = None,
        check: Callable[[SimulatedEnvironment], float] | None = None,
        verdict: Literal["score", "pass"] = "score",
        judge_model: ChatModel | str | None = None,
        user_model: ChatModel | str | None = None,
        mutating: Mapping[str, bool] | None = None,
        allow_errors: bool = True,
        max_output_tokens: int = 384,
        temperature: float = 0.0,
        seed: int = 0,
        name: str = "sim",
        split: str = "test",
        limit: int | None = None,
    ) -> None:
        super().__init__(split=split, limit=limit)
        if not tools:
            raise SimulationError("a simulated environment needs tools", hint="pass tool schemas")
        self.name = name
        model_obj = resolve_model(model)
        assert model_obj is not None
        self.model: ChatModel = model_obj
        self.judge_model = resolve_model(judge_model) or self.model
        self.user_model = resolve_model(user_model) or self.model
        self.tool_specs = {t.name: dataclasses.replace(t, fn=None) for t in tools}
        self.domain = domain.strip()
        self.examples = seed_examples(seeds)
        self.rubric = rubric
        self.check = check
        self.verdict = verdict
        self.mutating = {n: is_mutating(t, mutating) for n, t in self.tool_specs.items()}
        self.allow_errors = allow_errors
        self.max_output_tokens = max_output_tokens
        self.temperature = temperature
        self.seed = seed
        self._task_source = tasks
        self._task_list: list[Task] | None = None
        self.cache: dict[str, Any] = {}
        """Outputs of this episode's calls by canonical call (cleared by mutating calls)."""
        self.history: list[dict[str, Any]] = []
        """This episode's simulated calls: ``{"name", "arguments", "output", "error"}``."""
        self._user: UserSimulator | None = None
        self._verdict_cache: tuple[tuple[int, str | None], RewardReport] | None = None

    # -- construction from files or a real environment

    @classmethod
    def from_files(
        cls,
        *,
        tools: str | Path,
        domain: str | Path | None = None,
        seeds: str | Path | None = None,
        tasks: str | Path | None = None,
        **options: Any,
    ) -> SimulatedEnvironment:
        """From a tools JSON file, a domain text (or file), seed and task JSONL files."""
        specs, mutating = load_tools(tools)
        text = text_or_file(domain)
        seed_trajs = list(read_trajectories(seeds)) if seeds is not None else []
        options.setdefault("mutating", mutating)
        options.setdefault("name", f"sim:{Path(tools).stem}")
        return cls(specs, domain=text, seeds=seed_trajs, tasks=tasks, **options)

    @classmethod
    def from_environment(
        cls, env: Environment, *, model: ChatModel | str = DEFAULT_SPEC, **options: Any
    ) -> SimulatedEnvironment:
        """A simulator of a real environment's tools, its domain text and its tasks.

        The real env's tools give names, argument and output schemas; its policy (when it
        has one, as tau2 does) is the domain text; its tasks are reused so both can run the
        same episodes (that is how :mod:`slmkit.simulators.fidelity` compares them).
        """
        specs = [t for t in env.tools() if t.name != _TALK]
        writes = env.mutating_tools()
        if writes is not None:
            options.setdefault("mutating", {t.name: t.name in writes for t in specs})
        options.setdefault("name", f"sim:{env.name}")
        options.setdefault("split", env.split)
        options.setdefault("tasks", None if env.unbounded else list(env.tasks()))
        return cls(specs, model=model, domain=env.domain_text(), **options)

    # -- tasks

    def _all_tasks(self) -> list[Task]:
        if self._task_list is None:
            source = self._task_source
            raw: list[Task] = []
            if isinstance(source, str | Path):
                raw = read_tasks_jsonl(source)
            elif source is not None:
                raw = [dict(t) for t in source]
            for t in raw:
                t.setdefault("split", stable_split(str(t["id"])))
            self._task_list = raw
        return self._task_list

    def _tasks(self, split: str) -> list[Task]:
        return [t for t in self._all_tasks() if t["split"] == split]

    @property
    def has_user(self) -> bool:
        """Whether some task has a user scenario (then ``send_message_to_user`` exists)."""
        return any(scenario_text(t) for t in self._all_tasks())

    # -- episode

    def _start(self, task: Task) -> list[Message]:
        self.cache = {}
        self.history = []
        self._verdict_cache = None
        scenario = scenario_text(task)
        messages: list[Message] = []
        if self.domain:
            messages.append({"role": "system", "content": self.domain})
        if scenario:
            self._user = UserSimulator(self.user_model, str(scenario), log=self.log)
            messages.append({"role": "user", "content": self._user.opening()})
        else:
            self._user = None
            messages.append({"role": "user", "content": str(task.get("prompt", ""))})
        return messages

    def _build_tools(self) -> list[Tool]:
        tools = [
            dataclasses.replace(t, fn=self._simulator(t.name)) for t in self.tool_specs.values()
        ]
        if self.has_user or self._user is not None:
            tools.append(tool_from_method(self.send_message_to_user))
        return tools

    def send_message_to_user(self, message: str) -> str:
        """Send a message to the user and return the user's reply.

        Args:
            message: what to tell or ask the user
        """
        if self._user is None:
            raise SimulationError("this task has no simulated user", hint="give the task a 'user'")
        return self._user.reply(message)

    def _simulator(self, name: str) -> Callable[..., Any]:
        def run(**arguments: Any) -> Any:
            return self.simulate(name, arguments)

        return run

    def simulate(self, name: str, arguments: Mapping[str, Any]) -> Any:
        """The simulated output of ``name(**arguments)`` in this episode.

        Raises:
            SimulatedToolError: the simulator answered with an error, or produced no
                valid output (the agent sees either as a failed tool call).
        """
        tool = self.tool_specs.get(name)
        if tool is None:
            raise SimulationError(
                f"no tool {name!r} to simulate", hint=f"tools: {list(self.tool_specs)}"
            )
        key = canonical_call(name, dict(arguments))
        if key in self.cache:
            cached = self.cache[key]
            self.log.append(
                {
                    "kind": "tool",
                    "name": name,
                    "arguments": dict(arguments),
                    "output": cached,
                    "cached": True,
                    "valid": True,
                }
            )
            return self._deliver(name, arguments, cached)
        schema, pins = self._schema(tool, arguments)
        messages = self._prompt(tool, arguments)
        start = time.perf_counter()
        out = self.model.chat(
            messages,
            schema=schema,
            max_tokens=self.max_output_tokens,
            temperature=self.temperature,
            seed=self.seed + len(self.history),
        )
        output: Any = out.parsed if out.valid else None
        self.log.append(
            {
                "kind": "tool",
                "name": name,
                "arguments": dict(arguments),
                "output": output,
                "raw": None if out.valid else out.text[-300:],
                "valid": out.valid,
                "error": out.error,
                "pins": pins,
                "cached": False,
                "prompt_tokens": out.usage.prompt_tokens,
                "completion_tokens": out.usage.completion_tokens,
                "latency_s": round(time.perf_counter() - start, 4),
                "model": out.model,
            }
        )
        if output is None:
            output = {"error": "the simulator produced no valid output"}
        if self.mutating.get(name) and not _is_error(output):
            self.cache.clear()
        self.cache[key] = output
        return self._deliver(name, arguments, output)

    def _deliver(self, name: str, arguments: Mapping[str, Any], output: Any) -> Any:
        error = output["error"] if _is_error(output) else None
        self.history.append(
            {"name": name, "arguments": dict(arguments), "output": output, "error": error}
        )
        if error is not None:
            raise SimulatedToolError(str(error))
        return output

    def _schema(
        self, tool: Tool, arguments: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        pins: dict[str, Any] = {}
        schema = _ANY_OBJECT
        if tool.output_schema is not None:
            earlier = [h["output"] for h in self.history if h["error"] is None]
            schema, pins = pin_schema(tool.output_schema, arguments, earlier)
        return ({"anyOf": [schema, ERROR_SCHEMA]} if self.allow_errors else schema), pins

    def _prompt(self, tool: Tool, arguments: Mapping[str, Any]) -> list[Message]:
        doc = describe_tool(tool)
        if tool.output_schema is not None:
            doc += "\nIt returns JSON of this schema:\n" + _compact(tool.output_schema, 1200)
        examples = ""
        shots = self.examples.get(tool.name, [])[:_EXAMPLES_PER_TOOL]
        if shots:
            lines = [
                f"{tool.name}({json.dumps(a, ensure_ascii=False)}) -> {o[:600]}" for a, o in shots
            ]
            examples = "Real examples of this tool:\n" + "\n".join(lines) + "\n\n"
        history = (
            "\n".join(
                f"{h['name']}({json.dumps(h['arguments'], ensure_ascii=False)}) -> "
                f"{json.dumps(h['output'], ensure_ascii=False)}"
                for h in self.history
            )[-_HISTORY_CHARS:]
            or "(none yet)"
        )
        domain = f"About the system:\n{self.domain[:2000]}\n" if self.domain else ""
        system = render_prompt(
            "slmkit.simulators.envs",
            "tool.md",
            tool=tool.name,
            domain=domain,
            tool_doc=doc,
            examples=examples,
            history=history,
        )
        call = f"{tool.name}({json.dumps(dict(arguments), ensure_ascii=False)})"
        return [
            {"role": "system", "content": system},
            {"role": "user", "content": f"Call: {call}\nResult:"},
        ]

    # -- reward

    def _score(self, task: Task) -> RewardReport:
        if self.check is not None:
            value = float(self.check(self))
            return self._report(value, {"check": value})
        rubric = task.get("rubric") or self.rubric
        if not rubric:
            raise SimulationError(
                f"{self.name} cannot score task {task['id']}: no rubric and no check function",
                hint="pass rubric='...' (judged by a model) or check=fn(env) -> float",
            )
        key = (len(self.history), self.answer)
        if self._verdict_cache is not None and self._verdict_cache[0] == key:
            return self._verdict_cache[1]
        report = self._judge(task, str(rubric))
        self._verdict_cache = (key, report)
        return report

    def _judge(self, task: Task, rubric: str) -> RewardReport:
        field: dict[str, Any] = (
            {"score": {"type": "number", "minimum": 0, "maximum": 1}}
            if self.verdict == "score"
            else {"pass": {"type": "boolean"}}
        )
        schema = {
            "type": "object",
            "properties": {"reason": {"type": "string", "maxLength": 300}, **field},
            "required": ["reason", *field],
            "additionalProperties": False,
        }
        prompt = render_prompt(
            "slmkit.simulators.envs",
            "judge.md",
            task=str(task.get("prompt", "")),
            rubric=rubric,
            transcript=self.transcript(),
        )
        start = time.perf_counter()
        out = self.judge_model.chat(
            [{"role": "user", "content": prompt}], schema=schema, max_tokens=200
        )
        verdict = out.parsed if out.valid and isinstance(out.parsed, dict) else None
        self.log.append(
            {
                "kind": "judge",
                "output": verdict,
                "valid": out.valid,
                "prompt_tokens": out.usage.prompt_tokens,
                "completion_tokens": out.usage.completion_tokens,
                "latency_s": round(time.perf_counter() - start, 4),
                "model": out.model,
            }
        )
        if verdict is None:
            return self._report(0.0, {"judge": 0.0}, reason="the judge produced no valid verdict")
        value = float(verdict["score"]) if self.verdict == "score" else float(bool(verdict["pass"]))
        return self._report(value, {"judge": value}, reason=verdict.get("reason", ""))

    def transcript(self) -> str:
        """The episode as text: the user's turns, the calls with outputs, the answer."""
        lines = []
        task = self.task or {}
        if self._user is not None:
            for turn in self._user.turns:
                who = "User" if turn["role"] == "assistant" else "Agent"
                lines.append(f"{who}: {turn['content']}")
        else:
            lines.append(f"User: {task.get('prompt', '')}")
        for h in self.history:
            args = json.dumps(h["arguments"], ensure_ascii=False)
            result = json.dumps(h["output"], ensure_ascii=False)[:400]
            lines.append(f"Agent called {h['name']}({args}) -> {result}")
        lines.append(
            f"Agent's final answer: {self.answer if self.answer is not None else '(none)'}"
        )
        return "\n".join(lines)

    def episode_info(self) -> dict[str, Any]:
        info = super().episode_info()
        info["simulated"] = True
        info["history"] = [jsonable(h) for h in self.history]
        return info


def _compact(schema: Mapping[str, Any], limit: int) -> str:
    """A schema as short JSON for a prompt (descriptions and titles dropped)."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in ("description", "title")}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    text = json.dumps(strip(schema), ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= limit else text[:limit] + "..."


def _is_error(output: Any) -> bool:
    """Is a simulated output the error form ``{"error": ...}``? (A number or a text that
    mentions "error" is a result: the output schema may be anything.)"""
    return isinstance(output, dict) and set(output) == {"error"}
