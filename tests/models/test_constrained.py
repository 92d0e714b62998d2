"""Constrained decoding with the real embedded model (llama.cpp + llguidance)."""

from __future__ import annotations

import json
from typing import Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

from slmkit.models import ChatModel, ConstraintError


class Address(BaseModel):
    city: str = Field(max_length=24)
    zip_code: int = Field(ge=10000, le=99999)


class Order(BaseModel):
    """Integer bounds, an enum, a nested object and a bounded array: all must hold."""

    quantity: int = Field(ge=2, le=7)
    size: Literal["small", "medium", "large"]
    ship_to: Address
    items: list[str] = Field(min_length=1, max_length=3)
    express: bool


ASK = [{"role": "user", "content": "Order three large pizzas to Lyon as JSON."}]


@pytest.mark.parametrize("temperature", [0.0, 0.7, 1.0, 1.3])
def test_constrained_output_always_validates(smollm: ChatModel, temperature: float) -> None:
    for seed in range(4):
        out = smollm.chat(ASK, schema=Order, temperature=temperature, seed=seed, max_tokens=160)
        assert out.constrained
        assert out.valid, (temperature, seed, out.text, out.error)
        order = out.parsed
        assert isinstance(order, Order)
        assert 2 <= order.quantity <= 7
        assert order.size in ("small", "medium", "large")
        assert 10000 <= order.ship_to.zip_code <= 99999
        assert 1 <= len(order.items) <= 3


def test_dict_schema_with_bounds_is_honoured(smollm: ChatModel) -> None:
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": -3, "maximum": 3},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2},
            "inner": {
                "type": "object",
                "properties": {"ok": {"type": "boolean"}},
                "required": ["ok"],
                "additionalProperties": False,
            },
        },
        "required": ["n", "tags", "inner"],
        "additionalProperties": False,
    }
    for seed in range(3):
        out = smollm.chat(
            [{"role": "user", "content": "Pick a number from 100 to 200."}],
            schema=schema,
            temperature=1.0,
            seed=seed,
        )
        jsonschema.validate(json.loads(out.text), schema)
        assert out.valid and out.parsed == json.loads(out.text)


def test_n_candidates_are_all_constrained(smollm: ChatModel) -> None:
    out = smollm.chat(ASK, schema=Order, temperature=1.0, seed=1, n=3, max_tokens=160)
    assert len(out.candidates) == 3
    assert all(c.valid for c in out.candidates)
    assert out.usage.completion_tokens == sum(c.completion_tokens for c in out.candidates)
    assert all(c.confidence is not None and 0 < c.confidence <= 1 for c in out.candidates)


def test_lark_grammar(smollm: ChatModel) -> None:
    grammar = 'start: "Answer: " ANSWER\nANSWER: /(yes|no)/'
    out = smollm.chat([{"role": "user", "content": "Is water wet?"}], grammar=grammar)
    assert out.text in ("Answer: yes", "Answer: no")
    assert out.valid


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "array", "uniqueItems": True},
        {"not": {"type": "string"}},
        {"type": "string", "pattern": "(?=x)y"},
        {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}},
    ],
)
def test_impossible_constraint_errors_clearly(smollm: ChatModel, schema: dict[str, object]) -> None:
    with pytest.raises(ConstraintError) as info:
        smollm.chat(ASK, schema=schema)
    assert info.value.hint and "never decodes without" in info.value.hint


def test_invalid_schema_is_rejected_before_decoding(smollm: ChatModel) -> None:
    with pytest.raises(ConstraintError, match="not a valid JSON Schema"):
        smollm.chat(ASK, schema={"type": "no-such-type"})


def test_schema_and_grammar_together_is_an_error(smollm: ChatModel) -> None:
    with pytest.raises(ConstraintError):
        smollm.chat(ASK, schema=Order, grammar='start: "x"')


