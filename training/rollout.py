"""GRPO rollouts that are real agent episodes: TRL's ``rollout_func`` over slmkit agents.

TRL's own multi-turn loop parses tool calls with the model's chat template, which small
models (SmolLM2) do not have, and fixes the tools when the trainer starts, which BFCL's
per-task tools do not allow. So a rollout here is what an evaluation runs: reset the
environment on the task, let the :class:`~slmkit.agents.ToolAgent` act with the policy
being trained (grammar-constrained actions, sampled at the rollout temperature), and
take the environment's reward. The G episodes of a step run concurrently, one thread and
one environment each, against one policy model (a batching layer in front of it turns
their calls into batched ``generate`` calls).

The episode becomes tokens from what the policy really read and sampled, not from a
re-rendering of its text (:mod:`slmkit.training.traces`): ``prompt_ids`` are the system
prompt and task as the first call read them, ``completion_ids`` everything after, and
``env_mask`` marks the agent's sampled tokens (1) against observations and turn headers
(0), so the policy gradient and the KL term only touch what the policy wrote. ``allowed``
carries each agent token's grammar mask to the
:class:`~slmkit.training.grpo_trainer.GrammarGRPOTrainer`, which scores the tokens under
it; ``logprobs`` stays None (the trainer's recomputation is the on-policy value, and
vLLM's importance-sampling correction is off). An episode that failed before the policy
acted is one untrained end token. The reward travels to the trainer as the
``env_reward`` field that :func:`env_reward` hands back.

The policy generates through the trainer's live model: on CPU a
:class:`~slmkit.models.hf.TransformersModel` over the (unwrapped) training model, on a
GPU with ``use_vllm`` the colocated ``vllm.LLM`` TRL keeps in sync with the weights.
"""

from __future__ import annotations

import json
import queue
import random
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from slmkit.agents import Trajectory
from slmkit.models import ChatModel, VllmModel
from slmkit.simulators import Environment
from slmkit.training.data import agent_conversation
from slmkit.training.errors import TrainingError
from slmkit.training.traces import (
    EpisodeRecorder,
    EpisodeTokens,
    GrammarView,
    PrefixTokens,
    episode_tokens,
)

__all__ = ["AgentRollout", "env_reward", "prompt_key"]


def prompt_key(prompt: Sequence[Mapping[str, Any]] | str) -> str:
    """The lookup key of a dataset prompt (TRL hands ``rollout_func`` prompts only)."""
    return prompt if isinstance(prompt, str) else json.dumps(list(prompt), sort_keys=True)


def env_reward(completions: list[Any], env_reward: list[float], **_: Any) -> list[float]:
    """The reward function GRPO calls: the environment's reward of each rollout."""
    return [float(r) for r in env_reward]


