"""Environments (real and LLM-simulated), trajectory collection, evaluation, amplification,
written tasks.

Agents learn from trajectories, and trajectories come from environments. One
:class:`Environment` interface covers real ones (``bfcl``, ``math``, ``code``, ``qa``,
``tau2-retail``/``tau2-airline``) and :class:`SimulatedEnvironment`, where a model plays
the tools and the user from tool schemas alone; :func:`measure_fidelity` says how close a
simulator is to the real thing before you train on it::

    from slmkit.simulators import CollectConfig, EvalConfig, collect, evaluate, load_env

    env = load_env("math", split="test", limit=5)
    report = evaluate(EvalConfig(env="math", limit=5, out="eval.jsonl"))
    summary = collect(CollectConfig(env="bfcl", n=100, agent="tool", out="runs.jsonl"))

Collection and evaluation write append-only JSONL that survives ``kill -9`` and resumes.
"""

from slmkit.simulators.amplify import AmplifyConfig, AmplifySummary, amplify, trajectory_schema
from slmkit.simulators.base import Environment, RewardReport, Task, TaskSet, env_tool
from slmkit.simulators.collect import CollectConfig, CollectSummary, collect
from slmkit.simulators.envs.simulated import SimulatedEnvironment
from slmkit.simulators.envs.user import UserSimulator
from slmkit.simulators.errors import SimulationError
from slmkit.simulators.evaluate import EvalConfig, evaluate
from slmkit.simulators.fidelity import FidelityReport, fidelity_markdown, measure_fidelity
from slmkit.simulators.registry import (
    ENVIRONMENTS,
    EnvSpec,
    default_agent,
    env_data_packages,
    load_env,
    register_env,
)
from slmkit.simulators.report import (
    EvalReport,
    compare_markdown,
    load_report,
    markdown_table,
    metric_rows,
    report_from_trajectories,
    write_chart,
)
from slmkit.simulators.runner import AGENT_KINDS, run_episode
from slmkit.simulators.scale import RayDataModel
from slmkit.simulators.synth import WrittenTasks, write_tasks
from slmkit.simulators.toolspec import load_tools, tools_to_json
from slmkit.simulators.trl import trl_dataset, trl_environment_factory
from slmkit.simulators.validate import repair_trajectory, validate_trajectory

__all__ = [
    "AGENT_KINDS",
    "ENVIRONMENTS",
    "AmplifyConfig",
    "AmplifySummary",
    "CollectConfig",
    "CollectSummary",
    "EnvSpec",
    "Environment",
    "EvalConfig",
    "EvalReport",
    "FidelityReport",
    "RayDataModel",
    "RewardReport",
    "SimulatedEnvironment",
    "SimulationError",
    "Task",
    "TaskSet",
    "UserSimulator",
    "WrittenTasks",
    "amplify",
    "collect",
    "compare_markdown",
    "default_agent",
    "env_data_packages",
    "env_tool",
    "evaluate",
    "fidelity_markdown",
    "load_env",
    "load_report",
    "load_tools",
    "markdown_table",
    "measure_fidelity",
    "metric_rows",
    "register_env",
    "repair_trajectory",
    "report_from_trajectories",
    "run_episode",
    "tools_to_json",
    "trajectory_schema",
    "trl_dataset",
    "trl_environment_factory",
    "validate_trajectory",
    "write_chart",
    "write_tasks",
]
