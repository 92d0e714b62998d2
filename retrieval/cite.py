"""Answers whose every quote is checked: retrieve, decode under a citation grammar, verify.

``answer(question, retriever, model)`` retrieves ``k`` passages, numbers them ``[1]..[k]``
in the prompt and decodes under :func:`~.citation_grammar.citation_grammar`, so a marker
can only name a retrieved passage and its quote can only be a verbatim run of that
passage's words. The grammar is a promise about decoding; the result is then checked
again, independently, against the *source document* (not the passage the model saw)
with :func:`~.verify.verify_quote`, and each :class:`Citation` reports what that check
found: ``verified``, the method (exact / normalized / fuzzy / none), a score and the
quote's character span in the source. A backend bug, a stale index or a model that
cannot be constrained therefore shows up as ``verified=False``, never as a false claim.

:func:`verify_answer` runs the same parsing and checking on text from anywhere (a larger
model behind an API without grammar support, a stored answer), so the same report and
metrics apply to it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from slmkit.models import render_prompt

from .base import Passage, Retriever
from .citation_grammar import (
    MAX_QUOTE_CHARS,
    MIN_QUOTE_CHARS,
    REFUSAL,
    Claim,
    citation_grammar,
    parse_cited_output,
)
from .documents import Document
from .errors import RetrievalError
from .verify import verify_quote

if TYPE_CHECKING:
    from slmkit.models import ChatModel, Message

__all__ = [
    "Citation",
    "CitedAnswer",
    "DocumentSource",
    "answer",
    "cited_answer_messages",
    "verify_answer",
]

CheckedAgainst = Literal["source", "passage", "nothing"]


@runtime_checkable
class DocumentSource(Protocol):
    """A retriever that can return the full source document (``Index`` is one)."""

    def document(self, source_id: str) -> Document:
        """The document whose text passage offsets index into."""
        ...


@dataclass(frozen=True, slots=True)
class Citation:
    """One ``[marker] "quote"`` of an answer, and what checking it found.

    ``marker`` is the 1-based number of the cited passage in ``CitedAnswer.passages``;
    ``sentence`` the index of the sentence it supports. ``start``/``end`` locate the
    quote in the source document's text (None when it was not found). ``verified`` is
    True only for an exact or normalized match (see :func:`verify_quote`); a fuzzy
    match keeps its span and score but is not verified. ``checked_against`` says what
    the quote was checked against: the stored ``"source"`` document, only the
    ``"passage"`` (a retriever that cannot return documents), or ``"nothing"`` (the
    marker names no retrieved passage).
    """

    marker: int
    source_id: str
    title: str
    quote: str
    start: int | None
    end: int | None
    verified: bool
    score: float
    method: str
    chunk_id: str = ""
    sentence: int = 0
    checked_against: CheckedAgainst = "source"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of all fields."""
        return asdict(self)


