"""The student's prompt: the one it is trained on is the one it must run with.

A student may be trained with a shorter system prompt than the agent's (Agent
Distillation trains and runs students with a short one: the format is learned, not
read). :func:`student_system_prompt` rewrites an agent system prompt into that form,
keeping its tool list; training rows (:mod:`slmkit.training.data`) and the running
student (:class:`StudentPromptModel`, which rewrites the system message of every
conversation before the backend renders it) call the same function, so the two
cannot drift apart.

A trained student folder carries ``slmkit_student.json`` saying which prompt it was
trained with, so whoever serves it can wrap it the same way (:func:`load_student`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slmkit.models import (
    ChatModel,
    Message,
    WrappedModel,
    existing_path,
    load_model,
    render_prompt,
)

__all__ = [
    "STUDENT_META",
    "StudentPromptModel",
    "load_student",
    "read_student_meta",
    "short_header",
    "student_system_prompt",
]

STUDENT_META = "slmkit_student.json"
"""File in a trained student's folder: base model, prompt, how it was trained."""

_TOOLS_MARK = "\nTools:\n"


def short_header() -> str:
    """The packaged short student header (``prompts/student_system.md``)."""
    return render_prompt("slmkit.training", "student_system.md").strip()


def student_system_prompt(agent_prompt: str, header: str) -> str:
    """``agent_prompt`` with its instructions replaced by ``header``; the tool list stays.

    ``header`` ``"short"`` means :func:`short_header`; ``"agent"`` keeps the prompt as is.
    """
    if header == "agent":
        return agent_prompt
    text = short_header() if header == "short" else header.strip()
    _, mark, tools = agent_prompt.partition(_TOOLS_MARK)
    return f"{text}\n{_TOOLS_MARK}{tools}" if mark else text


class StudentPromptModel(WrappedModel):
    """A :class:`ChatModel` that runs another one with the student's system prompt.

    Every conversation's system message is rewritten by :func:`student_system_prompt`
    before the wrapped backend renders it; everything else passes through.
    """

    def __init__(self, inner: ChatModel, header: str) -> None:
        super().__init__(inner)
        self.header = header

    def rewrite(self, messages: Sequence[Message]) -> list[Message]:
        out: list[Message] = []
        for m in messages:
            if m.get("role") == "system":
                m = {
                    **m,
                    "content": student_system_prompt(str(m.get("content") or ""), self.header),
                }
            out.append(m)
        return out


def read_student_meta(folder: str | Path) -> dict[str, Any]:
    """The ``slmkit_student.json`` of a student folder ({} when there is none)."""
    path = existing_path(folder, what="student folder", kind="folder") / STUDENT_META
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def load_student(spec: str, folder: str | Path | None = None, **options: Any) -> ChatModel:
    """Load ``spec`` and wrap it with the prompt the student in ``folder`` was trained on."""
    header = str(read_student_meta(folder).get("system_prompt", "agent")) if folder else "agent"
    model = load_model(spec, cache=False, **options)
    return model if header == "agent" else StudentPromptModel(model, header)
