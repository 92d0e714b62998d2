"""``WrappedModel``: a :class:`ChatModel` that runs another one, through its public API.

A wrapper (a router between two models, a student that must see its training prompt)
is a chat model in its own right, so it can stand anywhere one can. It delegates every
public call of the :class:`ChatModel` contract (``chat_batch``, ``chat_requests``, and
``chat`` through them) to the wrapped model, after :meth:`WrappedModel.rewrite` has had
its say on each conversation; it never reaches into the wrapped model's private ``_generate_batch``,
so the wrapped backend keeps its own batching, validation and timing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Unpack

from slmkit.models.base import ChatModel, ChatOptions, Completion, Message, Request, RowResult
from slmkit.models.errors import ModelError

__all__ = ["WrappedModel"]


class WrappedModel(ChatModel):
    """Runs ``inner``; subclasses change conversations (:meth:`rewrite`) or calls.

    Args:
        inner: the model that generates.
        name: this model's name (default: ``inner``'s).
        backend: this model's backend label (default: ``inner``'s).
    """

    def __init__(
        self, inner: ChatModel, *, name: str | None = None, backend: str | None = None
    ) -> None:
        self.inner = inner
        self.name = name or inner.name
        self.backend = backend or inner.backend
        self.supports_grammar = inner.supports_grammar
        self.supports_logprobs = inner.supports_logprobs

    def rewrite(self, messages: Sequence[Message]) -> list[Message]:
        """The conversation ``inner`` is given (as it is, unless a subclass says otherwise)."""
        return list(messages)

    def chat_batch(
        self, conversations: Sequence[Sequence[Message]], **options: Unpack[ChatOptions]
    ) -> list[Completion]:
        """``inner.chat_batch`` on the rewritten conversations."""
        return self.inner.chat_batch([self.rewrite(c) for c in conversations], **options)

    def chat_requests(self, requests: Sequence[Request]) -> list[Completion | Exception]:
        """``inner.chat_requests`` on the rewritten rows (each keeps its own options)."""
        return self.inner.chat_requests(
            [replace(r, messages=self.rewrite(r.messages)) for r in requests]
        )

    def _generate_batch(self, requests: list[Request]) -> list[RowResult]:
        raise ModelError(
            f"{type(self).__name__} has no raw interface: it delegates chat, chat_batch "
            "and chat_requests",
            hint="call chat(), chat_batch() or chat_requests() on it",
        )

    def close(self) -> None:
        """Close the wrapped model (a wrapper owns what it wraps unless it says otherwise)."""
        self.inner.close()
