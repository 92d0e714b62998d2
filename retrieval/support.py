"""Does a quote support the sentence that cites it? A score, a threshold, and their limits.

"Verbatim" (:func:`~.verify.verify_quote`) says the quoted words are the source's words.
It says nothing about the sentence around them: "The nonlocal statement is a syntax
error. [1]" can cite a perfectly verbatim quote about ``nonlocal`` that says no such
thing. :class:`SupportScorer` measures the second fact, separately:

* **lexical**: the share of the sentence's content words (stop words dropped, crudely
  stemmed, ``CamelCase`` and ``snake_case`` split) that occur in the evidence. A sentence
  that adds words the quote does not have ("syntax error", "population of Lyon") scores
  low, however on-topic it is.
* **semantic**: the cosine similarity of the sentence and the evidence under
  all-MiniLM-L6-v2 (the packaged embedder), which forgives paraphrase.

The score is their weighted mean and a sentence is *supported* when it reaches
``threshold``. The defaults (:data:`SUPPORT_THRESHOLD` 0.74, :data:`LEXICAL_WEIGHT` 0.2)
were the best balanced accuracy (0.89) on the 50 hand-labelled (sentence, quote) pairs
of the tuning split of ``benchmarks/data/citations_pairs.jsonl`` (20 written by hand,
30 from the 135M model's free answers) and are reported on the test split by
``benchmarks/citations.py``. Embeddings score a topical but wrong sentence ("Deleting
a name copies the object ...") almost as high as a paraphrase, so hard negatives pass.
This is overlap, not entailment: a sentence that reuses the
quote's words and negates them ("X is not Y") still scores high. No entailment (NLI)
model ships inside a PyPI package (the NLI packages there download their weights from a
model hub, which slmkit never does), so none is used; anything with ``name`` and
``supports(claim, evidence)`` can replace this scorer in :func:`~.metrics.citation_metrics`.

:meth:`SupportScorer.relevance` is the same measure turned on the question: how much of
the question the best retrieved passage covers. Below :data:`RELEVANCE_THRESHOLD` no
passage is about what was asked ("What is the population of Lyon?" against the Python
reference), and the answer is the refusal without calling the model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

from .embeddings import Embedder

__all__ = [
    "LEXICAL_WEIGHT",
    "RELEVANCE_LEXICAL_WEIGHT",
    "RELEVANCE_THRESHOLD",
    "SUPPORT_THRESHOLD",
    "Support",
    "SupportScorer",
    "content_words",
    "default_scorer",
    "split_sentences",
]

SUPPORT_THRESHOLD = 0.74
"""Combined score at or above which a quote supports a sentence (calibrated, see module)."""
LEXICAL_WEIGHT = 0.2
"""Weight of the lexical part in the combined support score (the rest is semantic)."""
RELEVANCE_THRESHOLD = 0.49
"""Question relevance below which no retrieved passage answers the question (calibrated
with :data:`RELEVANCE_LEXICAL_WEIGHT`)."""
RELEVANCE_LEXICAL_WEIGHT = 0.5
"""Weight of the lexical part in relevance: a question's rare words (a name, a topic)
must occur in a passage about it, which embeddings alone blur."""

_STOP_WORDS = """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing done down during
    each either else etc few for from further had has have having he her here hers him
    his how however i if in into is it its itself just may me might more most much must
    my no nor not now of off on once one only or other our ours out over own same shall
    she should so some such than that the their theirs them then there these they this
    those through thus to too under until up upon us very via was we were what when
    where which while who whom whose why will with within without would yes yet you your
    e g ie eg explain describe tell mean meaning used use
"""
_STOP = frozenset(_STOP_WORDS.split())
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*|[0-9]+(?:\.[0-9]+)?")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SUFFIXES = (("sses", "ss"), ("ies", "y"), ("es", ""), ("s", ""), ("ing", ""), ("ed", ""))
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(*])|\n[^\S\n]*\n")


@cache
def _stem(word: str) -> str:
    """A crude suffix stripper: enough to match "assertions" with "assertion", "raised"
    with "raise"; applied to both sides, so consistency matters more than linguistics."""
    for suffix, replacement in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[: -len(suffix)] + replacement
            break
    return word.rstrip("e") if len(word) > 3 else word


def content_words(text: str) -> list[str]:
    """The stemmed, lower-cased content words of ``text`` (identifiers split into words)."""
    words: list[str] = []
    for token in _WORD.findall(text):
        for part in _CAMEL.sub(" ", token).split():
            low = part.lower()
            if low not in _STOP and (len(low) > 1 or low.isdigit()):
                words.append(_stem(low))
    return words


def split_sentences(text: str) -> list[str]:
    """``text`` cut at sentence ends and blank lines, each piece's whitespace collapsed."""
    return [" ".join(s.split()) for s in _SENTENCE_END.split(text) if s.strip()]


