"""SFT on real trajectories: the loss drops, only agent tokens train, the student serves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from slmkit.agents import Trajectory
from slmkit.models import load_model
from slmkit.training import SftConfig, agent_token_loss, sft
from slmkit.training.data import agent_conversation


class FirstBatch(TrainerCallback):  # type: ignore[misc]
    """Keeps the first batch the trainer's own dataloader (TRL's collator) produces."""

    def __init__(self) -> None:
        self.batch: dict[str, Any] = {}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.batch = next(iter(kwargs["train_dataloader"]))


def test_sft_lowers_loss_trains_only_agent_tokens_and_serves_as_agent(
    tmp_path: Path, student_dir: Path, tokenizer: Any, gold_trajectories: list[Trajectory]
) -> None:
    before = agent_token_loss(student_dir, gold_trajectories)
    first = FirstBatch()
    cfg = SftConfig(max_steps=4, batch_size=3, save_steps=2, merge=True, progress=False)
    path = sft(
        gold_trajectories,
        model=str(student_dir),
        out_dir=tmp_path / "student",
        config=cfg,
        callbacks=[first],
    )
    after = agent_token_loss(path, gold_trajectories)
    assert after < 0.7 * before, (before, after)

    # The trainer's real batch: labels are -100 everywhere but on the agent's actions.
    actions = {
        m["content"] + "<|im_end|>"
        for t in gold_trajectories
        for m in agent_conversation(t)
        if m["role"] == "assistant"
    }
    batch = first.batch
    assert batch, "the callback saw no batch"
    for ids, labels in zip(batch["input_ids"], batch["labels"], strict=True):
        trained = [int(i) for i, lab in zip(ids, labels, strict=True) if int(lab) != -100]
        context = [int(i) for i, lab in zip(ids, labels, strict=True) if int(lab) == -100]
        assert tokenizer.decode(trained) in actions
        assert "You are an agent" in tokenizer.decode(context)

    meta = json.loads((path / "slmkit_student.json").read_text())
    assert meta["rows"] == len(gold_trajectories) and meta["merged"] is True
    saved = json.loads((path / "tokenizer_config.json").read_text())
    template = saved.get("chat_template") or (path / "chat_template.jinja").read_text()
    assert "generation" not in template  # the served student keeps the inference template

    # The saved student loads as a backend and runs as an agent on a real task.
    from slmkit.simulators import load_env, run_episode

    student = load_model(f"transformers:{path}", cache=False)
    env = load_env("bfcl:simple", split="train")
    task = env.tasks().take(1)[0]
    traj = run_episode(env, task, model=student)
    assert traj.meta["error"] is None
    assert traj.metrics["outputs"] >= 1
    assert traj.metrics["valid_outputs"] == traj.metrics["outputs"]
    assert traj.meta["success"], traj.meta["reward_info"]  # a task it was trained on
