"""``WrappedModel`` runs the real embedded model through its public API only."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Unpack

import pytest

from slmkit.models import (
    ChatModel,
    ChatOptions,
    Completion,
    Message,
    ModelError,
    Request,
    WrappedModel,
)


class Seen(WrappedModel):
    """Records the conversations that reach it."""

    def __init__(self, inner: ChatModel) -> None:
        super().__init__(inner)
        self.seen: list[list[Message]] = []

    def chat_batch(
        self, conversations: Sequence[Sequence[Message]], **options: Unpack[ChatOptions]
    ) -> list[Completion]:
        self.seen += [list(c) for c in conversations]
        return super().chat_batch(conversations, **options)


class Terse(WrappedModel):
    """Puts its own system message in front of every conversation."""

    def rewrite(self, messages: Sequence[Message]) -> list[Message]:
        rest = [m for m in messages if m["role"] != "system"]
        return [{"role": "system", "content": "Answer in one word."}, *rest]


def test_a_wrapper_rewrites_then_delegates_to_the_public_api(smollm: ChatModel) -> None:
    seen = Seen(smollm)
    model = Terse(seen, name="terse")
    assert (model.name, model.backend) == ("terse", smollm.backend)
    assert model.supports_grammar == smollm.supports_grammar
    out = model.chat(
        [{"role": "system", "content": "Be verbose."}, {"role": "user", "content": "Hi"}],
        max_tokens=3,
    )
    assert out.model == smollm.name  # the model that generated says so
    assert seen.seen == [
        [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Hi"}]
    ]
    assert len(model.chat_batch([[{"role": "user", "content": "a"}]] * 2, max_tokens=2)) == 2
    rows = [model.request([{"role": "user", "content": "b"}], max_tokens=2, seed=s) for s in (1, 2)]
    assert all(isinstance(r, Completion) for r in model.chat_requests(rows))


def test_a_wrapper_has_no_raw_interface(smollm: ChatModel) -> None:
    with pytest.raises(ModelError, match="no raw interface") as err:
        WrappedModel(smollm)._generate_batch([Request([{"role": "user", "content": "x"}])])
    assert err.value.hint and "chat" in err.value.hint


def test_every_public_method_of_the_contract_is_delegated() -> None:
    """A public method added to ChatModel must be delegated here too (or go through one)."""
    public = {
        name
        for name, member in inspect.getmembers(ChatModel, inspect.isfunction)
        if not name.startswith("_")
    }
    assert public == {"chat", "chat_batch", "chat_requests", "request", "close"}, (
        "delegate the new method in WrappedModel"
    )
    for name in ("chat_batch", "chat_requests", "close"):
        assert name in WrappedModel.__dict__
    # request only builds a row (with this model's grammar support, which is inner's)
    # chat is not overridden: it calls self.chat_batch, which is
    assert "self.chat_batch(" in inspect.getsource(ChatModel.chat)
