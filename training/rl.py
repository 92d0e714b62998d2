"""``rl``: GRPO with TRL over an slmkit environment, rewards from the environment.

::

    from slmkit.training import RlConfig, rl
    result = rl(RlConfig(env="bfcl:simple", model="runs/distill-.../student", max_steps=50))

Stages in ``runs/rl-<time>/`` (same conventions as ``distill``: status files, resume,
``--from``/``--force``)::

    grpo     GRPOTrainer: ``num_generations`` rollouts per task, each a real agent
             episode scored by the environment (:mod:`slmkit.training.rollout`), LoRA,
             KL to the reference policy (``beta``); checkpoints for resume; the policy
             saved to ``<run>/policy``
    eval     the policy before and after on held-out tasks (when ``eval_n > 0``)
    report   ``report.md`` + ``report.png``

Generation runs on the trainer's model with transformers on CPU, and on a colocated
vLLM engine on GPU (``use_vllm``; TRL syncs its weights every step). ``rollout="trl"``
uses TRL's own ``environment_factory`` tool loop instead, for models whose chat template
has tool calling (Qwen, Llama 3) and environments with fixed tools.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slmkit.training.config import RlConfig
from slmkit.training.distill import new_run_dir
from slmkit.training.errors import TrainingError
from slmkit.training.rollout import AgentRollout, env_reward, prompt_key
from slmkit.training.sft import last_checkpoint, resolve_student, save_model, source_gguf
from slmkit.training.stages import RunFolder, Stage, StageStatus, is_main_process, run_stages

__all__ = ["RL_STAGES", "RlResult", "rl"]

RL_STAGES: tuple[str, ...] = ("grpo", "eval", "report")


class RlResult:
    """Where an RL run stands: its folder and the status of its done stages."""

    def __init__(self, run_dir: Path, stages: list[StageStatus]) -> None:
        self.run_dir = run_dir
        self.stages = stages

    @property
    def policy(self) -> Path:
        return self.run_dir / "policy"

    def outputs(self, stage: str) -> dict[str, Any]:
        return next((s.outputs for s in self.stages if s.stage == stage), {})

    def __repr__(self) -> str:
        return f"<RlResult {self.run_dir} done: {', '.join(s.stage for s in self.stages)}>"


def _dataset(cfg: RlConfig) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """GRPO rows (the task's first messages as the prompt) and the tasks by prompt."""
    from slmkit.simulators import load_env

    env = load_env(cfg.env, split=cfg.split, **cfg.env_options)
    try:
        if env.unbounded and cfg.n is None:
            raise TrainingError(f"{cfg.env} generates tasks without end", hint="pass --n N")
        rows, tasks = [], {}
        for task in env.tasks(cfg.split, limit=cfg.n):
            prompt = [{"role": "user", "content": env.prompt_text(env.reset(task))}]
            key = prompt_key(prompt)
            if key not in tasks:  # the same text twice would be one task to the rollouts
                tasks[key] = dict(task)
                rows.append({"prompt": prompt, "task_id": str(task["id"])})
    finally:
        env.close()
    if not rows:
        raise TrainingError(f"no {cfg.split} tasks in {cfg.env}", hint="check --env and --split")
    return rows, tasks


def _grpo_args(cfg: RlConfig, checkpoints: Path) -> Any:
    from trl import GRPOConfig

    device = cfg.device or "cpu"
    gpu = device.startswith("cuda")
    return GRPOConfig(
        output_dir=str(checkpoints),
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length,
        learning_rate=cfg.learning_rate,
        beta=cfg.beta,
        temperature=cfg.temperature,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,
        seed=cfg.seed,
        bf16=cfg.precision == "bf16",
        fp16=cfg.precision == "fp16",
        use_cpu=not gpu,
        gradient_checkpointing=gpu,
        use_vllm=bool(cfg.use_vllm),
        vllm_mode="colocate",
        vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
        vllm_importance_sampling_correction=False,
        report_to=cfg.report_to or "none",
        disable_tqdm=not cfg.progress,
        remove_unused_columns=False,
    )


class _Run:
    """The stage functions of one RL run."""

    def __init__(self, cfg: RlConfig, root: Path, say: Callable[[str, str], None]) -> None:
        self.cfg = cfg
        self.root = root
        self.say = say

    def grpo(self, folder: Path) -> dict[str, Any]:
        import torch
        from datasets import Dataset
        from peft import LoraConfig
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl import GRPOTrainer

        cfg = self.cfg
        base = resolve_student(cfg.model)
        rows, tasks = _dataset(cfg)
        tokenizer = AutoTokenizer.from_pretrained(str(base))
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision, torch.float32)
        model = AutoModelForCausalLM.from_pretrained(
            str(base), dtype=dtype if cfg.method == "lora" else torch.float32
        )
        peft_config = None
        if cfg.method == "lora":
            peft_config = LoraConfig(
                r=cfg.lora_r,
                lora_alpha=cfg.lora_alpha,
                lora_dropout=0.0,
                target_modules="all-linear",
                task_type="CAUSAL_LM",
            )
        checkpoints = folder / "checkpoints"
        kwargs: dict[str, Any] = {}
        rollout: AgentRollout | None = None
        if cfg.rollout == "agent":
            rollout = AgentRollout(
                cfg.env,
                tasks,
                env_options=cfg.env_options,
                agent_options=cfg.agent_options,
                temperature=cfg.temperature,
                max_completion_length=cfg.max_completion_length,
                log=folder / "rollouts.jsonl",
                seed=cfg.seed,
            )
            kwargs.update(rollout_func=rollout, reward_funcs=[env_reward])
            dataset = Dataset.from_list(rows)
        else:
            from slmkit.simulators.trl import trl_dataset, trl_environment_factory

            kwargs["environment_factory"] = trl_environment_factory(cfg.env, **cfg.env_options)
            dataset = Dataset.from_list(
                trl_dataset(cfg.env, split=cfg.split, limit=cfg.n, **cfg.env_options)
            )
        trainer = GRPOTrainer(
            model=model,
            args=_grpo_args(cfg, checkpoints),
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=peft_config,
            **kwargs,
        )
        last = last_checkpoint(checkpoints)
        start = time.perf_counter()
        try:
            trainer.train(resume_from_checkpoint=last)
        finally:
            if rollout is not None:
                rollout.close()
        elapsed = time.perf_counter() - start
        history = trainer.state.log_history
        (folder / "log_history.json").write_text(json.dumps(history, indent=1))
        rewards = [float(h["reward"]) for h in history if "reward" in h]
        tokenizer.padding_side = "right"
        meta = {
            "base": str(base),
            "source_gguf": source_gguf(base),
            "method": f"grpo-{cfg.method}",
            "merged": cfg.method == "full" or cfg.merge,
            "system_prompt": "agent",
            "tasks": len(rows),
            "resumed_from": last,
            "rewards": rewards,
            "steps": int(trainer.state.global_step),
            "train_s": round(elapsed, 3),
            "config": cfg.model_dump(mode="json"),
        }
        path = save_model(
            trainer,
            tokenizer,
            self.root / "policy",
            meta,
            merge=cfg.method == "lora" and cfg.merge,
        )
        return {
            "policy": str(path),
            "base": str(base),
            "tasks": len(rows),
            "steps": meta["steps"],
            "rewards": rewards,
            "train_s": meta["train_s"],
        }

    def eval(self, folder: Path) -> dict[str, Any]:
        from slmkit.training.evaluation import eval_before_after

        cfg = self.cfg
        if cfg.eval_n == 0:
            return {"skipped": "eval_n is 0"}
        return eval_before_after(
            folder,
            env=cfg.env,
            split=cfg.eval_split,
            n=cfg.eval_n,
            base=resolve_student(cfg.model),
            trained=self.root / "policy",
            env_options=cfg.env_options,
            agent_options=cfg.agent_options,
            progress=cfg.progress,
            say=self.say,
        )

    def report(self, folder: Path) -> dict[str, Any]:
        from slmkit.training.report import write_rl_report

        statuses = dict(RunFolder(self.root, RL_STAGES).overview())
        md, png = write_rl_report(self.root, self.cfg, statuses)
        return {"markdown": str(md), "chart": str(png)}


