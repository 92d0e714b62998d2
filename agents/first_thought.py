"""The first thought, generated: a reasoning prompt writes the first step of a plan.

Agent Distillation seeds a teacher agent's first thought with the start of the
teacher's own chain-of-thought on the task: a plain reasoning prompt
(``prompts/first_thought.md``) asks the model for the first step of its reasoning, and
the agent's first action then starts with that sentence and continues it
(``AgentConfig.first_thought``). The student learns from trajectories that begin with
such a plan. A fixed string (``first_thought="..."``) remains the simpler option.

The sentence is cleaned so that both action grammars take it literally: one line, no
backticks, at most ``max_chars`` characters, cut at a word boundary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from slmkit.models import ChatModel, render_prompt

__all__ = ["FirstThought", "generate_first_thought"]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


@dataclass(frozen=True)
class FirstThought:
    """A generated first thought (None when the model wrote nothing usable) and its cost."""

    text: str | None
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float

    def to_dict(self) -> dict[str, object]:
        return {
            "text": self.text,
            "model": self.model,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_s": round(self.latency_s, 6),
        }


def clean_thought(text: str, max_chars: int) -> str | None:
    """The first sentence of ``text``'s first non-empty line, without backticks, at most
    ``max_chars`` characters (None when nothing usable is left)."""
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    flat = " ".join(line.replace("`", "'").split())
    # a list marker or "Step 1:" / "First," is the model numbering its plan, not the plan
    flat = re.sub(r"^(?:(?:step\s*)?\d+\s*[:.)-]\s*|[-*]\s+)?(?:first,?\s+)?", "", flat, flags=re.I)
    flat = _SENTENCE_END.split(flat, maxsplit=1)[0].strip()
    if len(flat) > max_chars:
        flat = flat[:max_chars].rsplit(" ", 1)[0].rstrip(",;:")
    return flat if len(flat) >= 3 else None


def generate_first_thought(
    model: ChatModel,
    task: str,
    *,
    max_chars: int = 120,
    max_tokens: int = 64,
    temperature: float = 0.0,
    seed: int | None = None,
) -> FirstThought:
    """Ask ``model`` for the first step of its reasoning on ``task`` (see the module docs).

    ``max_chars`` should leave room in the agent's thought (``max_thought_chars``) for
    the model to continue it.
    """
    prompt = render_prompt("slmkit.agents", "first_thought.md", task=task.strip())
    out = model.chat(
        [{"role": "user", "content": prompt}],
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
    )
    return FirstThought(
        text=clean_thought(out.text, max_chars),
        model=out.model,
        prompt_tokens=out.usage.prompt_tokens,
        completion_tokens=out.usage.completion_tokens,
        latency_s=out.latency_s,
    )
