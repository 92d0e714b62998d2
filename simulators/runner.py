"""One episode: an agent against an environment, scored, as one :class:`Trajectory`.

:func:`run_episode` is the unit both collection and evaluation repeat: reset the env on
a task, build the agent over the env's tools (agent options = the env's
:meth:`~Environment.agent_hints` under the caller's own), run it, hand its final
answer to the env, and record the reward with its breakdown in the trajectory. A run
that raises (a prompt over the context, a server that went away) becomes a trajectory
with ``meta["error"]`` and reward 0 instead of an exception: one bad task must not stop
a collection of thousands.

Agent kinds: ``tool`` (:class:`~slmkit.agents.ToolAgent`), ``code``
(:class:`~slmkit.agents.CodeAgent`), ``rag`` (:class:`~slmkit.agents.RagAgent`, for
environments with a retriever) and ``gold``: no model, the environment's known-good
actions replayed through its real tools (reference trajectories, seeds for
amplification, and a self-test that the reward gives 1 to a correct solution).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping
from typing import Any, Literal

from slmkit.agents import (
    AgentConfig,
    CodeAgent,
    CodeAgentConfig,
    FirstThought,
    RagAgent,
    RunMetrics,
    ToolAgent,
    Trajectory,
    generate_first_thought,
)
from slmkit.models import ChatModel, Message
from slmkit.simulators.base import Environment, RewardReport, jsonable
from slmkit.simulators.errors import SimulationError
from slmkit.tools import ToolCall

__all__ = ["AGENT_KINDS", "AgentKind", "run_episode", "run_gold"]

AgentKind = Literal["tool", "code", "rag", "gold"]
AGENT_KINDS: tuple[str, ...] = ("tool", "code", "rag", "gold")


def _config(kind: str, env: Environment, options: Mapping[str, Any]) -> AgentConfig:
    """Agent options: the env's hints, then the caller's, never checkpointing to disk.

    Collection resumes per task (:mod:`slmkit.simulators.collect`), so per-step
    checkpoints would only cost time.
    """
    cls = CodeAgentConfig if kind == "code" else AgentConfig
    merged = {**env.agent_hints(), **dict(options)}
    merged.setdefault("checkpoint", "none")
    known = set(cls.model_fields)
    return cls.model_validate({k: v for k, v in merged.items() if k in known})


def _make_agent(
    kind: str, model: ChatModel, env: Environment, options: Mapping[str, Any]
) -> ToolAgent | CodeAgent | RagAgent:
    if kind == "tool":
        return ToolAgent(model, env.tools(), _config(kind, env, options))
    if kind == "code":
        cfg = _config(kind, env, options)
        assert isinstance(cfg, CodeAgentConfig)
        return CodeAgent(model, env.tools(), cfg)
    if kind == "rag":
        retriever = getattr(env, "retriever", None)
        if retriever is None:
            raise SimulationError(
                f"the rag agent needs an environment with a retriever; {env.name} has none",
                hint="use --agent rag with the qa environment, or --agent tool",
            )
        return RagAgent(retriever, model, checkpoint="none")
    raise SimulationError(f"unknown agent kind {kind!r}", hint=f"choose one of {AGENT_KINDS}")


def run_episode(
    env: Environment,
    task: Mapping[str, Any],
    *,
    agent: str = "tool",
    model: ChatModel | None = None,
    options: Mapping[str, Any] | None = None,
    attempt: int = 0,
    generate_first_thought: bool = False,
) -> Trajectory:
    """Run one agent on one task of ``env``; the result carries reward and breakdown.

    Args:
        env: the environment (reset here).
        task: one of its tasks.
        agent: an agent kind (see the module docs).
        model: the agent's model (not needed for ``gold``).
        options: agent options (:class:`~slmkit.agents.AgentConfig` fields) that override
            the environment's hints, e.g. ``{"temperature": 0.7, "seed": 3}``.
        attempt: the attempt number, recorded in ``meta`` (rejection sampling).
        generate_first_thought: the agent's first thought starts with the first step of
            the model's own reasoning on the task (:func:`~slmkit.agents.
            generate_first_thought`, Agent Distillation); its call is recorded in
            ``meta["first_thought_call"]`` and its tokens counted in the metrics.

    Returns:
        The trajectory: ``id`` is the task id, ``reward`` the env's reward, ``meta`` holds
        ``task_id``, ``env``, ``agent``, ``stopped``, ``success``, ``reward_breakdown``,
        ``reward_info``, ``episode`` (the env's calls and simulator log) and ``error``.
    """
    if agent == "gold":
        return run_gold(env, task, attempt=attempt)
    if model is None:
        raise SimulationError(f"the {agent} agent needs a model", hint="pass model=...")
    start = time.perf_counter()
    first = env.reset(task)
    prompt = env.prompt_text(first)
    opts = dict(options or {})
    error: str | None = None
    thought: FirstThought | None = None
    try:
        if generate_first_thought:
            thought = _first_thought(model, prompt, opts)
        runner = _make_agent(agent, model, env, opts)
        try:
            result = runner.run(prompt)
        finally:
            runner.close()
    except SimulationError:
        raise
    except Exception as exc:  # a failed episode is data, not a crash
        error = f"{type(exc).__name__}: {exc}"
        traj = Trajectory(
            id=str(task["id"]),
            messages=list(first),
            tools=env.tools().openai_tools(),
            metrics=RunMetrics(stopped="error", wall_s=time.perf_counter() - start).model_dump(),
            meta={"traceback": traceback.format_exc()},
        )
        stopped = "error"
    else:
        traj = result.trajectory
        stopped = result.stopped
        if stopped == "final_answer" and not env.done:
            citations = traj.meta.get("citations") or []
            env.submit(result.answer, citations=citations if isinstance(citations, list) else [])
    if thought is not None:
        traj = _with_thought_call(traj, thought)
    report = env.reward_report() if error is None else _failed(env, error)
    return _finish(env, task, traj, report, agent, model, stopped, attempt, error)


def _first_thought(model: ChatModel, prompt: str, opts: dict[str, Any]) -> FirstThought:
    """Generate the first thought and put it in the agent options (when it is usable).

    It takes at most half of the thought's length, so the agent can continue it; it is
    sampled like the agent's actions (same temperature and seed).
    """
    room = int(opts.get("max_thought_chars", AgentConfig.model_fields["max_thought_chars"].default))
    thought = generate_first_thought(
        model,
        prompt,
        max_chars=max(room // 2, 8),
        temperature=float(opts.get("temperature", 0.0)),
        seed=opts.get("seed"),
    )
    if thought.text is not None:
        opts["first_thought"] = thought.text
    return thought


def _with_thought_call(traj: Trajectory, thought: FirstThought) -> Trajectory:
    """``traj`` with the first-thought call in ``meta`` and its tokens in the metrics."""
    metrics = dict(traj.metrics)
    metrics["prompt_tokens"] = int(metrics.get("prompt_tokens") or 0) + thought.prompt_tokens
    metrics["completion_tokens"] = (
        int(metrics.get("completion_tokens") or 0) + thought.completion_tokens
    )
    meta = {**traj.meta, "first_thought_call": thought.to_dict()}
    return traj.model_copy(update={"metrics": metrics, "meta": meta})


def run_gold(env: Environment, task: Mapping[str, Any], *, attempt: int = 0) -> Trajectory:
    """Replay ``env.gold_actions(task)`` through the env's tools, then its gold answer."""
    start = time.perf_counter()
    messages: list[Message] = list(env.reset(task))
    actions = env.gold_actions(task)
    if actions is None:
        raise SimulationError(
            f"{env.name} has no gold actions for task {task['id']}",
            hint="the gold agent needs an environment with known-good actions",
        )
    registry = env.tools()
    steps: dict[int, list[dict[str, Any]]] = {}
    for i, action in enumerate(actions):
        steps.setdefault(int(action.get("step", i + 1)), []).append(action)
    ok_calls = 0
    for n in sorted(steps):
        calls = [ToolCall(name=a["name"], arguments=dict(a["arguments"])) for a in steps[n]]
        messages.append(
            {"role": "assistant", "content": "", "tool_calls": [c.to_openai() for c in calls]}
        )
        for call in calls:
            result = registry.execute(call)
            ok_calls += int(result.ok)
            messages.append(result.to_message())
    answer = env.gold_answer(task)
    if answer is not None or not env.done:
        messages.append({"role": "assistant", "content": answer or "Done."})
        env.submit(answer or "Done.")
    n_calls = len(actions)
    metrics = RunMetrics(
        steps=len(steps) + 1,
        stopped="final_answer",
        tool_calls=n_calls,
        ok_tool_calls=ok_calls,
        executable_call_rate=ok_calls / n_calls if n_calls else None,
        wall_s=round(time.perf_counter() - start, 6),
    )
    traj = Trajectory(
        id=str(task["id"]),
        messages=messages,
        tools=registry.openai_tools(),
        metrics=metrics.model_dump(mode="json"),
    )
    return _finish(
        env, task, traj, env.reward_report(), "gold", None, "final_answer", attempt, None
    )


def _failed(env: Environment, error: str) -> RewardReport:
    return RewardReport(reward=0.0, success=False, breakdown={}, info={"error": error})


def _finish(
    env: Environment,
    task: Mapping[str, Any],
    traj: Trajectory,
    report: RewardReport,
    agent: str,
    model: ChatModel | None,
    stopped: str,
    attempt: int,
    error: str | None,
) -> Trajectory:
    meta = dict(traj.meta)
    meta.update(
        task_id=str(task["id"]),
        env=env.name,
        agent=agent,
        model=meta.get("model") or (model.name if model is not None else None),
        stopped=stopped,
        ended=env.done,
        success=report.success,
        reward_breakdown=report.breakdown,
        reward_info=jsonable(report.info),
        episode=env.episode_info(),
        attempt=attempt,
        error=error,
    )
    return traj.model_copy(
        update={
            "id": str(task["id"]),
            "task": jsonable(dict(task)),
            "reward": report.reward,
            "meta": meta,
        }
    )
