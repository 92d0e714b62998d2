"""What a cited answer is: its citations, each with two separate facts, and its prompt.

A :class:`Citation` reports what checking one ``[marker] "quote"`` found
(:mod:`.checks`): ``verified``, the quote is *verbatim* at its span in the source
document (the method: exact / normalized / fuzzy / none, a score, the character span),
and, apart from it, ``supports``: the quote backs the sentence that cites it (a score
against a calibrated threshold, :mod:`.support`). A backend bug, a stale index or a
model that cannot be constrained shows up as ``verified=False``; a true quote under a
sentence it does not say shows up as ``supports=False``. Neither is ever a false claim.

A :class:`CitedAnswer` holds the sentences, citations and every retrieved passage; an
answer none of whose sentences is supported is withheld (the refusal, with the draft in
``meta["withheld"]``). :func:`~.answering.answer` produces them; :func:`~.checks.verify_answer`
checks text from anywhere (a larger model behind an API, a stored answer) the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from slmkit.models import render_prompt

from .base import Passage
from .citation_grammar import REFUSAL
from .documents import Document

if TYPE_CHECKING:
    from slmkit.models import Message

__all__ = [
    "AnswerMode",
    "CheckedAgainst",
    "Citation",
    "CitedAnswer",
    "DocumentSource",
    "Unsupported",
    "cited_answer_messages",
    "refusal",
]

CheckedAgainst = Literal["source", "passage", "nothing"]
AnswerMode = Literal["grounded", "free"]
"""``grounded``: each sentence is a sentence of a retrieved passage, copied under a grammar;
``free``: the model writes its own sentences and cites quotes (see :func:`~.answering.answer`)."""
Unsupported = Literal["mark", "drop"]
"""What happens to a sentence no verbatim quote supports: kept and flagged, or removed."""


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

    ``support`` (0..1) and ``supports`` say whether the quote backs the sentence that
    cites it, with ``support_lexical`` and ``support_semantic`` the two parts of the
    score (see :mod:`.support`); all None until :func:`score_support` ran. A quote that
    is not verbatim supports nothing.
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
    support: float | None = None
    supports: bool | None = None
    support_lexical: float | None = None
    support_semantic: float | None = None

    @property
    def verbatim(self) -> bool:
        """The quote's words are the source's words at ``start:end`` (``verified``)."""
        return self.verified

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
    output as decoded. ``mode`` is how it was written (:data:`AnswerMode`).
    ``sentence_supported`` holds, per sentence, whether one of its quotes supports it
    (empty until :func:`score_support` ran). ``meta`` says why an answer was refused
    (``"refusal"``) and who decided (``"refused_by"``: ``"retrieval"`` when no passage
    was relevant and no model was asked, ``"model"``, or ``"support"`` when no sentence
    was supported) and keeps a withheld draft (``"withheld"``).
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
    mode: AnswerMode = "free"
    sentence_supported: tuple[bool, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def verified(self) -> bool:
        """True when there is at least one citation and every one is verbatim."""
        return bool(self.citations) and all(c.verified for c in self.citations)

    @property
    def supported(self) -> bool | None:
        """True when every sentence is supported by a quote; None if support is unscored."""
        if not self.sentence_supported:
            return None
        return all(self.sentence_supported)

    @property
    def unsupported_sentences(self) -> list[int]:
        """Indexes of the sentences no verbatim quote supports."""
        return [i for i, ok in enumerate(self.sentence_supported) if not ok]

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

    def citations_for_sentence(self, sentence: int) -> list[Citation]:
        """The citations of sentence number ``sentence`` (0-based)."""
        return [c for c in self.citations if c.sentence == sentence]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the answer, citations, passages (with their numbers)."""
        return {
            "question": self.question,
            "text": self.text,
            "sentences": list(self.sentences),
            "refused": self.refused,
            "verified": self.verified,
            "supported": self.supported,
            "sentence_supported": list(self.sentence_supported),
            "mode": self.mode,
            "constrained": self.constrained,
            "complete": self.complete,
            "citations": [c.to_dict() for c in self.citations],
            "passages": [{"number": n, **asdict(p)} for n, p in enumerate(self.passages, start=1)],
            "raw": self.raw,
            "model": self.model,
            "latency_s": self.latency_s,
            "meta": self.meta,
        }


def cited_answer_messages(
    question: str,
    passages: Sequence[Passage],
    *,
    mode: AnswerMode = "free",
    candidates: Sequence[tuple[int, str]] = (),
) -> list[Message]:
    """The chat messages for a cited answer: instructions, then numbered sources.

    In ``grounded`` mode each source shows only its ``candidates`` (``(number,
    sentence)``), the sentences the grammar lets the model copy.
    """
    # Title only: a small model copies whatever header it is shown into its sentences,
    # and section paths ("Guide > Install > From source") are the worst offenders.
    if mode == "grounded":
        shown = {n: " ".join(s for m, s in candidates if m == n) for n, _ in candidates}
    else:
        shown = {n: p.text.strip() for n, p in enumerate(passages, start=1)}
    numbered = "\n\n".join(f"[{n}] {passages[n - 1].title}: {text}" for n, text in shown.items())
    user = render_prompt(
        "slmkit.retrieval", "cited_answer_user.md", passages=numbered, question=question.strip()
    )
    system = "grounded_answer_system.md" if mode == "grounded" else "cited_answer_system.md"
    return [
        {"role": "system", "content": render_prompt("slmkit.retrieval", system).strip()},
        {"role": "user", "content": user.strip()},
    ]


def refusal(
    question: str,
    passages: Sequence[Passage],
    reason: str,
    *,
    mode: AnswerMode,
    constrained: bool,
    model: str = "",
) -> CitedAnswer:
    """The refusal for ``question`` without asking a model, saying why in ``meta``."""
    return CitedAnswer(
        question=question,
        text=REFUSAL,
        sentences=(),
        citations=(),
        passages=tuple(passages),
        refused=True,
        constrained=constrained,
        model=model,
        mode=mode,
        meta={"refusal": reason, "refused_by": "retrieval"},
    )
