"""The ``ChatModel`` contract every backend implements, and what a call returns.

A backend implements one method, :meth:`ChatModel._generate_batch`: given
:class:`Request` rows (a conversation, its own optional
:class:`~slmkit.models.schema.Constraint` and its own :class:`Sampling`, seed included),
render, decode and return one :class:`Generation` per row, or the row's exception: a
row that cannot be served (a prompt over the context) fails alone and the others still
answer. Everything else (schema normalisation, validation after decoding, timing, ``n``
candidates, the batched forms) lives here once, so all backends behave alike.

Rows may differ in everything, so one backend call can carry the calls of many
concurrent episodes (:mod:`slmkit.models.batching`); wrappers (a student's prompt, a
router) pass rows through unchanged.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

from slmkit.models.errors import ConstraintError, ModelError
from slmkit.models.schema import Constraint, SchemaLike, check_output

__all__ = [
    "Candidate",
    "ChatModel",
    "ChatOptions",
    "Completion",
    "Generation",
    "Message",
    "RawOutput",
    "Request",
    "RowResult",
    "Sampling",
    "TokenTrace",
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
    max_repeats: int = 0
    """A block of output tokens may appear at most this many times in a row
    (0: no limit); see :func:`~slmkit.models.sampler.break_loop`. Local backends only."""

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if self.n < 1:
            raise ValueError("n must be >= 1")
        if self.max_repeats < 0:
            raise ValueError("max_repeats must be >= 0")


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
class TokenTrace:
    """The exact tokens of one sample, for training on what the policy really did.

    ``token_ids`` are the sampled tokens, the end-of-turn token included when the sample
    ended on it; ``logprobs`` are their log-probabilities under the distribution they were
    drawn from (grammar mask, temperature and top-p applied). RL needs these rather than
    a re-tokenization of ``text``: under a grammar the sampler may spell a text with
    other tokens than the tokenizer would.
    """

    prompt_ids: tuple[int, ...]
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...] | None = None


@dataclass(frozen=True)
class RawOutput:
    """What a backend produced for one sample, before validation."""

    text: str
    completion_tokens: int
    finish_reason: str = "stop"
    grammar_accepted: bool = True
    token_logprobs: tuple[float, ...] | None = None
    trace: TokenTrace | None = None
    """The sample's tokens, from backends asked to trace (RL rollouts)."""


@dataclass(frozen=True)
class Request:
    """One row of a backend call: a conversation with its own constraint and sampling."""

    messages: list[Message]
    constraint: Constraint | None = None
    sampling: Sampling = Sampling()


@dataclass(frozen=True)
class Generation:
    """What a backend produced for one :class:`Request`: ``sampling.n`` outputs."""

    outputs: list[RawOutput]
    prompt_tokens: int


RowResult = Generation | Exception
"""A row's outcome: its generation, or the error that stopped that row alone."""


@dataclass(frozen=True)
class Candidate:
    """One sampled output with its validation verdict."""

    text: str
    parsed: Any
    valid: bool
    error: str | None
    finish_reason: str
    """``stop`` (the output ended), ``length`` (the token budget did), or ``loop`` (it
    ended after the loop guard broke a repetition: ``max_repeats``, local backends)."""
    completion_tokens: int
    mean_logprob: float | None = None
    trace: TokenTrace | None = None
    """The sample's exact tokens, when the backend was asked to trace (RL rollouts)."""

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
    max_repeats: int


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
        """Answer many conversations with the same options in one backend call.

        Raises the first failing row's error; :meth:`chat_requests` returns each row's.
        """
        constraint, sampling = self._options(options)
        rows = [Request(_conversation(c), constraint, sampling) for c in conversations]
        results = self.chat_requests(rows)
        for r in results:
            if isinstance(r, Exception):
                raise r
        return [r for r in results if isinstance(r, Completion)]

    def request(self, messages: Sequence[Message], **options: Unpack[ChatOptions]) -> Request:
        """One row for :meth:`chat_requests`: ``messages`` with these chat options."""
        constraint, sampling = self._options(options)
        return Request(_conversation(messages), constraint, sampling)

    def _options(self, options: ChatOptions) -> tuple[Constraint | None, Sampling]:
        constraint = self._constraint(options.get("schema"), options.get("grammar"))
        sampling = Sampling(
            max_tokens=options.get("max_tokens", 256),
            temperature=options.get("temperature", 0.0),
            top_p=options.get("top_p", 1.0),
            seed=options.get("seed"),
            n=options.get("n", 1),
            stop=tuple(options.get("stop", ())),
            logprobs=options.get("logprobs", False),
            max_repeats=options.get("max_repeats", 0),
        )
        return constraint, sampling

    def chat_requests(self, requests: Sequence[Request]) -> list[Completion | Exception]:
        """Answer rows that each carry their own constraint and sampling, in one call.

        A row that fails is its exception in the result; the other rows still answer.
        ``latency_s`` of each completion is the call's time divided by its rows.
        """
        out: list[Completion | Exception | None] = [None] * len(requests)
        ready: list[int] = []
        for i, req in enumerate(requests):
            try:
                _check_messages(req.messages)
            except ModelError as exc:
                out[i] = exc
            else:
                ready.append(i)
        start = time.perf_counter()
        raw: list[RowResult]
        try:
            raw = self._generate_batch([requests[i] for i in ready]) if ready else []
        except Exception as exc:  # the whole call failed: every row says why
            raw = [exc] * len(ready)
        if len(raw) != len(ready):
            raise ModelError(
                f"{self!r} answered {len(raw)} rows for {len(ready)} requests",
                hint="a backend's _generate_batch returns one result per request; report this",
            )
        per_call = (time.perf_counter() - start) / max(len(requests), 1)
        for i, result in zip(ready, raw, strict=True):
            out[i] = (
                result
                if isinstance(result, Exception)
                else self._completion(requests[i], result, per_call)
            )
        return [r for r in out if r is not None]

    def _completion(self, request: Request, generation: Generation, latency_s: float) -> Completion:
        candidates = tuple(_to_candidate(o, request.constraint) for o in generation.outputs)
        return Completion(
            candidates=candidates,
            usage=Usage(generation.prompt_tokens, sum(c.completion_tokens for c in candidates)),
            latency_s=latency_s,
            model=self.name,
            constrained=request.constraint is not None,
        )

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
    def _generate_batch(self, requests: list[Request]) -> list[RowResult]:
        """One result per request, in order: its :class:`Generation`, or its exception.

        Each row is decoded under its own constraint and sampling (``n`` samples, the
        i-th seeded ``seed + i``). A row that cannot be served is its exception here and
        the other rows still answer; raise only when the whole call failed. Called from
        one thread at a time or from many: a backend that holds one engine serialises
        (or batches) calls itself.
        """

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
        trace=out.trace,
    )


_ROLES = {"system", "user", "assistant", "tool"}


def _conversation(messages: Sequence[Message]) -> list[Message]:
    """``messages`` as a list; a text or one message (``list()`` would split it) is refused."""
    if isinstance(messages, str | dict):
        raise ModelError(
            f"a conversation is a list of messages, not a {type(messages).__name__}",
            hint="pass [{'role': 'user', 'content': '...'}]; chat_batch takes a list of those",
        )
    return list(messages)


def _check_messages(messages: Sequence[Message]) -> None:
    if not messages:
        raise ModelError("empty conversation", hint="pass at least one user message")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in _ROLES:
            raise ModelError(
                f"message {i} is not a chat message: {m!r:.80}",
                hint="messages are dicts like {'role': 'user', 'content': '...'}; "
                f"roles are {sorted(_ROLES)}",
            )
