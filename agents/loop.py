"""The act -> execute loop shared by :class:`ToolAgent` and :class:`CodeAgent`.

::

    START -> act --(tool calls)--> execute --(more calls)--> execute
              |                       |
              |                       +--(step done)--> act
              +--(final answer / max_steps)--> END  <--(final answer / max_steps)--+

``act`` asks the model (through the :class:`~slmkit.agents.Router`) for one action under
the agent's grammar, optionally samples ``k`` candidates and votes
(:mod:`slmkit.agents.sampling`), and re-decodes a rejected action under
:class:`~slmkit.agents.actions.Pins`: one that only repeats an earlier successful call,
or whose arguments the task never gave (:mod:`slmkit.agents.argument_checks`); on the
last step it may only answer. ``execute`` runs *one* call per visit, so a crash between
two calls of a parallel action never repeats the first one on resume; a call needing
approval stops the graph with a LangGraph ``interrupt`` before anything runs. The
subclasses say how actions are decoded, parsed, run in isolation and shown to the model.
"""

from __future__ import annotations

import operator
import time
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, ClassVar, Literal

from slmkit.agents.actions import Action, Pins
from slmkit.agents.argument_checks import Rejection
from slmkit.agents.config import AgentConfig
from slmkit.agents.errors import AgentError
from slmkit.agents.events import ModelCall, StepEvent
from slmkit.agents.graph import BaseState, GraphAgent, current_session
from slmkit.agents.grounding import contradiction
from slmkit.agents.router import FailureKind, Routed, Signals
from slmkit.agents.sampling import CallOutcome, Trial, vote
from slmkit.models import Candidate, ChatModel, Message
from slmkit.tools import Tool, ToolCall, ToolRegistry

__all__ = ["Approval", "LoopAgent", "LoopState"]

_MAX_REDECODES = 4
"""Re-decodes of one step after rejections (pins only grow, so this is a backstop)."""

_MAX_QUOTE = 80
"""Longest observation a retried final answer is made to quote verbatim; a longer one is
a text to answer from, not an answer."""

Approval = Callable[[ToolCall], bool | str] | Literal["interrupt"]
"""``approve=``: a function deciding each call (True: run it; False or a reason: don't),
or ``"interrupt"`` to pause the run until the caller resumes with the decision."""


class LoopState(BaseState, total=False):
    """Run state of a loop agent (JSON-like values only, for the checkpointer)."""

    pending: dict[str, Any] | None
    failures: int
    failure: str | None
    failure_kind: str | None
    escalated: bool
    applied: Annotated[list[dict[str, Any]], operator.add]


@dataclass
class _Decision:
    """What ``act`` settled on: the action (None if nothing valid came out) and its story."""

    action: Action | None
    routed: list[Routed]
    error: str | None = None
    trial: Trial | None = None
    candidates: list[dict[str, Any]] = field(default_factory=list)
    applied: list[dict[str, Any]] = field(default_factory=list)
    trial_s: float = 0.0


