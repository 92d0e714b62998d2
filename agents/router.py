"""``Router``: SLM by default, LLM as fallback, decided per step on content signals.

Most steps of an agent are easy and a small model takes them at a fraction of the cost;
the hard ones show themselves: the previous action failed a verifier (a tool error, a
code error, an unverified citation), several steps in a row failed, or the small model
is unsure (low geometric-mean token probability, where the backend reports log-probs).
The router then hands the step, or with ``scope="task"`` the rest of the task, to the
large model, and says why; agents record the decision in each step event and in the
trajectory's ``meta["routing"]``.

A ``Router`` is itself a :class:`~slmkit.models.ChatModel`, so it can stand anywhere one
can (a cited-answer function, a simulator); outside an agent only the confidence and
validity signals apply, as there is no step history.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from slmkit.agents.config import RouterConfig, with_options
from slmkit.agents.errors import AgentError
from slmkit.models import ChatModel, Completion, Message, SchemaLike, WrappedModel

__all__ = ["FailureKind", "Routed", "Router", "Signals"]

FailureKind = Literal["invalid", "tool", "code", "citation", "grounding"]
_VERIFIER_FAILURES: frozenset[str] = frozenset({"tool", "code", "citation", "grounding"})


@dataclass(frozen=True)
class Signals:
    """What the agent knows about the run so far, for the routing decision.

    ``failures`` counts consecutive failed steps; ``failure`` says why the last step
    failed (None when it succeeded) and ``failure_kind`` which check failed;
    ``escalated`` is true once a ``scope="task"`` router has moved the task to the large
    model.
    """

    failures: int = 0
    failure: str | None = None
    failure_kind: FailureKind | None = None
    escalated: bool = False


@dataclass(frozen=True)
class Routed:
    """The completion an agent uses, who produced it and why, and every call paid for."""

    completion: Completion
    tier: Literal["small", "large"]
    escalation: str | None
    completions: tuple[Completion, ...]

    @property
    def model(self) -> str:
        return self.completion.model


class Router(WrappedModel):
    """Route between a ``small`` and an optional ``large`` chat model.

    Without ``large`` it is a transparent wrapper, which lets agents treat every model
    the same way. It does not own the models: :meth:`close` leaves them open.
    """

    def __init__(
        self,
        small: ChatModel,
        large: ChatModel | None = None,
        config: RouterConfig | None = None,
        **options: Any,
    ) -> None:
        name = small.name if large is None else f"{small.name}|{large.name}"
        super().__init__(small, name=name, backend="router")
        self.large = large
        self.config = with_options(RouterConfig, config, options)
        wants_logprobs = self.config.min_confidence is not None and large is not None
        if wants_logprobs and not small.supports_logprobs:
            raise AgentError(
                f"min_confidence needs token log-probabilities, which {small!r} does not report",
                hint="use a llamacpp, transformers, vllm or openai small model, "
                "or leave min_confidence unset",
            )
        self.supports_grammar = small.supports_grammar and (large is None or large.supports_grammar)
        self.last: list[Routed] = []
        """The routing of the conversations of the last ``chat``/``chat_batch`` call."""
        self._log: list[Routed] | None = None
        self._signals: Signals | None = None

    @property
    def small(self) -> ChatModel:
        """The model that takes every step no signal moves to ``large``."""
        return self.inner

    @contextmanager
    def recording(self) -> Iterator[list[Routed]]:
        """Collect every routed call made inside the block (for code that calls ``chat``
        itself, such as a cited-answer function, so its tokens and latency still count)."""
        outer, self._log = self._log, []
        try:
            yield self._log
        finally:
            self._log = outer

    @contextmanager
    def routing(self, signals: Signals) -> Iterator[str | None]:
        """Route the plain ``chat`` calls made inside the block with ``signals``.

        For code that calls the router as a ``ChatModel`` (it cannot pass signals); yields
        the escalation reason, or None when the small model keeps the step.
        """
        outer, self._signals = self._signals, signals
        try:
            yield self.escalation_reason(signals)
        finally:
            self._signals = outer

    def escalation_reason(self, signals: Signals) -> str | None:
        """Why the next step should go to the large model, from the run's history."""
        if self.large is None:
            return None
        cfg = self.config
        if signals.escalated and cfg.scope == "task":
            return "task escalated earlier"
        if (
            cfg.on_verifier_failure
            and signals.failure is not None
            and signals.failure_kind in _VERIFIER_FAILURES
        ):
            return f"{signals.failure_kind} check failed: {_clip(signals.failure)}"
        if signals.failures >= cfg.max_failures:
            return f"{signals.failures} failed steps in a row"
        return None

    def complete(
        self,
        messages: Sequence[Message],
        signals: Signals | None = None,
        **chat_kwargs: Any,
    ) -> Routed:
        """One routed ``chat``: the small model unless a signal says otherwise."""
        routed = self._complete(messages, signals or self._signals or Signals(), chat_kwargs)
        if self._log is not None:
            self._log.append(routed)
        return routed

    def _complete(
        self, messages: Sequence[Message], signals: Signals, chat_kwargs: dict[str, Any]
    ) -> Routed:
        reason = self.escalation_reason(signals)
        if reason is not None:
            assert self.large is not None
            out = self.large.chat(messages, **chat_kwargs)
            return Routed(out, "large", reason, (out,))
        want_conf = self.config.min_confidence is not None and self.large is not None
        kwargs = dict(chat_kwargs)
        if want_conf and self.small.supports_logprobs:
            kwargs["logprobs"] = True
        first = self.small.chat(messages, **kwargs)
        reason = self._after_small(first)
        if reason is None or self.large is None:
            return Routed(first, "small", None, (first,))
        second = self.large.chat(messages, **chat_kwargs)
        return Routed(second, "large", reason, (first, second))

    def _after_small(self, out: Completion) -> str | None:
        if self.large is None:
            return None
        if not any(c.valid for c in out.candidates):
            return f"invalid output: {_clip(out.error or 'did not validate')}"
        threshold = self.config.min_confidence
        conf = out.first.confidence
        if threshold is not None and conf is not None and conf < threshold:
            return f"low confidence {conf:.3f} < {threshold:g}"
        return None

    def chat_batch(
        self,
        conversations: Sequence[Sequence[Message]],
        *,
        schema: SchemaLike | None = None,
        grammar: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        n: int = 1,
        stop: Sequence[str] = (),
        logprobs: bool = False,
        max_repeats: int = 0,
    ) -> list[Completion]:
        """Each conversation routed on its own output's validity and confidence."""
        kwargs: dict[str, Any] = {
            "schema": schema,
            "grammar": grammar,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "seed": seed,
            "n": n,
            "stop": stop,
            "logprobs": logprobs,
            "max_repeats": max_repeats,
        }
        self.last = [self.complete(conv, **kwargs) for conv in conversations]
        return [r.completion for r in self.last]

    def close(self) -> None:
        """Nothing to release: the caller that made the models closes them."""

    def __repr__(self) -> str:
        return f"<Router small={self.small!r} large={self.large!r}>"


def _clip(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."
