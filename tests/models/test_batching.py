"""Concurrent calls share batched decoding: same answers, own options, own failures.

The real embedded model through llama.cpp (several sequences per context) and
transformers (coalesced batches); the scheduler itself with plain functions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from slmkit.models import (
    ChatModel,
    Completion,
    Generation,
    GenerationError,
    RawOutput,
    Request,
    RowResult,
    embedded_gguf,
    load_model,
)
from slmkit.models.batching import Batcher
from slmkit.models.llamacpp import LlamaCppModel


class Pet(BaseModel):
    kind: Literal["cat", "dog", "fish"]
    age: int = Field(ge=1, le=20)


ASKS = [
    [{"role": "user", "content": "Describe a pet as JSON."}],
    [{"role": "user", "content": "My dog Rex is 3."}],
    [{"role": "user", "content": "Tell me about a fish."}],
]


@pytest.fixture(scope="module")
def parallel() -> Iterator[LlamaCppModel]:
    """The embedded model with four sequences over two contexts, and a small context.

    Rows then share a decoding step (two per context) and run in separate contexts.
    """
    model = LlamaCppModel(embedded_gguf(), name="smollm2", parallel=4, contexts=2, n_ctx=512)
    yield model
    model.close()


def _mixed(model: ChatModel) -> list[Request]:
    """Rows that differ in everything: constraint, length, free text, sampling and seed."""
    return [
        model.request(ASKS[0], schema=Pet, max_tokens=30),
        model.request(ASKS[1], max_tokens=12),
        model.request(ASKS[2], schema=Pet, max_tokens=30, temperature=1.0, seed=7),
    ]


def _texts(results: list[Completion | Exception]) -> list[str]:
    assert all(isinstance(r, Completion) for r in results), results
    return [r.text for r in results if isinstance(r, Completion)]


def test_rows_answer_alike_batched_concurrent_and_alone(parallel: LlamaCppModel) -> None:
    """Greedy rows are identical batched and alone; a sampled row depends on its seed only."""
    assert parallel.parallel == 4
    rows = _mixed(parallel)
    alone = [_texts(parallel.chat_requests([r]))[0] for r in rows]
    batched = _texts(parallel.chat_requests(rows))
    with ThreadPoolExecutor(3) as pool:  # three episodes calling at once
        concurrent = list(pool.map(lambda r: _texts(parallel.chat_requests([r]))[0], rows))
    assert batched == alone
    assert concurrent == alone
    assert Pet.model_validate_json(alone[0]) and Pet.model_validate_json(alone[2])


def test_the_default_model_answers_as_the_parallel_one(
    smollm: ChatModel, parallel: ChatModel
) -> None:
    """One sequence per context (the default) and three give the same greedy answers."""
    rows = [r for r in _mixed(parallel) if r.sampling.temperature == 0]
    assert _texts(smollm.chat_requests(rows)) == _texts(parallel.chat_requests(rows))


def test_a_failing_row_does_not_fail_its_batch(parallel: ChatModel) -> None:
    too_long = [{"role": "user", "content": "word " * 600}]  # over the 512-token context
    rows = [parallel.request(ASKS[0], max_tokens=8), parallel.request(too_long, max_tokens=8)]
    rows.append(parallel.request([], max_tokens=8))  # not a conversation
    ok, over, empty = parallel.chat_requests(rows)
    assert isinstance(ok, Completion) and ok.text
    assert isinstance(over, GenerationError) and "over the context" in str(over)
    assert over.hint
    assert isinstance(empty, Exception)
    with pytest.raises(GenerationError, match="over the context"):  # chat raises its own
        parallel.chat(too_long, max_tokens=8)


def test_n_samples_decode_in_parallel_slots(parallel: ChatModel) -> None:
    out = parallel.chat(ASKS[0], schema=Pet, temperature=1.0, seed=3, n=3, max_tokens=30)
    assert len(out.candidates) == 3 and all(c.valid for c in out.candidates)
    again = parallel.chat(ASKS[0], schema=Pet, temperature=1.0, seed=3, n=3, max_tokens=30)
    assert [c.text for c in again.candidates] == [c.text for c in out.candidates]


def test_transformers_greedy_batched_equals_alone() -> None:
    model = load_model("transformers:smollm2")
    rows = [model.request(a, schema=Pet, max_tokens=30) for a in ASKS[:2]]
    rows.append(model.request(ASKS[2], max_tokens=10))
    alone = [_texts(model.chat_requests([r]))[0] for r in rows]
    assert _texts(model.chat_requests(rows)) == alone


def test_a_closed_model_fails_calls_instead_of_hanging() -> None:
    model = LlamaCppModel(embedded_gguf(), name="smollm2", n_ctx=256)
    model.close()
    model.close()  # twice is fine
    with pytest.raises(GenerationError, match="closed"):
        model.chat(ASKS[0], max_tokens=4)


# ----------------------------------------------------------------------------- scheduler


def _echo(requests: list[Request]) -> list[RowResult]:
    return [Generation([RawOutput(str(r.messages[0]["content"]), 1)], 1) for r in requests]


def test_calls_arriving_together_share_one_batch() -> None:
    sizes: list[int] = []

    def run(requests: list[Request]) -> list[RowResult]:
        sizes.append(len(requests))
        time.sleep(0.05)
        return _echo(requests)

    batcher = Batcher(run, max_batch=8, window_s=0.2)
    start = threading.Barrier(6)

    def call(i: int) -> RowResult:
        start.wait()
        return batcher.run([Request([{"role": "user", "content": f"q{i}"}])])[0]

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(call, range(6)))
    batcher.close()
    assert [r.outputs[0].text for r in results if isinstance(r, Generation)] == [
        f"q{i}" for i in range(6)
    ]
    assert sum(sizes) == 6 and max(sizes) > 1, sizes  # coalesced, each routed back


def test_an_engine_that_refuses_a_whole_batch_fails_only_the_bad_row() -> None:
    def run(requests: list[Request]) -> list[RowResult]:
        if any(r.messages[0]["content"] == "bad" for r in requests):
            raise ValueError("prompt too long")  # as vLLM does for a whole call
        return _echo(requests)

    batcher = Batcher(run, max_batch=4, window_s=0.0)
    rows = [Request([{"role": "user", "content": c}]) for c in ("a", "bad", "c")]
    a, bad, c = batcher.run(rows)
    batcher.close()
    assert isinstance(a, Generation) and isinstance(c, Generation)
    assert isinstance(bad, ValueError)
