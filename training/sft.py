"""``sft``: fine-tune a student on agent trajectories with TRL, loss on the agent's tokens.

::

    from slmkit.training import sft, SftConfig
    path = sft("runs.jsonl", model="smollm2", out_dir="student", config=SftConfig(epochs=2))
    # load_model(f"transformers:{path}") serves it

The trajectories become conversations exactly as the agent sees them
(:mod:`slmkit.training.data`), TRL's ``SFTTrainer`` trains with
``assistant_only_loss=True`` under a template with ``{% generation %}`` blocks (system
prompt, task and observations are context, never targets), LoRA by default (PEFT).
Checkpoints go to a work folder next to the output so a killed run resumes from the
last one (a finished run deletes them); the finished model is written to a temporary
folder and renamed into place, so a folder that exists is complete. Its tokenizer keeps
the model's inference template.
"""

from __future__ import annotations

import json
import shutil
import time
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from slmkit.agents import Trajectory, read_trajectories
from slmkit.models import EMBEDDED_MODELS, SlmkitError, existing_path, parse_spec
from slmkit.training.config import SftConfig
from slmkit.training.data import (
    assistant_token_mask,
    check_rendering,
    to_rows,
    training_chat_template,
)
from slmkit.training.errors import TrainingError
from slmkit.training.student import STUDENT_META, read_student_meta
from slmkit.training.trainer import lora_config, torch_dtype, trained_positions_only, trl_args

__all__ = [
    "agent_token_loss",
    "last_checkpoint",
    "resolve_student",
    "save_model",
    "sft",
    "source_gguf",
    "validation_split",
]


def resolve_student(model: str) -> Path:
    """The local HF folder of a student: a folder, ``transformers:<folder>`` or an alias.

    Embedded aliases (``smollm2``) are converted from their GGUF once and cached.
    """
    target = model
    if ":" in model and not Path(model).exists():
        backend, target = parse_spec(model)
        if backend != "transformers":
            raise TrainingError(
                f"the student must be an HF model, not a {backend}: spec ({model})",
                hint="pass a local HF folder, transformers:<folder>, or smollm2",
            )
    if target in EMBEDDED_MODELS:
        from slmkit.models import convert_embedded

        return convert_embedded(target)
    path = existing_path(
        target, what="student model folder", kind="folder", hint="or use the embedded smollm2"
    )
    if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
        raise TrainingError(
            f"{target!r} is not a local HF model folder",
            hint="training is offline: download the model once (huggingface-cli download) "
            "and pass its folder, or use the embedded smollm2",
        )
    return path


def source_gguf(folder: Path) -> str | None:
    """The GGUF an HF folder was converted from (through any chain of students).

    A recorded path that no longer exists (the conversion cache is shared by every
    environment of the machine, and the one that converted may be gone) is looked up by
    file name among this install's embedded models: the same file, found where it is now.
    """
    meta = read_student_meta(folder)
    src = meta.get("source_gguf")
    marker = folder / ".complete"
    if not src and marker.is_file():
        try:
            src = json.loads(marker.read_text()).get("source")
        except (json.JSONDecodeError, AttributeError):
            return None
    if not src:
        return None
    if not Path(str(src)).is_file():
        from slmkit.models import embedded_gguf

        for alias, (_dist, file_name) in EMBEDDED_MODELS.items():
            if Path(str(src)).name == file_name:
                try:
                    return str(embedded_gguf(alias))
                except SlmkitError:
                    break
    return str(src)


def last_checkpoint(folder: Path) -> str | None:
    """The newest *complete* trainer checkpoint in ``folder`` (None: start fresh).

    The trainer writes ``trainer_state.json`` last, so a checkpoint without a readable
    one was cut off by a kill: it is deleted (resuming from it would crash) and the one
    before it is used.
    """
    if not folder.is_dir():
        return None
    steps = []
    for path in folder.iterdir():
        name, _, step = path.name.partition("-")
        if name == "checkpoint" and step.isdigit() and path.is_dir():
            steps.append((int(step), path))
    for _, path in sorted(steps, reverse=True):
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            shutil.rmtree(path, ignore_errors=True)
            continue
        return str(path)
    return None


