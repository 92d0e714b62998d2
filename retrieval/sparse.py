"""BM25 keyword search beside the dense index, with bm25s.

Dense embeddings miss exact names, numbers and rare words that BM25 catches; hybrid
search fuses both. bm25s stores its index as a sparse score matrix that cannot be
updated in place, so ``add``/``delete`` rebuild it from the chunk store's texts. That
costs tokenization only (a few seconds per 10k chunks), not re-embedding, which is the
expensive part a rebuild would otherwise need.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Bm25Index"]

_IDS_FILE = "ids.npy"


def _tokenize(texts: list[str], *, return_ids: bool) -> Any:
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", return_ids=return_ids, show_progress=False)


class Bm25Index:
    """BM25 over chunk texts; ``ids[row]`` is the chunk (vector) id of bm25s row ``row``."""

    def __init__(self, retriever: Any, ids: npt.NDArray[np.int64]) -> None:
        self._retriever = retriever  # None when there is nothing indexed
        self.ids = ids

    @classmethod
    def build(cls, texts: Sequence[str], ids: Sequence[int] | npt.NDArray[np.int64]) -> Bm25Index:
        """Index ``texts``; ``ids`` are their chunk ids, in the same order."""
        import bm25s

        id_array = np.asarray(ids, dtype=np.int64)
        if not texts:
            return cls(None, id_array)
        retriever = bm25s.BM25()
        retriever.index(_tokenize(list(texts), return_ids=True), show_progress=False)
        return cls(retriever, id_array)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Up to ``k`` ``(chunk id, score)`` pairs, best first; only chunks sharing a term."""
        if self._retriever is None or k <= 0:
            return []
        tokens = _tokenize([query], return_ids=False)
        if not tokens[0]:
            return []
        k = min(k, len(self.ids))
        rows, scores = self._retriever.retrieve(tokens, k=k, show_progress=False)
        return [
            (int(self.ids[row]), float(score))
            for row, score in zip(rows[0], scores[0], strict=True)
            if score > 0
        ]

    def save(self, folder: Path) -> list[Path]:
        """Write into ``folder`` (created); returns the files written."""
        folder.mkdir(parents=True, exist_ok=True)
        if self._retriever is not None:
            self._retriever.save(str(folder), show_progress=False)
        np.save(folder / _IDS_FILE, self.ids, allow_pickle=False)
        return sorted(p for p in folder.iterdir() if p.is_file())

    @classmethod
    def load(cls, folder: Path) -> Bm25Index:
        """Read what :meth:`save` wrote."""
        import bm25s

        ids = np.load(folder / _IDS_FILE, allow_pickle=False).astype(np.int64)
        if len(ids) == 0:
            return cls(None, ids)
        return cls(bm25s.BM25.load(str(folder), show_progress=False), ids)