class LoopAgent(GraphAgent):
    """Base of the step-loop agents; see the module docs for the graph."""

    failure_kind: ClassVar[FailureKind] = "tool"
    """Which verifier a failing call counts as, for the router."""

    def __init__(
        self,
        model: ChatModel,
        tools: ToolRegistry | Iterable[Tool | Callable[..., Any]],
        config: AgentConfig,
        *,
        approve: Approval | None = None,
    ) -> None:
        super().__init__(
            model,
            checkpoint=config.checkpoint,
            checkpoint_path=config.checkpoint_path,
            prices=config.prices,
        )
        self.config = config
        self.registry = tools if isinstance(tools, ToolRegistry) else ToolRegistry(tools)
        unknown = set(config.side_effect_tools) - set(self.registry.names)
        if unknown:
            raise AgentError(
                f"side_effect_tools names unknown tools: {sorted(unknown)}",
                hint=f"registered tools: {', '.join(self.registry.names) or '(none)'}",
            )
        if approve is not None and approve != "interrupt" and not callable(approve):
            raise AgentError("approve must be a function or 'interrupt'", hint="see Approval")
        if approve == "interrupt" and config.checkpoint == "none":
            raise AgentError(
                "approve='interrupt' needs a checkpointer to pause and resume the run",
                hint="use checkpoint='sqlite' or 'memory'",
            )
        self.approve = approve

    # -- what the subclasses provide

    @abstractmethod
    def _system_prompt(self) -> str:
        """The system message of a run."""

    @abstractmethod
    def _model_view(self, messages: list[Message]) -> list[Message]:
        """The conversation the model reads, from the run's (OpenAI-format) messages."""

    @abstractmethod
    def _decode(self, step: int, pins: Pins, quote: str | None) -> dict[str, Any]:
        """``chat`` keyword arguments of one action: ``schema=`` or ``grammar=``, budget.

        ``pins``: what a re-decode of the step must hold fixed (where the action format
        can say so).

        ``quote``: after an answer that contradicted the observations, the last
        observation, which a final answer decoded now must quote (when the action format
        can say so)."""

    @abstractmethod
    def _parse(self, candidate: Candidate) -> Action | None:
        """The action of a model output; None when it did not validate."""

    @abstractmethod
    def _run_call(
        self, state: Mapping[str, Any], call: ToolCall
    ) -> tuple[CallOutcome, list[dict[str, Any]]]:
        """Run a call for real; also return records to replay it after a restart."""

    @abstractmethod
    def _trial(self, state: Mapping[str, Any], index: int, action: Action) -> Trial:
        """Try a (non-final) candidate action where it cannot change the real state."""

    @abstractmethod
    def _action_messages(self, action: Action) -> list[Message]:
        """The trajectory message(s) of a chosen action."""

    @abstractmethod
    def _observation_messages(self, call: ToolCall, outcome: CallOutcome) -> list[Message]:
        """The trajectory message(s) of a call's outcome."""

    def _may_try(self, name: str) -> bool:
        """Whether tool ``name`` may run for a candidate that can still lose the vote:
        only a tool declared pure (``@tool(pure=True)``) and not in ``side_effect_tools``."""
        return (
            name in self.registry
            and self.registry[name].pure
            and name not in self.config.side_effect_tools
        )

    def _adopt(self, trial: Trial) -> list[dict[str, Any]]:
        """Make a winning trial's isolated effects real; return its replay records."""
        return []

    def _discard(self, trial: Trial) -> None:
        """Release what a losing trial holds."""

    def _rejection(self, state: Mapping[str, Any], action: Action) -> Rejection | None:
        """Why ``action`` is decoded again, and under which pins; None to take it."""
        return None

    def _invalid_messages(self, text: str, error: str) -> list[Message]:
        return [
            {"role": "assistant", "content": text},
            {
                "role": "user",
                "content": f"Error: that was not a complete action ({error}). "
                "Reply with one complete action.",
            },
        ]

    # -- graph

    def _state_schema(self) -> type[Any]:
        return LoopState

    def _recursion_limit(self) -> int:
        calls = self.config.max_parallel_calls if self.config.parallel_calls else 1
        return self.config.max_steps * (1 + calls) + 10

    def _build(self, graph: Any) -> None:
        from langgraph.graph import END, START

        graph.add_node("act", self._act_node)
        graph.add_node("execute", self._execute_node)
        graph.add_edge(START, "act")
        # An invalid action is answered with an error message and the model acts again.
        graph.add_conditional_edges("act", self._route, ["act", "execute", END])
        graph.add_conditional_edges("execute", self._route, ["act", "execute", END])

    @staticmethod
    def _route(state: Mapping[str, Any]) -> str:
        from langgraph.graph import END

        if state.get("stopped"):
            return str(END)
        return "execute" if state.get("pending") else "act"

    def _initial_state(self, task: str) -> dict[str, Any]:
        return {
            "task": task,
            "step": 0,
            "messages": [
                {"role": "system", "content": self._system_prompt()},
                {"role": "user", "content": task},
            ],
            "events": [],
            "answer": None,
            "stopped": None,
            "pending": None,
            "failures": 0,
            "failure": None,
            "failure_kind": None,
            "escalated": False,
            "applied": [],
        }

    # -- act

    def _act_node(self, state: Mapping[str, Any]) -> dict[str, Any]:
        t0 = time.time()
        step = int(state.get("step", 0)) + 1
        signals = Signals(
            failures=int(state.get("failures", 0)),
            failure=state.get("failure"),
            failure_kind=state.get("failure_kind"),
            escalated=bool(state.get("escalated", False)),
        )
        d = self._decide(state, step, signals)
        last = d.routed[-1]
        event = StepEvent(
            kind="action",
            step=step,
            t0=t0,
            session=current_session(),
            model=last.model,
            escalation=next((r.escalation for r in d.routed if r.escalation), None),
            action=d.action.to_dict() if d.action else None,
            text=d.action.text if d.action else last.completion.text,
            valid=d.action is not None,
            calls=[ModelCall.from_completion(c) for r in d.routed for c in r.completions],
            candidates=d.candidates,
            tool_s=d.trial_s,
        )
        update: dict[str, Any] = {"step": step, "applied": d.applied}
        if last.tier == "large" and self.router.config.scope == "task":
            update["escalated"] = True
        if d.action is None:
            error = d.error or "invalid output"
            update["messages"] = self._invalid_messages(last.completion.text, error)
            update.update(self._step_end(step, f"invalid action: {error}", "invalid", state))
        elif d.action.final_answer is not None:
            event.flag = self._answer_flag(state, d.action)
            if event.flag is None or not self._may_retry(state, step, event.flag):
                update["messages"] = self._action_messages(d.action)
                update.update(answer=d.action.final_answer, stopped="final_answer")
            else:  # the model is told why, and acts again
                update["messages"] = [
                    {"role": "assistant", "content": d.action.text},
                    {"role": "user", "content": f"Error: {event.flag}. Reply with one action."},
                ]
                update.update(self._step_end(step, event.flag, "grounding", state))
        else:
            update["messages"] = self._action_messages(d.action)
            outcomes = d.trial.outcomes if d.trial is not None else None
            update["pending"] = {
                "step": step,
                "action": d.action.to_dict(),
                "next": 0,
                "outcomes": None if outcomes is None else [o.to_dict() for o in outcomes],
                "failure": None,
            }
        event.t1 = time.time()
        update["events"] = [event.model_dump(mode="json")]
        return update

    def _answer_flag(self, state: Mapping[str, Any], action: Action) -> str | None:
        """What is wrong with a final answer: empty, given before any tool was used, run
        on (a small model repeating itself: "The result is 3417. The result is 3417. The
        result is 3417."; closed by the loop guard, or at its length bound), or
        contradicting the observations."""
        answer = action.final_answer or ""
        if not answer.strip():
            return "the final answer is empty"
        if self.config.grounding == "off":
            return None
        observations = [e for e in state.get("events", ()) if e.get("kind") == "observation"]
        if not observations and len(self.registry):
            return "the answer comes before any tool was used"
        if len(answer) >= self.config.max_answer_chars:
            return (
                f"the answer ran on to its length bound ({self.config.max_answer_chars} characters)"
            )
        seen = [str(e.get("observation") or "") for e in observations if e.get("ok")]
        wrong = contradiction(answer, seen, str(state.get("task") or ""))
        if wrong is None and action.meta.get("finish_reason") == "loop":
            return "the answer ran on, repeating itself"
        return wrong

    def _quote(self, state: Mapping[str, Any], signals: Signals) -> str | None:
        """The last observation, to be quoted by a retried answer (when short enough)."""
        if signals.failure_kind != "grounding":
            return None
        seen = [e for e in state.get("events", ()) if e.get("kind") == "observation"]
        last = str(seen[-1].get("observation") or "").strip() if seen else ""
        return last if 0 < len(last) <= _MAX_QUOTE else None

    def _may_retry(self, state: Mapping[str, Any], step: int, flag: str) -> bool:
        """An empty answer is never accepted; a flagged one is sent back once, unless the
        run has no step left to answer again in (then it stands, flagged)."""
        if flag == "the final answer is empty":
            return True
        if self.config.grounding != "retry" or step >= self.config.max_steps:
            return False
        return not any(e.get("flag") for e in state.get("events", ()) if e.get("kind") == "action")

    def _ask(
        self, state: Mapping[str, Any], step: int, signals: Signals, pins: Pins
    ) -> tuple[Routed, list[tuple[Candidate, Action | None]]]:
        cfg = self.config
        sampled = cfg.sample_k > 1
        if cfg.answer_on_last_step and step >= cfg.max_steps > 1:
            # A call now could never be answered from: the run stops after this step.
            pins = pins | Pins(exclude=frozenset(self.registry.names))
        routed = self.router.complete(
            self._model_view(list(state.get("messages", []))),
            signals,
            n=cfg.sample_k,
            temperature=cfg.sample_temperature if sampled else cfg.temperature,
            seed=None if cfg.seed is None else cfg.seed + step,
            max_repeats=cfg.max_repeats,
            **self._decode(step, pins, self._quote(state, signals)),
        )
        return routed, [(c, _looped(c, self._parse(c))) for c in routed.completion.candidates]

    def _decide(self, state: Mapping[str, Any], step: int, signals: Signals) -> _Decision:
        pins = Pins()
        routed, parsed = self._ask(state, step, signals, pins)
        d = _Decision(action=None, routed=[routed])
        while True:
            valid = [a for _, a in parsed if a is not None]
            rejections = [self._rejection(state, a) for a in valid]
            fresh = [a for a, r in zip(valid, rejections, strict=True) if r is None]
            more = pins
            for r in rejections:
                more = more | r.pins if r is not None else more
            if fresh or not valid or more == pins or len(d.routed) > _MAX_REDECODES:
                break
            # Every candidate was rejected: decode again under the pins, so the model must
            # take another action. Pins only grow and the final answer is never pinned, so
            # this ends.
            d.candidates += [
                {"text": a.text, "rejected": r.reason}
                for a, r in zip(valid, rejections, strict=True)
                if r is not None
            ]
            pins = more
            routed, parsed = self._ask(state, step, signals, pins)
            d.routed.append(routed)
        fresh = fresh or valid  # a rejected action nothing more can be pinned for stands
        if not fresh:
            d.error = next((c.error for c, _ in parsed if c.error), None)
            return d
        if self.config.sample_k == 1:
            d.action = fresh[0]
            return d
        trials = [
            Trial(i, a, ok=True, key=a.key(), outcomes=[])
            if a.final_answer is not None
            else self._trial(state, i, a)
            for i, a in enumerate(fresh)
        ]
        d.trial_s = sum(o.duration_s for t in trials for o in t.outcomes or ())
        choice = vote(trials)
        assert choice is not None
        for t in trials:
            if t is not choice.winner:
                self._discard(t)
        d.action, d.trial = choice.winner.action, choice.winner
        d.applied = self._adopt(choice.winner)
        d.candidates += [
            {**t.summary(), "votes": choice.counts.get(t.key, 0), "chosen": t is choice.winner}
            for t in trials
        ]
        return d

    # -- execute

    def _execute_node(self, state: Mapping[str, Any]) -> dict[str, Any]:
        t0 = time.time()
        pending = dict(state["pending"])
        step, i = int(pending["step"]), int(pending["next"])
        call = Action.from_dict(pending["action"]).calls[i]
        n_calls = len(pending["action"]["calls"])
        rejection = self._approval(call, step)
        applied: list[dict[str, Any]] = []
        tool_s = 0.0  # an adopted trial's outcome was timed in `act`
        if rejection is not None:
            outcome = CallOutcome(
                ok=False, observation=f"Error: the call was not approved: {rejection}"
            )
        elif pending["outcomes"] is not None:
            outcome = CallOutcome.from_dict(pending["outcomes"][i])
        else:
            outcome, applied = self._run_call(state, call)
            tool_s = outcome.duration_s
        if not outcome.ok:
            pending["failure"] = outcome.observation
        event = StepEvent(
            kind="observation",
            step=step,
            t0=t0,
            session=current_session(),
            action={"id": call.id, "name": call.name, "arguments": call.arguments},
            observation=outcome.observation,
            ok=outcome.ok,
            tool_s=tool_s,
            answer=outcome.final_answer,
        )
        update: dict[str, Any] = {
            "messages": self._observation_messages(call, outcome),
            "applied": applied,
        }
        if outcome.final_answer is not None:
            update.update(pending=None, answer=outcome.final_answer, stopped="final_answer")
        elif i + 1 < n_calls:
            update["pending"] = {**pending, "next": i + 1}
        else:
            update["pending"] = None
            update.update(self._step_end(step, pending["failure"], self.failure_kind, state))
        event.t1 = time.time()
        update["events"] = [event.model_dump(mode="json")]
        return update

    def _step_end(
        self, step: int, failure: str | None, kind: FailureKind, state: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Failure bookkeeping for the router, and the max_steps stop."""
        out: dict[str, Any] = (
            {"failures": 0, "failure": None, "failure_kind": None}
            if failure is None
            else {
                "failures": int(state.get("failures", 0)) + 1,
                "failure": failure,
                "failure_kind": kind,
            }
        )
        if step >= self.config.max_steps:
            out["stopped"] = "max_steps"
        return out

    def _approval(self, call: ToolCall, step: int) -> str | None:
        """None when ``call`` may run, else why not (asking the human if configured)."""
        if self.approve is None:
            return None
        if self.approve == "interrupt":
            from langgraph.types import interrupt

            request = {"step": step, "call": {"name": call.name, "arguments": call.arguments}}
            decision = interrupt(request)
        else:
            decision = self.approve(call)
        if decision is True:
            return None
        return decision if isinstance(decision, str) and decision else "rejected by the user"

    # -- results

    def _tool_schemas(self) -> list[dict[str, Any]]:
        return self.registry.openai_tools()

    def _meta(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {"first_thought": self.config.first_thought, "sample_k": self.config.sample_k}


def _looped(candidate: Candidate, action: Action | None) -> Action | None:
    """``action``, marked when the loop guard closed its output (``finish_reason`` "loop")."""
    if action is None or candidate.finish_reason != "loop":
        return action
    return replace(action, meta={**action.meta, "finish_reason": "loop"})
