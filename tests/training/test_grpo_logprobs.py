"""The invariant GRPO rests on: the trainer scores the tokens the policy sampled, as sampled.

Real constrained multi-turn episodes (the ``thermostat`` environment: a grammar-constrained
tool call, an observation, a grammar-constrained final answer) by the real embedded model,
through TRL's real GRPOTrainer batch preparation. The reference log-probabilities TRL
computes for the agent's tokens must equal the log-probabilities the sampler drew them
with, and the observation and turn-header tokens must be outside the loss.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch


@pytest.fixture(scope="module")
def trainer_and_rollout(student_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig

    from slmkit.training.config import RlConfig
    from slmkit.training.grpo_trainer import GrammarGRPOTrainer
    from slmkit.training.rl import _dataset
    from slmkit.training.rollout import AgentRollout, env_reward

    rows, tasks = _dataset(RlConfig(env="thermostat", n=1))
    tokenizer = AutoTokenizer.from_pretrained(str(student_dir))
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(str(student_dir), dtype=torch.float32)
    args = GRPOConfig(
        output_dir=str(tmp_path_factory.mktemp("grpo")),
        max_steps=1,
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=160,
        temperature=0.8,
        beta=0.04,  # TRL then computes reference log-probabilities: the ones checked here
        use_cpu=True,
        bf16=False,  # GRPOConfig's default; the sampler ran in float32
        report_to="none",
        remove_unused_columns=False,
        mask_truncated_completions=True,
    )
    rollout = AgentRollout("thermostat", tasks, temperature=0.8, max_completion_length=160)
    trainer = GrammarGRPOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        rollout_func=rollout,
        reward_funcs=[env_reward],
    )
    batch = trainer._generate_and_score_completions([rows[0], rows[0]])
    yield trainer, rollout, batch, tokenizer
    rollout.close()


def test_trainer_logprobs_equal_the_samplers(trainer_and_rollout: Any) -> None:
    _, rollout, batch, _ = trainer_and_rollout
    loss_mask = batch["completion_mask"] * batch["tool_mask"]
    checked = 0
    for i, episode in enumerate(rollout.last):
        assert episode.agent_turns >= 2, episode  # a call, then a final answer
        assert episode.dropped_turns == 0 and episode.unreplayable_tokens == 0, episode
        n = len(episode.completion_ids)
        assert batch["completion_ids"][i, :n].tolist() == episode.completion_ids
        trained = loss_mask[i, :n].bool()
        assert trained.sum() > 10
        ref = batch["ref_per_token_logps"][i, :n][trained]
        sampled = torch.tensor(episode.sampled_logprobs)[trained]
        assert torch.allclose(ref, sampled, atol=2e-3), (ref - sampled).abs().max()
        checked += int(trained.sum())
    assert checked > 20


def test_observations_and_headers_are_outside_the_loss(trainer_and_rollout: Any) -> None:
    _, rollout, batch, tokenizer = trainer_and_rollout
    for i, episode in enumerate(rollout.last):
        ids = episode.completion_ids
        agent = [t for t, bit in zip(ids, episode.env_mask, strict=True) if bit]
        other = [t for t, bit in zip(ids, episode.env_mask, strict=True) if not bit]
        env_text = tokenizer.decode(other)
        assert "Observation:" in env_text and "<|im_start|>user" in env_text
        assert "<|im_start|>assistant" in env_text
        turns = [t for t in tokenizer.decode(agent).split("<|im_end|>") if t]
        assert len(turns) == episode.agent_turns
        call = json.loads(turns[0])
        assert call["name"] == "set_thermostat"  # the grammar's action, as sampled
        assert "final_answer" in json.loads(turns[-1])
        # what TRL trains is exactly the rollout's mask
        assert batch["tool_mask"][i, : len(ids)].tolist() == episode.env_mask


def test_the_loss_runs_under_the_masks(trainer_and_rollout: Any) -> None:
    trainer, _, batch, _ = trainer_and_rollout
    assert batch["allowed"].shape[:2] == batch["completion_ids"].shape
    loss = trainer._compute_loss(trainer.model, batch)
    assert torch.isfinite(loss)
    # policy == reference before any update: the KL TRL logs is zero under the masks
    mode = "train" if trainer.model.training else "eval"
    assert abs(trainer._metrics[mode]["kl"][-1]) < 1e-4
