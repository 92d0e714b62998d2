"""GRPO over a real environment: agent rollouts, the environment's rewards in the trainer."""

from __future__ import annotations

import json
from pathlib import Path

from slmkit.training import RlConfig, rl


def test_grpo_step_on_bfcl_with_env_rewards(tmp_path: Path) -> None:
    cfg = RlConfig(
        run_dir=tmp_path / "rl",
        env="bfcl:simple",
        n=2,
        num_generations=2,
        max_steps=1,
        max_completion_length=96,
        progress=False,
    )
    result = rl(cfg)
    rollouts = [
        json.loads(line)
        for line in (result.run_dir / "grpo" / "rollouts.jsonl").read_text().splitlines()
    ]
    assert len(rollouts) == 2  # one task, num_generations episodes
    for r in rollouts:  # real episodes: the policy acted, nothing failed on the way
        assert r["error"] is None, r["traceback"]
        assert r["completion_tokens"] > 5, r
    history = json.loads((result.run_dir / "grpo" / "log_history.json").read_text())
    logged = [h for h in history if "reward" in h]
    assert logged, history
    mean = sum(r["reward"] for r in rollouts) / len(rollouts)
    assert abs(logged[0]["reward"] - mean) < 1e-6  # the env's rewards reached the trainer
    assert abs(logged[0]["rewards/env_reward/mean"] - mean) < 1e-6
    assert result.outputs("grpo")["steps"] == 1
    assert (result.policy / "config.json").is_file()
    assert (result.run_dir / "report.md").is_file()


def test_grpo_arguments_of_the_vllm_colocate_path_are_trls(tmp_path: Path) -> None:
    """The GPU path's GRPOConfig arguments exist in TRL with the values TRL documents."""
    import dataclasses
    import inspect

    from trl import GRPOConfig

    from slmkit.training.rl import grpo_specific
    from slmkit.training.trainer import trl_args

    cfg = RlConfig(device="cuda", use_vllm=True, precision="bf16").resolved()
    kwargs = trl_args(dict, cfg, tmp_path, **grpo_specific(cfg))
    fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    assert set(kwargs) <= fields, set(kwargs) - fields
    assert kwargs["use_vllm"] and kwargs["vllm_mode"] == "colocate"
    assert kwargs["bf16"] and not kwargs["use_cpu"]
    doc = inspect.getdoc(GRPOConfig) or ""
    assert "colocate" in doc and "vllm_gpu_memory_utilization" in doc
    assert "mask_truncated_completions" in doc
    # vLLM's importance-sampling correction would compare against unmasked vLLM logprobs
    assert kwargs["vllm_importance_sampling_correction"] is False
