"""Task files and splits, shared by every environment that reads tasks.

Tasks are plain dicts with a stable ``"id"`` and a ``"split"``; where a source has no
split of its own, :func:`stable_split` assigns one from a hash of the id, so a task never
moves between train and test when the data grows.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from slmkit.models import existing_path
from slmkit.simulators.base import Task
from slmkit.simulators.errors import SimulationError

__all__ = ["read_tasks_jsonl", "stable_split"]


def stable_split(task_id: str, test_fraction: float = 0.2) -> str:
    """``"test"`` for a stable ``test_fraction`` of ids (by sha256), else ``"train"``."""
    digest = hashlib.sha256(task_id.encode("utf-8")).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"


def read_tasks_jsonl(path: str | Path) -> list[Task]:
    """Tasks from a JSONL file, one object per line; ids are added where missing.

    A missing ``id`` becomes a hash of the line (stable across runs); a missing
    ``split`` is assigned by :func:`stable_split`.
    """
    p = existing_path(path, what="tasks file", kind="file")
    try:
        lines = p.read_text(encoding="utf-8").split("\n")
    except OSError as exc:
        raise SimulationError(f"cannot read tasks from {p}: {exc}", hint="check the path") from exc
    tasks: list[Task] = []
    seen: set[str] = set()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SimulationError(
                f"{p}:{n} is not JSON: {exc.msg}", hint="one JSON object per line"
            ) from exc
        if not isinstance(obj, dict):
            raise SimulationError(f"{p}:{n} is not a JSON object", hint="one object per line")
        task_id = str(obj.get("id") or hashlib.sha256(line.encode()).hexdigest()[:16])
        if task_id in seen:
            raise SimulationError(f"{p}:{n}: duplicate task id {task_id!r}", hint="ids are unique")
        seen.add(task_id)
        obj["id"] = task_id
        obj.setdefault("split", stable_split(task_id))
        tasks.append(obj)
    return tasks
