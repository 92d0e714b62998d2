"""Grammar-constrained decoding with llguidance, shared by the local backends.

The llama.cpp and transformers backends both decode through the same engine: a
:class:`~slmkit.models.schema.Constraint` is compiled once into an llguidance grammar
(JSON Schema with full keyword support, integer bounds included, or a Lark grammar,
which can also express "a verbatim substring of this text"), and a :class:`TokenGate`
per sampled sequence masks the logits at every step so only tokens that keep the
output inside the grammar can be picked. One engine means one behaviour: a schema that
works on CPU works the same way on GPU.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

import llguidance
import numpy as np
from numpy.typing import NDArray

from slmkit.models.errors import ConstraintError
from slmkit.models.schema import Constraint

__all__ = [
    "JSON_OPTIONS",
    "GrammarCache",
    "TokenGate",
    "closing_bias",
    "closing_reserve",
    "compile_constraint",
    "fill_masks",
]

JSON_OPTIONS: dict[str, Any] = {
    # One canonical layout (`{"a": 1, "b": [2, 3]}`): small models follow it well and
    # it costs no tokens on free whitespace, which they otherwise emit at random.
    "whitespace_flexible": False,
    "item_separator": ", ",
    "key_separator": ": ",
}


def compile_constraint(constraint: Constraint, tokenizer: llguidance.LLTokenizer) -> str:
    """Compile ``constraint`` to an llguidance grammar and check it can be enforced.

    Raises :class:`ConstraintError` when the schema uses a keyword llguidance cannot
    enforce or is unsatisfiable: we refuse rather than decode without the constraint.
    """
    if constraint.kind == "json":
        try:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(
                json.dumps(constraint.json_schema), defaults=JSON_OPTIONS
            )
        except ValueError as exc:
            raise ConstraintError(f"cannot compile the JSON schema: {exc}") from exc
    else:
        assert constraint.lark is not None
        grammar = llguidance.LLMatcher.grammar_from_lark(constraint.lark)
    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, tokenizer)
    if is_error:
        raise ConstraintError(
            f"the {constraint.describe()} cannot be enforced: {messages[0] if messages else '?'}",
            hint="remove unsupported keywords or contradictory bounds; slmkit never decodes "
            "without the constraint you asked for",
        )
    return str(grammar)


class GrammarCache:
    """Compiled grammars of one tokenizer, least recently used dropped beyond ``size``.

    Agent loops reuse a few schemas thousands of times (compile once), but citation
    grammars embed the retrieved passages, so a long-lived server sees a new one per
    question: an unbounded dict would grow for as long as the process lives.
    """

    def __init__(self, tokenizer: llguidance.LLTokenizer, size: int = 128) -> None:
        self._tokenizer = tokenizer
        self._size = size
        self._grammars: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._grammars)

    def get(self, constraint: Constraint) -> str:
        """The compiled grammar of ``constraint`` (compiled and checked on first use)."""
        with self._lock:
            if constraint.key in self._grammars:
                self._grammars.move_to_end(constraint.key)
                return self._grammars[constraint.key]
        grammar = compile_constraint(constraint, self._tokenizer)
        with self._lock:
            self._grammars[constraint.key] = grammar
            while len(self._grammars) > self._size:
                self._grammars.popitem(last=False)
        return grammar


_CLOSERS = frozenset(b'"}]')
_CLOSING_BONUS = 30.0
_bias_cache: dict[int, NDArray[np.float32]] = {}


def closing_bias(tokenizer: llguidance.LLTokenizer, vocab_size: int) -> NDArray[np.float32]:
    """A logit bonus for tokens made only of JSON closers (``"``, ``}``, ``]``).

    Near the end of the token budget a JSON output still inside a long string would be
    cut off and fail to parse. Adding this bonus (to tokens the grammar allows anyway)
    makes the model wrap up: close the string, then the containers, as soon as the
    grammar permits. It never admits a token the grammar forbids.
    """
    key = id(tokenizer)
    if key not in _bias_cache:
        bias: NDArray[np.float32] = np.zeros(vocab_size, dtype=np.float32)
        for tok in range(min(vocab_size, tokenizer.vocab_size)):
            piece = tokenizer.decode_bytes([tok]).strip(b" ")
            if not piece or not all(c in _CLOSERS for c in piece):
                continue
            if piece.startswith(b'"'):  # ends the open string first (inside one, } is text)
                bias[tok] = _CLOSING_BONUS + 10
            elif b'"' not in piece:
                bias[tok] = _CLOSING_BONUS
        _bias_cache[key] = bias
    return _bias_cache[key]


def closing_reserve(max_tokens: int) -> int:
    """How many tokens before the budget ends a JSON output starts wrapping up."""
    return max(4, min(48, max_tokens // 4))


class TokenGate:
    """Masks logits for one sequence so that only grammar-conforming tokens remain.

    The gate is fed every token the sampler picked (:meth:`advance`) and produces the
    allowed-token mask for the next step (:meth:`allowed`). It also records, for each
    picked token, its log-probability under the model's *unconstrained* distribution:
    a cheap confidence signal for routing to a larger model.
    """

    def __init__(
        self,
        grammar: str,
        tokenizer: llguidance.LLTokenizer,
        vocab_size: int,
        *,
        closing: NDArray[np.float32] | None = None,
    ) -> None:
        self._closing = closing
        self._matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
        if self._matcher.is_error():
            raise ConstraintError(f"grammar rejected: {self._matcher.get_error()}")
        self._vocab_size = vocab_size
        self._words = (tokenizer.vocab_size + 31) // 32
        self._bitmask = np.zeros(self._words, dtype=np.int32)
        self._primed = False  # the bitmask already holds the next mask (fill_masks)
        self._last_logprobs: NDArray[np.float32] | None = None
        self.token_logprobs: list[float] = []
        self.failed = False

    @property
    def accepting(self) -> bool:
        """Whether the text so far is a complete sentence of the grammar."""
        return bool(self._matcher.is_accepting()) and not self.failed

    @property
    def stopped(self) -> bool:
        return bool(self._matcher.is_stopped())

    @property
    def error(self) -> str | None:
        return str(self._matcher.get_error()) if self._matcher.is_error() else None

    def advance(self, token: int) -> None:
        """Consume the token the sampler picked."""
        if self._last_logprobs is not None and token < len(self._last_logprobs):
            self.token_logprobs.append(float(self._last_logprobs[token]))
        if self._matcher.is_stopped():
            return
        if not self._matcher.consume_token(token):
            self.failed = True

    def force(self, limit: int) -> list[int]:
        """Consume and return the tokens the grammar allows no alternative to (at most
        ``limit``): the keys and punctuation of a JSON object, a const's text.

        A backend feeds them to the model as one chunk instead of a step each, which is
        what a step of an agent's JSON action mostly is (11 of the 22 tokens of
        ``{"name": "calculator", "arguments": {"expression": "49 - 93"}}``). llguidance
        holds back a token at the forced text's end whose boundary the next free text
        could move, so the model still writes that part as it would. No log-probability is
        recorded for them (the model chose nothing).
        """
        if limit <= 0 or self.failed or self._matcher.is_stopped():
            return []
        tokens = list(self._matcher.compute_ff_tokens())[:limit]
        if tokens and not self._matcher.consume_tokens(tokens):
            self.failed = True
        self._primed = False
        return tokens

    def allowed(self) -> NDArray[np.bool_]:
        """Boolean mask over the vocabulary of the tokens allowed next."""
        if self._primed:
            self._primed = False
        else:
            self._matcher.unsafe_compute_mask_ptr(self._bitmask.ctypes.data, self._bitmask.nbytes)
        bits = np.unpackbits(self._bitmask.view(np.uint8), bitorder="little")
        mask: NDArray[np.bool_] = np.zeros(self._vocab_size, dtype=np.bool_)
        n = min(self._vocab_size, bits.shape[0])
        mask[:n] = bits[:n].astype(np.bool_)
        return mask

    def allowed_bits(self, words: int | None = None) -> NDArray[np.int32]:
        """The allowed-token mask for the next step, packed: bit ``t % 32`` of word ``t // 32``.

        A copy, ``words`` int32 wide (zero-padded): what RL stores per sampled token to
        score it under the same mask the sampler drew it under.
        """
        self._matcher.unsafe_compute_mask_ptr(self._bitmask.ctypes.data, self._bitmask.nbytes)
        out: NDArray[np.int32] = np.zeros(words or self._words, dtype=np.int32)
        n = min(out.shape[0], self._words)
        out[:n] = self._bitmask[:n]
        return out

    def apply(self, scores: NDArray[np.float32], *, wrap_up: bool = False) -> NDArray[np.float32]:
        """Record the unconstrained log-probabilities, then mask ``scores`` in place.

        With ``wrap_up`` (the token budget is nearly spent) closing tokens get a bonus,
        so the output completes instead of being cut off mid-string.
        """
        shifted = scores - np.max(scores)
        self._last_logprobs = shifted - np.log(np.sum(np.exp(shifted)))
        if wrap_up and self._closing is not None:
            scores += self._closing[: scores.shape[0]]
        scores[~self.allowed()] = -np.inf
        return scores


_executor_lock = threading.Lock()
_executors: list[llguidance.LLExecutor] = []


def fill_masks(gates: list[TokenGate]) -> None:
    """Compute the next-token masks of many gates at once, for a batched decoding step.

    llguidance fills them in its own threads with the GIL released (the costly part of
    constrained decoding at large batches); each gate's next :meth:`TokenGate.apply`
    then uses its mask instead of computing it. Gates that are stopped or failed are
    skipped (they take no more tokens).
    """
    live = [g for g in gates if not (g.failed or g.stopped)]
    if not live:
        return
    words = max(g._words for g in live)
    buffer = np.zeros((len(live), words), dtype=np.int32)
    with _executor_lock:
        if not _executors:
            _executors.append(llguidance.LLExecutor())
        executor = _executors[0]
    executor.unsafe_compute_mask_ptr(
        [(g._matcher, i) for i, g in enumerate(live)], buffer.ctypes.data, words * 4, len(live)
    )
    for i, gate in enumerate(live):
        gate._bitmask[:] = buffer[i, : gate._words]
        gate._primed = True
