"""``ToolAgent``: each step one grammar-constrained JSON action, run through a ToolRegistry.

The model reads the task, the tools (one signature line each) and the history rendered
as ``action JSON`` / ``Observation: result`` turns, and writes one action under
:func:`~slmkit.agents.actions.action_schema`: a call of a registered tool with valid
arguments, several calls when ``parallel_calls`` is on, or the final answer. Tool
errors (including arguments the registry rejects) come back as observations.

Observations are shown to the model as user turns (``prompts/tool_observation.md``:
``Observation: the result is ...``) rather than ``tool`` turns: SmolLM2-class chat
templates have no tool role, and with one the 135M model invents values instead of
copying them from the result. The words "the result is" were chosen by measurement
(``benchmarks/agent_prompts.py``, dev seed): with a bare ``Observation: 8439`` the model
often called the calculator again on its own result (``8439*97``) instead of answering.
The trajectory keeps the OpenAI form (``tool_calls`` and ``tool`` messages) for training.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from slmkit.agents.actions import (
    Action,
    Pins,
    action_schema,
    action_text,
    canonical_call,
    parse_action,
)
from slmkit.agents.argument_checks import Observed, Rejection, check_call
from slmkit.agents.config import AgentConfig, with_options
from slmkit.agents.loop import Approval, LoopAgent
from slmkit.agents.sampling import CallOutcome, Trial
from slmkit.models import Candidate, ChatModel, Message, render_prompt
from slmkit.tools import Tool, ToolCall, ToolRegistry, describe_tools

__all__ = ["ToolAgent"]


class ToolAgent(LoopAgent):
    """A tool-calling agent (see the module docs).

    >>> agent = ToolAgent(load_model("llamacpp:smollm2"), [calculator], max_steps=4)
    >>> result = agent.run("What is 17 * 23?")          # doctest: +SKIP
    >>> result.answer, result.metrics.schema_valid_rate  # doctest: +SKIP
    """

    kind: ClassVar[str] = "tool"

    def __init__(
        self,
        model: ChatModel,
        tools: ToolRegistry | Iterable[Tool | Callable[..., Any]] = (),
        config: AgentConfig | None = None,
        *,
        approve: Approval | None = None,
        **options: Any,
    ) -> None:
        super().__init__(model, tools, with_options(AgentConfig, config, options), approve=approve)

    def _system_prompt(self) -> str:
        # The action shapes are written with bare `...` for values: the 135M model copies
        # quoted placeholders ("<tool name>") verbatim, but fills in `...`.
        cfg = self.config
        lead = '"thought": ..., ' if cfg.thought else ""
        call = '{"name": ..., "arguments": {...}}'
        if cfg.parallel_calls:
            call = f'{{{lead}"tool_calls": [{call}, ...]}}'
        elif lead:
            call = "{" + lead + call[1:]
        return render_prompt(
            "slmkit.agents",
            "tool_agent.md",
            call=call,
            answer=f'{{{lead}"final_answer": ...}}',
            tools=describe_tools(self.registry) or "(none)",
        ).strip()

    def _model_view(self, messages: list[Message]) -> list[Message]:
        view: list[Message] = []
        for m in messages:
            if m["role"] == "assistant" and m.get("tool_calls"):
                calls = [
                    {
                        "name": tc["function"]["name"],
                        "arguments": _args(tc["function"]["arguments"]),
                    }
                    for tc in m["tool_calls"]
                ]
                text = action_text(
                    thought=m.get("content") or None,
                    calls=calls,
                    parallel=self.config.parallel_calls,
                )
                view.append({"role": "assistant", "content": text})
            elif m["role"] == "tool":
                text = render_prompt(
                    "slmkit.agents", "tool_observation.md", observation=m["content"]
                ).strip()
                view.append({"role": "user", "content": text})
            else:
                view.append({"role": m["role"], "content": m.get("content") or ""})
        return view

    def _decode(self, step: int, pins: Pins, quote: str | None) -> dict[str, Any]:
        cfg = self.config
        schema = action_schema(
            self.registry,
            thought=cfg.thought,
            thought_prefix=cfg.first_thought if step == 1 else None,
            max_thought_chars=cfg.max_thought_chars,
            max_answer_chars=cfg.max_answer_chars,
            answer_quote=quote,
            max_arg_chars=cfg.max_arg_chars,
            parallel=cfg.parallel_calls,
            max_calls=cfg.max_parallel_calls,
            pins=pins,
        )
        return {"schema": schema, "max_tokens": cfg.max_tokens}

    def _parse(self, candidate: Candidate) -> Action | None:
        if not candidate.valid or not isinstance(candidate.parsed, dict):
            return None
        return parse_action(candidate.text, candidate.parsed)

    def _run_call(
        self, state: Mapping[str, Any], call: ToolCall
    ) -> tuple[CallOutcome, list[dict[str, Any]]]:
        r = self.registry.execute(call)
        return CallOutcome(ok=r.ok, observation=r.content, duration_s=r.duration_s), []

    def _trial(self, state: Mapping[str, Any], index: int, action: Action) -> Trial:
        isolated = self.approve is None and all(self._may_try(c.name) for c in action.calls)
        if not isolated:
            # A tool that is not declared pure (or a pending human decision) forbids
            # trying it: vote on the action itself, and run only the winner, once, for
            # real, in `execute`.
            ok = all(self.registry.validate(c) is None for c in action.calls)
            return Trial(index, action, ok=ok, key=action.key())
        outcomes = [self._run_call(state, c)[0] for c in action.calls]
        key = "observations:" + "\x1f".join(o.observation for o in outcomes)
        return Trial(index, action, ok=all(o.ok for o in outcomes), key=key, outcomes=outcomes)

    def _action_messages(self, action: Action) -> list[Message]:
        if action.final_answer is not None:
            # The thought stays, as it does before a call: what the student learns from.
            # A blank line follows it (even an empty one) so that training can split the two
            # again (slmkit.training.data.agent_conversation splits at the first one).
            if action.thought is None:
                return [{"role": "assistant", "content": action.final_answer}]
            return [{"role": "assistant", "content": f"{action.thought}\n\n{action.final_answer}"}]
        return [
            {
                "role": "assistant",
                "content": action.thought or "",
                "tool_calls": [c.to_openai() for c in action.calls],
            }
        ]

    def _observation_messages(self, call: ToolCall, outcome: CallOutcome) -> list[Message]:
        return [
            {
                "role": "tool",
                "tool_call_id": call.id,
                "name": call.name,
                "content": outcome.observation,
            }
        ]

    def _rejection(self, state: Mapping[str, Any], action: Action) -> Rejection | None:
        if not action.calls:
            return None
        events = [e for e in state.get("events", ()) if e.get("kind") == "observation"]
        if self.config.no_repeat:
            # A failed call of a pure tool fails the same way again (a side-effecting
            # tool's error may be transient: that retry stays allowed).
            done = {
                canonical_call(e["action"]["name"], e["action"]["arguments"])
                for e in events
                if e.get("ok") or self._may_try(e["action"]["name"])
            }
            if all(canonical_call(c.name, c.arguments) in done for c in action.calls):
                return Rejection("repeat", Pins(exclude=frozenset(c.name for c in action.calls)))
        if self.config.argument_checks:
            observed = [
                Observed(e["action"]["name"], str(e.get("observation") or ""))
                for e in events
                if e.get("ok")
            ]
            task = str(state.get("task") or "")
            for c in action.calls:
                tool = self.registry[c.name]
                rejection = check_call(c, tool, task, observed, pure=self._may_try(c.name))
                if rejection is not None:
                    return rejection
        return None


def _args(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except json.JSONDecodeError:
            return arguments
    return arguments
