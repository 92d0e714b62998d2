"""Repetition control under a grammar: a model looping inside a JSON string is cut.

The prompt below makes the embedded model write ``"12 * 13 * 13 * 13 * ..."`` into a
constrained string until its token budget ends (every token is allowed by the schema);
with ``max_repeats`` the loop is broken on the allowed tokens and the value closed, on
both local backends.
"""

from __future__ import annotations

import numpy as np
import pytest

from slmkit.models import ChatModel, load_model
from slmkit.models.sampler import break_loop

PROVOKE = [
    {
        "role": "user",
        "content": "Write the calculator expression for 12 times 13 times 13 times 13 and so on.",
    }
]
SCHEMA = {
    "type": "object",
    "properties": {"expression": {"type": "string", "maxLength": 200}},
    "required": ["expression"],
    "additionalProperties": False,
}
LOOP = " * 13"


def _expression(model: ChatModel, max_repeats: int) -> str:
    out = model.chat(PROVOKE, schema=SCHEMA, max_tokens=120, max_repeats=max_repeats)
    assert out.valid, out.error
    assert isinstance(out.parsed, dict)
    return str(out.parsed["expression"])


def test_a_runaway_inside_a_constrained_string_is_cut(smollm: ChatModel) -> None:
    assert LOOP * 10 in _expression(smollm, 0)  # the failure, as the issue saw it
    assert LOOP * 4 not in _expression(smollm, 2)


def _closed_after_the_loop(model: ChatModel) -> None:
    """Once the guard fires the JSON value is closed, not varied until the budget ends,
    and the output says so."""
    free = model.chat(PROVOKE, schema=SCHEMA, max_tokens=120, max_repeats=0)
    guarded = model.chat(PROVOKE, schema=SCHEMA, max_tokens=120, max_repeats=2)
    assert free.finish_reason != "loop" and free.usage.completion_tokens > 90  # to the end
    assert guarded.valid and guarded.finish_reason == "loop"
    assert guarded.usage.completion_tokens < 40


def test_a_looping_json_value_is_closed_and_reported(smollm: ChatModel) -> None:
    _closed_after_the_loop(smollm)


def test_the_transformers_backend_cuts_it_too() -> None:
    model = load_model("transformers:smollm2")
    assert LOOP * 4 not in _expression(model, 2)
    _closed_after_the_loop(model)


def test_break_loop_forbids_only_the_token_that_continues_the_loop() -> None:
    tokens = [7] + [1, 2, 3] * 4  # a 3-token block four times in a row
    scores = np.zeros(10, dtype=np.float32)
    assert break_loop(scores, tokens[:-1], max_repeats=2)  # next would be 3: forbidden
    assert scores[3] == -np.inf and np.isfinite(np.delete(scores, 3)).all()


def test_a_long_block_may_appear_max_repeats_times_and_no_more() -> None:
    """A 6-token block (its run is long enough to be judged): two copies in a row are
    allowed, the token that would complete a third is not."""
    block = [1, 2, 3, 4, 5, 6]
    scores = np.zeros(10, dtype=np.float32)
    assert not break_loop(scores, block + block[:-1], max_repeats=2)  # the second copy
    assert break_loop(scores, block * 2 + block[:-1], max_repeats=2)  # a third: forbidden
    assert scores[6] == -np.inf


@pytest.mark.parametrize(
    "tokens",
    [
        [1, 2, 3, 1, 2, 3, 1, 2],  # a loop shorter than LOOP_MIN_TOKENS
        [5, 0, 0, 0, 0, 0, 0],  # 5000000 is a number, not a loop
        list(range(20)),
    ],
)
def test_break_loop_leaves_short_runs_and_plain_text_alone(tokens: list[int]) -> None:
    scores = np.zeros(30, dtype=np.float32)
    assert not break_loop(scores, tokens, max_repeats=2)
    assert np.isfinite(scores).all()


def test_break_loop_never_forbids_the_only_allowed_token() -> None:
    tokens = [4] * 20
    scores = np.full(10, -np.inf, dtype=np.float32)
    scores[4] = 0.0  # the grammar allows nothing else: the loop stays
    assert not break_loop(scores, tokens, max_repeats=2)
    assert scores[4] == 0.0
