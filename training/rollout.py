"""GRPO rollouts that are real agent episodes: TRL's ``rollout_func`` over slmkit agents.

TRL's own multi-turn loop parses tool calls with the model's chat template, which small
models (SmolLM2) do not have, and fixes the tools when the trainer starts, which BFCL's
per-task tools do not allow. So a rollout here is what an evaluation runs: reset the
environment on the task, let the :class:`~slmkit.agents.ToolAgent` act with the policy
being trained (grammar-constrained actions, sampled at the rollout temperature), and
take the environment's reward. The episode then becomes token ids through the same
renderer as SFT (:func:`~slmkit.training.data.agent_conversation`): ``prompt_ids`` are
the system prompt and task, ``completion_ids`` everything after, and ``env_mask`` marks
the agent's own tokens (1) against observations and turn headers (0), so the policy
gradient and the KL term only touch what the policy wrote. The reward travels to the
trainer as the ``env_reward`` field that :func:`env_reward` hands back.

The policy generates through the trainer's live model: on CPU a
:class:`~slmkit.models.hf.TransformersModel` over the (unwrapped) training model, on a
GPU with ``use_vllm`` the colocated ``vllm.LLM`` TRL keeps in sync with the weights.
The sampled tokens are re-tokenized from the rendered text and the logprobs are
recomputed by the trainer (``logprobs`` is None, so vLLM's importance-sampling
correction is off).
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slmkit.agents import Trajectory
from slmkit.models import ChatModel, VllmModel
from slmkit.training.data import agent_conversation, assistant_token_mask
from slmkit.training.errors import TrainingError

if TYPE_CHECKING:
    from slmkit.simulators import Environment

__all__ = ["AgentRollout", "env_reward", "prompt_key"]


def prompt_key(prompt: Sequence[Mapping[str, Any]] | str) -> str:
    """The lookup key of a dataset prompt (TRL hands ``rollout_func`` prompts only)."""
    return prompt if isinstance(prompt, str) else json.dumps(list(prompt), sort_keys=True)


def env_reward(completions: list[Any], env_reward: list[float], **_: Any) -> list[float]:
    """The reward function GRPO calls: the environment's reward of each rollout."""
    return [float(r) for r in env_reward]