class AgentRollout:
    """``rollout_func(prompts, trainer)`` running one agent episode per prompt, concurrently.

    Args:
        env: environment name (``load_env``) and its options.
        tasks: the training tasks by :func:`prompt_key` of their dataset prompt.
        agent_options: AgentConfig fields of the episodes (the env's hints apply first).
        temperature: sampling temperature of the policy (the trainer's must be the same).
        max_completion_length: tokens kept of one episode's completion; a longer episode
            is cut there and, its end missing, left out of the loss by the trainer.
        log: a JSONL file receiving one record per rollout (reward, tokens, failure).
        workers: episodes run at once (None: all of the step's).
    """

    def __init__(
        self,
        env: str,
        tasks: Mapping[str, dict[str, Any]],
        *,
        env_options: Mapping[str, Any] | None = None,
        agent_options: Mapping[str, Any] | None = None,
        temperature: float = 1.0,
        max_completion_length: int = 256,
        log: Path | None = None,
        seed: int = 0,
        workers: int | None = None,
    ) -> None:
        self.env_name = env
        self.env_options = dict(env_options or {})
        self.tasks = dict(tasks)
        self.agent_options = dict(agent_options or {})
        if int(self.agent_options.get("sample_k", 1)) != 1:
            raise TrainingError(
                "RL rollouts sample one action per step",
                hint="drop sample_k from agent_options (self-consistency is for inference)",
            )
        # The loop guard forbids tokens outside the grammar mask the trainer scores under:
        # a rollout must be drawn from exactly the distribution GRPO computes.
        self.agent_options.setdefault("max_repeats", 0)
        self.temperature = temperature
        self.max_completion_length = max_completion_length
        self.log = log
        self.workers = workers
        self._rng = random.Random(seed)
        self._model: ChatModel | None = None
        self._tokenizer: Any = None
        self._view: GrammarView | None = None
        self._prefixes: PrefixTokens | None = None
        self._envs: queue.SimpleQueue[Environment] = queue.SimpleQueue()
        self._all_envs: list[Environment] = []
        self._envs_lock = threading.Lock()
        self.last: list[EpisodeTokens] = []
        """The previous call's episodes as tokens (for logs and checks)."""

    # ------------------------------------------------------------------ policy

    def _policy(self, trainer: Any) -> ChatModel:
        if self._model is not None:
            return self._model
        tokenizer = self._tokenizer = trainer.processing_class
        if getattr(trainer, "use_vllm", False):
            model: Any = _ColocatedVllm(trainer.vllm_generation.llm, "policy")
            self._view = GrammarView.of(model, tokenizer)
        else:
            from slmkit.models import TransformersModel

            model = TransformersModel(
                "policy",
                model=trainer.accelerator.unwrap_model(trainer.model),
                tokenizer=tokenizer,
                device=str(trainer.accelerator.device),
            )
            self._prefixes = PrefixTokens(tokenizer)
            model.prompt_tokens = self._prefixes
            self._view = GrammarView.of(model)
        model.trace = True
        self._model = model
        return self._model

    def _env(self) -> Environment:
        from slmkit.simulators import load_env

        try:
            return self._envs.get_nowait()
        except queue.Empty:
            env = load_env(self.env_name, split="train", **self.env_options)
            with self._envs_lock:
                self._all_envs.append(env)
            return env

    # ------------------------------------------------------------------ one episode

    def _episode(
        self, task: dict[str, Any], seed: int, step: int
    ) -> tuple[EpisodeTokens, dict[str, Any]]:
        from slmkit.simulators import run_episode

        assert self._model is not None and self._view is not None
        recorder = EpisodeRecorder(self._model, self._prefixes)
        options = {**self.agent_options, "temperature": self.temperature, "seed": seed}
        env = self._env()
        try:
            traj = run_episode(env, task, model=recorder, options=options)
        finally:
            self._envs.put(env)
        tokens = episode_tokens(recorder, self._view, lambda: self._fallback_prompt(traj))
        cut = tokens.truncate(self.max_completion_length)
        reward = float(traj.reward or 0.0)
        record = {
            "task_id": task["id"],
            "reward": reward,
            "step": step,
            "completion_tokens": sum(tokens.env_mask),
            "sequence_tokens": len(tokens.completion_ids),
            "agent_turns": tokens.agent_turns,
            "discarded_calls": tokens.discarded_calls,
            "dropped_turns": tokens.dropped_turns,
            "wrap_up_tokens": tokens.wrap_up_tokens,
            "unreplayable_tokens": tokens.unreplayable_tokens,
            "truncated": cut,
            "error": traj.meta.get("error"),
            "traceback": traj.meta.get("traceback"),
        }
        return tokens, record

    def _fallback_prompt(self, traj: Trajectory) -> list[int]:
        """The rendered prompt of an episode without a traced action (it failed first)."""
        conv = [m for m in agent_conversation(traj, invalid="keep") if m["role"] != "assistant"]
        ids = self._tokenizer.apply_chat_template(
            conv[:2], tokenize=True, add_generation_prompt=True, return_dict=False
        )
        return [int(t) for t in ids]

    # ------------------------------------------------------------------ call

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, Any]:
        model = trainer.model
        was_training = bool(model.training)
        # Eval mode while acting: no dropout, and gradient checkpointing (which only acts
        # in training mode) would otherwise turn generate's KV cache off.
        model.eval()
        self._policy(trainer)
        tasks = []
        for prompt in prompts:
            task = self.tasks.get(prompt_key(prompt))
            if task is None:
                raise TrainingError(
                    "a GRPO prompt matches no task", hint="build the dataset with rl()"
                )
            tasks.append(task)
        seeds = [self._rng.randrange(2**31) for _ in tasks]
        step = int(trainer.state.global_step)
        try:
            workers = self.workers or len(tasks)
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rollout") as pool:
                futures = [
                    pool.submit(self._episode, t, s, step)
                    for t, s in zip(tasks, seeds, strict=True)
                ]
                done = [f.result() for f in futures]
        finally:
            model.train(was_training)
            if self._prefixes is not None:
                self._prefixes.clear()
        records = [r for _, r in done]
        self.last = [t for t, _ in done]
        if self.log is not None:
            with self.log.open("a", encoding="utf-8") as f:
                f.writelines(json.dumps(r) + "\n" for r in records)
        failed = [r for r in records if r["error"]]
        if records and len(failed) == len(records):
            # One broken episode is data (reward 0); all of them is a broken setup.
            raise TrainingError(
                f"every rollout of this step failed: {failed[0]['error']}",
                hint="the first failure's traceback (all are in "
                f"{self.log or 'the rollout log'}):\n{failed[0]['traceback'] or ''}",
            )
        return {
            "prompt_ids": [t.prompt_ids for t, _ in done],
            "completion_ids": [t.completion_ids for t, _ in done],
            "logprobs": None,
            "env_mask": [t.env_mask for t, _ in done],
            "allowed": [t.allowed for t, _ in done],
            "env_reward": [r["reward"] for r in records],
        }

    def close(self) -> None:
        with self._envs_lock:
            envs, self._all_envs = self._all_envs, []
        for env in envs:
            env.close()


class _ColocatedVllm(VllmModel):
    """slmkit's vLLM backend over the engine TRL already runs (no second copy of the weights)."""

    def __init__(self, llm: Any, name: str) -> None:
        # Not super().__init__: that would start another engine.
        self.name = name
        self._llm = llm
