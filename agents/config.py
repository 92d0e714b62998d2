"""Configuration of agents and routers (pydantic, so every CLI flag maps to a field).

The defaults are tuned for the embedded 135M model: short outputs, a bounded thought and
answer (a small model that rambles is cut by the grammar instead of running to
``max_tokens`` and producing an unfinished action), greedy decoding, SQLite checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from slmkit.agents.errors import AgentError

__all__ = [
    "AgentConfig",
    "CodeAgentConfig",
    "RagConfig",
    "RouterConfig",
    "TokenPrice",
    "with_options",
]

_C = TypeVar("_C", bound=BaseModel)


def with_options(cls: type[_C], config: BaseModel | None, options: dict[str, Any]) -> _C:
    """``config`` (or the defaults) with keyword overrides, validated as ``cls``.

    Lets ``ToolAgent(model, tools, max_steps=3)`` and ``ToolAgent(model, tools, cfg)``
    mean the same thing, with a clear error for a misspelt option.
    """
    base = config.model_dump() if config is not None else {}
    try:
        return cls.model_validate({**base, **options})
    except ValidationError as exc:
        raise AgentError(
            f"invalid {cls.__name__}: {exc}", hint=f"see the fields of {cls.__name__}"
        ) from None


class TokenPrice(BaseModel):
    """What one model costs, in any currency, per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: float = Field(default=0.0, ge=0, description="price per 1M prompt tokens")
    completion: float = Field(default=0.0, ge=0, description="price per 1M completion tokens")

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.prompt + completion_tokens * self.completion) / 1e6


class RouterConfig(BaseModel):
    """When a :class:`~slmkit.agents.Router` hands a step (or the task) to the large model."""

    model_config = ConfigDict(extra="forbid")

    max_failures: int = Field(
        default=2,
        ge=1,
        description="consecutive invalid or failing steps that escalate the next one",
    )
    on_verifier_failure: bool = Field(
        default=True,
        description="escalate the step after one that a verifier rejected (tool error, "
        "code error, unverified citation)",
    )
    min_confidence: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="re-ask the large model when the small one's geometric-mean token "
        "probability is below this (backends with log-probabilities only)",
    )
    scope: Literal["step", "task"] = Field(
        default="step",
        description="step: escalate one step at a time; task: stay on the large model",
    )


class AgentConfig(BaseModel):
    """Options shared by the step-loop agents (:class:`ToolAgent`, :class:`CodeAgent`)."""

    model_config = ConfigDict(extra="forbid")

    max_steps: int = Field(default=6, ge=1, description="model actions before the run stops")
    max_tokens: int = Field(default=256, ge=16, description="token budget of one action")
    temperature: float = Field(default=0.0, ge=0, description="decoding temperature (sample_k=1)")
    seed: int | None = Field(default=0, description="sampling seed (reproducible runs)")
    thought: bool = Field(
        default=False, description="ask for a short thought before each action (ToolAgent)"
    )
    max_thought_chars: int = Field(
        default=200, ge=10, description="longest thought the grammar allows"
    )
    max_answer_chars: int = Field(default=400, ge=10, description="longest final answer allowed")
    max_arg_chars: int = Field(
        default=300,
        ge=1,
        description="longest free-text argument the grammar allows (a rambling model is "
        "made to close the string instead of running out of tokens)",
    )
    max_repeats: int = Field(
        default=2,
        ge=0,
        description="a block of output tokens may appear at most this many times in a row "
        "(0: no limit): a model looping inside a JSON string is made to break off",
    )
    grounding: Literal["off", "flag", "retry"] = Field(
        default="retry",
        description="a final answer given before any tool was used, run on to "
        "max_answer_chars, or stating a number the tools never returned (or none, after "
        "they returned one; or more decimal places than they did) is flagged on its "
        "event (flag), and sent back once with the reason, never on the last step (retry); "
        "slmkit.agents.grounding",
    )
    parallel_calls: bool = Field(default=False, description="let one action call several tools")
    max_parallel_calls: int = Field(
        default=4, ge=1, description="calls per action with parallel_calls"
    )
    first_thought: str | None = Field(
        default=None, description="text the first step's thought starts with (a teacher's plan)"
    )
    no_repeat: bool = Field(
        default=True,
        description="an action repeating an earlier successful call (or failed call of a "
        "pure tool) verbatim is decoded again without that tool (small models otherwise "
        "loop on their last call)",
    )
    argument_checks: bool = Field(
        default=True,
        description="a call whose arguments the task never gave (a pure tool fed its own "
        "result, a number neither the task nor an observation states, a value copied from "
        "the tool's description) is decoded again under pins (ToolAgent; "
        "slmkit.agents.argument_checks)",
    )
    answer_on_last_step: bool = Field(
        default=True,
        description="the last of max_steps (when more than one) may only answer: a call "
        "there could never be answered from (ToolAgent)",
    )
    sample_k: int = Field(
        default=1, ge=1, description="candidate actions per step (self-consistency)"
    )
    sample_temperature: float = Field(
        default=0.7, gt=0, description="temperature of the k candidates"
    )
    side_effect_tools: list[str] = Field(
        default_factory=list,
        description="tools that must not run for candidates that lose the vote, even if "
        "declared pure; a tool not declared pure (@tool(pure=True)) never does anyway: "
        "its candidates are voted on by the action itself instead of its observation",
    )
    checkpoint: Literal["sqlite", "memory", "none"] = Field(
        default="sqlite", description="where run state is saved after every node"
    )
    checkpoint_path: Path | None = Field(
        default=None, description="SQLite file (default: <cache>/runs/agents.sqlite)"
    )
    prices: dict[str, TokenPrice] = Field(
        default_factory=dict, description="token prices by model name, for metrics.cost"
    )


class CodeAgentConfig(AgentConfig):
    """:class:`AgentConfig` plus the sandbox the code runs in."""

    max_code_chars: int = Field(
        default=1200,
        ge=20,
        description="longest code cell; the token budget is raised to fit the longest "
        "action, so an action is never cut short",
    )
    sandbox_timeout_s: float = Field(
        default=10.0, gt=0, description="wall-clock limit of one code cell"
    )
    sandbox_memory_mb: int = Field(default=512, ge=64, description="memory limit of the sandbox")
    max_observation_chars: int = Field(
        default=1500, ge=100, description="kept of a cell's output in the observation"
    )


class RagConfig(BaseModel):
    """Options of :class:`~slmkit.agents.RagAgent`."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(default=4, ge=1, description="passages retrieved per query")
    reformulate: bool = Field(
        default=True,
        description="let the model rewrite the question into a search query and "
        "search again when the first results look weak",
    )
    min_score: float | None = Field(
        default=None, description="reformulate when the best passage scores below this"
    )
    max_attempts: int = Field(
        default=2, ge=1, description="cited answers tried before refusing when citations fail"
    )
    refusal: str = Field(
        default="I cannot answer this from the available sources.",
        description="the answer when no verified, cited answer was found",
    )
    max_tokens: int = Field(default=200, ge=16, description="token budget of the cited answer")
    checkpoint: Literal["sqlite", "memory", "none"] = "sqlite"
    checkpoint_path: Path | None = None
    prices: dict[str, TokenPrice] = Field(default_factory=dict)