class AgentRollout:
    """``rollout_func(prompts, trainer)`` running one agent episode per prompt.

    Args:
        env: environment name (``load_env``) and its options.
        tasks: the training tasks by :func:`prompt_key` of their dataset prompt.
        agent_options: AgentConfig fields of the episodes (the env's hints apply first).
        temperature: sampling temperature of the policy.
        max_completion_length: tokens kept of one episode's completion.
        log: a JSONL file receiving ``{"task_id", "reward", "step"}`` per rollout.
        workers: episodes run at once (None: all of a step's), each in its own thread and
            environment; the policy decodes their calls together.
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
        self._env_args = (env, dict(env_options or {}))
        self.env = self._make_env()
        self._envs = [self.env]
        self._free_envs = [self.env]
        self._envs_lock = threading.Lock()
        self.workers = workers
        self.tasks = dict(tasks)
        self.agent_options = dict(agent_options or {})
        self.temperature = temperature
        self.max_completion_length = max_completion_length
        self.log = log
        self._rng = random.Random(seed)
        self._model: ChatModel | None = None
        self._template: str | None = None

    # ------------------------------------------------------------------ policy

    def _policy(self, trainer: Any) -> ChatModel:
        if self._model is not None:
            return self._model
        if getattr(trainer, "use_vllm", False):
            # The engine TRL already runs: no second copy of the weights.
            self._model = VllmModel("policy", llm=trainer.vllm_generation.llm)
        else:
            from slmkit.models import TransformersModel

            model = trainer.accelerator.unwrap_model(trainer.model)
            self._model = TransformersModel(
                "policy",
                model=model,
                tokenizer=trainer.processing_class,
                device=str(trainer.accelerator.device),
            )
        return self._model

    # ------------------------------------------------------------------ tokens

    def _tokens(self, tokenizer: Any, traj: Trajectory) -> tuple[list[int], list[int], list[int]]:
        from slmkit.training.data import training_chat_template

        if self._template is None:
            self._template = training_chat_template(tokenizer)
        conv = agent_conversation(traj, invalid="keep")
        first = next((i for i, m in enumerate(conv) if m["role"] == "assistant"), None)
        prompt_conv = conv if first is None else conv[:first]
        prompt_ids = list(
            tokenizer.apply_chat_template(
                prompt_conv, tokenize=True, add_generation_prompt=True, return_dict=False
            )
        )
        eos = int(tokenizer.eos_token_id)
        if first is None:  # the episode failed before the policy acted
            return prompt_ids, [eos], [1]
        ids, mask = assistant_token_mask(tokenizer, self._template, conv)
        end = max(i for i, bit in enumerate(mask) if bit) + 1  # the agent's last token: EOS
        ids, mask = ids[:end], mask[:end]
        if ids[: len(prompt_ids)] != prompt_ids:
            raise TrainingError(
                "the rollout's prompt tokens are not a prefix of its full tokens",
                hint="the chat template renders turns differently alone and together",
            )
        completion = ids[len(prompt_ids) :][: self.max_completion_length]
        env_mask = mask[len(prompt_ids) :][: self.max_completion_length]
        return prompt_ids, completion, env_mask

    # ------------------------------------------------------------------ call

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, Any]:
        from slmkit.simulators import run_episode

        model = trainer.model
        was_training = bool(model.training)  # generation below may switch it to eval mode
        policy = self._policy(trainer)
        out: dict[str, Any] = {
            "prompt_ids": [],
            "completion_ids": [],
            "logprobs": None,
            "env_mask": [],
            "env_reward": [],
        }
        records = []
        jobs: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for prompt in prompts:
            task = self.tasks.get(prompt_key(prompt))
            if task is None:
                raise TrainingError(
                    "a GRPO prompt matches no task", hint="build the dataset with rl()"
                )
            options = {
                **self.agent_options,
                "temperature": self.temperature,
                "seed": self._rng.randrange(2**31),  # drawn here: the same whatever the threads
            }
            jobs.append((task, options))

        def episode(job: tuple[dict[str, Any], dict[str, Any]]) -> Trajectory:
            env = self._take_env()
            try:
                return run_episode(env, job[0], model=policy, options=job[1])
            finally:
                with self._envs_lock:
                    self._free_envs.append(env)

        try:
            with ThreadPoolExecutor(max_workers=max(1, self.workers or len(jobs))) as pool:
                trajectories = list(pool.map(episode, jobs))
        finally:
            model.train(was_training)
        for (task, _), traj in zip(jobs, trajectories, strict=True):
            p, c, m = self._tokens(trainer.processing_class, traj)
            reward = float(traj.reward or 0.0)
            out["prompt_ids"].append(p)
            out["completion_ids"].append(c)
            out["env_mask"].append(m)
            out["env_reward"].append(reward)
            records.append(
                {
                    "task_id": task["id"],
                    "reward": reward,
                    "step": trainer.state.global_step,
                    "completion_tokens": sum(m),
                    "error": traj.meta.get("error"),
                    "traceback": traj.meta.get("traceback"),
                }
            )
        if self.log is not None:
            with self.log.open("a", encoding="utf-8") as f:
                f.writelines(json.dumps(r) + "\n" for r in records)
        failed = [r for r in records if r["error"]]
        if records and len(failed) == len(records):
            # One broken episode is data (reward 0); all of them is a broken setup, and
            # training on one-token placeholder completions would only hide it.
            raise TrainingError(
                f"every rollout of this step failed: {failed[0]['error']}",
                hint="the first failure's traceback (all are in "
                f"{self.log or 'the rollout log'}):\n{failed[0]['traceback'] or ''}",
            )
        return out

    def _make_env(self) -> Environment:
        from slmkit.simulators import load_env

        name, options = self._env_args
        return load_env(name, split="train", **options)

    def _take_env(self) -> Environment:
        """An environment no other episode is using (one is made when none is free)."""
        with self._envs_lock:
            if self._free_envs:
                return self._free_envs.pop()
        env = self._make_env()
        with self._envs_lock:
            self._envs.append(env)
        return env

    def close(self) -> None:
        for env in self._envs:
            env.close()
