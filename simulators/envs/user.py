"""The simulated user: a model that plays the customer from a task's instructions.

Customer-service environments (tau2, simulated ones with a user scenario) need someone
on the other side of the conversation. The agent talks to the user through a tool,
``send_message_to_user(message)``, whose result is the user's reply, so any tool-calling
agent can hold a multi-turn conversation inside its ordinary step loop. The user's
opening message starts the episode.

The model's reply is decoded under a small schema (``{"message": str}``, bounded), so
even a 135M model produces one finished message. ``###STOP###`` ends the conversation,
as in tau2. Without a model the user is *scripted*: the opening message is the scenario
itself and every reply is a fixed confirmation; useful for gold-action replays and
tests that must not depend on a model's mood.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from slmkit.models import ChatModel, Message, load_model, render_prompt

__all__ = ["STOP", "UserSimulator", "resolve_model", "scenario_text"]

STOP = "###STOP###"
_SCRIPTED_REPLY = "Yes, please go ahead."
_LEFT = "(the customer has left the conversation)"


class _Reply(BaseModel):
    message: str = Field(max_length=400)


def scenario_text(task: Mapping[str, Any]) -> str | None:
    """The user's instructions of a task: its ``"user"`` text, or tau2's scenario fields."""
    if task.get("user"):
        return str(task["user"])
    instructions = (task.get("user_scenario") or {}).get("instructions")
    if not instructions:
        return None
    if isinstance(instructions, str):
        return instructions
    parts = [
        ("Reason for calling", instructions.get("reason_for_call")),
        ("What you know", instructions.get("known_info")),
        ("What you do not know", instructions.get("unknown_info")),
        ("How you behave", instructions.get("task_instructions")),
    ]
    return "\n".join(f"{k}: {v}" for k, v in parts if v)


def resolve_model(model: ChatModel | str | None) -> ChatModel | None:
    """A model, from a model or a spec string (loaded and cached by ``load_model``)."""
    if model is None or isinstance(model, ChatModel):
        return model
    return load_model(model)


class UserSimulator:
    """Plays the user of one episode (see the module docs).

    Args:
        model: the model (or spec) that plays the user; None for a scripted user.
        scenario: who the user is and what they want (tau2's user instructions).
        opening: the scripted opening message (default: the scenario).
        log: a list every model call is appended to (the episode's simulator log).
        max_turns: replies after which the user leaves.
    """

    def __init__(
        self,
        model: ChatModel | str | None,
        scenario: str,
        *,
        opening: str | None = None,
        log: list[dict[str, Any]] | None = None,
        max_turns: int = 12,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.model = resolve_model(model)
        self.scenario = scenario
        self._opening = opening
        self.log = log if log is not None else []
        self.max_turns = max_turns
        self.temperature = temperature
        self.seed = seed
        self.turns: list[Message] = []
        """The conversation from the user's side: its own turns are ``assistant``."""
        self.stopped = False

    def opening(self) -> str:
        """The user's first message."""
        if self.model is None:
            text = self._opening or self.scenario
        else:
            text = self._ask("Start the conversation: write your first message to the agent.")
        self.turns.append({"role": "assistant", "content": text})
        return text

    def reply(self, agent_message: str) -> str:
        """The user's answer to ``agent_message``."""
        if self.stopped:
            return _LEFT
        self.turns.append({"role": "user", "content": agent_message})
        if sum(1 for t in self.turns if t["role"] == "assistant") > self.max_turns:
            text = STOP
        elif self.model is None:
            text = _SCRIPTED_REPLY
        else:
            text = self._ask(None)
        self.turns.append({"role": "assistant", "content": text})
        if STOP in text:
            self.stopped = True
        return text

    def _ask(self, instruction: str | None) -> str:
        assert self.model is not None
        system = render_prompt("slmkit.simulators.envs", "user.md", scenario=self.scenario)
        messages: list[Message] = [{"role": "system", "content": system}, *self.turns]
        if instruction is not None:
            messages.append({"role": "user", "content": instruction})
        start = time.perf_counter()
        out = self.model.chat(
            messages,
            schema=_Reply,
            max_tokens=160,
            temperature=self.temperature,
            seed=self.seed + len(self.turns),
        )
        text = out.parsed.message.strip() if isinstance(out.parsed, _Reply) else ""
        self.log.append(
            {
                "kind": "user",
                "input": messages[-1]["content"] if messages else "",
                "output": text,
                "valid": out.valid,
                "prompt_tokens": out.usage.prompt_tokens,
                "completion_tokens": out.usage.completion_tokens,
                "latency_s": round(time.perf_counter() - start, 4),
                "model": out.model,
            }
        )
        return text or "Sorry, could you repeat that?"
