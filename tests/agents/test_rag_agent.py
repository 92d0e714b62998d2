"""RagAgent with the real embedded model, the real cited answer and the real verifier.

The retriever is a real in-memory keyword retriever; the cited answer is
``slmkit.retrieval.answer`` (quotes decoded under a verbatim-substring grammar, then
verified). Failed verifications are planted with :class:`Tamper`, which alters the quote
of the first answers as a model that misquotes would, and verifies it again.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from slmkit.agents import RagAgent, Router
from slmkit.models import ChatModel
from slmkit.retrieval import (
    CitedAnswer,
    Passage,
    Retriever,
    SupportScorer,
    answer,
    verify_answer,
    verify_quote,
)

DOCS = {
    "tungsten": "Tungsten has the highest melting point of all metals. It melts at 3422 degrees "
    "Celsius. It is used in light bulb filaments.",
    "mercury": "Mercury is the only metal that is liquid at room temperature. It boils at 357 "
    "degrees Celsius.",
    "gold": "Gold is a soft, yellow metal. It does not rust and is used in jewellery.",
}
QUESTION = "Which metal melts at the highest temperature?"


class KeywordRetriever:
    """Scores a document by the share of the query's words (4+ letters) it contains."""

    def __init__(self, docs: dict[str, str]) -> None:
        self.docs = docs
        self.queries: list[str] = []

    def search(self, query: str, k: int = 5) -> list[Passage]:
        self.queries.append(query)
        words = {w for w in re.findall(r"[a-z]+", query.lower()) if len(w) > 3}
        hits = []
        for source, text in self.docs.items():
            found = {w for w in words if w in text.lower()}
            if found:
                score = len(found) / len(words)
                hits.append(
                    Passage(source, f"{source}#0", source.title(), text, 0, len(text), score)
                )
        return sorted(hits, key=lambda p: -p.score)[:k]


class Tamper:
    """Alters the quotes of the first ``times`` cited answers, so they fail verification."""

    def __init__(self, times: int) -> None:
        self.times = times

    def __call__(self, question: str, retriever: Retriever, model: ChatModel) -> CitedAnswer:
        result = answer(question, retriever, model)
        if self.times <= 0 or not result.citations:
            return result
        self.times -= 1
        texts = {p.source_id: p.text for p in result.passages}
        citations = []
        for c in result.citations:
            quote = c.quote.replace(" ", " certainly ", 1)
            verified = verify_quote(quote, texts[c.source_id]).verified
            citations.append(replace(c, quote=quote, verified=verified))
        return replace(result, citations=tuple(citations))


def test_weak_retrieval_is_reformulated_then_answered_with_a_verified_quote(
    smollm: ChatModel,
) -> None:
    retriever = KeywordRetriever(DOCS)
    agent = RagAgent(retriever, smollm, min_score=0.99, checkpoint="none")
    result = agent.run(QUESTION)
    assert len(retriever.queries) == 2 and retriever.queries[0] == QUESTION  # searched again
    kinds = [e.kind for e in result.events]
    assert kinds[:3] == ["observation", "action", "observation"]  # retrieve, rewrite, retrieve
    rewrite = result.events[1]
    assert rewrite.valid and rewrite.action is not None and rewrite.action["query"]
    assert result.stopped == "final_answer"
    citations = result.trajectory.meta["citations"]
    assert citations and all(c["verified"] for c in citations)
    searches = [c["arguments"]["query"] for c in result.trajectory.tool_calls]
    assert searches == retriever.queries
    assert result.trajectory.messages[-1] == {"role": "assistant", "content": result.answer}


def test_an_unverified_quote_is_retried_on_the_large_model(
    smollm: ChatModel, large_model: ChatModel
) -> None:
    agent = RagAgent(
        KeywordRetriever(DOCS), Router(smollm, large_model), answer_fn=Tamper(1), checkpoint="none"
    )
    result = agent.run(QUESTION)
    answers = [e for e in result.events if e.kind == "answer"]
    assert [a.ok for a in answers] == [False, True]
    assert answers[0].model == "smollm2" and "unverified citation" in (answers[0].observation or "")
    assert answers[1].model == "smollm2-large"
    assert (answers[1].escalation or "").startswith("citation check failed: unverified citation")
    assert result.stopped == "final_answer" and result.metrics.escalations == 1


def test_it_refuses_when_no_quote_verifies_and_works_as_a_tool(smollm: ChatModel) -> None:
    agent = RagAgent(
        KeywordRetriever(DOCS), smollm, answer_fn=Tamper(99), max_attempts=2, checkpoint="none"
    )
    result = agent.run(QUESTION)
    assert result.stopped == "refused" and result.answer == agent.config.refusal
    assert [e.ok for e in result.events if e.kind == "answer"] == [False, False]
    search = agent.as_tool()
    assert search.name == "search" and search.parameters["required"] == ["query"]
    out: Any = search(query=QUESTION)
    assert out == agent.config.refusal


def test_a_question_no_source_is_about_is_refused_at_once(smollm: ChatModel) -> None:
    agent = RagAgent(KeywordRetriever(DOCS), smollm, checkpoint="none")
    result = agent.run("What is the population of Lyon?")
    answers = [e for e in result.events if e.kind == "answer"]
    assert result.stopped == "refused" and result.answer == agent.config.refusal
    why = answers[0].observation or ""
    assert len(answers) == 1 and ("nothing was retrieved" in why or "is about" in why), why
    assert answers[0].calls == []  # no model was asked for an answer


def test_a_verbatim_quote_that_does_not_support_its_sentence_is_not_returned(
    smollm: ChatModel,
) -> None:
    scorer = SupportScorer()
    quote = "Tungsten has the highest melting point of all metals"

    def misattributed(question: str, retriever: Retriever, model: ChatModel) -> CitedAnswer:
        passages = retriever.search(question, 3)
        number = next(i for i, p in enumerate(passages, 1) if quote in p.text)
        output = f'Tungsten is a fruit grown in Spain. [{number}] "{quote}"'
        return verify_answer(question, output, passages, scorer=scorer)

    agent = RagAgent(
        KeywordRetriever(DOCS), smollm, answer_fn=misattributed, max_attempts=2, checkpoint="none"
    )
    result = agent.run(QUESTION)
    answers = [e for e in result.events if e.kind == "answer"]
    assert [a.ok for a in answers] == [False, False] and result.stopped == "refused"
    assert "no sentence of the answer is supported" in (answers[0].observation or "")
