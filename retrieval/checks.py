"""Checking a cited answer: each quote verbatim at its span, then its support scored.

:func:`verify_answer` parses model output (either format, see
:mod:`.citation_grammar`) and looks every quote up again in the *source document* (not
the passage the model saw) with :func:`~.verify.verify_quote`; :func:`score_support`
then scores whether each verbatim quote supports the sentence that cites it
(:mod:`.support`) and marks, drops or withholds what is not supported. The two facts
stay apart on every :class:`~.cite.Citation`: ``verified`` and ``supports``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .base import Passage
from .citation_grammar import (
    REFUSAL,
    Claim,
    ParsedAnswer,
    parse_cited_output,
    parse_grounded_output,
)
from .cite import (
    AnswerMode,
    CheckedAgainst,
    Citation,
    CitedAnswer,
    DocumentSource,
    Unsupported,
)
from .errors import RetrievalError
from .support import Support, SupportScorer
from .verify import normalize_text, verify_quote

__all__ = ["score_support", "verify_answer"]


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
    if unsupported not in ("mark", "drop"):  # anything else would silently mean "mark"
        raise RetrievalError(f"unknown unsupported={unsupported!r}", hint="use 'mark' or 'drop'")
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
        meta={**ans.meta, "refusal": reason, "refused_by": "support", "withheld": draft},
    )
