"""What ``sft`` and ``rl`` hand to TRL and PEFT, built once from their shared options.

:class:`~slmkit.training.config.TrainerOptions` holds what SFT and GRPO have in common;
:func:`trl_args` fills the fields TRL's ``SFTConfig`` and ``GRPOConfig`` share from it
(each caller adds only its own), and :func:`lora_config` builds the LoRA adapter,
including ``lora_top_layers`` (adapters on the top layers only, so backward stops
early), for both. :func:`trained_positions_only` makes TRL's loss head skip the context.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from slmkit.training.config import TrainerOptions

__all__ = ["lora_config", "torch_dtype", "trained_positions_only", "trl_args"]


def torch_dtype(precision: str) -> Any:
    """The torch dtype of a resolved precision (``fp32``, ``bf16``, ``fp16``)."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)


def _linear_names(model: Any) -> list[str]:
    """The names of the linear layers inside the transformer blocks (PEFT's all-linear)."""
    import torch

    head = model.get_output_embeddings()
    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and module is not head
        }
    )


def lora_config(cfg: TrainerOptions, model: Any) -> Any:
    """PEFT's ``LoraConfig`` for ``model`` from resolved options."""
    from peft import LoraConfig

    n_layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    layers = None
    targets = cfg.lora_target_modules
    if cfg.lora_top_layers and cfg.lora_top_layers < n_layers:
        layers = list(range(n_layers - cfg.lora_top_layers, n_layers))
        if targets == "all-linear":  # PEFT wants the names when layers are picked
            targets = _linear_names(model)
    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        layers_to_transform=layers,
        task_type="CAUSAL_LM",
    )


def trl_args(
    factory: Callable[..., Any], cfg: TrainerOptions, checkpoints: Path, **specific: Any
) -> Any:
    """``factory(...)`` (TRL's ``SFTConfig`` or ``GRPOConfig``) from resolved options.

    The fields both trainers share come from ``cfg`` here; ``specific`` holds the
    trainer's own.
    """
    shared: dict[str, Any] = {
        "output_dir": str(checkpoints),
        "max_steps": cfg.max_steps,
        "per_device_train_batch_size": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "learning_rate": cfg.learning_rate,
        "logging_steps": cfg.logging_steps,
        "save_strategy": "steps",
        "save_steps": cfg.save_steps,
        "save_total_limit": cfg.save_total_limit,
        "seed": cfg.seed,
        "bf16": cfg.precision == "bf16",
        "fp16": cfg.precision == "fp16",
        "use_cpu": not (cfg.device or "cpu").startswith("cuda"),
        "gradient_checkpointing": bool(cfg.gradient_checkpointing),
        "report_to": cfg.report_to or "none",
        "disable_tqdm": not cfg.progress,
    }
    return factory(**{**shared, **specific})


@contextmanager
def trained_positions_only() -> Iterator[None]:
    """While inside, TRL's fused LM head projects only the positions that have a label.

    TRL compacts the hidden states to the labelled positions on Triton devices only;
    elsewhere it projects every position through the 49k-word head (fixed tile shapes
    for compiled backends), and on a CPU that includes the system prompt, the tool list,
    the observations and the padding. With agent data, where about one token in seven is
    trained, the wasted projection was 30 % of a whole-model SFT step on two CPU cores
    (12.7 -> 8.8 s, the same losses to four digits; docs/training.md). The compact path
    is TRL's own, in plain torch; other devices keep TRL's choice, and a TRL without the
    switch trains as before.
    """
    from trl.trainer import utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    if original is None:
        yield
        return
    trl_utils._use_triton = lambda device: device.type == "cpu" or original(device)
    try:
        yield
    finally:
        trl_utils._use_triton = original
