"""llama.cpp continuous batching: several sequences decoded per step in one context.

One llama.cpp context holds ``parallel`` sequences (each with its own KV cache of
``n_ctx`` tokens, llama.cpp's non-unified layout, so a row's attention sees exactly what
it would see alone). One engine thread owns the context; callers queue prepared rows
(:class:`PreparedRow`: prompt tokens, grammar gates, sampling) on a
:class:`~slmkit.models.batching.RowQueue` and wait. Several engines (contexts over the
same weights) may serve one queue: each takes rows into its own free slots. Every step
an engine::

    take queued rows into free slots   (the slot whose cached tokens share the longest
                                        prefix with the prompt: an agent's growing
                                        history, or the shared system prompt, is not
                                        decoded again)
    one llama_decode: a token for every decoding row + prompt chunks of new rows
    per row with logits: TokenGate mask -> pick (greedy, or seeded top-p/min-p)
                         -> tokens the grammar forces after it (JSON keys and
                            punctuation) join it as the row's next chunk
                         -> stop on EOS / grammar end / stop string / budget
                         -> resolve the caller's ticket when all its samples are done

so a call never waits for a batch to end, and a row's constraint, sampling and seed are
its own: greedy rows decode exactly as they would alone. Sampling happens in numpy with
one seeded generator per sample, which makes a sampled output independent of whatever
else shares the step.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from slmkit.models.base import Generation, RawOutput, Sampling
from slmkit.models.batching import RowQueue, Ticket
from slmkit.models.errors import BackendUnavailableError, GenerationError
from slmkit.models.guidance import TokenGate, closing_reserve
from slmkit.models.sampler import break_loop, cut_at_stop, finish_reason, pick_token

__all__ = ["LlamaEngine", "PreparedRow"]


@dataclass(frozen=True)
class PreparedRow:
    """A request made ready for the engine in the caller's thread: tokens and gates."""

    prompt: list[int]
    sampling: Sampling
    seed: int
    gates: tuple[TokenGate, ...] | None = None
    """One grammar gate per sample of a constrained row, else None."""


@dataclass
class _Job:
    """A row's samples in flight: the ticket resolves when every sample is done."""

    ticket: Ticket[PreparedRow]
    outputs: list[RawOutput | None]
    failed: bool = False


@dataclass
class _Sample:
    job: _Job
    index: int
    gate: TokenGate | None
    rng: np.random.Generator
    budget: int
    wrap_at: int
    todo: list[int] = field(default_factory=list)
    """Prompt tokens not yet in the KV cache."""
    pos: int = 0
    """Position of the next token fed to the model."""
    next_token: int | None = None
    tokens: list[int] = field(default_factory=list)
    looped: bool = False
    """The loop guard fired: the row finishes with "loop" (see break_loop)."""

    @property
    def row(self) -> PreparedRow:
        return self.job.ticket.request


@dataclass
class _Slot:
    seq: int
    cached: list[int] = field(default_factory=list)
    """Tokens in this sequence's KV cache, in order."""
    sample: _Sample | None = None