def validation_split(
    rows: list[dict[str, Any]], fraction: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(train, validation)``: about ``fraction`` of the rows, picked by a hash of their id
    (the same rows on every run and resume), held back; none when that leaves fewer than
    two on either side."""
    if fraction <= 0:
        return rows, []
    val = [r for r in rows if zlib.crc32(str(r.get("id")).encode()) % 1000 < fraction * 1000]
    if len(val) < 2 or len(rows) - len(val) < 2:
        return rows, []
    ids = {id(r) for r in val}
    return [r for r in rows if id(r) not in ids], val


def _best_step(checkpoint: str | None) -> int | None:
    return int(checkpoint.rsplit("-", 1)[1]) if checkpoint else None


def _load_trajectories(data: Iterable[Trajectory] | str | Path) -> list[Trajectory]:
    if isinstance(data, str | Path):
        return list(read_trajectories(data))  # a missing file: PathNotFoundError
    return list(data)


def sft(
    trajectories: Iterable[Trajectory] | str | Path,
    *,
    model: str = "smollm2",
    out_dir: str | Path,
    config: SftConfig | None = None,
    work_dir: str | Path | None = None,
    callbacks: list[Any] | None = None,
) -> Path:
    """Fine-tune ``model`` on ``trajectories``; return the saved model folder.

    Args:
        trajectories: Trajectory objects or a JSONL file of them (only successful,
            well-formed runs should be here: see the ``filter`` stage of ``distill``).
        model: the student (HF folder, ``transformers:<folder>``, or ``smollm2``).
        out_dir: where the finished model goes (an HF folder ``load_model`` serves).
        config: training options (hardware defaults resolved here).
        work_dir: checkpoints and logs (default: ``<out_dir>.work`` beside it). A run
            that finds a checkpoint there resumes from it; a finished run deletes them
            and keeps the log.
        callbacks: extra ``transformers.TrainerCallback``\\ s.

    Raises:
        TrainingError: no usable trajectories, or a student that cannot be trained.
    """
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig as TrlSFTConfig
    from trl import SFTTrainer

    cfg = (config or SftConfig()).resolved()
    out = Path(out_dir)
    work = Path(work_dir) if work_dir is not None else out.with_name(out.name + ".work")
    checkpoints = work / "checkpoints"
    trajs = _load_trajectories(trajectories)  # bad input fails before any model loads
    base = resolve_student(model)
    conv = to_rows(trajs, system_prompt=cfg.system_prompt or "agent")
    if not conv.rows:
        raise TrainingError(
            f"none of the {len(trajs)} trajectories can be trained on "
            f"(dropped: {dict(conv.dropped) or 'none given'})",
            hint="collect more tasks or samples (--samples K) so some runs succeed",
        )
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    template = training_chat_template(tokenizer)
    check_rendering(tokenizer, template, conv.rows)
    train_tok = AutoTokenizer.from_pretrained(str(base))
    train_tok.pad_token = tokenizer.pad_token
    train_tok.chat_template = template

    weights_dtype = torch_dtype(cfg.precision if cfg.method == "lora" else "fp32")
    student = AutoModelForCausalLM.from_pretrained(str(base), dtype=weights_dtype)
    peft_config = lora_config(cfg, student) if cfg.method == "lora" else None
    train_rows, val_rows = validation_split(conv.rows, cfg.val_fraction)
    dataset = Dataset.from_list([{"messages": r["messages"]} for r in train_rows])
    val_set = (
        Dataset.from_list([{"messages": r["messages"]} for r in val_rows]) if val_rows else None
    )
    stopping: dict[str, Any] = {}
    if val_set is not None:
        from transformers import EarlyStoppingCallback

        callbacks = [*(callbacks or []), EarlyStoppingCallback(cfg.early_stopping_patience)]
        stopping = {
            "eval_strategy": "steps",
            "eval_steps": cfg.save_steps,
            "load_best_model_at_end": True,
            "metric_for_best_model": "eval_loss",
            "greater_is_better": False,
            "per_device_eval_batch_size": cfg.batch_size,
        }
    work.mkdir(parents=True, exist_ok=True)
    trainer = SFTTrainer(
        model=student,
        args=trl_args(
            TrlSFTConfig,
            cfg,
            checkpoints,
            num_train_epochs=cfg.epochs,
            lr_scheduler_type=cfg.lr_scheduler,
            warmup_steps=cfg.warmup_ratio,
            weight_decay=cfg.weight_decay,
            assistant_only_loss=True,
            max_length=cfg.max_length,
            packing=False,
            dataloader_num_workers=0,
            **stopping,
        ),
        train_dataset=dataset,
        eval_dataset=val_set,
        processing_class=train_tok,
        peft_config=peft_config,
        callbacks=callbacks,
    )
    last = last_checkpoint(checkpoints)
    start = time.perf_counter()
    with trained_positions_only():
        result = trainer.train(resume_from_checkpoint=last)
    elapsed = time.perf_counter() - start
    history = trainer.state.log_history
    (work / "log_history.json").write_text(json.dumps(history, indent=1))

    trained_tokens = sum(
        sum(assistant_token_mask(train_tok, template, r["messages"])[1]) for r in train_rows
    )
    meta = {
        "base": str(base),
        "source_gguf": source_gguf(base),
        "method": cfg.method,
        "merged": cfg.method == "full" or cfg.merge,
        "system_prompt": cfg.system_prompt or "agent",
        "trajectories": len(trajs),
        "rows": len(train_rows),
        "val_rows": len(val_rows),
        "val_losses": [[h["step"], h["eval_loss"]] for h in history if "eval_loss" in h],
        "best_step": _best_step(trainer.state.best_model_checkpoint),
        "dropped": dict(conv.dropped),
        "agent_tokens": trained_tokens,
        "resumed_from": last,
        "train_loss": float(result.training_loss),
        "losses": [h["loss"] for h in history if "loss" in h],
        "steps": int(trainer.state.global_step),
        "train_s": round(elapsed, 3),
        "config": cfg.model_dump(mode="json"),
    }
    path = save_model(trainer, tokenizer, out, meta, merge=cfg.method == "lora" and cfg.merge)
    if trainer.accelerator.is_main_process:
        # The student is complete: checkpoints only served a resume. A whole-model one
        # holds the optimizer state too (1.5 GB for the 135M student); each make run kept
        # 11 GB of them until a disk filled up.
        shutil.rmtree(checkpoints, ignore_errors=True)
    return path


def save_model(
    trainer: Any, tokenizer: Any, out: Path, meta: dict[str, Any], *, merge: bool
) -> Path:
    """Save what ``trainer`` trained as an HF folder with ``slmkit_student.json``.

    One path for one process, DDP, FSDP and DeepSpeed: ``trainer.save_model`` (every rank
    takes part, sharded weights are gathered) writes the raw result, then the main
    process folds a LoRA adapter into the weights when ``merge`` is set (a plain model
    that transformers, vLLM and the GGUF export all take), adds the inference tokenizer
    and the metadata, and renames the folder into place: a folder at ``out`` is complete.
    """
    raw = out.with_name(out.name + ".raw")
    trainer.save_model(str(raw))
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        _publish(raw, tokenizer, out, meta, merge=merge)
    trainer.accelerator.wait_for_everyone()
    return out


_TOKENIZER_FILES = ("tokenizer", "special_tokens_map", "chat_template", "added_tokens", "vocab")


def _publish(raw: Path, tokenizer: Any, out: Path, meta: dict[str, Any], *, merge: bool) -> None:
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    if merge and (raw / "adapter_config.json").is_file():
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(str(raw), dtype="auto")
        model.merge_and_unload().save_pretrained(str(tmp))
    else:
        # the trainer saved its training tokenizer (training chat template): leave it out
        shutil.copytree(
            raw,
            tmp,
            ignore=lambda _dir, names: [
                n for n in names if n.startswith(_TOKENIZER_FILES) or n == "training_args.bin"
            ],
        )
    tokenizer.save_pretrained(str(tmp))  # the inference template, not the training one
    (tmp / STUDENT_META).write_text(json.dumps(meta, indent=1))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    shutil.rmtree(raw, ignore_errors=True)


def agent_token_loss(
    model_dir: str | Path,
    trajectories: Iterable[Trajectory] | str | Path,
    *,
    system_prompt: str = "agent",
) -> float:
    """Mean cross-entropy of ``model_dir`` on the agent's tokens of ``trajectories``.

    The same tokens :func:`sft` trains on (assistant turns only), so a before/after pair
    shows what training did to exactly the data it saw.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    trajs = _load_trajectories(trajectories)
    path = resolve_student(str(model_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    template = training_chat_template(tokenizer)
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    model.eval()
    rows = to_rows(trajs, system_prompt=system_prompt).rows
    total, count = 0.0, 0
    with torch.no_grad():
        for row in rows:
            ids, mask = assistant_token_mask(tokenizer, template, row["messages"])
            labels = [t if m else -100 for t, m in zip(ids, mask, strict=True)]
            out = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels]))
            n = sum(mask) - (1 if mask and mask[0] else 0)
            total += float(out.loss) * max(n, 1)
            count += max(n, 1)
    if not count:
        raise TrainingError("no agent tokens to score", hint="pass trajectories with actions")
    return total / count
