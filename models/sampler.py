"""Picking the next token from a row's logits: one sampler for both local backends.

llama.cpp and transformers hand each row's (grammar-masked) logits to
:func:`pick_token`, so a seed means the same thing on both, and a sampled row's output
depends on its own seed only, never on what else shares its batch.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from slmkit.models.base import Sampling

__all__ = ["MIN_P", "break_loop", "cut_at_stop", "finish_reason", "pick_token", "token_logprob"]

MIN_P = 0.05
"""llama.cpp's default min-p: prunes the long tail of junk tokens that high temperatures
otherwise let into free-text fields (applied before the temperature, as llama.cpp does)."""


def pick_token(scores: NDArray[np.float32], sampling: Sampling, rng: np.random.Generator) -> int:
    """The next token from (already masked) ``scores``: argmax when greedy, else sampled.

    Sampling follows llama.cpp's chain: top-p and min-p on the untempered distribution,
    then the temperature over what survived, then one draw from ``rng``.
    """
    if sampling.temperature <= 0:
        return int(np.argmax(scores))
    tempered = _tempered(scores, sampling)
    weights = np.exp(tempered - np.max(tempered))
    return int(rng.choice(weights.shape[0], p=weights / weights.sum()))


def token_logprob(scores: NDArray[np.float32], sampling: Sampling, token: int) -> float:
    """The log-probability :func:`pick_token` gave ``token`` (0.0 when greedy).

    What RL needs to check that its trainer scores a token as the sampler drew it.
    """
    if sampling.temperature <= 0:
        return 0.0
    tempered = _tempered(scores, sampling)
    top = float(np.max(tempered))
    return float(tempered[token] - top - np.log(np.sum(np.exp(tempered - top))))


def _tempered(scores: NDArray[np.float32], sampling: Sampling) -> NDArray[np.float64]:
    """The sampler's tempered logits: -inf outside what top-p and min-p keep."""
    logits = scores.astype(np.float64)
    probs = np.exp(logits - np.max(logits))
    probs /= probs.sum()
    keep = probs >= MIN_P * probs.max()
    if sampling.top_p < 1.0:
        order = np.argsort(-probs)
        cumulative = np.cumsum(probs[order])
        cut = int(np.searchsorted(cumulative, sampling.top_p)) + 1
        nucleus = np.zeros_like(keep)
        nucleus[order[:cut]] = True
        keep &= nucleus
    tempered: NDArray[np.float64] = np.where(keep, logits / sampling.temperature, -np.inf)
    return tempered


LOOP_MAX_PERIOD = 16
"""Longest block (in tokens) :func:`break_loop` looks for."""
LOOP_MIN_TOKENS = 12
"""Shortest run :func:`break_loop` cuts: ``1000000`` or ``2*2*2`` are numbers, not loops."""


def break_loop(scores: NDArray[np.float32], tokens: list[int], max_repeats: int) -> bool:
    """Forbid (in place) the token that would make a block of ``tokens`` appear more than
    ``max_repeats`` times in a row (with 2, the token completing a third copy); True when
    it did. Runs of at least :data:`LOOP_MIN_TOKENS` tokens are judged, so a short block
    may appear more often before its run is that long.

    A grammar guarantees the shape of a JSON value, not its sense: a small model inside
    a string may loop (``"12*13*13*13*..."``, ``"8000 m = 8000 m, 8000 m = ..."``) until
    the token budget ends, and every token of the loop is allowed. This works on the
    already-masked scores, so it only ever picks among tokens the grammar allows, and it
    never forbids the only allowed token (a loop the grammar forces stays). A block is 1
    to :data:`LOOP_MAX_PERIOD` tokens; runs shorter than :data:`LOOP_MIN_TOKENS` are
    left alone. Unlike a repetition penalty it does not touch a token that was merely
    seen before, so copying a value from the prompt or repeating a JSON key is free.

    Both local decoders also start wrapping up a JSON output once this fired (the
    closing bias of :func:`~slmkit.models.guidance.closing_bias`): a value that loops is
    closed, not steered into a variation of the same loop. Banned alone, one token of
    ``The result is 3417. The result is 3417. The result is 3417.`` changes, and the model
    goes on ``This is a 3417. The result is 3417. ...`` to the length bound (185 tokens,
    then a retry); closed, the answer ends there (36 tokens).
    """
    n = len(tokens)
    for period in range(1, LOOP_MAX_PERIOD + 1):
        span = max((max_repeats + 1) * period, LOOP_MIN_TOKENS)
        if n < span - 1:
            break
        start = n - span + 1
        if all(tokens[k] == tokens[k + period] for k in range(start, n - period)):
            banned = tokens[n - period]
            if np.isfinite(scores[banned]) and np.count_nonzero(np.isfinite(scores)) > 1:
                scores[banned] = -np.inf
                return True
            return False
    return False


def finish_reason(finish: str | None, looped: bool) -> str:
    """How a row ended: ``stop``, ``length`` (also a row still unfinished), or ``loop``: it
    stopped after :func:`break_loop` fired on it, which closed its JSON output."""
    if looped and finish == "stop":
        return "loop"
    return finish or "length"


def cut_at_stop(text: str, stops: tuple[str, ...]) -> str:
    """``text`` up to the first stop string in it."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
    return text[:cut]
