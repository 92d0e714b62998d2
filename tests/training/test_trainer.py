"""What SFT hands TRL: the loss head projects only the trained positions, same loss."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from slmkit.agents import Trajectory
from slmkit.training.data import agent_conversation, assistant_token_mask, training_chat_template
from slmkit.training.trainer import trained_positions_only


@pytest.fixture(scope="module")
def batch(tokenizer: Any, gold_trajectories: list[Trajectory]) -> dict[str, torch.Tensor]:
    """Three real agent conversations, padded, labelled on the agent's tokens only."""
    template = training_chat_template(tokenizer)
    rows = [
        assistant_token_mask(tokenizer, template, agent_conversation(t))
        for t in gold_trajectories[:3]
    ]
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, mask) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention[i, : len(ids)] = 1
        labels[i, : len(ids)] = torch.tensor(
            [t if m else -100 for t, m in zip(ids, mask, strict=True)]
        )
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def test_the_loss_head_projects_only_trained_positions_and_learns_the_same(
    student_dir: Path, batch: dict[str, torch.Tensor], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside the block TRL's fused head projects only the labelled rows; the loss and the
    gradient equal transformers' full-logits ones; outside, TRL's own CPU path is back."""
    from transformers import AutoModelForCausalLM
    from trl.trainer import utils as trl_utils

    model = AutoModelForCausalLM.from_pretrained(str(student_dir), dtype=torch.float32)
    head, norm = model.get_output_embeddings().weight, model.model.norm.weight

    def loss_and_grads(**kwargs: Any) -> tuple[float, torch.Tensor, torch.Tensor]:
        model.zero_grad()
        loss = model(**batch, **kwargs).loss
        loss.backward()
        return float(loss.detach()), head.grad.clone(), norm.grad.clone()

    reference = loss_and_grads()  # transformers' cross-entropy over the full logits
    trl_utils.add_fused_lm_head(model)
    projected: list[int] = []
    chunked = trl_utils._ChunkedLogProbFunction

    class Spy:
        @staticmethod
        def apply(hidden: torch.Tensor, *args: Any) -> Any:
            projected.append(hidden.shape[0])
            return chunked.apply(hidden, *args)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Spy)
    with torch.no_grad():
        model(**batch, fused_lm_head=True)  # TRL's own CPU path: every position
    with trained_positions_only():
        compact = loss_and_grads(fused_lm_head=True)
    with torch.no_grad():
        model(**batch, fused_lm_head=True)  # and back after the block
    trained = int((batch["labels"][:, 1:] != -100).sum())
    positions = batch["labels"].shape[0] * (batch["labels"].shape[1] - 1)
    assert projected == [positions, trained, positions], (projected, trained)
    assert trained < positions / 3  # the premise: most of an agent conversation is context
    assert compact[0] == pytest.approx(reference[0], rel=1e-4)
    for got, want in zip(compact[1:], reference[1:], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-5)  # fp32 sum order


def test_a_batch_without_trained_tokens_gives_a_zero_loss(
    student_dir: Path, batch: dict[str, torch.Tensor]
) -> None:
    """A micro-batch of context only (a conversation cut before the agent spoke)."""
    from transformers import AutoModelForCausalLM
    from trl.trainer import utils as trl_utils

    model = AutoModelForCausalLM.from_pretrained(str(student_dir), dtype=torch.float32)
    trl_utils.add_fused_lm_head(model)
    with trained_positions_only():
        loss = model(
            **{**batch, "labels": torch.full_like(batch["labels"], -100)}, fused_lm_head=True
        ).loss
        loss.backward()
    assert float(loss.detach()) == 0.0
