"""An agent episode as the exact tokens the policy read and sampled, with their grammar masks.

GRPO scores a rollout by the log-probabilities of its sampled tokens. Re-tokenizing the
episode's text does not give those tokens back: under a grammar the sampler may spell a
text with other tokens than the tokenizer would, and the agent re-renders its own earlier
actions from their parsed form. And the tokens were drawn from the *masked* distribution:
a token the grammar forced has probability 1 there, however unlikely it is unconstrained,
so a trainer that scores it unconstrained pushes on tokens the policy never chose. Here:

::

    policy (TransformersModel, trace=True, prompt_tokens=PrefixTokens)
        |  every call's TokenTrace: prompt ids, sampled ids (+ end of turn), sampler logprobs
        v
    EpisodeRecorder (one per episode; wraps the shared policy model)
        |  records (constraint, token budget, trace) per call, through its public chat_batch
        v
    episode_tokens(): the last call's prompt + sampled ids is the sequence; the earlier
        calls whose prompt + sampled ids it starts with are the agent's turns (mask 1), the
        rest (observations, turn headers) is environment (mask 0); each agent token gets
        the grammar's allowed-token bitmask, replayed with llguidance over the sampled ids

:class:`PrefixTokens` makes the next call of an episode read the tokens the episode already
has (it tokenizes only the new text), so the sequence the trainer scores is exactly what
the policy read. Where the agent re-rendered an earlier action as different text, that
turn becomes context (mask 0) and is counted in :attr:`EpisodeTokens.dropped_turns`; a
call the agent discarded (and re-decoded) is not part of the episode at all.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Unpack

import numpy as np
from numpy.typing import NDArray

from slmkit.models import (
    ChatModel,
    ChatOptions,
    Completion,
    Constraint,
    GrammarCache,
    Message,
    Request,
    RowResult,
    Sampling,
    TokenGate,
    TokenTrace,
    closing_reserve,
    end_of_turn,
    grammar_tokenizer,
)
from slmkit.training.errors import TrainingError

__all__ = ["EpisodeRecorder", "EpisodeTokens", "GrammarView", "PrefixTokens", "episode_tokens"]


@dataclass
class GrammarView:
    """What replaying the sampler's grammar needs: llguidance's tokenizer, widths, end token."""

    lltokenizer: Any
    vocab_size: int
    end_token: int
    grammars: GrammarCache

    @classmethod
    def of(cls, policy: Any, tokenizer: Any = None) -> GrammarView:
        """The view of a transformers policy, or one built from ``tokenizer`` (vLLM)."""
        if hasattr(policy, "lltokenizer"):
            lltok = policy.lltokenizer
            return cls(lltok, int(policy.vocab_size), int(policy.end_token), GrammarCache(lltok))
        vocab = len(tokenizer)
        lltok = grammar_tokenizer(tokenizer, vocab, "policy")
        return cls(lltok, vocab, end_of_turn(tokenizer), GrammarCache(lltok))

    def grammar(self, constraint: Constraint) -> str:
        return self.grammars.get(constraint)


class PrefixTokens:
    """Prompt text -> token ids, reusing the ids of the longest known text it starts with.

    Registered texts are the rendered prompt and sampled continuation of every call of
    the step's episodes; a new prompt that extends one is that one's ids plus the
    tokenization of the rest. Safe to use from the episode threads at once.
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._known: dict[str, tuple[int, ...]] = {}
        self._lock = threading.Lock()

    def __call__(self, text: str) -> list[int]:
        with self._lock:
            best = max((t for t in self._known if text.startswith(t)), key=len, default="")
            head = list(self._known.get(best, ()))
        rest = text[len(best) :]
        return head + (self._tokenizer.encode(rest, add_special_tokens=False) if rest else [])

    def register(self, ids: Sequence[int]) -> None:
        """Remember ``ids`` under their text (special tokens spelled out)."""
        text = self._tokenizer.decode(list(ids), skip_special_tokens=False)
        with self._lock:
            self._known.setdefault(text, tuple(ids))

    def clear(self) -> None:
        with self._lock:
            self._known.clear()


