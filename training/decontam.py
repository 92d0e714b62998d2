"""Held-out hygiene: no training example is a held-out task or a near-duplicate of one.

Splits keep task *ids* apart, but benchmarks such as BFCL hold many items written from
one template ("the area of a triangle with base 10 and height 5" and, under another id,
"... base 8 and height 3"): a student trained on one has all but seen the other, and its
held-out gain would be memory, not skill. So every training trajectory is compared with
every held-out task of the run (the evaluation's and the transfer family's) on its user
request: the same id, or word sets whose Jaccard similarity reaches ``threshold``, and the
trajectory is dropped. The same request with the same tools among the training data is
kept once (dedupe); BFCL repeats a request across categories with other tool lists, and
those are different tasks.

The comparison reads the held-out tasks' *text* only, never an outcome, so it cannot
tune anything to the evaluation.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from slmkit.agents import Trajectory, request_text
from slmkit.training.errors import TrainingError

__all__ = ["Decontaminated", "HeldOut", "decontaminate", "request_words", "similarity"]

_WORD = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")


def request_words(text: str) -> frozenset[str]:
    """The words of a request, lower-cased (numbers kept: they tell templates apart)."""
    return frozenset(_WORD.findall(text.lower()))


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard similarity of two word sets (1.0: the same words)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _tool_names(traj: Trajectory) -> list[str]:
    return [str(t.get("function", t).get("name")) for t in traj.tools]


@dataclass
class HeldOut:
    """The held-out tasks of a run: their ids and request words."""

    ids: set[str] = field(default_factory=set)
    words: list[tuple[str, frozenset[str]]] = field(default_factory=list)

    @classmethod
    def from_envs(
        cls,
        envs: Iterable[str],
        split: str,
        env_options: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
    ) -> HeldOut:
        """Every task of ``split`` of each environment (all of it, not just the evaluated
        first N: a later, larger evaluation stays clean); of a procedural, unbounded task
        set (math generators), the first ``limit``: the ones evaluated."""
        from slmkit.simulators import load_env

        out = cls()
        for name in envs:
            env = load_env(name, split=split, **dict(env_options or {}))
            try:
                if env.unbounded and limit is None:
                    raise TrainingError(
                        f"the {split} split of {name} is unbounded: which tasks are held "
                        "out needs a limit",
                        hint="set eval_n (and transfer_n) for a procedural environment",
                    )
                tasks = env.tasks(limit=limit if env.unbounded else None)
                for task in tasks:
                    text = str(task.get("prompt") or request_text(task.get("messages") or []))
                    out.add(str(task["id"]), text)
            finally:
                env.close()
        return out

    def add(self, task_id: str, text: str) -> None:
        self.ids.add(task_id)
        self.words.append((task_id, request_words(text)))

    def match(self, task_id: str, text: str, threshold: float) -> str | None:
        """The held-out task ``task_id``/``text`` is, or nearly duplicates (None: clean)."""
        if task_id in self.ids:
            return task_id
        words = request_words(text)
        for held_id, held in self.words:
            if similarity(words, held) >= threshold:
                return held_id
        return None


@dataclass
class Decontaminated:
    """Training trajectories left, and what was dropped (with the held-out task matched)."""

    kept: list[Trajectory] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    matches: dict[str, str] = field(default_factory=dict)


def decontaminate(
    trajectories: Iterable[Trajectory], held_out: HeldOut, *, threshold: float = 0.8
) -> Decontaminated:
    """Drop held-out tasks, their near-duplicates, and repeated requests (see module docs)."""
    out = Decontaminated()
    seen: set[tuple[frozenset[str], tuple[str, ...]]] = set()
    for traj in trajectories:
        task_id = str(traj.meta.get("task_id") or traj.task.get("id") or traj.id)
        text = traj.request or str(traj.task.get("prompt") or "")
        hit = held_out.match(task_id, text, threshold)
        if hit is not None:
            out.dropped["held_out" if hit == task_id else "near_held_out"] += 1
            out.matches[task_id] = hit
            continue
        key = (request_words(text), tuple(sorted(_tool_names(traj))))
        if key in seen:
            out.dropped["duplicate"] += 1
            continue
        seen.add(key)
        out.kept.append(traj)
    return out
