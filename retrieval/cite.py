"""Answers whose every quote is checked: retrieve, decode under a citation grammar, verify.

``answer(question, retriever, model)`` retrieves ``k`` passages, numbers them ``[1]..[k]``
in the prompt and decodes under :func:`~.citation_grammar.citation_grammar`, so a marker
can only name a retrieved passage and its quote can only be a verbatim run of that
passage's words. The grammar is a promise about decoding; the result is then checked
again, independently, against the *source document* (not the passage the model saw)
with :func:`~.verify.verify_quote`, and each :class:`Citation` reports what that check
found: ``verified`` (the quote is *verbatim* at its span), the method (exact /
normalized / fuzzy / none), a score and the quote's character span in the source. A
backend bug, a stale index or a model that cannot be constrained therefore shows up as
``verified=False``, never as a false claim.

Verbatim is not support: a true quote can sit under a sentence it does not back.
:func:`score_support` adds the second fact to every citation, apart from the first:
``support`` (a score) and ``supports`` (the score against a calibrated threshold, see
:mod:`.support`). A sentence is supported when one of its verbatim quotes supports it;
unsupported sentences are marked, or dropped, and an answer none of whose sentences is
supported is withheld: it becomes the refusal, the draft kept in ``meta["withheld"]``.

:func:`verify_answer` runs the same parsing and checking on text from anywhere (a larger
model behind an API without grammar support, a stored answer), so the same report and
metrics apply to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from slmkit.models import render_prompt

from .base import Passage
from .citation_grammar import (
    REFUSAL,
    Claim,
    ParsedAnswer,
    parse_cited_output,
    parse_grounded_output,
)
from .documents import Document
from .errors import RetrievalError
from .support import Support, SupportScorer
from .verify import normalize_text, verify_quote

if TYPE_CHECKING:
    from slmkit.models import Message

__all__ = [
    "AnswerMode",
    "Citation",
    "CitedAnswer",
    "DocumentSource",
    "Unsupported",
    "cited_answer_messages",
    "score_support",
    "verify_answer",
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
    (``"refusal"``) and keeps a withheld draft (``"withheld"``).
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
    mode: AnswerMode = "free",
    scorer: SupportScorer | None = None,
    unsupported: Unsupported = "mark",
) -> CitedAnswer:
    """Parse ``output`` (the format of ``mode``) and verify every citation in it.

    ``passages`` are what the markers number (1-based); ``documents`` (an ``Index``)
    lets quotes be checked against the stored source text rather than the passage.
    Consecutive claims with the same sentence become one sentence with several markers.
    Text that does not parse is kept as an uncited sentence for unconstrained output
    (it is part of what the model said) and dropped for constrained output (there it
    can only be a claim cut off by the token budget). With a ``scorer``, support is
    scored too (:func:`score_support`).
    """
    parsed = parse_grounded_output(output) if mode == "grounded" else parse_cited_output(output)
    result = _verified(question, parsed, passages, documents, constrained)
    result = replace(result, raw=output, model=model, latency_s=latency_s, mode=mode)
    return result if scorer is None else score_support(result, scorer, unsupported=unsupported)


def _verified(
    question: str,
    parsed: ParsedAnswer,
    passages: Sequence[Passage],
    documents: DocumentSource | None,
    constrained: bool,
) -> CitedAnswer:
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
    refused = parsed.refused and not citations
    return CitedAnswer(
        question=question,
        text=REFUSAL if refused else _joined(sentences, markers),
        sentences=tuple(sentences),
        citations=tuple(citations),
        passages=tuple(passages),
        refused=refused,
        constrained=constrained,
        complete=parsed.complete,
    )


def _joined(sentences: Sequence[str], markers: Sequence[Sequence[int]]) -> str:
    return " ".join(
        s + ("" if not ms else " " + "".join(f"[{m}]" for m in ms))
        for s, ms in zip(sentences, markers, strict=True)
    )


def score_support(
    ans: CitedAnswer, scorer: SupportScorer, *, unsupported: Unsupported = "mark"
) -> CitedAnswer:
    """``ans`` with every citation's support scored and unsupported sentences handled.

    A sentence is supported when one of its verbatim quotes, read under its source's
    title, supports it; a sentence that *is* its quote supports itself (score 1). With
    ``unsupported="drop"`` the other sentences (and their citations) are removed;
    with ``"mark"`` they stay, flagged in ``sentence_supported``. An answer left with
    no supported sentence is withheld: it becomes the refusal, and ``meta`` keeps the
    draft (``"withheld"``) and the reason (``"refusal"``).
    """
    if ans.refused or not ans.sentences:
        return ans
    verbatim = [c for c in ans.citations if c.verified]
    copied = [
        c for c in verbatim if normalize_text(c.quote) == normalize_text(ans.sentences[c.sentence])
    ]
    judged = [c for c in verbatim if c not in copied]
    scores = scorer.score_pairs([(ans.sentences[c.sentence], _evidence(c)) for c in judged])
    scored = dict(zip((id(c) for c in judged), scores, strict=True))
    scored.update((id(c), Support(1.0, 1.0, 1.0, True)) for c in copied)
    citations = []
    for c in ans.citations:
        s = scored.get(id(c))
        citations.append(
            replace(c, support=0.0, supports=False)
            if s is None
            else replace(
                c,
                support=s.score,
                supports=s.supported,
                support_lexical=s.lexical,
                support_semantic=s.semantic,
            )
        )
    supported = tuple(
        any(c.supports for c in citations if c.sentence == i) for i in range(len(ans.sentences))
    )
    result = replace(ans, citations=tuple(citations), sentence_supported=supported)
    if not any(supported):
        return _withheld(result, "no sentence of the answer is supported by a verbatim quote")
    if unsupported == "drop" and not all(supported):
        return _dropped(result)
    return result


def _evidence(c: Citation) -> str:
    """What a quote offers as evidence: its words, under the title of its source.

    A reader sees the quote under its source's title, and a sentence names its subject
    ("The nonlocal statement ...") where the quote often does not.
    """
    return f"{c.title}: {c.quote}" if c.title else c.quote


def _dropped(ans: CitedAnswer) -> CitedAnswer:
    """``ans`` without its unsupported sentences; citations renumbered to the kept ones."""
    keep = [i for i, ok in enumerate(ans.sentence_supported) if ok]
    new_index = {old: new for new, old in enumerate(keep)}
    citations = tuple(
        replace(c, sentence=new_index[c.sentence]) for c in ans.citations if c.sentence in new_index
    )
    markers = [
        list(dict.fromkeys(c.marker for c in citations if c.sentence == i))
        for i in range(len(keep))
    ]
    sentences = [ans.sentences[i] for i in keep]
    dropped = [ans.sentences[i] for i in ans.unsupported_sentences]
    return replace(
        ans,
        text=_joined(sentences, markers),
        sentences=tuple(sentences),
        citations=citations,
        sentence_supported=tuple(True for _ in keep),
        meta={**ans.meta, "dropped": dropped},
    )


def _withheld(ans: CitedAnswer, reason: str) -> CitedAnswer:
    """The refusal in place of ``ans``, whose draft and citations go to ``meta``."""
    draft = {
        "text": ans.text,
        "citations": [c.to_dict() for c in ans.citations],
        "sentence_supported": list(ans.sentence_supported),
    }
    return replace(
        ans,
        text=REFUSAL,
        sentences=(),
        citations=(),
        refused=True,
        sentence_supported=(),
        meta={**ans.meta, "refusal": reason, "withheld": draft},
    )


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
        meta={"refusal": reason},
    )