@dataclass
class _Call:
    constraint: Constraint | None
    max_tokens: int
    traces: list[TokenTrace | None]


class EpisodeRecorder(ChatModel):
    """The policy as one episode sees it: every call goes to ``policy`` and is recorded.

    Calls go through the policy's public ``chat_batch`` (its batching, if any, applies);
    ``policy`` must trace (a :class:`~slmkit.models.hf.TransformersModel` with
    ``trace=True``, or any backend whose candidates carry a :class:`TokenTrace`).
    """

    backend = "recorder"

    def __init__(self, policy: ChatModel, prefixes: PrefixTokens | None = None) -> None:
        self.policy = policy
        self.name = policy.name
        self.supports_grammar = policy.supports_grammar
        self.supports_logprobs = policy.supports_logprobs
        self.prefixes = prefixes
        self.calls: list[_Call] = []

    def chat_batch(
        self, conversations: Sequence[Sequence[Message]], **options: Unpack[ChatOptions]
    ) -> list[Completion]:
        completions = self.policy.chat_batch(conversations, **options)
        constraint = self._constraint(options.get("schema"), options.get("grammar"))
        max_tokens = int(options.get("max_tokens", Sampling.max_tokens))
        for completion in completions:
            traces = [c.trace for c in completion.candidates]
            self.calls.append(_Call(constraint, max_tokens, traces))
            if self.prefixes is not None:
                for t in traces:
                    if t is not None:
                        self.prefixes.register(t.prompt_ids + t.token_ids)
        return completions

    def _generate_batch(self, requests: list[Request]) -> list[RowResult]:
        raise TrainingError(
            "internal: the episode recorder generates through the policy's chat_batch",
            hint="report this",
        )


@dataclass
class EpisodeTokens:
    """One episode as GRPO trains on it.

    ``completion_ids`` follow ``prompt_ids``; ``env_mask`` is 1 on the agent's sampled
    tokens that are trained, 0 elsewhere; ``allowed[i]`` is the packed (32 tokens per
    int32, little-endian bits) bitmask the sampler drew token ``i`` under, None where any
    token was allowed; ``sampled_logprobs[i]`` the sampler's log-probability (0.0 outside
    the agent's tokens).
    """

    prompt_ids: list[int]
    completion_ids: list[int]
    env_mask: list[int]
    allowed: list[NDArray[np.int32] | None]
    sampled_logprobs: list[float]
    agent_turns: int = 0
    discarded_calls: int = 0
    dropped_turns: int = 0
    unreplayable_tokens: int = 0
    wrap_up_tokens: int = 0

    def truncate(self, length: int) -> bool:
        """Keep the first ``length`` completion tokens; True when something was cut."""
        if len(self.completion_ids) <= length:
            return False
        for name in ("completion_ids", "env_mask", "allowed", "sampled_logprobs"):
            setattr(self, name, getattr(self, name)[:length])
        return True


