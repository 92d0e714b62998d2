"""``RagAgent``: retrieve, optionally reformulate and retrieve again, answer with citations.

::

    START -> retrieve --(weak results, once)--> reformulate -> retrieve
                 |
                 +--> answer --(a quote not verbatim, or a sentence it does not
                        |            support, attempts left)--> answer
                        |
                        +--> END (a checked answer, or the refusal)

The cited answer comes from ``slmkit.retrieval.answer`` (or any function with its
signature passed as ``answer_fn``): by default a grounded answer, sentences copied from
the passages under a grammar; every quote verified against the source document when the
retriever can return it, and its support of its sentence scored. The agent's part is the
policy around it: when retrieval looks weak, ask the model for a keyword query and search
again; when a quote is not verbatim, a sentence is not supported by its quote, or the
answer cites nothing, try again, through the :class:`Router` so the retry can go to a
larger model; after ``max_attempts``, refuse rather than return an answer whose sources
do not check out. A refusal that did not come from a model (no retrieved passage is
about the question) is final at once: another model would be refused the same way.

:meth:`RagAgent.as_tool` makes the whole agent a ``search`` tool for other agents.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, Field

from slmkit.agents.config import RagConfig, with_options
from slmkit.agents.events import ModelCall, StepEvent
from slmkit.agents.graph import BaseState, GraphAgent, current_session
from slmkit.agents.router import Routed, Signals
from slmkit.models import ChatModel, render_prompt
from slmkit.retrieval import Passage, Retriever
from slmkit.tools import Tool

__all__ = ["AnswerFn", "CitedAnswerLike", "RagAgent"]


class _CitationLike(Protocol):
    @property
    def verified(self) -> bool: ...


class CitedAnswerLike(Protocol):
    """What the agent reads of a cited answer (``slmkit.retrieval.CitedAnswer`` fits)."""

    @property
    def text(self) -> str: ...

    @property
    def citations(self) -> Sequence[_CitationLike]: ...


AnswerFn = Callable[[str, Retriever, ChatModel], CitedAnswerLike]
"""``answer(question, retriever, model) -> CitedAnswer``, as in ``slmkit.retrieval``."""


class _Query(BaseModel):
    query: str = Field(max_length=120)


class RagState(BaseState, total=False):
    """Run state of a RagAgent (JSON-like values only, for the checkpointer)."""

    query: str
    passages: list[dict[str, Any]]
    reformulated: bool
    attempts: int
    failures: int
    failure: str | None
    citations: list[dict[str, Any]]


class _Fixed:
    """A retriever that returns the passages the agent already chose, whatever the query."""

    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages

    def search(self, query: str, k: int = 5) -> list[Passage]:
        return self.passages[:k]


class _FixedWithDocuments(_Fixed):
    """:class:`_Fixed` over a retriever that can return source documents, so quotes are
    verified against the source and not only against the passage."""

    def __init__(self, passages: list[Passage], source: Any) -> None:
        super().__init__(passages)
        self.source = source

    def document(self, source_id: str) -> Any:
        return self.source.document(source_id)


class RagAgent(GraphAgent):
    """A retrieval-augmented agent whose answers cite verified quotes (see module docs)."""

    kind: ClassVar[str] = "rag"

    def __init__(
        self,
        retriever: Retriever,
        model: ChatModel,
        config: RagConfig | None = None,
        *,
        answer_fn: AnswerFn | None = None,
        **options: Any,
    ) -> None:
        cfg = with_options(RagConfig, config, options)
        super().__init__(
            model,
            checkpoint=cfg.checkpoint,
            checkpoint_path=cfg.checkpoint_path,
            prices=cfg.prices,
        )
        self.config = cfg
        self.retriever = retriever
        self._answer_fn = answer_fn

    @property
    def answer_fn(self) -> AnswerFn:
        """The cited-answer function: ``slmkit.retrieval.answer`` with this config's
        ``k`` and token budget, unless one was given."""
        if self._answer_fn is None:
            from slmkit.retrieval import answer

            self._answer_fn = partial(answer, k=self.config.k, max_tokens=self.config.max_tokens)
        return self._answer_fn

    def _chosen(self, passages: list[Passage]) -> Retriever:
        if callable(getattr(self.retriever, "document", None)):
            return _FixedWithDocuments(passages, self.retriever)
        return _Fixed(passages)

    def as_tool(self, name: str = "search", description: str | None = None) -> Tool:
        """This agent as a tool: a question in, a cited answer (or the refusal) out."""

        def search(query: str) -> str:
            """Answer a question from the document collection, quoting the sources.

            Args:
                query: the question to look up
            """
            return self.run(query).answer or self.config.refusal

        return Tool.from_function(search, name=name, description=description)

    # -- graph

    def _state_schema(self) -> type[Any]:
        return RagState

    def _recursion_limit(self) -> int:
        return 4 + 2 * self.config.max_attempts

    def _build(self, graph: Any) -> None:
        from langgraph.graph import END, START

        graph.add_node("retrieve", self._retrieve_node)
        graph.add_node("reformulate", self._reformulate_node)
        graph.add_node("answer", self._answer_node)
        graph.add_edge(START, "retrieve")
        graph.add_conditional_edges("retrieve", self._after_retrieve, ["reformulate", "answer"])
        graph.add_edge("reformulate", "retrieve")
        graph.add_conditional_edges("answer", self._after_answer, ["answer", END])

    def _initial_state(self, task: str) -> dict[str, Any]:
        return {
            "task": task,
            "step": 0,
            "query": task,
            "passages": [],
            "reformulated": False,
            "attempts": 0,
            "failures": 0,
            "failure": None,
            "citations": [],
            "events": [],
            "messages": [{"role": "user", "content": task}],
            "answer": None,
            "stopped": None,
        }

    def _weak(self, passages: list[dict[str, Any]]) -> bool:
        if not passages:
            return True
        threshold = self.config.min_score
        return threshold is not None and max(p["score"] for p in passages) < threshold

    def _after_retrieve(self, state: Mapping[str, Any]) -> str:
        weak = self._weak(list(state.get("passages", [])))
        if weak and self.config.reformulate and not state.get("reformulated"):
            return "reformulate"
        return "answer"

    @staticmethod
    def _after_answer(state: Mapping[str, Any]) -> str:
        from langgraph.graph import END

        return str(END) if state.get("stopped") else "answer"

    # -- nodes

    def _retrieve_node(self, state: Mapping[str, Any]) -> dict[str, Any]:
        t0 = time.time()
        step = int(state.get("step", 0)) + 1
        query = str(state.get("query") or state["task"])
        found = [dataclasses.asdict(p) for p in self.retriever.search(query, self.config.k)]
        merged = {p["chunk_id"]: p for p in [*state.get("passages", []), *found]}
        passages = sorted(merged.values(), key=lambda p: -p["score"])[: self.config.k]
        call_id = f"call_search_{step}"
        listing = _listing(found)
        event = StepEvent(
            kind="observation",
            step=step,
            t0=t0,
            session=current_session(),
            action={"name": "search", "arguments": {"query": query}},
            observation=f"{len(found)} passages",
            ok=bool(found),
            tool_s=time.time() - t0,
        )
        event.t1 = time.time()
        call = {
            "id": call_id,
            "type": "function",
            "function": {
                "name": "search",
                "arguments": json.dumps({"query": query}, ensure_ascii=False),
            },
        }
        return {
            "step": step,
            "passages": passages,
            "messages": [
                {"role": "assistant", "content": "", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": call_id, "name": "search", "content": listing},
            ],
            "events": [event.model_dump(mode="json")],
        }

    def _reformulate_node(self, state: Mapping[str, Any]) -> dict[str, Any]:
        t0 = time.time()
        step = int(state.get("step", 0)) + 1
        prompt = render_prompt("slmkit.agents", "rag_reformulate.md", question=str(state["task"]))
        routed = self.router.complete(
            [{"role": "user", "content": prompt}], schema=_Query, max_tokens=48
        )
        parsed = routed.completion.parsed
        query = parsed.query.strip() if isinstance(parsed, _Query) else ""
        event = StepEvent(
            kind="action",
            step=step,
            t0=t0,
            session=current_session(),
            model=routed.model,
            escalation=routed.escalation,
            action={"query": query},
            text=routed.completion.text,
            valid=bool(query),
            calls=[ModelCall.from_completion(c) for c in routed.completions],
        )
        event.t1 = time.time()
        return {
            "step": step,
            "reformulated": True,
            "query": query or str(state["task"]),
            "events": [event.model_dump(mode="json")],
        }

    def _answer_node(self, state: Mapping[str, Any]) -> dict[str, Any]:
        t0 = time.time()
        step = int(state.get("step", 0)) + 1
        attempts = int(state.get("attempts", 0)) + 1
        passages = [Passage(**p) for p in state.get("passages", [])]
        signals = Signals(
            failures=int(state.get("failures", 0)),
            failure=state.get("failure"),
            failure_kind="citation" if state.get("failure") else None,
        )
        with self.router.recording() as log, self.router.routing(signals) as reason:
            result = self.answer_fn(str(state["task"]), self._chosen(passages), self.router)
        citations = [_citation(c) for c in result.citations]
        failure = _failure(result, citations)
        final_refusal = _refused_without_model(result)
        update: dict[str, Any] = {"step": step, "attempts": attempts, "citations": citations}
        if failure is None:
            update.update(answer=result.text, stopped="final_answer", failure=None, failures=0)
        elif final_refusal or attempts >= self.config.max_attempts:
            update.update(answer=self.config.refusal, stopped="refused", failure=failure)
        else:
            update.update(failure=failure, failures=int(state.get("failures", 0)) + 1)
        if update.get("stopped"):
            update["messages"] = [{"role": "assistant", "content": update["answer"]}]
        event = StepEvent(
            kind="answer",
            step=step,
            t0=t0,
            session=current_session(),
            model=_who(log) or self.router.small.name,
            escalation=reason,
            text=result.text,
            valid=failure is None,
            ok=failure is None,
            observation=failure or f"{len(citations)} citations verified",
            answer=update.get("answer"),
            calls=[ModelCall.from_completion(c) for r in log for c in r.completions],
        )
        event.t1 = time.time()
        update["events"] = [event.model_dump(mode="json")]
        return update

    # -- results

    def _tool_schemas(self) -> list[dict[str, Any]]:
        return [Tool.from_function(_search_schema, name="search").openai_schema()]

    def _meta(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {"citations": values.get("citations", []), "passages": values.get("passages", [])}


def _search_schema(query: str) -> str:
    """Search the document collection.

    Args:
        query: what to search for
    """
    return query


def _listing(passages: list[dict[str, Any]]) -> str:
    return (
        "\n".join(
            f"[{i}] {p.get('title') or p['source_id']}: {p['text']}"
            for i, p in enumerate(passages, 1)
        )
        or "(no passages found)"
    )


def _citation(c: Any) -> dict[str, Any]:
    fields = ("marker", "source_id", "title", "quote", "start", "end", "verified", "supports")
    return {f: getattr(c, f) for f in fields if hasattr(c, f)}


def _failure(result: CitedAnswerLike, citations: list[dict[str, Any]]) -> str | None:
    """Why ``result`` cannot be returned as it is, or None when its citations check out.

    ``supports`` is read when the answer function scored it (``slmkit.retrieval.answer``
    does); None means not scored, which is not held against the answer.
    """
    unverified = [c for c in citations if not c["verified"]]
    unsupported = [c for c in citations if c["verified"] and c.get("supports") is False]
    sentence_supported = getattr(result, "sentence_supported", ())
    if not citations:
        return "the answer cites no source" + _reason(result)
    if unverified:
        return f"unverified citation: {str(unverified[0].get('quote', ''))[:120]!r}"
    if unsupported and not all(sentence_supported):
        return f"unsupported sentence, quote {str(unsupported[0].get('quote', ''))[:120]!r}"
    return None


def _reason(result: CitedAnswerLike) -> str:
    meta = getattr(result, "meta", None)
    reason = meta.get("refusal") if isinstance(meta, dict) else None
    return f" ({reason})" if reason else ""


def _refused_without_model(result: CitedAnswerLike) -> bool:
    """True for a refusal decided before any model was asked (nothing relevant found):
    another model would be refused the same way."""
    meta = getattr(result, "meta", None)
    return isinstance(meta, dict) and meta.get("refused_by") == "retrieval"


def _who(log: list[Routed]) -> str | None:
    return log[-1].model if log else None
