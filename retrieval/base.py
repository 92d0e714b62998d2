"""The retrieval contract: a :class:`Passage` and the :class:`Retriever` protocol.

Agents and the cited-answer code depend only on these two names, so an index can be
swapped (FAISS here, a vector database elsewhere) without touching them. A passage keeps
character offsets into its source document's text because every citation must be
checkable against the exact source, not against a re-rendered copy of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Passage", "Retriever"]


@dataclass(frozen=True, slots=True)
class Passage:
    """One retrieved chunk.

    ``text == document.text[start:end]`` for the source document ``source_id``; ``score``
    is whatever the search mode ranks by (cosine similarity, BM25 score, or the
    reciprocal-rank-fusion score), higher is better. ``section`` names where in the
    document the chunk sits (a heading path, or ``"page 3"`` for PDFs) and may be empty.
    """

    source_id: str
    chunk_id: str
    title: str
    text: str
    start: int
    end: int
    score: float
    section: str = ""


@runtime_checkable
class Retriever(Protocol):
    """Anything that returns the ``k`` best passages for a query."""

    def search(self, query: str, k: int = 5) -> list[Passage]:
        """Return up to ``k`` passages, best first."""
        ...
