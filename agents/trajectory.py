"""``Trajectory``: one agent run as data, the unit that collection writes and training reads.

One JSON object per line::

    {"id", "task", "messages", "tools", "reward", "metrics", "meta"}

``messages`` are OpenAI chat messages: assistant turns carry ``tool_calls`` (arguments
as a JSON string, as OpenAI sends them) and tool results are ``role: tool`` messages
with the ``tool_call_id`` they answer. ``tools`` are the OpenAI tool schemas the agent
had. :meth:`Trajectory.to_trl` gives the conversational tool-calling row TRL's SFT
trainer reads (arguments as dicts, which Hugging Face chat templates expect).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from slmkit.models import decode_arguments, existing_path

__all__ = ["Trajectory", "read_trajectories", "request_text"]


class Trajectory(BaseModel):
    """A recorded agent run (see module docs for the format)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    task: dict[str, Any] = Field(default_factory=dict)
    messages: list[dict[str, Any]] = Field(default_factory=list)
    tools: list[dict[str, Any]] = Field(default_factory=list)
    reward: float | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)

    def to_json(self) -> str:
        """One line of JSONL."""
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> Trajectory:
        return cls.model_validate_json(line)

    def to_trl(self) -> dict[str, Any]:
        """A TRL conversational row: ``{"messages": [...], "tools": [...]}``."""
        messages = []
        for m in self.messages:
            m = dict(m)
            if m.get("tool_calls"):
                calls = []
                for tc in m["tool_calls"]:
                    fn = dict(tc.get("function", {}))
                    fn["arguments"] = decode_arguments(fn.get("arguments", {}))
                    calls.append({"type": "function", "function": fn})
                m["tool_calls"] = calls
            if m.get("content") is None:
                m["content"] = ""
            messages.append(m)
        return {"messages": messages, "tools": self.tools}

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """Every tool call made, in order, as ``{"name", "arguments"}`` dicts."""
        out = []
        for m in self.messages:
            for tc in m.get("tool_calls") or ():
                fn = tc.get("function", {})
                out.append(
                    {"name": fn.get("name"), "arguments": decode_arguments(fn.get("arguments", {}))}
                )
        return out

    @property
    def request(self) -> str:
        """What the user asked: the first user turn's text. Later user turns are replies
        to the agent (a simulated user's, the loop's retry feedback, a CodeAgent's
        observations), not the task."""
        return request_text(self.messages)


def request_text(messages: Iterable[Mapping[str, Any]]) -> str:
    """The text of the first user turn of ``messages`` (a trajectory's or a task's)."""
    first = next((m for m in messages if m.get("role") == "user"), None)
    return str(first.get("content") or "").strip() if first is not None else ""


def read_trajectories(path: str | Path) -> Iterator[Trajectory]:
    """Trajectories from a JSONL file; a torn last line (a killed writer) is skipped.

    A last line without a newline is read when it parses (a file written by hand or
    with ``"\\n".join``); only one that does not parse is taken for a torn write.

    Raises:
        PathNotFoundError: ``path`` names no file (checked before the first item).
    """
    file = existing_path(path, what="trajectories file", kind="file")
    return _read_lines(file)


def _read_lines(file: Path) -> Iterator[Trajectory]:
    with file.open(encoding="utf-8") as f:
        lines = f.readlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        if i == len(lines) - 1 and not line.endswith("\n"):
            try:
                last = Trajectory.from_json(line)
            except ValueError:
                return  # torn by a killed writer
            yield last
            return
        yield Trajectory.from_json(line)
