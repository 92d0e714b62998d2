"""Many concurrent episodes, one model: calls that arrive together decode together.

Collection, evaluation, distillation and RL run agent episodes in threads; each
episode's model call is one :class:`~slmkit.models.base.Request` row. Instead of a lock
(one call at a time), a local backend hands its rows to a :class:`RowQueue`, and one
engine thread serves them in batches, each row with its own constraint, sampling and
seed::

    episode threads                     engine thread (one per model)
    ---------------                     -----------------------------
    chat() -> submit(rows) --+
    chat() -> submit(rows) --+--> RowQueue --take()--> one batched decode --+
    chat() -> submit(rows) --+       ^                                     |
        ^    (each waits for         +---- resolve(row, result) <----------+
        +---- its own rows)

Two ways to serve the queue:

* **static batches** (:class:`Batcher`, for engines that decode a fixed set of rows per
  call: transformers' batched forward, in-process vLLM): take the rows queued now,
  wait ``window_s`` for more (up to ``max_batch``), run them as one call;
* **continuous batching** (the llama.cpp engine): the engine takes new rows into free
  sequence slots at every decoding step, so a call never waits for a batch to end.

OpenAI-compatible servers (``vllm serve``, llama.cpp's server) batch on their side:
their backend just sends concurrent requests. A row's failure is its own result; the
other rows of the batch are answered.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from slmkit.models.base import Request, RowResult
from slmkit.models.errors import GenerationError

__all__ = ["Batcher", "RowQueue", "Ticket"]

R = TypeVar("R")
"""What a row carries: a :class:`Request`, or a backend's prepared form of one."""


class Ticket(Generic[R]):
    """One submitted row: the engine resolves it, the submitting thread waits on it."""

    __slots__ = ("_done", "request", "result")

    def __init__(self, request: R) -> None:
        self.request = request
        self.result: RowResult | None = None
        self._done = threading.Event()

    def resolve(self, result: RowResult) -> None:
        if not self._done.is_set():
            self.result = result
            self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self) -> RowResult:
        self._done.wait()
        assert self.result is not None
        return self.result


class RowQueue(Generic[R]):
    """Rows waiting for an engine, in arrival order; thread-safe."""

    def __init__(self) -> None:
        self._rows: deque[Ticket[R]] = deque()
        self._cond = threading.Condition()
        self._closed: str | None = None

    def submit(self, requests: Sequence[R]) -> list[Ticket[R]]:
        """Queue ``requests`` (their results come back on the tickets)."""
        tickets = [Ticket(r) for r in requests]
        with self._cond:
            if self._closed is not None:
                error = GenerationError(self._closed, hint="load the model again")
                for t in tickets:
                    t.resolve(error)
                return tickets
            self._rows.extend(tickets)
            self._cond.notify_all()
        return tickets

    def run(self, requests: Sequence[R]) -> list[RowResult]:
        """Submit ``requests`` and wait for all their results (the caller's view)."""
        return [t.wait() for t in self.submit(requests)]

    def take(self, limit: int, *, block: bool) -> list[Ticket[R]]:
        """Up to ``limit`` queued rows; with ``block``, wait until there is one (or close)."""
        with self._cond:
            while block and not self._rows and self._closed is None:
                self._cond.wait()
            n = min(limit, len(self._rows))
            return [self._rows.popleft() for _ in range(n)]

    def wait_more(self, have: int, limit: int, until: float) -> None:
        """Wait for ``limit - have`` more rows, until ``until`` (monotonic clock) or close."""
        with self._cond:
            while len(self._rows) < limit - have and self._closed is None:
                left = until - time.monotonic()
                if left <= 0 or not self._cond.wait(left):
                    return

    @property
    def closed(self) -> bool:
        return self._closed is not None

    def close(self, reason: str) -> None:
        """Refuse new rows and fail the queued ones with ``reason``."""
        with self._cond:
            self._closed = reason
            rows, self._rows = list(self._rows), deque()
            self._cond.notify_all()
        for t in rows:
            t.resolve(GenerationError(reason, hint="load the model again"))


class Batcher:
    """Static batches over a :class:`RowQueue`: rows that arrive within ``window_s`` share a call.

    ``run_batch`` decodes a list of requests into one result per request (a backend's
    own batched decode); it runs on this batcher's thread only, so the engine behind it
    needs no lock.
    """

    def __init__(
        self,
        run_batch: Callable[[list[Request]], list[RowResult]],
        *,
        max_batch: int = 64,
        window_s: float = 0.005,
        name: str = "model",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.max_batch = max_batch
        self.window_s = window_s
        self._run_batch = run_batch
        self._queue: RowQueue[Request] = RowQueue()
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def run(self, requests: Sequence[Request]) -> list[RowResult]:
        """Decode ``requests`` together with whatever other threads submit meanwhile."""
        return self._queue.run(requests)

    def close(self) -> None:
        self._queue.close("the model was closed")
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=60)

    def _loop(self) -> None:
        while True:
            rows = self._queue.take(self.max_batch, block=True)
            if not rows:  # closed
                return
            if len(rows) < self.max_batch and self.window_s > 0:
                self._queue.wait_more(len(rows), self.max_batch, time.monotonic() + self.window_s)
                rows += self._queue.take(self.max_batch - len(rows), block=False)
            requests = [t.request for t in rows]
            try:
                results = self._checked(requests)
            except Exception as exc:
                # An engine that refuses a whole batch for one bad row (vLLM on a prompt
                # over its context): run the rows alone, so only that row fails.
                results = [exc] if len(rows) == 1 else [self._alone(r) for r in requests]
            for ticket, result in zip(rows, results, strict=True):
                ticket.resolve(result)

    def _checked(self, requests: list[Request]) -> list[RowResult]:
        results = self._run_batch(requests)
        if len(results) != len(requests):
            raise GenerationError(
                f"the batch answered {len(results)} rows for {len(requests)}",
                hint="a bug in the backend's batched decode; report this",
            )
        return results

    def _alone(self, request: Request) -> RowResult:
        try:
            return self._checked([request])[0]
        except Exception as exc:  # this row's own failure
            return exc
