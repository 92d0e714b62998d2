"""Training with TRL's GRPO on any fixed-tool environment: ``environment_factory`` glue.

TRL's ``GRPOTrainer(environment_factory=factory)`` calls ``factory()`` once per rollout
slot, exposes *every public method* of the returned object as a tool (name, type hints
and Google-style docstring become the tool schema), calls ``reset(**row)`` with the
dataset row before a rollout (a string it returns is appended to the prompt) and
``get_reward()`` after it. An :class:`~slmkit.simulators.base.Environment` has a richer
public API than that (``tasks``, ``reward_report``, ...), so :func:`trl_environment_factory`
builds a thin class whose only public methods are the environment's tools, ``reset``,
``get_reward`` and, for environments scored on a final answer, ``final_answer``.

:func:`trl_dataset` gives the matching rows: the prompt and the task as JSON, which
``reset`` reads back, so procedurally generated tasks (math) work too.

BFCL is excluded: its tools differ per task, and TRL fixes an environment's tools when
the trainer starts (score BFCL with a reward function over ``check_calls`` instead).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

from slmkit.simulators.errors import SimulationError
from slmkit.simulators.registry import load_env
from slmkit.tools import Tool

__all__ = ["trl_dataset", "trl_environment_factory"]

_PY_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
}


def _annotation(schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    return _PY_TYPES.get(str(kind), str)


def _method(tool: Tool) -> Callable[..., str]:
    """A method ``tool.name(self, **arguments) -> str`` with the tool's signature and docs."""
    props: dict[str, Any] = tool.parameters.get("properties", {})
    required = set(tool.parameters.get("required", []))
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    doc_args = []
    for name, spec in props.items():
        ann = _annotation(spec)
        if name in required:
            params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann))
        else:
            ann = ann | None
            params.append(
                inspect.Parameter(
                    name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ann
                )
            )
        annotations[name] = ann
        doc_args.append(f"    {name}: {spec.get('description') or name}")
    annotations["return"] = str

    def call(self: Any, **arguments: Any) -> str:
        args = {k: v for k, v in arguments.items() if v is not None or k in required}
        result = self._env.tools().execute({"name": tool.name, "arguments": args})
        return str(result.content)

    call.__name__ = call.__qualname__ = tool.name.replace(".", "_").replace("-", "_")
    call.__doc__ = tool.description + ("\n\nArgs:\n" + "\n".join(doc_args) if doc_args else "")
    setattr(call, "__signature__", inspect.Signature(params, return_annotation=str))  # noqa: B010
    call.__annotations__ = annotations
    return call


def trl_environment_factory(name: str, **env_options: Any) -> Callable[[], Any]:
    """A zero-argument factory for ``GRPOTrainer(environment_factory=...)``.

    Args:
        name: an environment name for :func:`~slmkit.simulators.load_env`.
        **env_options: its options.
    """
    probe = load_env(name, **env_options)
    if not probe.fixed_tools:
        raise SimulationError(
            f"{probe.name} has different tools per task; TRL fixes tools at start",
            hint="train on a fixed-tool environment (math, qa, tau2-*)",
        )
    tools = list(probe.tools())
    probe.close()
    namespace: dict[str, Any] = {t.name: _method(t) for t in tools}

    def __init__(self: Any) -> None:
        self._env = load_env(name, **env_options)

    def reset(self: Any, **row: Any) -> str | None:
        """Start the rollout's episode on the row's task."""
        raw = row.get("task_json")
        if raw is None:
            raise SimulationError(
                "the dataset row has no task_json", hint="build rows with trl_dataset"
            )
        self._env.reset(json.loads(raw))
        return None

    def get_reward(self: Any) -> float:
        """The episode's reward."""
        return float(self._env.reward())

    def final_answer(self: Any, answer: str) -> str:
        """Give the final answer to the task.

        Args:
            answer: the complete final answer
        """
        self._env.submit(answer)
        return "Answer recorded."

    namespace.update(
        __init__=__init__, reset=reset, get_reward=get_reward, final_answer=final_answer
    )
    cls = type(f"Trl{type(probe).__name__}", (), namespace)
    return cls


def trl_dataset(
    name: str, *, split: str = "train", limit: int | None = None, **env_options: Any
) -> list[dict[str, Any]]:
    """Rows ``{"prompt": [user message], "task_json": str, "task_id": str}`` for GRPO."""
    env = load_env(name, split=split, **env_options)
    try:
        if env.unbounded and limit is None:
            raise SimulationError(f"{name} generates tasks without end", hint="pass limit=N")
        rows = []
        for task in env.tasks(split, limit=limit):
            first = env.reset(task)
            rows.append(
                {
                    "prompt": [{"role": "user", "content": env.prompt_text(first)}],
                    "task_json": json.dumps(task, ensure_ascii=False, default=str),
                    "task_id": str(task["id"]),
                }
            )
        return rows
    finally:
        env.close()