def _replay(
    policy: GrammarView, call: _Call, ids: Sequence[int]
) -> tuple[list[NDArray[np.int32] | None], list[int]]:
    """Per sampled token: the bitmask the sampler drew it under, and whether it trains.

    Re-runs the grammar over the sampled ids, as the sampler's gate did: the mask before
    each token; after a complete output only the end token was allowed. Tokens drawn in
    the wrap-up window (a logit bonus on JSON closers, a heuristic of the sampler rather
    than the policy) and tokens the grammar rejects (a backend whose grammar engine
    differs) are not trained.
    """
    if call.constraint is None:
        return [None] * len(ids), [1] * len(ids)
    gate = TokenGate(policy.grammar(call.constraint), policy.lltokenizer, policy.vocab_size)
    words = (policy.vocab_size + 31) // 32
    end = int(policy.end_token)
    wrap_at = call.max_tokens - closing_reserve(call.max_tokens)
    json_out = call.constraint.kind == "json"
    masks: list[NDArray[np.int32] | None] = []
    train: list[int] = []
    for step, token in enumerate(ids):
        if step:
            gate.advance(int(ids[step - 1]))
        if gate.stopped or gate.failed:
            only_end: NDArray[np.uint32] = np.zeros(words, dtype=np.uint32)
            only_end[end // 32] = np.uint32(1 << (end % 32))
            masks.append(only_end.view(np.int32))
            train.append(int(token == end and not gate.failed))
            continue
        bits = gate.allowed_bits(words)
        ok = bool((int(bits.view(np.uint32)[token // 32]) >> (token % 32)) & 1)
        masks.append(bits)
        train.append(int(ok and not (json_out and step >= wrap_at)))
    return masks, train


def episode_tokens(
    recorder: EpisodeRecorder, view: GrammarView, fallback_prompt: Callable[[], list[int]]
) -> EpisodeTokens:
    """The training tokens of the episode ``recorder`` saw (see the module docs).

    ``fallback_prompt`` gives the prompt of an episode in which the policy never produced a
    traced output (it failed first): its completion is one untrained end token.

    Raises:
        TrainingError: a call with several candidates (the chosen one is unknown) or
            without a trace (the backend cannot trace).
    """
    traced: list[tuple[_Call, tuple[int, ...], tuple[int, ...], tuple[float, ...]]] = []
    for call in recorder.calls:
        if len(call.traces) != 1:
            raise TrainingError(
                "an RL rollout decoded several candidates in one call",
                hint="RL rollouts sample one action per step: set sample_k to 1",
            )
        trace = call.traces[0]
        if trace is None:
            raise TrainingError(
                f"the {recorder.policy.backend} policy returned no token trace",
                hint="RL rollouts need a backend that traces its samples (transformers)",
            )
        lps = trace.logprobs or (0.0,) * len(trace.token_ids)
        traced.append((call, trace.prompt_ids, trace.token_ids, lps))
    if not traced:
        end = view.end_token
        return EpisodeTokens(
            fallback_prompt(),
            [end],
            [0],
            [None],
            [0.0],
        )
    # Walk back from the last call: an earlier call is one of the agent's turns in the
    # final sequence when its prompt + sampled ids begin the later call's prompt.
    path = [len(traced) - 1]
    for j in range(len(traced) - 2, -1, -1):
        _, p_next, _, _ = traced[path[-1]]
        _, p, ids, _ = traced[j]
        seq = p + ids
        if p_next[: len(seq)] == seq:
            path.append(j)
    path.reverse()
    first_prompt = list(traced[path[0]][1])
    _, last_prompt, last_ids, _ = traced[path[-1]]
    full = list(last_prompt) + list(last_ids)
    n = len(full) - len(first_prompt)
    out = EpisodeTokens(first_prompt, full[len(first_prompt) :], [0] * n, [None] * n, [0.0] * n)
    out.agent_turns = len(path)
    # Off the path: a call the agent discarded (it re-decoded from the same prompt, e.g. a
    # repeated call), or a turn whose text the agent re-rendered differently (lost).
    prompts = {traced[j][1] for j in path}
    off = [j for j in range(len(traced)) if j not in path]
    out.discarded_calls = sum(1 for j in off if traced[j][1] in prompts)
    out.dropped_turns = len(off) - out.discarded_calls
    for j in path:
        call, p, ids, lps = traced[j]
        masks, train = _replay(view, call, ids)
        start = len(p) - len(first_prompt)
        for k, (mask, bit, lp) in enumerate(zip(masks, train, lps, strict=True)):
            out.allowed[start + k] = mask
            out.env_mask[start + k] = bit
            out.sampled_logprobs[start + k] = float(lp)
        out.unreplayable_tokens += sum(
            1 for k, bit in enumerate(train) if not bit and not _is_wrap(call, k)
        )
        out.wrap_up_tokens += sum(1 for k in range(len(ids)) if _is_wrap(call, k))
    return out


def _is_wrap(call: _Call, step: int) -> bool:
    if call.constraint is None or call.constraint.kind != "json":
        return False
    return step >= call.max_tokens - closing_reserve(call.max_tokens)
