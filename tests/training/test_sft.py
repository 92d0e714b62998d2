"""SFT on real trajectories: the loss drops, only agent tokens train, the student serves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
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


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
    student_dir: Path,
    gold_trajectories: list[Trajectory],
) -> tuple[Path, dict[str, Any], float]:
    """One short LoRA run (adapter saved unmerged), its first batch, the loss before."""
    before = agent_token_loss(student_dir, gold_trajectories)
    first = FirstBatch()
    cfg = SftConfig(max_steps=4, batch_size=3, save_steps=100, max_length=384, progress=False)
    path = sft(
        gold_trajectories,
        model=str(student_dir),
        out_dir=tmp_path_factory.mktemp("sft") / "student",
        config=cfg,
        callbacks=[first],
    )
    return path, first.batch, before


def test_sft_lowers_the_loss_on_its_trajectories(
    trained: tuple[Path, dict[str, Any], float], gold_trajectories: list[Trajectory]
) -> None:
    path, _, before = trained
    after = agent_token_loss(path, gold_trajectories)
    assert after < 0.7 * before, (before, after)
    meta = json.loads((path / "slmkit_student.json").read_text())
    assert meta["rows"] == len(gold_trajectories) and meta["steps"] == 4
    assert meta["losses"][-1] < meta["losses"][0]


def test_a_finished_run_keeps_its_log_and_deletes_its_checkpoints(
    trained: tuple[Path, dict[str, Any], float],
) -> None:
    """Checkpoints serve a resume only; a whole-model one is 1.5 GB with its optimizer."""
    path, _, _ = trained
    work = path.with_name(path.name + ".work")
    history = json.loads((work / "log_history.json").read_text())
    assert any("loss" in h for h in history)
    assert not (work / "checkpoints").exists()


def test_trainer_batches_train_only_the_agent_actions(
    trained: tuple[Path, dict[str, Any], float],
    tokenizer: Any,
    gold_trajectories: list[Trajectory],
) -> None:
    """TRL's own collated batch: labels are -100 everywhere but on the agent's actions."""
    _, batch, _ = trained
    actions = {
        m["content"] + "<|im_end|>"
        for t in gold_trajectories
        for m in agent_conversation(t)
        if m["role"] == "assistant"
    }
    assert batch, "the callback saw no batch"
    for ids, labels in zip(batch["input_ids"], batch["labels"], strict=True):
        trained_ids = [int(i) for i, lab in zip(ids, labels, strict=True) if int(lab) != -100]
        context = [int(i) for i, lab in zip(ids, labels, strict=True) if int(lab) == -100]
        assert tokenizer.decode(trained_ids) in actions
        assert "You are an agent" in tokenizer.decode(context)


def test_the_end_of_turn_token_is_a_training_target_though_it_is_the_padding(
    trained: tuple[Path, dict[str, Any], float], tokenizer: Any
) -> None:
    """The converted tokenizer pads with ``<|im_end|>``; a collator that masked pad ids
    would drop the token that ends the agent's turn. TRL's batch: every row's last
    trained label is ``<|im_end|>``, and only the padding after it is masked."""
    _, batch, _ = trained
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert tokenizer.pad_token_id == end  # the premise: pad == eos == <|im_end|>
    padded = 0
    for ids, labels in zip(batch["input_ids"], batch["labels"], strict=True):
        trained_at = [i for i, lab in enumerate(labels) if int(lab) != -100]
        assert trained_at and int(labels[trained_at[-1]]) == end
        tail = range(trained_at[-1] + 1, len(ids))
        padded += sum(1 for i in tail if int(ids[i]) == end)
        assert all(int(labels[i]) == -100 for i in tail)
    assert padded, "no row was padded: the batch does not show the pad == eos case"


def test_saved_student_loads_and_runs_as_an_agent(
    trained: tuple[Path, dict[str, Any], float],
) -> None:
    from slmkit.simulators import load_env, run_episode

    path, _, _ = trained
    assert (path / "adapter_config.json").is_file()  # merge=False: the LoRA adapter
    saved = json.loads((path / "tokenizer_config.json").read_text())
    template = saved.get("chat_template") or (path / "chat_template.jinja").read_text()
    assert "endgeneration" not in template  # the served student keeps the inference template

    student = load_model(f"transformers:{path}", cache=False)
    env = load_env("bfcl:simple", split="train")
    task = env.tasks().take(1)[0]
    traj = run_episode(env, task, model=student)
    assert traj.meta["error"] is None
    assert traj.metrics["outputs"] >= 1
    assert traj.metrics["valid_outputs"] == traj.metrics["outputs"]
    assert traj.meta["success"], traj.meta["reward_info"]  # a task it was trained on