@dataclass(frozen=True, slots=True)
class Support:
    """How well evidence supports a sentence: both parts in [0, 1], and the verdict."""

    score: float
    lexical: float
    semantic: float
    supported: bool


def _coverage(claim: str, evidence: str) -> float:
    """Share of ``claim``'s distinct content words that occur in ``evidence``."""
    wanted = set(content_words(claim))
    if not wanted:
        return 0.0
    return len(wanted & set(content_words(evidence))) / len(wanted)


class SupportScorer:
    """Scores sentence-vs-quote support and question-vs-passage relevance (module docs).

    It is also a :class:`~.metrics.SupportJudge` (``name``, ``supports``), so
    :func:`~.metrics.citation_metrics` can judge with it.
    """

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        threshold: float = SUPPORT_THRESHOLD,
        lexical_weight: float = LEXICAL_WEIGHT,
        relevance_threshold: float = RELEVANCE_THRESHOLD,
    ) -> None:
        if not 0.0 <= lexical_weight <= 1.0:
            raise ValueError("lexical_weight must be in [0, 1]")
        self.embedder = embedder or Embedder()
        self.threshold = threshold
        self.lexical_weight = lexical_weight
        self.relevance_threshold = relevance_threshold
        self._vectors_by_text: dict[str, npt.NDArray[np.float32]] = {}

    @property
    def name(self) -> str:
        return (
            f"support({self.lexical_weight:g}*lexical + {1 - self.lexical_weight:g}*cosine "
            f"[{self.embedder.name}]) >= {self.threshold:g}"
        )

    def _vectors(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors_by_text]
        if missing:
            encoded = self.embedder.encode(missing, show_progress=False)
            self._vectors_by_text.update(zip(missing, encoded, strict=True))
        out = np.stack([self._vectors_by_text[t] for t in texts])
        if len(self._vectors_by_text) > 20_000:  # a long-lived demo: keep memory bounded
            # (after stacking: an early-cached text of this very call may be dropped)
            self._vectors_by_text = dict(list(self._vectors_by_text.items())[-10_000:])
        return out

    def _combine(
        self, lexical: float, semantic: float, threshold: float, weight: float | None = None
    ) -> Support:
        w = self.lexical_weight if weight is None else weight
        score = w * lexical + (1 - w) * semantic
        return Support(round(score, 4), round(lexical, 4), round(semantic, 4), score >= threshold)

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[Support]:
        """Support of each ``(sentence, evidence)`` pair, embedded in one batch."""
        pairs = [(" ".join(s.split()), " ".join(e.split())) for s, e in pairs]
        if not pairs:
            return []
        vectors = self._vectors([t for pair in pairs for t in pair])
        out = []
        for i, (sentence, evidence) in enumerate(pairs):
            if not sentence or not evidence:
                out.append(Support(0.0, 0.0, 0.0, False))
                continue
            semantic = max(0.0, float(vectors[2 * i] @ vectors[2 * i + 1]))
            out.append(self._combine(_coverage(sentence, evidence), semantic, self.threshold))
        return out

    def score(self, sentence: str, evidence: str | Sequence[str]) -> Support:
        """Support of ``sentence`` by ``evidence`` (several texts are joined into one)."""
        joined = evidence if isinstance(evidence, str) else " ".join(evidence)
        return self.score_pairs([(sentence, joined)])[0]

    def supports(self, claim: str, evidence: Sequence[str]) -> bool:
        """:class:`~.metrics.SupportJudge`: True when the joined evidence supports ``claim``."""
        return self.score(claim, evidence).supported

    def sentence_relevance(self, question: str, sentences: Sequence[str]) -> list[float]:
        """How well each sentence answers ``question``: the support measure, question first."""
        if not sentences:
            return []
        vectors = self._vectors([question, *sentences])
        cosines = vectors[1:] @ vectors[0]
        return [
            self._combine(
                _coverage(question, s), max(0.0, float(c)), 0.0, RELEVANCE_LEXICAL_WEIGHT
            ).score
            for s, c in zip(sentences, cosines, strict=True)
        ]

    def relevance(self, question: str, passages: Sequence[str]) -> float:
        """Best relevance of any passage to ``question``: lexical coverage of the question
        by the whole passage, cosine to the passage's best sentence (0 with no passages)."""
        best = 0.0
        for text in passages:
            sentences = split_sentences(text)[:64] or [text]
            vectors = self._vectors([question, *sentences])
            cosine = max(0.0, float(np.max(vectors[1:] @ vectors[0])))
            relevance = self._combine(
                _coverage(question, text), cosine, 0.0, RELEVANCE_LEXICAL_WEIGHT
            )
            best = max(best, relevance.score)
        return best

    def answerable(self, question: str, passages: Sequence[str]) -> bool:
        """Whether some passage is relevant enough to answer ``question`` from."""
        return self.relevance(question, passages) >= self.relevance_threshold


@cache
def default_scorer() -> SupportScorer:
    """One shared scorer over the packaged embedder (the model loads on first use)."""
    return SupportScorer()
