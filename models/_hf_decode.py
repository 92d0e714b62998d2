"""The transformers backend's batched decoding loop: many rows, each its own everything.

``generate`` takes one sampling configuration and one random stream for a whole batch;
slmkit's rows (the calls of concurrent episodes) each carry their own constraint,
temperature, top-p, seed, stop strings and token budget. So the loop is written out:

* prompts are left-padded into one batch (positions counted from each row's first real
  token) and decoded with the model's KV cache;
* each step the grammar masks of all constrained rows are filled at once by llguidance
  in its own threads (:func:`~slmkit.models.guidance.fill_masks`), started before the
  step's logits are read, so on a GPU they overlap the forward pass; the logits of the
  rows that need the host (constrained or sampled) cross in one copy, greedy free-text
  rows take their argmax on the device;
* every row picks with :func:`~slmkit.models.sampler.pick_token` and its own seeded
  generator (the same sampler as llama.cpp);
* finished rows leave the batch (the cache keeps the rows still running), so a long
  row does not make the short ones pay for its steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from slmkit.models.base import Sampling
from slmkit.models.guidance import TokenGate, fill_masks
from slmkit.models.sampler import break_loop, cut_at_stop, pick_token, token_logprob

__all__ = ["HfRow", "decode_rows"]


@dataclass
class HfRow:
    """One sample to decode: its prompt ids, sampling, generator and (optional) gate."""

    prompt: list[int]
    sampling: Sampling
    rng: np.random.Generator
    budget: int
    wrap_at: int
    gate: TokenGate | None = None
    tokens: list[int] = field(default_factory=list)
    finish: str | None = None
    text: str = ""
    logprobs: list[float] | None = None
    """With a trace: the sampler's log-probability of each picked token (end included)."""
    end: int | None = None
    """The end-of-output token the row picked, if it ended on one."""
    looped: bool = False
    """The loop guard fired: the row finishes with "loop" (see break_loop)."""


def decode_rows(model: Any, tokenizer: Any, rows: list[HfRow], eos_ids: list[int]) -> None:
    """Decode ``rows`` together; each row ends with ``tokens``, ``text`` and ``finish``."""
    import torch

    device = model.device
    width = max(len(r.prompt) for r in rows)
    pad = int(tokenizer.pad_token_id)
    ids = torch.tensor([[pad] * (width - len(r.prompt)) + r.prompt for r in rows], device=device)
    attention = torch.tensor(
        [[0] * (width - len(r.prompt)) + [1] * len(r.prompt) for r in rows], device=device
    )
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    running = list(rows)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=attention, position_ids=positions, use_cache=True)
        cache = out.cache
        while True:
            picked = _pick(running, out.logits[:, -1, :], eos_ids, tokenizer)
            keep = [k for k, r in enumerate(running) if r.finish is None]
            if not keep:
                return
            if len(keep) < len(running):
                index = torch.tensor(keep, device=device)
                cache.batch_select_indices(index)
                attention, positions = attention[index], positions[index]
                running = [running[k] for k in keep]
                picked = [picked[k] for k in keep]
            attention = torch.cat([attention, attention.new_ones((len(running), 1))], dim=1)
            positions = positions[:, -1:] + 1
            out = model(
                input_ids=torch.tensor(picked, device=device)[:, None],
                attention_mask=attention,
                position_ids=positions,
                cache=cache,
                use_cache=True,
            )


def _pick(rows: list[HfRow], logits: Any, eos_ids: list[int], tokenizer: Any) -> list[int]:
    """Each row's next token from its logits (already on their way from the device)."""
    fill_masks([r.gate for r in rows if r.gate is not None])
    host = [
        k
        for k, r in enumerate(rows)
        if r.gate is not None or r.sampling.temperature > 0 or r.sampling.max_repeats
    ]
    device_rows = [k for k in range(len(rows)) if k not in set(host)]
    picked = [0] * len(rows)
    if device_rows:
        for k, token in zip(device_rows, logits[device_rows].argmax(-1).tolist(), strict=True):
            picked[k] = int(token)
    if host:
        scores = logits[host].float().cpu().numpy()
        for j, k in enumerate(host):
            row = rows[k]
            if row.gate is not None:
                row.gate.apply(scores[j], wrap_up=len(row.tokens) >= row.wrap_at)
            max_repeats = row.sampling.max_repeats
            if max_repeats and break_loop(scores[j], row.tokens, max_repeats):
                row.looped = True
                row.wrap_at = len(row.tokens)  # a looping JSON value is closed: see break_loop
            picked[k] = pick_token(scores[j], row.sampling, row.rng)
            if row.logprobs is not None:
                row.logprobs.append(token_logprob(scores[j], row.sampling, picked[k]))
    for k in device_rows:
        lps = rows[k].logprobs
        if lps is not None:
            lps.append(0.0)  # greedy: the pick was certain
    for row, token in zip(rows, picked, strict=True):
        _advance(row, token, eos_ids, tokenizer)
    return picked


def _advance(row: HfRow, token: int, eos_ids: list[int], tokenizer: Any) -> None:
    if token in eos_ids:
        row.finish, row.end = "stop", token
    else:
        row.tokens.append(token)
        if row.gate is not None:
            row.gate.advance(token)
            if row.gate.stopped:
                row.finish = "stop"
        if row.finish is None and len(row.tokens) >= row.budget:
            row.finish = "length"
    stops = row.sampling.stop
    if stops and row.finish is None:
        text = tokenizer.decode(row.tokens[-16:], skip_special_tokens=True)
        if any(s in text for s in stops):
            row.finish = "stop"
    if row.finish is not None:
        row.text = tokenizer.decode(row.tokens, skip_special_tokens=True)
        if stops:
            row.text = cut_at_stop(row.text, stops)