def rl(
    config: RlConfig | None = None,
    *,
    start: str | None = None,
    until: str | None = None,
    force: bool = False,
    announce: Callable[[str, str], None] | None = None,
) -> RlResult:
    """Run (or resume) GRPO on ``config.env``; return where the run stands.

    Args:
        config: the run's options (hardware defaults resolved here).
        start: rerun from this stage (``grpo``, ``eval``, ``report``).
        until: stop after this stage.
        force: rerun every stage.
        announce: called with ``(stage, message)`` for progress lines.
    """
    cfg = (config or RlConfig()).resolved()
    root = cfg.run_dir or new_run_dir(cfg.runs_root, "rl")
    cfg = cfg.model_copy(update={"run_dir": root})
    root.mkdir(parents=True, exist_ok=True)
    if is_main_process():
        (root / "config.json").write_text(cfg.model_dump_json(indent=1), encoding="utf-8")
    say = announce or (lambda stage, msg: None)
    run = _Run(cfg, root, say)
    c = cfg.model_dump(mode="json")
    skip = {"run_dir", "runs_root", "progress", "report_to", "eval_n", "eval_split"}
    stages = [
        Stage("grpo", run.grpo, {k: v for k, v in c.items() if k not in skip}),
        Stage("eval", run.eval, {"eval_n": cfg.eval_n, "eval_split": cfg.eval_split}),
        Stage("report", run.report, {}),
    ]
    done = run_stages(
        RunFolder(root, RL_STAGES), stages, start=start, until=until, force=force, announce=say
    )
    return RlResult(root, done)
