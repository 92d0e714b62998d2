"""TRL's GRPOTrainer, scoring each agent token under the grammar mask it was sampled under.

The agent's actions are decoded under a grammar: at each step the sampler drew from the
model's distribution restricted to the allowed tokens. TRL computes the policy's (and the
reference's) log-probabilities over the whole vocabulary, so for a token the grammar
forced (a ``"``, a key name, ``}``) it sees a small probability where the policy had 1,
and the policy gradient and KL push on mass the sampler never used: negative advantages
spread probability over tokens the grammar forbids (the entropy of the unconstrained
distribution climbs), and the log-probabilities the loss uses are not those of the policy
that acted. Here the rollout hands over, per completion token, the packed bitmask of the
tokens allowed when it was sampled (:mod:`slmkit.training.traces`), and every
log-probability the trainer computes (old, reference, current; the entropy too) is taken
under that mask, with the sampler's min-p cut (:data:`slmkit.models.MIN_P`, on the
untempered masked distribution) and at the sampling temperature: the distribution
:func:`slmkit.models.sampler.pick_token` draws from. A forced token then has
log-probability 0 and no gradient, and the trainer's log-probabilities equal the sampler's.

Text-only causal LMs; the full logits of the completion positions are materialised (one
chunk of rows at a time), which costs memory TRL's fused head avoids.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from trl import GRPOTrainer

from slmkit.models import MIN_P

__all__ = ["GrammarGRPOTrainer", "pack_allowed", "unpack_allowed"]

_ALL = -1  # an int32 word with every bit set: every token allowed


def pack_allowed(rows: list[list[Any]], length: int, vocab: int) -> torch.Tensor:
    """``(rows, length, words)`` int32 bitmasks; None entries and padding allow everything.

    A mask narrower than ``vocab`` (a tokenizer smaller than the output layer) leaves the
    rest of the vocabulary disallowed, as the sampler did.
    """
    words = (vocab + 31) // 32
    out: np.ndarray[Any, np.dtype[np.int32]] = np.full(
        (len(rows), length, words), _ALL, dtype=np.int32
    )
    for i, row in enumerate(rows):
        for t, bits in enumerate(row[:length]):
            if bits is not None:
                out[i, t] = 0
                out[i, t, : min(words, len(bits))] = bits[:words]
    return torch.from_numpy(out)


def unpack_allowed(words: torch.Tensor, vocab: int) -> torch.Tensor:
    """``(..., words)`` int32 bitmasks -> ``(..., vocab)`` booleans (bit t % 32 of word t // 32)."""
    shifts = torch.arange(32, device=words.device, dtype=torch.int32)
    bits = ((words.unsqueeze(-1) >> shifts) & 1).to(torch.bool)
    flat = bits.reshape(*words.shape[:-1], words.shape[-1] * 32)
    if flat.shape[-1] < vocab:
        pad = torch.zeros(*flat.shape[:-1], vocab - flat.shape[-1], dtype=torch.bool)
        flat = torch.cat([flat, pad.to(flat.device)], dim=-1)
    return flat[..., :vocab]


class GrammarGRPOTrainer(GRPOTrainer):  # type: ignore[misc]
    """GRPOTrainer whose log-probabilities respect the rollout's grammar masks.

    The ``rollout_func`` returns an ``allowed`` field: per sample, per completion token,
    the packed bitmask (or None: any token). Without it this is TRL's trainer unchanged.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending_allowed: list[list[Any]] | None = None
        self._allowed: torch.Tensor | None = None

    # The rollout's masks travel next to its tokens: taken out of the extra fields (the
    # reward functions don't need them) and put into the batch TRL shuffles and splits.

    def _generate(self, prompts: list[Any]) -> Any:
        result = list(super()._generate(prompts))
        self._pending_allowed = result[5].pop("allowed", None)
        return tuple(result)

    def _generate_and_score_completions(self, inputs: Any) -> dict[str, Any]:
        try:
            output: dict[str, Any] = super()._generate_and_score_completions(inputs)
            pending = self._pending_allowed
        finally:
            self._pending_allowed = None
        if pending is not None:
            length = int(output["completion_ids"].shape[1])
            output["allowed"] = pack_allowed(pending, length, self._vocab()).to(
                output["completion_ids"].device
            )
        return output

    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> Any:
        self._allowed = inputs.get("allowed")
        try:
            return super()._compute_loss(model, inputs)
        finally:
            self._allowed = None

    def _vocab(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])

    def _get_per_token_logps_and_entropies(
        self,
        model: Any,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        logits_to_keep: int,
        batch_size: int | None = None,
        compute_entropy: bool = False,
        compute_aux_loss: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        allowed = self._allowed
        if allowed is None and self._pending_allowed is not None:
            allowed = pack_allowed(self._pending_allowed, logits_to_keep, self._vocab())
        if allowed is None:
            return super()._get_per_token_logps_and_entropies(  # type: ignore[no-any-return]
                model,
                input_ids,
                attention_mask,
                logits_to_keep,
                batch_size=batch_size,
                compute_entropy=compute_entropy,
                compute_aux_loss=compute_aux_loss,
                **kwargs,
            )
        if any(v is not None for v in kwargs.values()):
            raise ValueError("GrammarGRPOTrainer scores text-only models")
        return masked_logps(
            model,
            input_ids,
            attention_mask,
            logits_to_keep,
            allowed.to(input_ids.device),
            temperature=self.temperature,
            batch_size=batch_size or input_ids.size(0),
            compute_entropy=compute_entropy,
            autocast=self.accelerator.autocast,
        )


def masked_logps(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    logits_to_keep: int,
    allowed: torch.Tensor,
    *,
    temperature: float = 1.0,
    batch_size: int = 1,
    compute_entropy: bool = False,
    autocast: Any = None,
) -> tuple[torch.Tensor, torch.Tensor | None, None]:
    """Log-probabilities (and entropies) of the last ``logits_to_keep`` tokens under masks.

    ``allowed`` is ``(rows, logits_to_keep, words)`` packed bitmasks. A token outside its
    own mask (never a sampled agent token; padding or context can be) is let in, so every
    value is finite.
    """
    from contextlib import nullcontext

    logps, entropies = [], []
    labels_all = input_ids[:, -logits_to_keep:]
    for start in range(0, input_ids.size(0), batch_size):
        end = min(start + batch_size, input_ids.size(0))
        with autocast() if autocast is not None else nullcontext():
            out = model(
                input_ids=input_ids[start:end],
                attention_mask=attention_mask[start:end],
                logits_to_keep=logits_to_keep + 1,
                use_cache=False,
            )
        logits = out.logits[:, :-1, :].float()
        labels = labels_all[start:end].unsqueeze(-1)
        ok = unpack_allowed(allowed[start:end], logits.shape[-1])
        ok = ok.scatter(-1, labels, True)
        logits = logits.masked_fill(~ok, float("-inf"))
        with torch.no_grad():  # the sampler's min-p cut, on the untempered masked distribution
            probs = torch.softmax(logits, dim=-1)
            ok &= probs >= MIN_P * probs.amax(dim=-1, keepdim=True)
            ok = ok.scatter(-1, labels, True)
        lp = torch.log_softmax((logits / temperature).masked_fill(~ok, float("-inf")), dim=-1)
        logps.append(lp.gather(-1, labels).squeeze(-1))
        if compute_entropy:
            entropies.append(-(lp.exp() * lp.masked_fill(~ok, 0.0)).sum(-1))
    return torch.cat(logps), (torch.cat(entropies) if compute_entropy else None), None
