"""``thermostat``: one tool, one verifiable call, then a short answer: the RL smoke environment.

"Set the kitchen thermostat to 21 degrees Celsius." The agent must call
``set_thermostat(room="kitchen", celsius=21)`` (the room as written, lower case) and then
answer. The reward is 1 when that exact call ran, else 0. Two turns per episode (a call,
an observation, a final answer), so it exercises multi-turn rollouts, and small enough
that a 135M model on a laptop gets some right and some wrong: a task GRPO can move.
Eight rooms x ten temperatures; every fifth combination is held out as ``test``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from slmkit.simulators.base import Environment, RewardReport, env_tool

__all__ = ["ThermostatEnv"]

_ROOMS = ("kitchen", "bedroom", "office", "garage", "bathroom", "attic", "basement", "hallway")


class ThermostatEnv(Environment):
    """Set a room's thermostat (see the module docs)."""

    name = "thermostat"

    def _tasks(self, split: str) -> Iterator[dict[str, Any]]:
        for i, room in enumerate(_ROOMS):
            for celsius in range(16, 26):
                held_out = (i + celsius) % 5 == 0
                if held_out == (split == "test"):
                    yield {
                        "id": f"{room}-{celsius}",
                        "split": split,
                        "room": room,
                        "celsius": celsius,
                    }

    def _start(self, task: dict[str, Any]) -> list[dict[str, Any]]:
        text = f"Set the {task['room']} thermostat to {task['celsius']} degrees Celsius."
        return [{"role": "user", "content": text}]

    def agent_hints(self) -> dict[str, Any]:
        return {"max_steps": 3, "max_answer_chars": 80}

    @env_tool
    def set_thermostat(self, room: str, celsius: int) -> str:
        """Set a room's thermostat.

        Args:
            room: the room name
            celsius: the target temperature in degrees Celsius
        """
        return f"{room} set to {celsius} C"

    def _score(self, task: dict[str, Any]) -> RewardReport:
        want = {"room": task["room"], "celsius": task["celsius"]}
        ok = any(c.get("arguments") == want and c.get("ok") for c in self.calls)
        return self._report(1.0 if ok else 0.0)

    def gold_actions(self, task: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        return [
            {
                "name": "set_thermostat",
                "arguments": {"room": task["room"], "celsius": task["celsius"]},
            }
        ]

    def gold_answer(self, task: Mapping[str, Any]) -> str | None:
        return f"The {task['room']} is set to {task['celsius']} C."
