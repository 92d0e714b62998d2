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
from pathlib import Path
from typing import Any

from slmkit.training.config import RlConfig
from slmkit.training.errors import TrainingError
from slmkit.training.rollout import AgentRollout, env_reward, prompt_key
from slmkit.training.sft import last_checkpoint, resolve_student, save_model, source_gguf
from slmkit.training.stages import (
    Announce,
    PipelineResult,
    RunFolder,
    Stage,
    is_main_process,
    open_run,
    run_stages,
    silent,
)
from slmkit.training.trainer import lora_config, torch_dtype, trl_args

__all__ = ["RL_STAGES", "RlResult", "rl"]

RL_STAGES: tuple[str, ...] = ("grpo", "eval", "report")


class RlResult(PipelineResult):
    """Where an RL run stands: its folder and the status of its done stages."""

    @property
    def policy(self) -> Path:
        return self.run_dir / "policy"


def _dataset(cfg: RlConfig) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """GRPO rows (the task's first messages as the prompt) and the tasks by prompt."""
    from slmkit.simulators import load_env

    env = load_env(cfg.env, split=cfg.split, **cfg.env_options)
    try:
        if env.unbounded and cfg.n is None:
            raise TrainingError(
                f"{cfg.env} generates tasks without end", hint="pass --limit N (RlConfig.n)"
            )
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


def grpo_specific(cfg: RlConfig) -> dict[str, Any]:
    """The ``GRPOConfig`` arguments of a run beyond the ones SFT shares (``trl_args``).

    On a GPU with vLLM, generation runs in a colocated ``vllm.LLM`` (``vllm_mode="colocate"``,
    sharing the card at ``vllm_gpu_memory_utilization``; TRL syncs the weights every step).
    The tests check every name against TRL's ``GRPOConfig`` fields.
    """
    return {
        "num_generations": cfg.num_generations,
        "max_completion_length": cfg.max_completion_length,
        "beta": cfg.beta,
        "temperature": cfg.temperature,
        "use_vllm": bool(cfg.use_vllm),
        "vllm_mode": "colocate",
        "vllm_gpu_memory_utilization": cfg.vllm_gpu_memory_utilization,
        # vLLM's importance-sampling correction would compare the trainer's masked
        # log-probabilities with vLLM's unmasked ones.
        "vllm_importance_sampling_correction": False,
        # An episode cut at max_completion_length lost its end: its reward is not about
        # the tokens kept, so it leaves the loss (DAPO's overlong filtering).
        "mask_truncated_completions": True,
        "remove_unused_columns": False,
    }


def _log_lines(path: Path) -> Any:
    """A TrainerCallback appending every metrics log to ``path`` (JSONL) as it comes.

    ``log_history.json`` is written when training ends; this keeps the per-step rewards,
    entropy and KL of a run that was stopped early.
    """
    from transformers import TrainerCallback

    class LogLines(TrainerCallback):  # type: ignore[misc]
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **_: Any) -> None:
            if logs and is_main_process():
                with path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"step": state.global_step, **logs}) + "\n")

    return LogLines()


class _Run:
    """The stage functions of one RL run."""

    def __init__(self, cfg: RlConfig, root: Path, say: Announce) -> None:
        self.cfg = cfg
        self.root = root
        self.say = say

    def grpo(self, folder: Path) -> dict[str, Any]:
        from datasets import Dataset
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl import GRPOConfig, GRPOTrainer

        from slmkit.training.grpo_trainer import GrammarGRPOTrainer

        cfg = self.cfg
        base = resolve_student(cfg.model)
        rows, tasks = _dataset(cfg)
        tokenizer = AutoTokenizer.from_pretrained(str(base))
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        dtype = torch_dtype(cfg.precision if cfg.method == "lora" else "fp32")
        model = AutoModelForCausalLM.from_pretrained(str(base), dtype=dtype)
        peft_config = lora_config(cfg, model) if cfg.method == "lora" else None
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
            from slmkit.simulators import trl_dataset, trl_environment_factory

            kwargs["environment_factory"] = trl_environment_factory(cfg.env, **cfg.env_options)
            dataset = Dataset.from_list(
                trl_dataset(cfg.env, split=cfg.split, limit=cfg.n, **cfg.env_options)
            )
        # Agent rollouts hand over their grammar masks; TRL's own tool loop has none.
        trainer_class = GrammarGRPOTrainer if cfg.rollout == "agent" else GRPOTrainer
        trainer = trainer_class(
            model=model,
            args=trl_args(GRPOConfig, cfg, checkpoints, **grpo_specific(cfg)),
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=peft_config,
            **kwargs,
        )
        trainer.add_callback(_log_lines(folder / "log.jsonl"))
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
    announce: Announce = silent,
) -> RlResult:
    """Run (or resume) GRPO on ``config.env``; return where the run stands.

    Args:
        config: the run's options (hardware defaults resolved here).
        start: rerun from this stage (``grpo``, ``eval``, ``report``).
        until: stop after this stage.
        force: rerun every stage.
        announce: called with ``(stage, message)`` for progress lines.
    """
    cfg, root = open_run((config or RlConfig()).resolved(), "rl")
    run = _Run(cfg, root, announce)
    c = cfg.model_dump(mode="json")
    skip = {"run_dir", "runs_root", "progress", "report_to", "eval_n", "eval_split"}
    stages = [
        Stage("grpo", run.grpo, {k: v for k, v in c.items() if k not in skip}),
        Stage("eval", run.eval, {"eval_n": cfg.eval_n, "eval_split": cfg.eval_split}),
        Stage("report", run.report, {}),
    ]
    done = run_stages(
        RunFolder(root, RL_STAGES), stages, start=start, until=until, force=force, announce=announce
    )
    return RlResult(root, done)
