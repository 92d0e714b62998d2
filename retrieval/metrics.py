"""Citation quality metrics for :class:`~.cite.CitedAnswer` results.

Mechanical checks, exact by construction:

* **quote validity**: share of quotes found verbatim (exact or normalized, per
  :func:`~.verify.verify_quote`) in the passage their marker names. Recomputed here
  from the passages, not read from ``Citation.verified``, so answers from any source
  (an unconstrained model, a stored file) are judged the same way.
* **marker validity**: share of citations whose marker names a retrieved passage.
* **duplicate quotes**: share of citations repeating an earlier (marker, quote) pair of
  the same answer (padding, not evidence).

Judged checks, following ALCE (Gao et al., 2023, "Enabling Large Language Models to
Generate Text with Citations"):

* **citation recall**: share of answer sentences that have a citation and are
  supported by the union of the passages they cite;
* **citation precision**: share of citations, in supported sentences, that are not
  *irrelevant* (a citation is irrelevant when it does not support the sentence alone
  and the other citations still do without it).

ALCE judges support with a large NLI model. None ships in a package here, so the
default judge is :class:`SimilarityJudge`: all-MiniLM-L6-v2 (the packaged embedder)
and a cosine threshold between the sentence and the best window of the evidence. It is
a cheap, offline proxy: it rewards topical overlap, not entailment, so compare systems
with it rather than read its numbers as truth. Every report names its judge; plug in
a real NLI model through the :class:`SupportJudge` protocol when one is available.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from .cite import CitedAnswer
from .embeddings import Embedder
from .verify import normalize_text, verify_quote

__all__ = [
    "CitationMetrics",
    "SimilarityJudge",
    "SupportJudge",
    "citation_metrics",
]

Evidence = Literal["passage", "quote"]
_SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+|\n\s*\n")


class SupportJudge(Protocol):
    """Decides whether evidence texts, taken together, support a claim."""

    @property
    def name(self) -> str:
        """What the judge is, for reports (model, threshold)."""
        ...

    def supports(self, claim: str, evidence: Sequence[str]) -> bool:
        """True when ``evidence`` (jointly) supports ``claim``."""
        ...


class SimilarityJudge:
    """Support = cosine similarity between the claim and some evidence window >= threshold.

    Each evidence text is split into sentences; windows are single sentences, adjacent
    pairs (a pronoun's antecedent is often one sentence back) and the whole text. The
    default threshold 0.5 separates paraphrases (about 0.6-0.95 with all-MiniLM-L6-v2)
    from merely on-topic text (about 0.2-0.45) on hand-checked examples; it is a knob,
    not a truth.
    """

    def __init__(self, embedder: Embedder | None = None, *, threshold: float = 0.5) -> None:
        self.embedder = embedder or Embedder()
        self.threshold = threshold
        self._cache: dict[str, npt.NDArray[np.float32]] = {}

    @property
    def name(self) -> str:
        return f"similarity({self.embedder.name}) >= {self.threshold:g}"

    @staticmethod
    def windows(text: str) -> list[str]:
        """The spans of ``text`` a claim is compared against."""
        sentences = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
        pairs = [f"{a} {b}" for a, b in itertools.pairwise(sentences)]
        whole = " ".join(text.split())
        return list(dict.fromkeys([*sentences, *pairs, whole]))

    def _vectors(self, texts: list[str]) -> npt.NDArray[np.float32]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            for text, vector in zip(
                missing, self.embedder.encode(missing, show_progress=False), strict=True
            ):
                self._cache[text] = vector
        return np.stack([self._cache[t] for t in texts])

    def score(self, claim: str, evidence: Sequence[str]) -> float:
        """Best cosine similarity of ``claim`` to any window of ``evidence`` (0 if none)."""
        windows = [w for text in evidence for w in self.windows(text)]
        if not windows or not claim.strip():
            return 0.0
        vectors = self._vectors([claim, *windows])
        return float(np.max(vectors[1:] @ vectors[0]))

    def supports(self, claim: str, evidence: Sequence[str]) -> bool:
        return self.score(claim, evidence) >= self.threshold


@dataclass(frozen=True)
class CitationMetrics:
    """Aggregate citation quality over answers; a rate is None when nothing was counted."""

    answers: int
    refused: int
    sentences: int
    citations: int
    quote_validity: float | None
    marker_validity: float | None
    duplicate_quotes: float | None
    citation_recall: float | None
    citation_precision: float | None
    judge: str
    evidence: Evidence

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict of all fields."""
        return asdict(self)

    def rows(self) -> list[tuple[str, str]]:
        """``(metric, value)`` pairs for printing a table."""

        def rate(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.3f}"

        return [
            ("answers", str(self.answers)),
            ("refused", str(self.refused)),
            ("sentences", str(self.sentences)),
            ("citations", str(self.citations)),
            ("quote validity", rate(self.quote_validity)),
            ("marker validity", rate(self.marker_validity)),
            ("duplicate quotes", rate(self.duplicate_quotes)),
            ("citation recall", rate(self.citation_recall)),
            ("citation precision", rate(self.citation_precision)),
            ("judge", f"{self.judge} (evidence: {self.evidence})"),
        ]


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


@dataclass
class _Counts:
    citations: int = 0
    verbatim: int = 0
    valid_markers: int = 0
    duplicates: int = 0
    sentences: int = 0
    supported: int = 0
    precise: int = 0
    refused: int = 0


def _count_answer(
    ans: CitedAnswer, judge: SupportJudge, evidence: Evidence, counts: _Counts
) -> None:
    """Add one answer's mechanical and judged counts to ``counts``."""
    if ans.refused:
        counts.refused += 1
        return
    seen: set[tuple[int, str]] = set()
    by_sentence: dict[int, list[str]] = {}
    for c in ans.citations:
        counts.citations += 1
        key = (c.marker, normalize_text(c.quote))
        counts.duplicates += key in seen
        seen.add(key)
        if not 1 <= c.marker <= len(ans.passages):
            continue
        counts.valid_markers += 1
        passage = ans.passages[c.marker - 1].text
        counts.verbatim += verify_quote(c.quote, passage).verified
        by_sentence.setdefault(c.sentence, []).append(passage if evidence == "passage" else c.quote)
    for index, sentence in enumerate(ans.sentences):
        counts.sentences += 1
        cited = by_sentence.get(index, [])
        if not cited or not judge.supports(sentence, cited):
            continue
        counts.supported += 1
        for i, text in enumerate(cited):
            rest = cited[:i] + cited[i + 1 :]
            irrelevant = (
                not judge.supports(sentence, [text])
                and bool(rest)
                and judge.supports(sentence, rest)
            )
            counts.precise += not irrelevant
    # Citations with an invalid marker, or in unsupported sentences, count against
    # precision through the denominator (all citations), as in ALCE.


def citation_metrics(
    answers: Sequence[CitedAnswer],
    *,
    judge: SupportJudge | None = None,
    evidence: Evidence = "passage",
) -> CitationMetrics:
    """Quote/marker validity, duplicates and ALCE citation recall/precision of ``answers``.

    ``evidence="passage"`` judges a sentence against the full cited passages (ALCE's
    setting); ``"quote"`` against only the quoted words, a stricter test of whether the
    quote itself backs the sentence. Refusals count in ``refused`` and nowhere else.
    """
    judge = judge or SimilarityJudge()
    counts = _Counts()
    for ans in answers:
        _count_answer(ans, judge, evidence, counts)
    return CitationMetrics(
        answers=len(answers),
        refused=counts.refused,
        sentences=counts.sentences,
        citations=counts.citations,
        quote_validity=_ratio(counts.verbatim, counts.citations),
        marker_validity=_ratio(counts.valid_markers, counts.citations),
        duplicate_quotes=_ratio(counts.duplicates, counts.citations),
        citation_recall=_ratio(counts.supported, counts.sentences),
        citation_precision=_ratio(counts.precise, counts.citations),
        judge=judge.name,
        evidence=evidence,
    )