@dataclass(frozen=True)
class CitedAnswer:
    """An answer, its sentences, its citations and every passage that was retrieved.

    ``text`` is the answer with inline markers (``"... assertions. [1]"``), or the
    refusal. ``constrained`` says whether decoding ran under the citation grammar;
    ``complete`` is False when part of the output did not parse (the token budget ran
    out, or an unconstrained model strayed from the format). ``raw`` is the model's
    output as decoded.
    """

    question: str
    text: str
    sentences: tuple[str, ...]
    citations: tuple[Citation, ...]
    passages: tuple[Passage, ...]
    refused: bool
    constrained: bool
    complete: bool = True
    raw: str = ""
    model: str = ""
    latency_s: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def verified(self) -> bool:
        """True when there is at least one citation and every one is verified."""
        return bool(self.citations) and all(c.verified for c in self.citations)

    @property
    def cited_passages(self) -> dict[int, Passage]:
        """The passages some citation names, by marker (1-based), in marker order."""
        cited = {c.marker for c in self.citations if 1 <= c.marker <= len(self.passages)}
        return {n: self.passages[n - 1] for n in sorted(cited)}

    @property
    def uncited_passages(self) -> dict[int, Passage]:
        """Retrieved passages no citation names, by their number."""
        cited = self.cited_passages
        return {n: p for n, p in enumerate(self.passages, start=1) if n not in cited}

    def citations_for(self, marker: int) -> list[Citation]:
        """The citations that name passage ``marker``."""
        return [c for c in self.citations if c.marker == marker]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the answer, citations, passages (with their numbers)."""
        return {
            "question": self.question,
            "text": self.text,
            "sentences": list(self.sentences),
            "refused": self.refused,
            "verified": self.verified,
            "constrained": self.constrained,
            "complete": self.complete,
            "citations": [c.to_dict() for c in self.citations],
            "passages": [{"number": n, **asdict(p)} for n, p in enumerate(self.passages, start=1)],
            "raw": self.raw,
            "model": self.model,
            "latency_s": self.latency_s,
            "meta": self.meta,
        }


def cited_answer_messages(question: str, passages: Sequence[Passage]) -> list[Message]:
    """The chat messages for a cited answer: instructions, then numbered sources."""
    # Title only: a small model copies whatever header it is shown into its sentences,
    # and section paths ("Guide > Install > From source") are the worst offenders.
    numbered = "\n\n".join(
        f"[{n}] {p.title}: {p.text.strip()}" for n, p in enumerate(passages, start=1)
    )
    user = render_prompt(
        "slmkit.retrieval", "cited_answer_user.md", passages=numbered, question=question.strip()
    )
    system = render_prompt("slmkit.retrieval", "cited_answer_system.md")
    return [
        {"role": "system", "content": system.strip()},
        {"role": "user", "content": user.strip()},
    ]


class _Sources:
    """Source texts for verification, fetched once per document per answer."""

    def __init__(self, documents: DocumentSource | None) -> None:
        self._documents = documents
        self._texts: dict[str, str | None] = {}

    def text(self, source_id: str) -> str | None:
        if self._documents is None:
            return None
        if source_id not in self._texts:
            try:
                self._texts[source_id] = self._documents.document(source_id).text
            except RetrievalError:  # deleted since the search: only the passage is left
                self._texts[source_id] = None
        return self._texts[source_id]


def _check(claim: Claim, sentence: int, passages: Sequence[Passage], sources: _Sources) -> Citation:
    """Verify one claim's quote against its passage's source document."""
    if not 1 <= claim.marker <= len(passages):
        return Citation(
            marker=claim.marker,
            source_id="",
            title="",
            quote=claim.quote,
            start=None,
            end=None,
            verified=False,
            score=0.0,
            method="none",
            sentence=sentence,
            checked_against="nothing",
        )
    p = passages[claim.marker - 1]
    source = sources.text(p.source_id)
    against: CheckedAgainst
    if source is not None and source[p.start : p.end] == p.text:
        # The passage is what the source says there: check inside that span only, so a
        # quote that happens to occur elsewhere in the document does not count.
        match = verify_quote(claim.quote, source[p.start : p.end])
        offset, against = p.start, "source"
    elif source is not None:
        # The index changed under the passage: all we can honestly check is the document.
        match = verify_quote(claim.quote, source)
        offset, against = 0, "source"
    else:
        match = verify_quote(claim.quote, p.text)
        offset, against = p.start, "passage"
    return Citation(
        marker=claim.marker,
        source_id=p.source_id,
        title=p.title,
        quote=claim.quote,
        start=None if match.start is None else match.start + offset,
        end=None if match.end is None else match.end + offset,
        verified=match.verified,
        score=match.score,
        method=match.method,
        chunk_id=p.chunk_id,
        sentence=sentence,
        checked_against=against,
    )


def verify_answer(
    question: str,
    output: str,
    passages: Sequence[Passage],
    *,
    documents: DocumentSource | None = None,
    constrained: bool = False,
    model: str = "",
    latency_s: float = 0.0,
) -> CitedAnswer:
    """Parse ``output`` (the cited-answer format) and verify every citation in it.

    ``passages`` are what the markers number (1-based); ``documents`` (an ``Index``)
    lets quotes be checked against the stored source text rather than the passage.
    Consecutive claims with the same sentence become one sentence with several markers.
    Text that does not parse is kept as an uncited sentence for unconstrained output
    (it is part of what the model said) and dropped for constrained output (there it
    can only be a claim cut off by the token budget).
    """
    parsed = parse_cited_output(output)
    sources = _Sources(documents)
    sentences: list[str] = []
    markers: list[list[int]] = []
    citations: list[Citation] = []
    for claim in parsed.claims:
        if not sentences or claim.sentence != sentences[-1]:
            sentences.append(claim.sentence)
            markers.append([])
        index = len(sentences) - 1
        key = (index, claim.marker, claim.quote)
        if any((c.sentence, c.marker, c.quote) == key for c in citations):
            continue
        citations.append(_check(claim, index, passages, sources))
        if claim.marker not in markers[-1]:
            markers[-1].append(claim.marker)
    if parsed.leftover and not parsed.refused and not constrained:
        sentences.append(parsed.leftover)
        markers.append([])
    if parsed.refused and not citations:
        text = REFUSAL
    else:
        text = " ".join(
            s + ("" if not ms else " " + "".join(f"[{m}]" for m in ms))
            for s, ms in zip(sentences, markers, strict=True)
        )
    return CitedAnswer(
        question=question,
        text=text,
        sentences=tuple(sentences),
        citations=tuple(citations),
        passages=tuple(passages),
        refused=parsed.refused and not citations,
        constrained=constrained,
        complete=parsed.complete,
        raw=output,
        model=model,
        latency_s=latency_s,
    )


def answer(
    question: str,
    retriever: Retriever,
    model: ChatModel,
    *,
    k: int = 4,
    max_sentences: int = 3,
    min_quote_chars: int = MIN_QUOTE_CHARS,
    max_quote_chars: int = MAX_QUOTE_CHARS,
    max_tokens: int = 256,
    temperature: float = 0.0,
    seed: int | None = None,
    constrained: bool | None = None,
) -> CitedAnswer:
    """Answer ``question`` from the ``k`` best passages, citing them with literal quotes.

    Decoding is grammar-constrained when the model supports Lark grammars
    (``constrained=None``); ``constrained=False`` decodes freely (to measure what the
    grammar buys); ``True`` insists and fails on a model that cannot. Every citation is
    verified after decoding either way. With no passages retrieved, the answer is the
    refusal and the model is not called.
    """
    question = question.strip()
    if not question:
        raise RetrievalError("the question is empty", hint="ask something")
    if k < 1:
        raise RetrievalError(f"k must be at least 1, got {k}", hint="retrieve e.g. k=4 passages")
    use_grammar = model.supports_grammar if constrained is None else constrained
    if use_grammar and not model.supports_grammar:
        raise RetrievalError(
            f"{model!r} cannot decode under a grammar, so its quotes cannot be constrained",
            hint="use a llamacpp, transformers or vllm model, or pass constrained=False "
            "(quotes are still verified after decoding)",
        )
    passages = retriever.search(question, k)
    documents = retriever if isinstance(retriever, DocumentSource) else None
    if not passages:
        return verify_answer(question, REFUSAL, [], constrained=use_grammar, model=model.name)
    grammar = (
        citation_grammar(
            [p.text for p in passages],
            max_sentences=max_sentences,
            min_quote_chars=min_quote_chars,
            max_quote_chars=max_quote_chars,
        )
        if use_grammar
        else None
    )
    started = time.perf_counter()
    out = model.chat(
        cited_answer_messages(question, passages),
        grammar=grammar,
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
    )
    result = verify_answer(
        question,
        out.text,
        passages,
        documents=documents,
        constrained=use_grammar,
        model=model.name,
        latency_s=time.perf_counter() - started,
    )
    # A constrained output that stopped before the grammar was complete was cut off by
    # the token budget, even if every claim so far parsed.
    return result if out.valid or not use_grammar else replace(result, complete=False)
