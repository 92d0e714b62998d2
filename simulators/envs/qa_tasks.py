"""Generating QA tasks from an index's passages with a model, checked answerable.

For each sampled passage the model writes a question and picks its short answer. The
answer is decoded as one of the *candidate spans* of the passage (numbers, years,
capitalised phrases, found by :func:`candidate_spans`), an ``enum`` in the output
schema, so even a small model can only answer with text that occurs verbatim in the
passage. A generated task is kept when:

* the question is a question (ends with ``?``, not too short) and does not contain its
  own answer;
* it is new (normalized questions are deduplicated);
* it is answerable from the corpus: searching the question returns the supporting
  passage's document within the top ``k``.

What is dropped is counted by reason, so a low yield is visible, not silent.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from slmkit.models import ChatModel, cache_dir, render_prompt
from slmkit.retrieval import Index
from slmkit.simulators.base import Task
from slmkit.simulators.envs.scoring import normalize_answer
from slmkit.simulators.tasks import read_tasks_jsonl, stable_split

__all__ = ["GenerationStats", "cached_generated_tasks", "candidate_spans", "generate_qa_tasks"]

_SPAN = re.compile(
    r"\b(?:1[0-9]{3}|20[0-9]{2})\b"  # years
    r"|\b\d[\d,.]*\b"  # numbers
    r"|\b[A-Z][a-z]+(?:\s+(?:of|de|the|and|von|van)?\s*[A-Z][a-z]+)*"  # names
)
_MAX_CANDIDATES = 40
_PASSAGE_CHARS = 700


class GenerationStats(BaseModel):
    """How many passages were tried, kept, and why the others were dropped."""

    model_config = ConfigDict(extra="forbid")

    tried: int = 0
    kept: int = 0
    dropped: dict[str, int] = Field(default_factory=dict)


def candidate_spans(text: str, title: str = "") -> list[str]:
    """Short answer candidates in ``text``: years, numbers and capitalised phrases."""
    seen: dict[str, None] = {}
    for match in _SPAN.finditer(text):
        span = match.group(0).strip(" ,.")
        if len(span) < 2 or span.lower() in ("the", "it", "in", "a", "an", "this"):
            continue
        seen.setdefault(span, None)
        if len(seen) >= _MAX_CANDIDATES:
            break
    if title and title in text:
        seen.setdefault(title, None)
    return list(seen)


def _schema(candidates: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "question": {"type": "string", "minLength": 10, "maxLength": 200},
            "answer": {"enum": candidates},
        },
        "required": ["question", "answer"],
        "additionalProperties": False,
    }


def generate_qa_tasks(
    index: Index,
    model: ChatModel,
    n: int,
    *,
    seed: int = 0,
    k: int = 3,
    max_tries: int | None = None,
) -> tuple[list[Task], GenerationStats]:
    """Up to ``n`` checked tasks from passages of ``index`` (see the module docs)."""
    rng = random.Random(seed)
    sources = index.sources()
    rng.shuffle(sources)
    stats = GenerationStats()
    drops: Counter[str] = Counter()
    tasks: list[Task] = []
    seen: set[str] = set()
    for source_id in sources[: max_tries or 4 * n]:
        if len(tasks) >= n:
            break
        doc = index.document(source_id)
        text = doc.text[:_PASSAGE_CHARS]
        candidates = candidate_spans(text, doc.title)
        stats.tried += 1
        if not candidates:
            drops["no_candidate_answer"] += 1
            continue
        prompt = render_prompt(
            "slmkit.simulators.envs", "qa_generate.md", title=doc.title, text=text
        )
        out = model.chat(
            [{"role": "user", "content": prompt}],
            schema=_schema(candidates),
            max_tokens=120,
            temperature=0.0,
            seed=seed + stats.tried,
        )
        if not out.valid or not isinstance(out.parsed, dict):
            drops["invalid_output"] += 1
            continue
        question = str(out.parsed["question"]).strip()
        answer = str(out.parsed["answer"]).strip()
        norm_q = normalize_answer(question)
        if not question.endswith("?") or len(norm_q.split()) < 3:
            drops["not_a_question"] += 1
        elif normalize_answer(answer) in norm_q:
            drops["answer_in_question"] += 1
        elif norm_q in seen:
            drops["duplicate"] += 1
        elif source_id not in {p.source_id for p in index.search(question, k=k)}:
            drops["not_retrievable"] += 1
        else:
            seen.add(norm_q)
            task_id = "qa-" + hashlib.sha256(f"{source_id}\x1f{norm_q}".encode()).hexdigest()[:12]
            tasks.append(
                {
                    "id": task_id,
                    "split": stable_split(task_id),
                    "question": question,
                    "prompt": question,
                    "answer": answer,
                    "source_id": source_id,
                    "generated_by": model.name,
                }
            )
    stats.kept = len(tasks)
    stats.dropped = dict(drops)
    return tasks, stats


def cached_generated_tasks(index: Index, model: ChatModel, n: int, *, seed: int = 0) -> list[Task]:
    """:func:`generate_qa_tasks`, written once to the cache and read back after."""
    key = hashlib.sha256(f"{index.path}\x1f{model.name}\x1f{n}\x1f{seed}".encode()).hexdigest()[:16]
    path = cache_dir("qa-tasks") / f"{key}.jsonl"
    if path.exists():
        return read_tasks_jsonl(path)
    tasks, stats = generate_qa_tasks(index, model, n, seed=seed)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in tasks), encoding="utf-8"
    )
    tmp.replace(path)
    (path.with_suffix(".stats.json")).write_text(stats.model_dump_json(), encoding="utf-8")
    return tasks