class LlamaEngine:
    """Continuous batching over one llama.cpp context (see the module docs)."""

    def __init__(
        self,
        llm: Any,
        queue: RowQueue[PreparedRow],
        *,
        parallel: int,
        n_ctx: int,
        threads: int,
        batch_threads: int,
        n_batch: int = 512,
        name: str = "model",
    ) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self._llm = llm
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx * parallel
        params.n_batch = params.n_ubatch = n_batch
        params.n_seq_max = parallel
        params.kv_unified = False  # each sequence its own cache: rows do not interact
        params.n_threads = params.n_threads_batch = threads
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        params.no_perf = True
        ctx = llama_cpp.llama_init_from_model(llm.model, params)
        if not ctx:
            raise BackendUnavailableError(
                f"llama.cpp could not create a context of {parallel} x {n_ctx} tokens",
                hint="lower parallel= or n_ctx= (the KV cache needs memory for each)",
            )
        self._ctx = ctx
        self._mem = llama_cpp.llama_get_memory(ctx)
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self.n_ctx = int(llama_cpp.llama_n_ctx_seq(ctx))
        self.n_batch = n_batch
        self._threads = (threads, batch_threads)
        self._current_threads = threads
        self._vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self._n_vocab = int(llm.n_vocab())
        self._slots = [_Slot(seq) for seq in range(parallel)]
        self._waiting: list[_Sample] = []
        self._queue = queue
        self._thread = threading.Thread(target=self._loop, name=f"llama-{name}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Wait for the engine thread (its queue must be closed first); free the context."""
        if self._ctx is None:
            return
        self._thread.join(timeout=120)
        self._lib.llama_batch_free(self._batch)
        self._lib.llama_free(self._ctx)
        self._ctx = None

    # ------------------------------------------------------------------ engine thread

    def _loop(self) -> None:
        while True:
            busy = any(s.sample is not None for s in self._slots) or self._waiting
            self._admit(block=not busy)
            if self._queue.closed:
                closed = GenerationError("the model was closed", hint="load the model again")
                for slot in self._slots:
                    self._drop(slot, closed)
                for sample in self._waiting:
                    sample.job.ticket.resolve(closed)
                return
            if not any(s.sample is not None for s in self._slots):
                continue
            try:
                self._step()
            except Exception as exc:  # a broken step: its rows fail, the engine goes on
                for slot in self._slots:
                    if slot.sample is not None:
                        self._drop(slot, exc)

    def _admit(self, *, block: bool) -> None:
        """Move queued rows into free slots (waiting for one when the engine is idle)."""
        free = [s for s in self._slots if s.sample is None]
        if len(self._waiting) < len(free):
            for ticket in self._queue.take(len(free) - len(self._waiting), block=block):
                self._expand(ticket)
        while self._waiting and free:
            sample = self._waiting.pop(0)
            best = max(free, key=lambda s: _common_prefix(s.cached, sample.row.prompt))
            free.remove(best)
            self._place(best, sample)

    def _expand(self, ticket: Ticket[PreparedRow]) -> None:
        row = ticket.request
        job = _Job(ticket, [None] * row.sampling.n)
        budget = min(row.sampling.max_tokens, self.n_ctx - len(row.prompt) - 1)
        for i in range(row.sampling.n):
            self._waiting.append(
                _Sample(
                    job=job,
                    index=i,
                    gate=row.gates[i] if row.gates is not None else None,
                    rng=np.random.default_rng(row.seed + i),
                    budget=budget,
                    wrap_at=budget - closing_reserve(budget),
                )
            )

    def _place(self, slot: _Slot, sample: _Sample) -> None:
        """Put ``sample`` in ``slot``, keeping the cached prefix it shares with the prompt.

        At least two prompt tokens are decoded again (see :meth:`_step`), so the row's
        output does not depend on what the slot held before.
        """
        prompt = sample.row.prompt
        keep = max(0, min(_common_prefix(slot.cached, prompt), len(prompt) - 2))
        self._lib.llama_memory_seq_rm(self._mem, slot.seq, keep, -1)
        slot.cached = prompt[:keep]
        forced = self._force(sample)  # `{"` of a JSON action: part of the prompt's chunk
        sample.todo, sample.pos = prompt[keep:] + forced, keep
        slot.sample = sample
        if sample.gate is not None and sample.gate.stopped:  # a const: nothing to decode
            self._finish(slot, "stop")

    def _force(self, sample: _Sample) -> list[int]:
        """The tokens ``sample``'s grammar forces next, now part of its output.

        They are fed to the model as one chunk with the token before them (see
        :meth:`_step`), not a step each. Not for a row that asked for log-probabilities:
        its confidence is the mean over every token, as the model would have picked them.
        """
        if sample.gate is None or sample.row.sampling.logprobs:
            return []
        # (one token short of the budget: a row's last token is one the model picked)
        forced = sample.gate.force(sample.budget - len(sample.tokens) - 1)
        sample.tokens.extend(forced)
        return forced

    def _step(self) -> None:
        """One decoding step of every decoding row, then one chunk of one row: a new row's
        prompt, or a picked token with the tokens its grammar forces after it.

        Kept apart because llama.cpp computes attention differently for one query token
        than for several: a sequence's step must look the same whatever else runs, so a
        decode step is one token per sequence, and a prompt chunk is one sequence's at
        least two tokens (see :meth:`_place`), as a whole prompt's prefill would be.
        """
        decoding = [
            s for s in self._slots if s.sample is not None and s.sample.next_token is not None
        ]
        if decoding:
            rows = []
            for slot in decoding:
                sample = slot.sample
                assert sample is not None and sample.next_token is not None
                rows.append((slot, [sample.next_token]))
            self._decode(rows, threads=self._threads[0])
            for i, slot in enumerate(decoding):
                assert slot.sample is not None
                slot.sample.next_token = None
                self._advance(slot, self._logits(i))
        prefilling = [s for s in self._slots if s.sample is not None and s.sample.todo]
        if prefilling:
            slot = prefilling[0]
            sample = slot.sample
            assert sample is not None
            chunk = sample.todo[: self.n_batch]
            if len(sample.todo) - len(chunk) == 1:  # never leave a one-token chunk
                chunk = chunk[:-1]
            self._decode([(slot, chunk)], threads=self._threads[1])
            sample.todo = sample.todo[len(chunk) :]
            if not sample.todo:
                self._advance(slot, self._logits(len(chunk) - 1))

    def _decode(self, rows: list[tuple[_Slot, list[int]]], *, threads: int) -> None:
        """Feed each slot its tokens (logits for each slot's last) in one llama_decode."""
        batch = self._batch
        n = 0
        for slot, tokens in rows:
            sample = slot.sample
            assert sample is not None
            for j, token in enumerate(tokens):
                batch.token[n], batch.pos[n], batch.n_seq_id[n] = token, sample.pos + j, 1
                batch.seq_id[n][0], batch.logits[n] = slot.seq, j == len(tokens) - 1
                n += 1
        batch.n_tokens = n
        if threads != self._current_threads:
            self._lib.llama_set_n_threads(self._ctx, threads, threads)
            self._current_threads = threads
        rc = self._lib.llama_decode(self._ctx, batch)
        if rc != 0:
            raise GenerationError(
                f"llama_decode failed with code {rc}",
                hint="the context may be too small for these prompts: load the model with "
                "a larger n_ctx= or fewer parallel= sequences",
            )
        for slot, tokens in rows:
            assert slot.sample is not None
            slot.cached.extend(tokens)
            slot.sample.pos += len(tokens)

    def _logits(self, index: int) -> NDArray[np.float32]:
        """A copy of the logits of the ``index``-th output of the last decode."""
        pointer = self._lib.llama_get_logits_ith(self._ctx, index)
        view = np.ctypeslib.as_array(
            ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(self._n_vocab,)
        )
        return view.copy()

    def _advance(self, slot: _Slot, scores: NDArray[np.float32]) -> None:
        sample = slot.sample
        assert sample is not None
        gate = sample.gate
        if gate is not None:
            gate.apply(scores, wrap_up=len(sample.tokens) >= sample.wrap_at)
        max_repeats = sample.row.sampling.max_repeats
        if max_repeats and break_loop(scores, sample.tokens, max_repeats):
            sample.looped = True
            sample.wrap_at = len(sample.tokens)  # a looping JSON value is closed: see break_loop
        token = pick_token(scores, sample.row.sampling, sample.rng)
        if self._lib.llama_vocab_is_eog(self._vocab, token):
            self._finish(slot, "stop")
            return
        sample.tokens.append(token)
        forced: list[int] = []
        if gate is not None:
            gate.advance(token)
            forced = self._force(sample)
            if gate.stopped:
                self._finish(slot, "stop")
                return
        stops = sample.row.sampling.stop
        if stops and self._hit_stop(sample.tokens, stops):
            self._finish(slot, "stop")
        elif len(sample.tokens) >= sample.budget:
            self._finish(slot, "length")
        elif forced:
            sample.todo = [token, *forced]
        else:
            sample.next_token = token

    def _finish(self, slot: _Slot, finish: str) -> None:
        sample = slot.sample
        assert sample is not None
        slot.sample = None
        job = sample.job
        text = self._llm.detokenize(sample.tokens).decode("utf-8", errors="replace")
        stops = sample.row.sampling.stop
        if stops:
            text = cut_at_stop(text, stops)
        gate = sample.gate
        job.outputs[sample.index] = RawOutput(
            text=text,
            completion_tokens=len(sample.tokens),
            finish_reason=finish_reason(finish, sample.looped),
            grammar_accepted=gate.accepting if gate is not None else True,
            token_logprobs=tuple(gate.token_logprobs) if gate is not None else None,
        )
        outputs = [o for o in job.outputs if o is not None]
        if not job.failed and len(outputs) == len(job.outputs):
            job.ticket.resolve(Generation(outputs, len(sample.row.prompt)))

    def _drop(self, slot: _Slot, error: Exception) -> None:
        """End ``slot``'s sample (and its row) with ``error``; forget what its cache holds."""
        sample = slot.sample
        if sample is None:
            return
        slot.sample = None
        self._lib.llama_memory_seq_rm(self._mem, slot.seq, -1, -1)
        slot.cached = []
        sample.job.failed = True
        sample.job.ticket.resolve(error)
        self._waiting = [s for s in self._waiting if s.job is not sample.job]

    def _hit_stop(self, tokens: list[int], stops: tuple[str, ...]) -> bool:
        tail = self._llm.detokenize(tokens[-16:]).decode("utf-8", errors="replace")
        return any(s in tail for s in stops)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
