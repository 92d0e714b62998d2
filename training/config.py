"""Configuration of SFT, GRPO and distillation runs (pydantic: every CLI flag is a field).

Hardware-dependent options default to ``None`` and are resolved when a run starts
(:meth:`SftConfig.resolved`, :meth:`RlConfig.resolved`): a GPU gets the Agent
Distillation recipe (LoRA r=64, alpha=128 on all linear layers, lr 2e-4, 2 epochs, bf16
where the card supports it); a CPU gets fp32 (CPUs without bf16 units run bf16 slower;
full fine-tuning on one that has them, AVX512-BF16, autocasts to bf16 over fp32 weights),
a small adapter, a higher learning rate for the few steps a laptop can afford, and no
gradient checkpointing (it trades compute, which a CPU lacks, for memory, which it has).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "STAGES",
    "DistillConfig",
    "Precision",
    "RlConfig",
    "SftConfig",
    "TrainerOptions",
    "cpu_has_bf16",
    "default_device",
    "resolve_precision",
]

Precision = Literal["auto", "fp32", "bf16", "fp16"]

STAGES: tuple[str, ...] = ("collect", "synth", "filter", "sft", "rl", "eval", "curve", "report")
"""The stages of ``distill``, in order; each writes ``<run>/<stage>/status.json``."""


def default_device() -> str:
    """``cuda`` when torch sees a GPU, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16; every AMX CPU has it too).

    Only there is bf16 autocast faster than fp32 on a CPU: a whole-model SFT step of the
    135M student took 5.3 s against 8.8 s in fp32 on two AVX512-BF16 cores (docs/training.md).
    """
    import torch

    supported = getattr(torch.cpu, "_is_avx512_bf16_supported", None)  # private in torch 2.x
    return bool(supported is not None and supported())


def resolve_precision(precision: Precision, device: str) -> Literal["fp32", "bf16", "fp16"]:
    """``auto``: bf16 on GPUs that support it, fp16 on older GPUs, fp32 on CPU.

    :meth:`SftConfig.resolved` autocasts full fine-tuning to bf16 on CPUs that have bf16 units.
    """
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


class TrainerOptions(BaseModel):
    """The options SFT and GRPO share: the LoRA adapter, numerics, device, checkpoints, logs.

    Declared once here; :mod:`slmkit.training.trainer` turns them into PEFT's
    ``LoraConfig`` and into the fields TRL's ``SFTConfig`` and ``GRPOConfig`` share.
    """

    model_config = ConfigDict(extra="forbid")

    method: Literal["lora", "full"] = Field("lora", description="LoRA adapter or full fine-tuning")
    lora_r: int | None = Field(None, ge=1, description="LoRA rank (None: 64 on GPU, 16 on CPU)")
    lora_alpha: int | None = Field(None, ge=1, description="LoRA alpha (None: 2 x rank)")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout")
    lora_target_modules: str | list[str] = Field(
        "all-linear", description="modules that get adapters (PEFT syntax)"
    )
    lora_top_layers: int | None = Field(
        None,
        ge=0,
        description="adapters on the top N transformer layers only; 0: all layers (None: all "
        "on GPU, the top 8 on CPU, where backward then stops early and a step takes half "
        "the time)",
    )
    learning_rate: float | None = Field(None, gt=0, description="peak learning rate")
    max_steps: int = Field(-1, description="optimizer steps")
    batch_size: int | None = Field(None, ge=1, description="sequences per device step")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    precision: Precision = Field("auto", description="auto | fp32 | bf16 | fp16")
    gradient_checkpointing: bool | None = Field(
        None, description="recompute activations (None: on for GPU, off for CPU)"
    )
    save_steps: int = Field(25, ge=1, description="checkpoint every N steps (for resume)")
    save_total_limit: int = Field(2, ge=1, description="checkpoints kept")
    logging_steps: int = Field(1, ge=1, description="log every N steps")
    seed: int = Field(0, description="training seed")
    device: str | None = Field(None, description="cuda | cpu (None: cuda when available)")
    report_to: list[str] = Field(
        default_factory=list, description="trackers: wandb, tensorboard..."
    )
    progress: bool = Field(True, description="show progress bars")

    def _hardware_defaults(self) -> dict[str, Any]:
        """The shared ``None`` defaults resolved for this machine (see the module docs)."""
        device = self.device or default_device()
        gpu = device.startswith("cuda")
        r = self.lora_r or (64 if gpu else 16)
        top = self.lora_top_layers
        return {
            "device": device,
            "lora_r": r,
            "lora_alpha": self.lora_alpha or 2 * r,
            "lora_top_layers": (0 if gpu else 8) if top is None else top,
            "precision": resolve_precision(self.precision, device),
            "gradient_checkpointing": gpu
            if self.gradient_checkpointing is None
            else self.gradient_checkpointing,
        }


class SftConfig(TrainerOptions):
    """Fine-tuning a student on agent trajectories (:func:`~slmkit.training.sft`)."""

    learning_rate: float | None = Field(
        None,
        gt=0,
        description="peak learning rate (None: 2e-4 on GPU, 1e-3 LoRA / 1e-4 full on CPU)",
    )
    epochs: float = Field(2.0, gt=0, description="passes over the trajectories")
    max_steps: int = Field(-1, description="optimizer steps; > 0 overrides epochs")
    batch_size: int | None = Field(
        None, ge=1, description="sequences per device step (None: 8 GPU, 4 CPU)"
    )
    max_length: int = Field(1024, ge=32, description="longest training sequence (tokens)")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="share of steps warming up")
    lr_scheduler: str = Field("cosine", description="transformers scheduler name")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    merge: bool = Field(False, description="merge the LoRA adapter into the saved model")
    system_prompt: str | None = Field(
        None,
        description="replace the header of each trajectory's system prompt with this text "
        "(its tool list is kept); the student must then run with the same prompt",
    )
    val_fraction: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="share of the trajectories held back (by task id) as a validation slice: "
        "its loss is measured every save_steps and the best checkpoint is kept (0: none)",
    )
    early_stopping_patience: int = Field(
        2, ge=1, description="validation checks without a better loss before training stops"
    )

    def resolved(self) -> SftConfig:
        """A copy with every ``None`` hardware default filled in for this machine."""
        shared = self._hardware_defaults()
        gpu = shared["device"].startswith("cuda")
        lr = self.learning_rate or (2e-4 if gpu else (1e-3 if self.method == "lora" else 1e-4))
        if self.precision == "auto" and not gpu and self.method == "full" and cpu_has_bf16():
            # Full fine-tuning keeps fp32 weights and autocasts the matmuls; a LoRA student
            # would load its frozen F16 weights as bf16 and lose three bits of each.
            shared["precision"] = "bf16"
        return self.model_copy(
            update={
                **shared,
                "learning_rate": lr,
                "batch_size": self.batch_size or (8 if gpu else 4),
            }
        )


class RlConfig(TrainerOptions):
    """GRPO over an slmkit environment (see :func:`~slmkit.training.rl`)."""

    env: str = Field("bfcl:simple", description="environment name (load_env)")
    env_options: dict[str, Any] = Field(default_factory=dict, description="environment options")
    split: str = Field("train", description="task split trained on")
    n: int | None = Field(32, ge=1, description="tasks trained on (None: the whole split)")
    model: str = Field(
        "smollm2", description="policy: HF folder, embedded alias or transformers: spec"
    )
    agent_options: dict[str, Any] = Field(
        default_factory=dict, description="AgentConfig fields of the rollouts"
    )
    rollout: Literal["agent", "trl"] = Field(
        "agent",
        description="agent: slmkit's agent loop (any model, grammar-constrained actions); "
        "trl: TRL's environment_factory tool loop (models with a tool-calling chat template)",
    )
    num_generations: int = Field(4, ge=2, description="rollouts per task (the GRPO group)")
    max_steps: int = Field(8, ge=1, description="GRPO optimizer steps")
    batch_size: int | None = Field(
        None, ge=1, description="rollouts per device step (None: num_generations)"
    )
    learning_rate: float | None = Field(None, gt=0, description="None: 1e-5 GPU, 5e-5 CPU")
    beta: float = Field(0.04, ge=0, description="KL coefficient against the reference policy")
    temperature: float = Field(1.0, gt=0, description="sampling temperature of rollouts")
    max_completion_length: int = Field(256, ge=8, description="tokens of one rollout's completion")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout")
    use_vllm: bool | None = Field(
        None, description="generate with colocated vLLM (None: when on GPU with vLLM installed)"
    )
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0, le=1, description="vLLM's share")
    merge: bool = Field(True, description="merge the LoRA adapter into the saved policy")
    run_dir: Path | None = Field(None, description="run folder (None: runs/rl-<timestamp>)")
    runs_root: Path = Field(Path("runs"), description="where new run folders go")
    eval_n: int = Field(0, ge=0, description="held-out tasks evaluated before and after (0: skip)")
    eval_split: str = Field("test", description="split of the evaluation")

    def resolved(self) -> RlConfig:
        """A copy with every ``None`` hardware default filled in for this machine."""
        shared = self._hardware_defaults()
        gpu = shared["device"].startswith("cuda")
        use_vllm = self.use_vllm
        if use_vllm is None:
            import importlib.util

            use_vllm = gpu and importlib.util.find_spec("vllm") is not None
        return self.model_copy(
            update={
                **shared,
                "learning_rate": self.learning_rate or (1e-5 if gpu else 5e-5),
                "batch_size": self.batch_size or self.num_generations,
                "use_vllm": use_vllm,
            }
        )


def _distill_sft_default() -> SftConfig:
    # A merged student is a plain HF folder: transformers, vLLM and the GGUF export take it.
    # A tenth of the training tasks is the validation slice that stops training in time.
    # The whole 135M student is trained: on the laptop run's data its validation loss went
    # to 0.070 against 0.092 for the CPU adapter (LoRA r=16, top 8 layers), and the adapter
    # left the held-out score where it was (docs/training.md). A student too large to
    # fine-tune whole takes --method lora.
    return SftConfig(method="full", merge=True, epochs=2, val_fraction=0.1, save_steps=10)


class DistillConfig(BaseModel):
    """Everything one ``agentctl distill`` run needs; ``--config distill.yaml`` holds it.

    The defaults are the laptop run (``--preset laptop``): the embedded SmolLM2-135M
    teaches itself with more test-time compute (``samples`` attempts per task, the first
    greedy, kept only when the environment's reward verifies them) on BFCL ``simple``,
    ``multiple`` and ``parallel_multiple`` training items; the student is measured before
    and after on held-out items of those categories, and on ``parallel``, a family it
    never trained on (transfer).
    """

    model_config = ConfigDict(extra="forbid")

    run_dir: Path | None = Field(None, description="run folder (None: <runs_root>/distill-<time>)")
    runs_root: Path = Field(Path("runs"), description="where new run folders go")
    # data
    train_envs: list[str] = Field(
        default_factory=lambda: ["bfcl:simple", "bfcl:multiple", "bfcl:parallel_multiple"],
        description="environments the teacher collects on",
    )
    train_split: str = Field("train", description="split the teacher collects on")
    train_n: int | None = Field(60, ge=1, description="tasks per training environment (None: all)")
    eval_env: str = Field(
        "bfcl:simple+multiple+parallel_multiple",
        description="environment of the held-out evaluation (the trained categories)",
    )
    eval_split: str = Field("test", description="held-out split (never collected on)")
    eval_n: int | None = Field(120, ge=1, description="held-out tasks (None: the whole split)")
    transfer_env: str | None = Field(
        "bfcl:parallel",
        description="a held-out family never trained on, evaluated before and after too "
        "(None: none)",
    )
    transfer_n: int | None = Field(None, ge=1, description="transfer tasks (None: all)")
    near_duplicate: float = Field(
        0.8,
        gt=0,
        le=1,
        description="training runs whose request is this similar (word Jaccard) to any "
        "held-out task are dropped (slmkit.training.decontam)",
    )
    curve: list[float] = Field(
        default_factory=lambda: [0.25, 0.5],
        description="learning curve: students trained on these shares of the data too, "
        "evaluated on the held-out tasks (0 and 1 are before and after; []: no curve)",
    )
    env_options: dict[str, Any] = Field(default_factory=dict, description="environment options")
    # teacher
    teacher: str = Field("llamacpp:smollm2", description="teacher ChatModel spec")
    teacher_options: dict[str, Any] = Field(
        default_factory=dict, description="teacher backend options"
    )
    teacher_agent: Literal["tool", "gold"] = Field(
        "tool",
        description="tool: the teacher model as a ToolAgent; gold: the environment's "
        "reference actions replayed (an oracle teacher, and fast tests)",
    )
    samples: int = Field(
        3, ge=1, description="teacher attempts per task, the first greedy (rejection sampling)"
    )
    sample_temperature: float = Field(0.7, gt=0, description="temperature of sampled attempts")
    first_thought_prefix: str | None = Field(
        None, description="the teacher's first thought starts with this (Agent Distillation)"
    )
    generate_first_thought: bool = Field(
        False,
        description="the teacher's first thought on each task starts with the first step "
        "of its own reasoning, from a reasoning prompt (Agent Distillation)",
    )
    synth_per_seed: int = Field(
        0,
        ge=0,
        description="tasks the teacher writes from each verified run (new argument values, "
        "a request for them), solved again and kept when the checker accepts (0: none; "
        "slmkit.simulators.synth)",
    )
    synth_temperature: float = Field(0.8, gt=0, description="temperature of written tasks")
    agent_options: dict[str, Any] = Field(
        default_factory=dict, description="AgentConfig fields for teacher and student"
    )
    collect_workers: int | None = Field(
        2, ge=1, description="concurrent teacher episodes, decoded together by the teacher"
    )
    # filter
    keep_recovered_errors: bool = Field(
        True, description="keep successful runs that had a failed tool call on the way"
    )
    max_per_task: int = Field(1, ge=1, description="trajectories kept per task")
    # student
    student: str = Field("smollm2", description="HF folder, embedded alias or transformers: spec")
    student_system_prompt: Literal["agent", "short"] | str = Field(
        "agent",
        description="agent: the agent's own prompt; short: a one-line header plus the tool "
        "list; any other text: that header",
    )
    sft: SftConfig = Field(default_factory=_distill_sft_default, description="SFT options")
    rl: RlConfig | None = Field(
        None,
        description="GRPO after SFT, from the SFT student (None: no RL stage); its env "
        "defaults to the first training environment, its model is always the student",
    )
    eval_backend: Literal["transformers", "llamacpp"] = Field(
        "llamacpp",
        description="how the students before and after run: transformers (the HF folders "
        "as trained), or llamacpp (both exported to F16 GGUF the same way)",
    )
    eval_workers: int | None = Field(
        2, ge=1, description="concurrent eval episodes, decoded together by the student"
    )
    seed: int = Field(0, description="seed of collection and training")
    progress: bool = Field(True, description="show progress bars")

    @field_validator("sft", mode="before")
    @classmethod
    def _sft_over_distill_defaults(cls, value: Any) -> Any:
        """A partial ``sft`` mapping (``{"epochs": 1}``, a YAML block naming two fields)
        changes those fields of *distill's* SFT defaults, not of :class:`SftConfig`'s: a
        config that sets the epochs still trains a merged, whole, validated student."""
        if isinstance(value, dict):
            return {**_distill_sft_default().model_dump(exclude_unset=True), **value}
        return value

    @model_validator(mode="after")
    def _one_first_thought(self) -> DistillConfig:
        if self.generate_first_thought and (
            self.first_thought_prefix is not None or self.teacher_agent == "gold"
        ):
            raise ValueError(
                "generate_first_thought needs a model teacher (teacher_agent='tool') and no "
                "first_thought_prefix"
            )
        if self.synth_per_seed and self.teacher_agent == "gold":
            raise ValueError(
                "synth_per_seed needs a model teacher (teacher_agent='tool'): the reference "
                "actions of a written task are the calls it was written from, which verify "
                "nothing"
            )
        if any(not 0 < f < 1 for f in self.curve):
            raise ValueError("curve shares lie strictly between 0 and 1 (0 and 1 always run)")
        return self
