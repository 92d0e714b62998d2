"""``CodeAgent``: actions are Python code, run in one persistent sandbox per run.

Each step the model writes ``Thought: ...`` and a fenced ``python`` block (the student
format of Agent Distillation, after smolagents' CodeAgent). A Lark grammar holds the
envelope, so every output parses into a thought and a code body; the code itself is free
text and may fail, which the agent observes like any tool error. The code runs in a
:class:`~slmkit.tools.PythonSandbox` whose state persists across steps; registered tools
are plain functions inside it (their calls cross to the host, are validated by the
registry and run there), and ``final_answer(x)`` ends the run.

Durability: a sandbox is a process and does not survive a crash. Every cell that ran is
kept in the checkpointed state with a *tape* of the host-tool results it received; a run
resumed in a new process rebuilds the sandbox by replaying the cells against their tapes,
so state is restored without calling any host tool a second time.

Self-consistency: each sampled candidate runs in a ``sandbox.fork()``; the winner's fork
becomes the run's sandbox (its effects happened exactly once), the others are dropped.
A fork isolates the sandbox, not the host: a candidate whose code calls a host tool that
is not declared pure (``@tool(pure=True)``) is stopped at that call and voted on by its
code instead, and only the winner runs, once, for real.
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from slmkit.agents.actions import Action, Pins
from slmkit.agents.config import CodeAgentConfig, with_options
from slmkit.agents.errors import AgentError
from slmkit.agents.graph import current_thread
from slmkit.agents.loop import Approval, LoopAgent
from slmkit.agents.router import FailureKind
from slmkit.agents.sampling import CallOutcome, Trial
from slmkit.models import Candidate, ChatModel, Message, render_prompt
from slmkit.tools import PythonSandbox, SandboxResult, Tool, ToolCall, ToolRegistry, describe_tools

__all__ = ["CodeAgent", "action_budget", "code_grammar", "parse_code_action"]

_RESERVED = frozenset({"final_answer", "python"})
_ACTION_RE = re.compile(r"^Thought: (?P<thought>[^\n]*)\n```python\n(?P<code>.*)\n```\s*$", re.S)


def code_grammar(
    *, first_thought: str | None = None, max_thought_chars: int = 200, max_code_chars: int = 1200
) -> str:
    """The llguidance Lark grammar of one action: a thought line, then a python block.

    The code is a lazy match up to the first line that closes the fence, so any text can
    go inside and the output ends exactly at the fence; its length is bounded, so a
    rambling model is made to close the block instead of running out of tokens with an
    unfinished action. ``first_thought`` pins the start of the thought (the model
    continues it).
    """
    prefix = ""
    if first_thought:
        literal = json.dumps(" ".join(first_thought.replace("`", "'").split()), ensure_ascii=False)
        prefix = f" {literal}"
    low = 0 if first_thought else 1
    return "\n".join(
        [
            f'start: "Thought: "{prefix} THOUGHT "\\n```python\\n" code',
            f"THOUGHT: /[^\\n`]{{{low},{max_thought_chars}}}/",
            f"code[lazy]: /(.|\\n){{0,{max_code_chars}}}\\n```/",
        ]
    )


def action_budget(max_thought_chars: int, max_code_chars: int) -> int:
    """Tokens that always suffice for an action of :func:`code_grammar` (a token is at
    least one character), so ``max_tokens`` never cuts an action short."""
    return max_thought_chars + max_code_chars + 32


def parse_code_action(text: str) -> Action | None:
    """The thought and code of an output of :func:`code_grammar`; None if it is cut off."""
    m = _ACTION_RE.match(text)
    if m is None:
        return None
    call = ToolCall(name="python", arguments={"code": m.group("code")})
    return Action(text=text, thought=m.group("thought").strip(), calls=(call,))


class _Box:
    """A run's sandbox, its host-tool wrappers and the tape of their results.

    ``applied`` counts the cells whose effects the sandbox holds; it is -1 while a cell
    runs, so a cell cut off by an exception marks the sandbox as out of step with the
    checkpointed state, and the next use rebuilds it.
    """

    def __init__(self, agent: CodeAgent) -> None:
        self.registry = agent.registry
        self.may_try = agent._may_try
        self.replay: deque[dict[str, Any]] = deque()
        self.recording: list[dict[str, Any]] = []
        self.trying = False
        """True while a candidate runs in a fork: calls of impure host tools are refused."""
        self.deferred: list[str] = []
        """The impure host tools a candidate tried to call while ``trying``."""
        tools = {
            _py_name(t.name): self._wrap(t)
            for t in agent.registry
            if t.name not in _RESERVED and _py_name(t.name).isidentifier()
        }
        cfg = agent.config
        self.sandbox = PythonSandbox(
            timeout_s=cfg.sandbox_timeout_s, memory_mb=cfg.sandbox_memory_mb, tools=tools
        )
        self.applied = 0

    def _wrap(self, tool: Tool) -> Callable[..., Any]:
        names = list(tool.parameters.get("properties", {}))

        def call(*args: Any, **kwargs: Any) -> Any:
            if len(args) > len(names):
                raise TypeError(f"{tool.name}() takes at most {len(names)} arguments")
            arguments = {**dict(zip(names, args, strict=False)), **kwargs}
            head = self.replay[0] if self.replay else None
            if head is not None and head["name"] == tool.name and head["arguments"] == arguments:
                record = self.replay.popleft()
            elif self.trying and not self.may_try(tool.name):
                self.deferred.append(tool.name)
                raise RuntimeError(f"{tool.name} runs only for the chosen candidate")
            else:
                r = self.registry.execute(ToolCall(name=tool.name, arguments=arguments))
                record = {
                    "name": tool.name,
                    "arguments": arguments,
                    "ok": r.ok,
                    "value": _jsonable(r.output, r.content) if r.ok else None,
                    "error": r.error,
                }
            self.recording.append(record)
            if not record["ok"]:
                raise RuntimeError(record["error"])
            return record["value"]

        call.__doc__ = tool.description
        return call

    def run(
        self, code: str, sandbox: PythonSandbox | None = None
    ) -> tuple[SandboxResult, list[dict[str, Any]]]:
        """Run ``code`` (in ``sandbox``, default the run's own) and return its tape."""
        self.recording = []
        result = (sandbox or self.sandbox).run(code)
        return result, self.recording

    def replay_cells(self, cells: list[dict[str, Any]]) -> None:
        """Bring a fresh sandbox to the state after ``cells``, host tools served from tape."""
        for cell in cells:
            self.replay = deque(cell.get("tape", ()))
            self.run(cell["code"])
        self.replay.clear()
        self.applied = len(cells)

    def close(self) -> None:
        self.sandbox.close()


class CodeAgent(LoopAgent):
    """A code-action agent (see the module docs).

    >>> agent = CodeAgent(load_model("llamacpp:smollm2"), [calculator])  # doctest: +SKIP
    >>> agent.run("What is the sum of the squares of 1..10?").answer     # doctest: +SKIP
    """

    kind: ClassVar[str] = "code"
    failure_kind: ClassVar[FailureKind] = "code"
    config: CodeAgentConfig

    def __init__(
        self,
        model: ChatModel,
        tools: ToolRegistry | Iterable[Tool | Callable[..., Any]] = (),
        config: CodeAgentConfig | None = None,
        *,
        approve: Approval | None = None,
        **options: Any,
    ) -> None:
        cfg = with_options(CodeAgentConfig, config, options)
        super().__init__(model, tools, cfg, approve=approve)
        if not self.router.supports_grammar:
            raise AgentError(
                f"{model!r} cannot enforce a Lark grammar, which CodeAgent actions need",
                hint="use a llamacpp, transformers or vllm model (or an openai: spec with "
                "#dialect=vllm), or a ToolAgent with the python tool",
            )
        self._boxes: dict[str, _Box] = {}

    # -- prompting and decoding

    def _system_prompt(self) -> str:
        callable_tools = [t for t in self.registry if t.name not in _RESERVED]
        tools = describe_tools(callable_tools)
        return render_prompt("slmkit.agents", "code_agent.md", tools=tools).strip()

    def _model_view(self, messages: list[Message]) -> list[Message]:
        return [{"role": m["role"], "content": m.get("content") or ""} for m in messages]

    def _decode(self, step: int, pins: Pins, quote: str | None) -> dict[str, Any]:
        # A CodeAgent's answer is the value code passes to final_answer(): the grammar of
        # the action cannot pin it, so ``quote`` does not apply.
        cfg = self.config
        grammar = code_grammar(
            first_thought=cfg.first_thought if step == 1 else None,
            max_thought_chars=cfg.max_thought_chars,
            max_code_chars=cfg.max_code_chars,
        )
        budget = action_budget(cfg.max_thought_chars, cfg.max_code_chars)
        return {"grammar": grammar, "max_tokens": max(cfg.max_tokens, budget)}

    def _parse(self, candidate: Candidate) -> Action | None:
        return parse_code_action(candidate.text) if candidate.valid else None

    # -- running code

    def _box(self, state: Mapping[str, Any]) -> _Box:
        """The thread's sandbox, rebuilt from the checkpointed cells when out of step."""
        tid = current_thread()
        cells = list(state.get("applied", ()))
        box = self._boxes.get(tid)
        if box is not None and box.applied == len(cells) and box.sandbox.alive:
            return box
        if box is not None:
            box.close()
        box = self._boxes[tid] = _Box(self)
        box.replay_cells(cells)
        return box

    def _outcome(self, r: SandboxResult, seconds: float) -> CallOutcome:
        parts = []
        if r.stdout.strip():
            parts.append(r.stdout.rstrip())
        elif r.value is not None:
            parts.append(r.value)
        if r.error:
            parts.append("Error: " + _user_traceback(r.error))
        answer, ok = None, r.ok
        if r.finished:
            answer = (
                r.final_answer if isinstance(r.final_answer, str) else json.dumps(r.final_answer)
            )
            if not answer.strip():  # an empty answer is no answer: the run goes on
                answer, ok = None, False
                parts.append("Error: final_answer() was given an empty answer")
        text = "\n".join(parts) or "(no output)"
        limit = self.config.max_observation_chars
        if len(text) > limit:
            text = text[: limit // 2] + "\n...\n" + text[-limit // 2 :]
        return CallOutcome(ok=ok, observation=text, duration_s=seconds, final_answer=answer)

    def _run_call(
        self, state: Mapping[str, Any], call: ToolCall
    ) -> tuple[CallOutcome, list[dict[str, Any]]]:
        t0 = time.perf_counter()  # sandbox start-up or rebuild is tool time too
        box = self._box(state)
        done = box.applied
        box.applied = -1
        result, tape = box.run(str(call.arguments["code"]))
        box.applied = done + 1
        outcome = self._outcome(result, time.perf_counter() - t0)
        return outcome, [{"code": call.arguments["code"], "tape": tape}]

    def _trial(self, state: Mapping[str, Any], index: int, action: Action) -> Trial:
        if self.approve is not None:
            return Trial(index, action, ok=True, key=action.key())
        t0 = time.perf_counter()
        box = self._box(state)
        fork = box.sandbox.fork()
        code = str(action.calls[0].arguments["code"])
        box.trying, box.deferred = True, []
        try:
            result, tape = box.run(code, fork)
        finally:
            box.trying = False
        if box.deferred:
            # It would change the host: vote on the code itself; if it wins, `execute`
            # runs it once in the real sandbox.
            fork.close()
            return Trial(index, action, ok=True, key=action.key(), notes={"deferred": box.deferred})
        outcome = self._outcome(result, time.perf_counter() - t0)
        key = f"{outcome.observation}\x1f{outcome.final_answer}"
        return Trial(
            index,
            action,
            ok=outcome.ok,
            key=key,
            outcomes=[outcome],
            handle=(box, fork, {"code": code, "tape": tape}),
        )

    def _adopt(self, trial: Trial) -> list[dict[str, Any]]:
        if trial.handle is None:
            return []
        box, fork, cell = trial.handle
        box.sandbox.close()
        box.sandbox = fork
        box.applied += 1
        return [cell]

    def _discard(self, trial: Trial) -> None:
        if trial.handle is not None:
            trial.handle[1].close()

    def _finish(self, thread_id: str) -> None:
        box = self._boxes.pop(thread_id, None)
        if box is not None:
            box.close()
        super()._finish(thread_id)

    def close(self) -> None:
        for box in self._boxes.values():
            box.close()
        self._boxes.clear()
        super().close()

    # -- trajectory

    def _action_messages(self, action: Action) -> list[Message]:
        return [{"role": "assistant", "content": action.text}]

    def _observation_messages(self, call: ToolCall, outcome: CallOutcome) -> list[Message]:
        return [{"role": "user", "content": f"Observation:\n{outcome.observation}"}]


def _py_name(name: str) -> str:
    return re.sub(r"\W", "_", name)


def _user_traceback(error: str) -> str:
    """The part of a traceback the model can act on: from its last frame in user code.

    Frames of the sandbox's own machinery (a host-tool call goes through it) are noise
    to the model; the message at the end stays.
    """
    lines = error.strip().splitlines()
    start = max(
        (i for i, line in enumerate(lines) if line.lstrip().startswith('File "<cell')),
        default=max(len(lines) - 4, 0),
    )
    kept = lines[start:]
    if len(kept) > 8:
        kept = kept[:2] + kept[-4:]
    return "\n".join(kept)


def _jsonable(value: Any, fallback: str) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return fallback
    return value