def test_unconstrained_call_reports_usage(smollm: ChatModel) -> None:
    out = smollm.chat(ASK, max_tokens=8)
    assert not out.constrained and out.valid
    assert out.usage.prompt_tokens > 0 and 0 < out.usage.completion_tokens <= 8
    assert out.latency_s > 0


def test_grammar_cache_is_bounded_and_keeps_recent_grammars(smollm: ChatModel) -> None:
    """Per-question grammars (citations) must not grow a server's memory without bound."""
    from slmkit.models.guidance import GrammarCache
    from slmkit.models.schema import Constraint

    cache = GrammarCache(smollm._lltok, size=2)  # type: ignore[attr-defined]
    a, b, c = (Constraint.from_schema({"enum": [word]}) for word in ("a", "b", "c"))
    first = cache.get(a)
    cache.get(b)
    assert cache.get(a) is first  # a hit, and now the most recent
    cache.get(c)  # evicts b, the least recently used
    assert len(cache) == 2
    assert cache.get(a) is first


CALL = {
    "type": "object",
    "properties": {
        "name": {"const": "calculator"},
        "arguments": {
            "type": "object",
            "properties": {"expression": {"type": "string", "maxLength": 40}},
            "required": ["expression"],
            "additionalProperties": False,
        },
    },
    "required": ["name", "arguments"],
    "additionalProperties": False,
}
ACTION = {
    "anyOf": [
        CALL,
        {
            "type": "object",
            "properties": {"final_answer": {"type": "string", "maxLength": 80}},
            "required": ["final_answer"],
            "additionalProperties": False,
        },
    ]
}
ARITHMETIC = [
    {
        "role": "system",
        "content": "Reply with one JSON action: a calculator call or a final answer.",
    },
    {"role": "user", "content": "What is 49 minus 93?"},
]


def test_the_gate_forces_what_the_grammar_leaves_no_choice_in(smollm: ChatModel) -> None:
    """The keys and punctuation of a call are forced, the expression is the model's."""
    from slmkit.models.guidance import GrammarCache, TokenGate
    from slmkit.models.schema import Constraint

    lltok = smollm._lltok  # type: ignore[attr-defined]
    grammar = GrammarCache(lltok).get(Constraint.from_schema(CALL))
    gate = TokenGate(grammar, lltok, smollm._n_vocab)  # type: ignore[attr-defined]

    def text(tokens: list[int]) -> str:
        return bytes(lltok.decode_bytes(tokens)).decode()

    forced = gate.force(100)
    assert text(forced).startswith('{"name": "calculator", "arguments": {"expression":')
    assert gate.force(100) == []  # nothing more is forced: the expression comes next
    assert len(TokenGate(grammar, lltok, smollm._n_vocab).force(3)) == 3  # type: ignore[attr-defined]


def test_forced_tokens_change_the_speed_not_the_action(smollm: ChatModel) -> None:
    """llama.cpp feeds forced tokens as one chunk; a row that asks for log-probabilities
    is decoded token by token (its confidence is a mean over every token): the same
    greedy action either way."""
    chunked = smollm.chat(ARITHMETIC, schema=ACTION, max_tokens=60)
    stepped = smollm.chat(ARITHMETIC, schema=ACTION, max_tokens=60, logprobs=True)
    assert chunked.valid and chunked.text == stepped.text
    assert chunked.usage.completion_tokens == stepped.usage.completion_tokens


def test_a_const_answer_is_forced_whole(smollm: ChatModel) -> None:
    """A retried answer held to a quote is forced from its first byte to its last."""
    schema = {
        "type": "object",
        "properties": {"final_answer": {"const": "1554"}},
        "required": ["final_answer"],
        "additionalProperties": False,
    }
    out = smollm.chat(ARITHMETIC, schema=schema, max_tokens=30)
    assert out.valid and out.parsed == {"final_answer": "1554"}
    assert out.finish_reason == "stop" and out.usage.completion_tokens > 0
