"""The ``ChatModel`` contract every backend implements, and what a call returns.

A backend implements one method, :meth:`ChatModel._generate_batch`: render chat messages,
decode under an optional :class:`~slmkit.models.schema.Constraint`, and return raw
outputs. Everything else (schema normalisation, validation after decoding, timing,
``n`` candidates, the batched form) lives here once, so all backends behave alike.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

from slmkit.models.errors import ConstraintError
from slmkit.models.schema import Constraint, SchemaLike, check_output

__all__ = [
    "Candidate",
    "ChatModel",
    "ChatOptions",
    "Completion",
    "Message",
    "RawOutput",
    "Sampling",
    "Usage",
]

Message = dict[str, Any]
"""One chat message in OpenAI format: ``{"role": ..., "content": ..., ["tool_calls"]}``."""


@dataclass(frozen=True)
class Sampling:
    """Decoding parameters shared by all backends."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    n: int = 1
    stop: tuple[str, ...] = ()
    logprobs: bool = False

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if self.n < 1:
            raise ValueError("n must be >= 1")


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


@dataclass(frozen=True)
class RawOutput:
    """What a backend produced for one sample, before validation."""

    text: str
    completion_tokens: int
    finish_reason: str = "stop"
    grammar_accepted: bool = True
    token_logprobs: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Candidate:
    """One sampled output with its validation verdict."""

    text: str
    parsed: Any
    valid: bool
    error: str | None
    finish_reason: str
    completion_tokens: int
    mean_logprob: float | None = None

    @property
    def confidence(self) -> float | None:
        """Geometric-mean token probability, when the backend gave log-probabilities."""
        return None if self.mean_logprob is None else math.exp(self.mean_logprob)


@dataclass(frozen=True)
class Completion:
    """The result of one :meth:`ChatModel.chat` call.

    ``text``/``parsed``/``valid`` describe the first candidate; with ``n > 1`` all of them
    are in ``candidates``. ``valid`` is the per-call report of whether the output
    validated against the requested schema (always ``True`` without one).
    """

    candidates: tuple[Candidate, ...]
    usage: Usage
    latency_s: float
    model: str
    constrained: bool

    @property
    def first(self) -> Candidate:
        return self.candidates[0]

    @property
    def text(self) -> str:
        return self.first.text

    @property
    def parsed(self) -> Any:
        return self.first.parsed

    @property
    def valid(self) -> bool:
        return self.first.valid

    @property
    def error(self) -> str | None:
        return self.first.error

    @property
    def finish_reason(self) -> str:
        return self.first.finish_reason


class ChatOptions(TypedDict, total=False):
    """Keyword options of :meth:`ChatModel.chat` and :meth:`ChatModel.chat_batch`.

    ``schema`` (a pydantic model class or JSON Schema dict) or ``grammar`` (an llguidance
    Lark grammar) constrains decoding; the rest are the :class:`Sampling` fields.
    """

    schema: SchemaLike | None
    grammar: str | None
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    n: int
    stop: Sequence[str]
    logprobs: bool


class ChatModel(ABC):
    """A chat model that can decode under a JSON-schema or grammar constraint.

    Subclasses set :attr:`name`, :attr:`supports_grammar` and implement
    :meth:`_generate_batch`.
    """

    name: str = "model"
    backend: str = "base"
    supports_grammar: bool = True
    """Whether Lark grammars (beyond JSON Schema) can be enforced."""
    supports_logprobs: bool = False

    def chat(self, messages: Sequence[Message], **options: Unpack[ChatOptions]) -> Completion:
        """Answer one conversation. ``schema`` (or ``grammar``) constrains the output."""
        return self.chat_batch([messages], **options)[0]

    def chat_batch(
        self, conversations: Sequence[Sequence[Message]], **options: Unpack[ChatOptions]
    ) -> list[Completion]:
        """Answer many conversations; backends that batch natively do so."""
        constraint = self._constraint(options.get("schema"), options.get("grammar"))
        sampling = Sampling(
            max_tokens=options.get("max_tokens", 256),
            temperature=options.get("temperature", 0.0),
            top_p=options.get("top_p", 1.0),
            seed=options.get("seed"),
            n=options.get("n", 1),
            stop=tuple(options.get("stop", ())),
            logprobs=options.get("logprobs", False),
        )
        for conv in conversations:
            _check_messages(conv)
        start = time.perf_counter()
        raw = self._generate_batch([list(c) for c in conversations], constraint, sampling)
        elapsed = time.perf_counter() - start
        per_call = elapsed / max(len(conversations), 1)
        results: list[Completion] = []
        for outputs, prompt_tokens in raw:
            candidates = tuple(_to_candidate(o, constraint) for o in outputs)
            usage = Usage(prompt_tokens, sum(c.completion_tokens for c in candidates))
            results.append(
                Completion(
                    candidates=candidates,
                    usage=usage,
                    latency_s=per_call,
                    model=self.name,
                    constrained=constraint is not None,
                )
            )
        return results

    def _constraint(self, schema: SchemaLike | None, grammar: str | None) -> Constraint | None:
        if schema is not None and grammar is not None:
            raise ConstraintError(
                "pass either schema= or grammar=, not both",
                hint="express the JSON part inside the grammar with %json{...}",
            )
        if schema is not None:
            return Constraint.from_schema(schema)
        if grammar is None:
            return None
        if not self.supports_grammar:
            raise ConstraintError(
                f"the {self.backend} backend cannot enforce a Lark grammar",
                hint="use the llamacpp, transformers or vllm backend, or an openai: "
                "spec with ;dialect=vllm",
            )
        return Constraint.from_lark(grammar)

    @abstractmethod
    def _generate_batch(
        self,
        conversations: list[list[Message]],
        constraint: Constraint | None,
        sampling: Sampling,
    ) -> list[tuple[list[RawOutput], int]]:
        """Per conversation: ``sampling.n`` raw outputs and the prompt's token count."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release resources (weights, server connections). Safe to call twice."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.backend}:{self.name}>"


def _to_candidate(out: RawOutput, constraint: Constraint | None) -> Candidate:
    check = check_output(out.text, constraint, grammar_accepted=out.grammar_accepted)
    mean_lp = None
    if out.token_logprobs:
        mean_lp = sum(out.token_logprobs) / len(out.token_logprobs)
    return Candidate(
        text=out.text,
        parsed=check.parsed,
        valid=check.valid,
        error=check.error,
        finish_reason=out.finish_reason,
        completion_tokens=out.completion_tokens,
        mean_logprob=mean_lp,
    )


_ROLES = {"system", "user", "assistant", "tool"}


def _check_messages(messages: Sequence[Message]) -> None:
    from slmkit.models.errors import ModelError

    if not messages:
        raise ModelError("empty conversation", hint="pass at least one user message")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in _ROLES:
            raise ModelError(
                f"message {i} is not a chat message: {m!r:.80}",
                hint="messages are dicts like {'role': 'user', 'content': '...'}; "
                f"roles are {sorted(_ROLES)}",
            )
